local cal = require "calendar_api"
local compose = require "compose"
local backup = require "backup"

runbook {
  name        = "calendar-api/monthly-full-backup",
  title       = "Calendar API: monthly full backup (first Sunday 1:00 AM)",
  description = [[Stops the running compose services for a consistent backup, archives logs/,
cache/, monitoring/ and deployment/ into backups/full-backup-DATE.tar.gz and the Prometheus
volume into backups/prometheus-DATE.tar.gz, then starts the services again whatever happened
to the backups (and, under --rollback, the stop step's undo starts them too). Every archive is
listed and its sha256 recorded in backups/SHA256SUMS; old monthly backups are pruned.
001_ef3bce7d6f139975.txt › Maintenance Procedures › Monthly Maintenance › 1. Full System Backup.]],
  source      = "001_ef3bce7d6f139975.txt › Maintenance Procedures › Monthly Maintenance (First Sunday 1:00 AM) › 1. Full System Backup",
  schedule    = "monthly",
  tags        = { "calendar-api", "backup", "monthly" },
  mutates     = { "stops and starts the compose services (docker compose stop / up -d)",
                  "writes backups/full-backup-DATE.tar.gz, backups/prometheus-DATE.tar.gz, backups/SHA256SUMS",
                  "deletes monthly backups beyond keep_last" },
  params = {
    root           = { default = cal.ROOT, help = "the Calendar API checkout (holds logs/, cache/, monitoring/, deployment/)" },
    compose_file   = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project        = { default = "", help = "compose project (default: as docker compose names it)" },
    data_dirs      = { type = "list", default = { "logs", "cache", "monitoring", "deployment" },
                       help = "directories under root to archive" },
    backup_dir     = { default = cal.BACKUP_DIR, help = "where backups go (relative to root)" },
    volumes        = { type = "list", default = { "prometheus_data" }, help = "Docker volumes to archive" },
    api            = { default = cal.API, help = "API base URL (its /healthz is awaited after the restart)" },
    start_timeout  = { type = "number", default = 180, help = "seconds to wait for /healthz after starting" },
    keep_last      = { type = "number", default = 12, help = "monthly backups to keep of each kind (0: keep all)" },
  },
}

local DATE = os.date("%Y%m%d")
local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil
local DIR = cal.path(params.root, params.backup_dir)

-- both the stop step's undo and the restart step (ready: wait for /healthz
-- when the API is among them; compose.start does not wait in a rehearsal)
local function start_services(ready)
  if not state.services or #state.services == 0 then return end
  local api = false
  for _, s in ipairs(state.services) do
    if s == cal.SERVICE then api = true end
  end
  local r = compose.start(FILE, state.services, { project = PROJECT, wait_timeout = params.start_timeout,
                                                  wait_url = ready and api and (params.api .. "/healthz") or nil })
  state.started = true
  return r
end

-- a backup step marks itself failed first and clears the mark at its end, so
-- a step that raises or times out (continue_on_error) stays marked
local function begin(what)
  state.failed = state.failed or {}
  state.failed[what] = true
end
local function done(what, archive)
  state.failed[what] = nil
  if dry_run() then state.rehearsal = true end -- no archive was written: nothing to verify
  state.archives = state.archives or {}
  state.archives[#state.archives + 1] = archive
end

step("Record the running services", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml ps`: the services to stop, " ..
                "and to start again afterwards.",
}, function()
  local rows = cal.services(FILE, params.project)
  local seen = {}
  state.services = {}
  for _, r in ipairs(rows) do
    if r.running and not seen[r.service] then
      seen[r.service] = true
      state.services[#state.services + 1] = r.service
    end
  end
  table.sort(state.services)
  log.info("running: %s", #state.services > 0 and table.concat(state.services, ", ") or "nothing")
end)

step("Stop services for consistent backup", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml stop`. Undo (--rollback): " ..
                "start them again.",
  when = function() return #state.services > 0 end,
  undo = function() start_services(false) end,
}, function()
  compose.stop(FILE, state.services, { project = PROJECT, timeout = 600 })
end)

