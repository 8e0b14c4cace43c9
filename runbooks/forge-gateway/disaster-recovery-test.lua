local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/disaster-recovery-test",
  title       = "Disaster recovery test: restore the newest backup, time it, record it",
  description = [[The monthly DR test, on a scratch database so production is never touched:
verify the newest backup, restore it into <db>_dr_test (pg_restore in one transaction, every
table's rows compared with the backup's manifest), measure the recovery time against the
objective, drop the scratch database, record the result as JSON beside the logs (the input for
the recovery documentation) and post it. A failed restore or a missed objective fails the run.
004_c5e4c638679021cc.txt › Maintenance Procedures › Monthly Maintenance › Disaster Recovery Testing
and › Backup and Recovery › Disaster Recovery › Recovery Testing.]],
  source      = "004_c5e4c638679021cc.txt › Maintenance Procedures › Monthly Maintenance › Disaster Recovery Testing",
  schedule    = "monthly",
  tags        = { "forge-gateway", "dr", "monthly" },
  mutates     = { "creates, restores into and drops a scratch database", "writes the test report into logs_dir",
                  "posts the result to Slack" },
  params      = fg.params{ "database_url", "backup_dir", "logs_dir", "stamp",
    rto_minutes = { type = "number", default = 30,
                    help = "recovery time objective in minutes (not in the document: its escalation point, 30 minutes)" },
  },
}

local escalation = require "escalation"

step("Pick and verify the newest backup", {
  description = "./scripts/backup-list.sh, ./scripts/backup-verify.sh: the backup a real recovery would use",
}, function()
  local all = fg.backups(params)
  check(#all > 0, "no backups of %s in %s: nothing to recover from", fg.dbname(params.database_url), params.backup_dir)
  state.backup = all[1].path
  state.backup_age_h = math.floor(all[1].age_days * 24 * 10 + 0.5) / 10
  local v = db.verify(state.backup)
  state.backup_rows = v.rows
  log.info("%s (%.1f h old): sha256 ok, %s rows", state.backup, state.backup_age_h, tostring(v.rows))
end)

step("Test backup restoration", {
  description = "./scripts/disaster-recovery-test.sh / recovery-test.sh: restore into a scratch database and compare",
  continue_on_error = true,
  timeout = 3600 * 2,
}, function()
  local scratch = fg.dbname(params.database_url) .. "_dr_test"
  local admin <close> = db.open(fg.sibling_url(params.database_url, "postgres"))
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  admin:exec('CREATE DATABASE "' .. scratch .. '"')
  local t0 = now()
  local ok, r = pcall(db.restore, state.backup, fg.sibling_url(params.database_url, scratch))
  state.recovery_s = math.floor((now() - t0) * 10 + 0.5) / 10
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  if not ok then
    state.restore_error = tostring(r)
    error(r, 0)
  end
  state.rehearsal = dry_run() -- nothing restored: no recovery time to judge
  state.restored_rows = r.rows
  if not state.rehearsal then log.info("restored %d rows in %.1f s; every table matches the manifest", r.rows, state.recovery_s) end
end)

step("Validate recovery time", {
  description = "./scripts/recovery-time-test.sh: the restore's duration against the recovery time objective",
  when = function() return not state.restore_error and not state.rehearsal end,
}, function()
  state.rto_met = state.recovery_s <= params.rto_minutes * 60
  if state.rto_met then
    log.info("recovery took %.1f s, within the %d-minute objective", state.recovery_s, params.rto_minutes)
  else
    log.warn("recovery took %.1f s, more than the %d-minute objective", state.recovery_s, params.rto_minutes)
  end
end)

step("Validate failover procedures", {
  description = "./scripts/failover-test.sh: the document does not describe the failover -- a human checkpoint",
}, function()
  state.failover_validated = confirm("Has the failover procedure been exercised this month "
    .. "(scripts/failover-test.sh run and its result reviewed)?")
  if not state.failover_validated then log.warn("failover not validated this month: say so in the recovery documentation") end
end)

step("Record the result for the recovery documentation", {
  description = "./scripts/update-recovery-docs.sh: the test's facts as JSON in logs_dir",
}, function()
  fs.mkdir(params.logs_dir, { parents = true })
  local path = string.format("%s/dr-test-%s.json", params.logs_dir, fg.stamp(params))
  fs.write(path, json.encode({
    backup = state.backup, backup_age_hours = state.backup_age_h, rows = state.restored_rows,
    recovery_seconds = state.recovery_s, rto_minutes = params.rto_minutes, rto_met = state.rto_met,
    failover_validated = state.failover_validated,
    error = state.restore_error, tested_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }) .. "\n")
  state.report = path
  -- ./scripts/update-recovery-docs.sh: the documentation itself is written by a person
  state.docs_updated = confirm("Recovery documentation updated with the result in " .. path .. "?")
end)

step("Report the result", {
  description = "post the test's outcome; a failed restore or a missed objective fails the run",
}, function()
  local ok = state.restore_error == nil and state.rto_met ~= false
  local summary
  if state.restore_error then
    summary = "forge gateway DR test FAILED: restore of " .. state.backup .. ": " .. state.restore_error
  elseif state.rehearsal then
    summary = "forge gateway DR test (dry-run): would restore " .. state.backup .. " into a scratch database"
  elseif state.rto_met == false then
    summary = string.format("forge gateway DR test: recovery took %.0f s, over the %d-minute objective",
                            state.recovery_s, params.rto_minutes)
  else
    summary = string.format("forge gateway DR test passed: %s restored (%s rows) in %s s",
                            state.backup, tostring(state.restored_rows), tostring(state.recovery_s))
  end
  fg.post(escalation.notify, fg.row(ok and "INFO" or "WARNING"), { summary = summary, details = { report = state.report },
                    dedup_key = "forge-gateway-dr-test", source = "runbook forge-gateway/disaster-recovery-test" })
  check(ok, "%s", summary)
end)
