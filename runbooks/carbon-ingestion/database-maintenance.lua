-- carbon-ingestion/database-maintenance: the weekly ClickHouse maintenance of
-- the 254Carbon ingestion platform's Operations Runbook, over ClickHouse's
-- HTTP interface.
--
--   runbook run carbon-ingestion/database-maintenance --dry-run
--   runbook run carbon-ingestion/database-maintenance --param retention_days=730
--   runbook run carbon-ingestion/database-maintenance --param cutoff=2024-01-01
--
-- The retention is not in the document (it shows one partition, '2024-01-01',
-- and one cutoff, aggregation_date < '2024-01-01'): the default keeps a year.

local ci = require "carbon_ingestion"
local clickhouse = require "clickhouse"

runbook {
  name        = "carbon-ingestion/database-maintenance",
  title       = "Database maintenance (OPTIMIZE, old partitions, old data)",
  description = [[Optimizes carbon_ingestion.gold_ohlc_bars (OPTIMIZE TABLE ... FINAL), lists the
partitions older than the retention (today minus retention_days, or an explicit cutoff) and drops
them after a confirm() that names them, deletes the remaining rows older than the cutoff
(ALTER TABLE ... DELETE WHERE aggregation_date < 'CUTOFF') after a confirm() -- never the whole
table unless allow_empty -- then waits for the delete mutation and verifies row counts and partitions.
002_f134cbc51c64e878.txt › Maintenance Procedures › Database Maintenance.]],
  source      = "002_f134cbc51c64e878.txt › Maintenance Procedures › Database Maintenance",
  schedule    = "weekly",
  tags        = { "carbon-ingestion", "maintenance", "clickhouse", "weekly" },
  mutates     = { "OPTIMIZE TABLE carbon_ingestion.gold_ohlc_bars FINAL",
                  "drops the partitions of gold_ohlc_bars older than the retention (after confirm)",
                  "deletes the rows older than the cutoff (ALTER TABLE ... DELETE, after confirm)" },
  params = {
    clickhouse     = { default = ci.clickhouse_url, help = "ClickHouse HTTP interface" },
    user           = { default = "default", help = "ClickHouse user" },
    password       = { secret = true, default = "", help = "ClickHouse password (empty: none)" },
    database       = { default = ci.clickhouse_database, help = "the platform's database" },
    table          = { default = ci.clickhouse_table, help = "the table to maintain" },
    date_column    = { default = "aggregation_date",
                       help = "the date column old data is deleted by (DELETE WHERE aggregation_date < ...)" },
    retention_days = { type = "number", default = 365, example = 365,
                       help = "days of data to keep: older partitions are dropped (the document's " ..
                              "example: partition '2024-01-01') and older rows deleted" },
    cutoff         = { default = "", example = "2024-01-01",
                       help = "explicit cutoff date YYYY-MM-DD (the document's '2024-01-01'); " ..
                              "empty: today minus retention_days" },
    allow_empty    = { type = "boolean", default = false,
                       help = "allow removing every row of the table (all of it older than the cutoff: " ..
                              "usually ingestion has stopped, and that is the thing to fix)" },
    optimize       = { type = "boolean", default = true, help = "run OPTIMIZE TABLE ... FINAL" },
    timeout        = { type = "number", default = 3600,
                       help = "seconds one statement may take (OPTIMIZE FINAL rewrites the table)" },
    mutation_timeout = { type = "number", default = 3600,
                       help = "seconds to wait for the DELETE mutation to finish" },
  },
}

check(params.retention_days >= 1, "retention_days must be at least 1, got %s", tostring(params.retention_days))
check(params.cutoff == "" or params.cutoff:match("^%d%d%d%d%-%d%d%-%d%d$"),
      "cutoff must be a date YYYY-MM-DD (e.g. 2024-01-01), got %q", params.cutoff)
check(params.date_column:match("^[%w_]+$"), "date_column must be a column name, got %q", params.date_column)

local ch = clickhouse.client(params.clickhouse, {
  user = params.user, password = params.password ~= "" and params.password or nil,
  timeout = params.timeout })
local db_table = params.database .. "." .. params.table

