local cal = require "calendar_api"

runbook {
  name        = "calendar-api/weekly-log-rotation",
  title       = "Calendar API: weekly log rotation and cleanup (Sundays 2:00 AM)",
  description = [[Compresses the logs over 100 MB, deletes compressed logs older than 30 days,
prunes unused Docker images (and, after asking, unused volumes), and archives the logs into
backups/logs-DATE.tar.gz, verified. Each file it compresses or deletes is listed first, so a
dry-run shows exactly which. 001_ef3bce7d6f139975.txt › Maintenance Procedures › Weekly
Maintenance (Sundays 2:00 AM) › 1. Log Rotation and Cleanup.]],
  source      = "001_ef3bce7d6f139975.txt › Maintenance Procedures › Weekly Maintenance › 1. Log Rotation and Cleanup",
  schedule    = "weekly",
  tags        = { "calendar-api", "maintenance", "weekly" },
  mutates     = { "gzips logs over 100 MB", "deletes compressed logs older than 30 days",
                  "docker image prune; docker volume prune (after asking)", "writes backups/logs-DATE.tar.gz" },
  params = {
    root          = { default = cal.ROOT, help = "the Calendar API checkout (cd /opt/calendar-api)" },
    log_dir       = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    backup_dir    = { default = cal.BACKUP_DIR, help = "backup directory, relative to root" },
    max_size      = { default = "+100M", help = "find -size of the logs to compress" },
    keep_days     = { type = "number", default = 30, help = "compressed logs older than this (find -mtime +30) are deleted" },
    prune_images  = { type = "boolean", default = true, help = "docker image prune -f" },
    prune_volumes = { type = "boolean", default = true,
                      help = "docker volume prune -f (asks first: it deletes every volume no container uses)" },
  },
}

local DATE = os.date("%Y%m%d")
local LOGS = cal.path(params.root, params.log_dir)

local function find(args)
  local argv = { "find", LOGS }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "-print"
  local r = exec(argv, { readonly = true, check = false })
  check(r.code == 0, "find %s: %s", LOGS, (r.stderr or ""):match("[^\n]*"))
  local out = {}
  for l in (r.stdout or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  table.sort(out)
  return out
end

step("Check disk usage", {
  description = "Before: `du -sh logs/` and `df -h` of the filesystem holding it.",
}, function()
  local du = exec({ "du", "-sh", LOGS }, { check = false })
  local df = exec({ "df", "-h", LOGS }, { check = false })
  log.info("%s", ((du.stdout or "") .. (df.stdout or "")):gsub("\n$", ""))
end)

step("Compress large logs", {
  description = "`find logs/ -name \"*.log\" -size +100M -exec gzip {} \\;`",
}, function()
  state.compressed = {}
  for _, f in ipairs(find({ "-name", "*.log", "-size", params.max_size, "-type", "f" })) do
    exec({ "gzip", f }, { timeout = 1800 })
    state.compressed[#state.compressed + 1] = f
  end
  log.info("%d log(s) compressed", #state.compressed)
end)

step("Delete old compressed logs", {
  description = "`find logs/ -name \"*.log.gz\" -mtime +30 -delete`",
}, function()
  state.deleted = {}
  for _, f in ipairs(find({ "-name", "*.log.gz", "-mtime", string.format("+%d", math.floor(params.keep_days)), "-type", "f" })) do
    fs.remove(f)
    state.deleted[#state.deleted + 1] = f
  end
  log.info("%d old compressed log(s) deleted", #state.deleted)
end)

step("Clean up old Docker images", {
  description = "`docker image prune -f`",
  when = function() return params.prune_images end,
}, function()
  local r = docker.prune({ images = true })
  log.info("images: %s reclaimed", cal.bytes(r.space_reclaimed))
end)

step("Clean up unused Docker volumes", {
  description = "`docker volume prune -f`: removes every volume no container uses -- with the stack " ..
                "stopped that would include prometheus_data, so it asks first.",
  when = function() return params.prune_volumes end,
}, function()
  local running = docker.ps({})
  if not confirm(string.format("docker volume prune: delete every Docker volume no container uses (%d containers " ..
                               "running now)?", #running)) then
    log.warn("volume prune skipped by the operator")
    return
  end
  local r = docker.prune({ volumes = true })
  state.volumes_pruned = true
  log.info("volumes: %s reclaimed", cal.bytes(r.space_reclaimed))
end)

step("Back up important logs", {
  description = "`tar -czf backups/logs-$(date +%Y%m%d).tar.gz logs/`, then `tar -tzf` to verify it.",
  timeout = 3600,
}, function()
  local dir = cal.path(params.root, params.backup_dir)
  fs.mkdir(dir, { parents = true })
  local archive = dir .. "/logs-" .. DATE .. ".tar.gz"
  exec({ "tar", "-czf", archive, "-C", params.root, params.log_dir }, { timeout = 3600 })
  state.archive = archive
  if not dry_run() then -- the archive was not written: nothing to list
    exec({ "tar", "-tzf", archive }, { readonly = true, timeout = 3600 })
    local st = fs.stat(archive, { check = false })
    log.info("%s: %s, lists cleanly", archive, st and cal.bytes(st.size) or "?")
  end
end)
