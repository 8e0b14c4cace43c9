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

-- A declarer of a module's functions (or of an object's methods): each
-- declare(name, sig, options, fn) sets t[name] to fn behind public() and the
-- check of its signature, declared as prefix .. name ("backup." or, for a
-- method, "redis:", whose ":" makes the check leave out self).
function M.declarer(t, prefix, public)
  local signature = require "signature"
  return function(name, sig, options, fn)
    t[name] = signature.wrap(prefix .. name, sig, options, public(fn))
  end
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

-- the engine's time.duration, captured when the stdlib is first required
-- (a runbook may later assign a global of its own named time)
local time_duration = time and time.duration

-- A duration as Prometheus and Alertmanager write it ("30s", "1h30m",
-- "500ms", units ms s m h d w y) or a number of seconds -> seconds, or
-- nil, reason.  time.duration reads it, so runbooks and the stdlib accept
-- the same text; this only turns its error into a reason.
function M.duration(v)
  if type(v) ~= "string" and type(v) ~= "number" then
    return nil, 'expected a duration such as "5m" or seconds, got ' .. type(v)
  end
  local ok, secs = pcall(time_duration, v)
  if ok then return secs end
  return nil, (tostring(secs):gsub("^time%.duration: ", ""))
end

return M
