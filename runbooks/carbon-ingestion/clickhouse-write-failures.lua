-- carbon-ingestion/clickhouse-write-failures: Issue 4 of the 254Carbon
-- ingestion platform's Operations Runbook, over ClickHouse's HTTP interface.
--
--   runbook run carbon-ingestion/clickhouse-write-failures --dry-run
--   runbook run carbon-ingestion/clickhouse-write-failures \
--       --param clickhouse=http://clickhouse.internal:8123 --param partition=2024-01-01

local ci = require "carbon_ingestion"
local clickhouse = require "clickhouse"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/clickhouse-write-failures",
  title       = "ClickHouse write failures (projection errors, write latency > 5s)",
  description = [[Pings ClickHouse, reads the inserts of the last 5 minutes (system.query_log), the
tables' parts (system.parts) and the disks (system.disks); when the disk is full drops an old
partition of gold_ohlc_bars after a confirm(), optimizes the table (OPTIMIZE ... FINAL) after a
drop or when it has too many parts, checks the connection limits, verifies that inserts succeed
again, and escalates when ClickHouse is down or writes keep failing for 5 minutes.
002_f134cbc51c64e878.txt › Common Issues › Issue 4: ClickHouse Write Failures.]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 4: ClickHouse Write Failures",
  tags        = { "carbon-ingestion", "incident", "clickhouse" },
  mutates     = { "drops a partition of carbon_ingestion.gold_ohlc_bars (after confirm)",
                  "OPTIMIZE TABLE carbon_ingestion.gold_ohlc_bars FINAL",
                  "escalates (PagerDuty or email + Slack) when writes keep failing" },
  params = {
    clickhouse     = { default = ci.clickhouse_url, help = "ClickHouse HTTP interface" },
    user           = { default = "default", help = "ClickHouse user" },
    password       = { secret = true, default = "", help = "ClickHouse password (empty: none)" },
    database       = { default = ci.clickhouse_database, help = "the platform's database" },
    table          = { default = ci.clickhouse_table, help = "the table whose old partitions go first" },
    partition      = { default = "",
                       help = "partition to drop when the disk is full (the document's example: " ..
                              "2024-01-01); empty: the table's oldest partition" },
    disk_threshold = { type = "number", default = 90, help = "disk used % that counts as full" },
    max_parts      = { type = "number", default = 300,
                       help = "active parts of a table above which it is optimized (ClickHouse " ..
                              "refuses inserts at parts_to_throw_insert, 300 by default)" },
    write_latency  = { type = "number", default = ci.thresholds.write_latency_s,
                       help = "p95 insert latency (s) that counts as slow" },
    failing_minutes = { type = "number", default = ci.thresholds.write_failing_min,
                       help = "minutes of failing writes before escalating" },
    pool_usage     = { type = "number", default = 0.8,
                       help = "share of max_connections in use that asks to check the pools" },
  },
}

local ch = clickhouse.client(params.clickhouse, {
  user = params.user, password = params.password ~= "" and params.password or nil })
local db_table = params.database .. "." .. params.table

-- inserts into the database in the last `minutes`: { ok, failed, p95_ms, last_error } or nil
local function recent_inserts(minutes)
  local ok, rows = pcall(ch.query, ch, string.format(
    "SELECT countIf(type = 'QueryFinish') AS ok, countIf(type = 'ExceptionWhileProcessing') AS failed, " ..
    "quantileIf(0.95)(query_duration_ms, type = 'QueryFinish') AS p95_ms, " ..
    "anyIf(exception, type = 'ExceptionWhileProcessing') AS last_error " ..
    "FROM system.query_log WHERE event_time > now() - INTERVAL %d MINUTE " ..
    "AND query_kind = 'Insert' AND has(databases, '%s')", minutes, params.database))
  if not ok then
    log.warn("no insert statistics (is system.query_log enabled?): %s", tostring(rows))
    return nil
  end
  local r = rows[1] or {}
  return { ok = tonumber(r.ok) or 0, failed = tonumber(r.failed) or 0,
           p95_ms = tonumber(r.p95_ms) or 0, last_error = r.last_error }
end

