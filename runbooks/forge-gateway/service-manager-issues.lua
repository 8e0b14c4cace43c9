local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/service-manager-issues",
  title       = "Service manager issues: health, restart, Docker daemon, escalate",
  description = [[The service manager (it starts and sleeps the MCP servers through the Docker
socket) is down or unhealthy. Checks http://localhost:9000/health and its container, restarts it
(as incident-response.sh -r service-manager: docker compose restart, then waits for /health),
checks the Docker daemon it depends on (docker info) and escalates (CRITICAL) when it stays down.
004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Service Manager Issues.]],
  source      = "004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Service Manager Issues",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "restarts the service manager (docker compose restart service-manager)",
                  "pages and posts to Slack when it stays down" },
  params      = fg.params{ "compose_file", "project", "service_manager",
    restart_timeout = { type = "number", default = 60, help = "seconds to wait for /health after the restart" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

local SERVICE = "service-manager"

step("Check service manager health", {
  description = "curl http://localhost:9000/health, and its container's state",
}, function()
  local rows = fg.service_rows(compose.status(params.compose_file, fg.compose_opts(params)), SERVICE)
  state.container = rows[1] and rows[1].name or nil
  state.container_state = rows[1] and rows[1].state or "missing"
  log.info("%s: %s", state.container or SERVICE, state.container_state)
  local r = health.check({ { name = SERVICE, url = params.service_manager .. "/health" } }, { timeout = 10 })
  health.report(r)
  state.healthy = r.ok
end)

step("Restart service manager", {
  description = "./scripts/incident-response.sh -r service-manager: docker compose restart, then wait for /health",
  when = function() return not state.healthy end,
  timeout = params.restart_timeout + 120,
}, function()
  local ok, err = pcall(compose.restart, params.compose_file, SERVICE,
    fg.compose_opts(params, { wait_url = params.service_manager .. "/health", timeout = params.restart_timeout }))
  state.restarted = true
  state.recovered = ok
  if ok then log.info("service manager restarted and answering /health")
  else log.error("%s", tostring(err)) end
end)

step("Check Docker daemon status", {
  description = "docker info: the service manager drives containers through the Docker socket",
}, function()
  local ok, info = pcall(docker.info)
  state.docker_ok = ok
  if ok then
    log.info("Docker %s: %d containers running, %d stopped", tostring(info.ServerVersion),
             info.ContainersRunning or 0, info.ContainersStopped or 0)
  else
    log.error("Docker daemon: %s", tostring(info))
  end
end)

step("Escalate", {
  description = "Response Timeline › 30+ minutes: escalation to the senior team; the service manager is still down",
  when = function() return state.restarted and not state.recovered end,
}, function()
  local row, why = escalation.classify(fg.SEVERITY, { service_down = true })
  fg.post(escalation.notify, row, {
    summary = "forge service manager down: restart did not bring " .. params.service_manager .. "/health back"
              .. (state.docker_ok and "" or " (Docker daemon unreachable)"),
    details = { container = state.container, container_state = state.container_state,
                docker_ok = state.docker_ok, reason = why },
    dedup_key = "forge-service-manager-down", source = "runbook forge-gateway/service-manager-issues",
  })
  state.escalated = row.level
  check(false, "service manager still down after the restart: escalated (%s)", row.level)
end)
