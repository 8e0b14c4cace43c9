runbook {
  name        = "meta-platform/restore-from-backup",
  title       = "254Carbon meta: restore catalog, manifests and configuration from a daily backup",
  description = [[Restores the daily backup of a date (default: the newest): stops operations
(systemctl stop meta-services, commented out in the document: set `unit` to run it, else a
checkpoint), checks the archive against /backups/SHA256SUMS and lists it, extracts
catalog-DATE.tar.gz into the checkout (it holds catalog/ and manifests/), copies
config-DATE/ over config/, validates the catalog (strict, and natively) and restarts.
000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.3 Restore Procedures.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 6. Backup/Restore Procedures › 6.3 Restore Procedures",
  tags        = { "meta-platform", "dr", "backup" },
  mutates     = { "stops and starts the meta services (systemd, when unit is set)",
                  "overwrites catalog/, manifests/ and config/ from the backup (after confirm)",
                  "posts an invalid restore to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    backup_root  = { default = "/backups", help = "where the daily backups are" },
    date         = { default = "", help = "backup date YYYYMMDD (the document's example: 20250106; default: the newest)" },
    unit         = { default = "", help = "systemd unit to stop/start (the document's commented-out meta-services); empty: confirm instead" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the restored catalog, validated" },
    rules_file   = { default = "config/rules.yaml", help = "validation rules (built-in defaults when absent)" },
    timeout      = { type = "number", default = 1800, help = "seconds per command" },
  },
}

local backup = require "backup"
local mp = require "meta_platform"

step("Pick the backup", {
  description = "/backups/catalog-DATE.tar.gz and /backups/config-DATE/ (6.3 uses 20250106)",
}, function()
  local date = params.date
  if date == "" then
    local all = mp.by_name_desc(backup.list(params.backup_root .. "/catalog-*.tar.gz"))
    check(#all > 0, "no catalog-*.tar.gz in %s", params.backup_root)
    date = all[1].name:match("^catalog%-(%d+)%.tar%.gz$") or ""
  end
  state.date = date
  state.archive = params.backup_root .. "/catalog-" .. date .. ".tar.gz"
  state.config = params.backup_root .. "/config-" .. date
  check(fs.exists(state.archive), "%s does not exist", state.archive)
  state.has_config = fs.exists(state.config)
  if not state.has_config then log.warn("%s does not exist: configuration is not restored", state.config) end
  local sums = params.backup_root .. "/SHA256SUMS"
  if fs.exists(sums) then backup.verify(state.archive, sums) end
  mp.check_archive(state.archive)
  log.info("restoring the backup of %s", date)
end)

step("Stop all operations", {
  description = "6.3: # systemctl stop meta-services",
}, function()
  check(confirm(string.format("Restore the %s backup over %s (catalog/, manifests/, config/)?", state.date, params.root)),
        "restore declined")
  if params.unit ~= "" then
    exec({ "systemctl", "stop", params.unit })
    state.stopped = true
  else
    check(confirm("All meta operations (scheduled jobs, CI runs against the catalog) stopped?"), "operations not stopped")
  end
end)

step("Restore catalog", {
  description = "6.3: cp /backups/catalog-DATE.tar.gz catalog/ && cd catalog && tar -xzf (the archive holds " ..
                "catalog/ and manifests/, so it is extracted in the checkout: tar -xzf ARCHIVE -C ROOT)",
}, function()
  exec({ "tar", "-xzf", state.archive, "-C", params.root }, { timeout = params.timeout })
end)

step("Restore configuration", {
  description = "6.3: cp -r /backups/config-DATE/* config/",
  when = function() return state.has_config end,
}, function()
  exec({ "cp", "-r", state.config .. "/.", mp.path(params, "config") .. "/" })
end)

step("Validate restored data", {
  description = "6.3: python scripts/meta_cli.py catalog validate --strict; natively: parse, validate, no cycles",
}, function()
  local problems = {}
  local ok, cat = pcall(mp.load_catalog, mp.path(params, params.catalog_file))
  if not ok then
    problems[1] = (tostring(cat):gsub("^.-:%d+: ", ""))
  else
    for _, p in ipairs(mp.validate_catalog(cat, mp.load_rules(mp.path(params, params.rules_file)))) do
      problems[#problems + 1] = p.service .. ": " .. p.message
    end
    for _, c in ipairs(mp.find_cycles(cat.services)) do problems[#problems + 1] = "cycle: " .. mp.format_cycle(c) end
  end
  local r = exec(mp.cli(params, "catalog", "validate", "--strict"), mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then problems[#problems + 1] = string.format("catalog validate --strict exited %d", r.code) end
  state.valid = #problems == 0
  if not state.valid then
    notify.slack{ text = string.format("254Carbon restore of %s: the restored data does not validate, services left stopped\n- %s",
      state.date, table.concat(problems, "\n- ")) }
  end
  check(state.valid, "restored data invalid: %s", table.concat(problems, "; "))
end)

step("Restart services", {
  description = "6.3: # systemctl start meta-services",
  when = function() return state.stopped == true end,
}, function()
  exec({ "systemctl", "start", params.unit })
  exec({ "systemctl", "is-active", params.unit })
end)
