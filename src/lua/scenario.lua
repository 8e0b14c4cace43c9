-- Scenarios (SPEC §8): load and check a *.scenario.yaml, answer every
-- action of the runbook from its mocks (nothing reaches the outside world),
-- and judge the run against its expectations.  The C side (src/scenario.c)
-- runs the runbook and calls rt.scenario_call for every action.
local rt = ...

local S -- the scenario being run: { path, dir, mocks, expect, ... }
local scenario_dir = "." -- where body_file & co. are read from

-- ---- loading ---------------------------------------------------------------

local PRIMITIVES = { http = 1, exec = 1, sh = 1, docker = 1, kubectl = 1, db = 1, notify = 1 }
local MATCH_KEYS = {
  http = { method = 1, url = 1, headers = 1, json = 1, words = 1 },
  exec = { argv = 1, command = 1, words = 1 },
  sh = { command = 1, words = 1 },
  docker = { verb = 1, name = 1, words = 1 },
  kubectl = { verb = 1, kind = 1, name = 1, namespace = 1, args = 1, words = 1 },
  db = { sql = 1, verb = 1, url = 1, words = 1 },
  notify = { channel = 1, words = 1 },
}
local MOCK_KEYS = { respond = 1, times = 1, required = 1 }
local RESPOND_KEYS = {
  http = { status = 1, body = 1, body_file = 1, json = 1, json_file = 1, headers = 1, error = 1 },
  exec = { code = 1, stdout = 1, stdout_file = 1, stderr = 1, stderr_file = 1, error = 1 },
  sh = { code = 1, stdout = 1, stdout_file = 1, stderr = 1, stderr_file = 1, error = 1 },
  db = { rows = 1, affected = 1, json = 1, json_file = 1, error = 1 },
}
local TOP_KEYS = { runbook = 1, params = 1, env = 1, mocks = 1, expect = 1, confirm = 1,
                   fs = 1, description = 1, name = 1, skip = 1, rollback = 1 }
local EXPECT_KEYS = { outcome = 1, failed_step = 1, actions = 1, not_actions = 1,
                      notifications = 1, state = 1, output = 1 }

local function bad(fmt, ...)
  error({ scenario = string.format(fmt, ...) }, 0)
end

local function read_file(dir, name)
  local path = name:sub(1, 1) == "/" and name or (dir .. "/" .. name)
  local ok, data = pcall(fs.read, path)
  if not ok then bad("cannot read %s: %s", name, tostring(data)) end
  return data
end

local function check_keys(t, allowed, where)
  for k in pairs(t) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      bad("%s: unknown key '%s' (expected one of: %s)", where, tostring(k), table.concat(names, ", "))
    end
  end
end

