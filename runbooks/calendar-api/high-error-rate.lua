local cal = require "calendar_api"
local compose = require "compose"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/high-error-rate",
  title       = "Calendar API: high error rate (>10% 5xx)",
  description = [[Measures the 5xx share of http_requests_total between two scrapes of /metrics,
reads the recent ERROR lines and the timeout/connection/parsing_error patterns, then takes the
document's mitigation that fits: disable LLM enhancement when the errors are timeouts and
connection failures, scale resources when the container is near its memory limit, otherwise
restart the service. Verifies the rate afterwards and tells the team (P2).
001_ef3bce7d6f139975.txt › Incident Response › Common Incident Scenarios › High Error Rate (>10%).]],
  source      = "001_ef3bce7d6f139975.txt › Incident Response › Common Incident Scenarios › High Error Rate (>10%)",
  severity    = "P2",
  tags        = { "calendar-api", "incident", "P2" },
  mutates     = { "restarts calendar-api (docker compose restart)",
                  "degraded mode: sets the LLM switch in the compose .env file and recreates calendar-api",
                  "raises the calendar-api container's memory/CPU limits (docker update)",
                  "notifies the team (Slack, email)" },
  params = {
    root             = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/ and logs/)" },
    compose_file     = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project          = { default = "", help = "compose project (default: as docker compose names it)" },
    service          = { default = cal.SERVICE, help = "the API's compose service" },
    api              = { default = cal.API, help = "API base URL" },
    log_dir          = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    threshold        = { type = "number", default = 0.10, help = "5xx share that is a high error rate (>10%)" },
    sample_seconds   = { type = "number", default = 30, help = "seconds between the two /metrics scrapes" },
    settle_seconds   = { type = "number", default = 60, help = "seconds to let traffic flow after the mitigation before measuring again" },
    dependency_share = { type = "number", default = 0.5,
                         help = "share of timeout/connection lines among the matched errors that points at the LLM dependency" },
    memory_pct       = { type = "number", default = 90, help = "container memory use (% of limit) that calls for more resources" },
    memory           = { default = "2g", help = "memory limit for `docker update --memory`" },
    cpus             = { type = "number", default = 1.0, help = "CPU limit for `docker update --cpus`" },
    env_file         = { default = "deployment/.env", help = "the compose .env file (relative to root) for degraded mode" },
    degraded_env     = { default = "LLM_ENHANCEMENT_ENABLED=false",
                         help = "the setting that disables LLM enhancement (the document names no variable: set yours)" },
    restart_timeout  = { type = "number", default = 120, help = "seconds to wait for /healthz after a restart" },
  },
}

local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil
local LOG = cal.path(params.root, params.log_dir .. "/calendar-api.log")

-- the document's mitigation options, chosen from the diagnosis
local MITIGATION = {
  ask = "error rate above the threshold?", key = "high",
  no = { action = "none", why = "the error rate is below the threshold" },
  yes = {
    ask = "mostly timeouts and connection errors (the LLM dependency)?", key = "dependency",
    yes = { action = "degrade", why = "option 2: disable LLM enhancement temporarily" },
    no = {
      ask = "container near its memory limit?", key = "memory_pressure",
      yes = { action = "scale", why = "option 4: scale resources" },
      no = { action = "restart", why = "option 1: restart service" },
    },
  },
}

step("Check error distribution", {
  description = "`curl http://localhost:8000/metrics | grep http_requests_total | grep \"5..\"`, " ..
                "twice, sample_seconds apart: the 5xx share of the requests in between.",
}, function()
  local ratio, errors, total = cal.error_rate(params.api, params.sample_seconds)
  state.error_rate = ratio
  state.high = ratio > params.threshold
  log[state.high and "warn" or "info"]("error rate %.1f%% (%d of %d requests in %g s; threshold %.0f%%)",
    ratio * 100, math.floor(errors), math.floor(total), params.sample_seconds, params.threshold * 100)
  local prometheus = require "prometheus"
  for _, s in ipairs(prometheus.select(cal.metrics(params.api), "http_requests_total")) do
    local code = s.labels.status or s.labels.code or s.labels.status_code or "?"
    if tostring(code):match("^5") then
      log.info("  %s %s %s: %d", s.labels.method or "", s.labels.handler or s.labels.path or "", code, math.floor(s.value))
    end
  end
end)

step("Review recent error logs", {
  description = "`grep \"ERROR\" logs/calendar-api.log | tail -50 | jq`.",
}, function()
  local lines = cal.grep_tail(LOG, "ERROR", 50)
  for _, l in ipairs(lines) do log.info("error | %s", l) end
  state.error_lines = #lines
end)

