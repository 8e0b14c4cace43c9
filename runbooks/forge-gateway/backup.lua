local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/backup",
  title       = "Manual backup and integrity verification",
  description = [[Backs up the gateway: the PostgreSQL database (pg_dump --format=custom from one
snapshot, with a manifest of size, sha256 and row counts) and the ./data volume (tar.gz, its
sha256 in SHA256SUMS); verifies both (checksums, pg_restore reads the archive, tar lists the
tarball); applies the retention rule; and reports a failed backup to Slack (WARNING).
004_c5e4c638679021cc.txt › Backup and Recovery › Backup Procedures › Automated Backups
(backup-create.sh, backup-verify.sh).]],
  source      = "004_c5e4c638679021cc.txt › Backup and Recovery › Backup Procedures › Automated Backups",
  schedule    = "on demand",
  tags        = { "forge-gateway", "backup" },
  mutates     = { "writes a database dump, its manifest and a data tarball into backup_dir",
                  "appends to backup_dir/SHA256SUMS", "deletes backups outside the retention rule",
                  "posts to Slack when a backup fails" },
  params      = fg.params{ "database_url", "backup_dir", "data_dir", "stamp",
    include_data = { type = "boolean", default = true, help = "also archive data_dir (skipped when it does not exist)" },
    keep_last    = { type = "number", default = 7, help = "backups to keep, the newest (not in the document)" },
    keep_days    = { type = "number", default = 14, help = "also keep every backup younger than this (not in the document)" },
  },
}

local backup = require "backup"
local escalation = require "escalation"

local function failed(what, err)
  state.failures = state.failures or {}
  state.failures[#state.failures + 1] = what .. ": " .. tostring(err)
  error(err, 0)
end

step("Run manual backup: database", {
  description = "./scripts/backup-create.sh: pg_dump --format=custom with a manifest (sizes, sha256, row counts)",
  continue_on_error = true,
  timeout = 3600,
}, function()
  state.stamp = fg.stamp(params)
  fs.mkdir(params.backup_dir, { parents = true })
  local path = string.format("%s/%s-%s.dump", params.backup_dir, fg.dbname(params.database_url), state.stamp)
  local ok, r = pcall(db.backup, params.database_url, path)
  if not ok then failed("database backup", r) end
  state.dump = path
  state.rows = r.rows
  if dry_run() then log.info("would back up %d rows to %s", r.rows, path)
  else log.info("%s: %d bytes, sha256 %s, %d rows", path, r.size, r.sha256, r.rows) end
end)

step("Run manual backup: data volume", {
  description = "tar -czf backups/data-backup-STAMP.tar.gz ./data (as deploy-production.sh -b)",
  when = function() return params.include_data end,
  continue_on_error = true,
}, function()
  if not fs.exists(params.data_dir) then
    log.info("%s: not found, skipped", params.data_dir)
    return
  end
  local archive = string.format("%s/data-backup-%s.tar.gz", params.backup_dir, state.stamp or fg.stamp(params))
  local parent, name = params.data_dir:gsub("/+$", ""):match("^(.-)/?([^/]+)$")
  if parent == "" then parent = params.data_dir:sub(1, 1) == "/" and "/" or "." end
  local r = exec({ "tar", "-czf", archive, "-C", parent, name }, { check = false })
  if r.code ~= 0 then failed("data backup", "tar exit " .. r.code .. ": " .. (r.stderr or "")) end
  if not dry_run() then -- no archive was written: nothing to checksum
    fs.append(params.backup_dir .. "/SHA256SUMS", fs.sha256(archive) .. "  " .. archive:match("[^/]+$") .. "\n")
  end
  state.archive = archive
end)

step("Verify backup integrity", {
  description = "./scripts/backup-verify.sh: checksums against the manifests; pg_restore and tar read the archives",
  continue_on_error = true,
}, function()
  if state.dump and fs.exists(state.dump) then
    local ok, v = pcall(db.verify, state.dump)
    if not ok then failed("database backup verification", v) end
    log.info("%s verified: sha256 matches, every table's data is in the archive", state.dump)
  elseif state.dump then
    log.info("no dump written (dry-run): nothing to verify")
  end
  if state.archive and fs.exists(state.archive) then
    local v = backup.verify(state.archive, params.backup_dir .. "/SHA256SUMS", { check = false })
    if not v.ok then failed("data backup verification", v.problem) end
    local t = exec({ "tar", "-tzf", state.archive }, { readonly = true, check = false })
    if t.code ~= 0 then failed("data backup verification", "tar cannot read " .. state.archive) end
    log.info("%s verified: sha256 matches, tar reads it", state.archive)
  end
  state.verified = true
end)

step("Apply retention", {
  description = "keep the newest keep_last backups and any younger than keep_days days; delete the rest",
  when = function() return not state.failures end,
}, function()
  local rule = { keep_last = math.tointeger(params.keep_last), keep_days = params.keep_days }
  local p = backup.prune(fg.backup_glob(params), rule)
  local d = backup.prune(params.backup_dir .. "/data-backup-*.tar.gz", rule)
  state.deleted = #p.delete + #d.delete
  log.info("kept %d backup(s), deleted %d", #p.keep + #d.keep, state.deleted)
end)

step("Report a failed backup", {
  description = "a backup that failed or did not verify is reported (WARNING) and fails the run",
  when = function() return state.failures ~= nil end,
}, function()
  -- WARNING: no data is lost, but there is no fresh backup either
  fg.post(escalation.notify, fg.row("WARNING"), { summary = "forge gateway backup failed: " .. table.concat(state.failures, "; "),
                           dedup_key = "forge-gateway-backup", source = "runbook forge-gateway/backup" })
  check(false, "%d backup problem(s): %s", #state.failures, table.concat(state.failures, "; "))
end)