-- rt.scenario_load(path) -> { runbook, params (table of strings), confirm }
function rt.scenario_load(path)
  local ok, doc = pcall(yaml.load, path)
  if not ok then
    return nil, (tostring(doc):gsub("^yaml%.load ", ""))
  end
  local okc, err = pcall(function()
    if type(doc) ~= "table" or doc[1] ~= nil then
      bad("a scenario is a mapping (runbook, params, mocks, expect)")
    end
    check_keys(doc, TOP_KEYS, "scenario")
    if type(doc.runbook) ~= "string" then bad("runbook: the runbook to test (a name or a path) is required") end
    if doc.rollback ~= nil and type(doc.rollback) ~= "boolean" then
      bad("rollback: true or false (run as with --rollback: undo completed steps when one fails)")
    end
    local mocks = {}
    for i, m in ipairs(doc.mocks or {}) do
      local where = string.format("mocks[%d]", i)
      if type(m) ~= "table" then bad("%s: a mock is a mapping", where) end
      local prim
      for k in pairs(m) do
        if PRIMITIVES[k] then
          if prim then bad("%s: one primitive per mock (%s and %s)", where, prim, k) end
          prim = k
        elseif not MOCK_KEYS[k] then
          bad("%s: unknown key '%s' (a mock is one of http, exec, sh, docker, kubectl, db, notify, " ..
              "with respond, times, required)", where, tostring(k))
        end
      end
      if not prim then bad("%s: which primitive does it answer? (http, exec, sh, docker, kubectl, db, notify)", where) end
      local match = m[prim]
      if type(match) ~= "table" then bad("%s.%s: the call to match, as a mapping", where, prim) end
      check_keys(match, MATCH_KEYS[prim], where .. "." .. prim)
      local responses = m.respond
      if responses == nil then responses = { {} } end
      if type(responses) ~= "table" then bad("%s.respond: a mapping, or a list of them (a sequence)", where) end
      if responses[1] == nil then responses = { responses } end
      for j, r in ipairs(responses) do
        if type(r) ~= "table" then bad("%s.respond[%d]: a mapping", where, j) end
        if RESPOND_KEYS[prim] then check_keys(r, RESPOND_KEYS[prim], string.format("%s.respond[%d]", where, j)) end
        -- result_file: a text result (kubectl.logs, kubectl.top, docker.logs)
        for _, f in ipairs({ "body_file", "stdout_file", "stderr_file", "json_file", "result_file" }) do
          if r[f] then
            local data = read_file(scenario_dir, r[f])
            r[f] = nil
            if f == "json_file" then r.json = json.decode(data)
            else r[f:gsub("_file$", "")] = data end
          end
        end
      end
      if m.times ~= nil and (math.type(m.times) ~= "integer" or m.times < 1) then
        bad("%s.times: a whole number >= 1", where)
      end
      mocks[#mocks + 1] = { index = i, primitive = prim, match = match, responses = responses,
                            times = m.times, required = m.required == true, calls = 0 }
    end
    local expect = doc.expect or {}
    if type(expect) ~= "table" then bad("expect: a mapping") end
    check_keys(expect, EXPECT_KEYS, "expect")
    S = { path = path, doc = doc, mocks = mocks, expect = expect, actions = {},
          notifications = {}, confirm = doc.confirm, confirm_n = 0 }
  end)
  if not okc then
    if type(err) == "table" and err.scenario then
      -- point at the line: the key the schema refused, found in the text
      local key = err.scenario:match("unknown key '([^']+)'")
      local okr, text = pcall(fs.read, path)
      if key and okr then
        -- within mocks[N], start looking at the N-th item of the mocks list
        local item = tonumber(err.scenario:match("^mocks%[(%d+)%]"))
        local n, seen, in_mocks, from = 0, 0, false, 1
        for line in text:gmatch("([^\n]*)\n?") do
          n = n + 1
          if line:match("^mocks%s*:") then in_mocks = true
          elseif line:match("^%S") then in_mocks = false
          elseif in_mocks and line:match("^%s*%- ") then
            seen = seen + 1
            if seen == item then from = n end
          end
        end
        n = 0
        local k = key:gsub("%p", "%%%0")
        for line in text:gmatch("([^\n]*)\n?") do
          n = n + 1
          if n >= from and (line:find("[%s{,]" .. k .. "%s*:") or line:find("^" .. k .. "%s*:")) then
            return nil, string.format("%s:%d: %s", path, n, err.scenario)
          end
        end
      end
      return nil, err.scenario
    end
    error(err, 0)
  end
  local params = {}
  for k, v in pairs(doc.params or {}) do
    params[k] = type(v) == "table" and v or tostring(v)
  end
  return { runbook = doc.runbook, params = params, env = doc.env, fs = doc.fs,
           skip = doc.skip and tostring(doc.skip) or nil, rollback = doc.rollback == true }
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

-- the request table of an http call: http.request{...}, http.get(url, opts),
-- http.post(url, body_or_opts)
local function http_request(args)
  if type(args[1]) == "table" then return args[1] end
  if type(args[2]) == "table" then return args[2] end
  return {}
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(t or {}) do out[tostring(k):lower()] = v end
  return out
