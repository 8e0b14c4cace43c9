local cal = require "calendar_api"
local compose = require "compose"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/high-memory-usage",
  title       = "Calendar API: high memory usage (leak detection, restart or more memory)",
  description = [[Samples the calendar-api container's memory (docker stats) every minute for ten
minutes, as the document's psutil loop does. Memory that keeps growing is a leak: the service is
restarted (solution 1). Memory that is high but flat is a limit too small: the limit is raised
(solution 2). Cache size and memory profiling (solutions 3, 4) are for a person.
001_ef3bce7d6f139975.txt › Troubleshooting Guide › Performance Issues › High Memory Usage.]],
  source      = "001_ef3bce7d6f139975.txt › Troubleshooting Guide › Performance Issues › High Memory Usage",
  severity    = "P3",
  tags        = { "calendar-api", "incident", "P3" },
  mutates     = { "restarts calendar-api on a leak (docker compose restart)",
                  "raises the container's memory limit (docker update)", "notifies the team (Slack)" },
  params = {
    root          = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/)" },
    compose_file  = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project       = { default = "", help = "compose project (default: as docker compose names it)" },
    service       = { default = cal.SERVICE, help = "the API's compose service" },
    api           = { default = cal.API, help = "API base URL" },
    samples       = { type = "number", default = 10, help = "memory samples (for i in range(10))" },
    interval      = { type = "number", default = 60, help = "seconds between samples (time.sleep(60))" },
    high_pct      = { type = "number", default = 80, help = "memory % of the limit that is high" },
    leak_growth   = { type = "number", default = 0.10, help = "growth over the samples (10%) that, rising steadily, is a leak" },
    memory        = { default = "2g", help = "the new memory limit when the usage is high but flat" },
  },
}

local FILE = cal.path(params.root, params.compose_file)

step("Check memory usage", {
  description = "`docker stats calendar-api`, `ps aux | grep calendar-api`.",
}, function()
  state.containers = {}
  for _, r in ipairs(compose.status(FILE, { project = params.project ~= "" and params.project or nil })) do
    if r.service == params.service and r.running then state.containers[#state.containers + 1] = r.name end
  end
  check(#state.containers > 0, "no running container of %s", params.service)
  state.container = state.containers[1]
  local s = cal.stats({ state.container })[state.container]
  check(s, "docker stats %s gave nothing", state.container)
  state.memory_pct = s.memory_percent
  state.high = (s.memory_percent or 0) >= params.high_pct
end)

step("Memory leak detection", {
  description = "The document's loop: memory every 60 s, 10 times; steadily rising by more than " ..
                "leak_growth is a leak.",
  when = function() return state.high end,
}, function()
  local mem, rises = {}, 0
  for i = 1, math.floor(params.samples) do
    if i > 1 then sleep(params.interval) end
    local s = docker.stats(state.container)
    mem[i] = s.memory_usage or 0
    if i > 1 and mem[i] > mem[i - 1] then rises = rises + 1 end
    log.info("Memory: %.1f MB (%.0f%% of the limit)", mem[i] / 1048576, s.memory_percent or 0)
  end
  local growth = mem[1] > 0 and (mem[#mem] - mem[1]) / mem[1] or 0
  state.growth = math.floor(growth * 1000 + 0.5) / 1000
  state.leak = growth >= params.leak_growth and rises >= (#mem - 1) * 0.7
  log[state.leak and "warn" or "info"]("growth %.1f%% over %d samples (%d rises): %s", growth * 100, #mem, rises,
                                        state.leak and "a leak" or "no leak")
end)

step("Restart service if memory leak", {
  description = "Solution 1: `docker-compose -f deployment/docker-compose.prod.yml restart calendar-api`.",
  when = function() return state.leak end,
}, function()
  compose.restart(FILE, params.service, { project = params.project ~= "" and params.project or nil,
                                          wait_url = params.api .. "/healthz" })
end)

step("Increase memory limits", {
  description = "Solution 2: `docker update --memory=2g` when the usage is high but not growing.",
  when = function() return state.high and not state.leak end,
}, function()
  docker.update(state.container, { memory = params.memory })
end)

step("Report", {
  description = "Severity Levels: P3. Optimise cache size, profile memory usage: for a person.",
  when = function() return state.high end,
}, function()
  escalation.notify(cal.level("P3"), {
    summary = string.format("calendar-api memory %.0f%% of its limit, %s (growth %.1f%%): %s", state.memory_pct,
                            state.leak and "a leak" or "no leak", (state.growth or 0) * 100,
                            state.leak and "restarted; profile memory usage" or ("limit raised to " .. params.memory)),
    dedup_key = "calendar-api-memory", source = "calendar-api/high-memory-usage",
  })
end)
