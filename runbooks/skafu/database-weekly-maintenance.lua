runbook {
  name        = "skafu/database-weekly-maintenance",
  title       = "Skafu: weekly database maintenance",
  description = [[Database_Maintenance › Weekly_Tasks on the PostgreSQL database: table statistics update
(ANALYZE), index optimization (invalid indexes rebuilt with REINDEX CONCURRENTLY after
confirmation, unused ones reported), slow query analysis (pg_stat_statements), connection audit
(pg_stat_activity), security patch review (RDS pending maintenance actions). The report goes to
the team. 003_8c25f41fdd75a5fb.txt › Maintenance Procedures › Database Maintenance › Weekly_Tasks.]],
  source      = "003_8c25f41fdd75a5fb.txt › Maintenance Procedures › Database Maintenance › Weekly_Tasks",
  schedule    = "weekly",
  tags        = { "skafu", "maintenance", "weekly" },
  mutates     = { "ANALYZE (table statistics)", "REINDEX INDEX CONCURRENTLY of invalid indexes (after confirmation)",
                  "posts the report to Slack" },
  params = {
    db_url      = { required = true, secret = true, help = "postgres:// URL of the Skafu database (not in the document)" },
    region      = { default = "us-east-1", help = "AWS region (the document names none)" },
    db_instance = { default = "skafu-production", help = "RDS instance identifier (not in the document)" },
    slow_ms     = { type = "number", default = 100, help = "Database query performance (< 100ms average)" },
    idle_tx_minutes = { type = "number", default = 5, help = "report sessions idle in transaction longer than this (not in the document)" },
    notify      = { type = "boolean", default = true, help = "post the report to Slack" },
  },
}

local skafu = require "skafu"

local function note(fmt, ...)
  local msg = string.format(fmt, ...)
  state.report[#state.report + 1] = msg
  log.info("%s", msg)
end

step("Table statistics update", {
  description = "Weekly_Tasks › Table statistics update: `ANALYZE`.",
  timeout = 3600,
}, function()
  state.report = {}
  local conn <close> = db.open(params.db_url)
  conn:exec("ANALYZE")
  state.analyzed = true
end)

step("Index optimization", {
  description = "Weekly_Tasks › Index optimization: invalid indexes (a failed CREATE INDEX " ..
                "CONCURRENTLY) rebuilt with `REINDEX INDEX CONCURRENTLY` after confirmation; " ..
                "never-used, non-unique indexes reported for a human to drop.",
  timeout = 7200,
}, function()
  local conn <close> = db.open(params.db_url)
  local invalid = conn:query([[SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index
                               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                               JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE NOT i.indisvalid ORDER BY 1]])
  state.invalid_indexes = #invalid
  for _, r in ipairs(invalid) do
    if confirm(string.format("Rebuild invalid index %s (REINDEX INDEX CONCURRENTLY)?", r.index)) then
      conn:exec("REINDEX INDEX CONCURRENTLY " .. r.index)
      note("rebuilt invalid index %s", r.index)
    else
      note("invalid index %s left as is", r.index)
    end
  end
  local unused = conn:query([[SELECT s.schemaname || '.' || s.indexrelname AS index,
                                     pg_size_pretty(pg_relation_size(s.indexrelid)) AS size
                              FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
                              WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
                              ORDER BY pg_relation_size(s.indexrelid) DESC LIMIT 10]])
  state.unused_indexes = #unused
  for _, r in ipairs(unused) do note("index %s (%s) never used since the statistics reset: drop it?", r.index, r.size) end
end)

step("Slow query analysis", {
  description = "Weekly_Tasks › Slow query analysis: statements averaging over 100 ms " ..
                "(pg_stat_statements).",
}, function()
  local conn <close> = db.open(params.db_url)
  local rows = conn:query([[SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query, calls,
                                   round(mean_exec_time::numeric, 1) AS mean_ms
                            FROM pg_stat_statements WHERE mean_exec_time >= $1
                            ORDER BY mean_exec_time * calls DESC LIMIT 10]], params.slow_ms, { numbers = true })
  state.slow_queries = #rows
  for _, r in ipairs(rows) do note("slow: %s ms x %s: %s", tostring(r.mean_ms), tostring(r.calls), r.query) end
end)

step("Connection audit", {
  description = "Weekly_Tasks › Connection audit: sessions by user and application, and " ..
                "sessions idle in a transaction (pg_stat_activity).",
}, function()
  local conn <close> = db.open(params.db_url)
  local rows = conn:query([[SELECT usename AS "user", coalesce(nullif(application_name, ''), '?') AS app,
                                   count(*) AS sessions,
                                   count(*) FILTER (WHERE state = 'idle in transaction'
                                                    AND now() - state_change > make_interval(mins => $1)) AS idle_tx
                            FROM pg_stat_activity WHERE backend_type = 'client backend'
                            GROUP BY 1, 2 ORDER BY 3 DESC]], math.floor(params.idle_tx_minutes), { numbers = true })
  local total, idle = 0, 0
  for _, r in ipairs(rows) do
    total, idle = total + r.sessions, idle + r.idle_tx
    note("connections: %s/%s %d session(s)%s", tostring(r.user), tostring(r.app), r.sessions,
         r.idle_tx > 0 and string.format(", %d idle in transaction", r.idle_tx) or "")
  end
  state.sessions, state.idle_in_transaction = total, idle
end)

step("Security patch review", {
  description = "Weekly_Tasks › Security patch review: pending maintenance actions of the " ..
                "instance (`aws rds describe-pending-maintenance-actions`); applying them belongs " ..
                "to the production maintenance window.",
}, function()
  local db = skafu.db_instance(params.region, params.db_instance)
  check(db, "RDS instance %s not found", params.db_instance)
  local r = skafu.aws(params.region, { "rds", "describe-pending-maintenance-actions",
                                       "--resource-identifier", db.DBInstanceArn or params.db_instance })
  state.pending_maintenance = 0
  for _, res in ipairs(r.PendingMaintenanceActions or {}) do
    for _, a in ipairs(res.PendingMaintenanceActionDetails or {}) do
      state.pending_maintenance = state.pending_maintenance + 1
      note("pending %s: %s (auto-applies %s)", a.Action or "?", a.Description or "",
           tostring(a.AutoAppliedAfterDate or a.ForcedApplyDate or "in the maintenance window"))
    end
  end
end)

step("Report", {
  description = "The weekly report to the team.",
  when = function() return params.notify end,
}, function()
  notify.slack{ text = string.format("Skafu weekly database maintenance (%s): ANALYZE done\n- %s", params.db_instance,
    #state.report > 0 and table.concat(state.report, "\n- ") or "nothing to report") }
end)
