-- forge_gateway: what the Forge MCP Gateway runbooks share, taken from
-- 004_c5e4c638679021cc.txt (Operational Procedures Guide) and the compose
-- file it names (docker-compose.production.yml):
--
--   local fg = require "forge_gateway"
--   params = fg.params{ "compose_file", "gateway", "database_url" }  -- declarations with the document's defaults
--   local row, why = escalation.classify(fg.SEVERITY, facts)
--
-- Data only, plus a few pure helpers; every effect stays in the runbooks.
local M = {}

-- Every host, URL, path and threshold of the document, with its value.
-- (The database URL is the compose file's: POSTGRES_DB forge_mcp_prod,
-- POSTGRES_USER forge_user, port 5432 published on the host.)
M.PARAMS = {
  compose_file    = { default = "docker-compose.production.yml",
                      help = "the production compose file (004 › every `docker-compose -f` command)" },
  project         = { default = "", help = "compose project name (empty: as docker compose decides)" },
  gateway         = { default = "http://localhost:8000", help = "gateway base URL (004 › Health Checks)" },
  service_manager = { default = "http://localhost:9000", help = "service manager base URL (004 › Health Checks)" },
  admin_ui        = { default = "http://localhost:3000", help = "admin UI URL (004 › Health Checks)" },
  database_url    = { default = "postgresql://forge_user@localhost:5432/forge_mcp_prod",
                      help = "the gateway's PostgreSQL (password from PGPASSWORD or ~/.pgpass)" },
  backup_dir      = { default = "./backups", help = "where backups are kept (004 › Backup Verification)" },
  logs_dir        = { default = "./logs", help = "application logs (004 › Log Rotation)" },
  data_dir        = { default = "./data", help = "the gateway's data volume (compose: ./data:/data)" },
  env_file        = { default = ".env.production", help = "the production environment file" },
  scripts_dir     = { default = "./scripts", help = "the gateway repository's scripts/ (for the document's scripts)" },
  stamp           = { default = "", help = "timestamp in new file names (default: now, UTC, 20261123T171500Z)" },
}

-- params{ "a", "b", c = { ... } } -> a params table for runbook{}: the named
-- shared declarations (copied) plus the runbook's own.
function M.params(spec)
  local out = {}
  for k, v in pairs(spec) do
    if type(k) == "number" then
      local d = M.PARAMS[v]
      if not d then error("forge_gateway.params: no shared param " .. tostring(v), 2) end
      local copy = {}
      for dk, dv in pairs(d) do copy[dk] = dv end
      out[v] = copy
    else
      out[k] = v
    end
  end
  return out
end

-- Monitoring › Key Metrics to Monitor: { alert, critical } per metric.
M.THRESHOLDS = {
  cpu_pct       = { alert = 80, critical = 90 },
  memory_pct    = { alert = 85, critical = 90 },
  disk_pct      = { alert = 80, critical = 90 },
  response_s    = { alert = 2, critical = 5 },
  error_rate    = { alert = 0.05, critical = 0.10 },
}

-- Incident Response › Severity Levels, with the Key Metrics' critical and
-- alert levels, and When to Escalate › Immediate Escalation Required.
-- (severity: what PagerDuty should be told; the document has no P-levels.)
M.SEVERITY = {
  { level = "CRITICAL", title = "Service down, data loss, security breach", severity = "critical",
    response = "escalate to the senior team after 30 minutes",
    notify = { "pagerduty", "slack" },
    any = {
      { "service_down", "==", true }, { "data_loss", "==", true }, { "security_breach", "==", true },
      { "services_down", ">=", 2 }, { "user_impact_pct", ">", 50 },
      { "cpu_pct", ">=", 90 }, { "memory_pct", ">=", 90 }, { "disk_pct", ">=", 90 },
      { "response_s", ">=", 5 }, { "error_rate", ">=", 0.10 },
    } },
  { level = "WARNING", title = "High resource usage, performance degradation", severity = "warning",
    notify = { "slack" },
    any = {
      { "cpu_pct", ">=", 80 }, { "memory_pct", ">=", 85 }, { "disk_pct", ">=", 80 },
      { "response_s", ">=", 2 }, { "error_rate", ">=", 0.05 },
    } },
  { level = "INFO", title = "Routine maintenance, informational events", severity = "info",
    notify = { "slack" }, default = true },
}

-- the SEVERITY row of a level ("CRITICAL", "WARNING", "INFO")
function M.row(level)
  for _, r in ipairs(M.SEVERITY) do if r.level == level then return r end end
  error("forge_gateway.row: no level " .. tostring(level), 2)
end

-- fg.post(escalation.notify, row, opts): send, and when a channel is not
-- configured or down, say so and go on -- the run's own verdict (and its
-- reason) matters more than the message about it.  -> the channels sent, or nil
function M.post(send, ...)
  local ok, r = pcall(send, ...)
  if ok then return r end
  log.error("could not notify: %s", tostring(r))
  return nil
