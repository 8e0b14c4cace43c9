runbook {
  name        = "meta-platform/pre-change-backup",
  title       = "254Carbon meta: ad-hoc backup before a critical change",
  description = [[Before a major catalog change, copies catalog/service-index.yaml to
/backups/pre-change-TIMESTAMP.yaml; before a release train execution, release-trains.yaml to
/backups/pre-release-TIMESTAMP.yaml; then checks the copy's sha256 against the original.
000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.2 Manual Backup.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.2 Manual Backup",
  schedule    = "on demand",
  tags        = { "meta-platform", "backup" },
  mutates     = { "writes /backups/pre-change-TIMESTAMP.yaml or /backups/pre-release-TIMESTAMP.yaml" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    before       = { default = "catalog-change", choices = { "catalog-change", "release-train" },
                     help = "which change: a major catalog change, or a release train execution" },
    catalog_file = { default = "catalog/service-index.yaml", help = "backed up before catalog changes" },
    plan_file    = { default = "release-trains.yaml", help = "backed up before release train execution" },
    backup_root  = { default = "/backups", help = "where the copy goes" },
    stamp        = { default = "", help = "YYYYMMDD-HHMMSS (default: now, UTC)" },
  },
}

local mp = require "meta_platform"

step("Back up before the change", {
  description = "6.2: cp catalog/service-index.yaml /backups/pre-change-$(date +%Y%m%d-%H%M%S).yaml, or " ..
                "cp release-trains.yaml /backups/pre-release-$(date +%Y%m%d-%H%M%S).yaml",
}, function()
  local stamp = params.stamp ~= "" and params.stamp or os.date("!%Y%m%d-%H%M%S")
  local src, prefix = params.catalog_file, "pre-change-"
  if params.before == "release-train" then src, prefix = params.plan_file, "pre-release-" end
  state.source = mp.path(params, src)
  check(fs.exists(state.source), "%s does not exist: nothing to back up", state.source)
  state.copy = params.backup_root .. "/" .. prefix .. stamp .. ".yaml"
  fs.mkdir(params.backup_root, { parents = true })
  fs.copy(state.source, state.copy)
end)

step("Verify the copy", {
  description = "the copy's sha256 equals the original's",
  when = function() return fs.exists(state.copy) end,
}, function()
  local a, b = fs.sha256(state.source), fs.sha256(state.copy)
  check(a == b, "%s (%s) differs from %s (%s)", state.copy, b, state.source, a)
  state.sha256 = b
  log.info("%s: sha256 %s", state.copy, b)
end)
