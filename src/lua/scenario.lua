-- Scenarios (SPEC §8): load and check a *.scenario.yaml, match every
-- action of the runbook against its mocks (nothing reaches the outside
-- world), and judge the run against its expectations.  This runs in the
-- judge's own Lua state (src/modes/judge.c), never the runbook's: what it
-- sees of the run is data the C side (src/modes/scenario.c) copies in.
local rt = ...

local S -- the scenario being run: { path, dir, mocks, expect, ... }
local scenario_dir = "." -- where body_file & co. are read from

-- ---- the rows ----------------------------------------------------------------
-- What a scenario knows of primitives is what their rows say (runbook.rows:
-- class, fields and which a mock may match, what a mock may answer, how);
-- this file names none of them.

local ROWS = rt.rows()

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- a mock for primitive p: the fields it may match on (name -> type), the
-- keys it may answer with; nil when no row of p is answered by mocks (fs
-- runs in the scratch directory, db.open gives a stand-in)
local SCHEMA = {}
for prim, fns in pairs(ROWS) do
  local match, respond, mocked = { words = "str" }, { error = true }, false
  for _, row in pairs(fns) do
    if not row.paths and not row.stand_in then
      mocked = true
      for name, f in pairs(row.fields) do
        if f.match then match[name] = match[name] or f.type end
      end
      for k in pairs(row.respond) do respond[k] = true end
    end
  end
  if mocked then SCHEMA[prim] = { match = match, respond = respond } end
end
local MOCKED = table.concat(sorted_keys(SCHEMA), ", ")

-- ---- loading ---------------------------------------------------------------
-- Every key, type and enum of a scenario file is checked here, before
-- anything runs; a mistake is "FILE:LINE: path.to.key: what is wrong
-- (expected ...)", the line taken from the YAML parser's line table.

local MOCK_KEYS = { respond = 1, times = 1, required = 1 }
local TOP_KEYS = { runbook = 1, params = 1, env = 1, mocks = 1, expect = 1, confirm = 1,
                   fs = 1, description = 1, name = 1, skip = 1, rollback = 1, timeout = 1,
                   now = 1 }
local EXPECT_KEYS = { outcome = 1, failed_step = 1, actions = 1, not_actions = 1,
                      notifications = 1, state = 1, output = 1 }
local NOTIFICATION_KEYS = { channel = 1, text = 1 }
local SEED_KEYS = { file = 1, text = 1, age_days = 1 }
-- the run's outcomes a scenario may expect (outcome_of in src/modes/scenario.c)
local OUTCOMES = { success = 1, failed = 1, aborted = 1 }

local LINES = {} -- the scenario's line table: LINES[t] = { line = N, keys = { [k] = N } }

local function line_of(t, k)
  local l = type(t) == "table" and LINES[t]
  if not l then return nil end
  return (k ~= nil and l.keys and l.keys[k]) or l.line
end

-- a mistake in the scenario; at the line of t[k] when t is given
local function bad_at(t, k, fmt, ...)
  error({ scenario = string.format(fmt, ...), line = line_of(t, k) }, 0)
end
local function bad(fmt, ...) bad_at(nil, nil, fmt, ...) end

local function is_list(v) return type(v) == "table" and getmetatable(v) == json.array_mt end
local function is_map(v) return type(v) == "table" and getmetatable(v) ~= json.array_mt end
local function is_scalar(v) return type(v) == "string" or type(v) == "number" or type(v) == "boolean" end

