local cal = require "calendar_api"
local compose = require "compose"

runbook {
  name        = "calendar-api/service-wont-start",
  title       = "Calendar API: a compose service won't start",
  description = [[Finds the compose services that are not running, reads their Docker logs and exit
state, and matches them against the document's common issues: port conflict (shows who holds the
port), missing environment variables and configuration errors (`docker compose config`), resource
constraints (raises the memory limit). Restarts what a restart can fix and verifies /healthz; the
rest is reported for a person. 001_ef3bce7d6f139975.txt › Troubleshooting Guide › Service Issues ›
Service Won't Start.]],
  source      = "001_ef3bce7d6f139975.txt › Troubleshooting Guide › Service Issues › Service Won't Start",
  tags        = { "calendar-api", "incident" },
  mutates     = { "raises the memory limit of a container killed for memory (docker update)",
                  "restarts the failed services (docker compose restart)" },
  params = {
    root           = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/)" },
    compose_file   = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project        = { default = "", help = "compose project (default: as docker compose names it)" },
    service        = { default = "", help = "only this service (default: every service that is not running)" },
    log_tail       = { type = "number", default = 50, help = "log lines to read from a failing service" },
    memory_limit   = { default = "2g", help = "raise a container killed for memory to this limit; empty: leave it" },
    restart        = { type = "boolean", default = true, help = "restart the failed service(s)" },
    api            = { default = cal.API, help = "API base URL" },
    health_timeout = { type = "number", default = 120, help = "seconds to wait for /healthz after a restart" },
  },
}

local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil

-- the document's "Common issues", matched against the service's log lines
local COMMON_ISSUES = {
  { cause = "port conflict", fix = "Change port mapping",
    patterns = { "address already in use", "port is already allocated" } },
  { cause = "missing environment variable", fix = "Check .env file",
    patterns = { "environment variable", "KeyError", "is not set", "missing required" } },
  { cause = "resource constraints", fix = "Increase limits",
    patterns = { "MemoryError", "out of memory", "Cannot allocate memory", "Killed" } },
  { cause = "configuration error", fix = "Validate config",
    patterns = { "ValidationError", "invalid value", "yaml", "config" } },
}
local RESTARTABLE = { ["resource constraints"] = true }

step("Check the compose services", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml ps`: the services that are " ..
                "not running (or unhealthy).",
}, function()
  local rows, down = cal.services(FILE, params.project)
  check(#rows > 0, "no container in the compose project of %s: is the stack deployed?", FILE)
  state.down = {}
  for _, r in ipairs(rows) do
    local is_down = false
    for _, s in ipairs(down) do if s == r.service then is_down = true end end
    if is_down and (params.service == "" or r.service == params.service) and (not r.running or r.health == "unhealthy") then
      state.down[#state.down + 1] = { service = r.service, container = r.name, exit_code = r.exit_code }
    end
  end
  if params.service ~= "" then
    local names, found = {}, false
    for _, r in ipairs(rows) do
      names[#names + 1] = r.service
      found = found or r.service == params.service
    end
    check(found, "no service %q in the compose project of %s (services: %s)", params.service, FILE,
          table.concat(names, ", "))
  end
  if #state.down == 0 then
    log.info("%s: nothing to fix", params.service ~= "" and (params.service .. " is running")
                                    or "every service is running")
  end
end)

step("Check Docker logs", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml logs calendar-api`: the last " ..
                "lines of each failed service, matched against the common issues.",
  when = function() return #state.down > 0 end,
}, function()
  for _, d in ipairs(state.down) do
    local l = docker.logs(d.container, { tail = params.log_tail })
    local text = (l.stdout or "") .. (l.stderr or "")
    for line in text:gmatch("[^\n]+") do log.info("%s | %s", d.service, line) end
    for _, issue in ipairs(COMMON_ISSUES) do
      for _, p in ipairs(issue.patterns) do
        if not d.cause and text:find(p, 1, true) then d.cause, d.fix = issue.cause, issue.fix end
      end
    end
    for line in text:gmatch("[^\n]+") do
      if line:find("already in use", 1, true) or line:find("already allocated", 1, true) then
        d.port = line:match(":(%d+)[^%d]*bind") or line:match(", (%d+)%)") or line:match("port (%d+)") or d.port
      end
    end
    local s = docker.inspect(d.container).State or {}
    d.oom = s.OOMKilled == true
    d.exit_code = s.ExitCode or d.exit_code
    if d.oom or d.exit_code == 137 then d.cause, d.fix = "resource constraints", "Increase limits" end
    log.warn("%s: exit code %s%s -> %s", d.service, tostring(d.exit_code), d.oom and ", OOMKilled" or "",
             d.cause and (d.cause .. ": " .. d.fix) or "cause not recognised")
  end
