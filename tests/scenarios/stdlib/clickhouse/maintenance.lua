-- Fixture for the clickhouse module: ping, disks, partitions, merges, and
-- the maintenance mutations (optimize, drop a partition after confirm).
runbook {
  name = "stdlib-tests/clickhouse-maintenance",
  params = {
    url = { default = "http://clickhouse.test:8123" },
    password = { secret = true, default = "s3cr3t-ch" },
    table = { default = "metrics.events" },
    drop = { default = "" },
  },
}

local clickhouse = require "clickhouse"
local ch = clickhouse.client(params.url, { user = "ops", password = params.password, database = "metrics" })

step("Ping", function()
  state.up = ch:ping()
  check(state.up, "ClickHouse at %s does not answer /ping", params.url)
end)

step("Disks", function()
  local disks = ch:disks()
  state.disks = {}
  for _, d in ipairs(disks) do
    state.disks[#state.disks + 1] = string.format("%s %.1f%%", d.name, d.used_pct)
  end
  state.default_free = disks[2].free
end)

step("Partitions", function()
  local parts = ch:partitions(params.table)
  state.partitions = #parts
  state.oldest = parts[1].partition
  state.rows = parts[2].rows
  local merges = ch:query("SELECT count() AS n FROM system.merges")
  state.merges = merges[1].n
end)

step("Optimize", function()
  local r = ch:optimize(params.table, { partition = 202402 })
  state.optimized = r.ok
  ch:exec("SYSTEM FLUSH LOGS")
end)

step("Drop a partition", { when = function() return params.drop ~= "" end }, function()
  if confirm("drop partition " .. params.drop .. " of " .. params.table .. "?") then
    ch:drop_partition(params.table, params.drop)
    state.dropped = params.drop
  end
end)
