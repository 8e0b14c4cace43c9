-- compose: docker compose projects (status, restart with a readiness wait,
-- stop/start of services), built on docker.compose(file).
--
--   local compose = require "compose"
--   local st = compose.status("/srv/app/docker-compose.yml")
--   local down = compose.down_services(st)            -- unhealthy counts as down
--   for _, s in ipairs(down) do
--     compose.restart("/srv/app/docker-compose.yml", s,
--                     { wait_url = "http://localhost:8000/healthz", timeout = 120 })
--   end
--   compose.stop(file, { "worker" }); compose.start(file, { "worker" })
--
-- compose.status(file [, { project }]) -> one row per container, sorted by
--   service then name: { service, name, state, health, running, status,
--   exit_code, project, id }.  state is the Engine's "running" / "exited" /
--   "restarting" / ...; health "healthy" / "unhealthy" / "starting" or nil
--   (no healthcheck).  One read: the docker action `docker compose ps --all`
--   (scenario mock: docker: { verb: "compose ps" } answered with the
--   container list as the Engine API gives it: Names, State, Status, Labels).
-- compose.down_services(rows [, { require_healthy = true, services }]) ->
--   the service names (sorted, once each) with a container that is not
--   running, or, when require_healthy (the default), unhealthy.  services:
--   the services that must exist; one without any container is down too.
--   Pure: it looks only at rows.
-- compose.restart(file, service [, { project, wait_url, timeout = 120,
--   every = 5, expect = 200, stop_timeout }]) -> { ok, service, containers,
--   waited, dry_run }: `docker compose restart SERVICE` (a docker action,
--   mutate), then, with wait_url, GETs it until it answers expect (dry-run
--   does not wait).  stop_timeout is docker's own --timeout for the stop.
-- compose.stop(file, services [, { project, timeout }]) ->
--   `docker compose -f FILE [-p P] stop S...` through exec (mutate).
-- compose.start(file, services [, { project, timeout }]) ->
--   `docker compose -f FILE [-p P] up -d S...` through exec (mutate).
-- compose.up(file [, { project, services, no_deps, build, force_recreate,
--   wait }]) -> `docker compose ... up -d ...`.
local support = require "stdlib_support"
local cause = support.cause
local list = support.list
local fail, public = support.errors("compose")

local M = {}

local SERVICE, PROJECT = "com.docker.compose.service", "com.docker.compose.project"

local function check_file(fn, file)
  if type(file) ~= "string" or file == "" then
    fail("compose.%s: expected the compose file path, got %s", fn, type(file) == "string" and '""' or type(file))
  end
end

local function opts_of(fn, o)
  if o == nil then return {} end
  if type(o) ~= "table" then fail("compose.%s: options must be a table, got %s", fn, type(o)) end
  return o
end

local function project_of(fn, file, opts)
  local ok, c = pcall(docker.compose, file, { project = opts.project })
  if not ok then fail("compose.%s %s: %s", fn, file, tostring(c)) end
  return c
end

-- a list of service names from a string or a list
local function services_of(fn, s)
  if type(s) == "string" then s = { s } end
  if type(s) ~= "table" or #s == 0 then
    fail("compose.%s: expected a service name or a non-empty list of them, got %s", fn, type(s))
  end
  local out = {}
  for i, x in ipairs(s) do
    if type(x) ~= "string" or x == "" then
      fail("compose.%s: service %d must be a non-empty string, got %s", fn, i, type(x))
    end
    out[i] = x
  end
  return out
end

-- the cause of an error raised by a primitive, without a Lua position
local function health_of(c)
  local h = c.Health or c.health
  if type(h) == "table" then h = h.Status or h.status end
  if type(h) == "string" and h ~= "" and h ~= "none" then return h end
  local status = c.Status or c.status
  if type(status) == "string" then
    if status:find("(unhealthy)", 1, true) then return "unhealthy" end
    if status:find("(healthy)", 1, true) then return "healthy" end
    if status:find("(health: starting)", 1, true) then return "starting" end
  end
  return nil
end

local function row_of(c)
  local labels = type(c.Labels) == "table" and c.Labels or {}
  local name = c.name
  if not name and type(c.Names) == "table" and c.Names[1] then
    name = tostring(c.Names[1]):gsub("^/", "")
  end
  local state = c.State
  if type(state) == "table" then state = state.Status end -- an inspect-shaped State
  if type(state) ~= "string" then state = c.state end
  state = state and tostring(state):lower() or "unknown"
  local status = c.Status or c.status
  if type(status) ~= "string" then status = nil end
  local id = c.Id or c.id
  return {
    service = c.service or labels[SERVICE] or c.Service or name or "?",
    name = name or (id and tostring(id):sub(1, 12)) or "?",
    project = c.project or labels[PROJECT] or c.Project,
    id = id,
    state = state,
    status = status,
    health = health_of(c),
    running = state == "running",
    exit_code = status and tonumber(status:match("^Exited %((%-?%d+)%)")) or c.ExitCode,
  }
