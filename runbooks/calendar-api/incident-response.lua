local cal = require "calendar_api"
local compose = require "compose"
local alertmanager = require "alertmanager"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/incident-response",
  title       = "Calendar API: incident response (assess, diagnose, mitigate, communicate)",
  description = [[The document's incident procedure in its four phases: initial response (health,
compose services, active alerts, docker stats) and severity, diagnosis (error log, metrics, failed
components, external dependencies), mitigation (restart, raise resource limits, clear the cache,
degraded mode without LLM enhancement, each only when the diagnosis calls for it), verification,
and communication. 001_ef3bce7d6f139975.txt › Incident Response › Incident Response Procedures.]],
  source      = "001_ef3bce7d6f139975.txt › Incident Response › Incident Response Procedures",
  tags        = { "calendar-api", "incident" },
  mutates     = { "restarts compose services (docker compose restart)",
                  "raises the calendar-api container's memory/CPU limits (docker update)",
                  "clears the API cache (DELETE /cache/clear)",
                  "degraded mode: sets the LLM switch in the compose .env file and recreates calendar-api",
                  "notifies the team by severity (PagerDuty / Slack / email)" },
  params = {
    root             = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/ and logs/)" },
    compose_file     = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project          = { default = "", help = "compose project (default: as docker compose names it)" },
    service          = { default = cal.SERVICE, help = "the API's compose service" },
    api              = { default = cal.API, help = "API base URL" },
    alertmanager     = { default = cal.ALERTMANAGER, help = "Alertmanager base URL" },
    log_dir          = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    llm_url          = { default = "", help = "health URL of the LLM service (the document names none); empty: not checked" },
    db_url           = { default = "", secret = true,
                         help = "the API's database (postgresql://user:pass@localhost/db); empty: not checked" },
    sample_seconds   = { type = "number", default = 30, help = "seconds between the two /metrics scrapes of the error rate" },
    error_threshold  = { type = "number", default = 0.10, help = "error rate that calls for a restart (High Error Rate: >10%)" },
    memory_pct       = { type = "number", default = 90, help = "container memory use (% of its limit) that calls for more resources" },
    memory           = { default = "2g", help = "memory limit for `docker update --memory`" },
    cpus             = { type = "number", default = 1.0, help = "CPU limit for `docker update --cpus`" },
    dependency_lines = { type = "number", default = 5,
                         help = "timeout/connection errors in the last 100 error lines that mean a failing dependency" },
    env_file         = { default = "deployment/.env", help = "the compose .env file (relative to root) for degraded mode" },
    degraded_env     = { default = "LLM_ENHANCEMENT_ENABLED=false",
                         help = "the setting that disables LLM enhancement (the document names no variable: set yours)" },
    mitigate         = { type = "boolean", default = true, help = "take the mitigation actions (false: assess and diagnose only)" },
    restart_timeout  = { type = "number", default = 120, help = "seconds to wait for /healthz after a restart" },
  },
}

local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil

local function logfile(name)
  return cal.path(params.root, params.log_dir .. "/" .. name)
end

local function healthy()
  local ok, r = pcall(http.get, params.api .. "/healthz", { timeout = 10 })
  return ok and r.status == 200, ok and ("HTTP " .. r.status) or tostring(r)
end

-- ---- 1. Initial Response (first 15 minutes) ---------------------------------

step("Verify incident scope and impact", {
  description = "Initial Response › 1: `curl -f http://localhost:8000/healthz`.",
}, function()
  state.actions = {}
  local ok, why = healthy()
  state.api_down = not ok
  if ok then log.info("API healthy") else log.warn("API health check failed: %s", why) end
end)

