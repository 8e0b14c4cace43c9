runbook {
  name        = "skafu/database-daily-check",
  title       = "Skafu: daily database maintenance checks",
  description = [[Database_Maintenance › Daily_Tasks on the RDS instance: connection pool monitoring
(against Capacity Planning's max_connections 100), query performance review (< 100ms average,
from pg_stat_statements when a database URL is given), backup verification (transaction logs
every 15 minutes, backups every 4 hours, 30 days retention: Backup Procedures), disk space
monitoring (< 80 % used). Findings go to the team on Slack. 003_8c25f41fdd75a5fb.txt ›
Maintenance Procedures › Database Maintenance › Daily_Tasks; Backup and Recovery › Backup
Procedures › Database_Backups.]],
  source      = "003_8c25f41fdd75a5fb.txt › Maintenance Procedures › Database Maintenance › Daily_Tasks",
  schedule    = "daily",
  tags        = { "skafu", "maintenance", "backup", "daily" },
  mutates     = { "posts the findings to Slack" },
  params = {
    region          = { default = "us-east-1", help = "AWS region (the document names none)" },
    db_instance     = { default = "skafu-production", help = "RDS instance identifier (not in the document)" },
    db_url          = { default = "", secret = true, help = "postgres:// URL for the query performance review (empty: skip)" },
    hours           = { type = "number", default = 24, help = "metrics window, hours" },
    max_connections = { type = "number", default = 100, help = "Capacity Planning › database_resources › max_connections" },
    usage_pct       = { type = "number", default = 80, help = "connections and disk: alert at this share (Memory and CPU utilization < 80%)" },
    query_avg_ms    = { type = "number", default = 100, help = "Database query performance (< 100ms average)" },
    log_backup_minutes = { type = "number", default = 15, help = "Transaction log backup (every 15 minutes)" },
    backup_hours    = { type = "number", default = 4, help = "Database_Backups frequency: every 4 hours" },
    retention_days  = { type = "number", default = 30, help = "Database_Backups retention: 30 days" },
    notify          = { type = "boolean", default = true, help = "post the findings to Slack" },
  },
}

local skafu = require "skafu"

