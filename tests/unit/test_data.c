/*
 * Table-driven tests of the data modules: YAML -> Lua -> JSON conversion,
 * JSON round trips and encoder errors (mod_yaml.c, mod_json.c, yamlconv.h),
 * and runbook.yaml loading and the audit path precedence (config.c).  Each
 * row is { input, expect, expect_fail }: expect is the exact output,
 * expect_fail a substring of the error.  Prints "N passed, N failed".
 *
 * Built with -DDATA_STANDALONE_TEST it carries minimal fakes of the funnel's
 * API, so it links with only the data files and util.c.
 */
#include "config.h"
#include "runbook/runbook.h"
#include "yamlconv.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the codecs under test (their rows are in src/cli/modules.c) */
void mod_json_open(lua_State *L);
void mod_yaml_open(lua_State *L);

#ifdef DATA_STANDALONE_TEST
void rb_register(lua_State *L, const char *module, const rb_fn *fns)
{
    if (lua_getglobal(L, module) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setglobal(L, module);
    }
    for (const rb_fn *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->fn); /* no funnel: the effect itself */
        lua_setfield(L, -2, f->name);
    }
    lua_pop(L, 1);
}

void rb_action_set(lua_State *L, rb_action *a, const char *which, const char *fmt, ...)
{
    (void)L, (void)a, (void)which, (void)fmt;
}

void rb_quote_arg(luaL_Buffer *b, const char *s)
{
    luaL_addstring(b, s);
}

int rb_opt_bool(lua_State *L, int opts, const char *key, int dflt)
{
    if (!opts || !lua_istable(L, opts))
        return dflt;
    int t = lua_getfield(L, opts, key);
    int v = t == LUA_TNIL ? dflt : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}
#endif

/* the modules whose sections a config may have, as an engine's table says */
static void no_open(lua_State *L)
{
    (void)L;
}
static const rb_module MODULES[] = {{"notify", no_open, NULL, NULL},
                                    {"kubectl", no_open, NULL, NULL},
                                    {"docker", no_open, NULL, NULL},
                                    {NULL, NULL, NULL, NULL}};

static int passed, failed;

static void check(int ok, const char *what, const char *input, const char *got, const char *want)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s\n  input: %s\n  got:   %s\n  want:  %s\n", what, input ? input : "",
            got ? got : "(nothing)", want ? want : "(an error)");
}

typedef struct row {
    const char *input;
    const char *expect;      /* exact result, NULL when the row must fail */
    const char *expect_fail; /* substring of the error */
} row;

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    mod_json_open(L);
    mod_yaml_open(L);
    return L;
}

/* Run `return <expr>` with s bound to input; the string result or the error. */
static void run_rows(lua_State *L, const char *what, const char *chunk, const row *rows)
{
    for (const row *r = rows; r->input; r++) {
        int top = lua_gettop(L);
        if (luaL_loadstring(L, chunk) != LUA_OK) {
            check(0, what, chunk, lua_tostring(L, -1), "a chunk that compiles");
            lua_settop(L, top);
            continue;
        }
        lua_pushstring(L, r->input);
        int ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
        const char *got = lua_tostring(L, -1);
        if (r->expect)
            check(ok && got && strcmp(got, r->expect) == 0, what, r->input, got, r->expect);
        else
            check(!ok && got && strstr(got, r->expect_fail), what, r->input,
                  ok ? "(no error)" : got, r->expect_fail);
        lua_settop(L, top);
    }
}

/* ---- YAML -> Lua -> JSON ------------------------------------------------- */