-- the active partitions of the table with the newest date they hold:
-- { partition, partition_id, rows, bytes, last = "YYYY-MM-DD" | nil }.
-- system.parts knows it (max_date / max_time: the maximum of the partition
-- key's Date / DateTime column in each part) whatever the partitioning --
-- by day ('2024-01-01'), by month (202401) -- so a partition counts as old
-- only when all its rows are.  last is nil when the partition key has no
-- date: such a partition is never dropped (the DELETE covers its rows).
local EPOCH = "1970-01-01"
local function dated_partitions()
  local rows = ch:query(string.format(
    "SELECT partition, partition_id, sum(rows) AS rows, sum(bytes_on_disk) AS bytes, " ..
    "toString(max(max_date)) AS max_date, toString(toDate(max(max_time))) AS max_time_date " ..
    "FROM system.parts WHERE database = '%s' AND table = '%s' AND active " ..
    "GROUP BY partition, partition_id ORDER BY partition", params.database, params.table))
  local out = {}
  for _, r in ipairs(rows) do
    local last
    if r.max_date and r.max_date > EPOCH then last = r.max_date
    elseif r.max_time_date and r.max_time_date > EPOCH then last = r.max_time_date end
    out[#out + 1] = { partition = r.partition, partition_id = r.partition_id, rows = tonumber(r.rows) or 0,
                      bytes = tonumber(r.bytes) or 0, last = last }
  end
  return out
end

local function count(where)
  local rows = ch:query(string.format("SELECT count() AS n FROM %s%s", db_table,
                                      where and (" WHERE " .. where) or ""))
  return tonumber(rows[1] and rows[1].n) or 0
end

local function older_than_cutoff()
  return string.format("%s < '%s'", params.date_column, state.cutoff)
end

local function mib(bytes) return (bytes or 0) / 1048576 end

step("Check the table", {
  description = "Before the maintenance: ClickHouse answers /ping; the row count and the active " ..
                "partitions of carbon_ingestion.gold_ohlc_bars (system.parts); the cutoff (today " ..
                "minus retention_days) and the partitions entirely older than it.",
}, function()
  local up, why = ch:ping()
  check(up, "ClickHouse %s does not answer /ping: %s", params.clickhouse, tostring(why))
  state.cutoff = params.cutoff ~= "" and params.cutoff
                 or os.date("!%Y-%m-%d", math.floor(now()) - math.floor(params.retention_days) * 86400)
  state.rows_before = count()
  local parts = dated_partitions()
  state.partitions_before = #parts
  state.old_partitions, state.undated = {}, {}
  -- partition -> partition_id: old partitions are dropped by ID, which names
  -- a partition exactly whatever the type of its key
  state.old_ids = {}
  local old_rows, old_bytes = 0, 0
  for _, p in ipairs(parts) do
    local last = p.last
    if not last then
      state.undated[#state.undated + 1] = p.partition
    elseif last < state.cutoff then
      state.old_partitions[#state.old_partitions + 1] = p.partition
      state.old_ids[p.partition] = p.partition_id
      old_rows, old_bytes = old_rows + (p.rows or 0), old_bytes + (p.bytes or 0)
    end
  end
  state.old_rows = old_rows
  log.info("%s: %d rows in %d partition(s) (%s .. %s)", db_table, state.rows_before, #parts,
           parts[1] and parts[1].partition or "-", parts[#parts] and parts[#parts].partition or "-")
  log.info("cutoff %s (%s)", state.cutoff, params.cutoff ~= "" and "given" or
           string.format("today minus %d days", math.floor(params.retention_days)))
  if #state.undated > 0 then
    log.warn("%d partition(s) without a date in the partition key, never dropped: %s", #state.undated,
             table.concat(state.undated, ", "))
  end
  log[#state.old_partitions > 0 and "warn" or "info"](
    "%d partition(s) older than %s: %s (%d rows, %.1f MiB)", #state.old_partitions, state.cutoff,
    #state.old_partitions > 0 and table.concat(state.old_partitions, ", ") or "none", old_rows, mib(old_bytes))
end)

step("Optimize the table", {
  description = "Database Maintenance: `clickhouse-client --query=\"OPTIMIZE TABLE " ..
                "carbon_ingestion.gold_ohlc_bars FINAL\"` (merges the parts).",
  when = function() return params.optimize end,
}, function()
  ch:optimize(db_table, { final = true })
  state.optimized = true
  state.rehearsal = dry_run() -- nothing changed: the counts after would be those before
end)

step("Drop old partitions", {
  description = "Database Maintenance › Partition management: `ALTER TABLE " ..
                "carbon_ingestion.gold_ohlc_bars DROP PARTITION '2024-01-01'` for every partition " ..
                "whose rows are all older than the cutoff (by its ID: `DROP PARTITION ID '20240101'`), " ..
                "after a confirm() that lists them.",
  when = function() return #state.old_partitions > 0 end,
}, function()
  local all = #state.old_partitions == state.partitions_before
  check(not all or params.allow_empty, "every partition of %s is older than %s (no data newer than the " ..
        "retention: has ingestion stopped?): not emptying the table; pass --param allow_empty=true to " ..
        "drop them all", db_table, state.cutoff)
  if not confirm(string.format("Drop %s%d partition(s) of %s older than %s: %s (%d rows)? The data is deleted.",
                               all and "ALL " or "", #state.old_partitions, db_table, state.cutoff,
                               table.concat(state.old_partitions, ", "), state.old_rows)) then
    log.warn("partitions kept: %s", table.concat(state.old_partitions, ", "))
    state.dropped = {}
    return
  end
  state.dropped = {}
  for _, p in ipairs(state.old_partitions) do
    local id = state.old_ids[p]
    ch:drop_partition(db_table, id and ("ID '" .. id .. "'") or p)
    state.dropped[#state.dropped + 1] = p
  end
  state.rehearsal = dry_run()
  log.info("%s %d partition(s)", state.rehearsal and "would drop" or "dropped", #state.dropped)
end)

step("Vacuum old data", {
  description = "Database Maintenance › Vacuum old data: `ALTER TABLE carbon_ingestion.gold_ohlc_bars " ..
                "DELETE WHERE aggregation_date < '2024-01-01'` with the cutoff, when rows older than " ..
                "it remain, after a confirm().",
}, function()
  state.old_rows_left = count(older_than_cutoff())
  if state.old_rows_left == 0 then
    log.info("no row of %s older than %s: nothing to delete", db_table, state.cutoff)
    return
  end
  local total = count()
  check(state.old_rows_left < total or params.allow_empty, "all %d row(s) of %s are older than %s (has " ..
        "ingestion stopped?): not emptying the table; pass --param allow_empty=true to delete them",
        total, db_table, state.cutoff)
  local sql = string.format("ALTER TABLE %s DELETE WHERE %s", db_table, older_than_cutoff())
  if not confirm(string.format("%d row(s) of %s are older than %s. Run `%s`? The rows are deleted.",
                               state.old_rows_left, db_table, state.cutoff, sql)) then
    log.warn("old data kept: %d row(s) older than %s", state.old_rows_left, state.cutoff)
    state.vacuumed = false
    return
  end
  ch:exec(sql)
  state.vacuumed = true
  state.rehearsal = dry_run()
end)

step("Verify row counts and partitions", {
  description = "After the maintenance: the DELETE mutation is done (system.mutations), no dropped " ..
                "partition is left, no row older than the cutoff remains where it was removed, and " ..
                "the row count (before -> after).",
  when = function() return not state.rehearsal end,
}, function()
  local problems = {}
  if state.vacuumed then
    local done, err = pcall(wait_until, function()
      local rows = ch:query(string.format(
        "SELECT count() AS n, any(latest_fail_reason) AS reason FROM system.mutations " ..
        "WHERE database = '%s' AND table = '%s' AND NOT is_done", params.database, params.table))
      local n = tonumber(rows[1] and rows[1].n) or 0
      if n > 0 and rows[1].reason and rows[1].reason ~= "" then
        log.warn("mutation failing: %s", rows[1].reason)
      end
      return n == 0
    end, { timeout = params.mutation_timeout, every = 30, what = "the DELETE mutation of " .. db_table })
    if not done then
      problems[#problems + 1] = string.format("the DELETE mutation is not done after %d s (%s)",
        math.floor(params.mutation_timeout), (tostring(err):gsub("^[^\n]-%.lua:%d+: ", "")))
    end
  end
  local parts = ch:partitions(db_table)
  local present = {}
  for _, p in ipairs(parts) do present[tostring(p.partition)] = true end
  for _, p in ipairs(state.dropped or {}) do
    if present[tostring(p)] then problems[#problems + 1] = "partition " .. tostring(p) .. " is still there" end
  end
  state.partitions_after = #parts
  state.rows_after = count()
  if state.vacuumed or (state.dropped and #state.dropped > 0) then
    state.old_rows_after = count(older_than_cutoff())
    if state.vacuumed and state.old_rows_after > 0 then
      problems[#problems + 1] = string.format("%d row(s) older than %s are left", state.old_rows_after, state.cutoff)
    end
  end
  log.info("%s: %d -> %d rows, %d -> %d partition(s)", db_table, state.rows_before, state.rows_after,
           state.partitions_before, state.partitions_after)
  state.verified = #problems == 0
  check(state.verified, "%s after the maintenance: %s", db_table, table.concat(problems, "; "))
end)
