local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/production-deployment",
  title       = "Production deployment: pre-checks, backup, deploy, verify",
  description = [[Deploys the gateway stack with docker compose, as deploy-production.sh does, with
its gates: pre-deployment checks (Docker answers, compose file and .env.production present, disk
below 90 %, current health), configuration validation (docker compose config), a backup of the
current deployment (database, ./data, the env file), a confirmation, pull and up -d, then waits
for /health (gateway 5 min, service manager 2 min) and verifies (every service running, health
endpoints, service discovery). A failed verification is paged with the backup to roll back to.
004_c5e4c638679021cc.txt › Deployment Procedures › Production Deployment.]],
  source      = "004_c5e4c638679021cc.txt › Deployment Procedures › Production Deployment",
  schedule    = "on demand",
  tags        = { "forge-gateway", "deploy" },
  mutates     = { "backs up the database, ./data and the env file into backup_dir",
                  "pulls images and recreates the compose services (docker compose pull, up -d)",
                  "pages when the deployment does not verify" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager", "admin_ui",
                           "database_url", "backup_dir", "data_dir", "env_file", "stamp",
    services       = { type = "list", default = {}, help = "deploy only these services (deploy-production.sh -d); empty: all" },
    backup         = { type = "boolean", default = true, help = "back up the current deployment first (deploy-production.sh -b)" },
    gateway_wait   = { type = "number", default = 300, help = "seconds for the gateway's /health (deploy-production.sh: 5 minutes)" },
    manager_wait   = { type = "number", default = 120, help = "seconds for the service manager's /health (2 minutes, a warning only)" },
    disk_critical  = { type = "number", default = fg.THRESHOLDS.disk_pct.critical, help = "refuse to deploy with the disk this full (%)" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

local function services_or_nil()
  return #params.services > 0 and params.services or nil
end

step("Run pre-deployment checks", {
  description = "./scripts/deploy-production.sh -c -v -p: Docker, compose file, env file, disk, current health",
}, function()
  local v = docker.version()
  log.info("Docker %s (API %s)", tostring(v.Version), tostring(v.ApiVersion))
  check(fs.exists(params.compose_file), "%s not found", params.compose_file)
  check(fs.exists(params.env_file), "%s not found: copy .env.production.example and configure it", params.env_file)
  local df = exec({ "df", "-P", "." })
  state.disk_pct = fg.df_pct(df.stdout)
  check(state.disk_pct and state.disk_pct < params.disk_critical, "disk %s%% full: free space before deploying",
        tostring(state.disk_pct))
  local r = health.check(fg.endpoints(params), { timeout = 10 })
  health.report(r)
  state.down_before = r.down
end)

step("Validate configuration", {
  description = "./scripts/deploy-production.sh -v: docker compose config --quiet",
}, function()
  local argv = { "docker", "compose", "-f", params.compose_file }
  if params.project ~= "" then argv[#argv + 1] = "-p"; argv[#argv + 1] = params.project end
  argv[#argv + 1] = "config"; argv[#argv + 1] = "--quiet"
  local r = exec(argv, { readonly = true, check = false })
  check(r.code == 0, "%s is not valid: %s", params.compose_file, ((r.stderr or "") .. (r.stdout or "")):gsub("%s+$", ""))
  log.info("%s is valid", params.compose_file)
end)

step("Backup current deployment", {
  description = "./scripts/deploy-production.sh -b: database, ./data and the env file (forge-gateway/backup)",
  when = function() return params.backup end,
  timeout = 3600,
}, function()
  state.stamp = fg.stamp(params)
  run_runbook("forge-gateway/backup", { database_url = params.database_url, backup_dir = params.backup_dir,
                                        data_dir = params.data_dir, stamp = state.stamp })
  fs.copy(params.env_file, string.format("%s/%s.backup-%s", params.backup_dir, params.env_file:match("[^/]+$"), state.stamp))
  state.backup = string.format("%s/%s-%s.dump", params.backup_dir, fg.dbname(params.database_url), state.stamp)
end)

step("Pull images", {
  description = "docker-compose -f docker-compose.production.yml pull",
}, function()
  check(confirm("Deploy " .. (services_or_nil() and table.concat(params.services, ", ") or "every service")
                .. " of " .. params.compose_file .. " to production?"), "deployment declined")
  docker.compose(params.compose_file, fg.compose_opts(params)):pull{ services = services_or_nil() }
end)

step("Deploy services", {
  description = "./scripts/deploy-production.sh [-d]: docker compose up -d (recreates what changed)",
}, function()
  compose.up(params.compose_file, fg.compose_opts(params, { services = services_or_nil() }))
  state.deployed = true
  state.rehearsal = dry_run() -- nothing deployed: nothing to wait for, verify or escalate
end)

step("Wait for services to be healthy", {
  description = "until curl -f http://localhost:8000/health (5 min); http://localhost:9000/health (2 min, warning)",
  when = function() return not state.rehearsal end,
  timeout = params.gateway_wait + params.manager_wait + 60,
}, function()
  local function answers(url)
    return function()
      local r = http.get(url, { timeout = 5, check = false })
      return r.status == 200
    end
  end
  state.gateway_up = pcall(wait_until, answers(params.gateway .. "/health"),
                           { timeout = params.gateway_wait, every = 5, what = "gateway /health" })
  if not state.gateway_up then
    log.error("gateway did not become healthy within %d s", params.gateway_wait)
    return
  end
  if not pcall(wait_until, answers(params.service_manager .. "/health"),
               { timeout = params.manager_wait, every = 5, what = "service manager /health" }) then
    log.warn("service manager may not be ready yet")
  end
end)

step("Verify deployment", {
  description = "./scripts/deploy-production.sh --verify, health-check.sh, smoke-test.sh: services, endpoints, discovery",
  when = function() return state.gateway_up and not state.rehearsal end,
}, function()
  local down = compose.down_services(compose.status(params.compose_file, fg.compose_opts(params)))
  local r = health.check(fg.endpoints(params), { timeout = 10 })
  health.report(r)
  state.problems = {}
  for _, s in ipairs(down) do state.problems[#state.problems + 1] = "service " .. s .. " down" end
  for _, n in ipairs(r.down) do state.problems[#state.problems + 1] = n .. " not answering" end
  local s = http.get(params.gateway .. "/services", { timeout = 10, check = false })
  local okj, body = pcall(function() return s:json() end)
  local n = okj and type(body) == "table" and type(body.services) == "table" and #body.services or 0
  if n > 0 then log.info("service discovery is working (%d services found)", n)
  else log.warn("service discovery may not be fully configured") end
  state.discovered = n
  if #state.problems == 0 then log.info("deployment verified") end
end)

step("Escalate a failed deployment", {
  description = "the deployment did not verify: page, with the backup to roll back to (forge-gateway/restore)",
  when = function() return not state.rehearsal and (not state.gateway_up or #(state.problems or {}) > 0) end,
}, function()
  local what = state.gateway_up and table.concat(state.problems, "; ") or "gateway /health not answering"
  fg.post(escalation.notify, fg.row("CRITICAL"), {
    summary = "forge gateway deployment failed: " .. what,
    details = { backup = state.backup, rollback = "forge-gateway/restore backup=" .. tostring(state.backup) },
    dedup_key = "forge-gateway-deploy", source = "runbook forge-gateway/production-deployment",
  })
  check(false, "deployment failed: %s; the pre-deployment backup is %s", what, tostring(state.backup))
end)
