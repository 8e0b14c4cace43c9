-- carbon-ingestion/service-not-starting: Issue 1 of the 254Carbon ingestion
-- platform's Operations Runbook, on Kubernetes or docker compose.
--
--   runbook run carbon-ingestion/service-not-starting --dry-run
--   runbook run carbon-ingestion/service-not-starting --param platform=compose \
--       --param service=projection --param compose_file=/srv/carbon/docker-compose.yml

local ci = require "carbon_ingestion"
local compose = require "compose"
local kafka = require "kafka"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/service-not-starting",
  title       = "Service not starting (CrashLoopBackOff, failing health checks)",
  description = [[Finds the failing pods (kubectl) or containers (docker compose), reads their
logs and matches them against the document's resolution list (missing environment variables,
database connectivity, Kafka broker availability, configuration errors, secrets not mounted),
checks the service's dependencies and the secrets/config maps its deployment references, restarts
it (after a confirm() when the cause is one a restart cannot fix), waits up to 15 minutes and
escalates if it is still down. 002_f134cbc51c64e878.txt › Common Issues › Issue 1: Service Not
Starting (restart: Monitoring and Alerting › Alert Response › ServiceDown).]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 1: Service Not Starting",
  tags        = { "carbon-ingestion", "incident", "kubectl", "compose" },
  mutates     = { "restarts the service (kubectl rollout restart, or docker compose restart)",
                  "escalates (PagerDuty + Slack) when it is still down after 15 minutes" },
  params = {
    platform       = { default = "kubernetes", choices = { "kubernetes", "compose" },
                       help = "where the platform runs: kubectl or docker-compose" },
    service        = { default = "normalization",
                       help = "the service (normalization, enrichment, aggregation, projection)" },
    namespace      = { default = ci.namespace, help = "Kubernetes namespace" },
    compose_file   = { default = ci.compose_file, help = "the docker compose file (platform=compose)" },
    project        = { default = "", help = "compose project (default: the compose file's directory name)" },
    log_tail       = { type = "number", default = 100, help = "log lines to read (kubectl logs --tail=100)" },
    bootstrap_server = { default = ci.bootstrap_server, help = "Kafka bootstrap server" },
    clickhouse     = { default = ci.clickhouse_url, help = "ClickHouse HTTP URL (for projection)" },
    redis_host     = { default = ci.redis_host, help = "Redis host (for projection)" },
    redis_port     = { type = "number", default = ci.redis_port, help = "Redis port" },
    health_url     = { default = "", help = "the service's health URL (default http://localhost:PORT/health)" },
    restart        = { type = "boolean", default = true, help = "restart the service after the diagnosis" },
    resolve_timeout = { type = "number", default = ci.thresholds.unresolved_min * 60,
                       help = "seconds to wait for the service before escalating (15 minutes)" },
  },
}

local svc = ci.service(params.service)
check(svc ~= nil, "unknown service %q (one of normalization, enrichment, aggregation, projection)",
      params.service)
local deployment = "deployment/" .. svc.deployment
local selector = "app=" .. svc.deployment
local kube = params.platform == "kubernetes"
local function ns() return { namespace = params.namespace } end
local function copts() return params.project ~= "" and { project = params.project } or nil end
local health_url = params.health_url ~= "" and params.health_url
                   or string.format("http://localhost:%d/health", svc.port)

-- Issue 1 › Resolution, matched against the log lines (the first that matches)
local CAUSES = {
  { cause = "secret", fix = "5. Verify secrets are properly mounted",
    patterns = { "secret", "Secret", "/var/run/secrets", "credentials" } },
  { cause = "environment", fix = "1. Check for missing environment variables",
    patterns = { "environment variable", "KeyError", "not set", "missing required", "field required" } },
  { cause = "kafka", fix = "3. Check Kafka broker availability",
    patterns = { "NoBrokersAvailable", "kafka", "Kafka", "broker", "bootstrap" } },
  { cause = "database", fix = "2. Verify database connectivity",
    patterns = { "clickhouse", "ClickHouse", "redis", "Redis", "database", "could not connect" } },
  { cause = "configuration", fix = "4. Review configuration files for errors",
    patterns = { "yaml", "YAML", "config", "Config", "invalid value", "ValidationError" } },
}
-- causes a restart alone cannot fix: someone has to change something first
local NEEDS_A_FIX = { secret = true, environment = true, configuration = true }

-- only the lines that report a failure count (an INFO line naming a yaml file does not)
local FAILURE = { "ERROR", "FATAL", "CRITICAL", "Error", "error", "Exception", "not found", "failed", "Failed" }

local function match_cause(text)
  for line in text:gmatch("[^\n]+") do
    local failure = false
    for _, f in ipairs(FAILURE) do
      if line:find(f, 1, true) then failure = true; break end
    end
    if failure then
      for _, c in ipairs(CAUSES) do
        for _, p in ipairs(c.patterns) do
          if line:find(p, 1, true) then return c end
        end
      end
    end
  end
  return nil