static const row yaml_rows[] = {
    {"a: 1\nb: two\n", "{\"a\":1,\"b\":\"two\"}", NULL},
    /* scalars, YAML 1.2 core schema */
    {"[1, -2, +3, 0x1F, 0o17, 1.5, -1e3, 1_000]", "[1,-2,3,31,15,1.5,-1000,\"1_000\"]", NULL},
    {"[~, null, Null, '', true, False, yes, no, on, off]",
     "[null,null,null,\"\",true,false,\"yes\",\"no\",\"on\",\"off\"]", NULL},
    {"a: '1'\nb: \"2.5\"\nc: 3\nd: 'true'\ne: \"~\"\n",
     "{\"a\":\"1\",\"b\":\"2.5\",\"c\":3,\"d\":\"true\",\"e\":\"~\"}", NULL},
    {"d: 2024-01-02\nv: 1.10\nm: 0644\nip: 10.0.0.1\n",
     "{\"d\":\"2024-01-02\",\"ip\":\"10.0.0.1\",\"m\":644,\"v\":1.1}", NULL},
    {"n: 12345678901234567\nbig: 99999999999999999999\nneg: -9223372036854775808\n",
     "{\"big\":1e+20,\"n\":12345678901234567,\"neg\":-9223372036854775808}", NULL},
    {"a: !!int '12'\nb: !!float 1\nc: !!bool 'true'\nd: !!str text\n",
     "{\"a\":12,\"b\":1,\"c\":true,\"d\":\"text\"}", NULL},
    /* nesting */
    {"a:\n  b:\n    - x\n    - {c: d}\n  e: [[1], []]\n",
     "{\"a\":{\"b\":[\"x\",{\"c\":\"d\"}],\"e\":[[1],[]]}}", NULL},
    {"a: []\nb: {}\n", "{\"a\":[],\"b\":{}}", NULL},
    {"- - - deep\n", "[[[\"deep\"]]]", NULL},
    /* anchors, aliases, merges */
    {"base: &b {x: 1}\nother: *b\n", "{\"base\":{\"x\":1},\"other\":{\"x\":1}}", NULL},
    {"base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
     "{\"base\":{\"x\":1,\"y\":2},\"d\":{\"x\":1,\"y\":3}}", NULL},
    {"a: &a {p: 1}\nb: &b {p: 2, q: 2}\nc:\n  <<: [*a, *b]\n",
     "{\"a\":{\"p\":1},\"b\":{\"p\":2,\"q\":2},\"c\":{\"p\":1,\"q\":2}}", NULL},
    {"s: &s hello\nt: *s\n", "{\"s\":\"hello\",\"t\":\"hello\"}", NULL},
    /* nulls: kept in sequences, dropped from mappings */
    {"[1, ~, 3, null]", "[1,null,3,null]", NULL},
    {"a: ~\nb: 1\nc:\n", "{\"b\":1}", NULL},
    {"", "null", NULL},
    {"~", "null", NULL},
    {"# only a comment\n", "null", NULL},
    /* multi-line strings */
    {"s: |\n  line1\n  line2\n", "{\"s\":\"line1\\nline2\\n\"}", NULL},
    {"s: |-\n  keep\n   indent\n", "{\"s\":\"keep\\n indent\"}", NULL},
    {"f: >\n  folded\n  text\n", "{\"f\":\"folded text\\n\"}", NULL},
    {"p: plain\n  continued\n", "{\"p\":\"plain continued\"}", NULL},
    {"q: \"esc\\taped \\u00e9\"\n", "{\"q\":\"esc\\taped \xc3\xa9\"}", NULL},
    /* keys */
    {"200: ok\n404: missing\ntrue: 1\n1.5: x\n~: n\n",
     "{\"1.5\":\"x\",\"200\":\"ok\",\"404\":\"missing\",\"true\":1,\"~\":\"n\"}", NULL},
    {"1: a\n'1': b\n", NULL, "duplicate key '1' at line 2"},
    /* the first document only */
    {"a: 1\n---\nb: 2\n", "{\"a\":1}", NULL},
    {"--- \nx: y\n...\n", "{\"x\":\"y\"}", NULL},
    /* malformed, with the right line */
    {"a: b: c\n", NULL,
     "yaml.decode: mapping values are not allowed in this context at line 1, "
     "column 5"},
    {"a: [1, 2\nb: 3\n", NULL, "did not find expected ',' or ']' at line 2, column 2"},
    {"a:\n\tb: 1\n", NULL, "found character that cannot start any token at line 2, column 1"},
    {"a: 1\nb\nc: 2\n", NULL,
     "could not find expected ':' at line 3, column 1 (while scanning a simple key at line 2)"},
    {"a: *nope\n", NULL, "found undefined alias at line 1, column 4"},
    {"a: \"open\n", NULL, "found unexpected end of stream at line 2"},
    {"a: 1\nb: 2\na: 3\n", NULL, "yaml.decode: duplicate key 'a' at line 3, column 1"},
    {"? [a]\n: 1\n", NULL, "mapping keys must be scalars at line 1"},
    {"a: !!int abc\n", NULL, "invalid !!int value 'abc' at line 1, column 4"},
    {"a: \xff\n", NULL, "invalid leading UTF-8 octet at line 1, column 4"},
    {"m:\n  <<: 5\n", NULL, "a << merge takes a mapping or a list of mappings at line 2"},
    {NULL, NULL, NULL},
};

/* ---- JSON round trips ------------------------------------------------------ */