step("Check ClickHouse health", {
  description = "Issue 4 › Diagnosis: `curl http://clickhouse:8123/ping`.",
}, function()
  local up, why = ch:ping()
  state.up = up
  if up then
    log.info("%s answers /ping", params.clickhouse)
  else
    log.error("%s does not answer /ping: %s", params.clickhouse, tostring(why))
  end
end)

step("Check recent writes", {
  description = "Issue 4 › Symptoms: write latency > 5s, data not appearing; Escalation: writes " ..
                "failing for > 5 minutes (inserts of the last 5 minutes in system.query_log).",
  when = function() return state.up end,
}, function()
  local w = recent_inserts(params.failing_minutes)
  if not w then return end
  state.inserts_ok, state.inserts_failed, state.p95_ms = w.ok, w.failed, w.p95_ms
  state.writes_failing = w.failed > 0 and w.ok == 0
  state.writes_slow = w.p95_ms > params.write_latency * 1000
  log[(state.writes_failing or state.writes_slow) and "warn" or "info"](
    "last %d min: %d insert(s) ok, %d failed, p95 %.0f ms%s", params.failing_minutes, w.ok, w.failed,
    w.p95_ms, w.last_error and w.last_error ~= "" and ("; last error: " .. w.last_error) or "")
end)

step("Check table statistics", {
  description = "Issue 4 › Diagnosis: `clickhouse-client --query=\"SELECT * FROM system.parts " ..
                "WHERE database='carbon_ingestion'\"` (active parts, rows and bytes per table).",
  when = function() return state.up end,
}, function()
  local rows = ch:query(string.format(
    "SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts " ..
    "WHERE database = '%s' AND active GROUP BY table ORDER BY parts DESC", params.database))
  state.most_parts, state.busiest_table = 0, nil
  for _, r in ipairs(rows) do
    log.info("  %-28s %6d parts %14d rows %10.1f MiB", r.table, tonumber(r.parts) or 0,
             tonumber(r.rows) or 0, (tonumber(r.bytes) or 0) / 1048576)
    if (tonumber(r.parts) or 0) > state.most_parts then
      state.most_parts, state.busiest_table = tonumber(r.parts), r.table
    end
  end
  state.too_many_parts = state.most_parts > params.max_parts
  if state.too_many_parts then
    log.warn("%s.%s has %d active parts (> %d): merges are behind", params.database,
             state.busiest_table, state.most_parts, params.max_parts)
  end
end)

step("Check disk space", {
  description = "Issue 4 › Diagnosis: `df -h /var/lib/clickhouse` (system.disks through the HTTP " ..
                "interface).",
  when = function() return state.up end,
}, function()
  state.disk_pct = 0
  for _, d in ipairs(ch:disks()) do
    log.info("disk %s (%s): %.1f%% used, %.1f GiB free", d.name, d.path, d.used_pct, d.free / 2^30)
    if d.used_pct > state.disk_pct then state.disk_pct = d.used_pct end
  end
  state.disk_full = state.disk_pct >= params.disk_threshold
  if state.disk_full then
    log.warn("disk %.1f%% used (>= %d%%): clean old partitions", state.disk_pct, params.disk_threshold)
  end
end)