local function finding(fmt, ...)
  local msg = string.format(fmt, ...)
  state.findings[#state.findings + 1] = msg
  log.warn("%s", msg)
end

local function rds_metric(name, stat)
  return skafu.metric(params.region, { namespace = "AWS/RDS", metric = name, stat = stat, hours = params.hours,
                                       dimensions = { DBInstanceIdentifier = params.db_instance } })
end

step("Connection pool monitoring", {
  description = "Daily_Tasks › Connection pool monitoring: peak DatabaseConnections (AWS/RDS) " ..
                "against max_connections 100.",
}, function()
  state.findings = {}
  local db = skafu.db_instance(params.region, params.db_instance)
  check(db, "RDS instance %s not found in %s", params.db_instance, params.region)
  state.db = { status = db.DBInstanceStatus, allocated_gb = db.AllocatedStorage, retention = db.BackupRetentionPeriod }
  local peak = rds_metric("DatabaseConnections", "Maximum")
  state.connections_peak = peak
  if peak and peak >= params.max_connections * params.usage_pct / 100 then
    finding("connections peaked at %.0f of %d (%.0f%%)", peak, params.max_connections, peak / params.max_connections * 100)
  else
    log.info("connections peaked at %s of %d", peak and string.format("%.0f", peak) or "?", params.max_connections)
  end
end)

step("Query performance review", {
  description = "Daily_Tasks › Query performance review: average statement time from " ..
                "pg_stat_statements (< 100ms average).",
  when = function() return params.db_url ~= "" end,
}, function()
  local conn <close> = db.open(params.db_url)
  local rows = conn:query([[SELECT sum(total_exec_time) / nullif(sum(calls), 0) AS avg_ms, sum(calls) AS calls
                            FROM pg_stat_statements]], { numbers = true })
  local avg = rows[1] and rows[1].avg_ms
  state.query_avg_ms = type(avg) == "number" and avg or nil
  if state.query_avg_ms and state.query_avg_ms >= params.query_avg_ms then
    local slow = conn:query([[SELECT left(query, 80) AS query, round(mean_exec_time::numeric, 1) AS mean_ms, calls
                              FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 5]], { numbers = true })
    local names = {}
    for _, r in ipairs(slow) do names[#names + 1] = string.format("%s ms %s", tostring(r.mean_ms), tostring(r.query)) end
    finding("average query time %.1f ms (< %d ms); slowest: %s", state.query_avg_ms, params.query_avg_ms,
            table.concat(names, " | "))
  else
    log.info("average query time %s ms", state.query_avg_ms and string.format("%.1f", state.query_avg_ms) or "?")
  end
end)

step("Backup verification", {
  description = "Daily_Tasks › Backup verification; Database_Backups: the restore window reaches " ..
                "the last 15 minutes (`aws rds describe-db-instance-automated-backups`), the newest " ..
                "snapshot is under 4 hours old (`aws rds describe-db-snapshots`), retention 30 days.",
}, function()
  local b = (skafu.aws(params.region, { "rds", "describe-db-instance-automated-backups",
                                        "--db-instance-identifier", params.db_instance })
             .DBInstanceAutomatedBackups or {})[1]
  local latest = skafu.iso_time(((b or {}).RestoreWindow or {}).LatestTime)
  if not latest then
    finding("%s has no automated backups (point-in-time recovery impossible)", params.db_instance)
  else
    state.log_backup_age_min = math.floor((now() - latest) / 60)
    if state.log_backup_age_min > params.log_backup_minutes then
      finding("latest restorable time is %d minutes old (transaction logs every %d minutes)",
              state.log_backup_age_min, params.log_backup_minutes)
    end
  end
  if (state.db.retention or 0) < params.retention_days then
    finding("backup retention %d days (< %d)", state.db.retention or 0, params.retention_days)
  end
  local snaps = skafu.aws(params.region, { "rds", "describe-db-snapshots", "--db-instance-identifier",
                                           params.db_instance }).DBSnapshots or {}
  local newest
  for _, s in ipairs(snaps) do
    local t = s.Status == "available" and skafu.iso_time(s.SnapshotCreateTime)
    if t and (not newest or t > newest) then newest = t end
  end
  if not newest then
    finding("no available snapshot of %s", params.db_instance)
  else
    state.snapshot_age_h = math.floor((now() - newest) / 360) / 10
    if state.snapshot_age_h > params.backup_hours then
      finding("newest snapshot is %.1f hours old (every %d hours)", state.snapshot_age_h, params.backup_hours)
    end
  end
end)

step("Disk space monitoring", {
  description = "Daily_Tasks › Disk space monitoring: lowest FreeStorageSpace (AWS/RDS) against " ..
                "the allocated storage.",
}, function()
  local free = rds_metric("FreeStorageSpace", "Minimum")
  local total = (state.db.allocated_gb or 0) * 1024 ^ 3
  if free and total > 0 then
    state.disk_used_pct = math.floor((1 - free / total) * 1000 + 0.5) / 10
    if state.disk_used_pct >= params.usage_pct then
      finding("storage %.1f%% used (%.0f GiB free of %d)", state.disk_used_pct, free / 1024 ^ 3, state.db.allocated_gb)
    else
      log.info("storage %.1f%% used", state.disk_used_pct)
    end
  end
end)

step("Report the findings", {
  description = "The findings to the team (Internal team notification).",
  when = function() return #state.findings > 0 and params.notify end,
}, function()
  notify.slack{ text = string.format("Skafu database %s daily check: %d finding(s)\n- %s", params.db_instance,
                                     #state.findings, table.concat(state.findings, "\n- ")) }
end)
