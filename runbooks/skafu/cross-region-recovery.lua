runbook {
  name        = "skafu/cross-region-recovery",
  title       = "Skafu: fail over to the standby region",
  description = [[Database_Recovery › cross_region_recovery: activate the standby region (promote the
cross-region read replica, start the ECS services there), update the DNS record to the standby
load balancer (Route 53 UPSERT, wait for INSYNC), monitor system health (the standby targets
healthy), notify stakeholders (P0). Synchronizing the data back is a checkpoint for when the
primary region returns. A failover that does not come up is escalated. 003_8c25f41fdd75a5fb.txt
› Backup and Recovery › Recovery Procedures › Database_Recovery › cross_region_recovery.]],
  source      = "003_8c25f41fdd75a5fb.txt › Backup and Recovery › Recovery Procedures › Database_Recovery › cross_region_recovery",
  tags        = { "skafu", "dr" },
  mutates     = { "promotes the standby read replica to a standalone database (aws rds promote-read-replica)",
                  "starts the ECS services in the standby region (aws ecs update-service --desired-count)",
                  "points the DNS record at the standby load balancer (aws route53 change-resource-record-sets)",
                  "notifies stakeholders (PagerDuty, Slack)" },
  params = {
    primary_region  = { default = "us-east-1", help = "the failed region (the document names none)" },
    db_instance     = { default = "skafu-production", help = "primary RDS instance (not in the document)" },
    standby_region  = { default = "us-west-2", help = "the standby region (not in the document)" },
    standby_db      = { default = "skafu-production-replica", help = "cross-region read replica in the standby region" },
    standby_cluster = { default = "skafu-production", help = "ECS cluster in the standby region" },
    services        = { type = "list", default = { "project-management-api", "template-management-api",
                        "ai-integration-service", "github-integration-service", "observability-service" },
                        help = "the services to start in the standby region" },
    desired_count   = { type = "number", default = 2, help = "tasks per service in the standby region" },
    standby_alb     = { default = "skafu-alb", help = "load balancer name in the standby region" },
    hosted_zone_id  = { default = "", help = "Route 53 hosted zone of the public record (empty: DNS is changed by hand)" },
    record_name     = { default = "", help = "the record applications and users resolve (e.g. api.example.com.)" },
    timeout         = { type = "number", default = 3600, help = "seconds to wait for each stage" },
    every           = { type = "number", default = 30, help = "seconds between checks" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function standby(args, opts) return skafu.aws(params.standby_region, args, opts) end

local function failed(why)
  state.failed = state.failed or why
  log.error("%s", why)
end

step("Assess the regions", {
  description = "Before cross_region_recovery: the primary database's status (it may not answer " ..
                "at all) and the standby replica's (`aws rds describe-db-instances` in each region).",
}, function()
  local ok, db = pcall(skafu.db_instance, params.primary_region, params.db_instance)
  state.primary_status = ok and (db and db.DBInstanceStatus or "not found") or "unreachable"
  local replica = skafu.db_instance(params.standby_region, params.standby_db)
  check(replica, "standby database %s not found in %s: nothing to fail over to", params.standby_db, params.standby_region)
  state.standby_status = replica.DBInstanceStatus
  state.standby_is_replica = replica.ReadReplicaSourceDBInstanceIdentifier ~= nil
  log.info("primary %s (%s): %s; standby %s (%s): %s%s", params.db_instance, params.primary_region, state.primary_status,
           params.standby_db, params.standby_region, state.standby_status,
           state.standby_is_replica and ", replicating" or ", already standalone")
  check(state.standby_status == "available", "standby database %s is %s", params.standby_db, state.standby_status)
end)

step("Activate standby region", {
  description = "cross_region_recovery › Activate standby region: `aws rds promote-read-replica` " ..
                "(after confirmation: replication stops for good), then `aws ecs update-service " ..
                "--desired-count N` for every service there.",
}, function()
  local q = string.format("Fail over to %s? %s in %s is %s; promoting %s ends replication.", params.standby_region,
                          params.db_instance, params.primary_region, state.primary_status, params.standby_db)
  check(confirm(q), "failover declined by the operator")
  if state.standby_is_replica then
    exec(skafu.aws_argv(params.standby_region, { "rds", "promote-read-replica",
                                                 "--db-instance-identifier", params.standby_db }))
  end
  for _, name in ipairs(params.services) do
    exec(skafu.aws_argv(params.standby_region, { "ecs", "update-service", "--cluster", params.standby_cluster,
                                                 "--service", name, "--desired-count",
                                                 tostring(math.floor(params.desired_count)) }))
  end
  state.rehearsal = dry_run() -- nothing promoted or scaled: nothing to wait for
  if state.rehearsal then return end
  local ok, err = pcall(wait_until, function()
    local db = skafu.db_instance(params.standby_region, params.standby_db)
    return db and db.DBInstanceStatus == "available" and db.ReadReplicaSourceDBInstanceIdentifier == nil
  end, { timeout = params.timeout, every = params.every, what = params.standby_db .. " promoted" })
  if not ok then return failed("standby database not promoted: " .. tostring(err)) end
  ok, err = pcall(wait_until, function()
    for _, s in ipairs(skafu.ecs_services(params.standby_region, params.standby_cluster, params.services)) do
      if not s.healthy then return false end
    end
    return true
  end, { timeout = params.timeout, every = params.every, what = "standby services running" })
  if not ok then return failed("standby services not running: " .. tostring(err)) end
  state.activated = true
end)

step("Update DNS records", {
  description = "cross_region_recovery › Update DNS records; Redirect application traffic: " ..
                "UPSERT the record as an alias of the standby load balancer " ..
                "(`aws route53 change-resource-record-sets`), wait for INSYNC (`aws route53 get-change`).",
  when = function() return not state.failed and params.hosted_zone_id ~= "" and params.record_name ~= "" end,
}, function()
  local lb = (standby({ "elbv2", "describe-load-balancers", "--names", params.standby_alb }).LoadBalancers or {})[1]
  check(lb, "load balancer %s not found in %s", params.standby_alb, params.standby_region)
  state.standby_alb_arn = lb.LoadBalancerArn
  local batch = json.encode({
    Comment = "skafu/cross-region-recovery: fail over to " .. params.standby_region,
    Changes = { { Action = "UPSERT", ResourceRecordSet = {
      Name = params.record_name, Type = "A",
      AliasTarget = { HostedZoneId = lb.CanonicalHostedZoneId, DNSName = lb.DNSName, EvaluateTargetHealth = true },
    } } },
  })
  local r = exec(skafu.aws_argv(params.standby_region, { "route53", "change-resource-record-sets",
                                                         "--hosted-zone-id", params.hosted_zone_id,
                                                         "--change-batch", batch }))
  state.dns_updated = true
  local out = skafu.decode(r)
  local id = out and (out.ChangeInfo or {}).Id
  if not id then return end
  local ok, err = pcall(wait_until, function()
    return (standby({ "route53", "get-change", "--id", id }).ChangeInfo or {}).Status == "INSYNC"
  end, { timeout = params.timeout, every = params.every, what = "DNS change INSYNC" })
  if not ok then log.warn("DNS change %s not INSYNC yet: %s", id, tostring(err)) end
  state.dns_insync = ok
end)

step("Monitor system health", {
  description = "cross_region_recovery › Monitor system health: every target of the standby " ..
                "load balancer healthy (`aws elbv2 describe-target-groups`, `describe-target-health`).",
  when = function() return not state.failed and not state.rehearsal end,
}, function()
  if not state.standby_alb_arn then
    local lb = (standby({ "elbv2", "describe-load-balancers", "--names", params.standby_alb }).LoadBalancers or {})[1]
    check(lb, "load balancer %s not found in %s", params.standby_alb, params.standby_region)
    state.standby_alb_arn = lb.LoadBalancerArn
  end
  local tgs = standby({ "elbv2", "describe-target-groups", "--load-balancer-arn", state.standby_alb_arn }).TargetGroups or {}
  local ok, err = pcall(wait_until, function()
    local healthy, total = 0, 0
    for _, tg in ipairs(tgs) do
      for _, t in ipairs(standby({ "elbv2", "describe-target-health", "--target-group-arn", tg.TargetGroupArn })
                         .TargetHealthDescriptions or {}) do
        total = total + 1
        if (t.TargetHealth or {}).State == "healthy" then healthy = healthy + 1 end
      end
    end
    state.targets = string.format("%d/%d healthy", healthy, total)
    return total > 0 and healthy == total
  end, { timeout = params.timeout, every = params.every, what = "standby targets healthy" })
  if not ok then return failed("standby targets not healthy: " .. (state.targets or tostring(err))) end
  log.info("standby region serving: targets %s", state.targets)
end)

step("Notify stakeholders", {
  description = "cross_region_recovery › Notify stakeholders: a regional failover is a P0 " ..
                "(Incident Classification: complete service outage), on its channels.",
}, function()
  local row = escalation.classify(skafu.matrix(), { complete_outage = true })
  local summary
  if state.failed then
    summary = string.format("Skafu failover to %s FAILED: %s", params.standby_region, state.failed)
  else
    summary = string.format("Skafu failed over to %s (database %s promoted, services started%s)%s", params.standby_region,
                            params.standby_db, state.dns_updated and ", DNS updated" or "; update DNS by hand",
                            state.rehearsal and " [dry-run]" or "")
  end
  escalation.notify(row, { summary = summary, dedup_key = "skafu-failover-" .. params.standby_region,
                           source = "skafu/cross-region-recovery",
                           details = { primary = params.primary_region, primary_status = state.primary_status,
                                       standby = params.standby_region, targets = state.targets } })
  check(not state.failed, "failover did not complete: %s", tostring(state.failed))
end)

step("Synchronize data", {
  description = "cross_region_recovery › Synchronize data: when the primary region is back, " ..
                "writes made in the standby region must reach it (a new replica back to the " ..
                "primary region) -- a human checkpoint, nothing is run.",
  when = function() return not state.rehearsal end,
}, function()
  state.sync_planned = confirm(string.format("Has someone been assigned to re-establish replication from %s back to %s " ..
                                             "once it recovers?", params.standby_region, params.primary_region))
  if not state.sync_planned then log.warn("data synchronization back to %s is not planned yet", params.primary_region) end
end)
