runbook {
  name        = "meta-platform/catalog-recovery",
  title       = "254Carbon meta: recover a corrupted or lost catalog",
  description = [[Catalog corruption or loss: restore catalog/service-index.yaml from the newest
backup in /backups/catalog that parses (the document copies yesterday's), validate it
(natively and with `catalog validate --strict`), rebuild with `catalog build --force` when
it is still invalid, then verify the quality scores. The corrupted file is kept beside the
catalog. 000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.1 Data Recovery Procedures ›
Scenario: Catalog corruption or loss.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.1 Data Recovery Procedures › Catalog corruption or loss",
  tags        = { "meta-platform", "dr" },
  mutates     = { "replaces catalog/service-index.yaml with a backup (after confirm)",
                  "rebuilds the catalog (meta_cli.py catalog build --force)", "recomputes quality scores",
                  "posts to Slack when the catalog cannot be recovered" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog to recover" },
    backup_dir   = { default = "/backups/catalog", help = "where daily catalog backups are (service-index-YYYYMMDD.yaml)" },
    backup       = { default = "", help = "restore this backup file (default: the newest that parses)" },
    rules_file   = { default = "config/rules.yaml", help = "validation rules (built-in defaults when absent)" },
    quality_file = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot written by `quality compute`" },
    force        = { type = "boolean", default = false, help = "restore even when the current catalog validates" },
    timeout      = { type = "number", default = 1800, help = "seconds per meta_cli.py command" },
  },
}

local mp = require "meta_platform"
local backup = require "backup"

-- problems of a catalog file, natively: {} when it parses and validates
local function native_problems(path)
  local ok, cat = pcall(mp.load_catalog, path)
  if not ok then return { (tostring(cat):gsub("^.-:%d+: ", "")) } end
  local out = {}
  for _, p in ipairs(mp.validate_catalog(cat, mp.load_rules(mp.path(params, params.rules_file)))) do
    out[#out + 1] = p.service .. ": " .. p.message
  end
  for _, c in ipairs(mp.find_cycles(cat.services)) do out[#out + 1] = "circular dependency: " .. mp.format_cycle(c) end
  return out
end

-- native problems plus `meta_cli.py catalog validate --strict`
local function validate(label)
  local problems = native_problems(state.catalog)
  local r = exec(mp.cli(params, "catalog", "validate", "--catalog-file", params.catalog_file, "--strict"),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then
    problems[#problems + 1] = string.format("catalog validate --strict exited %d: %s", r.code,
      (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
  for _, p in ipairs(problems) do log.warn("%s: %s", label, p) end
  return problems
end

step("Assess the current catalog", {
  description = "is catalog/service-index.yaml there, does it parse and validate?",
}, function()
  state.catalog = mp.path(params, params.catalog_file)
  state.current_problems = native_problems(state.catalog)
  state.corrupt = #state.current_problems > 0
  if state.corrupt then
    log.error("%s: %s", params.catalog_file, table.concat(state.current_problems, "; "))
  else
    log.info("%s parses and validates", params.catalog_file)
  end
end)

step("Find the latest backup", {
  description = "5.1 step 1: /backups/catalog/service-index-YYYYMMDD.yaml -- the newest that parses",
  when = function() return state.corrupt or params.force end,
}, function()
  if params.backup ~= "" then
    check(#native_problems(params.backup) == 0 or confirm(string.format(
      "%s does not validate: %s. Restore it anyway?", params.backup, table.concat(native_problems(params.backup), "; "))),
      "backup %s refused", params.backup)
    state.backup = params.backup
    return
  end
  local all = mp.by_name_desc(backup.list(params.backup_dir .. "/service-index-*.yaml"))
  for _, b in ipairs(all) do
    local ok = pcall(mp.load_catalog, b.path)
    log[ok and "info" or "warn"]("%s  %d bytes  %s", b.name, b.size, ok and "parses" or "does not parse")
    if ok and not state.backup then state.backup = b.path end
  end
  if not state.backup then
    log.error("no usable backup of the catalog in %s: it will be rebuilt", params.backup_dir)
  end
end)

step("Restore from backup", {
  description = "5.1 step 1: cp /backups/catalog/service-index-DATE.yaml catalog/service-index.yaml " ..
                "(the current file is kept as service-index.yaml.corrupt-TIME)",
  when = function() return state.backup ~= nil end,
}, function()
  check(confirm(string.format("Replace %s with %s?", params.catalog_file, state.backup)),
        "restore declined by the operator")
  if fs.exists(state.catalog) then
    state.kept = state.catalog .. ".corrupt-" .. os.date("!%Y%m%dT%H%M%SZ")
    fs.copy(state.catalog, state.kept)
  end
  fs.copy(state.backup, state.catalog)
  state.restored = true
  log.info("restored %s from %s", params.catalog_file, state.backup)
end)

step("Validate restored catalog", {
  description = "5.1 step 2: meta_cli.py catalog validate --catalog-file catalog/service-index.yaml --strict",
  when = function() return state.restored == true end,
}, function()
  state.restored_problems = validate("restored catalog")
  state.valid = #state.restored_problems == 0
end)

step("Rebuild if validation fails", {
  description = "5.1 step 3: meta_cli.py catalog build --force (no usable backup, or the restored one is invalid)",
  when = function() return (state.corrupt or params.force) and not state.valid end,
}, function()
  exec(mp.cli(params, "catalog", "build", "--force"), mp.opts(params))
  state.rebuilt = true
  state.rebuilt_problems = validate("rebuilt catalog")
  state.valid = #state.rebuilt_problems == 0
  if not state.valid then
    notify.slack{ text = string.format("254Carbon catalog recovery FAILED: %s is invalid after restore and rebuild: %s",
      params.catalog_file, table.concat(state.rebuilt_problems, "; ")) }
  end
  check(state.valid, "catalog still invalid after catalog build --force: %s", table.concat(state.rebuilt_problems, "; "))
end)

step("Verify quality scores", {
  description = "5.1 step 4: meta_cli.py quality compute --catalog-file catalog/service-index.yaml",
}, function()
  exec(mp.cli(params, "quality", "compute", "--catalog-file", params.catalog_file), mp.opts(params))
  local scores, min = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  check(#scores > 0, "%s lists no quality scores", params.quality_file)
  state.quality_min = min
  local below = mp.below(scores, mp.QUALITY.min_score)
  log[#below > 0 and "warn" or "info"]("quality computed for %d service(s); below %d: %s", #scores,
    mp.QUALITY.min_score, #below > 0 and table.concat(below, ", ") or "none")
end)