step("Check service status", {
  description = "Initial Response › 2: `docker-compose -f deployment/docker-compose.prod.yml ps`.",
}, function()
  local rows, down = cal.services(FILE, params.project)
  state.services_down = down
  state.containers = {}
  state.api_containers = {}
  for _, r in ipairs(rows) do
    if r.running then state.containers[#state.containers + 1] = r.name end
    if r.service == params.service then
      state.api_containers[#state.api_containers + 1] = r.name
      if r.exit_code == 137 then state.oom = true end
    end
  end
  if #down > 0 then log.warn("down: %s", table.concat(down, ", ")) end
end)

step("Review recent alerts", {
  description = "Initial Response › 3: `curl http://localhost:9093/api/v1/alerts | jq '.data[] | " ..
                "select(.status.state == \"active\")'`.",
}, function()
  state.alerts = {}
  local ok, alerts = pcall(alertmanager.firing, params.alertmanager)
  if not ok then log.warn("Alertmanager: %s", tostring(alerts)); return end
  for _, a in ipairs(alerts) do
    state.alerts[#state.alerts + 1] = a.name
    log.warn("firing: %s (%s) %s", a.name or "?", a.labels.severity or "-", a.annotations.summary or "")
  end
end)

step("Check system resources", {
  description = "Initial Response › 4: `docker stats --no-stream`.",
}, function()
  local stats = cal.stats(state.containers)
  state.memory_pct = 0
  for _, n in ipairs(state.api_containers) do
    local s = stats[n]
    if s and (s.memory_percent or 0) > state.memory_pct then state.memory_pct = s.memory_percent end
  end
  state.memory_pressure = state.oom == true or state.memory_pct >= params.memory_pct
  if state.memory_pressure then
    log.warn("%s: memory at %.0f%% of its limit%s", params.service, state.memory_pct,
             state.oom and " (killed with 137: out of memory)" or "")
  end
end)

-- ---- 2. Diagnosis (15-30 minutes) -------------------------------------------

step("Check application logs", {
  description = "Diagnosis › 1: `tail -100 logs/calendar-api-errors.log`; Diagnosis › 3: " ..
                "`grep \"component.*failed\" logs/calendar-api.log | tail -20`.",
}, function()
  local lines = cal.grep_tail(logfile("calendar-api-errors.log"), nil, 100)
  local dep, cache = 0, 0
  for _, l in ipairs(lines) do
    if l:find("timeout") or l:find("[Cc]onnection") then dep = dep + 1 end
    if l:lower():find("cache") and (l:find("corrupt") or l:find("decode") or l:find("invalid")) then cache = cache + 1 end
  end
  for i = math.max(1, #lines - 19), #lines do log.info("errors | %s", lines[i]) end
  state.dependency_errors = dep
  state.cache_corrupt = cache > 0
  state.failed_components = {}
  local seen = {}
  for _, l in ipairs(cal.grep_tail(logfile("calendar-api.log"), "component.*failed", 20)) do
    local c = l:match("component[=: \"]+([%w_%-%.]+)") or "?"
    if not seen[c] then seen[c] = true; state.failed_components[#state.failed_components + 1] = c end
    log.warn("component | %s", l)
  end
  log.info("%d timeout/connection errors, %d cache corruption errors, failed components: %s", dep, cache,
           #state.failed_components > 0 and table.concat(state.failed_components, ", ") or "none")
end)

step("Review performance metrics", {
  description = "Diagnosis › 2: `curl http://localhost:8000/metrics | grep -E \"(error|latency|memory)\"`.",
  when = function() return not state.api_down end,
}, function()
  local ratio, errors, total = cal.error_rate(params.api, params.sample_seconds)
  state.error_rate = ratio
  log.info("error rate %.1f%% (%d of %d requests over %g s)", ratio * 100, math.floor(errors), math.floor(total),
           params.sample_seconds)
  for _, c in ipairs(cal.component_latency(cal.metrics(params.api))) do
    log.info("component %-20s %.3f s mean", c.component, c.seconds)
  end
end)

step("Check external dependencies", {
  description = "Diagnosis › 4: \"Test LLM service, database connections, etc.\" (the LLM health URL " ..
                "and the database when given; Troubleshooting › Database Connection Issues).",
}, function()
  state.llm_down = false
  if params.llm_url ~= "" then
    local ok, r = pcall(http.get, params.llm_url, { timeout = 10 })
    state.llm_down = not (ok and r.status >= 200 and r.status < 300)
    log[state.llm_down and "warn" or "info"]("LLM service %s: %s", params.llm_url,
                                             ok and ("HTTP " .. r.status) or tostring(r))
  end
  if params.db_url ~= "" then
    local ok, err = pcall(function()
      local conn <close> = db.open(params.db_url, { timeout = 10 })
      conn:query("SELECT 1")
    end)
    state.db_down = not ok
    if ok then log.info("Database connection successful") else log.warn("Database connection failed: %s", tostring(err)) end
  end
  state.dependency_down = state.llm_down or state.dependency_errors >= params.dependency_lines
end)

step("Classify severity", {
  description = "Incident Response › Severity Levels: P1 service down, P2 degraded performance, " ..
                "P3 minor issues, P4 maintenance; P1 escalates immediately.",
}, function()
  local row, reason = escalation.classify(cal.SEVERITY, {
    api_down = state.api_down, service_down = #state.services_down > 0, error_rate = state.error_rate,
    cache_issue = state.cache_corrupt, component_failed = #state.failed_components > 0 or state.db_down == true,
  })
  state.severity = row.level
  state.row = { level = row.level, title = row.title, response = row.response, escalation = row.escalation }
  log.warn("%s %s (%s): respond within %s, escalation %s", row.level, row.title, reason, row.response, row.escalation)
  if row.level == "P1" then
    escalation.notify(row, { summary = string.format("calendar-api incident: %s (%s)", row.title, reason),
                             dedup_key = "calendar-api-incident", source = "calendar-api/incident-response" })
  end
end)

-- ---- 3. Mitigation (30-60 minutes) ------------------------------------------

step("Restart services if needed", {
  description = "Mitigation: `docker-compose -f deployment/docker-compose.prod.yml restart calendar-api` " ..
                "(and any other service that is down), then wait for /healthz.",
  when = function()
    return params.mitigate and (state.api_down or #state.services_down > 0
                                or (state.error_rate or 0) > params.error_threshold)
  end,
}, function()
  local list, seen = {}, {}
  for _, s in ipairs(state.services_down) do list[#list + 1] = s; seen[s] = true end
  if not seen[params.service] and (state.api_down or (state.error_rate or 0) > params.error_threshold) then
    list[#list + 1] = params.service
  end
  for _, s in ipairs(list) do
    compose.restart(FILE, s, { project = PROJECT, timeout = params.restart_timeout,
                               wait_url = s == params.service and (params.api .. "/healthz") or nil })
    if dry_run() then state.rehearsal = true end
    state.actions[#state.actions + 1] = "restarted " .. s
  end
end)

step("Scale resources if needed", {
  description = "Mitigation: `docker update --memory=2g --cpus=1.0 $(docker-compose ps -q calendar-api)` " ..
                "when the container is near its memory limit or was killed for memory.",
  when = function() return params.mitigate and state.memory_pressure and #state.api_containers > 0 end,
}, function()
  for _, name in ipairs(state.api_containers) do
    docker.update(name, { memory = params.memory, cpus = params.cpus })
    if dry_run() then state.rehearsal = true end
  end
  state.actions[#state.actions + 1] = string.format("raised %s to --memory=%s --cpus=%g", params.service,
                                                    params.memory, params.cpus)
end)

step("Clear cache if corrupted", {
  description = "Mitigation: `curl -X DELETE http://localhost:8000/cache/clear`, then `curl " ..
                "http://localhost:8000/cache/stats` (Troubleshooting › Cache Corruption).",
  when = function() return params.mitigate and state.cache_corrupt end,
}, function()
  local r = http.delete(params.api .. "/cache/clear", { timeout = 30 })
  if dry_run() then state.rehearsal = true end
  check(r.status >= 200 and r.status < 300, "DELETE %s/cache/clear: HTTP %s", params.api, tostring(r.status))
  local s = http.get(params.api .. "/cache/stats", { timeout = 10 })
  log.info("cache stats: HTTP %d %s", s.status, (s.body or ""):sub(1, 200))
  state.actions[#state.actions + 1] = "cleared the cache"
end)

step("Enable degraded mode if necessary", {
  description = "Mitigation: \"Set environment variable to disable LLM enhancement\" -- when the LLM " ..
                "service or its connections fail: the variable into the compose .env file, then " ..
                "`docker compose up -d calendar-api` to recreate the service with it. Asks first.",
  when = function() return params.mitigate and state.dependency_down end,
}, function()
  local name, value = cal.split_env(params.degraded_env)
  local path = cal.path(params.root, params.env_file)
  if not confirm(string.format("Enable degraded mode: %s=%s in %s and recreate %s?", name, value, path,
                               params.service)) then
    log.warn("degraded mode declined by the operator")
    return
  end
  local text = fs.exists(path) and fs.read(path) or ""
  local new, changed = cal.env_with(text, name, value)
  if changed then fs.write(path, new) end
  compose.up(FILE, { project = PROJECT, services = { params.service } })
  if dry_run() then state.rehearsal = true end
  state.degraded = true
  state.actions[#state.actions + 1] = string.format("degraded mode (%s=%s)", name, value)
end)

step("Verify the mitigation", {
  description = "Initial Response › 1 again: `curl -f http://localhost:8000/healthz`, and the error " ..
                "rate from /metrics below the High Error Rate threshold (not in a dry-run, where " ..
                "nothing was changed).",
  when = function() return not state.rehearsal end,
}, function()
  local ok, why = healthy()
  state.resolved = ok
  if ok then
    local ratio, _, total = cal.error_rate(params.api, params.sample_seconds)
    state.error_rate_after = ratio
    state.resolved = total > 0 and ratio <= params.error_threshold
    if total == 0 then log.warn("no requests in %g s: the error rate cannot be confirmed", params.sample_seconds) end
    log.info("API healthy, error rate %.1f%%", ratio * 100)
  else
    log.warn("API still unhealthy: %s", why)
  end
end)

-- ---- 4. Communication ------------------------------------------------------

step("Communicate", {
  description = "Incident Response › 4. Communication: update the team (Slack/email by severity), " ..
                "the status page if customer-facing (a person does it), log the incident; unresolved: " ..
                "escalate along the Alert Escalation Matrix.",
}, function()
  local row = cal.level(state.severity)
  local did = #state.actions > 0 and table.concat(state.actions, "; ") or "no mitigation taken"
  local summary = string.format("calendar-api %s incident %s: %s", state.severity,
                                state.rehearsal and "rehearsed (dry-run)" or
                                (state.resolved and "mitigated" or "NOT resolved"), did)
  local channels = row.notify
  if #channels == 0 then channels = { "slack" } end
  escalation.notify(row, { summary = summary, channels = channels, dedup_key = "calendar-api-incident",
                           source = "calendar-api/incident-response",
                           details = { actions = state.actions, resolved = state.resolved,
                                       error_rate = state.error_rate, alerts = state.alerts } })
  if not state.resolved and not state.rehearsal then
    for _, level in ipairs(cal.ESCALATION) do log.warn("escalate: %s", level) end
  end
  if state.severity == "P1" or state.severity == "P2" then
    confirm("External: if customers are affected, update the status page now. Done (or not needed)?")
  end
  check(state.resolved or state.rehearsal, "not resolved after mitigation (%s): escalate to the team lead (Level 2)", did)
end)
