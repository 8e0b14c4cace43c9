/* Small helpers: clocks and timestamps, run ids, sha256 (nettle), files. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <nettle/sha2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double rb_wallclock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void rb_time_rfc3339(char out[32], double t)
{
    if (t < 0)
        t = rb_wallclock();
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* strftime keeps the compiler's format-truncation analysis quiet */
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", base, ms % 1000);
}

double rb_time_parse(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    int n = sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms);
    if (n < 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

double rb_parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end), unit = 0;
    if (end == s || !(v >= 0)) /* NaN too */
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        unit = 1;
    else if (strcmp(end, "m") == 0)
        unit = 60;
    else if (strcmp(end, "h") == 0)
        unit = 3600;
    else if (strcmp(end, "d") == 0)
        unit = 86400;
    else if (strcmp(end, "w") == 0)
        unit = 7 * 86400;
    /* "inf" and "1e999" read as infinity: no duration, but a typo */
    return unit > 0 && isfinite(v * unit) ? v * unit : -1;
}

/* The form of the ids an audit log allocates (audit_append_run), for runs
 * without one: the time to the millisecond, then three random digits where
 * the log counts. */
void rb_new_run_id(char out[40])
{
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)getpid() ^ (unsigned)clock();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, 40, "%.15s-%03ld%03u", base, now.tv_nsec / 1000000, r % 1000);
}

void rb_sha256_hex(const void *data, size_t len, char out[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, sizeof digest, digest);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

int rb_mkdir_parents(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

const char *rb_hostname(void)
{
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0)
        strcpy(host, "unknown");
    return host;
}

/* The account of the real uid, from the passwd database alone: USER and
 * LOGNAME are whatever the caller set, so they never name the operator.  A
 * uid without a passwd entry (a container's arbitrary uid) is "uid 1234". */
const char *rb_username(void)
{
    static char name[64];
    if (!name[0]) {
        uid_t uid = getuid();
        struct passwd *pw = getpwuid(uid);
        if (pw && pw->pw_name && *pw->pw_name)
            snprintf(name, sizeof name, "%s", pw->pw_name);
        else
            snprintf(name, sizeof name, "uid %lu", (unsigned long)uid);
    }
    return name;
}

unsigned long long rb_pid_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* the command name may contain spaces and parentheses: count from the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    /* p is at the space before field 3 (state); walk to the one before 22 */
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

char *rb_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = rb_read_stream(f, len);
    int err = errno;
    fclose(f);
    errno = err;
    return buf;
}

char *rb_read_stream(FILE *f, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f) ? errno : 0;
    if (!buf)
        return NULL;
    if (err) {
        free(buf);
        errno = err;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

const char *rb_expand_home(const char *path, char *buf, size_t n)
{
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        const char *home = getenv("HOME");
        snprintf(buf, n, "%s%s", home ? home : "", path + 1);
    } else {
        snprintf(buf, n, "%s", path);
    }
    return buf;
}

size_t rb_parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return 0;
    double unit = 1;
    switch (*end) {
    case 'k':
    case 'K':
        unit = 1024.0, end++;
        break;
    case 'm':
    case 'M':
        unit = 1024.0 * 1024, end++;
        break;
    case 'g':
    case 'G':
        unit = 1024.0 * 1024 * 1024, end++;
        break;
    }
    if (*end == 'i' && unit > 1)
        end++;
    if ((*end == 'B' || *end == 'b') && end[1] == '\0')
        end++;
    if (*end || v * unit >= 1e18)
        return 0;
    return (size_t)(v * unit);
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int remove_below(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return f->level > 0 ? remove_one(p, st, flag, f) : 0;
}

int rb_remove_tree(const char *path, int keep_root)
{
    return nftw(path, keep_root ? remove_below : remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

size_t rb_lua_source(char *src, size_t len)
{
    size_t bom = len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    if (len - bom >= 2 && src[bom] == '#' && src[bom + 1] == '!')
        src[bom] = src[bom + 1] = '-';
    return bom;
}

/* Folding case: `runbook Run` and `--Dry-Run` are the same typo as any other. */
static int same_letter(char a, char b)
{
    return tolower((unsigned char)a) == tolower((unsigned char)b);
}

int rb_edit_distance(const char *a, const char *b, int max)
{
    size_t la = strlen(a), lb = strlen(b);
    /* words longer than this are no typo of each other worth the memory */
    if (la > 256 || lb > 256 || (la > lb ? la - lb : lb - la) > (size_t)max)
        return max + 1;
    /* three rows of the matrix: the swap looks two rows back */
    int rows[3][257];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        int best = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            int cost = same_letter(a[i - 1], b[j - 1]) ? 0 : 1;
            int d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d)
                d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && same_letter(a[i - 1], b[j - 2]) &&
                same_letter(a[i - 2], b[j - 1]) && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
            if (d < best)
                best = d;
        }
        if (best > max)
            return max + 1;
        int *t = pp;
        pp = prev, prev = cur, cur = t;
    }
    return prev[lb] > max ? max + 1 : prev[lb];
}

const char *rb_did_you_mean(const char *word, const char *const *candidates, int n)
{
    if (!word || !*word)
        return NULL;
    int len = (int)strlen(word);
    int max = len - 1 < 2 ? len - 1 : 2;
    const char *best = NULL;
    int best_d = max + 1;
    for (int i = 0; n < 0 ? candidates[i] != NULL : i < n; i++) {
        if (!candidates[i])
            continue;
        int d = rb_edit_distance(word, candidates[i], max);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (best || len < 3)
        return best;
    /* an abbreviation: `prev` for `previous`, when it begins only one */
    for (int i = 0; n < 0 ? candidates[i] != NULL : i < n; i++) {
        if (!candidates[i] || strncasecmp(candidates[i], word, (size_t)len) != 0)
            continue;
        if (best)
            return NULL;
        best = candidates[i];
    }
    return best;
}

const char *rb_flag_hint(const char *arg, const char *const *names, char *buf, size_t n)
{
    buf[0] = '\0';
    if (strncmp(arg, "--", 2) != 0)
        return buf;
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
    const char *near = rb_did_you_mean(word, names, -1);
    if (near)
        snprintf(buf, n, " (did you mean '--%s'?)", near);
    return buf;
}

const char *rb_getopt_hint(const char *arg, const struct option *opts, char *buf, size_t n)
{
    const char *names[128];
    size_t k = 0;
    for (; opts[k].name && k < sizeof names / sizeof *names - 1; k++)
        names[k] = opts[k].name;
    names[k] = NULL;
    return rb_flag_hint(arg, names, buf, n);
}