-- a value as a mistake quotes it
local function quoted(v)
  if type(v) == "string" then
    return string.format("'%s'", #v > 40 and v:sub(1, 37) .. "..." or v)
  elseif is_list(v) then return "a list"
  elseif type(v) == "table" then return "a mapping"
  elseif v == nil then return "nothing"
  end
  return tostring(v)
end

-- t[k] must satisfy ok(v): else "where: got V (expected what)"
local function need(t, k, where, ok, what)
  local v = t[k]
  if v == nil and not ok(v) then bad_at(t, nil, "%s: missing (expected %s)", where, what) end
  if not ok(v) then bad_at(t, k, "%s: got %s (expected %s)", where, quoted(v), what) end
  return v
end

local function list_of(ok)
  return function(v)
    if not is_list(v) then return false end
    for _, x in ipairs(v) do if not ok(x) then return false end end
    return true
  end
end
local function one_or_list(ok)
  local all = list_of(ok)
  return function(v) return ok(v) or all(v) end
end
local function is_string(v) return type(v) == "string" end
local function is_int(lo, hi)
  return function(v) return math.type(v) == "integer" and v >= lo and (not hi or v <= hi) end
end
local function is_bool(v) return type(v) == "boolean" end
local function is_table(v) return type(v) == "table" end

local function check_keys(t, allowed, where)
  for k in pairs(t) do
    if not allowed[k] then
      bad_at(t, k, "%s: unknown key '%s' (expected one of: %s)", where, tostring(k),
             table.concat(sorted_keys(allowed), ", "))
    end
  end
end

-- A file a scenario names (body_file, json_file, result_file, an fs seed's
-- file): beside it, never outside its directory, and at most 16 MiB.
-- t[k] names it; where is how the mistake names t[k].
local MAX_FILE = 16 * 1024 * 1024
local function read_file(t, k, where)
  local name = need(t, k, where, is_string, "the name of a file beside the scenario")
  if name:sub(1, 1) == "/" then
    bad_at(t, k, "%s: %s: a file of the scenario is named relative to its directory (expected a relative name)",
           where, name)
  end
  local path = rt.in_scratch(scenario_dir, name)
  if not path then
    bad_at(t, k, "%s: %s: a file of the scenario must lie in its directory (expected a file beside it)", where, name)
  end
  local data, why = rt.read_text(path, MAX_FILE)
  if not data then bad_at(t, k, "%s: cannot read %s: %s", where, name, why) end
  return data
end

-- What an answer key holds, by its name: the same name means the same thing
-- in every primitive's answer (an HTTP status, an exit code, ...).  Keys not
-- listed (json, result, a docker stats number) may hold any value.
local RESPOND_TYPES = {
  status = { is_int(100, 599), "an HTTP status, an integer from 100 to 599" },
  code = { is_int(0, 255), "an exit code, an integer from 0 to 255" },
  stdout = { is_string, "a string" },
  stderr = { is_string, "a string" },
  body = { is_string, "a string" },
  error = { is_string, "a string: the error the call raises" },
  headers = { function(v) return is_map(v) end, "a mapping of header name to value" },
  ok = { is_bool, "true or false" },
  changed = { is_bool, "true or false" },
  affected = { is_int(0), "a whole number >= 0" },
  rows = { list_of(is_map), "a list of rows, each a mapping" },
}

-- A mock's responses: K_file keys read beside the scenario (json_file
-- decoded), then every key one the primitive's rows accept, of its type.
local function load_responses(where, prim, m)
  local responses = m.respond
  if responses == nil then return { {} } end
  need(m, "respond", where .. ".respond", is_table, "a mapping, or a list of them (a sequence)")
  if not is_list(responses) then responses = { responses } end
  local allowed = {}
  for k in pairs(SCHEMA[prim].respond) do allowed[k] = 1; allowed[k .. "_file"] = 1 end
  for j, r in ipairs(responses) do
    local rwhere = string.format("%s.respond[%d]", where, j)
    if not is_map(r) then bad_at(responses, j, "%s: got %s (expected a mapping)", rwhere, quoted(r)) end
    check_keys(r, allowed, rwhere)
    for _, k in ipairs(sorted_keys(r)) do
      local base = k:match("^(.+)_file$")
      if base and SCHEMA[prim].respond[base] then
        if r[base] ~= nil then bad_at(r, k, "%s: both %s and %s (expected one of them)", rwhere, base, k) end
        local data = read_file(r, k, rwhere .. "." .. k)
        if base == "json" then
          local ok, v = pcall(json.decode, data)
          if not ok then bad_at(r, k, "%s.%s: %s is not JSON: %s", rwhere, k, r[k], tostring(v)) end
          data = v
        end
        r[k] = nil
        r[base] = data
      end
    end
    for k, v in pairs(r) do
      local ty = RESPOND_TYPES[k]
      if ty and not ty[1](v) then bad_at(r, k, "%s.%s: got %s (expected %s)", rwhere, k, quoted(v), ty[2]) end
    end
  end
  return responses
end

-- What a mock's match may hold for a field of each type; "****" (a secret
-- in a recording) stands for any value.
local MATCH_TYPES = {
  str = { is_scalar, "a string (a glob)" },
  int = { function(v) return math.type(v) == "integer" end, "an integer" },
  num = { function(v) return type(v) == "number" end, "a number" },
  bool = { is_bool, "true or false" },
  list = { list_of(is_scalar), "a list of strings (globs), element by element" },
  set = { one_or_list(is_scalar), "a value, or a list of the values that must all be present" },
  map = { function(v) return is_map(v) end, "a mapping (a subset of the call's)" },
}

