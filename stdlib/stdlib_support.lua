-- Helpers shared by the stdlib modules (not meant for runbooks).
local M = {}

-- a list that json.encode writes as [] even when empty
function M.list()
  return setmetatable({}, json and json.array_mt)
end

-- Errors meant for the caller: a module raises them with fail() as a tagged
-- table, and each public function re-raises the message at the runbook's
-- line (level 2), while a bug inside the module keeps its own position.
-- Returns fail, public.
function M.errors(tag)
  local function fail(fmt, ...)
    error({ [tag] = string.format(fmt, ...) }, 0)
  end
  local function public(f)
    return function(...)
      local r = table.pack(pcall(f, ...))
      if r[1] then return table.unpack(r, 2, r.n) end
      local e = r[2]
      if type(e) == "table" and e[tag] then error(e[tag], 2) end
      error(e, 0)
    end
  end
  return fail, public
end

-- an error message without the "file.lua:123: " its raiser put in front
function M.cause(e)
  return (tostring(e):gsub("^[^:\n]*%.lua:%d+: ", ""))
end

-- the last non-blank line of a command's output, trimmed
function M.last_line(s)
  local line = ""
  for l in tostring(s or ""):gmatch("[^\n]+") do
    if l:find("%S") then line = l end
  end
  return (line:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- argv as the operator would type it, quoted as the engine's own words are
-- (exec's dry-run and audit lines), for error messages
function M.words(argv)
  local out = {}
  for i, a in ipairs(argv) do
    a = tostring(a)
    if a == "" or a:find("[%s'\"*?$`\\]") then a = "'" .. a:gsub("'", "'\\''") .. "'" end
    out[i] = a
  end
  return table.concat(out, " ")
end

-- Edit distance with transpositions (optimal string alignment), for
-- did-you-mean: "stpe" is one step from "step", two from "stop".
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- Check an options table: nil when every key is one of `allowed` (a list),
-- else the message `unknown option 'X' for FNAME (did you mean 'Y'?)`.
-- A misspelled option must not be ignored silently (issue 16): the call
-- would run with a default the operator did not mean.  hints maps likely
-- confusions that are not typos (the API's `end` for our `stop`).
function M.unknown_option(fname, opts, allowed, hints)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    return string.format("%s: options must be a table, got %s", fname, type(opts))
  end
  local known = {}
  for _, k in ipairs(allowed) do known[k] = true end
  local bad = {}
  for k in pairs(opts) do
    if not known[k] then bad[#bad + 1] = tostring(k) end
  end
  if #bad == 0 then return nil end
  table.sort(bad)
  local k = bad[1]
  local best = hints and hints[k]
  if not known[best] then
    best = nil
    local bestd = math.max(2, #k // 3) + 1
    for _, a in ipairs(allowed) do
      local d = distance(k:lower(), a:lower())
      if d < bestd then best, bestd = a, d end
    end
  end
  return string.format("unknown option '%s' for %s%s", k, fname,
                       best and string.format(" (did you mean '%s'?)", best) or "")
end

-- the engine's time.duration, captured when the stdlib is first required
-- (a runbook may later assign a global of its own named time)
local time_duration = time and time.duration

-- A duration as Prometheus and Alertmanager write it ("30s", "1h30m",
-- "500ms", units ms s m h d w y) or a number of seconds -> seconds, or
-- nil, reason.  time.duration reads it, so runbooks and the stdlib accept
-- the same text; this only turns its error into a reason.
function M.duration(v)
  local ok, secs = pcall(time_duration, v)
  if ok then return secs end
  return nil, (tostring(secs):gsub("^time%.duration: ", ""))
end

return M
