runbook {
  name        = "meta-platform/historical-data-recovery",
  title       = "254Carbon meta: recover lost historical data",
  description = [[Historical data loss: picks the archive (/backups/historical-DATE.tar.gz, default the
newest), checks it against /backups/SHA256SUMS (written by meta-platform/daily-backup) and
that it lists (tar -tzf), restores it with manage_historical_data.py --action restore,
verifies the data (validate_catalog.py --historical-data) and regenerates missing reports.
000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.1 Data Recovery Procedures › Scenario:
Historical data loss.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.1 Data Recovery Procedures › Historical data loss",
  tags        = { "meta-platform", "dr" },
  mutates     = { "restores analysis/reports/ from the archive (after confirm)", "regenerates missing reports",
                  "posts a failed integrity check to Slack" },
  params = {
    root        = { default = ".", help = "the meta repository checkout" },
    python      = { default = "python", help = "Python interpreter" },
    backup_root = { default = "/backups", help = "where the daily historical archives are" },
    backup_file = { default = "", help = "the archive to restore (default: the newest historical-*.tar.gz)" },
    reports_dir = { default = "analysis/reports/", help = "5.1: --historical-data" },
    timeout     = { type = "number", default = 3600, help = "seconds per script" },
  },
}

local backup = require "backup"
local mp = require "meta_platform"

step("Find the archive", {
  description = "5.1: /backups/historical-$(date +%Y%m%d).tar.gz -- the newest, or backup_file",
}, function()
  if params.backup_file ~= "" then
    state.archive = params.backup_file
  else
    local all = mp.by_name_desc(backup.list(params.backup_root .. "/historical-*.tar.gz"))
    check(#all > 0, "no historical archive in %s", params.backup_root)
    state.archive = all[1].path
  end
  check(fs.exists(state.archive), "%s does not exist", state.archive)
  log.info("archive: %s", state.archive)
end)

step("Check the archive", {
  description = "sha256 against /backups/SHA256SUMS (when there) and tar -tzf, before anything is touched",
}, function()
  local sums = params.backup_root .. "/SHA256SUMS"
  if fs.exists(sums) then
    local v = backup.verify(state.archive, sums, { check = false })
    state.checksum_ok = v.ok
    check(v.ok, "%s: %s", state.archive, tostring(v.problem))
  else
    log.warn("%s missing: the archive's checksum cannot be checked", sums)
  end
  mp.check_archive(state.archive)
end)

step("Restore from archival storage", {
  description = "5.1 step 1: python scripts/manage_historical_data.py --action restore --backup-file /backups/historical-DATE.tar.gz",
}, function()
  check(confirm(string.format("Restore the historical data from %s?", state.archive)), "restore declined")
  exec(mp.script(params, "manage_historical_data.py", "--action", "restore", "--backup-file", state.archive), mp.opts(params))
  state.restored = true
end)

step("Verify data integrity", {
  description = "5.1 step 2: python scripts/validate_catalog.py --historical-data analysis/reports/",
}, function()
  local r = exec(mp.script(params, "validate_catalog.py", "--historical-data", params.reports_dir),
                 mp.opts(params, { readonly = true, check = false }))
  state.integrity_ok = r.code == 0
  if not state.integrity_ok then
    notify.slack{ text = string.format("254Carbon historical data restored from %s FAILS its integrity check: %s",
      state.archive, (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$")) }
  end
  check(state.integrity_ok, "historical data integrity check failed (exit %d)", r.code)
end)

step("Regenerate missing reports", {
  description = "5.1 step 3: python scripts/analyze_quality_trends.py --regenerate-missing",
}, function()
  exec(mp.script(params, "analyze_quality_trends.py", "--regenerate-missing"), mp.opts(params))
end)