local function load_mock(mocks, i)
  local m = mocks[i]
  local where = string.format("mocks[%d]", i)
  if not is_map(m) then
    bad_at(mocks, i, "%s: got %s (expected a mock: a mapping such as { exec: { argv: [...] }, respond: {...} })",
           where, quoted(m))
  end
  local prim
  for _, k in ipairs(sorted_keys(m)) do
    if SCHEMA[k] then
      if prim then bad_at(m, k, "%s: one primitive per mock (%s and %s)", where, prim, k) end
      prim = k
    elseif not MOCK_KEYS[k] then
      bad_at(m, k, "%s: unknown key '%s' (a mock is one of %s, with respond, times, required)",
             where, tostring(k), MOCKED)
    end
  end
  if not prim then bad_at(mocks, i, "%s: which primitive does it answer? (%s)", where, MOCKED) end
  local match = need(m, prim, where .. "." .. prim, is_map, "the call to match, as a mapping")
  check_keys(match, SCHEMA[prim].match, where .. "." .. prim)
  for k, v in pairs(match) do
    local ty = MATCH_TYPES[SCHEMA[prim].match[k]]
    if ty and v ~= "****" and not ty[1](v) then
      bad_at(match, k, "%s.%s.%s: got %s (expected %s)", where, prim, k, quoted(v), ty[2])
    end
  end
  local responses = load_responses(where, prim, m)
  if m.times ~= nil and not is_int(1)(m.times) then
    bad_at(m, "times", "%s.times: got %s (expected a whole number >= 1)", where, quoted(m.times))
  end
  if m.required ~= nil then need(m, "required", where .. ".required", is_bool, "true or false") end
  return { index = i, primitive = prim, match = match, responses = responses,
           times = m.times, required = m.required == true, calls = 0 }
end

local function load_expect(doc)
  if doc.expect == nil then return {} end
  local e = need(doc, "expect", "expect", is_map, "a mapping: outcome, actions, state, ...")
  check_keys(e, EXPECT_KEYS, "expect")
  need(e, "outcome", "expect.outcome", function(v) return v == nil or OUTCOMES[v] ~= nil end,
       "one of: " .. table.concat(sorted_keys(OUTCOMES), ", "))
  need(e, "failed_step", "expect.failed_step",
       function(v) return v == nil or is_string(v) or is_int(1)(v) end,
       "the step's name, or its index from 1")
  for _, k in ipairs({ "actions", "not_actions", "output" }) do
    need(e, k, "expect." .. k, function(v) return v == nil or one_or_list(is_string)(v) end,
         "a string, or a list of them")
  end
  if e.notifications ~= nil then
    local ns = need(e, "notifications", "expect.notifications", is_list,
                    "a list of notifications, each a mapping with channel and/or text")
    for i, n in ipairs(ns) do
      local where = string.format("expect.notifications[%d]", i)
      if not is_map(n) then bad_at(ns, i, "%s: got %s (expected a mapping with channel and/or text)", where, quoted(n)) end
      check_keys(n, NOTIFICATION_KEYS, where)
      for k in pairs(n) do need(n, k, where .. "." .. k, is_string, "a string") end
    end
  end
  return e
end

-- fs: path -> text | { file | text, age_days }; a seed's file is read now,
-- so the seeding cannot fail on it later.
local function load_fs(doc)
  if doc.fs == nil then return nil end
  local files = need(doc, "fs", "fs", is_map, "a mapping of path to the file's text, or to { file | text, age_days }")
  for _, path in ipairs(sorted_keys(files)) do
    local where = string.format("fs[%s]", path)
    local content = files[path]
    if is_map(content) then
      check_keys(content, SEED_KEYS, where)
      if (content.file == nil) == (content.text == nil) then
        bad_at(files, path, "%s: both or neither of file and text (expected one: { file: NAME } or { text: ... })", where)
      end
      need(content, "age_days", where .. ".age_days", function(v) return v == nil or type(v) == "number" end,
           "a number of days")
      if content.file ~= nil then
        content.text = read_file(content, "file", where .. ".file")
        content.file = nil
      end
      need(content, "text", where .. ".text", function(v) return type(v) == "string" or type(v) == "number" end,
           "the file's text")
    else
      need(files, path, where, function(v) return type(v) == "string" or type(v) == "number" end,
           "the file's text, or { file | text, age_days }")
    end
  end
  return files
end

