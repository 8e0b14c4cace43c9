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

return M
