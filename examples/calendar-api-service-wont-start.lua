-- examples/calendar-api-service-wont-start.lua: the Calendar API's
-- "Service Won't Start" procedure (Operational Procedures, Troubleshooting ›
-- Service Issues › Service Won't Start), as a runbook.
--
-- The document's steps: look at the compose services (Daily Operations ›
-- Morning Health Check › 1. Service Status Verification: `docker-compose
-- -f deployment/docker-compose.prod.yml ps`), read the failing service's
-- Docker logs (`docker-compose ... logs calendar-api`), match them against
-- the common issues (port conflicts, missing environment variables,
-- resource constraints, configuration errors), then mitigate: raise the
-- limits for a resource problem, restart the service, and verify the API
-- health (`curl -f http://localhost:8000/healthz`).
--
-- Everything reads through the Docker Engine API (docker.compose():ps(),
-- docker.logs, docker.inspect); the mitigations are mutations, so
--
--   runbook run examples/calendar-api-service-wont-start.lua --dry-run
--
-- shows `would: docker compose restart calendar-api` and changes nothing.
--
--   runbook run examples/calendar-api-service-wont-start.lua \
--       --param compose_file=/srv/calendar/deployment/docker-compose.prod.yml \
--       --param memory_limit=2g

runbook {
  name        = "examples/calendar-api-service-wont-start",
  title       = "Calendar API: a compose service won't start",
  tags        = { "example", "calendar-api", "docker", "compose" },
  params = {
    compose_file   = { default = "deployment/docker-compose.prod.yml",
                       help = "the compose file of the Calendar API stack" },
    project        = { default = "", help = "compose project (default: the compose file's directory name)" },
    service        = { default = "", help = "only this service (default: every service that is not running)" },
    log_tail       = { type = "number", default = 50, help = "log lines to read from a failing service" },
    memory_limit   = { default = "", help = "raise a service killed for memory to this limit (2g); empty: leave it" },
    restart        = { type = "boolean", default = true, help = "restart the failed service(s)" },
    health_url     = { default = "http://localhost:8000/healthz", help = "the API health endpoint" },
    health_timeout = { type = "number", default = 60, help = "seconds to wait for the API to be healthy" },
  },
}

-- The document's "Common issues", matched against the service's log lines.
local COMMON_ISSUES = {
  { cause = "port conflict", fix = "Change port mapping",
    patterns = { "address already in use", "port is already allocated", "bind: " } },
  { cause = "missing environment variable", fix = "Check .env file",
    patterns = { "environment variable", "KeyError", "not set", "missing required" } },
  { cause = "resource constraints", fix = "Increase limits",
    patterns = { "MemoryError", "out of memory", "OOM", "cannot allocate", "Killed" } },
  { cause = "configuration error", fix = "Validate config",
    patterns = { "config", "yaml", "invalid value", "ValidationError" } },
}

local function compose()
  local opts = params.project ~= "" and { project = params.project } or nil
  return docker.compose(params.compose_file, opts)
end