local function load_top(doc)
  need(doc, "runbook", "runbook", is_string, "the runbook to test: a name or a path; it is required")
  for _, k in ipairs({ "name", "description", "skip", "env" }) do
    need(doc, k, k, function(v) return v == nil or is_string(v) end, "a string")
  end
  need(doc, "timeout", "timeout",
       function(v)
         if type(v) == "number" then v = tostring(v) .. "s" end -- seconds
         return v == nil or (type(v) == "string" and rt.duration(v) ~= nil)
       end,
       "a duration such as 90s, 5m or 1h: this scenario's limit, over --scenario-timeout")
  if type(doc.timeout) == "number" then doc.timeout = tostring(doc.timeout) .. "s" end
  -- where the run's clock starts (now(), os.time, os.date, time.*), read
  -- as time.parse reads it
  if doc.now ~= nil then
    local t, why = nil, "expected a string"
    if is_string(doc.now) then t, why = rt.rfc3339(doc.now) end
    if not t then
      bad_at(doc, "now", "now: got %s: %s (expected an RFC 3339 time such as "
             .. "\"2024-05-01T09:10:00Z\" or \"2024-05-01T11:10:00+02:00\": where the run's clock starts)",
             quoted(doc.now), why)
    end
    doc.now_seconds = t
  end
  need(doc, "rollback", "rollback", function(v) return v == nil or is_bool(v) end,
       "true or false: run as with --rollback, undoing completed steps when one fails")
  if doc.params ~= nil then
    local params = need(doc, "params", "params", is_map, "a mapping of param name to value")
    for _, k in ipairs(sorted_keys(params)) do
      need(params, k, "params." .. k, one_or_list(is_scalar), "a value, or a list of values")
    end
  end
  if doc.confirm ~= nil then
    local answer = function(v) return is_bool(v) or is_string(v) end
    local c = need(doc, "confirm", "confirm",
                   function(v) return is_bool(v) or list_of(answer)(v) or is_map(v) end,
                   "true, false, a list of answers, or a mapping of question pattern to answer")
    if is_map(c) then
      for k in pairs(c) do need(c, k, "confirm." .. k, answer, "an answer: yes, no, true or false") end
    end
  end
end

-- rt.scenario_load(path) -> { runbook, params (table of strings), confirm, ... },
-- or nil and "path:line: what is wrong"
function rt.scenario_load(path)
  local doc, lines = rt.load_yaml(path)
  if doc == nil and type(lines) == "string" then return nil, lines end
  LINES = type(lines) == "table" and lines or {}
  local okc, err = pcall(function()
    if not is_map(doc) then
      bad("got %s (expected a scenario: a mapping of runbook, params, mocks, expect)", quoted(doc))
    end
    check_keys(doc, TOP_KEYS, "scenario")
    load_top(doc)
    local mocks = {}
    if doc.mocks ~= nil then
      local list = need(doc, "mocks", "mocks", is_list,
                        "a list of mocks, each a mapping such as { exec: { argv: [...] }, respond: {...} }")
      for i = 1, #list do mocks[i] = load_mock(list, i) end
    end
    local expect = load_expect(doc)
    load_fs(doc)
    S = { path = path, doc = doc, mocks = mocks, expect = expect, actions = {},
          notifications = {}, confirm = doc.confirm, confirm_n = 0 }
  end)
  if not okc then
    if type(err) == "table" and err.scenario then
      return nil, string.format("%s:%d: %s", path, err.line or 1, err.scenario)
    end
    error(err, 0)
  end
  local params = {}
  for k, v in pairs(doc.params or {}) do
    params[k] = type(v) == "table" and v or tostring(v)
  end
  return { runbook = doc.runbook, runbook_line = line_of(doc, "runbook"), params = params, env = doc.env,
           fs = doc.fs, timeout = doc.timeout, skip = doc.skip, rollback = doc.rollback == true,
           now = doc.now_seconds }
end

-- set by the C side before loading: the directory of the scenario file
function rt.scenario_dir(dir) scenario_dir = dir end

-- ---- matching --------------------------------------------------------------------

-- shell-style glob: * any run, ? one character; everything else literal
local function glob(pattern, s)
  local p = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
  return s:match(p) ~= nil
end

local function text_match(want, got)
  if type(got) ~= "string" then return false end
  want = tostring(want)
  if want:find("[*?]") then return glob(want, got) end
  return want == got
end

-- every key of want is in got with an equal value (tables compared the same way)
local function subset(want, got)
  if type(want) ~= "table" then
    if type(want) == "number" and type(got) == "number" then return want == got end
    return tostring(want) == tostring(got)
  end
  if type(got) ~= "table" then return false end
  for k, v in pairs(want) do
    if not subset(v, got[k]) then return false end
  end
  return true
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(type(t) == "table" and t or {}) do out[tostring(k):lower()] = v end
  return out
end

-- a field's value as a report shows it
local function shown(v)
  if v == nil then return "none" end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

