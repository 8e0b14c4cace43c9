-- examples/calendar-api-monthly-backup.lua: the Calendar API's "Monthly
-- Maintenance (First Sunday 1:00 AM) › 1. Full System Backup"
-- (001_ef3bce7d6f139975.txt):
--
--   docker-compose -f deployment/docker-compose.prod.yml stop
--   tar -czf backups/full-backup-$(date +%Y%m%d).tar.gz logs/ cache/ monitoring/ deployment/
--   docker run --rm -v prometheus_data:/data -v $(pwd)/backups:/backup \
--     alpine tar czf /backup/prometheus-$(date +%Y%m%d).tar.gz /data
--   docker-compose -f deployment/docker-compose.prod.yml start
--
-- plus what the script leaves out: the API's PostgreSQL (its Troubleshooting
-- › Database Connection Issues) is backed up with db.backup, every archive
-- is verified and its sha256 recorded in backups/SHA256SUMS, the services
-- are started again even when a backup failed (the run still fails after),
-- and old monthly backups are pruned.
--
--   runbook run examples/calendar-api-monthly-backup.lua --dry-run \
--       --param root=/srv/calendar-api --param db_url=postgres://calendar@localhost/calendar
--
-- With compose_file empty the services are not stopped (a host without
-- Docker); with db_url empty there is no database backup.

runbook {
  name   = "examples/calendar-api-monthly-backup",
  title  = "Calendar API: monthly full backup",
  tags   = { "example", "calendar-api", "backup", "monthly" },
  params = {
    root         = { default = ".", help = "the Calendar API checkout (holds logs/, cache/, monitoring/, deployment/)" },
    data_dirs    = { type = "list", default = { "logs", "cache", "monitoring", "deployment" },
                     help = "directories under root to archive" },
    backup_dir   = { default = "backups", help = "where backups go (relative to root)" },
    compose_file = { default = "deployment/docker-compose.prod.yml",
                     help = "compose file of the stack to stop during the backup; empty: do not stop" },
    volumes      = { type = "list", default = { "prometheus_data" }, help = "Docker volumes to archive (needs compose_file)" },
    db_url       = { default = "", help = "the API's PostgreSQL; empty: no database backup" },
    keep_last    = { type = "number", default = 12, help = "monthly backups to keep of each kind" },
  },
}

local backup = require "backup"
local DATE = os.date("%Y%m%d")

local function at_root(p)
  if p:sub(1, 1) == "/" then return p end
  return params.root .. "/" .. p
end

local function compose(verb)
  return exec({ "docker", "compose", "-f", at_root(params.compose_file), verb }, { timeout = 300 })
end

-- a backup that fails is noted and the run goes on, so the services come
-- back; "Verify the backups" fails the run afterwards
local function attempt(what, fn)
  local ok, err = pcall(fn)
  if not ok then
    state.failures = state.failures or {}
    table.insert(state.failures, what .. ": " .. tostring(err))
    log.error("%s failed: %s", what, tostring(err))
  end
end

local function archive(name)
  return at_root(params.backup_dir) .. "/" .. name
end

step("Stop services for a consistent backup", {
  when = function() return params.compose_file ~= "" end,
}, function()
  compose("stop")
end)

step("Back up all data", {
  description = "tar -czf backups/full-backup-DATE.tar.gz of the data directories that exist",
}, function()
  attempt("data archive", function()
    fs.mkdir(at_root(params.backup_dir), { parents = true })
    local dirs = {}
    for _, d in ipairs(params.data_dirs) do
      if fs.exists(at_root(d)) then dirs[#dirs + 1] = d else log.warn("%s: not found, skipped", at_root(d)) end
    end
    check(#dirs > 0, "none of %s exists under %s", table.concat(params.data_dirs, ", "), params.root)
    local path = archive("full-backup-" .. DATE .. ".tar.gz")
    exec({ "tar", "-czf", path, "-C", params.root, table.unpack(dirs) }, { timeout = 3600 })
    state.archives = { path }
  end)
end)

step("Back up the database", {
  when = function() return params.db_url ~= "" end,
  timeout = 3600,
}, function()
  attempt("database backup", function()
    fs.mkdir(at_root(params.backup_dir), { parents = true })
    local r = db.backup(params.db_url, archive("calendar-db-" .. DATE .. ".dump"))
    state.dump = r.path
  end)
end)

step("Back up Docker volumes", {
  when = function() return params.compose_file ~= "" and #params.volumes > 0 end,
  timeout = 3600,
}, function()
  local dir = exec({ "realpath", at_root(params.backup_dir) }).stdout:gsub("%s+$", "")
  for _, vol in ipairs(params.volumes) do
    attempt("volume " .. vol, function()
      local name = vol:gsub("_data$", "") .. "-" .. DATE .. ".tar.gz"
      exec({ "docker", "run", "--rm", "-v", vol .. ":/data", "-v", dir .. ":/backup",
             "alpine", "tar", "czf", "/backup/" .. name, "/data" }, { timeout = 3600 })
      state.archives = state.archives or {}
      table.insert(state.archives, archive(name))
    end)
  end
end)

step("Restart services", {
  when = function() return params.compose_file ~= "" end,
}, function()
  compose("start")
end)

step("Verify the backups", {
  description = "every archive lists cleanly (tar -t), the database dump matches its manifest; sha256 into SHA256SUMS",
}, function()
  for _, path in ipairs(state.archives or {}) do
    if fs.exists(path) then
      exec({ "tar", "-tzf", path }, { readonly = true, timeout = 3600 })
      fs.append(archive("SHA256SUMS"), fs.sha256(path) .. "  " .. path:match("[^/]+$") .. "\n")
      log.info("%s: %d bytes, lists cleanly", path, fs.stat(path).size)
    end
  end
  if state.dump and fs.exists(state.dump) then
    local v = db.verify(state.dump)
    fs.append(archive("SHA256SUMS"), v.sha256 .. "  " .. state.dump:match("[^/]+$") .. "\n")
    log.info("%s: %s rows, matches its manifest", state.dump, tostring(v.rows))
  end
  check(not state.failures, "%d backup(s) failed: %s", #(state.failures or {}),
        table.concat(state.failures or {}, "; "))
end)

step("Apply retention", {
  description = "keep the newest keep_last monthly backups of each kind",
}, function()
  local keep = math.tointeger(params.keep_last)
  local patterns = { "full-backup-*.tar.gz", "calendar-db-*.dump" }
  for _, vol in ipairs(params.volumes) do patterns[#patterns + 1] = vol:gsub("_data$", "") .. "-*.tar.gz" end
  for _, pattern in ipairs(patterns) do
    local p = backup.prune(archive(pattern), { keep_last = keep })
    if #p.delete > 0 then log.info("%s: deleted %d old backup(s)", pattern, #p.delete) end
  end
end)