end)

step("Find who holds the port", {
  description = "Common issue 1, port conflicts: `ss -ltnp` for the port the service could not bind.",
  when = function()
    for _, d in ipairs(state.down or {}) do if d.cause == "port conflict" then return true end end
    return false
  end,
}, function()
  for _, d in ipairs(state.down) do
    if d.cause == "port conflict" then
      local argv = { "ss", "-ltnp" }
      if d.port then argv[#argv + 1] = "sport = :" .. d.port end
      local r = exec(argv, { check = false })
      for line in (r.stdout or ""):gmatch("[^\n]+") do log.warn("port %s | %s", d.port or "?", line) end
    end
  end
end)

step("Validate the configuration", {
  description = "Common issues 2 and 4 (missing environment variables, configuration errors): " ..
                "`docker compose -f deployment/docker-compose.prod.yml config --quiet`.",
  when = function()
    for _, d in ipairs(state.down or {}) do
      if d.cause == "missing environment variable" or d.cause == "configuration error" then return true end
    end
    return false
  end,
}, function()
  local r = exec({ "docker", "compose", "-f", FILE, "config", "--quiet" }, { readonly = true, check = false })
  state.config_ok = r.code == 0
  for line in (r.stderr or ""):gmatch("[^\n]+") do log.warn("config | %s", line) end
  log[state.config_ok and "info" or "warn"]("compose config %s", state.config_ok and "is valid" or "has errors")
end)

step("Raise the memory limit", {
  description = "Common issue 3, resource constraints -> increase limits: `docker update --memory=2g` " ..
                "of a container killed for memory.",
  when = function()
    if params.memory_limit == "" then return false end
    for _, d in ipairs(state.down or {}) do if d.cause == "resource constraints" then return true end end
    return false
  end,
}, function()
  for _, d in ipairs(state.down) do
    if d.cause == "resource constraints" then docker.update(d.container, { memory = params.memory_limit }) end
  end
end)

step("Restart the failed services", {
  description = "`docker compose restart SERVICE` for the services a restart can help (unrecognised " ..
                "causes and resource constraints); then wait for /healthz.",
  when = function()
    if not params.restart then return false end
    for _, d in ipairs(state.down or {}) do if not d.cause or RESTARTABLE[d.cause] then return true end end
    return false
  end,
}, function()
  state.restarted = {}
  for _, d in ipairs(state.down) do
    if not d.cause or RESTARTABLE[d.cause] then
      compose.restart(FILE, d.service, { project = PROJECT, timeout = params.health_timeout,
                                         wait_url = d.service == cal.SERVICE and (params.api .. "/healthz") or nil })
      if dry_run() then state.rehearsal = true end -- nothing restarted: nothing to verify
      state.restarted[#state.restarted + 1] = d.service
    end
  end
end)

step("Verify", {
  description = "Every service running again; what a restart cannot fix (port mapping, .env, config) " ..
                "is for a person.",
  when = function() return #state.down > 0 and not state.rehearsal end,
}, function()
  local _, down = cal.services(FILE, params.project)
  local left = {}
  for _, d in ipairs(state.down) do
    if d.cause and not RESTARTABLE[d.cause] then
      left[#left + 1] = string.format("%s: %s -> %s", d.service, d.cause, d.fix)
    end
  end
  state.still_down = down
  check(#down == 0, "still not running: %s%s", table.concat(down, ", "),
        #left > 0 and ("; needs a person: " .. table.concat(left, "; ")) or "")
  log.info("every service is running")
end)
