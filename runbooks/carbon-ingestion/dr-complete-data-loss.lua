local clickhouse = require "clickhouse"
local escalation = require "escalation"
local ci = require "carbon_ingestion"

runbook {
  name        = "carbon-ingestion/dr-complete-data-loss",
  title       = "DR: complete data loss -- restore ClickHouse from backup, reprocess, verify",
  description = [[Assesses what is left in ClickHouse (row counts per table, the time range of
gold_ohlc_bars), picks the newest local clickhouse-backup, and after an explicit confirmation
restores schema and data from it (`clickhouse-backup restore --schema --data`), checks the restored
row counts, asks the normalization service to reprocess the lost range (POST /reprocess), then
verifies integrity (data quality report, record counts, key metrics) and escalates when it fails.
002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 1: Complete Data Loss.]],
  source      = "002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 1: Complete Data Loss",
  severity    = "P1",
  tags        = { "carbon-ingestion", "dr", "clickhouse", "P1" },
  mutates     = { "restores the ClickHouse schema and data from a backup (drops and recreates the tables)",
                  "starts reprocessing of historical data (POST /reprocess)",
                  "pages on-call / notifies the Platform or Data Team" },
  params = {
    clickhouse_url      = { default = ci.clickhouse_url, help = "ClickHouse HTTP interface" },
    clickhouse_user     = { default = "", help = "ClickHouse user (empty: the server's default user)" },
    clickhouse_password = { secret = true, default = "", help = "ClickHouse password" },
    database            = { default = ci.clickhouse_database, help = "the platform's database" },
    table               = { default = ci.clickhouse_table, help = "the table whose count verifies the restore" },
    time_column         = { default = "aggregation_date", help = "date column of the table (affected time range)" },
    backup              = { default = "latest", help = "the clickhouse-backup to restore (latest: the newest local one)" },
    backup_command      = { type = "list", default = { "clickhouse-backup" },
                            help = "how to run clickhouse-backup where ClickHouse's files are, e.g. " ..
                                   "kubectl,exec,clickhouse-0,--,clickhouse-backup" },
    restore_timeout     = { type = "number", default = 14400, help = "seconds the restore may take (RTO: 4 hours)" },
    reprocess_url       = { default = "http://localhost:8510/reprocess", help = "the reprocessing API" },
    start_time          = { default = "2025-01-01T00:00:00Z", help = "start of the range to reprocess" },
    end_time            = { default = "2025-01-15T23:59:59Z", help = "end of the range to reprocess" },
    markets             = { type = "list", default = { "CAISO" }, help = "markets to reprocess, one request each" },
    quality_url         = { default = ci.quality_url, help = "the data quality service (Issue 3)" },
    quality_threshold   = { type = "number", default = ci.thresholds.quality_score, help = "quality score below which integrity fails (Issue 3)" },
    dashboard           = { default = "http://grafana:3000/d/pipeline-monitoring",
                            help = "where the operator validates the key metrics" },
  },
}

local RTO, RPO = 4 * 3600, 3600 -- Scenario 1 › RTO: 4 hours, RPO: 1 hour

local function ch()
  return clickhouse.client(params.clickhouse_url, {
    user = params.clickhouse_user ~= "" and params.clickhouse_user or nil,
    password = params.clickhouse_password ~= "" and params.clickhouse_password or nil,
  })
end

local function fq(t) return params.database .. "." .. t end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function rows_per_table(c)
  local out, total = {}, 0
  for _, r in ipairs(c:query(string.format(
      "SELECT table, sum(rows) AS rows FROM system.parts WHERE database = '%s' AND active " ..
      "GROUP BY table ORDER BY table", params.database))) do
    out[r.table] = tonumber(r.rows) or 0
    total = total + (tonumber(r.rows) or 0)
  end
  return out, total
end

-- rows of the verification table in the reprocessing range (dates of start_time..end_time)
local function range_count(c)
  local r = c:query(string.format("SELECT count() AS n FROM %s WHERE %s BETWEEN toDate('%s') AND toDate('%s')",
                                  fq(params.table), params.time_column, params.start_time:sub(1, 10),
                                  params.end_time:sub(1, 10)))
  return tonumber(r[1] and r[1].n) or 0
end

