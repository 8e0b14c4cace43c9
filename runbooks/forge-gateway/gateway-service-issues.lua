local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/gateway-service-issues",
  title       = "Gateway service issues: status, restart, logs, scale, escalate",
  description = [[The gateway is down, unhealthy or overloaded. Checks the compose service and
http://localhost:8000/health, restarts it (as incident-response.sh -r: docker compose restart,
then waits for /health), collects the last 200 log lines, scales it to 2 replicas when its CPU
is past the critical 90 %, and escalates (CRITICAL) when it is still down.
004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Gateway Service Issues.]],
  source      = "004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Gateway Service Issues",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "restarts the gateway (docker compose restart gateway)",
                  "scales the gateway (docker compose up -d --scale gateway=N)",
                  "pages and posts to Slack when the gateway stays down" },
  params      = fg.params{ "compose_file", "project", "gateway",
    log_lines       = { type = "number", default = 200, help = "log lines to collect (incident-response.sh -l gateway 200)" },
    replicas        = { type = "number", default = 2, help = "replicas when scaling (incident-response.sh -s gateway 2)" },
    restart_timeout = { type = "number", default = 60, help = "seconds to wait for /health after the restart" },
    cpu_critical    = { type = "number", default = fg.THRESHOLDS.cpu_pct.critical, help = "CPU % that calls for scaling (Key Metrics: critical at 90 %)" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

local SERVICE = "gateway"

step("Check service status", {
  description = "docker-compose -f docker-compose.production.yml ps gateway",
}, function()
  local rows = fg.service_rows(compose.status(params.compose_file, fg.compose_opts(params)), SERVICE)
  state.containers = {}
  state.running = 0
  for _, r in ipairs(rows) do
    state.containers[#state.containers + 1] = r.name
    if r.running then state.running = state.running + 1 end
    log.info("%s: %s%s", r.name, r.state, r.health and (" (" .. r.health .. ")") or "")
  end
  if #rows == 0 then log.warn("no gateway container in the compose project") end
end)

step("Check the health endpoint", {
  description = "Health Checks › curl -f http://localhost:8000/health || echo \"Gateway unhealthy\"",
}, function()
  local r = health.check({ { name = SERVICE, url = params.gateway .. "/health" } }, { timeout = 10 })
  health.report(r)
  state.healthy = r.ok and state.running > 0
end)

step("Restart service", {
  description = "./scripts/incident-response.sh -r gateway: docker compose restart gateway, then wait for /health",
  when = function() return not state.healthy end,
  timeout = params.restart_timeout + 120,
}, function()
  local ok, err = pcall(compose.restart, params.compose_file, SERVICE,
    fg.compose_opts(params, { wait_url = params.gateway .. "/health", timeout = params.restart_timeout }))
  state.restarted = true
  state.recovered = ok
  if ok then log.info("gateway restarted and answering /health")
  else log.error("%s", tostring(err)) end
end)

step("Collect logs", {
  description = "./scripts/incident-response.sh -l gateway 200: the service's last log lines",
}, function()
  local c = docker.compose(params.compose_file, fg.compose_opts(params))
  local r = c:logs(SERVICE, { tail = math.tointeger(params.log_lines), readonly = true, check = false })
  local errors = 0
  for line in (r.stdout or ""):gmatch("[^\n]+") do
    if line:find("ERROR", 1, true) or line:find("Traceback", 1, true) then errors = errors + 1 end
  end
  state.error_lines = errors
  log.info("%d log lines collected, %d with ERROR/Traceback", select(2, (r.stdout or ""):gsub("\n", "")), errors)
end)

step("Check resource usage", {
  description = "Key Metrics to Monitor: CPU alert at 80 %, critical at 90 % (docker stats)",
  when = function() return state.healthy or state.recovered end,
}, function()
  local cpu, mem = 0, 0
  for _, name in ipairs(state.containers) do
    local s = docker.stats(name)
    cpu = math.max(cpu, s.cpu_percent or 0)
    mem = math.max(mem, s.memory_percent or 0)
  end
  state.cpu_pct = cpu
  state.memory_pct = mem
  log.info("gateway CPU %.1f %%, memory %.1f %%", cpu, mem)
end)

step("Scale if needed", {
  description = "./scripts/incident-response.sh -s gateway 2: docker compose up -d --scale gateway=2",
  when = function() return (state.cpu_pct or 0) >= params.cpu_critical end,
}, function()
  exec(fg.scale_argv(params, SERVICE, params.replicas))
  state.scaled_to = math.tointeger(params.replicas)
end)

step("Escalate", {
  description = "Response Timeline › 30+ minutes: escalation to the senior team; the gateway is still down",
  when = function() return state.restarted and not state.recovered end,
}, function()
  local row, why = escalation.classify(fg.SEVERITY, { service_down = true })
  fg.post(escalation.notify, row, {
    summary = "forge gateway down: restart did not bring " .. params.gateway .. "/health back",
    details = { containers = state.containers, error_lines = state.error_lines, reason = why },
    dedup_key = "forge-gateway-down", source = "runbook forge-gateway/gateway-service-issues",
  })
  state.escalated = row.level
  check(false, "gateway still unhealthy after the restart: escalated (%s); next: %s", row.level, fg.CONTACTS[2])
end)
