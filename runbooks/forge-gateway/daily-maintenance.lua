local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/daily-maintenance",
  title       = "Daily maintenance: log rotation, health monitoring, backup verification",
  description = [[The gateway's daily chores: delete application logs older than 7 days and prune
Docker's leftovers; check every health endpoint and compose service; list the recent backups
(the newest must be younger than max_backup_age_hours); verify the newest database backup and
test its restoration into a scratch database (compared table by table, then dropped). Problems
are posted to Slack with the severity of the document's matrix and fail the run.
004_c5e4c638679021cc.txt › Maintenance Procedures › Daily Maintenance.]],
  source      = "004_c5e4c638679021cc.txt › Maintenance Procedures › Daily Maintenance",
  schedule    = "daily",
  tags        = { "forge-gateway", "maintenance", "daily" },
  mutates     = { "deletes application logs older than log_days days", "docker system prune -f",
                  "creates and drops a scratch database for the restore test",
                  "posts problems to Slack (pages when a service is down)" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager", "admin_ui",
                           "database_url", "backup_dir", "logs_dir",
    log_days             = { type = "number", default = 7, help = "delete *.log older than this many days (find -mtime +7)" },
    docker_prune         = { type = "boolean", default = true, help = "docker system prune -f" },
    max_backup_age_hours = { type = "number", default = 26, help = "the newest backup must be younger (a daily backup plus slack)" },
    restore_test         = { type = "boolean", default = true, help = "restore the newest backup into a scratch database and compare" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

local function problem(fmt, ...)
  state.problems = state.problems or {}
  state.problems[#state.problems + 1] = string.format(fmt, ...)
  log.warn(fmt, ...)
end

step("Rotate application logs", {
  description = "find ./logs -name \"*.log\" -mtime +7 -delete (listed first, each file removed on its own)",
}, function()
  state.logs_deleted = 0
  if not fs.exists(params.logs_dir) then
    log.info("%s: not found, nothing to rotate", params.logs_dir)
    return
  end
  local r = exec({ "find", params.logs_dir, "-name", "*.log", "-mtime", "+" .. math.tointeger(params.log_days), "-type", "f" },
                 { readonly = true })
  for path in r.stdout:gmatch("[^\n]+") do
    fs.remove(path)
    state.logs_deleted = state.logs_deleted + 1
  end
  log.info("%d log file(s) older than %d days deleted", state.logs_deleted, params.log_days)
end)

step("Rotate Docker logs", {
  description = "docker system prune -f: stopped containers, unused networks, dangling images, build cache",
  when = function() return params.docker_prune end,
}, function()
  local r = exec({ "docker", "system", "prune", "-f" })
  local reclaimed = (r.stdout or ""):match("Total reclaimed space:%s*(%S+)")
  if reclaimed then log.info("reclaimed %s", reclaimed) end
end)

step("Check service status", {
  description = "./scripts/advanced-monitoring.sh -c: health endpoints and compose services",
}, function()
  local r = health.check(fg.endpoints(params), { timeout = 10 })
  health.report(r)
  local down = compose.down_services(compose.status(params.compose_file, fg.compose_opts(params)))
  for _, name in ipairs(r.down) do problem("%s is not answering", name) end
  for _, s in ipairs(down) do problem("compose service %s is down or unhealthy", s) end
  state.down = #r.down + #down
  state.endpoints_down = r.down
  state.services_down = down
end)

step("Verify recent backups", {
  description = "ls -la ./backups/ | head -10: the newest backups, and how old the newest is",
}, function()
  local all = fg.backups(params)
  for i, b in ipairs(all) do
    if i > 10 then break end
    log.info("%s  %d bytes  %.1f h old", b.name, b.size, b.age_days * 24)
  end
  state.backups = #all
  if #all == 0 then
    problem("no database backup in %s", params.backup_dir)
    return
  end
  state.newest = all[1].path
  if all[1].age_days * 24 > params.max_backup_age_hours then
    problem("the newest backup %s is %.0f h old (more than %d h)", all[1].name, all[1].age_days * 24,
            params.max_backup_age_hours)
  end
end)

step("Test backup restoration", {
  description = "./scripts/test-backup.sh: verify the newest backup, restore it into a scratch database, compare, drop it",
  when = function() return params.restore_test and state.newest ~= nil end,
  timeout = 3600,
}, function()
  local ok, v = pcall(db.verify, state.newest)
  if not ok then
    problem("backup %s does not verify: %s", state.newest, tostring(v))
    return
  end
  local scratch = fg.dbname(params.database_url) .. "_restore_test"
  local admin <close> = db.open(fg.sibling_url(params.database_url, "postgres"))
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  admin:exec('CREATE DATABASE "' .. scratch .. '"')
  local rok, r = pcall(db.restore, state.newest, fg.sibling_url(params.database_url, scratch))
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  if not rok then
    problem("restore test of %s failed: %s", state.newest, tostring(r))
  elseif dry_run() then
    log.info("would restore %s into %s and compare", state.newest, scratch)
  else
    state.restored_rows = r.rows
    log.info("restored %d rows; every table's count matches the backup", r.rows)
  end
end)

step("Review alerts", {
  description = "./scripts/advanced-monitoring.sh -a: reading the active alerts is a person's job -- a checkpoint",
}, function()
  state.alerts_reviewed = confirm("Active alerts reviewed (advanced-monitoring.sh -a / the alerting tool)?")
  if not state.alerts_reviewed then log.warn("alerts not reviewed today") end
end)

step("Report problems", {
  description = "Health Monitoring › review alerts: post what is wrong, with the matrix's severity",
  when = function() return state.problems ~= nil end,
}, function()
  local row, why = escalation.classify(fg.SEVERITY, { service_down = state.down > 0, services_down = state.down })
  if row.level == "INFO" then row = fg.row("WARNING") end -- a missing or stale backup is worth a look today
  fg.post(escalation.notify, row, { summary = "forge gateway daily maintenance: " .. table.concat(state.problems, "; "),
                           details = { reason = why }, dedup_key = "forge-gateway-daily",
                           source = "runbook forge-gateway/daily-maintenance" })
  state.reported = row.level
  check(false, "%d problem(s): %s", #state.problems, table.concat(state.problems, "; "))
end)
