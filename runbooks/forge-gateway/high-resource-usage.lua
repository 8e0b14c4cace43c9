local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/high-resource-usage",
  title       = "High resource usage: find the container, then restart or scale it",
  description = [[Reads docker stats for every running container of the stack and classifies them
with the Key Metrics thresholds (CPU alert 80 % / critical 90 %, memory 85 % / 90 %). Then responds
as incident-response.sh does: a container past the critical memory level is restarted (a leak is
the usual cause) and must answer again; a stateless service past the critical CPU level (gateway,
web-admin) is scaled to 2 replicas; a stateful one is reported for manual review (WARNING).
004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › High Resource Usage.]],
  source      = "004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › High Resource Usage",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "restarts a service past the critical memory level (docker compose restart)",
                  "scales a stateless service past the critical CPU level (docker compose up -d --scale)",
                  "posts to Slack / pages what it cannot fix" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager",
    replicas        = { type = "number", default = 2, help = "replicas when scaling (incident-response.sh -s service-name 2)" },
    restart_timeout = { type = "number", default = 60, help = "seconds to wait for a restarted service" },
  },
}

local compose = require "compose"
local escalation = require "escalation"

local T = fg.THRESHOLDS

step("Identify resource usage", {
  description = "docker stats: CPU and memory of every running container of the stack",
}, function()
  state.hot = {}
  local by_service = {}
  for _, r in ipairs(compose.status(params.compose_file, fg.compose_opts(params))) do
    if r.running then
      local s = docker.stats(r.name)
      local cpu, mem = s.cpu_percent or 0, s.memory_percent or 0
      local svc = by_service[r.service] or { service = r.service, cpu = 0, mem = 0 }
      svc.cpu, svc.mem = math.max(svc.cpu, cpu), math.max(svc.mem, mem)
      by_service[r.service] = svc
      if cpu >= T.cpu_pct.alert or mem >= T.memory_pct.alert then
        log.warn("%s: CPU %.1f%%, memory %.1f%%", r.name, cpu, mem)
      end
    end
  end
  local names = {}
  for name in pairs(by_service) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local s = by_service[name]
    if s.mem >= T.memory_pct.critical then
      state.hot[#state.hot + 1] = { service = name, action = "restart", why = string.format("memory %.0f%%", s.mem) }
    elseif s.cpu >= T.cpu_pct.critical then
      state.hot[#state.hot + 1] = { service = name, action = fg.STATELESS[name] and "scale" or "review",
                                    why = string.format("CPU %.0f%%", s.cpu) }
    elseif s.cpu >= T.cpu_pct.alert or s.mem >= T.memory_pct.alert then
      state.hot[#state.hot + 1] = { service = name, action = "watch",
                                    why = string.format("CPU %.0f%%, memory %.0f%%", s.cpu, s.mem) }
    end
  end
  if #state.hot == 0 then log.info("every container below the alert levels") end
end)

local function with_action(action)
  return function()
    for _, h in ipairs(state.hot) do if h.action == action then return true end end
    return false
  end
end

step("Restart services past the memory limit", {
  description = "incident-response.sh, high memory: restart (it clears a leak) and wait until it answers",
  when = with_action("restart"),
  timeout = 600,
}, function()
  for _, h in ipairs(state.hot) do
    if h.action == "restart" then
      local ok, err = pcall(compose.restart, params.compose_file, h.service,
        fg.compose_opts(params, { wait_url = fg.health_url(params, h.service), timeout = params.restart_timeout }))
      h.done = ok
      if ok then log.info("%s restarted (%s)", h.service, h.why) else log.error("%s", tostring(err)) end
    end
  end
end)

step("Scale if needed", {
  description = "./scripts/incident-response.sh -s service-name 2, stateless services only",
  when = with_action("scale"),
}, function()
  for _, h in ipairs(state.hot) do
    if h.action == "scale" then
      exec(fg.scale_argv(params, h.service, params.replicas))
      h.done = true
      log.info("%s scaled to %d replicas (%s)", h.service, params.replicas, h.why)
    end
  end
end)

step("Report what needs a human", {
  description = "stateful services past the CPU limit (manual review), failed restarts, services near the limits",
  when = function()
    for _, h in ipairs(state.hot) do
      if h.action == "review" or h.action == "watch" or h.done == false then return true end
    end
    return false
  end,
}, function()
  local lines, failed = {}, false
  for _, h in ipairs(state.hot) do
    if h.done == false then
      lines[#lines + 1] = h.service .. " (" .. h.why .. "): restart failed"
      failed = true
    elseif h.action == "review" then
      lines[#lines + 1] = h.service .. " (" .. h.why .. "): stateful, review manually"
    elseif h.action == "watch" then
      lines[#lines + 1] = h.service .. " (" .. h.why .. "): past the alert level"
    end
  end
  -- Severity Levels: high resource usage is WARNING; a service that does not come back is CRITICAL
  local row = fg.row(failed and "CRITICAL" or "WARNING")
  fg.post(escalation.notify, row, { summary = "forge gateway high resource usage: " .. table.concat(lines, "; "),
                                    dedup_key = "forge-gateway-resources", source = "runbook forge-gateway/high-resource-usage" })
  state.reported = row.level
  check(not failed, "%s", table.concat(lines, "; "))
end)
