/*
 * Unified diffs (diff -u's format, 3 lines of context), for --diff: what a
 * simulated write would do to a file, and what a rehearsed kubectl.apply
 * would do to the live objects.  Pure: strings in, a string out.
 */
#include "udiff.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Past this the changed middle is not compared line by line (its LCS table
 * is lines x lines): a correct diff, not a minimal one. */
#define DIFF_MAX_CELLS (4u << 20)
#define DIFF_CONTEXT   3

typedef struct dline {
    const char *p;
    size_t n; /* with its '\n', if it has one: a last line without differs */
} dline;

static dline *split_lines(const char *s, size_t len, size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    n += len > 0 && s[len - 1] != '\n';
    dline *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (const char *p = s, *end = s + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t m = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        v[k++] = (dline){p, m};
        p += m;
    }
    *count = n;
    return v;
}

static int same(const dline *a, const dline *b)
{
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* The edit script from a to b: ops[] of ' ', '-', '+' (one per line of
 * either).  Common head and tail first; the middle by LCS when it fits,
 * else all of a's middle out and b's in (a correct diff, not a minimal
 * one). */
static char *edit_script(const dline *a, size_t na, const dline *b, size_t nb, size_t *nops)
{
    char *ops = malloc(na + nb + 1);
    if (!ops)
        return NULL;
    size_t pre = 0, suf = 0, k = 0;
    while (pre < na && pre < nb && same(&a[pre], &b[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre && same(&a[na - 1 - suf], &b[nb - 1 - suf]))
        suf++;
    memset(ops, ' ', pre);
    k = pre;
    size_t ma = na - pre - suf, mb = nb - pre - suf;
    const dline *A = a + pre, *B = b + pre;
    uint32_t *t = NULL;
    if ((ma + 1) * (mb + 1) <= DIFF_MAX_CELLS)
        t = calloc((ma + 1) * (mb + 1), sizeof *t);
    if (t) {
#define T(i, j) t[(i) * (mb + 1) + (j)]
        for (size_t i = ma; i-- > 0;)
            for (size_t j = mb; j-- > 0;)
                T(i, j) = same(&A[i], &B[j])           ? T(i + 1, j + 1) + 1
                          : T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j)
                                                       : T(i, j + 1);
        size_t i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && same(&A[i], &B[j]))
                ops[k++] = ' ', i++, j++;
            else if (i < ma && (j == mb || T(i + 1, j) >= T(i, j + 1)))
                ops[k++] = '-', i++;
            else
                ops[k++] = '+', j++;
        }
#undef T
        free(t);
    } else {
        memset(ops + k, '-', ma);
        k += ma;
        memset(ops + k, '+', mb);
        k += mb;
    }
    memset(ops + k, ' ', suf);
    k += suf;
    *nops = k;
    return ops;
}

static void add_line(luaL_Buffer *buf, char mark, const dline *l)
{
    luaL_addchar(buf, mark);
    int nl = l->n > 0 && l->p[l->n - 1] == '\n';
    luaL_addlstring(buf, l->p, l->n - (size_t)nl);
    luaL_addstring(buf, nl ? "\n" : "\n\\ No newline at end of file\n");
}

static void add_range(luaL_Buffer *buf, char side, size_t start, size_t len)
{
    char r[64];
    if (len == 1) /* as diff -u writes them */
        snprintf(r, sizeof r, "%c%zu", side, start + 1);
    else
        snprintf(r, sizeof r, "%c%zu,%zu", side, len ? start + 1 : start, len);
    luaL_addstring(buf, r);
}

int rb_unified_diff(lua_State *L, const char *from, const char *to, const char *old, size_t nold,
                    const char *new, size_t nnew)
{
    size_t na = 0, nb = 0, nops = 0;
    dline *a = split_lines(old, nold, &na), *b = split_lines(new, nnew, &nb);
    char *ops = a && b ? edit_script(a, na, b, nb, &nops) : NULL;
    if (!ops) {
        free(a), free(b);
        return -1;
    }
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    /* ia[k], ib[k]: the line of a and of b that op k is at */
    size_t k = 0, ia = 0, ib = 0;
    int headed = 0;
    while (k < nops) {
        size_t c = k, ca = ia, cb = ib; /* the next change */
        while (c < nops && ops[c] == ' ')
            c++, ca++, cb++;
        if (c == nops)
            break;
        size_t back = c - k < DIFF_CONTEXT ? c - k : DIFF_CONTEXT;
        size_t hs = c - back, ha = ca - back, hb = cb - back;
        /* the hunk's end: past the last change whose next is more than
         * 2 x context away */
        size_t e = c, ea = ca, eb = cb, run = 0;
        for (size_t x = c, xa = ca, xb = cb; x < nops; x++) {
            if (ops[x] == ' ') {
                if (++run > 2 * DIFF_CONTEXT)
                    break;
                xa++, xb++;
                continue;
            }
            run = 0;
            xa += ops[x] == '-';
            xb += ops[x] == '+';
            e = x + 1, ea = xa, eb = xb;
        }
        size_t fwd = 0;
        while (e + fwd < nops && fwd < DIFF_CONTEXT && ops[e + fwd] == ' ')
            fwd++;
        if (!headed) {
            luaL_addstring(&buf, "--- ");
            luaL_addstring(&buf, from);
            luaL_addstring(&buf, "\n+++ ");
            luaL_addstring(&buf, to);
            luaL_addchar(&buf, '\n');
            headed = 1;
        }
        luaL_addstring(&buf, "@@ ");
        add_range(&buf, '-', ha, ea + fwd - ha);
        luaL_addchar(&buf, ' ');
        add_range(&buf, '+', hb, eb + fwd - hb);
        luaL_addstring(&buf, " @@\n");
        for (size_t x = hs, xa = ha, xb = hb; x < e + fwd; x++) {
            if (ops[x] == '+')
                add_line(&buf, '+', &b[xb++]);
            else if (ops[x] == '-')
                add_line(&buf, '-', &a[xa++]);
            else
                add_line(&buf, ' ', &a[xa++]), xb++;
        }
        k = e + fwd, ia = ea + fwd, ib = eb + fwd;
    }
    free(ops), free(a), free(b);
    luaL_pushresult(&buf);
    return 0;
}