step("Back up all data", {
  description = "`tar -czf backups/full-backup-$(date +%Y%m%d).tar.gz logs/ cache/ monitoring/ deployment/`",
  continue_on_error = true,
  timeout = 7200,
}, function()
  begin("data")
  fs.mkdir(DIR, { parents = true })
  local dirs = {}
  for _, d in ipairs(params.data_dirs) do
    if fs.exists(cal.path(params.root, d)) then dirs[#dirs + 1] = d else log.warn("%s: not found, skipped", d) end
  end
  check(#dirs > 0, "none of %s exists under %s", table.concat(params.data_dirs, ", "), params.root)
  local archive = DIR .. "/full-backup-" .. DATE .. ".tar.gz"
  exec({ "tar", "-czf", archive, "-C", params.root, table.unpack(dirs) }, { timeout = 7200 })
  done("data", archive)
end)

step("Back up Docker volumes", {
  description = "`docker run --rm -v prometheus_data:/data -v $(pwd)/backups:/backup alpine tar czf " ..
                "/backup/prometheus-$(date +%Y%m%d).tar.gz /data`",
  when = function() return #params.volumes > 0 end,
  continue_on_error = true,
  timeout = 7200,
}, function()
  for _, vol in ipairs(params.volumes) do
    begin(vol)
  end
  fs.mkdir(DIR, { parents = true })
  for _, vol in ipairs(params.volumes) do
    local name = vol:gsub("_data$", "") .. "-" .. DATE .. ".tar.gz"
    exec({ "docker", "run", "--rm", "-v", vol .. ":/data", "-v", DIR .. ":/backup",
           "alpine", "tar", "czf", "/backup/" .. name, "/data" }, { timeout = 7200 })
    done(vol, DIR .. "/" .. name)
  end
end)

step("Restart services", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml start` -- always, even after a " ..
                "failed backup; then wait for /healthz.",
  when = function() return #state.services > 0 end,
}, function()
  if start_services(true).waited then log.info("the Calendar API is healthy again") end
end)

step("Verify the backups", {
  description = "Each archive lists cleanly (`tar -tzf`) and its sha256 goes into backups/SHA256SUMS; " ..
                "fails the run when a backup failed.",
}, function()
  for _, path in ipairs(state.archives or {}) do
    if state.rehearsal then
      log.info("would verify %s (tar -tzf, sha256sum)", path)
    else
      local r = exec({ "tar", "-tzf", path }, { readonly = true, timeout = 3600 })
      local n = select(2, (r.stdout or ""):gsub("\n", ""))
      local sum = exec({ "sha256sum", path }).stdout:match("^%x+")
      check(sum, "no sha256 for %s", path)
      fs.append(DIR .. "/SHA256SUMS", sum .. "  " .. path:match("[^/]+$") .. "\n")
      log.info("%s: %d entries, sha256 %s", path, n, sum)
    end
  end
  local failed = {}
  for what in pairs(state.failed or {}) do failed[#failed + 1] = what end
  table.sort(failed)
  check(#failed == 0, "backup failed: %s (services were started again)", table.concat(failed, ", "))
end)

step("Apply retention", {
  description = "Keep the newest keep_last monthly backups of each kind (not in the document's script: " ..
                "without it backups/ only grows).",
  when = function() return params.keep_last > 0 end,
}, function()
  local patterns = { "full-backup-*.tar.gz" }
  for _, vol in ipairs(params.volumes) do patterns[#patterns + 1] = vol:gsub("_data$", "") .. "-*.tar.gz" end
  for _, pattern in ipairs(patterns) do
    local p = backup.prune(DIR .. "/" .. pattern, { keep_last = math.floor(params.keep_last) })
    log.info("%s: kept %d, deleted %d", pattern, #p.keep, #p.delete)
  end
end)
