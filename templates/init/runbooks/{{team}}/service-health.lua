-- A diagnosis runbook: it reads and reports, it changes nothing, so
-- `runbook run {{team}}/service-health --dry-run` is the same run as a live one.
local common = require "common"   -- runbooks/lib/common.lua
local health = require "health"   -- the engine's stdlib

runbook {
  name        = "{{team}}/service-health",
  title       = "Service health: health endpoint and disk usage",
  description = [[Asks the service's health endpoint (GET, any 2xx is healthy) and reads the
disk usage of disk_path with df. The run fails when the endpoint is down or the disk is at
or above disk_critical percent; from disk_warning percent a warning is logged. Read-only.]],
  owner       = "{{team}}",
  tags        = { "{{team}}", "health", "diagnosis" },
  mutates     = {},
  params      = {
    health_url    = { default = "http://127.0.0.1:8080/healthz",
                      help = "the health endpoint (runbook.yaml sets it per environment)" },
    timeout       = { type = "number", default = 5, help = "seconds to wait for the endpoint" },
    disk_path     = { default = "/", help = "a path on the filesystem to watch" },
    disk_warning  = { type = "number", default = common.DISK.warning,
                      help = "disk usage (%) from which a warning is logged" },
    disk_critical = { type = "number", default = common.DISK.critical,
                      help = "disk usage (%) from which the run fails" },
  },
}

step("Check the health endpoint", {
  description = "curl -fsS --max-time 5 $health_url",
}, function()
  local r = health.check({ { name = "service", url = params.health_url } },
                         { timeout = params.timeout })
  health.report(r)
  state.healthy = r.ok
  state.endpoint_error = r.results[1] and r.results[1].error or nil
end)

step("Check disk usage", {
  description = "df -P $disk_path",
}, function()
  local out = exec({ "df", "-P", params.disk_path }).stdout
  state.disk_pct = common.df_pct(out)
  state.disk_level = common.disk_level(state.disk_pct,
                                       { warning = params.disk_warning, critical = params.disk_critical })
  log.info("disk %s: %s%% used (%s)", params.disk_path, tostring(state.disk_pct), state.disk_level)
end)

step("Verdict", {
  description = "healthy when the endpoint answers and the disk is below the critical level",
}, function()
  local problems = {}
  if not state.healthy then
    problems[#problems + 1] = "health endpoint down: " .. tostring(state.endpoint_error)
  end
  if state.disk_level == "critical" or state.disk_level == "unknown" then
    problems[#problems + 1] = string.format("disk %s: %s%% used", params.disk_path,
                                            tostring(state.disk_pct))
  elseif state.disk_level == "warning" then
    log.warn("disk %s at %d%%: above the warning level (%d%%)", params.disk_path,
             state.disk_pct, params.disk_warning)
  end
  state.verdict = #problems == 0 and "healthy" or "unhealthy"
  check(#problems == 0, "%s", table.concat(problems, "; "))
  log.info("healthy")
end)
