runbook {
  name        = "skafu/scale-up-service",
  title       = "Skafu: scale up an ECS service under load",
  description = [[Incident Response Playbook › Step_3_Resolution › mitigation_strategies › Scaling up
resources, with Capacity Planning's scaling_threshold (80 % compute utilization): reads the
service's CPU and memory (AWS/ECS), and when either is at the threshold doubles its tasks (up to
a ceiling) with `aws ecs update-service --desired-count` after confirmation, waits until they
run and tells the team; tasks that do not start are escalated. 003_8c25f41fdd75a5fb.txt ›
Incident Response › Incident Response Playbook › Step_3_Resolution; Performance Optimization ›
Capacity Planning › Resource_Planning › compute_resources.]],
  source      = "003_8c25f41fdd75a5fb.txt › Incident Response › Incident Response Playbook › Step_3_Resolution › Scaling up resources",
  tags        = { "skafu", "incident", "scaling" },
  mutates     = { "raises the service's desired task count (aws ecs update-service --desired-count)",
                  "notifies the team (Slack); pages when the new tasks do not start" },
  params = {
    region      = { default = "us-east-1", help = "AWS region (the document names none)" },
    cluster     = { default = "skafu-production", help = "ECS cluster (not in the document)" },
    service     = { default = "project-management-api", help = "the service to scale",
                    choices = { "project-management-api", "template-management-api", "ai-integration-service",
                                "github-integration-service", "observability-service" } },
    threshold   = { type = "number", default = 80, help = "Capacity Planning › compute_resources › scaling_threshold (%)" },
    minutes     = { type = "number", default = 15, help = "utilization window, minutes" },
    desired     = { type = "number", default = 0, help = "tasks to scale to (0: twice the current count)" },
    max_count   = { type = "number", default = 10, help = "ceiling on the task count (not in the document)" },
    force       = { type = "boolean", default = false, help = "scale even below the threshold" },
    timeout     = { type = "number", default = 600, help = "seconds to wait for the new tasks" },
    every       = { type = "number", default = 15, help = "seconds between checks" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function service()
  return skafu.ecs_services(params.region, params.cluster, { params.service })[1]
end

step("Assess load", {
  description = "Step_2_Response › Review logs and metrics: the service's tasks " ..
                "(`aws ecs describe-services`) and its peak CPU and memory over the window " ..
                "(AWS/ECS CPUUtilization, MemoryUtilization).",
}, function()
  local s = service()
  check(s.status ~= "MISSING", "service %s not found in cluster %s", params.service, params.cluster)
  state.desired_before = s.desired
  local dims = { ClusterName = params.cluster, ServiceName = params.service }
  local q = { namespace = "AWS/ECS", dimensions = dims, stat = "Maximum", hours = params.minutes / 60, period = 60 }
  q.metric = "CPUUtilization"
  state.cpu = skafu.metric(params.region, q)
  q.metric = "MemoryUtilization"
  state.memory = skafu.metric(params.region, q)
  local peak = math.max(state.cpu or 0, state.memory or 0)
  state.overloaded = peak >= params.threshold
  local target = params.desired > 0 and math.floor(params.desired) or math.max(1, s.desired) * 2
  state.target = math.min(target, math.floor(params.max_count))
  log[state.overloaded and "warn" or "info"]("%s: %d/%d tasks, CPU %s%%, memory %s%% (threshold %d%%)", params.service,
    s.running, s.desired, state.cpu and string.format("%.0f", state.cpu) or "?",
    state.memory and string.format("%.0f", state.memory) or "?", params.threshold)
  if state.target <= s.desired then
    log.warn("already at %d tasks (ceiling %d): scaling up cannot help, look elsewhere", s.desired, params.max_count)
  end
end)

step("Scale up resources", {
  description = "mitigation_strategies › Scaling up resources: `aws ecs update-service " ..
                "--desired-count N` (after confirmation).",
  when = function() return (state.overloaded or params.force) and state.target > state.desired_before end,
}, function()
  check(confirm(string.format("Scale %s from %d to %d tasks?", params.service, state.desired_before, state.target)),
        "scaling declined by the operator")
  exec(skafu.aws_argv(params.region, { "ecs", "update-service", "--cluster", params.cluster,
                                       "--service", params.service, "--desired-count", tostring(state.target) }))
  state.scaled = true
  state.rehearsal = dry_run() -- nothing scaled: no new tasks to wait for
end)

step("Verify fix effectiveness", {
  description = "Step_3_Resolution › validation › Verify fix effectiveness: wait until the new " ..
                "tasks run.",
  when = function() return state.scaled == true and not state.rehearsal end,
}, function()
  local ok, err = pcall(wait_until, function()
    local s = service()
    state.running = s.running
    return s.running >= state.target
  end, { timeout = params.timeout, every = params.every, what = params.service .. " tasks running" })
  if not ok then
    state.not_started = string.format("%s/%d tasks running after %ds", tostring(state.running), state.target, params.timeout)
    log.error("%s (%s)", state.not_started, tostring(err))
  end
end)

step("Update stakeholders", {
  description = "Step_3_Resolution › communication › Update stakeholders; tasks that do not " ..
                "start leave the feature degraded: P1, paged.",
  when = function() return state.scaled == true end,
}, function()
  if state.not_started then
    local row = escalation.classify(skafu.matrix(), { significant_degradation = true })
    escalation.notify(row, {
      summary = string.format("Skafu: scaling %s to %d tasks failed: %s", params.service, state.target, state.not_started),
      dedup_key = "skafu-scale-" .. params.service, source = "skafu/scale-up-service",
    })
    check(false, "scale-up of %s did not complete: %s", params.service, state.not_started)
  end
  notify.slack{ text = string.format("Skafu: %s scaled from %d to %d tasks (CPU %s%%, memory %s%%)%s", params.service,
    state.desired_before, state.target, state.cpu and string.format("%.0f", state.cpu) or "?",
    state.memory and string.format("%.0f", state.memory) or "?", state.rehearsal and " [dry-run]" or "") }
end)
