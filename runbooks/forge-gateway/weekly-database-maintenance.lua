local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/weekly-database-maintenance",
  title       = "Weekly database maintenance: health, statistics, VACUUM ANALYZE",
  description = [[The gateway database's weekly maintenance: is it accepting connections
(pg_isready), its statistics (pg_stat_database: connections, commits, rollbacks, deadlocks, cache
hit ratio, size; dead rows per table), then VACUUM ANALYZE -- every week by default, or with
vacuum=auto only when a table's dead rows pass dead_ratio ("if needed"). Runs against any
PostgreSQL URL; a dry-run reads the statistics for real and shows the VACUUM it would run.
004_c5e4c638679021cc.txt › Maintenance Procedures › Weekly Maintenance › Database Maintenance.]],
  source      = "004_c5e4c638679021cc.txt › Maintenance Procedures › Weekly Maintenance › Database Maintenance",
  schedule    = "weekly",
  tags        = { "forge-gateway", "maintenance", "weekly", "postgres" },
  mutates     = { "runs VACUUM ANALYZE on the gateway database" },
  params      = fg.params{ "database_url",
    vacuum     = { default = "always", choices = { "always", "auto", "never" },
                   help = "VACUUM ANALYZE every week (always), only when needed (auto), or not at all" },
    dead_ratio = { type = "number", default = 0.10,
                   help = "auto: vacuum when a table's dead rows reach this share of its live rows" },
    min_dead   = { type = "number", default = 1000, help = "auto: ignore tables with fewer dead rows than this" },
    timeout    = { type = "number", default = 3600, help = "seconds VACUUM ANALYZE may take" },
  },
}

step("Database health check", {
  description = "docker-compose ... exec postgres pg_isready: is the server accepting connections?",
}, function()
  local r = exec(fg.pg_isready_argv(params.database_url), { check = false, timeout = 15 })
  local out = ((r.stdout or "") .. (r.stderr or "")):gsub("%s+$", "")
  check(r.code == 0, "database not ready (pg_isready exit %d: %s): see forge-gateway/database-issues",
        r.code, out ~= "" and out or "no answer")
  log.info("%s", out)
  local conn <close> = db.open(params.database_url)
  local v = conn:query("SELECT current_database() AS db, current_setting('server_version') AS version")[1]
  state.database = v.db
  log.info("connected to %s (PostgreSQL %s)", v.db, v.version)
end)

step("Database statistics", {
  description = "SELECT ... FROM pg_stat_database: connections, commits, rollbacks, deadlocks, cache hits, size; dead rows per table",
}, function()
  local conn <close> = db.open(params.database_url)
  local s = conn:query([[
    SELECT numbackends, xact_commit, xact_rollback, deadlocks, conflicts,
           coalesce(round(100.0 * blks_hit / nullif(blks_hit + blks_read, 0), 2), 100) AS cache_hit_pct,
           pg_database_size(datname) AS size_bytes,
           pg_size_pretty(pg_database_size(datname)) AS size
    FROM pg_stat_database WHERE datname = current_database()]], { numbers = true })[1]
  check(s, "no pg_stat_database row for the current database")
  log.info("%d connections, %d commits, %d rollbacks, %d deadlocks, cache hit %.2f%%, size %s",
           s.numbackends, s.xact_commit, s.xact_rollback, s.deadlocks, s.cache_hit_pct, s.size)
  state.stats = { connections = s.numbackends, deadlocks = s.deadlocks, cache_hit_pct = s.cache_hit_pct,
                  size_bytes = s.size_bytes }
  local tables = conn:query([[
    SELECT schemaname || '.' || relname AS name, n_live_tup AS live, n_dead_tup AS dead,
           coalesce(extract(epoch FROM greatest(last_vacuum, last_autovacuum)), 0) AS vacuumed
    FROM pg_stat_user_tables ORDER BY n_dead_tup DESC LIMIT 20]], { numbers = true })
  local bloated = {}
  for _, t in ipairs(tables) do
    local ratio = t.dead / math.max(t.live, 1)
    if t.dead >= params.min_dead and ratio >= params.dead_ratio then
      bloated[#bloated + 1] = t.name
      log.warn("%s: %d dead rows for %d live (%.0f%%)", t.name, t.dead, t.live, ratio * 100)
    end
  end
  state.tables = #tables
  state.bloated = bloated
  if #bloated == 0 then log.info("%d table(s), none with dead rows past %.0f%%", #tables, params.dead_ratio * 100) end
end)

step("Vacuum and analyze", {
  description = "docker-compose ... exec postgres psql -c \"VACUUM ANALYZE;\" (if needed)",
  when = function()
    return params.vacuum == "always" or (params.vacuum == "auto" and #state.bloated > 0)
  end,
  timeout = params.timeout + 60,
}, function()
  local conn <close> = db.open(params.database_url)
  conn:exec("VACUUM ANALYZE", { timeout = params.timeout })
  state.vacuumed = true
end)

step("Verify", {
  description = "the server still answers; dead rows after the vacuum",
}, function()
  local conn <close> = db.open(params.database_url)
  local r = conn:query([[SELECT coalesce(sum(n_dead_tup), 0) AS dead, count(*) AS tables,
                                count(last_analyze) + count(last_autoanalyze) AS analyzed
                         FROM pg_stat_user_tables]], { numbers = true })[1]
  state.dead_after = r.dead
  log.info("%d dead rows left in %d table(s)", r.dead, r.tables)
end)
