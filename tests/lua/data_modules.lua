-- json, yaml and fs as a runbook sees them (through the funnel, live).
-- Run by ctest from tests/lua as `runbook run data_modules.lua --no-audit --yes`.
-- The fs steps work in a fresh directory under $TMPDIR and remove it at the end.
runbook { name = "tests/data-modules", title = "json, yaml and fs" }

local function checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "', but the call succeeded")
  err = tostring(err)
  assert(err:find(pattern), "error '" .. err .. "' does not match '" .. pattern .. "'")
  return err
end

-- plain find: no magic characters in paths and messages
local function has(s, sub)
  return s:find(sub, 1, true) ~= nil
end

local function checkerr_plain(text, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error containing '" .. text .. "', but the call succeeded")
  err = tostring(err)
  assert(has(err, text), "error '" .. err .. "' does not contain '" .. text .. "'")
  return err
end

step("json round trip", function()
  assert(json.decode('{"a":[1,2]}').a[2] == 2)
  local doc = '{"items":[],"meta":{},"n":3,"big":9007199254740993,"url":"http://x/y"}'
  assert(json.encode(json.decode(doc)) ==
         '{"big":9007199254740993,"items":[],"meta":{},"n":3,"url":"http://x/y"}')
  assert(math.type(json.decode("3")) == "integer")
  assert(math.type(json.decode("3.5")) == "float")
  assert(tostring(json.decode("[1]")[1]) == "1", "integers print without .0")
  local t = json.decode('[1,null,3]')
  assert(#t == 3 and t[2] == json.null)
  assert(json.encode(t) == "[1,null,3]")
  assert(json.decode('{"gone":null}').gone == nil, "a null member is dropped")
  assert(json.decode("null") == nil)
  assert(getmetatable(json.decode("[]")) == json.array_mt)
  assert(json.encode(setmetatable({}, json.array_mt)) == "[]")
  assert(json.encode({}) == "{}")
  assert(json.encode({ b = 1, a = { x = true } }) == '{"a":{"x":true},"b":1}', "keys sorted")
  assert(json.encode({ a = { 1, 2 } }, { pretty = true }) == '{\n  "a": [\n    1,\n    2\n  ]\n}')
  assert(json.encode("tab\there \"q\" \\") == '"tab\\there \\"q\\" \\\\"')
  assert(json.encode({ patch = { annotations = { x = json.null } } }) ==
         '{"patch":{"annotations":{"x":null}}}')
end)

step("json errors", function()
  checkerr("json%.decode: expected value but found end of input at character 1", json.decode, "")
  checkerr("json%.decode: .* at character 6", json.decode, '{"a":}')
  checkerr("json%.encode: cannot encode a function", json.encode, { f = print })
  checkerr("json%.encode: cannot encode NaN", json.encode, 0 / 0)
  checkerr("json%.encode: excessively sparse array", json.encode, { [1] = 1, [1000] = 2 })
  local cyclic = {}
  cyclic.self = cyclic
  checkerr("json%.encode: nesting deeper than", json.encode, cyclic)
  checkerr("json%.decode: argument 1 %(text%) must be a string, got table", json.decode, {})
end)

step("yaml decode", function()
  local t = yaml.decode([[
name: calendar-api
replicas: 3
ratio: 0.25
enabled: true
legacy: yes
version: "1.10"
empty:
list: [a, ~, c]
nested:
  env: &env { LOG: debug }
  other: *env
merged:
  <<: *env
  EXTRA: 1
script: |
  echo one
  echo two
]])
  assert(t.name == "calendar-api")
  assert(t.replicas == 3 and math.type(t.replicas) == "integer")
  assert(t.ratio == 0.25)
  assert(t.enabled == true)
  assert(t.legacy == "yes", "YAML 1.2: yes is a string")
  assert(t.version == "1.10", "quoted scalars stay strings")
  assert(t.empty == nil, "a null mapping value is omitted")
  assert(#t.list == 3 and t.list[2] == json.null and t.list[3] == "c")
  assert(t.nested.env == t.nested.other, "an alias is the same table")
  assert(t.merged.LOG == "debug" and t.merged.EXTRA == 1)
  assert(t.script == "echo one\necho two\n")
  assert(yaml.decode("") == nil)
  assert(yaml.decode("200: ok")["200"] == "ok", "keys are strings")
  assert(json.encode(yaml.decode("a: []\nb: {}")) == '{"a":[],"b":{}}')
  assert(yaml.null == json.null)
end)

step("yaml encode", function()
  assert(yaml.encode({ b = { 1, 2 }, a = "x" }) == "a: x\nb:\n- 1\n- 2\n")
  assert(yaml.encode({ v = "0644", t = "true", e = "" }) == "e: ''\nt: 'true'\nv: '0644'\n")
  local v = { list = { 1, json.null, "three" }, map = { k = "v" }, f = 1.5, s = "multi\nline\n",
              none = setmetatable({}, json.array_mt), obj = {} }
  assert(json.encode(yaml.decode(yaml.encode(v))) == json.encode(v), "yaml round trip")
  assert(math.type(yaml.decode(yaml.encode(2.0))) == "float")
end)

step("yaml errors", function()
  checkerr("yaml%.decode: mapping values are not allowed in this context at line 1, column 5",
           yaml.decode, "a: b: c")
  checkerr("yaml%.decode: duplicate key 'a' at line 2, column 1", yaml.decode, "a: 1\na: 2\n")
  checkerr("yaml%.decode: found undefined alias at line 1", yaml.decode, "a: *nope")
  checkerr("yaml%.encode: cannot encode a function", yaml.encode, { f = print })
end)

local dir -- the temporary directory of the fs steps

step("fs: a temporary directory", function()
  local base = env("TMPDIR", "/tmp")
  if base == "" then base = "/tmp" end
  dir = string.format("%s/runbook-data-modules-%d-%d", base, math.floor(now() * 1000),
                      math.random(1, 1000000))
  assert(not fs.exists(dir))
  assert(fs.mkdir(dir .. "/a/b", { parents = true }) == true)
  assert(fs.mkdir(dir .. "/a/b", { parents = true }), "mkdir -p of an existing directory is fine")
  assert(fs.exists(dir .. "/a/b"))
  assert(fs.stat(dir).type == "directory")
  checkerr_plain("fs.mkdir " .. dir .. "/a: File exists", fs.mkdir, dir .. "/a")
  checkerr_plain("fs.mkdir " .. dir .. "/x/y: No such file or directory", fs.mkdir, dir .. "/x/y")
end)

step("fs: write, read, append, stat", function()
  local p = dir .. "/notes.txt"
  assert(fs.write(p, "hello\n") == true)
  assert(fs.read(p) == "hello\n")
  assert(fs.append(p, "world\n") == true)
  assert(fs.read(p) == "hello\nworld\n")
  local st = fs.stat(p)
  assert(st.type == "file" and st.size == 12, "size " .. tostring(st.size))
  assert(type(st.mtime) == "number" and st.mtime > 0)
  assert(st.mode:match("^0[0-7][0-7][0-7]$"), st.mode)

  fs.write(p, "replaced", { mode = "0600" })
  assert(fs.read(p) == "replaced")
  assert(fs.stat(p).mode == "0600")
  fs.write(p, "again")
  assert(fs.stat(p).mode == "0600", "a rewrite keeps the file's mode")
  assert(fs.read(p) == "again")
  -- the atomic write left no temporary file behind
  assert(#fs.list(dir) == 2, table.concat(fs.list(dir), ","))

  local bin = "\0\1\2\255 binary"
  fs.write(dir .. "/bin", bin)
  assert(fs.read(dir .. "/bin") == bin)
  fs.write(dir .. "/empty", "")
  assert(fs.read(dir .. "/empty") == "" and fs.stat(dir .. "/empty").size == 0)

  assert(fs.stat(dir .. "/missing", { check = false }) == nil)
  checkerr_plain("fs.stat " .. dir .. "/missing: No such file or directory", fs.stat,
                 dir .. "/missing")
  checkerr_plain("fs.read " .. dir .. "/missing: No such file or directory", fs.read,
                 dir .. "/missing")
  checkerr_plain("fs.read " .. dir .. ": Is a directory", fs.read, dir)
  checkerr_plain("fs.write " .. dir .. "/nodir/x: No such file or directory", fs.write,
                 dir .. "/nodir/x", "data")
  checkerr_plain("fs.write " .. dir .. ": Is a directory", fs.write, dir, "data")
  checkerr("option 'mode' must be an octal string", fs.write, p, "x", { mode = 644 })
  checkerr("option 'mode' must be an octal string", fs.write, p, "x", { mode = "rw-r--r--" })
  checkerr("fs.write: argument 2 %(data%) must be a string, got table", fs.write, p, {})
  checkerr("fs.write: argument 3 %(opts%) must be an options table, got string", fs.write, p, "x", "0600")
  checkerr("fs.remove: argument 2 %(opts%) must be an options table, got boolean", fs.remove, p, true)
  assert(fs.read(p) == "again", "a refused write changed nothing")
end)

step("fs: list, glob, exists", function()
  fs.write(dir .. "/a/b/c.yaml", "x: 1\n")
  fs.write(dir .. "/a/b/a.yaml", "x: 2\n")
  fs.write(dir .. "/a/b/b.txt", "")
  local names = fs.list(dir .. "/a/b")
  assert(table.concat(names, ",") == "a.yaml,b.txt,c.yaml", table.concat(names, ","))
  local yamls = fs.glob(dir .. "/a/b/*.yaml")
  assert(#yamls == 2 and yamls[1] == dir .. "/a/b/a.yaml" and yamls[2] == dir .. "/a/b/c.yaml")
  assert(#fs.glob(dir .. "/nothing-*") == 0)
  assert(json.encode(fs.glob(dir .. "/nothing-*")) == "[]")
  assert(fs.exists(dir .. "/a/b/b.txt") and not fs.exists(dir .. "/a/b/zzz"))
  assert(not fs.exists(dir .. "/a/b/b.txt/below"))
  checkerr_plain("fs.list " .. dir .. "/nope: No such file or directory", fs.list, dir .. "/nope")
end)

step("fs: copy and move", function()
  local src = dir .. "/script.sh"
  fs.write(src, "#!/bin/sh\necho hi\n", { mode = "0750" })
  fs.copy(src, dir .. "/copy.sh")
  assert(fs.read(dir .. "/copy.sh") == fs.read(src))
  assert(fs.stat(dir .. "/copy.sh").mode == "0750", "copy keeps the mode")
  fs.copy(src, dir .. "/a")                      -- into a directory
  assert(fs.read(dir .. "/a/script.sh") == fs.read(src))
  fs.move(dir .. "/copy.sh", dir .. "/moved.sh")
  assert(not fs.exists(dir .. "/copy.sh") and fs.exists(dir .. "/moved.sh"))
  fs.move(dir .. "/moved.sh", dir .. "/a/b")     -- into a directory
  assert(fs.exists(dir .. "/a/b/moved.sh"))
  checkerr_plain("fs.copy " .. dir .. "/none: No such file or directory", fs.copy,
                 dir .. "/none", dir .. "/x")
  checkerr_plain("fs.copy " .. dir .. "/a: Is a directory", fs.copy, dir .. "/a", dir .. "/x")
  checkerr("is the same file", fs.copy, src, src)
  checkerr_plain("fs.move " .. dir .. "/none: No such file or directory", fs.move,
                 dir .. "/none", dir .. "/x")
end)

step("yaml.load", function()
  local p = dir .. "/config.yaml"
  fs.write(p, "service: api\nports: [80, 443]\n")
  local t = yaml.load(p)
  assert(t.service == "api" and t.ports[2] == 443)
  fs.write(p, "ok: 1\nbad: [1,\n")
  checkerr_plain("yaml.load " .. p .. ":3: ", yaml.load, p)
  checkerr_plain("yaml.load " .. dir .. "/none.yaml: No such file or directory", yaml.load,
                 dir .. "/none.yaml")
end)

step("fs: remove", function()
  assert(fs.remove(dir .. "/notes.txt") == true)
  assert(not fs.exists(dir .. "/notes.txt"))
  assert(fs.remove(dir .. "/notes.txt", { check = false }) == false)
  checkerr_plain("fs.remove " .. dir .. "/notes.txt: No such file or directory", fs.remove,
                 dir .. "/notes.txt")
  checkerr("recursive = true", fs.remove, dir .. "/a")
  assert(fs.exists(dir .. "/a/b/a.yaml"), "a refused remove removed nothing")
  fs.mkdir(dir .. "/emptydir")
  fs.remove(dir .. "/emptydir")
  assert(not fs.exists(dir .. "/emptydir"))
  assert(fs.remove(dir, { recursive = true }) == true)
  assert(not fs.exists(dir))
end)