step("Clean old partitions", {
  description = "Issue 4 › Resolution 1: if disk full, `ALTER TABLE carbon_ingestion.gold_ohlc_bars " ..
                "DROP PARTITION '2024-01-01'` -- the given partition or the oldest, after a confirm().",
  when = function() return state.up and state.disk_full end,
}, function()
  local parts = ch:partitions(db_table)
  check(#parts > 0, "%s has no active partition to drop", db_table)
  local victim
  if params.partition ~= "" then
    for _, p in ipairs(parts) do
      if p.partition == params.partition or p.partition_id == params.partition then victim = p end
    end
    check(victim, "%s has no partition %s (oldest: %s)", db_table, params.partition, parts[1].partition)
  else
    victim = parts[1]
  end
  log.info("%d partition(s), oldest %s; dropping %s: %d rows, %.1f MiB", #parts, parts[1].partition,
           victim.partition, victim.rows or 0, (victim.bytes or 0) / 1048576)
  state.partition = victim.partition
  if not confirm(string.format("Drop partition %s of %s (%d rows, %.1f MiB)? The data is deleted.",
                               victim.partition, db_table, victim.rows or 0, (victim.bytes or 0) / 1048576)) then
    log.warn("partition %s kept: the disk is still full", victim.partition)
    state.dropped = false
    return
  end
  ch:drop_partition(db_table, victim.partition)
  state.dropped = true
  state.rehearsal = dry_run() -- nothing dropped: the disk and the inserts would not tell
end)

step("Optimize tables", {
  description = "Issue 4 › Resolution 2: `OPTIMIZE TABLE carbon_ingestion.gold_ohlc_bars FINAL` " ..
                "(after a drop, or for a table with too many parts).",
  when = function() return state.up and (state.dropped or state.too_many_parts) end,
}, function()
  local target = state.too_many_parts and (params.database .. "." .. state.busiest_table) or db_table
  ch:optimize(target, { final = true })
  state.optimized = target
  state.rehearsal = dry_run()
end)

step("Check connection pool", {
  description = "Issue 4 › Resolution 3: connections in use against ClickHouse's max_connections; " ..
                "raising the projection service's pool size is the operator's (a checkpoint).",
  when = function() return state.up end,
}, function()
  local used = 0
  for _, r in ipairs(ch:query("SELECT metric, value FROM system.metrics WHERE metric IN " ..
                              "('TCPConnection', 'HTTPConnection', 'MySQLConnection', 'PostgreSQLConnection')")) do
    used = used + (tonumber(r.value) or 0)
  end
  local ok, rows = pcall(ch.query, ch, "SELECT value FROM system.server_settings WHERE name = 'max_connections'")
  local max = ok and rows[1] and tonumber(rows[1].value) or nil
  state.connections, state.max_connections = used, max
  log.info("%d connection(s) in use%s", used, max and string.format(" of max_connections %d", max) or "")
  if max and used >= params.pool_usage * max then
    state.pool_checked = confirm(string.format(
      "%d of %d ClickHouse connections in use: increase the pool size in the projection service " ..
      "or the connection limits in ClickHouse. Done?", used, max))
  end
end)

step("Verify writes", {
  description = "After Resolution 1-2: the disk is below the threshold and inserts succeed again " ..
                "(waits up to 5 minutes for a successful insert).",
  when = function()
    return state.up and (state.dropped or state.optimized ~= nil) and not state.rehearsal
  end,
}, function()
  local still_full = false
  for _, d in ipairs(ch:disks()) do
    if d.used_pct >= params.disk_threshold then still_full = true end
  end
  local ok = pcall(wait_until, function()
    local w = recent_inserts(1)
    return w ~= nil and w.ok > 0
  end, { timeout = params.failing_minutes * 60, every = 15, what = "a successful insert" })
  state.resolved = ok and not still_full
  log[state.resolved and "info" or "error"]("writes %s, disk %s", ok and "succeed" or "still failing",
                                            still_full and "still full" or "below the threshold")
  if state.resolved then state.writes_failing = false end
end)

step("Escalate to the Platform Team", {
  description = "Issue 4 › Escalation: if writes failing for > 5 minutes, escalate to Platform Team " ..
                "(Escalation Decision Tree: ClickHouse down -> P1 page; writes failing -> P2).",
  when = function()
    return not state.up or (state.writes_failing and not state.resolved)
  end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree,
    { service_down = not state.up, performance_degraded = true })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  local what = state.up and string.format("ClickHouse writes to %s failing for %d+ min (disk %.1f%%)",
                                          params.database, params.failing_minutes, state.disk_pct or 0)
               or string.format("ClickHouse %s does not answer /ping", params.clickhouse)
  escalation.notify(ci.level(leaf.level), {
    summary = what,
    details = { inserts_failed = state.inserts_failed, disk_pct = state.disk_pct,
                partition_dropped = state.dropped and state.partition or nil,
                optimized = state.optimized, escalate_to = ci.contact_line("platform") },
    dedup_key = "carbon-ingestion/clickhouse-writes",
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "%s: escalated (%s) to %s", what, leaf.level, ci.contact_line("platform"))
end)