end

local function status(file, opts)
  check_file("status", file)
  opts = opts_of("status", opts)
  local c = project_of("status", file, opts)
  local ok, containers = pcall(c.ps, c, { all = true })
  if not ok then fail("compose.status %s: %s", file, cause(containers)) end
  if type(containers) ~= "table" then
    fail("compose.status %s: docker compose ps gave %s, not a container list", file, type(containers))
  end
  local out = list()
  for _, x in ipairs(containers) do
    if type(x) == "table" then out[#out + 1] = row_of(x) end
  end
  table.sort(out, function(a, b)
    if a.service ~= b.service then return a.service < b.service end
    return a.name < b.name
  end)
  return out
end

local function down_services(rows, opts)
  if type(rows) ~= "table" then
    fail("compose.down_services: expected the rows of compose.status, got %s", type(rows))
  end
  opts = opts_of("down_services", opts)
  local require_healthy = opts.require_healthy ~= false
  local down, seen = {}, {}
  for i, r in ipairs(rows) do
    if type(r) ~= "table" or type(r.service) ~= "string" then
      fail("compose.down_services: row %d is not a compose.status row", i)
    end
    seen[r.service] = true
    local running = r.running
    if running == nil then running = r.state == "running" end
    if not running or (require_healthy and r.health == "unhealthy") then down[r.service] = true end
  end
  for _, s in ipairs(opts.services or {}) do
    if not seen[s] then down[s] = true end
  end
  local out = list()
  for s in pairs(down) do out[#out + 1] = s end
  table.sort(out)
  return out
end

local function restart(file, service, opts)
  check_file("restart", file)
  if type(service) ~= "string" or service == "" then
    fail("compose.restart: expected the service to restart, got %s", type(service))
  end
  opts = opts_of("restart", opts)
  local c = project_of("restart", file, opts)
  local ok, r = pcall(c.restart, c, service, { timeout = opts.stop_timeout })
  if not ok then fail("compose.restart %s %s: %s", file, service, cause(r)) end
  r = type(r) == "table" and r or {}
  local res = { ok = true, service = service, containers = r.containers, dry_run = r.dry_run == true,
                waited = false }
  local url = opts.wait_url
  if url and not res.dry_run then
    local expect = opts.expect or 200
    local last = "no answer yet"
    local wok, werr = pcall(wait_until, function()
      local resp = http.get(url, { timeout = opts.request_timeout or 5, check = false })
      if resp.error then last = cause(resp.error); return false end
      if resp.status == expect then return true end
      last = "HTTP " .. tostring(resp.status)
      return false
    end, { timeout = opts.timeout or 120, every = opts.every or 5,
           what = string.format("%s to answer %d at %s", service, expect, url) })
    if not wok then
      fail("compose.restart %s: restarted, but %s did not answer %d within %g s (last: %s)",
           service, url, expect, opts.timeout or 120, last)
    end
    res.waited = true
  end
  return res
end

local function cli(fn, file, opts, args)
  local argv = { "docker", "compose", "-f", file }
  if opts.project then argv[#argv + 1] = "-p"; argv[#argv + 1] = opts.project end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local ok, r = pcall(exec, argv, { timeout = opts.timeout or 300 })
  if not ok then fail("compose.%s %s: %s", fn, file, cause(r)) end
  return r
end

local function stop(file, services, opts)
  check_file("stop", file)
  local s = services_of("stop", services)
  opts = opts_of("stop", opts)
  local args = { "stop" }
  for _, x in ipairs(s) do args[#args + 1] = x end
  local r = cli("stop", file, opts, args)
  return { ok = true, services = s, dry_run = r.dry_run == true }
end

local function start(file, services, opts)
  check_file("start", file)
  local s = services_of("start", services)
  opts = opts_of("start", opts)
  local args = { "up", "-d" }
  for _, x in ipairs(s) do args[#args + 1] = x end
  local r = cli("start", file, opts, args)
  return { ok = true, services = s, dry_run = r.dry_run == true }
end

local function up(file, opts)
  check_file("up", file)
  opts = opts_of("up", opts)
  local args = { "up", "-d" }
  if opts.no_deps then args[#args + 1] = "--no-deps" end
  if opts.build then args[#args + 1] = "--build" end
  if opts.force_recreate then args[#args + 1] = "--force-recreate" end
  if opts.wait then args[#args + 1] = "--wait" end
  local s = opts.services and services_of("up", opts.services) or {}
  for _, x in ipairs(s) do args[#args + 1] = x end
  local r = cli("up", file, opts, args)
  return { ok = true, services = s, dry_run = r.dry_run == true }
end

M.status = public(status)
M.down_services = public(down_services)
M.restart = public(restart)
M.stop = public(stop)
M.start = public(start)
M.up = public(up)
return M
