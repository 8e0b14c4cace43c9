-- `runbook run ... --record FILE.scenario.yaml`: every action of a real run
-- (or a dry-run) becomes part of a scenario -- reads as mocks with the
-- responses they really got, mutating actions as expectations (and mocks
-- that answer them) -- so a drill on staging becomes a regression test.
-- The C side (src/record.c) feeds rt.record_action and writes the files.
local rt = ...

local R

function rt.record_start()
  R = { entries = {} }
end

-- rt.record_action(info, simulated, args, results, error)
function rt.record_action(info, simulated, args, results, err)
  R.entries[#R.entries + 1] = { info = info, simulated = simulated, args = args,
                                results = results, error = err }
end

local BIG = 4096 -- bodies and outputs larger than this go to files beside the scenario
local NOT_MOCKED = { fs = 1, json = 1, yaml = 1, confirm = 1, regex = 1 }

local function collapse(sql)
  return (tostring(sql):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- the cause of an error, without "file:line: " and the action's own words
local function cause(err, info)
  local msg = tostring(err)
  local at = msg:find(info.words, 1, true)
  if at then msg = msg:sub(at + #info.words):gsub("^: ", "") end
  return msg
end

local function plain(v, seen)
  -- results as plain data: metatables dropped, functions and userdata out
  local t = type(v)
  if t ~= "table" then
    if t == "function" or t == "thread" or (t == "userdata" and v ~= json.null) then return nil end
    return v
  end
  seen = seen or {}
  if seen[v] then return nil end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x, seen) end
  seen[v] = nil
  if getmetatable(v) == json.array_mt then setmetatable(out, json.array_mt) end
  return out
end

-- the mock matcher and the response for one action
local function mock_of(e, files, stem)
  local i, a, res = e.info, e.args, e.results
  local function file_for(kind, data)
    if #data <= BIG then return nil end
    local name = string.format("%s.%d.%s", stem, #files + 1, kind)
    files[#files + 1] = { name = name, data = data }
    return name
  end
  local p = i.primitive
  local match, respond
  if p == "http" then
    match = { method = i.verb, url = i.target }
    if e.error then
      respond = { error = cause(e.error, { words = "http " .. i.words }) }
    elseif res[1] then
      local r = res[1]
      respond = { status = r.status }
      local ct = r.headers and r.headers["content-type"]
      if ct then respond.headers = { ["content-type"] = ct } end
      local body = r.body or ""
      local f = file_for("body", body)
      if f then respond.body_file = f elseif body ~= "" then respond.body = body end
    end
  elseif p == "exec" or p == "sh" then
    if p == "exec" then
      local argv = {}
      for k, v in ipairs(type(a[1]) == "table" and a[1] or {}) do argv[k] = tostring(v) end
      match = { argv = argv }
    else
      match = { command = tostring(a[1]) }
    end
    local r = res[1] or {}
    respond = { code = r.code or 0 }
    for _, s in ipairs({ "stdout", "stderr" }) do
      local text = r[s] or ""
      local f = file_for(s, text)
      if f then respond[s .. "_file"] = f elseif text ~= "" then respond[s] = text end
    end
    if e.error and not res[1] then respond = { error = cause(e.error, { words = "exec " .. i.words }) } end
  elseif p == "db" then
    if i.verb == "open" then return nil end -- a scenario gives a stand-in connection
    match = { verb = i.verb, sql = collapse(a[2]) }
    if e.error then
      respond = { error = cause(e.error, i) }
    elseif i.verb == "query" then
      respond = { rows = plain(res[1]) or {} }
    else
      respond = { affected = math.tointeger(res[1]) or 0 }
    end
  elseif p == "notify" then
    match = { channel = i.verb }
    respond = {}
  else -- docker, kubectl and whatever comes: the command in its own words
    match = { words = i.words }
    if e.error then
      respond = { error = cause(e.error, i) }
    elseif type(res[1]) == "table" then
      respond = { json = plain(res[1]) }
    else
      respond = {}
    end
  end
  return match, respond
end

local function relpath(from_dir, to)
  local a, b = {}, {}
  for part in from_dir:gmatch("[^/]+") do a[#a + 1] = part end
  for part in to:gmatch("[^/]+") do b[#b + 1] = part end
  local k = 1
  while k <= #a and k < #b and a[k] == b[k] do k = k + 1 end
  local out = {}
  for _ = k, #a do out[#out + 1] = ".." end
  for j = k, #b do out[#out + 1] = b[j] end
  return table.concat(out, "/")
end

-- rt.record_finish(meta) -> yaml text, { {name, data}... }
-- meta: { path (of the scenario, absolute), runbook (absolute), params,
-- params_spec, outcome, failed_step, stem }
function rt.record_finish(meta)
  local files, mocks, by_key, actions, notes, seeds = {}, {}, {}, {}, {}, {}
  for _, e in ipairs(R.entries) do
    local i = e.info
    if i.primitive == "fs" then
      if i.verb == "read" and e.results[1] then seeds[tostring(e.args[1])] = e.results[1] end
      if i.class == "mutate" and not e.error then actions[#actions + 1] = i.words end
    elseif not NOT_MOCKED[i.primitive] then
      local match, respond = mock_of(e, files, meta.stem)
      if match then
        local key = i.primitive .. json.encode(match)
        local m = by_key[key]
        if not m then
          m = { [i.primitive] = match, responses = {} }
          by_key[key] = m
          mocks[#mocks + 1] = m
        end
        m.responses[#m.responses + 1] = respond
      end
      if i.class == "mutate" and not e.error then actions[#actions + 1] = i.words end
      if i.primitive == "notify" and not e.error then
        local t = e.args[1]
        local text = type(t) == "table" and (t.text or t.summary or t.subject) or nil
        notes[#notes + 1] = { channel = i.verb, text = text and tostring(text):sub(1, 60) or nil }
      end
    end
  end
  local out_mocks = setmetatable({}, json.array_mt)
  for _, m in ipairs(mocks) do
    local r = m.responses
    m.responses = nil
    m.respond = #r == 1 and r[1] or setmetatable(r, json.array_mt)
    out_mocks[#out_mocks + 1] = m
  end
  local params = {}
  for k, v in pairs(meta.params or {}) do
    local spec = (meta.params_spec or {})[k]
    if not (type(spec) == "table" and spec.secret) then params[k] = v end
  end
  local fs_seed
  for path, content in pairs(seeds) do
    fs_seed = fs_seed or {}
    if #content > BIG then
      local name = string.format("%s.%d.file", meta.stem, #files + 1)
      files[#files + 1] = { name = name, data = content }
      fs_seed[path] = { file = name }
    else
      fs_seed[path] = content
    end
  end
  local expect = { outcome = meta.outcome }
  if meta.failed_step then expect.failed_step = meta.failed_step end
  if #actions > 0 then expect.actions = setmetatable(actions, json.array_mt) end
  if #notes > 0 then expect.notifications = setmetatable(notes, json.array_mt) end
  local dir = meta.path:match("^(.*)/[^/]*$") or "."
  local doc = { runbook = relpath(dir, meta.runbook), mocks = out_mocks, expect = expect }
  if next(params) then doc.params = params end
  if fs_seed then doc.fs = fs_seed end
  local head = string.format("# Recorded by `runbook run --record` on %s: the reads are mocks with the\n" ..
                             "# responses they got, the mutating actions are expectations.  Review, then\n" ..
                             "# `runbook test %s`.\n", os.date("!%Y-%m-%d %H:%M UTC"), meta.path:match("[^/]+$"))
  -- secrets out before the YAML is made, so a redacted value is written as
  -- a quoted "****" rather than spliced into the YAML's syntax
  local function redact(v)
    if type(v) == "string" then return rt.redact(v) end
    if type(v) ~= "table" then return v end
    local out = setmetatable({}, getmetatable(v))
    for k, x in pairs(v) do out[redact(k)] = redact(x) end
    return out
  end
  for _, f in ipairs(files) do f.data = rt.redact(f.data) end
  return head .. yaml.encode(redact(doc)), files
end