-- Does the wanted value of a field (from the mock) match the call's, by the
-- field's type?  "****" (a secret redacted from a recording) matches any value.
local function field_match(ftype, want, got)
  if want == "****" then return got ~= nil end
  if got == nil then return false end
  if ftype == "list" then
    if type(want) ~= "table" or type(got) ~= "table" or #want ~= #got then return false end
    for i = 1, #want do
      if not (want[i] == "****" or text_match(want[i], tostring(got[i]))) then return false end
    end
    return true
  elseif ftype == "set" then
    if type(got) ~= "table" then return false end
    for _, w in ipairs(type(want) == "table" and want or { want }) do
      local found = false
      for _, g in ipairs(got) do
        if tostring(w) == tostring(g) then found = true; break end
      end
      if not found then return false end
    end
    return true
  elseif ftype == "map" then
    return subset(lower_keys(want), lower_keys(got))
  elseif ftype == "int" or ftype == "num" then
    return tonumber(want) == tonumber(got)
  elseif ftype == "bool" then
    return want == got
  end
  return text_match(want, tostring(got))
end

-- Does mock m match the call?  Returns true, or false, the first reason and
-- how many of its fields did match (the closest mock is the one with most).
local function matches(m, call)
  if m.primitive ~= call.primitive then return false, "another primitive", -1 end
  local schema = SCHEMA[m.primitive].match
  local good, why = 0, nil
  for _, k in ipairs(sorted_keys(m.match)) do
    local want = m.match[k]
    local got = k == "words" and call.words or call.fields[k]
    if field_match(schema[k], want, got) then
      good = good + 1
    elseif not why then
      why = string.format("%s: wanted %s, got %s", k, shown(want), shown(got))
    end
  end
  if why then return false, why, good end
  if m.times and m.calls >= m.times then
    return false, string.format("already answered %d time%s (times: %d)", m.calls,
                                m.calls == 1 and "" or "s", m.times), good + 1
  end
  return true
end

local function describe_mock(m)
  local parts = {}
  for _, k in ipairs(sorted_keys(m.match)) do
    parts[#parts + 1] = k .. ": " .. shown(m.match[k])
  end
  return string.format("mocks[%d] %s { %s }", m.index, m.primitive, table.concat(parts, ", "))
end

-- ---- paths in a scratch directory -------------------------------------------------
-- A row with path arguments (fs, yaml.load) works for real, inside the
-- scenario's scratch directory (the C side resolves the runbook's paths).

local scratch

-- a path of the runbook's that left the scratch directory: fails the
-- scenario even if the runbook caught the error
function rt.scenario_escaped(why)
  if S then S.escaped = S.escaped or why end
end

-- rt.scenario_scratch(dir, files, now): the scratch directory, seeded with
-- files = { ["/etc/app.conf"] = "text" | { file = "name next to the scenario" } };
-- nil, or what is wrong with a seed
function rt.scenario_scratch(dir, files, now)
  local ok, err = pcall(function() return rt.scenario_seed(dir, files, now) end)
  if ok then return nil end
  if type(err) == "table" and err.scenario then
    if err.line and S then return string.format("%s:%d: %s", S.path, err.line, err.scenario) end
    return err.scenario
  end
  return tostring(err)
end