static const row json_rows[] = {
    {"{\"a\":[1,2,{\"b\":null}],\"c\":\"x/y\"}", "{\"a\":[1,2,{}],\"c\":\"x/y\"}", NULL},
    {"[]", "[]", NULL},
    {"{}", "{}", NULL},
    {" { \"a\" : [ ] , \"b\" : { } , \"c\" : [ [ ] ] } ", "{\"a\":[],\"b\":{},\"c\":[[]]}", NULL},
    {"[1,null,3]", "[1,null,3]", NULL},
    {"[true,false,null]", "[true,false,null]", NULL},
    {"null", "null", NULL},
    {"\"http:\\/\\/example.com\\/a\"", "\"http://example.com/a\"", NULL},
    {"\"\\u00e9\\n\\t\\\"\\\\\\u0001\"", "\"\xc3\xa9\\n\\t\\\"\\\\\\u0001\"", NULL},
    {"[1.5,1e2,0.1,-0,3.0]", "[1.5,100,0.1,0,3]", NULL},
    {"[9007199254740993,-9223372036854775808,9223372036854775807]",
     "[9007199254740993,-9223372036854775808,9223372036854775807]", NULL},
    {"{\"n\":123456789012345678}", "{\"n\":123456789012345678}", NULL},
    {"[12345678901234567890]", "[1.2345678901234567e+19]", NULL},
    {"{\"b\":1,\"a\":2,\"10\":3,\"9\":4}", "{\"10\":3,\"9\":4,\"a\":2,\"b\":1}", NULL},
    /* a string that starts with \u0000 turns the [] rewrite off: documented */
    {"[\"\\u0000a\",[]]", "[\"\\u0000a\",{}]", NULL},
    /* malformed: positions are the original text's */
    {"", NULL, "json.decode: expected value but found end of input at character 1"},
    {"{\"a\":}", NULL, "json.decode: expected value but found '}' at character 6"},
    {"[1,2", NULL,
     "json.decode: expected comma or array end but found end of input at character 5"},
    {"[[], x]", NULL, "json.decode: expected value but found invalid token at character 6"},
    {"[[], 12345678901234567890 x]", NULL,
     "expected comma or array end but found invalid token at character 27"},
    {"{12345678901234567890: 1}", NULL,
     "expected object key string but found number at character 2"},
    {"{[]: 1}", NULL, "expected object key string but found '[' at character 2"},
    {"[1] [2]", NULL, "expected the end but found '[' at character 5"},
    {"[NaN]", NULL, "json.decode: expected value but found invalid token at character 2"},
    {NULL, NULL, NULL},
};

/* ---- Lua-level properties: each chunk returns a string ---------------------- */

