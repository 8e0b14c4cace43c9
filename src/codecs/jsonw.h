/* A small JSON writer for the records we emit (audit rows, --output json
 * events).  Writing only: decoding JSON is lua-cjson's job. */
#ifndef RUNBOOK_JSONW_H
#define RUNBOOK_JSONW_H

#include <lua.h>
#include <stddef.h>

typedef struct jsonw {
    char *buf;
    size_t len, cap;
    int depth;
    unsigned char first[64]; /* per depth: no element written yet */
    int oom;
} jsonw;

void jw_init(jsonw *w);
void jw_free(jsonw *w);
void jw_reset(jsonw *w);
const char *jw_str_result(jsonw *w); /* NUL-terminated; "" after an allocation failure */

void jw_obj(jsonw *w);
void jw_obj_end(jsonw *w);
void jw_arr(jsonw *w);
void jw_arr_end(jsonw *w);
void jw_key(jsonw *w, const char *k);
void jw_string(jsonw *w, const char *s);
void jw_stringn(jsonw *w, const char *s, size_t n);
void jw_int(jsonw *w, long long v);
void jw_num(jsonw *w, double v);
void jw_bool(jsonw *w, int v);
void jw_null(jsonw *w);
void jw_raw(jsonw *w, const char *json); /* an already-encoded value */
/* The JSON escape of byte c (written into buf when it is \u00XX), or NULL
 * when c stands for itself; shared with json.encode. */
const char *jw_escape(unsigned char c, char buf[7]);
/* The escape for the text at s (n > 0 bytes left), or NULL to copy the *len
 * bytes there as they are (one byte, or a whole valid UTF-8 sequence).  A
 * byte that is not valid UTF-8 becomes \ufffd (U+FFFD, the replacement
 * character: the mark that something was there), so every JSON document we
 * write is valid UTF-8 that strict parsers accept. */
const char *jw_escape_at(const char *s, size_t n, size_t *len, char buf[7]);
/* The length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 for
 * a byte that is not valid UTF-8 there (RFC 3629: no overlongs, surrogates,
 * code points beyond U+10FFFF or cut sequences). */
size_t jw_utf8_len(const char *s, size_t n);

/* key + value shorthands; a NULL string writes nothing at all */
void jw_kstr(jsonw *w, const char *k, const char *s);
void jw_kint(jsonw *w, const char *k, long long v);
void jw_knum(jsonw *w, const char *k, double v);
void jw_kbool(jsonw *w, const char *k, int v);

/* The Lua value at idx, made safe for a record: strings pass through the
 * secret redaction, json.null is null, a value with __tostring is its
 * (redacted) text, other functions and userdata "<function>"/"<userdata>",
 * cycles "<cycle>", nesting is cut at depth 16, sequences become arrays and
 * other tables objects with sorted-as-found keys converted to strings. */
void jw_lua(jsonw *w, lua_State *L, int idx);

#endif
