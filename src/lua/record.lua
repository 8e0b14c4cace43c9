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
local ROWS = rt.rows()

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

-- What a row without a recorded hook writes as the mock's answer.
local function default_recorded(info, err, res)
  if err then return { error = cause(err, info) } end
  if type(res) == "table" then return { json = plain(res) } end
  if type(res) == "string" then return { result = res } end
  return {}
end

-- the mock that answers one action: its row's key fields (or its words)
-- and the response its recorded hook makes of the real outcome
local function mock_of(e, row, files, stem)
  local i = e.info
  local match = {}
  for name, f in pairs(row.fields) do
    if f.key and i.fields[name] ~= nil then match[name] = plain(i.fields[name]) end
  end
  if next(match) == nil then match = { words = i.words } end
  local respond
  if row.recorded then
    respond = row.recorded(i, e.error, table.unpack(e.results, 1, e.results.n or #e.results))
  else
    respond = default_recorded(i, e.error, e.results[1])
  end
  respond = plain(respond) or {}
  for _, k in ipairs((function() local ks = {} for k in pairs(respond) do ks[#ks + 1] = k end table.sort(ks) return ks end)()) do
    local v = respond[k]
    if type(v) == "string" and #v > BIG and row.respond[k] then
      local name = string.format("%s.%d.%s", stem, #files + 1, k)
      files[#files + 1] = { name = name, data = v }
      respond[k] = nil
      respond[k .. "_file"] = name
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
    local row = (ROWS[i.primitive] or {})[i.fn]
    if not row then -- nothing a scenario answers (the caller's own Lua)
    elseif row.paths then -- runs for real in the scenario's scratch directory
      -- a file's text that was read is the seed the scenario starts from
      if i.class == "read" and type(e.results[1]) == "string" and i.fields.path then
        seeds[tostring(i.fields.path)] = e.results[1]
      end
      if i.class == "mutate" and not e.error then actions[#actions + 1] = i.words end
    elseif not row.stand_in then
      local match, respond = mock_of(e, row, files, meta.stem)
      local key = i.primitive .. json.encode(match)
      local m = by_key[key]
      if not m then
        m = { [i.primitive] = match, responses = {} }
        by_key[key] = m
        mocks[#mocks + 1] = m
      end
      m.responses[#m.responses + 1] = respond
      if i.class == "mutate" and not e.error then actions[#actions + 1] = i.words end
      if row.notice and not e.error then
        local text = i.fields.text
        notes[#notes + 1] = { channel = tostring(i.fields.channel or i.verb),
                              text = text and tostring(text):sub(1, 60) or nil }
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
  -- A secret param is never written; a placeholder that passes its
  -- declaration stands in (the recording must replay as written), and every
  -- mock that carried the secret carries "****", which matches anything.
  -- With a default the param is left out: the default stands in.
  local function placeholder(spec)
    if spec.default ~= nil then return nil end
    if type(spec.choices) == "table" and spec.choices[1] ~= nil then return spec.choices[1] end
    local t = spec.type or "string"
    if t == "number" then return 0 end
    if t == "boolean" then return false end
    if t == "list" then return setmetatable({ "****" }, json.array_mt) end
    return "****"
  end
  local params = {}
  for k, v in pairs(meta.params or {}) do
    local spec = (meta.params_spec or {})[k]
    if type(spec) == "table" and spec.secret then
      params[k] = placeholder(spec)
    else
      params[k] = v
    end
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
  -- and valid UTF-8: a byte that is not becomes U+FFFD, as in every JSON
  -- document we write, so the YAML can be written and read back strictly
  local function valid(str)
    if utf8.len(str) then return str end
    local out, i = {}, 1
    while i <= #str do
      local n, bad = utf8.len(str, i)
      if n then out[#out + 1] = str:sub(i); break end
      out[#out + 1] = str:sub(i, bad - 1) .. "\u{FFFD}"
      i = bad + 1
    end
    return table.concat(out)
  end
  local function redact(v)
    if type(v) == "string" then return valid(rt.redact(v)) end
    if type(v) ~= "table" then return v end
    local out = setmetatable({}, getmetatable(v))
    for k, x in pairs(v) do out[redact(k)] = redact(x) end
    return out
  end
  for _, f in ipairs(files) do f.data = rt.redact(f.data) end
  return head .. yaml.encode(redact(doc)), files
end
