local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/restore",
  title       = "Restore the gateway database from a verified backup",
  description = [[Backup restoration and recovery over the live database: list the backups and pick
one (the newest unless given), verify it before touching anything, take a safety backup of the
database as it is, stop the gateway and the service manager, ask, restore (pg_restore --clean in
one transaction: all or nothing), start the services again whatever happened, and verify: every
table's rows match the backup's manifest and the gateway answers /health.
004_c5e4c638679021cc.txt › Backup and Recovery › Backup Procedures › Backup Restoration
and › Disaster Recovery › Recovery Procedures.]],
  source      = "004_c5e4c638679021cc.txt › Backup and Recovery › Backup Procedures › Backup Restoration",
  tags        = { "forge-gateway", "dr", "backup" },
  mutates     = { "writes a safety backup into backup_dir", "stops and starts gateway and service-manager",
                  "replaces the database's data with the backup's (after confirmation)",
                  "pages when the restore fails" },
  params      = fg.params{ "compose_file", "project", "gateway", "database_url", "backup_dir", "stamp",
    backup        = { default = "", help = "the backup file to restore (default: the newest in backup_dir)" },
    stop_services = { type = "list", default = { "gateway", "service-manager" },
                      help = "services stopped during the restore (they write to the database); empty: none" },
    wait_timeout  = { type = "number", default = 300, help = "seconds to wait for the gateway's /health afterwards" },
  },
}

local compose = require "compose"
local escalation = require "escalation"

step("List available backups", {
  description = "./scripts/backup-list.sh: the backups, newest first; pick the one to restore",
}, function()
  local all = fg.backups(params)
  for i, b in ipairs(all) do
    if i > 10 then break end
    log.info("%s  %d bytes  %.1f days old", b.name, b.size, b.age_days)
  end
  if params.backup ~= "" then
    state.backup = params.backup
  else
    check(#all > 0, "no backups of %s in %s", fg.dbname(params.database_url), params.backup_dir)
    state.backup = all[1].path
  end
  log.info("restoring from %s", state.backup)
end)

step("Verify the backup before restoring", {
  description = "a backup that fails its checksum or whose archive does not read is refused here",
}, function()
  local v = db.verify(state.backup)
  state.backup_rows = v.rows
  log.info("%s: sha256 ok, %s rows in the manifest", state.backup, tostring(v.rows))
end)

step("Take a safety backup of the current database", {
  description = "so this restore can itself be undone (forge-gateway/restore with backup=<this file>)",
  timeout = 3600,
}, function()
  local path = string.format("%s/%s-pre-restore-%s.dump", params.backup_dir, fg.dbname(params.database_url),
                             fg.stamp(params))
  db.backup(params.database_url, path)
  state.safety = path
end)

step("Stop the services that write to the database", {
  description = "docker compose stop gateway service-manager",
  when = function() return #params.stop_services > 0 end,
}, function()
  compose.stop(params.compose_file, params.stop_services, fg.compose_opts(params))
  state.stopped = true
end)

step("Restore from backup", {
  description = "./scripts/backup-restore.sh --backup-id <id>: pg_restore --clean --if-exists in a single transaction",
  continue_on_error = true,
  timeout = 3600,
}, function()
  if not confirm(string.format("Replace the data of %s with %s?", params.database_url, state.backup)) then
    state.declined = true
    log.warn("declined: the database is left as it was")
    return
  end
  local ok, r = pcall(db.restore, state.backup, params.database_url)
  if not ok then
    state.restore_error = tostring(r)
    error(r, 0)
  end
  state.restored = true
  if not dry_run() then
    log.info("restored %d rows in %.1f s; every table matches the backup's manifest", r.rows, r.duration)
  end
end)

step("Restore services", {
  description = "./scripts/restore-services.sh: docker compose up -d the stopped services; after a restore, " ..
                "until the gateway's /health answers (./scripts/backup-verify-restore.sh)",
  when = function() return state.stopped end,
  timeout = params.wait_timeout + 360,
}, function()
  -- a failed restore is paged below: no wait for a gateway on an unchanged database
  local r = compose.start(params.compose_file, params.stop_services, fg.compose_opts(params, {
    wait_url = not state.restore_error and (params.gateway .. "/health") or nil, wait_timeout = params.wait_timeout }))
  if r.waited then log.info("gateway answers /health") end
end)

step("Verify restoration", {
  description = "./scripts/backup-verify-restore.sh: the database answers",
  when = function() return not state.restore_error end,
}, function()
  local conn <close> = db.open(params.database_url)
  local v = conn:query("SELECT current_database() AS db, pg_size_pretty(pg_database_size(current_database())) AS size")[1]
  log.info("%s is answering, %s", v.db, v.size)
end)

step("Escalate a failed restore", {
  description = "the restore failed (nothing was changed: one transaction); page with the error",
  when = function() return state.restore_error ~= nil end,
}, function()
  fg.post(escalation.notify, fg.row("CRITICAL"), {
    summary = "forge gateway restore from " .. state.backup .. " failed: " .. state.restore_error,
    details = { safety_backup = state.safety }, dedup_key = "forge-gateway-restore",
    source = "runbook forge-gateway/restore",
  })
  check(false, "restore failed: %s (the database is unchanged; safety backup %s)", state.restore_error, state.safety)
end)