step("Check the compose services", {
  description = "Service Status Verification (Daily Operations › Morning Health Check §1): " ..
                "`docker-compose -f deployment/docker-compose.prod.yml ps`, and pick the " ..
                "service(s) that are not running.",
}, function()
  local c = compose()
  state.project = c.project
  state.down = {}
  local seen = 0
  for _, ctr in ipairs(c:ps()) do
    if params.service == "" or ctr.service == params.service then
      seen = seen + 1
      log.info("%-28s %-16s %s", ctr.name, ctr.service or "?", ctr.status or ctr.state)
      if ctr.state ~= "running" then
        state.down[#state.down + 1] = { service = ctr.service, container = ctr.name }
      end
    end
  end
  check(seen > 0, "no container of %s in compose project %s",
        params.service ~= "" and ("service " .. params.service) or "any service", c.project)
  if #state.down == 0 then
    log.info("every service of project %s is running: nothing to fix", c.project)
  else
    local names = {}
    for _, d in ipairs(state.down) do names[#names + 1] = d.service end
    log.warn("not running: %s", table.concat(names, ", "))
  end
end)

step("Check the Docker logs", {
  description = "Service Won't Start: `docker-compose ... logs calendar-api` -- the last lines " ..
                "of each failed service, matched against the document's common issues.",
  when = function() return #state.down > 0 end,
}, function()
  for _, d in ipairs(state.down) do
    local l = docker.logs(d.container, { tail = params.log_tail })
    local text = l.stdout .. l.stderr
    for line in text:gmatch("[^\n]+") do log.info("%s | %s", d.service, line) end
    for _, issue in ipairs(COMMON_ISSUES) do
      for _, p in ipairs(issue.patterns) do
        if not d.cause and text:find(p, 1, true) then
          d.cause, d.fix = issue.cause, issue.fix
        end
      end
    end
    if d.cause then
      log.warn("%s: looks like a %s -> %s", d.service, d.cause, d.fix)
    end
  end
end)

step("Inspect the exit code and OOMKilled", {
  description = "Service Won't Start, common issue 3 (resource constraints -> increase limits): " ..
                "`docker inspect` State.ExitCode and State.OOMKilled of each failed container.",
  when = function() return #state.down > 0 end,
}, function()
  for _, d in ipairs(state.down) do
    local s = docker.inspect(d.container).State
    d.exit_code, d.oom = s.ExitCode, s.OOMKilled == true
    log.info("%s: status %s, exit code %s, OOMKilled %s", d.container, s.Status,
             tostring(s.ExitCode), tostring(s.OOMKilled))
    if d.oom or s.ExitCode == 137 then
      d.cause, d.fix = "resource constraints", "Increase limits"
    end
  end
end)

step("Raise the memory limit", {
  description = "Service Won't Start, common issue 3: resource constraints -> increase limits " ..
                "(only for a container killed for memory, and only with --param memory_limit).",
  when = function()
    if params.memory_limit == "" then return false end
    for _, d in ipairs(state.down) do if d.oom then return true end end
    return false
  end,
}, function()
  for _, d in ipairs(state.down) do
    if d.oom then docker.update(d.container, { memory = params.memory_limit }) end
  end
end)

step("Restart the failed service(s)", {
  description = "Complete Service Outage › Recovery Actions: restart the service " ..
                "(`docker compose restart <service>`). Not for a port conflict or a " ..
                "configuration error: a restart cannot fix those.",
  when = function()
    if not params.restart then return false end
    for _, d in ipairs(state.down) do
      if d.cause ~= "port conflict" and d.cause ~= "configuration error" then return true end
    end
    return false
  end,
}, function()
  local c = compose()
  state.restarted = {}
  for _, d in ipairs(state.down) do
    if d.cause == "port conflict" or d.cause == "configuration error" then
      log.warn("%s: not restarting (%s -> %s)", d.service, d.cause, d.fix)
    else
      local r = c:restart(d.service)
      state.rehearsal = r.dry_run == true
      state.restarted[#state.restarted + 1] = d.service
    end
  end
end)

step("Wait until the API is healthy", {
  description = "Morning Health Check §1: `curl -f http://localhost:8000/healthz` until it " ..
                "answers 200 (skipped in a dry-run, where nothing was restarted).",
  when = function() return state.restarted ~= nil and #state.restarted > 0 and not state.rehearsal end,
}, function()
  wait_until(function() return http.get(params.health_url, { timeout = 5 }).status == 200 end,
             { timeout = params.health_timeout, every = 2, what = "Calendar API healthy" })
  local c = compose()
  local still = {}
  for _, ctr in ipairs(c:ps()) do
    if ctr.state ~= "running" then still[#still + 1] = ctr.service end
  end
  check(#still == 0, "still not running after the restart: %s (escalate)", table.concat(still, ", "))
  log.info("the Calendar API is healthy and every service of %s is running", c.project)
end)
