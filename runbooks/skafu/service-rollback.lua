runbook {
  name        = "skafu/service-rollback",
  title       = "Skafu: roll an ECS service back to its last known good version",
  description = [[Application_Recovery › service_rollback: identify the last known good version (the
previous task definition revision, or --param task_definition), deploy it (`aws ecs
update-service`, after confirm), validate the deployment (rollout COMPLETED, tasks running),
monitor system health and the load balancer's targets, notify the development team; a rollback
that fails is escalated as P1. 003_8c25f41fdd75a5fb.txt › Backup and Recovery › Recovery
Procedures › Application_Recovery › service_rollback; Incident Response Playbook ›
Step_3_Resolution › Rollback to previous version.]],
  source      = "003_8c25f41fdd75a5fb.txt › Backup and Recovery › Recovery Procedures › Application_Recovery › service_rollback",
  tags        = { "skafu", "deploy", "dr", "incident" },
  mutates     = { "deploys the previous task definition of the service (aws ecs update-service)",
                  "notifies the development team (Slack); pages when the rollback fails" },
  params = {
    region          = { default = "us-east-1", help = "AWS region (the document names none)" },
    cluster         = { default = "skafu-production", help = "ECS cluster (not in the document)" },
    service         = { default = "project-management-api", help = "the service to roll back",
                        choices = { "project-management-api", "template-management-api", "ai-integration-service",
                                    "github-integration-service", "observability-service" } },
    task_definition = { default = "", help = "the last known good version (family:revision or ARN; " ..
                        "default: the revision before the current one)" },
    timeout         = { type = "number", default = 900, help = "seconds to wait for the rollout" },
    every           = { type = "number", default = 15, help = "seconds between checks" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function describe()
  local r = skafu.aws(params.region, { "ecs", "describe-services", "--cluster", params.cluster,
                                       "--services", params.service })
  local s = (r.services or {})[1]
  check(s, "service %s not found in cluster %s", params.service, params.cluster)
  return s
end

local function primary(s)
  for _, d in ipairs(s.deployments or {}) do
    if d.status == "PRIMARY" then return d end
  end
  return {}
end

-- "arn:...:task-definition/family:42" or "family:42" → family, 42
local function family_revision(td)
  local fam, rev = tostring(td):match("([^/:]+):(%d+)$")
  return fam, tonumber(rev)
end

step("Identify last known good version", {
  description = "service_rollback › Identify last known good version: the service's current " ..
                "task definition (`aws ecs describe-services`) and the revision before it " ..
                "(`aws ecs list-task-definitions --family-prefix F --sort DESC`).",
}, function()
  local s = describe()
  state.current = s.taskDefinition
  state.target_group = ((s.loadBalancers or {})[1] or {}).targetGroupArn
  local fam, rev = family_revision(s.taskDefinition)
  check(fam, "cannot read the family and revision of %s", tostring(s.taskDefinition))
  if params.task_definition ~= "" then
    state.target = params.task_definition
  else
    local list = skafu.aws(params.region, { "ecs", "list-task-definitions", "--family-prefix", fam,
                                            "--status", "ACTIVE", "--sort", "DESC" }).taskDefinitionArns or {}
    for _, arn in ipairs(list) do
      local f, r = family_revision(arn)
      if f == fam and r and r < rev then state.target = arn; break end
    end
    check(state.target, "no revision of %s before %d: give --param task_definition=FAMILY:REV", fam, rev)
  end
  check(state.target ~= state.current, "%s already runs %s", params.service, state.current)
  local td = skafu.aws(params.region, { "ecs", "describe-task-definition", "--task-definition", state.target })
  local images = {}
  for _, c in ipairs((td.taskDefinition or {}).containerDefinitions or {}) do images[#images + 1] = c.image end
  state.target_images = images
  log.info("%s runs %s; rolling back to %s (%s)", params.service, state.current, state.target,
           table.concat(images, ", "))
end)

step("Deploy previous version", {
  description = "service_rollback › Deploy previous version: `aws ecs update-service --cluster C " ..
                "--service S --task-definition FAMILY:REV` (after confirmation).",
}, function()
  check(confirm(string.format("Roll %s (cluster %s) back from %s to %s?", params.service, params.cluster,
                              state.current, state.target)), "rollback declined by the operator")
  exec(skafu.aws_argv(params.region, { "ecs", "update-service", "--cluster", params.cluster,
                                       "--service", params.service, "--task-definition", state.target }))
  state.rehearsal = dry_run() -- nothing deployed: no rollout to validate
  state.deployed = true
end)

step("Validate deployment", {
  description = "service_rollback › Validate deployment: wait until the PRIMARY deployment runs " ..
                "the target revision with rolloutState COMPLETED (a FAILED rollout stops the wait).",
  when = function() return not state.rehearsal end,
}, function()
  local last
  wait_until(function()
    local s = describe()
    local d = primary(s)
    last = string.format("%s %s, %d/%d running", tostring(d.taskDefinition), tostring(d.rolloutState),
                         d.runningCount or 0, d.desiredCount or 0)
    if d.rolloutState == "FAILED" then
      state.rollout_failed = d.rolloutStateReason or "rollout FAILED"
      return true
    end
    return d.taskDefinition == state.target and d.rolloutState == "COMPLETED" and
           (d.runningCount or 0) >= (d.desiredCount or 0)
  end, { timeout = params.timeout, every = params.every, what = params.service .. " rollout" })
  state.rollout = last
  if state.rollout_failed then
    log.error("rollout failed: %s", state.rollout_failed)
  else
    log.info("deployed: %s", last)
  end
end)

step("Monitor system health and load balancer", {
  description = "service_rollback › Monitor system health; Update load balancer: ECS registers " ..
                "the new tasks in the service's target group; wait until all its targets are " ..
                "healthy (`aws elbv2 describe-target-health`).",
  when = function() return not state.rehearsal and not state.rollout_failed and state.target_group ~= nil end,
}, function()
  local ok, err = pcall(wait_until, function()
    local th = skafu.aws(params.region, { "elbv2", "describe-target-health", "--target-group-arn",
                                          state.target_group }).TargetHealthDescriptions or {}
    local healthy = 0
    for _, t in ipairs(th) do
      if (t.TargetHealth or {}).State == "healthy" then healthy = healthy + 1 end
    end
    state.targets = string.format("%d/%d healthy", healthy, #th)
    return #th > 0 and healthy == #th
  end, { timeout = params.timeout, every = params.every, what = "target group healthy" })
  if not ok then
    state.unhealthy_targets = state.targets or tostring(err)
    log.error("target group not healthy after the rollback: %s", state.unhealthy_targets)
  else
    log.info("target group: %s", state.targets)
  end
end)

step("Notify development team", {
  description = "service_rollback › Notify development team.",
  when = function() return not state.rollout_failed and not state.unhealthy_targets end,
}, function()
  notify.slack{ text = string.format("Skafu: %s rolled back from %s to %s (%s)%s", params.service,
    state.current, state.target, table.concat(state.target_images or {}, ", "),
    state.rehearsal and " [dry-run]" or "") }
end)

step("Escalate a failed rollback", {
  description = "A rollback that does not come up leaves a major feature unavailable: P1 " ..
                "(Incident Classification), paged.",
  when = function() return state.rollout_failed ~= nil or state.unhealthy_targets ~= nil end,
}, function()
  local row = escalation.classify(skafu.matrix(), { significant_degradation = true })
  escalation.notify(row, {
    summary = string.format("Skafu: rollback of %s to %s failed: %s", params.service, state.target,
                            state.rollout_failed or ("targets " .. tostring(state.unhealthy_targets))),
    details = { service = params.service, cluster = params.cluster, from = state.current, to = state.target,
                rollout = state.rollout },
    dedup_key = "skafu-rollback-" .. params.service,
    source = "skafu/service-rollback",
  })
  check(false, "rollback of %s did not complete: %s", params.service,
        state.rollout_failed or ("targets " .. tostring(state.unhealthy_targets)))
end)
