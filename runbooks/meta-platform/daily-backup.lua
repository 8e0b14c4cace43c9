runbook {
  name        = "meta-platform/daily-backup",
  title       = "254Carbon meta: daily backups (2:00 UTC)",
  description = [[Archives catalog/ + manifests/ and analysis/reports/, copies config/, and copies the
catalog to /backups/catalog/service-index-DATE.yaml (the file 5.1 recovery restores from,
which 6.1 itself does not write); then lists every archive (tar -tzf), records its sha256 in
/backups/SHA256SUMS and prunes old daily backups (keep_last; the document sets no retention).
000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.1 Automated Backups › Daily Backups.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.1 Automated Backups › Daily Backups",
  schedule    = "daily",
  tags        = { "meta-platform", "backup", "daily" },
  mutates     = { "writes /backups/catalog-DATE.tar.gz, historical-DATE.tar.gz, config-DATE/, catalog/service-index-DATE.yaml",
                  "appends to /backups/SHA256SUMS", "posts failed backups to Slack", "deletes daily backups beyond keep_last" },
  params = {
    root         = { default = ".", help = "the meta repository checkout (catalog/, manifests/, analysis/, config/)" },
    backup_root  = { default = "/backups", help = "where backups go" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog (copied for 5.1 recovery)" },
    date         = { default = "", help = "date stamp YYYYMMDD (default: today, UTC)" },
    keep_last    = { type = "number", default = 14, help = "daily backups of each kind to keep (not in the document)" },
  },
}

local backup = require "backup"
local mp = require "meta_platform"

local function archive(name) return params.backup_root .. "/" .. name end

-- a backup that fails is noted and the others still run; "Verify the
-- backups" reports and fails the run afterwards
local function attempt(what, fn)
  local ok, err = pcall(fn)
  if not ok then
    state.failures = state.failures or {}
    table.insert(state.failures, what .. ": " .. tostring(err))
    log.error("%s failed: %s", what, tostring(err))
  end
end

step("Back up catalog and manifests", {
  description = "6.1: tar -czf /backups/catalog-$(date +%Y%m%d).tar.gz catalog/ manifests/",
}, function()
  state.date = mp.datestamp(params.date)
  fs.mkdir(params.backup_root, { parents = true })
  state.archives = {}
  attempt("catalog and manifests", function()
    local path = archive("catalog-" .. state.date .. ".tar.gz")
    exec({ "tar", "-czf", path, "catalog/", "manifests/" }, { cwd = params.root, timeout = 3600 })
    state.archives[#state.archives + 1] = path
  end)
end)

step("Back up historical data", {
  description = "6.1: tar -czf /backups/historical-$(date +%Y%m%d).tar.gz analysis/reports/",
}, function()
  attempt("historical data", function()
    local path = archive("historical-" .. state.date .. ".tar.gz")
    exec({ "tar", "-czf", path, "analysis/reports/" }, { cwd = params.root, timeout = 3600 })
    state.archives[#state.archives + 1] = path
  end)
end)

step("Back up configuration", {
  description = "6.1: cp -r config/ /backups/config-$(date +%Y%m%d)/",
}, function()
  attempt("configuration", function()
    exec({ "cp", "-r", "config/", archive("config-" .. state.date .. "/") }, { cwd = params.root })
  end)
end)

step("Copy the catalog for recovery", {
  description = "the file 5.1 restores: /backups/catalog/service-index-YYYYMMDD.yaml",
}, function()
  attempt("catalog copy", function()
    fs.mkdir(archive("catalog"), { parents = true })
    state.catalog_copy = archive("catalog/service-index-" .. state.date .. ".yaml")
    fs.copy(mp.path(params, params.catalog_file), state.catalog_copy)
  end)
end)

step("Verify the backups", {
  description = "every archive lists cleanly (tar -tzf); its sha256 goes to /backups/SHA256SUMS",
}, function()
  local n = 0
  for _, path in ipairs(state.archives) do
    local line = mp.check_archive(path)
    if line then
      fs.append(archive("SHA256SUMS"), line)
      n = n + 1
    end
  end
  state.verified = n
  log.info("%d of %d archive(s) verified", n, #state.archives)
  if state.failures then
    notify.slack{ text = string.format("254Carbon daily backup %s: %d backup(s) FAILED: %s", state.date,
      #state.failures, table.concat(state.failures, "; ")) }
  end
  check(not state.failures, "%d backup(s) failed: %s", #(state.failures or {}), table.concat(state.failures or {}, "; "))
end)

step("Apply retention", {
  description = "keep the newest keep_last daily backups of each kind (config-DATE/ directories are not pruned: the backup module prunes files only)",
}, function()
  state.deleted = 0
  for _, pattern in ipairs({ "catalog-*.tar.gz", "historical-*.tar.gz", "catalog/service-index-*.yaml" }) do
    local p = backup.prune(archive(pattern), { keep_last = math.tointeger(params.keep_last) })
    state.deleted = state.deleted + #p.delete
    if #p.delete > 0 then log.info("%s: deleted %d old backup(s)", pattern, #p.delete) end
  end
end)
