local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/service-wont-start",
  title       = "A service won't start: logs, resources, port conflicts, restart",
  description = [[A compose service of the gateway stack is not running. Reads its logs and its
container's last exit (exit code, OOM kill), the resource use of the rest of the stack (docker
stats), whether another process holds its published port (netstat -tulpn), then restarts it
(incident-response.sh -r) and waits until it runs (and answers /health where it has one). A port
held by a foreign process is not something a restart fixes: the run stops there and says who holds it.
004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › Service Won't Start.]],
  source      = "004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › Service Won't Start",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "restarts the service (docker compose restart SERVICE)", "pages when it still does not run" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager",
    service       = { default = "gateway", help = "the compose service that won't start (service-name)" },
    port          = { type = "number", default = 0, help = "its published port (0: the compose file's, e.g. gateway 8000)" },
    log_lines     = { type = "number", default = 100, help = "log lines to read" },
    start_timeout = { type = "number", default = 60, help = "seconds to wait for it after the restart" },
  },
}

local compose = require "compose"
local escalation = require "escalation"

local function rows()
  return fg.service_rows(compose.status(params.compose_file, fg.compose_opts(params)), params.service)
end

step("Check container logs", {
  description = "docker-compose -f docker-compose.production.yml logs service-name; the container's last exit",
}, function()
  local list = rows()
  state.running = #list > 0 and #compose.down_services(list) == 0
  if state.running then log.info("%s is running", params.service) end
  local r = docker.compose(params.compose_file, fg.compose_opts(params))
    :logs(params.service, { tail = math.tointeger(params.log_lines), readonly = true, check = false })
  local lines = {}
  for line in (r.stdout or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  for i = math.max(1, #lines - 9), #lines do log.info("%s", lines[i]) end
  if list[1] then
    local c = docker.inspect(list[1].name)
    local st = c.State or {}
    state.exit_code = st.ExitCode
    state.oom_killed = st.OOMKilled == true
    log.info("%s: %s, exit code %s%s%s", list[1].name, tostring(st.Status), tostring(st.ExitCode),
             st.OOMKilled and ", killed for memory (OOM)" or "",
             (st.Error or "") ~= "" and (", error: " .. st.Error) or "")
  else
    log.warn("no container of %s: it was never created", params.service)
  end
end)

step("Check resource constraints", {
  description = "docker stats: memory and CPU of the stack (Key Metrics: memory critical at 90 %)",
}, function()
  local worst = 0
  for _, r in ipairs(compose.status(params.compose_file, fg.compose_opts(params))) do
    if r.running then
      local s = docker.stats(r.name)
      if (s.memory_percent or 0) >= fg.THRESHOLDS.memory_pct.alert or (s.cpu_percent or 0) >= fg.THRESHOLDS.cpu_pct.alert then
        log.warn("%s: CPU %.0f%%, memory %.0f%%", r.name, s.cpu_percent or 0, s.memory_percent or 0)
      end
      worst = math.max(worst, s.memory_percent or 0)
    end
  end
  state.max_memory_pct = worst
end)

step("Check port conflicts", {
  description = "netstat -tulpn | grep :port (ss -Htlnp): is the published port held by another process?",
}, function()
  local port = math.tointeger(params.port ~= 0 and params.port or fg.PORTS[params.service] or 0)
  if port == 0 then
    log.info("%s publishes no port", params.service)
    return
  end
  local r = exec({ "ss", "-Htlnp", "sport = :" .. port }, { check = false })
  state.port = port
  for line in (r.stdout or ""):gmatch("[^\n]+") do
    if not line:find("docker-proxy", 1, true) and not line:find("containerd", 1, true) then
      state.port_holder = line:match('users:%(%("([^"]+)"') or line
    end
  end
  if state.port_holder and not state.running then
    log.error("port %d is held by %s", port, state.port_holder)
  else
    log.info("port %d: no conflict", port)
  end
end)

step("Restart service", {
  description = "./scripts/incident-response.sh -r service-name, then wait until it runs",
  when = function() return not state.running and not state.port_holder end,
  timeout = params.start_timeout + 120,
}, function()
  local ok, r = pcall(compose.restart, params.compose_file, params.service,
    fg.compose_opts(params, { wait_running = true, wait_url = fg.health_url(params, params.service),
                              timeout = params.start_timeout }))
  state.recovered = ok
  if not ok then log.error("%s", tostring(r))
  elseif r.waited then log.info("%s is running again", params.service) end
end)

step("Escalate", {
  description = "a port conflict, or a restart that did not help: hand over with what was found",
  when = function() return state.port_holder ~= nil and not state.running or state.recovered == false end,
}, function()
  local why = state.port_holder
    and string.format("port %d is held by %s (not a container): stop it or move the service", state.port, state.port_holder)
    or "restart did not bring it back" .. (state.oom_killed and " (it was OOM-killed: raise its memory limit)" or "")
  fg.post(escalation.notify, fg.row("CRITICAL"), {
    summary = "forge gateway: " .. params.service .. " won't start: " .. why,
    details = { exit_code = state.exit_code, oom_killed = state.oom_killed, max_memory_pct = state.max_memory_pct },
    dedup_key = "forge-gateway-wont-start-" .. params.service, source = "runbook forge-gateway/service-wont-start",
  })
  check(false, "%s won't start: %s", params.service, why)
end)
