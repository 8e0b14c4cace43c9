local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/health-check",
  title       = "Health check: endpoints, services and key metrics, classified",
  description = [[One monitoring pass over the stack: every health endpoint (gateway, service
manager, admin UI), every compose service, each running container's CPU and memory and the
disk, classified with the document's severity levels and Key Metrics thresholds. CRITICAL pages
and fails the run, WARNING posts to Slack, INFO only logs. Read-only apart from the message.
004_c5e4c638679021cc.txt › Monitoring Procedures › Health Checks and › Continuous Monitoring
(advanced-monitoring.sh -c, Key Metrics to Monitor).]],
  source      = "004_c5e4c638679021cc.txt › Monitoring Procedures › Health Checks",
  schedule    = "on demand",
  tags        = { "forge-gateway", "health" },
  mutates     = { "pages (CRITICAL) or posts to Slack (WARNING)" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager", "admin_ui",
    disk_path = { default = "/", help = "filesystem to watch (Key Metrics: disk)" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

step("Run all health checks", {
  description = "./scripts/health-check.sh; curl -f http://localhost:8000/health || echo \"Gateway unhealthy\"",
}, function()
  local r = health.check(fg.endpoints(params), { timeout = 10 })
  health.report(r)
  state.endpoints_down = r.down
  local slowest = 0
  for _, x in ipairs(r.results) do
    if x.ok and x.latency_ms then slowest = math.max(slowest, x.latency_ms / 1000) end
  end
  state.response_s = slowest
end)

step("Check service status", {
  description = "docker-compose -f docker-compose.production.yml ps",
}, function()
  state.rows = compose.status(params.compose_file, fg.compose_opts(params))
  state.services_down = compose.down_services(state.rows)
  if #state.services_down > 0 then log.warn("down or unhealthy: %s", table.concat(state.services_down, ", "))
  else log.info("%d containers running", #state.rows) end
end)

step("Check key metrics", {
  description = "CPU (80/90 %), memory (85/90 %), disk (80/90 %), response time (2/5 s)",
}, function()
  local cpu, mem, hot = 0, 0, {}
  for _, r in ipairs(state.rows) do
    if r.running then
      local s = docker.stats(r.name)
      cpu, mem = math.max(cpu, s.cpu_percent or 0), math.max(mem, s.memory_percent or 0)
      if (s.cpu_percent or 0) >= fg.THRESHOLDS.cpu_pct.alert or (s.memory_percent or 0) >= fg.THRESHOLDS.memory_pct.alert then
        hot[#hot + 1] = string.format("%s CPU %.0f%% memory %.0f%%", r.name, s.cpu_percent or 0, s.memory_percent or 0)
      end
    end
  end
  state.rows = nil
  state.cpu_pct, state.memory_pct = cpu, mem
  state.disk_pct = fg.df_pct(exec({ "df", "-P", params.disk_path }).stdout)
  state.hot = hot
  log.info("max CPU %.0f%%, max memory %.0f%%, disk %s%%, slowest answer %.2f s", cpu, mem,
           tostring(state.disk_pct), state.response_s)
end)

step("Classify and report", {
  description = "Severity Levels: CRITICAL pages and fails the run, WARNING posts to Slack, INFO logs",
}, function()
  local down = #state.endpoints_down + #state.services_down
  local row, why = escalation.classify(fg.SEVERITY, {
    service_down = down > 0, services_down = down, cpu_pct = state.cpu_pct, memory_pct = state.memory_pct,
    disk_pct = state.disk_pct, response_s = state.response_s,
  })
  state.level = row.level
  log.info("%s (%s)", row.level, why)
  if row.level == "INFO" then return end
  local parts = {}
  for _, n in ipairs(state.endpoints_down) do parts[#parts + 1] = n .. " not answering" end
  for _, s in ipairs(state.services_down) do parts[#parts + 1] = "service " .. s .. " down" end
  for _, h in ipairs(state.hot) do parts[#parts + 1] = h end
  if #parts == 0 then parts[1] = why end
  fg.post(escalation.notify, row, { summary = "forge gateway health: " .. table.concat(parts, "; "),
                                    details = { reason = why }, dedup_key = "forge-gateway-health",
                                    source = "runbook forge-gateway/health-check" })
  check(row.level ~= "CRITICAL", "CRITICAL: %s", table.concat(parts, "; "))
end)
