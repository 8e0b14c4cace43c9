local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/database-issues",
  title       = "Database issues: connectivity, disk, logs, restart, escalate",
  description = [[The gateway's PostgreSQL does not accept connections. Asks pg_isready inside the
postgres container, checks the disk (df) and the last 300 log lines, then follows the document's
response: restart the database (incident-response.sh -r postgres) and wait until it accepts
connections -- unless the disk is past the critical 90 %, where a restart does not help and the
incident is escalated (CRITICAL) instead, as it is when the restart does not bring it back.
004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Database Issues
and › Troubleshooting Guide › Common Issues › Database Issues.]],
  source      = "004_c5e4c638679021cc.txt › Incident Response Procedures › Service-Specific Procedures › Database Issues",
  tags        = { "forge-gateway", "incident", "postgres" },
  mutates     = { "restarts PostgreSQL (docker compose restart postgres)",
                  "pages and posts to Slack when it stays down or the disk is full" },
  params      = fg.params{ "compose_file", "project",
    disk_path       = { default = "/", help = "filesystem holding the database volume (df -h)" },
    disk_critical   = { type = "number", default = fg.THRESHOLDS.disk_pct.critical, help = "disk use % that is critical (Key Metrics: 90 %)" },
    log_lines       = { type = "number", default = 300, help = "log lines to collect (incident-response.sh -l postgres 300)" },
    ready_timeout   = { type = "number", default = 60, help = "seconds to wait for pg_isready after the restart" },
  },
}

local compose = require "compose"
local escalation = require "escalation"

local SERVICE = "postgres"

local function pg_isready()
  local r = exec(fg.compose_exec(params, SERVICE, { "pg_isready" }), { readonly = true, check = false, timeout = 15 })
  return r.code == 0, ((r.stdout or "") .. (r.stderr or "")):gsub("%s+$", "")
end

-- the document's response, as a decision tree
local TREE = {
  ask = "accepting connections?", key = "ready",
  yes = { ask = "disk past the critical level?", key = "disk_critical",
          yes = { action = "escalate", why = "disk space critical" },
          no  = { action = "none" } },
  no  = { ask = "disk past the critical level?", key = "disk_critical",
          yes = { action = "escalate", why = "database down and disk space critical: a restart will not help" },
          no  = { action = "restart" } },
}

step("Check database connectivity", {
  description = "docker-compose -f docker-compose.production.yml exec postgres pg_isready",
}, function()
  local ok, out = pg_isready()
  state.ready = ok
  if ok then log.info("%s", out) else log.warn("pg_isready: %s", out ~= "" and out or "no answer") end
end)

step("Check disk space", {
  description = "df -h: the database volume's filesystem",
}, function()
  local r = exec({ "df", "-P", params.disk_path })
  state.disk_pct = fg.df_pct(r.stdout)
  check(state.disk_pct, "cannot read the use of %s from df", params.disk_path)
  state.disk_critical = state.disk_pct >= params.disk_critical
  log.info("%s is %d%% full", params.disk_path, state.disk_pct)
end)

step("Collect database logs", {
  description = "./scripts/incident-response.sh -l postgres 300 (docker-compose logs postgres)",
}, function()
  local c = docker.compose(params.compose_file, fg.compose_opts(params))
  local r = c:logs(SERVICE, { tail = math.tointeger(params.log_lines), readonly = true, check = false })
  local fatal = 0
  for line in (r.stdout or ""):gmatch("[^\n]+") do
    if line:find("FATAL", 1, true) or line:find("PANIC", 1, true) or line:find("No space left", 1, true) then
      fatal = fatal + 1
      if fatal <= 5 then log.warn("%s", line) end
    end
  end
  state.fatal_lines = fatal
end)

step("Decide the response", function()
  local leaf, path = escalation.decide(TREE, { ready = state.ready, disk_critical = state.disk_critical })
  for _, p in ipairs(path) do log.info("%s", p) end
  state.action = leaf.action
  state.why = leaf.why
end)

step("Restart database", {
  description = "./scripts/incident-response.sh -r postgres: docker compose restart postgres",
  when = function() return state.action == "restart" end,
  timeout = params.ready_timeout + 120,
}, function()
  compose.restart(params.compose_file, SERVICE, fg.compose_opts(params))
  state.restarted = true
  state.rehearsal = dry_run() -- nothing restarted: pg_isready would only show today's state
end)

step("Verify database connectivity", {
  description = "pg_isready until it accepts connections again",
  when = function() return state.restarted and not state.rehearsal end,
  timeout = params.ready_timeout + 30,
}, function()
  local ok = pcall(wait_until, function() return (pg_isready()) end,
                   { timeout = params.ready_timeout, every = 5, what = "postgres accepting connections" })
  state.recovered = ok
  if ok then log.info("postgres accepts connections again")
  else
    state.action = "escalate"
    state.why = "postgres still not accepting connections after the restart"
  end
end)

step("Escalate", {
  description = "Response Timeline › 30+ minutes / incident-response.sh: disk space critical or restart failed",
  when = function() return state.action == "escalate" end,
}, function()
  local row, why = escalation.classify(fg.SEVERITY, { service_down = not state.ready or state.recovered == false,
                                                      disk_pct = state.disk_pct })
  fg.post(escalation.notify, row, {
    summary = "forge gateway database: " .. state.why,
    details = { disk_pct = state.disk_pct, fatal_log_lines = state.fatal_lines, reason = why },
    dedup_key = "forge-gateway-postgres", source = "runbook forge-gateway/database-issues",
  })
  state.escalated = row.level
  check(false, "%s: escalated (%s)", state.why, row.level)
end)
