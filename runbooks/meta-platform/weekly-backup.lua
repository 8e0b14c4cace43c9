runbook {
  name        = "meta-platform/weekly-backup",
  title       = "254Carbon meta: weekly full platform backup (Sunday 3:00 UTC)",
  description = [[Archives the full platform state (catalog/, manifests/, analysis/, config/) into
/backups/full-DATE.tar.gz, lists it (tar -tzf), records its sha256 in /backups/SHA256SUMS and
prunes old weekly archives (keep_last; the document sets no retention).
000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.1 Automated Backups › Weekly Backups.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.1 Automated Backups › Weekly Backups",
  schedule    = "weekly",
  tags        = { "meta-platform", "backup", "weekly" },
  mutates     = { "writes /backups/full-DATE.tar.gz", "appends to /backups/SHA256SUMS",
                  "deletes weekly archives beyond keep_last", "posts a failed backup to Slack" },
  params = {
    root        = { default = ".", help = "the meta repository checkout" },
    backup_root = { default = "/backups", help = "where backups go" },
    dirs        = { type = "list", default = { "catalog/", "manifests/", "analysis/", "config/" }, help = "6.1 Weekly: the full platform state" },
    date        = { default = "", help = "date stamp YYYYMMDD (default: today, UTC)" },
    keep_last   = { type = "number", default = 8, help = "weekly archives to keep (not in the document)" },
  },
}

local backup = require "backup"
local mp = require "meta_platform"

step("Back up the full platform state", {
  description = "6.1: tar -czf /backups/full-$(date +%Y%m%d).tar.gz catalog/ manifests/ analysis/ config/",
}, function()
  state.date = mp.datestamp(params.date)
  state.archive = params.backup_root .. "/full-" .. state.date .. ".tar.gz"
  fs.mkdir(params.backup_root, { parents = true })
  local ok, err = pcall(function()
    return exec({ "tar", "-czf", state.archive, table.unpack(params.dirs) }, { cwd = params.root, timeout = 7200 })
  end)
  if not ok then
    notify.slack{ text = string.format("254Carbon weekly backup %s FAILED: %s", state.archive, tostring(err)) }
    error(err, 0)
  end
end)

step("Verify the backup", {
  description = "the archive lists cleanly (tar -tzf); its sha256 goes to /backups/SHA256SUMS",
}, function()
  local line = mp.check_archive(state.archive)
  if line then
    fs.append(params.backup_root .. "/SHA256SUMS", line)
    state.verified = true
    log.info("%s: %s", state.archive, line:match("^%x+"))
  end
end)

step("Apply retention", {
  description = "keep the newest keep_last weekly archives",
}, function()
  local p = backup.prune(params.backup_root .. "/full-*.tar.gz", { keep_last = math.tointeger(params.keep_last) })
  state.deleted = #p.delete
  if #p.delete > 0 then log.info("deleted %d old weekly archive(s)", #p.delete) end
end)