end

-- the pods of the service: { name, phase, ready, restarts, reason, message }
local function pods()
  local out = {}
  local list = kubectl.get("pods", nil, { namespace = params.namespace, selector = selector })
  for _, p in ipairs(list.items or {}) do
    local row = { name = p.metadata.name, phase = p.status and p.status.phase or "?",
                  ready = true, restarts = 0 }
    local statuses = p.status and p.status.containerStatuses or {}
    if #statuses == 0 then row.ready = false end
    for _, cs in ipairs(statuses) do
      row.ready = row.ready and cs.ready == true
      row.restarts = row.restarts + (cs.restartCount or 0)
      local waiting = cs.state and cs.state.waiting
      if waiting then row.reason, row.message = waiting.reason, waiting.message end
    end
    out[#out + 1] = row
  end
  return out
end

local function compose_rows()
  local rows = {}
  for _, r in ipairs(compose.status(params.compose_file, copts())) do
    if r.service == svc.name then rows[#rows + 1] = r end
  end
  return rows
end

-- is the service up now?  (kubectl: every pod ready; compose: running, not
-- unhealthy, and its health URL answers)
local function up_now()
  if kube then
    local ps = pods()
    if #ps == 0 then return false end
    for _, p in ipairs(ps) do if not p.ready then return false end end
    return true
  end
  local rows = compose_rows()
  if #rows == 0 or #compose.down_services(rows) > 0 then return false end
  return http.get(health_url, { timeout = 5 }).status == 200
end

step("Check service status", {
  description = "Issue 1 › Diagnosis: `kubectl get pods -l app=normalization-service -n " ..
                "carbon-ingestion` or `docker-compose ps`; Symptoms: CrashLoopBackOff, health " ..
                "check failures.",
}, function()
  state.failing = false
  state.targets = {}
  if kube then
    local ps = pods()
    for _, p in ipairs(ps) do
      log.info("%-44s %-10s ready=%s restarts=%d%s", p.name, p.phase, tostring(p.ready), p.restarts,
               p.reason and ("  " .. p.reason) or "")
      if not p.ready then
        state.failing = true
        state.targets[#state.targets + 1] = p.name
        if p.reason then state.pod_reason = p.reason; state.pod_message = p.message end
      end
    end
    if #ps == 0 then
      state.failing = true
      log.warn("no pod with label %s in %s", selector, params.namespace)
    end
  else
    local rows = compose_rows()
    for _, r in ipairs(rows) do
      log.info("%-36s %-10s %s", r.name, r.state, r.status or r.health or "")
    end
    if #rows == 0 or #compose.down_services(rows) > 0 then
      state.failing = true
      for _, r in ipairs(rows) do
        if not r.running or r.health == "unhealthy" then state.targets[#state.targets + 1] = r.name end
      end
    end
    if #rows == 0 then log.warn("no container of service %s in %s", svc.name, params.compose_file) end
  end
  if state.failing then
    log.warn("%s is not running: %s", svc.name, state.pod_reason or "see the logs")
  else
    log.info("%s is running and ready: nothing to do", svc.name)
  end
end)

step("Check service logs", {
  description = "Issue 1 › Diagnosis: `kubectl logs deployment/normalization-service -n " ..
                "carbon-ingestion` or `docker-compose logs normalization`, matched against the " ..
                "Resolution list.",
  when = function() return state.failing end,
}, function()
  local text = ""
  if kube then
    -- CreateContainerConfigError: the container never started, the reason says why
    if state.pod_message then text = state.pod_message .. "\n" end
    for _, name in ipairs(state.targets) do
      local out = kubectl.logs(name, { namespace = params.namespace, tail = params.log_tail,
                                       previous = state.pod_reason == "CrashLoopBackOff",
                                       check = false })
      text = text .. (out or "")
    end
  else
    for _, name in ipairs(state.targets) do
      local l = docker.logs(name, { tail = params.log_tail })
      text = text .. (l.stdout or "") .. (l.stderr or "")
    end
  end
  for line in text:gmatch("[^\n]+") do log.info("%s | %s", svc.name, line) end
  local c = match_cause(text)
  if c then
    state.cause = c.cause
    log.warn("looks like a %s problem -> Resolution %s", c.cause, c.fix)
  else
    log.warn("no known cause in the logs")
  end
end)

step("Check dependencies", {
  description = "Issue 1 › Resolution 2-3: verify database connectivity (ClickHouse, Redis for " ..
                "projection) and Kafka broker availability (`kafka-broker-api-versions " ..
                "--bootstrap-server kafka:9092`).",
  when = function() return state.failing end,
}, function()
  state.dependencies_ok = true
  for _, dep in ipairs(svc.depends) do
    local ok
    if dep == "kafka" then
      ok = kafka.broker_ready{ bootstrap_server = params.bootstrap_server }
    elseif dep == "clickhouse" then
      ok = require("clickhouse").client(params.clickhouse):ping()
    elseif dep == "redis" then
      ok = require("redis").client{ host = params.redis_host, port = params.redis_port }:ping()
    end
    log[ok and "info" or "error"]("%s: %s", dep, ok and "reachable" or "NOT reachable")
    if not ok then
      state.dependencies_ok = false
      state.down_dependency = state.down_dependency or dep
    end
  end
end)

step("Check secrets and configuration are mounted", {
  description = "Issue 1 › Resolution 1, 4, 5: the environment variables, secrets and config " ..
                "maps the deployment references exist in the namespace.",
  when = function() return state.failing and kube end,
}, function()
  local d = kubectl.get(deployment, ns())
  local spec = d.spec and d.spec.template and d.spec.template.spec or {}
  local refs, seen = {}, {}
  local function ref(kind, name)
    if name and not seen[kind .. "/" .. name] then
      seen[kind .. "/" .. name] = true
      refs[#refs + 1] = { kind = kind, name = name }
    end
  end
  for _, c in ipairs(spec.containers or {}) do
    for _, e in ipairs(c.env or {}) do
      local from = e.valueFrom or {}
      if from.secretKeyRef then ref("secret", from.secretKeyRef.name) end
      if from.configMapKeyRef then ref("configmap", from.configMapKeyRef.name) end
    end
    for _, e in ipairs(c.envFrom or {}) do
      if e.secretRef then ref("secret", e.secretRef.name) end
      if e.configMapRef then ref("configmap", e.configMapRef.name) end
    end
  end
  for _, v in ipairs(spec.volumes or {}) do
    if v.secret then ref("secret", v.secret.secretName) end
    if v.configMap then ref("configmap", v.configMap.name) end
  end
  state.missing = {}
  for _, r in ipairs(refs) do
    -- describe, not get: it shows a secret's keys, never its values
    local ok = pcall(kubectl.describe, r.kind, r.name, ns())
    log[ok and "info" or "error"]("%s %s: %s", r.kind, r.name, ok and "present" or "MISSING")
    if not ok then state.missing[#state.missing + 1] = r.kind .. "/" .. r.name end
  end
  if #state.missing > 0 then
    state.cause = state.missing[1]:match("^secret/") and "secret" or "configuration"
  end
  log.info("%d reference(s) checked, %d missing", #refs, #state.missing)
end)

step("Restart the service", {
  description = "Alert Response › ServiceDown: restart the service (`kubectl rollout restart " ..
                "deployment/normalization-service` / `docker compose restart normalization`). " ..
                "For a missing variable, secret or configuration error, or a dependency that is " ..
                "down, only after the operator confirms it is fixed.",
  when = function() return state.failing and params.restart end,
}, function()
  local blocker
  if NEEDS_A_FIX[state.cause] then
    blocker = string.format("the %s problem (%s)", state.cause,
                            #(state.missing or {}) > 0 and table.concat(state.missing, ", ") or "see the logs")
  elseif state.dependencies_ok == false then
    blocker = string.format("%s being unreachable", state.down_dependency)
  end
  if blocker and not confirm(string.format(
      "A restart alone cannot fix %s. Fixed it? Restart %s now?", blocker, svc.name)) then
    log.warn("not restarted: fix %s first", blocker)
    return
  end
  if kube then
    kubectl.rollout_restart(deployment, ns())
  else
    compose.restart(params.compose_file, svc.name, copts() or {})
  end
  state.restarted = true
  state.rehearsal = dry_run() -- nothing restarted: nothing to wait for
end)

step("Verify the service is running", {
  description = "Issue 1 › Escalation: wait up to 15 minutes for every pod to be ready (or the " ..
                "container to run and its health URL, http://localhost:8510/health, to answer).",
  when = function() return state.failing and not state.rehearsal end,
}, function()
  state.resolved = pcall(wait_until, up_now, {
    timeout = params.resolve_timeout, every = 10, what = svc.name .. " running and ready" })
  if state.resolved then
    log.info("%s is running again", svc.name)
  else
    log.error("%s still not running after %d s", svc.name, params.resolve_timeout)
  end
end)

step("Escalate to the Platform Team", {
  description = "Issue 1 › Escalation: if unresolved after 15 minutes, escalate to Platform " ..
                "Team (Escalation Decision Tree: service completely down -> P1, page on-call).",
  when = function() return state.failing and state.resolved == false end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = true })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  local sent = escalation.notify(ci.level(leaf.level), {
    summary = string.format("%s (%s) not starting for %d min: %s", svc.deployment, params.platform,
                            math.floor(params.resolve_timeout / 60), state.cause or "cause unknown"),
    details = { service = svc.name, platform = params.platform, cause = state.cause,
                missing = state.missing, impact = svc.impact,
                escalate_to = ci.contact_line("platform") },
    dedup_key = "carbon-ingestion/service-not-starting/" .. svc.name,
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "%s is still not running: %s, escalated (%s) to %s", svc.name, leaf.action,
        table.concat(sent, ", "), ci.contact_line("platform"))
end)