static const row lua_rows[] = {
    {"return math.type(json.decode('3'))", "integer", NULL},
    {"return math.type(json.decode('3.5'))", "float", NULL},
    {"return tostring(json.decode('null'))", "nil", NULL},
    {"return tostring(json.decode('[null]')[1] == json.null)", "true", NULL},
    {"return tostring(json.decode('{\"a\":null}').a)", "nil", NULL},
    {"return tostring(getmetatable(json.decode('[]')) == json.array_mt)", "true", NULL},
    {"return tostring(getmetatable(json.decode('[1]')) == json.array_mt)", "true", NULL},
    {"return tostring(getmetatable(json.decode('{}')))", "nil", NULL},
    {"return json.encode({1, nil, 3})", "[1,null,3]", NULL},
    {"return json.encode(setmetatable({}, json.array_mt))", "[]", NULL},
    {"return json.encode({})", "{}", NULL},
    {"return json.encode({json.null, n = json.null})", "{\"1\":null,\"n\":null}", NULL},
    {"return json.encode({[1.5] = 'x', [true and 2 or 0] = 'y'})", "{\"1.5\":\"x\",\"2\":\"y\"}",
     NULL},
    {"return json.encode({1, 2, 3.25, 2^53, -0.0, 1e300})", "[1,2,3.25,9007199254740992,-0,1e+300]",
     NULL},
    {"return json.encode('\\0<\\127>')", "\"\\u0000<\x7f>\"", NULL},
    {"return json.encode({b = {1, 2}, a = 'x', e = setmetatable({}, json.array_mt), o = {}},"
     " {pretty = true})",
     "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ],\n  \"e\": [],\n  \"o\": {}\n}", NULL},
    {"return json.encode({1, {2}}, {pretty = true})", "[\n  1,\n  [\n    2\n  ]\n]", NULL},
    {"return json.encode(json.decode('{\"k\":[{\"x\":[]}],\"m\":{}}'), {pretty = false})",
     "{\"k\":[{\"x\":[]}],\"m\":{}}", NULL},
    {"return json.encode(function() end)", NULL, "json.encode: cannot encode a function"},
    {"return json.encode({f = print})", NULL, "json.encode: cannot encode a function"},
    {"return json.encode(0/0)", NULL, "json.encode: cannot encode NaN"},
    {"return json.encode({math.huge})", NULL, "json.encode: cannot encode infinity"},
    {"local t = {} t.t = t return json.encode(t)", NULL, "json.encode: nesting deeper than 1000"},
    {"return json.encode({[1] = 1, [100] = 2})", NULL,
     "json.encode: excessively sparse array (2 elements, highest index 100)"},
    {"return json.encode({[{}] = 1})", NULL,
     "json.encode: cannot encode a table key of type table"},
    {"return json.encode({[true] = 1})", NULL,
     "json.encode: cannot encode a table key of type "
     "boolean"},
    {"return json.encode(1, 'pretty')", NULL,
     "json.encode: argument 2 (opts) must be an options table, got string"},
    {"return json.encode(1, { prety = true })", NULL,
     "unknown option 'prety' for json.encode (did you mean 'pretty'?)"},
    {"return json.decode({})", NULL, "json.decode: argument 1 (text) must be a string, got table"},
    {"return json.decode(string.rep('[', 1001) .. '1' .. string.rep(']', 1001))", NULL,
     "json.decode: found too many nested data structures (1001)"},
    /* yaml types */
    {"return math.type(yaml.decode('1.0'))", "float", NULL},
    {"return math.type(yaml.decode('!!float 1'))", "float", NULL},
    {"return math.type(yaml.decode('7'))", "integer", NULL},
    {"return tostring(yaml.decode('.inf') == math.huge and yaml.decode('-.Inf') == -math.huge)",
     "true", NULL},
    {"local n = yaml.decode('.nan') return tostring(n ~= n)", "true", NULL},
    {"return yaml.decode(\"'123'\")", "123", NULL},
    {"local t = yaml.decode('a: &x [1]\\nb: *x') return tostring(t.a == t.b)", "true", NULL},
    {"local t = yaml.decode('[a, ~]') return tostring(t[2] == json.null and #t == 2)", "true",
     NULL},
    {"return tostring(yaml.null == json.null)", "true", NULL},
    {"return tostring(getmetatable(yaml.decode('[]')) == json.array_mt)", "true", NULL},
    /* yaml.encode: exact shapes */
    {"return yaml.encode({b = {1, 2}, a = 'x'})", "a: x\nb:\n- 1\n- 2\n", NULL},
    {"return yaml.encode({})", "{}\n", NULL},
    {"return yaml.encode(setmetatable({}, json.array_mt))", "[]\n", NULL},
    {"return yaml.encode({s = 'yes', n = '0644', e = '', t = 'true', v = '1.0.0', m = '<<'})",
     "e: ''\nm: '<<'\n'n': '0644'\ns: 'yes'\nt: 'true'\nv: '1.0.0'\n", NULL},
    {"return yaml.encode({x = 1.0, y = 1e20, z = -0.5, w = 3})",
     "w: 3\nx: 1.0\n'y': 1.0e+20\nz: -0.5\n", NULL},
    {"return yaml.encode({script = 'a\\nb\\n'})", "script: |\n  a\n  b\n", NULL},
    {"return yaml.encode({1, json.null, true})", "- 1\n- null\n- true\n", NULL},
    {"return yaml.encode({[200] = 'ok', ['200'] = 's'})", "200: ok\n'200': s\n", NULL},
    {"return yaml.encode(print)", NULL, "yaml.encode: cannot encode a function"},
    {"return yaml.encode('\\255')", NULL, "yaml.encode: string is not valid UTF-8"},
    {"local t = {} t[1] = t return yaml.encode(t)", NULL, "yaml.encode: nesting deeper than 1000"},
    /* yaml.encode -> yaml.decode round trip, compared through json */
    {"local v = {a = {1, 2, 3}, b = 'yes', c = '123', d = '', e = 'multi\\nline\\n',"
     " f = 1.5, g = true, h = {1, json.null, 3}, i = '0644', j = '<<', k = {},"
     " l = setmetatable({}, json.array_mt), m = '  leading', n = 'a: b', o = '#hash',"
     " p = 1e20, q = -0.5, r = '\\195\\169t\\195\\169', s = 'trailing  ', t = '- dash',"
     " u = '@at', w = 'x\\ty', z = {deep = {deeper = {'x'}}}, [7] = 'seven', [false] = 0 }"
     " local w = yaml.decode(yaml.encode(v)) v[false] = nil w['false'] = nil"
     " return tostring(json.encode(w) == json.encode(v)) .. ' ' .. json.encode(w)",
     "true {\"7\":\"seven\",\"a\":[1,2,3],\"b\":\"yes\",\"c\":\"123\",\"d\":\"\",\"e\":"
     "\"multi\\nline\\n\",\"f\":1.5,\"g\":true,\"h\":[1,null,3],\"i\":\"0644\",\"j\":\"<<\","
     "\"k\":{},\"l\":[],\"m\":\"  leading\",\"n\":\"a: b\",\"o\":\"#hash\",\"p\":1e+20,\"q\":-0.5,"
     "\"r\":\"\xc3\xa9t\xc3\xa9\",\"s\":\"trailing  \",\"t\":\"- dash\",\"u\":\"@at\",\"w\":"
     "\"x\\ty\",\"z\":{\"deep\":{\"deeper\":[\"x\"]}}}",
     NULL},
    {NULL, NULL, NULL},
};

