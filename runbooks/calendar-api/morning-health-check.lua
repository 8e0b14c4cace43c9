local cal = require "calendar_api"
local health = require "health"
local alertmanager = require "alertmanager"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/morning-health-check",
  title       = "Calendar API: morning health check (9:00 AM)",
  description = [[The daily health check of the Calendar API: the compose services, the API's
/healthz, Prometheus and Grafana health, the overnight error rate and cache hit ratio, the active
Alertmanager alerts and the last errors of the logs. Anything wrong is classified with the
document's severity levels and the team is told; the run then fails so the schedule sees it.
001_ef3bce7d6f139975.txt › Daily Operations › Morning Health Check (9:00 AM).]],
  source      = "001_ef3bce7d6f139975.txt › Daily Operations › Morning Health Check (9:00 AM)",
  schedule    = "daily",
  tags        = { "calendar-api", "health", "daily" },
  mutates     = { "notifies the team (Slack / email / PagerDuty by severity) when something is wrong" },
  params = {
    root           = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/ and logs/)" },
    compose_file   = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project        = { default = "", help = "compose project (default: as docker compose names it)" },
    api            = { default = cal.API, help = "API base URL" },
    prometheus     = { default = cal.PROMETHEUS, help = "Prometheus base URL" },
    grafana        = { default = cal.GRAFANA, help = "Grafana base URL" },
    alertmanager   = { default = cal.ALERTMANAGER, help = "Alertmanager base URL" },
    log_dir        = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    error_slo      = { type = "number", default = 0.01,
                       help = "error rate SLO (Monitoring › SLOs: < 1% of requests)" },
    error_lines    = { type = "number", default = 20, help = "ERROR lines to show (grep ERROR | tail -20)" },
    notify         = { type = "boolean", default = true, help = "tell the team when something is wrong" },
  },
}

local function logfile(name)
  return cal.path(params.root, params.log_dir .. "/" .. name)
end

step("Check all services are running", {
  description = "Morning Health Check › 1. Service Status Verification: " ..
                "`docker-compose -f deployment/docker-compose.prod.yml ps`.",
}, function()
  local ok, rows, down = pcall(cal.services, cal.path(params.root, params.compose_file), params.project)
  if not ok then -- the check goes on: the rest says how bad it is
    log.warn("%s", tostring(rows))
    state.services, state.services_down, state.docker_error = 0, { "docker" }, tostring(rows)
    return
  end
  state.services = #rows
  state.services_down = down
  if #rows == 0 then state.services_down = { "(no container: is the stack deployed?)" } end
  if #down > 0 then log.warn("not running or unhealthy: %s", table.concat(down, ", ")) end
end)

step("Verify API and monitoring stack health", {
  description = "Morning Health Check › 1: `curl -f http://localhost:8000/healthz`, " ..
                "`curl -f http://localhost:9090/-/healthy`, `curl -f http://localhost:3000/api/health`.",
}, function()
  local r = health.check({
    { name = "api", url = params.api .. "/healthz" },
    { name = "prometheus", url = params.prometheus .. "/-/healthy" },
    { name = "grafana", url = params.grafana .. "/api/health", contains = '"ok"' },
  }, { timeout = 10 })
  health.report(r)
  state.endpoints_down = r.down
  state.api_down = false
  for _, n in ipairs(r.down) do
    if n == "api" then state.api_down = true end
  end
end)

step("Review overnight metrics", {
  description = "Morning Health Check › 2. Performance Metrics Review: request volume and error " ..
                "rate (the API's /metrics), cache hit rate (/cache/stats). The Grafana dashboard " ..
                "itself is for a human to look at.",
  when = function() return not state.api_down end,
}, function()
  local ratio, errors, total = cal.error_ratio(cal.metrics(params.api))
  state.error_rate = ratio
  log.info("requests %d, 5xx %d: error rate %.2f%% (SLO < %.2f%%)", math.floor(total), math.floor(errors),
           ratio * 100, params.error_slo * 100)
  for _, c in ipairs(cal.component_latency(cal.metrics(params.api))) do
    log.info("component %-20s %.3f s mean", c.component, c.seconds)
  end
  local cs = http.get(params.api .. "/cache/stats", { timeout = 10 })
  if cs.status == 200 then
    local ok, doc = pcall(json.decode, cs.body)
    if ok and type(doc) == "table" and doc.hit_ratio then
      state.cache_hit_ratio = tonumber(doc.hit_ratio)
      log.info("cache hit ratio %.2f", state.cache_hit_ratio)
    end
  else
    log.warn("GET %s/cache/stats: HTTP %d", params.api, cs.status)
  end
end)

