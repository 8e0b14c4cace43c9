local cal = require "calendar_api"
local compose = require "compose"
local backup = require "backup"

runbook {
  name        = "calendar-api/data-corruption",
  title       = "Calendar API: data corruption -- restore from the latest backup",
  description = [[Stops the API (no more writes), has a person confirm the scope, checks the newest
monthly full backup against backups/SHA256SUMS, keeps a copy of the current data, restores the
chosen directories from the backup (after asking), verifies them against the archive and starts
the API again. A failure leaves the API stopped for a person to decide; --rollback starts it.
001_ef3bce7d6f139975.txt › Emergency Procedures › Data Corruption.]],
  source      = "001_ef3bce7d6f139975.txt › Emergency Procedures › Data Corruption",
  severity    = "P1",
  tags        = { "calendar-api", "dr", "P1" },
  mutates     = { "stops and starts calendar-api (docker compose stop / up -d)",
                  "writes backups/pre-restore-DATE.tar.gz", "overwrites the restored directories from the backup" },
  params = {
    root          = { default = cal.ROOT, help = "the Calendar API checkout" },
    compose_file  = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project       = { default = "", help = "compose project (default: as docker compose names it)" },
    service       = { default = cal.SERVICE, help = "the API's compose service (the writer)" },
    backup_dir    = { default = cal.BACKUP_DIR, help = "backups, relative to root (calendar-api/monthly-full-backup writes them)" },
    restore_dirs  = { type = "list", default = { "cache" },
                      help = "directories to restore from the full backup (it holds logs, cache, monitoring, deployment)" },
    backup_file   = { default = "", help = "a given backup instead of the newest full-backup-*.tar.gz" },
    api           = { default = cal.API, help = "API base URL" },
    start_timeout = { type = "number", default = 180, help = "seconds to wait for /healthz after starting" },
  },
}

local DATE = os.date("%Y%m%d")
local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil
local DIR = cal.path(params.root, params.backup_dir)

-- ready: also wait for /healthz (compose.start does not wait in a rehearsal)
local function resume(ready)
  local r = compose.start(FILE, { params.service }, { project = PROJECT,
    wait_url = ready and (params.api .. "/healthz") or nil, wait_timeout = params.start_timeout })
  state.resumed = true
  return r
end

step("Stop all write operations", {
  description = "Data Corruption › 1: `docker compose stop calendar-api`. Undo (--rollback): start it.",
  undo = function() resume(false) end,
}, function()
  compose.stop(FILE, { params.service }, { project = PROJECT })
end)

step("Assess corruption scope", {
  description = "Data Corruption › 2: a person decides what is corrupt; the backups at hand are listed.",
}, function()
  local list = params.backup_file ~= "" and { { path = cal.path(params.root, params.backup_file) } }
               or backup.list(DIR .. "/full-backup-*.tar.gz")
  check(#list > 0, "no full backup in %s (calendar-api/monthly-full-backup makes them)", DIR)
  for i, b in ipairs(list) do
    if i <= 5 then log.info("backup %s%s", b.path, b.age_days and string.format(" (%.0f days old)", b.age_days) or "") end
  end
  state.backup = list[1].path
  check(confirm(string.format("Is the corruption limited to %s, and is %s (the newest backup) from before it?",
                              table.concat(params.restore_dirs, ", "), state.backup)),
        "scope not confirmed: the API stays stopped; restore by hand or run again with restore_dirs / backup_file")
end)

step("Verify the backup", {
  description = "The backup's sha256 against backups/SHA256SUMS, and `tar -tzf` lists the directories to restore.",
}, function()
  backup.verify(state.backup, DIR .. "/SHA256SUMS")
  local r = exec({ "tar", "-tzf", state.backup }, { readonly = true, timeout = 3600 })
  for _, d in ipairs(params.restore_dirs) do
    check(("\n" .. r.stdout):find("\n" .. d .. "/", 1, true), "%s has no %s/", state.backup, d)
  end
  log.info("%s matches SHA256SUMS and holds %s", state.backup, table.concat(params.restore_dirs, ", "))
end)

step("Restore from latest backup", {
  description = "Data Corruption › 3: keep the current data in backups/pre-restore-DATE.tar.gz, then " ..
                "`tar -xzf BACKUP -C ROOT DIRS` (asks first).",
  timeout = 7200,
}, function()
  local present = {}
  for _, d in ipairs(params.restore_dirs) do
    if fs.exists(cal.path(params.root, d)) then present[#present + 1] = d end
  end
  if #present > 0 then
    state.safety = DIR .. "/pre-restore-" .. DATE .. ".tar.gz"
    exec({ "tar", "-czf", state.safety, "-C", params.root, table.unpack(present) }, { timeout = 7200 })
  end
  check(confirm(string.format("Overwrite %s under %s from %s?", table.concat(params.restore_dirs, ", "),
                              params.root, state.backup)), "restore declined: the API stays stopped")
  for _, d in ipairs(present) do fs.remove(cal.path(params.root, d), { recursive = true }) end
  exec({ "tar", "-xzf", state.backup, "-C", params.root, table.unpack(params.restore_dirs) }, { timeout = 7200 })
  state.rehearsal = dry_run() -- nothing was restored: there is nothing to compare
end)

step("Verify data integrity", {
  description = "Data Corruption › 4: `tar -dzf` compares the restored files with the archive.",
  when = function() return not state.rehearsal end,
}, function()
  local r = exec({ "tar", "-dzf", state.backup, "-C", params.root, table.unpack(params.restore_dirs) },
                 { readonly = true, check = false, timeout = 3600 })
  check(r.code == 0, "the restored files differ from the archive: %s", ((r.stdout or "") .. (r.stderr or "")):sub(1, 400))
end)

step("Resume operations", {
  description = "Data Corruption › 5: `docker compose up -d calendar-api`, then /healthz.",
}, function()
  if resume(true).waited then log.info("the Calendar API is healthy, restored from %s", state.backup) end
end)