end

-- header values that are credentials never reach a report
local CREDENTIALS = { authorization = 1, ["proxy-authorization"] = 1, cookie = 1, ["x-api-key"] = 1,
                      ["x-auth-token"] = 1 }
local function masked(headers)
  local out = {}
  for k, v in pairs(headers) do
    out[k] = CREDENTIALS[tostring(k):lower()] and "****" or v
  end
  return out
end

-- Does mock m match the call?  Returns true, or false, the first reason and
-- how many of its fields did match (the closest mock is the one with most).
local function matches(m, call)
  local w = m.match
  if m.primitive ~= call.primitive then return false, "another primitive", -1 end
  local good, why = 0, nil
  local function field(ok, fmt, ...)
    if ok then
      good = good + 1
    elseif not why then
      why = string.format(fmt, ...)
    end
  end
  local function esc(x) return tostring(x):gsub("%p", "%%%0") end
  if w.words then field(text_match(w.words, call.words), "words: wanted '%s', got '%s'", w.words, call.words) end
  local p = m.primitive
  if p == "http" then
    if w.method then
      field(tostring(w.method):upper() == call.verb:upper(), "method: wanted %s, got %s", w.method, call.verb)
    end
    if w.url then field(text_match(w.url, call.target), "url: wanted %s, got %s", w.url, call.target) end
    local req = http_request(call.args)
    if w.headers then
      field(subset(lower_keys(w.headers), lower_keys(req.headers)), "headers: wanted %s, got %s",
            json.encode(masked(w.headers)), json.encode(masked(req.headers or {})))
    end
    if w.json then
      field(subset(w.json, req.json), "json: wanted %s, got %s", json.encode(w.json),
            req.json ~= nil and json.encode(req.json) or "no JSON body")
    end
  elseif p == "exec" then
    if w.argv then
      local argv = call.args[1]
      local same = type(argv) == "table" and #argv == #w.argv
      -- "****": a secret redacted from a recording stands for any value
      for i = 1, #w.argv do
        same = same and (w.argv[i] == "****" or tostring(argv[i]) == tostring(w.argv[i]))
      end
      field(same, "argv: wanted %s, got %s", table.concat(w.argv, " "), call.words)
    end
    if w.command then
      field(text_match(w.command, call.words), "command: wanted '%s', got '%s'", w.command, call.words)
    end
  elseif p == "sh" then
    if w.command then
      local cmd = tostring(call.args[1])
      field(text_match(w.command, cmd), "command: wanted '%s', got '%s'", w.command, cmd)
    end
  elseif p == "docker" then
    if w.verb then field(w.verb == call.verb, "verb: wanted %s, got %s", w.verb, call.verb) end
    if w.name then field(text_match(w.name, call.target), "name: wanted %s, got %s", w.name, call.target) end
  elseif p == "kubectl" then
    if w.verb then field(w.verb == call.verb, "verb: wanted %s, got %s", w.verb, call.verb) end
    if w.kind then
      local target = w.name and (w.kind .. "/" .. w.name) or w.kind
      local ok = text_match(target, call.target) or
                 (not w.name and call.target:match("^" .. esc(w.kind) .. "/") ~= nil)
      field(ok, "kind/name: wanted %s, got %s", target, call.target)
    elseif w.name then
      field(call.target:find(w.name, 1, true) ~= nil, "name: wanted %s, got %s", w.name, call.target)
    end
    if w.namespace then
      local got = (" " .. call.words .. " "):match(" %-n (%S+) ") or "none"
      field(got == w.namespace, "namespace: wanted %s, got %s", w.namespace, got)
    end
    for _, a in ipairs(w.args or {}) do
      field((" " .. call.words .. " "):find(" " .. esc(a) .. " ") ~= nil,
            "args: wanted %s in the command, got %s", tostring(a), call.words)
    end
  elseif p == "db" then
    if w.verb then field(w.verb == call.verb, "verb: wanted %s, got %s", w.verb, call.verb) end
    if w.sql then
      local sql = type(call.args[2]) == "string" and call.args[2]:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "") or ""
      field(text_match(w.sql, sql), "sql: wanted '%s', got '%s'", w.sql, sql)
    end
    if w.url then field(text_match(w.url, call.target), "url: wanted %s, got %s", w.url, call.target) end
  elseif p == "notify" then
    if w.channel then field(w.channel == call.verb, "channel: wanted %s, got %s", w.channel, call.verb) end
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
  local keys = {}
  for k in pairs(m.match) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = m.match[k]
    if k == "headers" and type(v) == "table" then v = masked(v) end
    parts[#parts + 1] = k .. ": " .. (type(v) == "table" and json.encode(v) or tostring(v))
  end
  return string.format("mocks[%d] %s { %s }", m.index, m.primitive, table.concat(parts, ", "))
end

-- ---- answering ---------------------------------------------------------------------

-- errors in the primitives' own words: "http GET URL: ...", "exec ARGV: ..."
local function fail_call(call, msg)
  local prefix = (call.primitive == "http" or call.primitive == "exec") and (call.primitive .. " ") or ""
  error(prefix .. call.words .. ": " .. msg, 0)
end

local function http_response(call, r)
  local req = http_request(call.args)
  if r.error then
    if req.check == false then
      return setmetatable({ ok = false, status = 0, error = "http " .. call.words .. ": " .. r.error },
                          rt.http_response_mt)
    end
    fail_call(call, r.error)
  end
  local body = r.body or (r.json ~= nil and json.encode(r.json)) or ""
  local headers = lower_keys(r.headers)
  if r.json ~= nil and not headers["content-type"] then headers["content-type"] = "application/json" end
  local status = r.status or 200
  return setmetatable({ status = status, ok = status < 400, body = body, headers = headers,
                        time = 0.0, url = call.target, method = call.verb }, rt.http_response_mt)
end

local last_line = rt.last_line

local function exec_result(call, r)
  -- a failure before any exit code (not found, timed out) raises whatever
  -- check says, as the real exec does
  if r.error then fail_call(call, r.error) end
  local code = r.code or 0
  local res = { code = code, ok = code == 0, stdout = r.stdout or "", stderr = r.stderr or "", time = 0.0 }
  local opts = call.args[2]
  if code ~= 0 and not (type(opts) == "table" and opts.check == false) then
    rt.note_result(res)
    local why = last_line(res.stderr)
    fail_call(call, string.format("exit code %d%s", code, why ~= "" and (": " .. why) or ""))
  end
  return res
end

-- the call's options table, if it passed one with check = false
local function unchecked(call)
  for i = 1, call.args.n or #call.args do
    local a = call.args[i]
    if type(a) == "table" and a.check == false then return true end
  end
  return false
end

local function plain_result(call, r)
  if r.error then
    -- kubectl with check = false answers as it does live: the failed
    -- command's result instead of an error
    if call.primitive == "kubectl" and unchecked(call) then
      local code = r.code or 1
      return { ok = false, code = code, stdout = "", stderr = r.error, error = r.error }
    end
    fail_call(call, r.error)
  end
  if call.primitive == "db" then
    if call.verb == "query" then return setmetatable(r.rows or {}, json.array_mt) end
    if call.verb == "exec" then return r.affected or 0 end
  end
  if r.json ~= nil then return r.json end
  if r.result ~= nil then return r.result end
  local out = {}
  for k, v in pairs(r) do out[k] = v end
  if next(out) == nil then out.ok = true end
  return out
end

-- ---- fs in a scratch directory -------------------------------------------------

local scratch

local function in_scratch(p)
  if type(p) ~= "string" then return p end
  if p:sub(1, 1) == "/" then return scratch .. p end
  return scratch .. "/" .. p
end

local function out_of_scratch(v)
  if type(v) == "string" and v:sub(1, #scratch + 1) == scratch .. "/" then return v:sub(#scratch + 1) end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = out_of_scratch(x) end
  end
  return v
end

-- rt.scenario_scratch(dir, files): the scratch directory, seeded with
-- files = { ["/etc/app.conf"] = "text" | { file = "name next to the scenario" } }
function rt.scenario_scratch(dir, files)
  local ok, err = pcall(function() return rt.scenario_seed(dir, files) end)
  if ok then return nil end
  if type(err) == "table" and err.scenario then return err.scenario end
  return tostring(err)
end

-- A seed is the text, or { file = NAME | text = "...", age_days = N }: age_days
-- sets the file's modification time that many days before the scenario's
-- now(), so retention (backup.plan{ keep_days }) can be tested.  Seeds are
-- written in path order, so files without an age are oldest-first by name.
function rt.scenario_seed(dir, files)
  scratch = dir
  local paths = {}
  for path in pairs(files or {}) do paths[#paths + 1] = tostring(path) end
  table.sort(paths)
  for _, path in ipairs(paths) do
    local content, age = files[path], nil
    if type(content) == "table" then
      for k in pairs(content) do
        if k ~= "file" and k ~= "text" and k ~= "age_days" then
          bad("fs[%s]: unknown key '%s' (file, text, age_days)", path, tostring(k))
        end
      end
      if (content.file == nil) == (content.text == nil) then
        bad("fs[%s]: the text, or { file = NAME } or { text = ... }, with an optional age_days", path)
      end
      age = content.age_days
      if age ~= nil and type(age) ~= "number" then bad("fs[%s]: age_days must be a number", path) end
      content = content.text or read_file(scenario_dir, content.file)
    end
    local full = in_scratch(path)
    fs.mkdir(full:match("^(.*)/[^/]*$"), { parents = true })
    fs.write(full, tostring(content), { mode = "0644" })
    if age then rt.set_mtime(full, now() - age * 86400) end
  end
end

local PATH_ARGS = { copy = 2, move = 2 }

-- rt.scenario_call(info, raw, ...) -> the action's result, from the mocks.
-- info: { primitive, verb, target, words, class }; raw: the primitive's own
-- function (fs works for real, inside the scenario's scratch directory).
function rt.scenario_call(info, raw, ...)
  local call = info
  call.args = table.pack(...)
  if call.primitive == "fs" or (call.primitive == "yaml" and call.verb == "load") then
    local args = { ... }
    args[1] = in_scratch(args[1])
    if PATH_ARGS[call.verb] then args[2] = in_scratch(args[2]) end
    if call.class == "mutate" then -- the directories the real world had
      rt.mkdir_parents(PATH_ARGS[call.verb] and args[2] or args[1])
    end
    local r = table.pack(pcall(raw, table.unpack(args, 1, call.args.n)))
    if not r[1] then -- the primitive's own message, with the runbook's paths
      local msg = tostring(r[2]):gsub("^runbook/scenario%.lua:%d+: ", "")
      error(out_of_scratch(msg:gsub(scratch:gsub("%p", "%%%0"), "")), 0)
    end
    return out_of_scratch(table.unpack(r, 2, r.n))
  end
  if call.primitive == "db" and call.verb == "open" then
    return rt.scenario_db_conn(call.target)
  end
  if call.primitive == "sleep" or call.primitive == "confirm" then return raw(...) end
  local closest, closest_why, best = nil, nil, -1
  for _, m in ipairs(S.mocks) do
    local ok, why = matches(m, call)
    if ok then
      m.calls = m.calls + 1
      local r = m.responses[math.min(m.calls, #m.responses)]
      if call.primitive == "notify" then
        local a = call.args[1]
        local text = type(a) == "table" and (a.text or a.summary or a.subject or a.body) or nil
        if call.verb == "webhook" then text = json.encode(call.args[2]) end
        S.notifications[#S.notifications + 1] = { channel = call.verb, text = tostring(text or "") }
      end
      if call.primitive == "http" then return http_response(call, r) end
      if call.primitive == "exec" or call.primitive == "sh" then return exec_result(call, r) end
      return plain_result(call, r)
    end
    local score = select(3, matches(m, call)) or -1
    if m.primitive == call.primitive and score > best then closest, closest_why, best = m, why, score end
  end
  local hint = closest and string.format("; closest: %s, which did not match: %s", describe_mock(closest), closest_why)
               or string.format("; there is no %s mock", call.primitive)
  local msg = string.format("no mock answers `%s`%s", call.words, hint)
  S.unmatched = S.unmatched or msg -- fails the scenario even if the runbook caught it
  error(msg, 0)
end

-- every action the run recorded, for expectations and coverage (set by the
-- C side; line: the runbook file's line that led to it, 0 if none)
function rt.scenario_action(words, class, status, line)
  S.actions[#S.actions + 1] = { words = words, class = class, status = status }
  if line > 0 then S.lines = S.lines or {}; S.lines[line] = true end
end

function rt.scenario_step(index, name, status)
  S.steps = S.steps or {}
  S.steps[index] = status
end

-- calls that may change the world, found in the source by name: the ones no
-- scenario reached are what coverage reports
local MUTATING_CALLS = {
  "exec%s*[%({]", "sh%s*[%({]", "fs%.write", "fs%.append", "fs%.remove", "fs%.mkdir", "fs%.copy",
  "fs%.move", "http%.post", "http%.put", "http%.patch", "http%.delete", "http%.request",
  "docker%.restart", "docker%.start", "docker%.stop", "docker%.kill", "docker%.update",
  "docker%.prune", "kubectl%.scale", "kubectl%.rollout_restart", "kubectl%.rollout_undo",
  "kubectl%.set_env", "kubectl%.set_image", "kubectl%.delete", "kubectl%.apply", "kubectl%.run",
  "notify%.%a+", ":exec%s*%(", "db%.backup", "db%.restore", ":restart%s*%(", ":up%s*[%({]",
  ":down%s*[%({]", ":pull%s*[%({]", "run_runbook%s*%(",
  -- stdlib functions that change something (stdlib/*.lua)
  "compose%.restart", "compose%.stop", "compose%.start", "compose%.up", "escalation%.notify",
  "kafka%.reset_offsets", "backup%.prune", ":optimize%s*%(", ":drop_partition%s*%(", ":del%s*%(",
  ":flushdb%s*%(", ":config_set%s*%(", ":command%s*%(",
}

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
    for _, pat in ipairs(MUTATING_CALLS) do
      local call = code:match("[%w_.:]*" .. pat)
      if call then cov.calls[#cov.calls + 1] = { line = n, call = call:gsub("[%s%(%{]+$", "") }; break end
    end
    if n > 100000 then break end
  end
  for line in pairs(S.lines or {}) do cov.lines[#cov.lines + 1] = line end
  table.sort(cov.lines)
  return cov
end

-- ---- coverage over many scenarios (runbook test --coverage) ----------------

local COV = {}

function rt.coverage_merge(cov)
  local c = COV[cov.runbook]
  if not c then
    c = { steps = {}, calls = cov.calls, lines = {} }
    COV[cov.runbook] = c
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

-- rt.scenario_verdict(result) -> { failures } where result has outcome,
-- failed_step, state, output
function rt.scenario_verdict(result)
  local e, failures = S.expect, {}
  local function fail(fmt, ...) failures[#failures + 1] = string.format(fmt, ...) end
  if S.unmatched then fail("%s", S.unmatched) end
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
