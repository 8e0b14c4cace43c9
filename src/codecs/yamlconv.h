/*
 * Data documents <-> Lua values, shared by the yaml and json modules and by
 * config.c.  The conventions live here so both codecs agree on them:
 *
 * - A JSON/YAML null is `json.null` (a light userdata NULL, the same value
 *   lua-cjson uses) inside arrays/sequences, where nil would make a hole;
 *   a null object/mapping value is omitted (so `if t.x then` is not fooled
 *   by a truthy sentinel); a null document is nil.
 * - Every decoded array/sequence carries the array metatable
 *   (dataconv_push_array_mt, exposed to Lua as json.array_mt), so an empty
 *   one encodes back as [] rather than {}.
 * - Encoders sort object keys (booleans, then numbers, then strings), so
 *   output is deterministic.
 *
 * The YAML conversion itself is implemented in mod_yaml.c.
 */
#ifndef RUNBOOK_YAMLCONV_H
#define RUNBOOK_YAMLCONV_H

#include <lua.h>
#include <stddef.h>

/* Decoders and encoders refuse to nest deeper than this (it also stops a
 * cyclic table from recursing forever). */
#define DATACONV_MAX_DEPTH 1000

/*
 * Parse the first YAML document of buf (libyaml document API: anchors and
 * aliases resolve to the same Lua table; `<<` merge keys are applied).
 * Plain scalars follow the YAML 1.2 core schema: null ~ "" -> null,
 * true/false (not yes/no) -> booleans, decimal/0x/0o integers -> Lua
 * integers (floats when out of range), floats, .inf/.nan; quoted scalars
 * are always strings; explicit !!int/!!float/!!bool/!!null tags are
 * honoured, quoted or not (!!str on a plain scalar is not: the document API
 * cannot tell it from no tag -- quote the scalar instead).  Mapping keys are
 * always strings, their text as written (200: ok gives t["200"], as JSON
 * would); a duplicate key is an error.
 *
 * On success pushes the value (nil for an empty or null document) and
 * returns 0.  On failure pushes nothing and returns -1 with
 * "name:line: problem" in err (line 1-based).  May raise only on memory
 * errors.
 */
int yamlconv_parse(lua_State *L, const char *buf, size_t len, const char *name, char *err,
                   size_t errlen);

/*
 * As yamlconv_parse, and also pushes (above the value) a line table for
 * validators that must name the line of a bad setting:
 *
 *     lines[t] = { line = N, keys = { [k] = N, ... } }
 *
 * for every table t the conversion produced (each once, even when aliased):
 * `line` is the 1-based line where t's mapping/sequence starts; `keys[k]` is
 * the line of mapping key k, or of sequence element k.  Keys whose value was
 * null (and so is absent from t) are listed too; keys brought in by a `<<`
 * merge carry the line of the `<<`.  On failure nothing is pushed.
 */
int yamlconv_parse_lines(lua_State *L, const char *buf, size_t len, const char *name, char *err,
                         size_t errlen);

/* ---- helpers shared by the encoders ------------------------------------- */

/* Push the metatable that marks a table as an array (created on first use,
 * kept in the registry). */
void dataconv_push_array_mt(lua_State *L);

/* Is the value at idx json.null (a light userdata NULL)? */
int dataconv_is_null(lua_State *L, int idx);

/*
 * How to encode the table at idx: returns 1 for an array of *len elements
 * (keys 1..len; holes encode as null), 0 for an object.  A table whose keys
 * are all positive integers is an array; an empty table is an array only if
 * it carries the array metatable.  An array with more holes than elements
 * and a highest index above 10 raises "who: excessively sparse array ...".
 */
int dataconv_table_shape(lua_State *L, int idx, lua_Integer *len, const char *who);

/* Push an array of the keys of the table at idx, sorted: false, true, then
 * numbers ascending, then strings bytewise.  Raises "who: ..." on keys of
 * other types. */
void dataconv_sorted_keys(lua_State *L, int idx, const char *who);

/* Format a float that reads back as the same double (shortest of %.15g,
 * %.16g, %.17g).  The caller handles inf and nan.  Returns buf. */
const char *dataconv_fmt_float(double d, char buf[40]);

/* Read the whole file at path into a Lua string on top of the stack; 0, or
 * -1 with errno and nothing pushed.  Safe against raises (the descriptor is
 * to-be-closed).  Implemented in mod_fs.c; used by yaml.load and config.c. */
int fs_push_file_contents(lua_State *L, const char *path);

/* A global `json` (decode, encode, null, array_mt) of plain functions, not
 * actions: for a Lua state without an engine (the scenario judge's). */
void json_open_plain(lua_State *L);

#endif
