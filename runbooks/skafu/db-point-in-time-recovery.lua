runbook {
  name        = "skafu/db-point-in-time-recovery",
  title       = "Skafu: database point-in-time recovery (RDS)",
  description = [[Database_Recovery › point_in_time_recovery on RDS: identify the recovery point (within
the instance's restore window), stop application traffic (the ECS services to 0 tasks), restore
to a new instance at that time (`aws rds restore-db-instance-to-point-in-time`, which replays
the transaction logs), wait until it is available, have the data validated (checkpoint), swap
it in under the original identifier so the endpoint stays the same, resume application
traffic. A restore that fails or is not validated: traffic resumes on the original database and
the failure is escalated. 003_8c25f41fdd75a5fb.txt › Backup and Recovery › Recovery Procedures ›
Database_Recovery › point_in_time_recovery.]],
  source      = "003_8c25f41fdd75a5fb.txt › Backup and Recovery › Recovery Procedures › Database_Recovery › point_in_time_recovery",
  tags        = { "skafu", "dr", "backup", "restore" },
  mutates     = { "scales the ECS services to 0 and back (aws ecs update-service --desired-count)",
                  "creates an RDS instance restored to a point in time",
                  "renames the original instance to <id>-pre-pitr-<time> and the restored one to <id>",
                  "notifies Slack; pages when the recovery fails" },
  params = {
    region          = { default = "us-east-1", help = "AWS region (the document names none)" },
    db_instance     = { default = "skafu-production", help = "RDS instance to recover (not in the document)" },
    restore_time    = { default = "", help = "recovery point, UTC ISO 8601 (2026-11-23T14:05:00Z); empty: the latest restorable time" },
    target_instance = { default = "", help = "identifier of the restored instance (default <db_instance>-pitr-<UTC time>)" },
    cluster         = { default = "skafu-production", help = "ECS cluster whose services use the database" },
    services        = { type = "list", default = { "project-management-api", "template-management-api",
                        "ai-integration-service", "github-integration-service", "observability-service" },
                        help = "services to stop during the restore (Stop application traffic)" },
    stop_traffic    = { type = "boolean", default = true, help = "stop application traffic while restoring" },
    swap            = { type = "boolean", default = true, help = "swap the restored instance in under the original identifier" },
    timeout         = { type = "number", default = 7200, help = "seconds to wait for each instance to become available" },
    every           = { type = "number", default = 30, help = "seconds between status checks" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function wait_available(id, what)
  local last = "not found"
  local ok, err = pcall(wait_until, function()
    local db = skafu.db_instance(params.region, id)
    last = db and db.DBInstanceStatus or "not found"
    if last == "failed" or last == "incompatible-restore" or last == "incompatible-parameters" then
      return true
    end
    return last == "available"
  end, { timeout = params.timeout, every = params.every, what = what })
  if not ok then return false, string.format("%s: still %s (%s)", id, last, tostring(err)) end
  if last ~= "available" then return false, string.format("%s: %s", id, last) end
  return true
end

step("Identify recovery point", {
  description = "point_in_time_recovery › Identify recovery point: the instance " ..
                "(`aws rds describe-db-instances`) and its restore window " ..
                "(`aws rds describe-db-instance-automated-backups`).",
}, function()
  local db = skafu.db_instance(params.region, params.db_instance)
  check(db, "RDS instance %s not found in %s", params.db_instance, params.region)
  state.source_status = db.DBInstanceStatus
  state.instance_class = db.DBInstanceClass
  state.subnet_group = (db.DBSubnetGroup or {}).DBSubnetGroupName
  state.security_groups = {}
  for _, g in ipairs(db.VpcSecurityGroups or {}) do state.security_groups[#state.security_groups + 1] = g.VpcSecurityGroupId end
  state.multi_az = db.MultiAZ == true
  local b = (skafu.aws(params.region, { "rds", "describe-db-instance-automated-backups",
                                        "--db-instance-identifier", params.db_instance })
             .DBInstanceAutomatedBackups or {})[1]
  local window = (b or {}).RestoreWindow or {}
  state.earliest = window.EarliestTime
  state.latest = window.LatestTime or db.LatestRestorableTime
  check(state.latest, "%s has no automated backups to restore from (backup retention 0?)", params.db_instance)
  if params.restore_time ~= "" then
    local t = skafu.iso_time(params.restore_time)
    check(t, "restore_time %q is not ISO 8601 (2026-11-23T14:05:00Z)", params.restore_time)
    check(not state.earliest or t >= skafu.iso_time(state.earliest),
          "restore_time %s is before the earliest restorable time %s", params.restore_time, tostring(state.earliest))
    check(t <= skafu.iso_time(state.latest),
          "restore_time %s is after the latest restorable time %s", params.restore_time, state.latest)
    state.restore_time = skafu.iso(t)
  end
  local stamp = os.date("!%Y%m%d%H%M", math.floor(now()))
  state.target = params.target_instance ~= "" and params.target_instance or (params.db_instance .. "-pitr-" .. stamp)
  state.old_name = params.db_instance .. "-pre-pitr-" .. stamp
  log.info("%s (%s): restorable from %s to %s; recovering to %s as %s", params.db_instance, db.DBInstanceStatus,
           tostring(state.earliest), state.latest, state.restore_time or "the latest restorable time", state.target)
end)

step("Stop application traffic", {
  description = "point_in_time_recovery › Stop application traffic: record each service's " ..
                "desired count, then `aws ecs update-service --desired-count 0`.",
  when = function() return params.stop_traffic end,
}, function()
  check(confirm(string.format("Stop application traffic: scale %d service(s) in %s to 0 tasks?",
                              #params.services, params.cluster)), "stopping traffic declined by the operator")
  state.desired_before = {}
  for _, s in ipairs(skafu.ecs_services(params.region, params.cluster, params.services)) do
    state.desired_before[s.service] = s.desired
  end
  for _, name in ipairs(params.services) do
    exec(skafu.aws_argv(params.region, { "ecs", "update-service", "--cluster", params.cluster,
                                         "--service", name, "--desired-count", "0" }))
  end
  state.traffic_stopped = true
end)

step("Restore from backup and apply transaction logs", {
  description = "point_in_time_recovery › Restore from backup; Apply transaction logs: " ..
                "`aws rds restore-db-instance-to-point-in-time` (RDS restores the snapshot and " ..
                "replays the logs up to the recovery point) into a new instance.",
}, function()
  check(confirm(string.format("Restore %s to %s as a new instance %s?", params.db_instance,
                              state.restore_time or "the latest restorable time", state.target)),
        "restore declined by the operator")
  local args = { "rds", "restore-db-instance-to-point-in-time",
                 "--source-db-instance-identifier", params.db_instance,
                 "--target-db-instance-identifier", state.target }
  if state.restore_time then
    args[#args + 1] = "--restore-time"; args[#args + 1] = state.restore_time
  else
    args[#args + 1] = "--use-latest-restorable-time"
  end
  if state.instance_class then args[#args + 1] = "--db-instance-class"; args[#args + 1] = state.instance_class end
  if state.subnet_group then args[#args + 1] = "--db-subnet-group-name"; args[#args + 1] = state.subnet_group end
  if #state.security_groups > 0 then
    args[#args + 1] = "--vpc-security-group-ids"
    for _, g in ipairs(state.security_groups) do args[#args + 1] = g end
  end
  args[#args + 1] = state.multi_az and "--multi-az" or "--no-multi-az"
  exec(skafu.aws_argv(params.region, args), { timeout = 300 })
  state.rehearsal = dry_run() -- no instance is being restored: nothing to wait for
  state.restore_started = true
end)

step("Wait for the restored instance", {
  description = "Poll `aws rds describe-db-instances` until the restored instance is available " ..
                "(a restore that ends failed stops the wait).",
  when = function() return not state.rehearsal end,
}, function()
  local ok, why = wait_available(state.target, state.target .. " available")
  if not ok then
    state.restore_failed = why
    log.error("restore failed: %s", why)
    return
  end
  local db = skafu.db_instance(params.region, state.target)
  state.target_endpoint = ((db or {}).Endpoint or {}).Address
  log.info("%s is available at %s", state.target, tostring(state.target_endpoint))
end)

step("Validate data integrity", {
  description = "point_in_time_recovery › Validate data integrity: a human checkpoint (which " ..
                "rows must be there depends on the incident); the restored instance is still " ..
                "separate, so nothing has switched yet.",
  when = function() return not state.rehearsal and not state.restore_failed end,
}, function()
  state.validated = confirm(string.format("Is the data on %s (%s) correct as of %s? (connect and check the " ..
                                          "tables the incident touched)", state.target, tostring(state.target_endpoint),
                                          state.restore_time or state.latest))
  if not state.validated then log.error("restored data not validated: %s stays for inspection", state.target) end
end)

step("Swap in the restored instance", {
  description = "Rename the original to <id>-pre-pitr-<time> and the restored instance to the " ..
                "original identifier (`aws rds modify-db-instance --new-db-instance-identifier " ..
                "--apply-immediately`), so the applications' endpoint is unchanged.",
  when = function() return params.swap and (state.rehearsal or state.validated == true) end,
}, function()
  check(confirm(string.format("Swap: rename %s to %s and %s to %s?", params.db_instance, state.old_name,
                              state.target, params.db_instance)), "swap declined by the operator")
  exec(skafu.aws_argv(params.region, { "rds", "modify-db-instance", "--db-instance-identifier", params.db_instance,
                                       "--new-db-instance-identifier", state.old_name, "--apply-immediately" }))
  if not state.rehearsal then
    local ok, why = wait_available(state.old_name, "original renamed")
    if not ok then state.swap_failed = why; return end
  end
  exec(skafu.aws_argv(params.region, { "rds", "modify-db-instance", "--db-instance-identifier", state.target,
                                       "--new-db-instance-identifier", params.db_instance, "--apply-immediately" }))
  if not state.rehearsal then
    local ok, why = wait_available(params.db_instance, "restored instance renamed")
    if not ok then state.swap_failed = why; return end
  end
  state.swapped = true
end)

step("Resume application traffic", {
  description = "point_in_time_recovery › Resume application traffic: the services back to " ..
                "their desired counts, then wait until every task runs (also after a failed " ..
                "restore, on the original database).",
  when = function() return state.traffic_stopped == true end,
}, function()
  for _, name in ipairs(params.services) do
    local n = state.desired_before[name] or 0
    if n > 0 then
      exec(skafu.aws_argv(params.region, { "ecs", "update-service", "--cluster", params.cluster,
                                           "--service", name, "--desired-count", tostring(n) }))
    end
  end
  state.traffic_resumed = true
  if state.rehearsal then return end
  local ok, err = pcall(wait_until, function()
    for _, s in ipairs(skafu.ecs_services(params.region, params.cluster, params.services)) do
      if (state.desired_before[s.service] or 0) > 0 and not s.healthy then return false end
    end
    return true
  end, { timeout = 900, every = params.every, what = "services running" })
  if not ok then state.services_not_back = tostring(err); log.error("services not all running: %s", err) end
end)

step("Escalate a failed recovery", {
  description = "A restore that failed, was not validated, or did not swap: P1 (Incident " ..
                "Classification: significant degradation), paged.",
  when = function()
    return (state.restore_failed or state.validated == false or state.swap_failed or state.services_not_back) and true or false
  end,
}, function()
  local why = state.restore_failed or state.swap_failed or state.services_not_back or
              ("restored data on " .. state.target .. " not validated")
  local row = escalation.classify(skafu.matrix(), { significant_degradation = true })
  escalation.notify(row, {
    summary = string.format("Skafu: point-in-time recovery of %s failed: %s", params.db_instance, why),
    details = { instance = params.db_instance, target = state.target, restore_time = state.restore_time or state.latest,
                traffic_resumed = state.traffic_resumed },
    dedup_key = "skafu-pitr-" .. params.db_instance,
    source = "skafu/db-point-in-time-recovery",
  })
  check(false, "point-in-time recovery did not complete: %s", why)
end)

step("Notify stakeholders", {
  description = "Tell the team the database was recovered (and where the original is kept).",
  when = function() return state.swapped == true or (state.validated == true and not params.swap) end,
}, function()
  notify.slack{ text = string.format("Skafu: %s recovered to %s%s%s", params.db_instance,
    state.restore_time or "the latest restorable time",
    state.swapped and string.format("; the original is kept as %s", state.old_name)
                  or string.format("; restored instance %s (not swapped in)", state.target),
    state.rehearsal and " [dry-run]" or "") }
end)
