-- common: what the runbooks of this library share (thresholds, parsers).
--
--   local common = require "common"      -- found in runbooks/lib/
--   local pct = common.df_pct(exec({ "df", "-P", "/" }).stdout)
--   local level = common.disk_level(pct)  -- "ok", "warning" or "critical"
--
-- Data and pure functions only: every effect stays in the runbooks, where
-- it is audited and where --dry-run and the scenarios can see it.
local M = {}

-- Disk usage in percent: a warning from `warning`, critical from `critical`.
M.DISK = { warning = 80, critical = 90 }

-- The use% of the last line of `df -P PATH` (the filesystem of PATH), or
-- nil when the output has no such column.
function M.df_pct(text)
  local pct
  for line in tostring(text or ""):gmatch("[^\n]+") do
    local p = line:match("%s(%d+)%%%s")
    if p then pct = tonumber(p) end
  end
  return pct
end

-- "ok", "warning" or "critical" for a disk usage in percent.
function M.disk_level(pct, thresholds)
  local t = thresholds or M.DISK
  if pct == nil then return "unknown" end
  if pct >= t.critical then return "critical" end
  if pct >= t.warning then return "warning" end
  return "ok"
end

return M
