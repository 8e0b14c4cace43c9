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
-- compose.restart(file, service [, { project, stop_timeout, READY }]) ->
--   { ok, service, containers, waited, ready, dry_run }: `docker compose
--   restart SERVICE` (a docker action, mutate).  stop_timeout is docker's own
--   --timeout for the stop.  For restart, READY's wait_timeout may also be
--   given as timeout.
-- compose.stop(file, services [, { project, timeout }]) ->
--   `docker compose -f FILE [-p P] stop S...`, docker.compose's :stop (a
--   docker action, mutate; run by the Compose the host has: the docker
--   CLI's plugin, else docker-compose).
-- compose.start(file, services [, { project, timeout, READY }]) ->
--   `docker compose -f FILE [-p P] up -d S...`, docker.compose's :up.
-- compose.up(file [, { project, services, no_deps, build, force_recreate,
--   wait, timeout, READY }]) -> `docker compose ... up -d ...`.
--   start and up return { ok, services, waited, ready, dry_run }; their
--   timeout bounds the docker compose command (default 300 s).
-- READY: what to wait for once the change is made (nothing by default):
--   wait_url: GET it until it answers expect (default 200; each request
--     bounded by request_timeout = 5 s);
--   wait_running = true: until every container of the services runs and
--     none is unhealthy (what compose.down_services counts as down; for up
--     without services: every service of the project); checked before
--     wait_url;
--   wait_timeout = 120, every = 5.
--   After a wait that succeeded: waited = true, ready = true, last = what
--   the last look found ("HTTP 200").  A wait that runs out raises, naming
--   the service, the URL and the last answer; with check = false it returns
--   ready = false and error = that message instead (a failed docker compose
--   command still raises).
-- In a rehearsal (dry_run(): --dry-run, the REPL's .dry on) the change is
--   only simulated, so there is nothing to wait for and nothing raises for
--   it: the containers are read once and the URL asked once, a log line says
--   what a live run would wait for and what is so now, and the result is
--   success-shaped like every simulated one: waited = false, ready = true,
--   last = what that one look found, dry_run = true.  A runbook calls these
--   the same way in both modes.
-- mutates: compose.restart compose.stop compose.start compose.up
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

-- the services among `services` (all when empty) that are down in rows
local function still_down(rows, services)
  if #services == 0 then return down_services(rows) end
  local mine = {}
  for _, s in ipairs(services) do mine[s] = true end
  local out = list()
  for _, s in ipairs(down_services(rows, { services = services })) do
    if mine[s] then out[#out + 1] = s end
  end
  return out
end

-- one look at what READY waits for -> ready, what was seen ("HTTP 503").
-- A wait stops at the first thing not ready; a rehearsal (all) reports both.
local function look(file, opts, services, expect, all)
  local ready, seen = true, {}
  if opts.wait_running then
    local ok, rows = pcall(status, file, opts)
    local down = ok and still_down(rows, services) or {}
    if not ok then
      ready, seen[#seen + 1] = false, type(rows) == "table" and tostring(rows.compose) or cause(rows)
    elseif #down > 0 then
      ready, seen[#seen + 1] = false, "not running: " .. table.concat(down, ", ")
    else
      seen[#seen + 1] = "running"
    end
    if not ready and not all then return false, seen[1] end
  end
  if opts.wait_url then
    local resp = http.get(opts.wait_url, { timeout = opts.request_timeout or 5, check = false })
    if resp.error then
      ready, seen[#seen + 1] = false, (cause(resp.error):gsub("^http %u+ %S+: ", ""))
    else
      if resp.status ~= expect then ready = false end
      seen[#seen + 1] = "HTTP " .. tostring(resp.status)
    end
    if opts.wait_running and ready then table.remove(seen, 1) end -- "running" goes without saying
  end
  return ready, table.concat(seen, "; ")
end

-- READY after a change: wait live; in a rehearsal, look once and say so.
-- fn, done: "restart", "restarted"; who: the service(s) for messages.
local function settle(res, file, opts, services, fn, done, who, wait_timeout)
  if not opts.wait_url and not opts.wait_running then return res end
  local expect = opts.expect or 200
  local timeout = wait_timeout or opts.wait_timeout or 120
  local what = {}
  if opts.wait_running then what[#what + 1] = who .. " running" end
  if opts.wait_url then what[#what + 1] = string.format("%s answering %d", opts.wait_url, expect) end
  what = table.concat(what, " and ")
  if dry_run() then
    -- nothing was changed, so waiting would only watch today's state: the
    -- result is success-shaped like every simulated one; the log says what is so now
    local ok, err, seen = pcall(look, file, opts, services, expect, true)
    if not ok then seen = cause(err) end
    res.ready, res.last = true, seen
    log.info("compose.%s %s (rehearsal): not %s, so no wait for %s (live: up to %g s); now: %s",
             fn, who, done, what, timeout, seen)
    return res
  end
  local last = "no answer yet"
  local wok, werr = pcall(wait_until, function()
    local ready, seen = look(file, opts, services, expect)
    last = seen
    return ready
  end, { timeout = timeout, every = opts.every or 5, what = what })
  if not wok and tostring(werr):find("interrupted", 1, true) then error(werr, 0) end
  res.last = last
  if not wok then
    local why
    if opts.wait_url and not opts.wait_running then
      why = string.format("compose.%s %s: %s, but %s did not answer %d within %g s (last: %s)",
                          fn, who, done, opts.wait_url, expect, timeout, last)
    else
      why = string.format("compose.%s %s: %s, but not %s within %g s (last: %s)", fn, who, done, what, timeout, last)
    end
    if opts.check ~= false then fail("%s", why) end
    res.ready, res.error = false, why
    return res
  end
  res.waited, res.ready = true, true
  return res
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
  local res = { ok = true, service = service, containers = r.containers, dry_run = dry_run(), waited = false }
  return settle(res, file, opts, { service }, "restart", "restarted", service, opts.wait_timeout or opts.timeout)
end

-- a Compose CLI verb on the docker.compose object: the docker action
-- `docker compose -f FILE [-p P] VERB ...`, whichever Compose the host has
local function cli(fn, file, opts, verb, o)
  local c = project_of(fn, file, opts)
  o.timeout = opts.timeout or 300
  local ok, r = pcall(c[verb], c, o)
  if not ok then fail("compose.%s %s: %s", fn, file, cause(r)) end
  return r
end

local function stop(file, services, opts)
  check_file("stop", file)
  local s = services_of("stop", services)
  opts = opts_of("stop", opts)
  cli("stop", file, opts, "stop", { services = s })
  return { ok = true, services = s, dry_run = dry_run() }
end

local function start(file, services, opts)
  check_file("start", file)
  local s = services_of("start", services)
  opts = opts_of("start", opts)
  cli("start", file, opts, "up", { services = s })
  local res = { ok = true, services = s, dry_run = dry_run(), waited = false }
  return settle(res, file, opts, s, "start", "started", table.concat(s, ", "))
end

local function up(file, opts)
  check_file("up", file)
  opts = opts_of("up", opts)
  local s = opts.services and services_of("up", opts.services) or list()
  cli("up", file, opts, "up", { services = #s > 0 and s or nil, no_deps = opts.no_deps,
                                build = opts.build, force_recreate = opts.force_recreate,
                                wait = opts.wait })
  local res = { ok = true, services = s, dry_run = dry_run(), waited = false }
  return settle(res, file, opts, s, "up", "brought up", #s > 0 and table.concat(s, ", ") or file)
end

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "compose.", public)

-- what settle() reads: the wait after a change
local READY = "wait_url expect request_timeout wait_running wait_timeout every check"

export("status", "file:str opts?:opts", "project", status)
export("down_services", "rows:table opts?:opts", "require_healthy services", down_services)
export("restart", "file:str service:str opts?:opts", "project stop_timeout timeout " .. READY,
       restart)
export("stop", "file:str services:str|table opts?:opts", "project timeout", stop)
export("start", "file:str services:str|table opts?:opts", "project timeout " .. READY, start)
export("up", "file:str opts?:opts",
       "project services no_deps build force_recreate wait timeout " .. READY, up)
return M