step("Check active alerts", {
  description = "Morning Health Check › 3. Alert Review: `curl http://localhost:9093/api/v1/alerts " ..
                "| jq '.data[] | select(.status.state == \"active\")'`.",
}, function()
  local ok, alerts = pcall(alertmanager.firing, params.alertmanager)
  if not ok then
    log.warn("Alertmanager: %s", tostring(alerts))
    state.alertmanager_down = true
    state.alerts = {}
    return
  end
  state.alerts = {}
  for _, a in ipairs(alerts) do
    state.alerts[#state.alerts + 1] = a.name
    log.warn("firing: %s (%s) %s", a.name or "?", a.labels.severity or "-",
             a.annotations.summary or a.annotations.description or "")
  end
  if #alerts == 0 then log.info("no active alerts") end
end)

step("Analyse the logs", {
  description = "Morning Health Check › 4. Log Analysis: `grep \"ERROR\" logs/calendar-api.log | tail -20`, " ..
                "`tail -50 logs/parsing-decisions.log | jq`, `grep \"duration_ms.*[0-9]{4,}\" " ..
                "logs/performance-metrics.log | tail -10`.",
}, function()
  local errors = cal.grep_tail(logfile("calendar-api.log"), "ERROR", params.error_lines)
  for _, l in ipairs(errors) do log.info("error log | %s", l) end
  state.error_lines = #errors
  local decisions = cal.json_lines(cal.grep_tail(logfile("parsing-decisions.log"), nil, 50))
  local low = 0
  for _, d in ipairs(decisions) do
    if d.low_confidence or (tonumber(d.confidence) and tonumber(d.confidence) < 0.7) then low = low + 1 end
  end
  log.info("parsing decisions: %d recent, %d low confidence", #decisions, low)
  local slow = cal.grep_tail(logfile("performance-metrics.log"), "duration_ms.*[0-9]{4,}", 10)
  for _, l in ipairs(slow) do log.info("slow | %s", l) end
  state.slow_requests = #slow
end)

step("Summarise and escalate", {
  description = "Incident Response › Severity Levels: classify what was found (P1 service down, " ..
                "P2 degraded, P3 minor) and tell the team (Incident Response › 4. Communication).",
}, function()
  local problems = {}
  if #state.services_down > 0 then problems[#problems + 1] = "services down: " .. table.concat(state.services_down, ", ") end
  if #state.endpoints_down > 0 then problems[#problems + 1] = "health checks failing: " .. table.concat(state.endpoints_down, ", ") end
  if (state.error_rate or 0) > params.error_slo then
    problems[#problems + 1] = string.format("error rate %.2f%% above the %.2f%% SLO", state.error_rate * 100,
                                            params.error_slo * 100)
  end
  if #state.alerts > 0 then problems[#problems + 1] = "active alerts: " .. table.concat(state.alerts, ", ") end
  if state.alertmanager_down then problems[#problems + 1] = "Alertmanager unreachable" end
  local monitoring_down = false
  for _, n in ipairs(state.endpoints_down) do
    if n ~= "api" then monitoring_down = true end
  end
  local row, reason = escalation.classify(cal.SEVERITY, {
    api_down = state.api_down, service_down = #state.services_down > 0, error_rate = state.error_rate,
    component_failed = monitoring_down or state.alertmanager_down or #state.alerts > 0
                       or (state.error_rate or 0) > params.error_slo,
  })
  state.severity = #problems > 0 and row.level or nil
  if #problems == 0 then
    log.info("all healthy: %d services, API and monitoring up, no active alerts", state.services)
    return
  end
  log.warn("%s %s (%s): %s", row.level, row.title, reason, table.concat(problems, "; "))
  if params.notify then
    escalation.notify(row, { summary = "calendar-api morning check: " .. table.concat(problems, "; "),
                             dedup_key = "calendar-api-morning-check", source = "calendar-api/morning-health-check" })
  end
  check(false, "%s: %s (respond within %s)", row.level, table.concat(problems, "; "), row.response)
end)
