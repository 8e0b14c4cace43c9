local cal = require "calendar_api"
local compose = require "compose"

runbook {
  name        = "calendar-api/database-connection-issues",
  title       = "Calendar API: database connection issues",
  description = [[Tests the database connection; when it fails, goes through the document's four
checks: the database service's status (starting it again when it is a stopped compose service),
the connection parameters, network connectivity (pg_isready) and the database logs, then tests
again. 001_ef3bce7d6f139975.txt › Troubleshooting Guide › Service Issues › Database Connection Issues.]],
  source      = "001_ef3bce7d6f139975.txt › Troubleshooting Guide › Service Issues › Database Connection Issues",
  tags        = { "calendar-api", "incident" },
  mutates     = { "restarts the database compose service when it is not running (docker compose restart)" },
  params = {
    db_url       = { required = true, secret = true, example = "postgresql://user:pass@localhost/db",
                     help = "the API's database (the document's example: postgresql://user:pass@localhost/db)" },
    root         = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/)" },
    compose_file = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project      = { default = "", help = "compose project (default: as docker compose names it)" },
    db_service   = { default = "postgres", help = "the database's compose service, if it runs in the stack" },
    log_tail     = { type = "number", default = 50, help = "database log lines to review" },
  },
}

local FILE = cal.path(params.root, params.compose_file)

local function test_connection()
  local ok, err = pcall(function()
    local conn <close> = db.open(params.db_url, { timeout = 10 })
    conn:query("SELECT 1")
  end)
  return ok, ok and nil or tostring(err)
end

step("Test database connectivity", {
  description = "The document's psycopg2.connect('postgresql://user:pass@localhost/db') test, as " ..
                "db.open + SELECT 1.",
}, function()
  local ok, err = test_connection()
  state.connected = ok
  if ok then log.info("Database connection successful") else log.warn("Database connection failed: %s", err) end
  state.error = err
end)

step("Check database service status", {
  description = "Solution 1: is the database's compose service running?",
  when = function() return not state.connected end,
}, function()
  local rows = compose.status(FILE, { project = params.project ~= "" and params.project or nil })
  for _, r in ipairs(rows) do
    if r.service == params.db_service then
      state.db_container = r.name
      state.db_running = r.running
      log.info("%s: %s %s", r.name, r.state, r.status or "")
    end
  end
  if not state.db_container then log.info("no compose service %s: the database runs elsewhere", params.db_service) end
end)

step("Verify connection parameters", {
  description = "Solution 2: the host, port, database and user the API connects with (password hidden).",
  when = function() return not state.connected end,
}, function()
  local user, host, port, dbname = params.db_url:match("^%a+://([^:@/]*)[^@/]*@([^:/]+):?(%d*)/?([^?]*)")
  if not host then host, port, dbname = params.db_url:match("^%a+://([^:/]+):?(%d*)/?([^?]*)") end
  state.host, state.port = host or "localhost", (port ~= nil and port ~= "") and port or "5432"
  log.info("host %s, port %s, database %s, user %s", state.host, state.port, dbname ~= "" and dbname or "?",
           user ~= nil and user ~= "" and user or "(default)")
end)

step("Check network connectivity", {
  description = "Solution 3: `pg_isready -h HOST -p PORT`.",
  when = function() return not state.connected end,
}, function()
  local r = exec({ "pg_isready", "-h", state.host, "-p", state.port, "-t", "5" }, { check = false })
  state.reachable = r.code == 0
  log[state.reachable and "info" or "warn"]("%s", ((r.stdout or "") .. (r.stderr or "")):gsub("\n$", ""))
end)

step("Review database logs", {
  description = "Solution 4: the database container's last log lines.",
  when = function() return not state.connected and state.db_container ~= nil end,
}, function()
  local l = docker.logs(state.db_container, { tail = params.log_tail })
  for line in ((l.stdout or "") .. (l.stderr or "")):gmatch("[^\n]+") do log.info("db | %s", line) end
end)

step("Start the database service", {
  description = "Solution 1 continued: the compose database service is not running -> restart it, " ..
                "then test the connection again.",
  when = function() return not state.connected and state.db_container ~= nil and not state.db_running end,
}, function()
  compose.restart(FILE, params.db_service, { project = params.project ~= "" and params.project or nil })
  state.rehearsal = dry_run() -- nothing restarted: no new connection to wait for
  if not state.rehearsal then
    wait_until(function() return (test_connection()) end, { timeout = 120, every = 5, what = "database accepts connections" })
    state.connected = true
  end
end)

step("Verify", {
  description = "The connection works now; otherwise the causes found are for a person.",
  when = function() return not state.rehearsal end,
}, function()
  check(state.connected, "database still unreachable (%s; %s): %s", state.reachable and "host answers" or "host does not answer",
        state.db_container and "compose service running" or "not a compose service", state.error or "?")
end)