-- A seed is the text, or { text = "...", age_days = N } (scenario_load read
-- a { file = NAME } seed's file and checked every key): age_days sets the
-- file's modification time that many days before the scenario's now, so
-- retention (backup.plan{ keep_days }) can be tested.  Seeds are written in
-- path order, so files without an age are oldest-first by name.
function rt.scenario_seed(dir, files, now)
  scratch = assert(rt.in_scratch(dir, "")) -- as the kernel names it: paths are compared with it
  for _, path in ipairs(sorted_keys(files or {})) do
    local content, age = files[path], nil
    if type(content) == "table" then content, age = content.text, content.age_days end
    local full, why = rt.in_scratch(scratch, path)
    if not full then
      bad_at(files, path, "fs[%s]: %s (expected a path inside the scratch directory)", path, why)
    end
    rt.write_seed(full, tostring(content))
    if age then rt.set_mtime(full, now - age * 86400) end
  end
end

-- rt.scenario_match(call) -> the response of the first mock that matches
-- the call, or nil and why none does (which fails the scenario even if the
-- runbook caught the error).  call: { primitive, fn, verb, target, words,
-- class, fields }, a copy of the runbook's.
function rt.scenario_match(call)
  local row = ROWS[call.primitive] and ROWS[call.primitive][call.fn] or {}
  local closest, closest_why, best = nil, nil, -1
  for _, m in ipairs(S.mocks) do
    local ok, why, score = matches(m, call)
    if ok then
      m.calls = m.calls + 1
      if row.notice then
        S.notifications[#S.notifications + 1] = { channel = tostring(call.fields.channel or call.verb),
                                                  text = tostring(call.fields.text or "") }
      end
      return m.responses[math.min(m.calls, #m.responses)]
    end
    if m.primitive == call.primitive and (score or -1) > best then closest, closest_why, best = m, why, score end
  end
  local hint = closest and string.format("; closest: %s, which did not match: %s", describe_mock(closest), closest_why)
               or string.format("; there is no %s mock", call.primitive)
  local msg = string.format("no mock answers `%s`%s", call.words, hint)
  S.unmatched = S.unmatched or msg
  return nil, msg
end

-- every action the run recorded, for expectations and coverage (set by the
-- C side; line: the runbook file's line that led to it, 0 if none)
function rt.scenario_action(words, class, status, line)
  S.actions[#S.actions + 1] = { words = words, class = class, status = status, line = line }
  if line > 0 then S.lines = S.lines or {}; S.lines[line] = true end
end

function rt.scenario_step(index, name, status)
  S.steps = S.steps or {}
  S.steps[index] = status
end

-- Calls that may change the world, found in a runbook's source by name: the
-- rows that are not reads (exec{...}, kubectl.scale, conn:exec(...)), and
-- the Lua functions that say so on a line of their file that starts with
-- "-- mutates:"
-- (stdlib modules, the engine's and primitives' Lua halves).
local function call_pattern(name)
  local esc = name:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  if name:sub(1, 1) == ":" then return esc .. "%s*[%({]" end
  if not name:find(".", 1, true) then return "%f[%w_.:]" .. esc .. "%s*[%({]" end -- a global: exec{...}
  return esc
end

local MUTATING_CALLS -- built the first time coverage needs it
local function mutating_calls()
  if MUTATING_CALLS then return MUTATING_CALLS end
  local names = {}
  for prim, fns in pairs(ROWS) do
    for fn, row in pairs(fns) do
      if row.class ~= "read" then
        if row.kind == "global" then names[fn] = true
        elseif row.kind == "method" then names[":" .. fn] = true
        else names[prim .. "." .. fn] = true end
      end
    end
  end
  for _, src in pairs(rt.embedded_sources()) do
    for list in ("\n" .. src):gmatch("\n%-%- mutates:([^\n]*)") do
      for name in list:gmatch("[%w_.:]+") do names[name] = true end
    end
  end
  MUTATING_CALLS = {}
  for _, name in ipairs(sorted_keys(names)) do MUTATING_CALLS[#MUTATING_CALLS + 1] = call_pattern(name) end
  return MUTATING_CALLS
end

-- The source with the text of comments and string literals blanked out
-- (newlines kept, so line numbers hold): a description that mentions
-- `notify.slack` is not a call.
local function code_only(src)
  local out, i, n = {}, 1, #src
  local function blank(a, b) out[#out + 1] = (src:sub(a, b):gsub("[^\n]", " ")) end
  while i <= n do
    local a = src:find("[-\"'%[]", i)
    if not a then out[#out + 1] = src:sub(i); break end
    out[#out + 1] = src:sub(i, a - 1)
    local c = src:sub(a, a)
    local long = src:match("^%[(=*)%[", c == "-" and a + 2 or a)
    if c == "-" and src:sub(a, a + 1) ~= "--" then
      out[#out + 1] = c; i = a + 1
    elseif c == "[" and not long then
      out[#out + 1] = c; i = a + 1
    elseif long and (c == "[" or src:sub(a, a + 1) == "--") then
      local open = c == "[" and a or a + 2
      local _, e = src:find("]" .. long .. "]", open, true)
      e = e or n
      blank(a, e); i = e + 1
    elseif c == "-" then -- a line comment
      local e = (src:find("\n", a, true) or n + 1) - 1
      blank(a, e); i = e + 1
    else -- a quoted string, with escapes
      local j = a + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      out[#out + 1] = c; blank(a + 1, j - 1); out[#out + 1] = src:sub(j, j); i = j + 1
    end
  end
  return table.concat(out)
end

-- rt.scenario_coverage(runbook_path, steps, source) -> { runbook, steps = {{name, ran}},
-- calls = {{line, call}} (possibly mutating), lines = {exercised lines} }
function rt.scenario_coverage(path, steps, src)
  local cov = { runbook = path, steps = setmetatable({}, json.array_mt),
                calls = setmetatable({}, json.array_mt), lines = setmetatable({}, json.array_mt) }
  for i, s in ipairs(steps or {}) do
    local st = S.steps and S.steps[i]
    cov.steps[i] = { name = s.name, ran = st == "ok" or st == "failed" }
  end
  local n = 0
  for code in code_only(src or ""):gmatch("([^\n]*)\n?") do
    n = n + 1
    for _, pat in ipairs(mutating_calls()) do
      -- find first: the unanchored prefix would scan every position
      local call = code:find(pat) and code:match("[%w_.:]*" .. pat)
      if call then cov.calls[#cov.calls + 1] = { line = n, call = call:gsub("[%s%(%{]+$", "") }; break end
    end
    if n > 100000 then break end
  end
  for line in pairs(S.lines or {}) do cov.lines[#cov.lines + 1] = line end
  table.sort(cov.lines)
  -- what each exercised line did, as the funnel classified it
  cov.actions = setmetatable({}, json.array_mt)
  for _, a in ipairs(S.actions) do
    if a.line and a.line > 0 then
      cov.actions[#cov.actions + 1] = { line = a.line, class = a.class, words = a.words }
    end
  end
  return cov
end

-- ---- coverage over many scenarios (runbook test --coverage) ----------------

local COV = {}

function rt.coverage_merge(cov)
  local c = COV[cov.runbook]
  if not c then
    c = { steps = {}, calls = cov.calls, lines = {}, actions = {}, seen = {} }
    COV[cov.runbook] = c
  end
  for _, a in ipairs(cov.actions or {}) do
    local key = a.line .. "\0" .. a.class .. "\0" .. a.words
    if not c.seen[key] then
      c.seen[key] = true
      c.actions[#c.actions + 1] = a
    end
  end
  for i, s in ipairs(cov.steps) do
    c.steps[i] = c.steps[i] or { name = s.name }
    c.steps[i].ran = c.steps[i].ran or s.ran
  end
  for _, l in ipairs(cov.lines) do c.lines[l] = true end
end

function rt.coverage_report()
  local names = {}
  for path in pairs(COV) do names[#names + 1] = path end
  table.sort(names)
  local out, uncovered = { "coverage:" }, 0
  for _, path in ipairs(names) do
    local c = COV[path]
    local ran, never = 0, {}
    for i, s in ipairs(c.steps) do
      if s.ran then ran = ran + 1 else never[#never + 1] = string.format("%d %q", i, s.name) end
    end
    out[#out + 1] = string.format("  %s: %d/%d steps ran in a scenario", path, ran, #c.steps)
    if #never > 0 then out[#out + 1] = "    steps never run: " .. table.concat(never, ", ") end
    local missed = {}
    for _, call in ipairs(c.calls) do
      if not c.lines[call.line] then missed[#missed + 1] = string.format("line %d (%s)", call.line, call.call) end
    end
    if #missed > 0 then
      out[#out + 1] = "    calls that may change something, never exercised: " .. table.concat(missed, ", ")
    end
    if #missed > 0 or #never > 0 then uncovered = uncovered + 1 end
  end
  return table.concat(out, "\n"), uncovered
end

-- rt.coverage_json() -> JSON text: per runbook, the steps and whether they
-- ran, the calls that may change something and whether any scenario
-- exercised them, and every action exercised with its line and class
function rt.coverage_json()
  local out = {}
  for _, path in ipairs(sorted_keys(COV)) do
    local c = COV[path]
    local calls = setmetatable({}, json.array_mt)
    for _, call in ipairs(c.calls) do
      calls[#calls + 1] = { line = call.line, call = call.call, exercised = c.lines[call.line] == true }
    end
    table.sort(c.actions, function(a, b)
      if a.line ~= b.line then return a.line < b.line end
      return a.words < b.words
    end)
    local steps = setmetatable({}, json.array_mt)
    for i, s in ipairs(c.steps) do steps[i] = { name = s.name, ran = s.ran == true } end
    out[path] = { steps = steps, calls = calls, actions = setmetatable(c.actions, json.array_mt) }
  end
  return json.encode(out)
end

-- confirm(question): the scenario's answers in order (yes when it gives none)
function rt.scenario_confirm(question)
  local c = S.confirm
  if c == nil then return true end
  if type(c) == "boolean" then return c end
  if type(c) == "table" then
    if c[1] ~= nil then
      S.confirm_n = S.confirm_n + 1
      local a = c[math.min(S.confirm_n, #c)]
      return a == true or a == "yes" or a == "y"
    end
    local patterns = {}
    for pattern in pairs(c) do patterns[#patterns + 1] = pattern end
    table.sort(patterns, function(a, b) return #a > #b end) -- the most specific first
    for _, pattern in ipairs(patterns) do
      local answer = c[pattern]
      if question:find(pattern, 1, true) or glob(pattern, question) then
        return answer == true or answer == "yes" or answer == "y"
      end
    end
  end
  return true
end

-- ---- judging ----------------------------------------------------------------------------

local function as_list(v)
  if v == nil then return {} end
  if type(v) ~= "table" then return { v } end
  return v
end

local function action_match(want, words)
  want = tostring(want)
  if want:find("[*?]") then return glob(want, words) end
  return words == want or words:sub(1, #want + 1) == want .. " "
end

-- rt.scenario_unmatchable(source) -> { { key, pattern, line, first } }: the
-- expect.actions / not_actions patterns of the loaded scenario that can never
-- match, for `runbook check`.  A pattern without a glob in its first word is
-- compared from the action's first word, so that word must be one an action
-- can begin with: a primitive's name (db exec ..., kubectl scale ..., fs
-- write ...), a row's name or its upper case (HTTP's methods: POST
-- http://...), or a program exec{...} may run -- which, as a runbook builds
-- its commands many ways, is any word that begins a string in the runbook's
-- source, its library's or the embedded Lua ("systemctl", "./scripts/" ..
-- name).  A word in capitals (ALTER, DROP, FLUSHDB) counts only from the rows:
-- it begins statements, not programs.  Anything else passes vacuously.
function rt.scenario_unmatchable(source)
  local first, starts = {}, {}
  for prim, fns in pairs(ROWS) do
    first[prim] = true
    for fn in pairs(fns) do first[fn] = true; first[fn:upper()] = true end
  end
  local sources = { source or "" }
  for _, src in pairs(rt.embedded_sources()) do sources[#sources + 1] = src end
  for _, src in ipairs(sources) do
    for w in src:gmatch("[\"'%[]([^\"'%s%[%]]+)") do starts[w] = true end
  end
  local function known(w)
    if first[w] then return true end
    if w:match("^[%u_]+$") then return false end
    if starts[w] then return true end
    for s in pairs(starts) do -- a command joined from parts: "./scripts/" .. name
      if #s >= 2 and w:sub(1, #s) == s then return true end
    end
    return false
  end
  local out, e = {}, S and S.expect or {}
  for _, key in ipairs({ "actions", "not_actions" }) do
    local list = e[key]
    for i, pat in ipairs(as_list(list)) do
      pat = tostring(pat)
      local w = pat:match("^%S+")
      if w and not w:find("[*?]") and not known(w) then
        out[#out + 1] = { key = key, pattern = pat, first = w,
                          line = (type(list) == "table" and line_of(list, i)) or line_of(e, key) or 1 }
      end
    end
  end
  return out
end

-- rt.scenario_verdict(result) -> { failures } where result has outcome,
-- failed_step, state, output
function rt.scenario_verdict(result)
  local e, failures = S.expect, {}
  local function fail(fmt, ...) failures[#failures + 1] = string.format(fmt, ...) end
  if S.unmatched then fail("%s", S.unmatched) end
  if S.escaped then fail("%s", S.escaped) end
  local want_outcome = e.outcome or "success"
  if want_outcome ~= result.outcome then
    fail("outcome: expected %s, got %s%s", want_outcome, result.outcome,
         result.error and (" (" .. result.error .. ")") or "")
  end
  if e.failed_step ~= nil then
    local fs_ = e.failed_step
    if not (tostring(fs_) == tostring(result.failed_step) or tostring(fs_) == tostring(result.failed_index)) then
      fail("failed_step: expected %s, got %s", tostring(fs_), tostring(result.failed_step or "none"))
    end
  end
  local taken = {}
  for _, a in ipairs(S.actions) do
    if a.class == "mutate" and a.status ~= "error" and a.status ~= "declined" then taken[#taken + 1] = a.words end
  end
  local pos = 1
  for _, want in ipairs(as_list(e.actions)) do
    local found
    for i = pos, #taken do
      if action_match(want, taken[i]) then found = i; break end
    end
    if not found then
      fail("actions: expected `%s`%s; mutating actions taken: %s", tostring(want),
           pos > 1 and " after the ones before it" or "",
           #taken > 0 and table.concat(taken, "; ") or "none")
      break
    end
    pos = found + 1
  end
  for _, not_want in ipairs(as_list(e.not_actions)) do
    for _, words in ipairs(taken) do
      if action_match(not_want, words) then fail("not_actions: `%s` was taken", words) end
    end
  end
  for _, n in ipairs(as_list(e.notifications)) do
    local ok = false
    for _, got in ipairs(S.notifications) do
      if (n.channel == nil or n.channel == got.channel) and
         (n.text == nil or got.text:find(n.text, 1, true) or glob(n.text, got.text)) then
        ok = true
      end
    end
    if not ok then fail("notifications: none on %s matching '%s'", tostring(n.channel or "any channel"), tostring(n.text or "")) end
  end
  if e.state ~= nil and not subset(e.state, result.state) then
    fail("state: expected %s to be part of %s", json.encode(e.state), json.encode(result.state or {}))
  end
  for _, pattern in ipairs(as_list(e.output)) do
    pattern = tostring(pattern)
    if not (result.output:find(pattern, 1, true) or glob("*" .. pattern .. "*", result.output)) then
      fail("output: no '%s' in the output", pattern)
    end
  end
  for _, m in ipairs(S.mocks) do
    if m.required and m.calls == 0 then fail("required mock never called: %s", describe_mock(m)) end
  end
  return failures
end