step("Check for specific error patterns", {
  description = "`grep -E \"(timeout|connection|parsing_error)\" logs/calendar-api.log | tail -20`.",
}, function()
  local counts = { timeout = 0, connection = 0, parsing_error = 0 }
  local lines = cal.grep_tail(LOG, "(timeout|connection|parsing_error)", 20)
  for _, l in ipairs(lines) do
    for p in pairs(counts) do
      if l:lower():find(p, 1, true) then counts[p] = counts[p] + 1 end
    end
  end
  state.patterns = counts
  local dep = counts.timeout + counts.connection
  state.dependency = #lines > 0 and dep / #lines >= params.dependency_share
  log.info("timeout %d, connection %d, parsing_error %d (of the last %d matching lines)", counts.timeout,
           counts.connection, counts.parsing_error, #lines)
  local rows = compose.status(FILE, { project = PROJECT })
  state.containers = {}
  state.memory_pressure = false
  for _, r in ipairs(rows) do
    if r.service == params.service and r.running then state.containers[#state.containers + 1] = r.name end
  end
  for _, s in pairs(cal.stats(state.containers)) do
    if (s.memory_percent or 0) >= params.memory_pct then state.memory_pressure = true end
  end
end)

step("Choose the mitigation", {
  description = "The document's mitigation options: 1. restart service, 2. disable LLM enhancement " ..
                "temporarily, 3. increase timeout values (a person decides which), 4. scale resources.",
}, function()
  local leaf, path = escalation.decide(MITIGATION, state)
  for _, p in ipairs(path) do log.info("%s", p) end
  state.mitigation = leaf.action
  log.info("mitigation: %s (%s)", leaf.action, leaf.why)
end)

step("Restart service", {
  description = "Option 1: `docker-compose -f deployment/docker-compose.prod.yml restart calendar-api`, " ..
                "then wait for /healthz.",
  when = function() return state.mitigation == "restart" end,
}, function()
  compose.restart(FILE, params.service, { project = PROJECT, wait_url = params.api .. "/healthz",
                                          timeout = params.restart_timeout })
  state.rehearsal = dry_run() -- nothing changed: the error rate would not tell
end)

step("Disable LLM enhancement temporarily", {
  description = "Option 2 (Incident Response › Mitigation: \"Enable degraded mode\"): the variable into " ..
                "the compose .env file and `docker compose up -d calendar-api`. Asks first.",
  when = function() return state.mitigation == "degrade" end,
}, function()
  local name, value = cal.split_env(params.degraded_env)
  local path = cal.path(params.root, params.env_file)
  if not confirm(string.format("Disable LLM enhancement: %s=%s in %s and recreate %s?", name, value, path,
                               params.service)) then
    state.mitigation = "declined"
    log.warn("declined by the operator: nothing changed")
    return
  end
  local new, changed = cal.env_with(fs.exists(path) and fs.read(path) or "", name, value)
  if changed then fs.write(path, new) end
  compose.up(FILE, { project = PROJECT, services = { params.service } })
  state.rehearsal = dry_run()
  state.degraded = true
end)

step("Scale resources", {
  description = "Option 4: `docker update --memory=2g --cpus=1.0 $(docker-compose ps -q calendar-api)`.",
  when = function() return state.mitigation == "scale" end,
}, function()
  for _, name in ipairs(state.containers) do
    docker.update(name, { memory = params.memory, cpus = params.cpus })
  end
  state.rehearsal = dry_run()
end)

step("Verify the error rate", {
  description = "The error rate again, after settle_seconds of traffic; still above the threshold: " ..
                "escalate (P2: 2 hours if unresolved).",
  when = function() return state.mitigation ~= "none" and not state.rehearsal end,
}, function()
  sleep(params.settle_seconds)
  local ratio, _, total = cal.error_rate(params.api, params.sample_seconds)
  state.error_rate_after = ratio
  state.resolved = total > 0 and ratio <= params.threshold
  if total == 0 then log.warn("no requests in %g s: the error rate cannot be confirmed", params.sample_seconds) end
  log[state.resolved and "info" or "warn"]("error rate now %.1f%%", ratio * 100)
  escalation.notify(cal.level("P2"), {
    summary = string.format("calendar-api error rate %.1f%% -> %.1f%% after %s: %s", state.error_rate * 100,
                            ratio * 100, state.mitigation, state.resolved and "resolved" or "NOT resolved"),
    dedup_key = "calendar-api-high-error-rate", source = "calendar-api/high-error-rate",
  })
  check(state.resolved, "error rate still %.1f%% (> %.0f%%): escalate; option 3 (increase timeout values) " ..
        "needs a person", ratio * 100, params.threshold * 100)
end)