local function backup_cmd(...)
  local argv = {}
  for _, w in ipairs(params.backup_command) do argv[#argv + 1] = w end
  for _, w in ipairs({ ... }) do argv[#argv + 1] = w end
  return argv
end

-- `clickhouse-backup list local`: one backup per line, its name first, then
-- (by version) "2006-01-02 15:04:05" or "02/01/2006 15:04:05", the size, the
-- location; a broken one says "broken" in its description.
local function parse_backups(text)
  local out = {}
  for line in text:gmatch("[^\r\n]+") do
    local name = line:match("^(%S+)")
    if name and not line:lower():find("broken", 1, true) then
      local y, mo, d, h, mi, s = line:match("(%d%d%d%d)%-(%d%d)%-(%d%d)[ T](%d%d):(%d%d):(%d%d)")
      if not y then
        d, mo, y, h, mi, s = line:match("(%d%d)/(%d%d)/(%d%d%d%d) (%d%d):(%d%d):(%d%d)")
      end
      local t = y and os.time{ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                               hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) } or nil
      out[#out + 1] = { name = name, time = t, created = y and string.format("%s-%s-%s %s:%s:%s", y, mo, d, h, mi, s) }
    end
  end
  return out
end

step("Assess scope", {
  description = "Scenario 1 › 1: which tables are affected (rows per table of carbon_ingestion), the time " ..
                "range still present in gold_ohlc_bars, and the recovery time to expect (RTO 4 h, RPO 1 h).",
}, function()
  state.started = now()
  local c = ch()
  local up, why = c:ping()
  check(up, "ClickHouse %s does not answer /ping (%s): bring it up first (Issue 4), a restore needs it",
        params.clickhouse_url, tostring(why))
  local per, total = rows_per_table(c)
  state.rows_before, state.total_before = per, total
  for _, name in ipairs(sorted_keys(per)) do log.info("%-32s %d rows", fq(name), per[name]) end
  local ok, r = pcall(c.query, c, string.format("SELECT count() AS n, toString(min(%s)) AS first, " ..
                                                "toString(max(%s)) AS last FROM %s", params.time_column,
                                                params.time_column, fq(params.table)))
  if ok then
    state.table_rows = tonumber(r[1] and r[1].n) or 0
    state.data_range = state.table_rows > 0 and { r[1].first, r[1].last } or nil
    log.warn("%s: %d rows%s", fq(params.table), state.table_rows,
             state.data_range and string.format(", %s .. %s", r[1].first, r[1].last) or "")
  else
    state.table_rows = 0
    state.table_missing = true
    log.error("%s cannot be read: %s", fq(params.table), ci.cause(r))
  end
  log.info("%d rows in %s in all; expect up to %d h to recover (RTO), data since the backup lost (RPO %d h)",
           total, params.database, RTO // 3600, RPO // 3600)
end)

step("Select the backup", {
  description = "Scenario 1 › 2: `clickhouse-backup list local`; `latest` is resolved to the newest backup's " ..
                "name so that the confirmation and the restore name the same one.",
}, function()
  local r = exec(backup_cmd("list", "local"), { readonly = true, timeout = 300 })
  local backups = parse_backups(r.stdout)
  check(#backups > 0, "clickhouse-backup has no usable local backup:\n%s", r.stdout)
  local pick
  if params.backup == "latest" then
    for _, b in ipairs(backups) do
      if not pick or (b.time or 0) >= (pick.time or 0) then pick = b end
    end
  else
    for _, b in ipairs(backups) do
      if b.name == params.backup then pick = b end
    end
    check(pick, "no local backup named %s (there are: %s)", params.backup,
          table.concat((function() local n = {} for i, b in ipairs(backups) do n[i] = b.name end return n end)(), ", "))
  end
  state.backup, state.backup_created = pick.name, pick.created
  if pick.time then
    local age = os.time() - pick.time
    log[age > RPO and "warn" or "info"]("restoring %s, created %s (%.1f h ago; RPO 1 h)", pick.name,
                                         pick.created, age / 3600)
  else
    log.info("restoring %s", pick.name)
  end
end)

step("Restore ClickHouse from the backup", {
  description = "Scenario 1 › 2: `clickhouse-backup restore --schema --data latest` -- drops and recreates " ..
                "the backed-up tables, so it asks first (restore_timeout bounds it).",
}, function()
  check(confirm(string.format("Restore ClickHouse %s from backup %s (created %s)? This DROPS and recreates " ..
                              "the tables of the backup; %s has %d rows now.", params.clickhouse_url,
                              state.backup, tostring(state.backup_created), params.database, state.total_before)),
        "restore declined by the operator")
  exec(backup_cmd("restore", "--schema", "--data", state.backup), { timeout = params.restore_timeout })
  state.restored = true
  state.rehearsal = dry_run() -- nothing was restored
end)

step("Verify restoration", {
  description = "Scenario 1 › 2: `SELECT count() FROM carbon_ingestion.gold_ohlc_bars` and the rows of " ..
                "every table after the restore.",
}, function()
  local c = ch()
  local n = c:query("SELECT count() AS n FROM " .. fq(params.table))
  state.rows_restored = tonumber(n[1] and n[1].n) or 0
  local per, total = rows_per_table(c)
  state.rows_after_restore, state.total_restored = per, total
  for _, name in ipairs(sorted_keys(per)) do
    log.info("%-32s %d rows (before the restore: %d)", fq(name), per[name], state.rows_before[name] or 0)
  end
  if state.rows_restored == 0 and state.rehearsal then
    log.info("dry-run: nothing was restored, so %s is still empty", fq(params.table))
  elseif state.rows_restored == 0 then
    state.restore_problem = string.format("%s is empty after restoring %s", fq(params.table), state.backup)
    log.error("%s", state.restore_problem)
    return
  end
  state.range_rows_restored = range_count(c)
  log.info("%s: %d rows restored, %d in %s .. %s", fq(params.table), state.rows_restored,
           state.range_rows_restored, params.start_time, params.end_time)
end)

step("Reprocess historical data", {
  description = "Scenario 1 › 3: `curl -X POST http://localhost:8510/reprocess -d '{\"start_time\": " ..
                "\"2025-01-01T00:00:00Z\", \"end_time\": \"2025-01-15T23:59:59Z\", \"market\": \"CAISO\"}'`, " ..
                "one request per market.",
  when = function() return state.restore_problem == nil end,
}, function()
  check(confirm(string.format("Reprocess %s .. %s for %s through %s?", params.start_time, params.end_time,
                              table.concat(params.markets, ", "), params.reprocess_url)),
        "reprocessing declined by the operator")
  state.reprocessed = {}
  for _, market in ipairs(params.markets) do
    local r = http.post(params.reprocess_url, { json = { start_time = params.start_time,
                                                         end_time = params.end_time, market = market } })
    check(r.status >= 200 and r.status < 300, "reprocess %s: HTTP %d: %s", market, r.status,
          tostring(r.body):sub(1, 200))
    state.reprocessed[#state.reprocessed + 1] = market
    log.info("reprocess %s: HTTP %d %s", market, r.status, tostring(r.body):sub(1, 200))
  end
end)

step("Verify data integrity", {
  description = "Scenario 1 › 4: run data quality checks (GET /quality/report?hours=24, score >= 0.7), " ..
                "compare record counts (no fewer than restored), validate key metrics (the operator, on " ..
                "the dashboard).",
  when = function() return state.restore_problem == nil end,
}, function()
  state.problems = {}
  local r = http.get(params.quality_url .. "/quality/report?hours=24", { timeout = 30 })
  local score, sources
  if r.status == 200 then
    local ok, doc = pcall(json.decode, r.body)
    if ok then score, sources = ci.quality_report(doc) end
  end
  state.quality_score = score
  if score == nil then
    state.problems[#state.problems + 1] = string.format("no quality score from %s (HTTP %d)", params.quality_url, r.status)
  elseif score < params.quality_threshold then
    local worst = {}
    for i, s in ipairs(sources or {}) do
      if i > 3 then break end
      worst[#worst + 1] = string.format("%s %.2f", s.name, s.score or 0)
    end
    state.problems[#state.problems + 1] = string.format("quality score %.2f < %.2f%s", score,
      params.quality_threshold, #worst > 0 and (" (worst: " .. table.concat(worst, ", ") .. ")") or "")
  else
    log.info("quality score %.2f", score)
  end
  local c = ch()
  local n = c:query("SELECT count() AS n FROM " .. fq(params.table))
  state.rows_final = tonumber(n[1] and n[1].n) or 0
  state.range_rows_final = range_count(c)
  log.info("%s: %d rows (restored %d), %d in the reprocessed range (restored %d)", fq(params.table),
           state.rows_final, state.rows_restored, state.range_rows_final, state.range_rows_restored)
  if state.rows_final < state.rows_restored then
    state.problems[#state.problems + 1] = string.format("%s lost rows since the restore: %d < %d",
      fq(params.table), state.rows_final, state.rows_restored)
  end
  if #state.problems == 0 then
    state.metrics_ok = confirm(string.format("Key metrics valid on %s (throughput, latency, error rate, " ..
                                             "quality score, consumer lag)?", params.dashboard))
    if not state.metrics_ok then
      state.problems[#state.problems + 1] = "key metrics not validated by the operator"
    end
  end
  for _, p in ipairs(state.problems) do log.error("%s", p) end
end)

step("Escalate or close", {
  description = "Escalation Decision Tree over the result: nothing restored -> P1 page; quality < 0.5 -> " ..
                "P2 Data Team; other failures -> P2 Platform Team; else the recovery is announced. RTO 4 h.",
}, function()
  local problems = {}
  if state.restore_problem then problems[#problems + 1] = state.restore_problem end
  for _, p in ipairs(state.problems or {}) do problems[#problems + 1] = p end
  local elapsed = now() - state.started
  log[elapsed > RTO and "warn" or "info"]("%.1f h since the assessment (RTO 4 h)", elapsed / 3600)
  if #problems == 0 then
    notify.slack{ text = string.format("[resolved] %s restored from %s: %s has %d rows; reprocessing of " ..
                                       "%s .. %s (%s) requested; quality %.2f", params.database, state.backup,
                                       fq(params.table), state.rows_final, params.start_time, params.end_time,
                                       table.concat(params.markets, ", "), state.quality_score) }
    return
  end
  local leaf, path = escalation.decide(ci.decision_tree, {
    service_down = state.restore_problem ~= nil,
    quality_score = state.quality_score,
    performance_degraded = true,
  })
  log.info("decision: %s -> %s", table.concat(path, "; "), leaf.action)
  state.escalated = leaf.level
  escalation.notify(ci.level(leaf.level), {
    summary = "ClickHouse recovery from data loss incomplete: " .. table.concat(problems, "; "),
    details = { backup = state.backup, rows_restored = state.rows_restored, team = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion-data-loss",
    source = ci.source,
  })
  check(false, "data loss recovery not verified (%s): %s", leaf.action, table.concat(problems, "; "))
end)