/* ---- yamlconv C API -------------------------------------------------------- */

static int geti(lua_State *L, const char *expr)
{
    char chunk[512];
    snprintf(chunk, sizeof chunk, "local v, lines = ... return %s", expr);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    luaL_loadstring(L, chunk);
    lua_insert(L, -3);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        fprintf(stderr, "geti %s: %s\n", expr, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    int v = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void test_yamlconv(lua_State *L)
{
    static const char doc[] = "a: 1\n"
                              "b:\n"
                              "  - x\n"
                              "  - y\n"
                              "c:\n"
                              "  d: 2\n"
                              "  e: ~\n"
                              "f: &f {g: 1}\n"
                              "h:\n"
                              "  <<: *f\n";
    char err[256] = "";
    int top = lua_gettop(L);
    int rc = yamlconv_parse_lines(L, doc, sizeof doc - 1, "lines.yaml", err, sizeof err);
    check(rc == 0 && lua_gettop(L) == top + 2, "yamlconv_parse_lines pushes 2", doc, err, "ok");
    if (rc == 0) {
        static const struct {
            const char *expr;
            int want;
        } cases[] = {
            {"lines[v].line", 1},
            {"lines[v].keys.a", 1},
            {"lines[v].keys.b", 2},
            {"lines[v].keys.c", 5},
            {"lines[v.b].line", 3},
            {"lines[v.b].keys[2]", 4},
            {"lines[v.c].keys.d", 6},
            {"lines[v.c].keys.e", 7},
            {"lines[v.f].line", 8},
            {"lines[v.h].keys.g", 10},
            {"v.h.g", 1},
            {"v.c.e == nil and 1", 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int got = geti(L, cases[i].expr);
            char g[32], w[32];
            snprintf(g, sizeof g, "%d", got);
            snprintf(w, sizeof w, "%d", cases[i].want);
            check(got == cases[i].want, "yamlconv lines", cases[i].expr, g, w);
        }
    }
    lua_settop(L, top);

    rc = yamlconv_parse(L, "x: [1,\n  2\n y: 3\n", 17, "bad.yaml", err, sizeof err);
    check(rc == -1 && lua_gettop(L) == top && strncmp(err, "bad.yaml:3: ", 12) == 0,
          "yamlconv_parse error", "x: [1,\\n  2\\n y: 3", err, "bad.yaml:3: ...");
    rc = yamlconv_parse(L, "", 0, "empty.yaml", err, sizeof err);
    check(rc == 0 && lua_isnil(L, -1), "yamlconv_parse empty", "", rc ? err : "", "nil");
    lua_settop(L, top);
    rc = yamlconv_parse(L, "[1, 2]", 6, "x", err, sizeof err);
    check(rc == 0 && lua_istable(L, -1) && lua_rawlen(L, -1) == 2, "yamlconv_parse value", "[1, 2]",
          rc ? err : "", "a table");
    lua_settop(L, top);
}

/* ---- config.c ---------------------------------------------------------------- */

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
}

/* config rows: expect is "audit=<path or off or unset> secrets=<path>" with
 * @ standing for the temporary directory */
static const row config_rows[] = {
    {"audit: ~/audit.db\n"
     "secrets_file: secrets.yaml\n"
     "params: { api: \"http://localhost:8000\", list: [a, 1, true] }\n"
     "readonly_commands:\n"
     "  - [kafka-consumer-groups, --describe]\n"
     "  - [redis-cli, INFO]\n"
     "  - [sleep, 5]\n"
     "notify:\n"
     "  slack:     { webhook_secret: SLACK_WEBHOOK }\n"
     "  email:     { smtp: \"smtp://mail.internal:587\", from: \"oncall@example.com\" }\n"
     "kubectl: { namespace: default }\n"
     "environments:\n"
     "  prod:\n"
     "    params:  { api: \"https://calendar.example.com\" }\n"
     "    kubectl: { context: prod, namespace: carbon-ingestion }\n"
     "    docker:  { host: \"unix:///var/run/docker.sock\" }\n"
     "    audit: false\n"
     "  staging: {}\n",
     "audit=/home/tester/audit.db secrets=@/secrets.yaml", NULL},
    {"audit: false\n", "audit=off secrets=", NULL},
    {"audit: logs/audit.db\nsecrets_file: /etc/runbook/secrets.yaml\n",
     "audit=@/logs/audit.db secrets=/etc/runbook/secrets.yaml", NULL},
    {"", "audit=unset secrets=", NULL},
    {"# nothing but a comment\n", "audit=unset secrets=", NULL},
    {"audit: true\n", NULL, "runbook.yaml:1: audit must be a path or false"},
    {"params:\n  a: 1\n  b: {x: 1}\n", NULL,
     "runbook.yaml:3: params.b must be a scalar or a list of scalars"},
    {"params: [a, b]\n", NULL, "runbook.yaml:1: params must be a mapping of name: value"},
    {"params:\n  l: [1, [2]]\n", NULL, "runbook.yaml:2: params.l must be a scalar or a list"},
    {"readonly_commands:\n  - [redis-cli, INFO]\n  - kafka\n", NULL,
     "runbook.yaml:3: readonly_commands[2] must be a non-empty list of strings"},
    {"readonly_commands:\n  - [redis-cli, {a: b}]\n", NULL,
     "runbook.yaml:2: readonly_commands[1][2] must be a string"},
    {"readonly_commands: {a: b}\n", NULL,
     "runbook.yaml:1: readonly_commands must be a list of commands"},
    {"notify: [a]\n", NULL, "runbook.yaml:1: notify must be a mapping"},
    {"secrets_file: 3\n", NULL, "runbook.yaml:1: secrets_file must be a path"},
    {"environments:\n  prod:\n    params: {api: x}\n    kubctl: {context: prod}\n", NULL,
     "runbook.yaml:4: environments.prod: unknown key 'kubctl' (valid keys: params, "
     "readonly_commands, "
     "audit, audit_wait, require_plan, approvals, or a module's section: notify, kubectl, "
     "docker)"},
    {"environments:\n  prod:\n    require_plan: yes please\n", NULL,
     "runbook.yaml:3: require_plan must be true or false"},
    {"environments:\n  prod:\n    approvals: -1\n", NULL,
     "runbook.yaml:3: approvals must be a whole number of approvals from 0 to 100"},
    {"environments:\n  prod:\n    approvals: 1.5\n", NULL,
     "runbook.yaml:3: approvals must be a whole number"},
    {"environments:\n  prod: yes\n", NULL, "runbook.yaml:2: environments.prod must be a mapping"},
    {"environments:\n  prod:\n    params:\n      x: {y: 1}\n", NULL,
     "runbook.yaml:4: environments.prod.params.x must be a scalar or a list of scalars"},
    {"environments:\n  prod:\n    audit: 12\n", NULL,
     "runbook.yaml:3: audit must be a path or false"},
    {"environments: [prod]\n", NULL, "runbook.yaml:1: environments must be a mapping"},
    {"audit_wait: soon\n", NULL, "runbook.yaml:1: audit_wait must be a duration"},
    {"environments:\n  prod:\n    audit_wait: [1]\n", NULL,
     "runbook.yaml:3: audit_wait must be a duration"},
    {"audit: x.db\nfoo: 1\n", NULL,
     "runbook.yaml:2: unknown key 'foo' (valid keys: audit, audit_wait, secrets_file, params, "
     "readonly_commands, environments, operator_name, or a module's section: notify, kubectl, "
     "docker)"},
    {"operator_name: [alice]\n", NULL, "runbook.yaml:1: operator_name must be a name"},
    {"operator_name: \"a\\nb\"\n", NULL, "runbook.yaml:1: operator_name must be a name"},
    {"zzz: 1\naudit: true\n", NULL, "runbook.yaml:1: unknown key 'zzz'"},
    {"audit: x\nparams:\n  a: [1, 2\n", NULL, "runbook.yaml:4: did not find expected ',' or ']'"},
    {"audit: a\naudit: b\n", NULL, "runbook.yaml:2: duplicate key 'audit'"},
    {"- a\n- b\n", NULL, "runbook.yaml:1: the config must be a mapping of settings"},
    {"just a string\n", NULL, "runbook.yaml:1: the config must be a mapping of settings"},
    {NULL, NULL, NULL},
};

static void describe_config(const rb_config *c, char *out, size_t n)
{
    const char *audit = !c->audit_set ? "unset" : c->audit_off ? "off" : c->audit_path;
    char buf[sizeof c->audit_path + sizeof c->secrets_file + 32];
    snprintf(buf, sizeof buf, "audit=%s secrets=%s", audit, c->secrets_file);
    /* the temporary directory reads as @ */
    size_t tl = strlen(tmpdir), o = 0;
    for (const char *p = buf; *p && o + 1 < n;) {
        if (strncmp(p, tmpdir, tl) == 0) {
            out[o++] = '@';
            p += tl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static void test_config_rows(lua_State *L)
{
    char path[512];
    snprintf(path, sizeof path, "%s/runbook.yaml", tmpdir);
    for (const row *r = config_rows; r->input; r++) {
        write_file("runbook.yaml", r->input);
        /* with a Lua state and without: the same checks, the same fields */
        for (int with_lua = 0; with_lua <= 1; with_lua++) {
            rb_config c;
            char err[1024] = "", got[1024] = "";
            int top = lua_gettop(L);
            int rc = config_load(&c, with_lua ? L : NULL, MODULES, path, 1, err, sizeof err);
            const char *what = with_lua ? "config_load(L)" : "config_load(NULL)";
            check(lua_gettop(L) == top, what, r->input, "stack changed", "balanced stack");
            if (rc == 0)
                describe_config(&c, got, sizeof got);
            if (r->expect)
                check(rc == 0 && strcmp(got, r->expect) == 0, what, r->input, rc ? err : got,
                      r->expect);
            else
                check(rc != 0 && strstr(err, r->expect_fail) &&
                          strncmp(err, tmpdir, strlen(tmpdir)) == 0,
                      what, r->input, rc ? err : got, r->expect_fail);
            check(with_lua || c.ref == LUA_NOREF, what, r->input, "a ref without a state",
                  "LUA_NOREF");
            if (rc == 0 && with_lua)
                luaL_unref(L, LUA_REGISTRYINDEX, c.ref);
        }
    }
}

static void test_config_push(lua_State *L)
{
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/runbook.yaml", tmpdir);
    write_file("runbook.yaml", config_rows[0].input);
    rb_config c;
    int rc = config_load(&c, L, MODULES, path, 1, err, sizeof err);
    check(rc == 0 && c.ref != LUA_NOREF, "config_load for push", path, err, "ok");
    if (rc != 0)
        return;
    static const struct {
        const char *env, *key, *expr, *want;
    } cases[] = {
        {NULL, "params", "return v.api", "http://localhost:8000"},
        {NULL, "params", "return v.list[2] .. tostring(v.list[3])", "1true"},
        {"prod", "params", "return v.api", "https://calendar.example.com"},
        {"prod", "kubectl", "return v.context .. '/' .. v.namespace", "prod/carbon-ingestion"},
        {"prod", "audit", "return tostring(v)", "false"},
        {"staging", "params", "return tostring(v)", "nil"},
        {"nope", "params", "return tostring(v)", "nil"},
        {"prod", NULL, "return type(v)", "table"},
        {"nope", NULL, "return tostring(v)", "nil"},
        {NULL, "readonly_commands", "return v[3][2] .. math.type(5)", "5integer"},
        {NULL, "readonly_commands", "return math.type(v[3][2]) or type(v[3][2])", "string"},
        {NULL, "notify", "return v.email.from", "oncall@example.com"},
        {NULL, "nothing", "return tostring(v)", "nil"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int top = lua_gettop(L);
        config_push(&c, L, cases[i].env, cases[i].key);
        check(lua_gettop(L) == top + 1, "config_push pushes one", cases[i].expr, "", "");
        luaL_loadstring(L, cases[i].expr);
        lua_insert(L, -2);
        lua_pushvalue(L, -1);
        lua_setglobal(L, "v");
        lua_pcall(L, 1, 1, 0);
        const char *got = lua_tostring(L, -1); /* the result or the error */
        check(got && strcmp(got, cases[i].want) == 0, "config_push", cases[i].expr, got,
              cases[i].want);
        lua_settop(L, top);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, c.ref);

    /* no config at all */
    rb_config none;
    int top = lua_gettop(L);
    config_push(NULL, L, NULL, "params");
    check(lua_isnil(L, -1), "config_push(NULL)", "", "", "nil");
    lua_settop(L, top);

    /* --config FILE must exist; ./runbook.yaml may be missing */
    rc = config_load(&none, L, MODULES, "/nonexistent/runbook.yaml", 1, err, sizeof err);
    check(rc == -1 && strstr(err, "/nonexistent/runbook.yaml: No such file or directory"),
          "explicit config missing", "/nonexistent/runbook.yaml", err, "No such file");
    char cwd[4096];
    char empty[512];
    snprintf(empty, sizeof empty, "%s/empty", tmpdir);
    mkdir(empty, 0700);
    if (getcwd(cwd, sizeof cwd) && chdir(empty) == 0) {
        rc = config_load(&none, L, MODULES, NULL, 0, err, sizeof err);
        check(rc == 0 && none.path[0] == '\0' && none.ref == LUA_NOREF && !none.audit_set,
              "implicit config missing", "./runbook.yaml", err, "no config");
        write_file("empty/runbook.yaml", "audit: here.db\n");
        rc = config_load(&none, L, MODULES, NULL, 0, err, sizeof err);
        check(rc == 0 && strcmp(none.audit_path, "here.db") == 0, "implicit config", "audit",
              rc ? err : none.audit_path, "here.db");
        if (rc == 0)
            luaL_unref(L, LUA_REGISTRYINDEX, none.ref);
        if (chdir(cwd) != 0)
            perror("chdir");
    }
}

/* ---- config_audit_path precedence ----------------------------------------------- */

static void test_audit_path(void)
{
    static const struct {
        int no_audit;
        const char *flag, *env_audit, *config; /* config: NULL none, "off", or a path */
        const char *xdg, *home, *want;         /* want NULL: auditing off */
    } cases[] = {
        {1, "/flag.db", "/env.db", "/cfg.db", "/xdg", "/home/u", NULL},
        {0, "/flag.db", "/env.db", "/cfg.db", "/xdg", "/home/u", "/flag.db"},
        {0, "~/flag.db", NULL, NULL, NULL, "/home/u", "/home/u/flag.db"},
        {0, NULL, "/env.db", "/cfg.db", "/xdg", "/home/u", "/env.db"},
        {0, NULL, "~/env.db", NULL, NULL, "/home/u", "/home/u/env.db"},
        {0, NULL, "", "/cfg.db", "/xdg", "/home/u", "/cfg.db"},
        {0, NULL, NULL, "/cfg.db", "/xdg", "/home/u", "/cfg.db"},
        {0, NULL, NULL, "off", "/xdg", "/home/u", NULL},
        {0, NULL, "/env.db", "off", "/xdg", "/home/u", "/env.db"},
        {0, NULL, NULL, NULL, "/xdg", "/home/u", "/xdg/runbook/audit.db"},
        {0, NULL, NULL, NULL, "relative/xdg", "/home/u", "/home/u/.local/state/runbook/audit.db"},
        {0, NULL, NULL, NULL, "", "/home/u", "/home/u/.local/state/runbook/audit.db"},
        {0, NULL, NULL, NULL, NULL, "/home/u", "/home/u/.local/state/runbook/audit.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb_config c;
        memset(&c, 0, sizeof c);
        c.ref = LUA_NOREF;
        if (cases[i].config) {
            c.audit_set = 1;
            c.audit_off = strcmp(cases[i].config, "off") == 0;
            if (!c.audit_off)
                snprintf(c.audit_path, sizeof c.audit_path, "%s", cases[i].config);
        }
        if (cases[i].env_audit)
            setenv("RUNBOOK_AUDIT", cases[i].env_audit, 1);
        else
            unsetenv("RUNBOOK_AUDIT");
        if (cases[i].xdg)
            setenv("XDG_STATE_HOME", cases[i].xdg, 1);
        else
            unsetenv("XDG_STATE_HOME");
        setenv("HOME", cases[i].home, 1);
        char buf[4096], desc[128];
        const char *got = config_audit_path(&c, cases[i].flag, cases[i].no_audit, buf, sizeof buf);
        snprintf(desc, sizeof desc, "case %zu", i + 1);
        int ok = cases[i].want ? got && strcmp(got, cases[i].want) == 0 : got == NULL;
        check(ok, "config_audit_path", desc, got ? got : "NULL (off)",
              cases[i].want ? cases[i].want : "NULL (off)");
    }
    unsetenv("RUNBOOK_AUDIT");
    unsetenv("XDG_STATE_HOME");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/rb-test-data-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    setenv("HOME", "/home/tester", 1);
    lua_State *L = new_state();
    run_rows(L, "yaml->json", "return json.encode(yaml.decode(...))", yaml_rows);
    run_rows(L, "json round trip", "return json.encode(json.decode(...))", json_rows);
    run_rows(L, "lua", "return load(...)()", lua_rows);
    test_yamlconv(L);
    test_config_rows(L);
    test_config_push(L);
    test_audit_path();
    check(lua_gettop(L) == 0, "stack balanced at the end", "", "", "0");
    lua_close(L);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