end

-- Escalation Procedures › Escalation Contacts
M.CONTACTS = { "Level 1: on-call engineer", "Level 2: senior engineer",
               "Level 3: engineering manager", "Level 4: CTO/VP Engineering" }

-- the host ports the compose file publishes, per service
M.PORTS = { gateway = 8000, ["service-manager"] = 9000, ["web-admin"] = 3000, postgres = 5432,
            redis = 6379, ollama = 11434, prometheus = 9090, grafana = 3001 }

-- the health URL of a service, when it has one (Service Health Endpoints)
function M.health_url(p, service)
  if service == "gateway" and p.gateway then return p.gateway .. "/health" end
  if service == "service-manager" and p.service_manager then return p.service_manager .. "/health" end
  return nil
end

-- Service Health Endpoints
function M.endpoints(p)
  local list = {}
  if p.gateway and p.gateway ~= "" then list[#list + 1] = { name = "gateway", url = p.gateway .. "/health" } end
  if p.service_manager and p.service_manager ~= "" then
    list[#list + 1] = { name = "service-manager", url = p.service_manager .. "/health" }
  end
  if p.admin_ui and p.admin_ui ~= "" then list[#list + 1] = { name = "admin-ui", url = p.admin_ui } end
  return list
end

-- compose options from the params (project only when given)
function M.compose_opts(p, extra)
  local o = {}
  if p.project and p.project ~= "" then o.project = p.project end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- `docker-compose -f FILE exec -T SERVICE ...` argv (a read when the command is)
function M.compose_exec(p, service, argv)
  local out = { "docker", "compose", "-f", p.compose_file }
  if p.project and p.project ~= "" then out[#out + 1] = "-p"; out[#out + 1] = p.project end
  out[#out + 1] = "exec"; out[#out + 1] = "-T"; out[#out + 1] = service
  for _, a in ipairs(argv) do out[#out + 1] = a end
  return out
end

-- `docker compose -f FILE [-p P] up -d --no-recreate --scale SERVICE=N SERVICE` argv
-- (incident-response.sh -s SERVICE N)
function M.scale_argv(p, service, n)
  local argv = { "docker", "compose", "-f", p.compose_file }
  if p.project and p.project ~= "" then argv[#argv + 1] = "-p"; argv[#argv + 1] = p.project end
  for _, a in ipairs({ "up", "-d", "--no-recreate", "--scale", service .. "=" .. math.tointeger(n), service }) do
    argv[#argv + 1] = a
  end
  return argv
end

-- services that hold no state, so more replicas are safe (incident-response.sh)
M.STATELESS = { gateway = true, ["web-admin"] = true }

-- the rows of compose.status for one service
function M.service_rows(rows, service)
  local out = {}
  for _, r in ipairs(rows) do if r.service == service then out[#out + 1] = r end end
  return out
end

-- "20261123T171500Z", or the stamp param when given
function M.stamp(p)
  if p.stamp and p.stamp ~= "" then return p.stamp end
  return os.date("!%Y%m%dT%H%M%SZ")
end

-- the database name in a postgres URL
function M.dbname(url)
  return db.pg_url(url).dbname or "postgres"
end

-- the URL of another database on the same server
function M.sibling_url(url, name)
  local base, query = url:match("^([^?]*)(.*)$")
  local prefix = base:match("^(postgres[a-z]*://[^/]*)") or base
  return prefix .. "/" .. name .. query
end

-- the backups of url's database in dir: DIR/DBNAME-*.dump
function M.backup_glob(p)
  return p.backup_dir .. "/" .. M.dbname(p.database_url) .. "-*.dump"
end

-- the regular backups of the database, newest first (backup.list rows),
-- without the safety dumps forge-gateway/restore takes (DB-pre-restore-*.dump):
-- "the newest backup" must never silently be the state before a restore
function M.backups(p)
  local out = {}
  for _, b in ipairs(require("backup").list(M.backup_glob(p))) do
    if not b.name:find("-pre-restore-", 1, true) then out[#out + 1] = b end
  end
  return out
end

-- pg_isready argv for a postgres URL (host, port, dbname, user from it)
function M.pg_isready_argv(url)
  local u = db.pg_url(url)
  local argv = { "pg_isready" }
  for _, kv in ipairs({ { "-h", u.host }, { "-p", u.port }, { "-d", u.dbname }, { "-U", u.user } }) do
    if kv[2] then argv[#argv + 1] = kv[1]; argv[#argv + 1] = tostring(kv[2]) end
  end
  return argv
end

-- "Use% 91" of `df -P PATH` output -> 91
function M.df_pct(text)
  local last
  for line in text:gmatch("[^\n]+") do last = line end
  return last and tonumber(last:match("(%d+)%%")) or nil
end

return M
