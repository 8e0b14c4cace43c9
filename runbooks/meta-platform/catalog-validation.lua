runbook {
  name        = "meta-platform/catalog-validation",
  title       = "254Carbon meta: daily catalog validation (11:00 UTC)",
  description = [[Validates catalog/service-index.yaml twice: natively (yaml.load; required fields,
name/version formats, dependencies.internal as a list, external dependencies whitelisted in
config/rules.yaml, dependency cycles) and with the meta CLI (catalog validate --strict
--report, graph validate, collect manifests --dry-run). Problems go to Slack and fail the run.
000_ec9a80fe7bc3b02e.txt › 1. Daily Operations › 1.2 Catalog Validation (and 3.2 Manifest
Validation Errors for the checks).]],
  source      = "000_ec9a80fe7bc3b02e.txt › 1. Daily Operations › 1.2 Catalog Validation",
  schedule    = "daily",
  tags        = { "meta-platform", "health", "daily" },
  mutates     = { "posts validation problems to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    rules_file   = { default = "config/rules.yaml", help = "whitelist of external dependencies, required fields (built-in defaults when absent)" },
    timeout      = { type = "number", default = 1800, help = "seconds per meta_cli.py command" },
  },
}

local mp = require "meta_platform"

local function problem(fmt, ...)
  state.problems = state.problems or {}
  table.insert(state.problems, string.format(fmt, ...))
end

step("Parse the catalog", {
  description = "yaml.load of catalog/service-index.yaml: the file parses and has a services list",
}, function()
  state.catalog_path = mp.path(params, params.catalog_file)
  local ok, cat = pcall(mp.load_catalog, state.catalog_path)
  if not ok then
    problem("%s", (tostring(cat):gsub("^.-:%d+: ", "")))
    state.parsed = false
    return
  end
  state.parsed = true
  state.services = #cat.services
  log.info("%s: %d service(s)", params.catalog_file, #cat.services)
end)

step("Validate catalog structure", {
  description = "1.2: meta_cli.py catalog validate --catalog-file catalog/service-index.yaml --strict --report; " ..
                "natively: 3.2 missing required fields, invalid dependency format, whitelisted externals",
}, function()
  if state.parsed then
    local rules = mp.load_rules(mp.path(params, params.rules_file))
    local problems, warnings = mp.validate_catalog(mp.load_catalog(state.catalog_path), rules)
    for _, p in ipairs(problems) do problem("%s: %s", p.service, p.message) end
    for _, w in ipairs(warnings) do log.warn("%s: %s", w.service, w.message) end
  end
  local r = exec(mp.cli(params, "catalog", "validate", "--catalog-file", params.catalog_file, "--strict", "--report"),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then
    problem("meta_cli.py catalog validate --strict exited %d: %s", r.code,
            (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
end)

step("Validate dependency graph", {
  description = "1.2: meta_cli.py graph validate --catalog-file catalog/service-index.yaml; natively: no circular dependencies",
}, function()
  if state.parsed then
    local cycles = mp.find_cycles(mp.load_catalog(state.catalog_path).services)
    state.cycles = {}
    for _, c in ipairs(cycles) do
      state.cycles[#state.cycles + 1] = mp.format_cycle(c)
      problem("circular dependency: %s", mp.format_cycle(c))
    end
  end
  local r = exec(mp.cli(params, "graph", "validate", "--catalog-file", params.catalog_file),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then problem("meta_cli.py graph validate exited %d", r.code) end
end)

step("Check for missing manifests", {
  description = "1.2: meta_cli.py collect manifests --dry-run (expected: all services have valid manifests)",
}, function()
  local r = exec(mp.cli(params, "collect", "manifests", "--dry-run"), mp.opts(params, { readonly = true, check = false }))
  for line in r.stdout:gmatch("[^\n]+") do
    if line:lower():find("missing") or line:lower():find("error") then log.warn("%s", line) end
  end
  if r.code ~= 0 then problem("meta_cli.py collect manifests --dry-run exited %d", r.code) end
end)

step("Report validation problems", {
  description = "post the problems (3.2 shows how each is fixed in the service's manifest)",
  when = function() return #(state.problems or {}) > 0 end,
}, function()
  notify.slack{ text = string.format("254Carbon catalog validation: %d problem(s) in %s\n- %s",
    #state.problems, params.catalog_file, table.concat(state.problems, "\n- ")) }
end)

step("Expected output", {
  description = "1.2 Expected Output: valid manifests, no circular dependencies, external dependencies whitelisted",
}, function()
  state.valid = #(state.problems or {}) == 0
  check(state.valid, "catalog validation: %d problem(s): %s", #(state.problems or {}),
        table.concat(state.problems or {}, "; "))
  log.info("catalog valid: %d service(s), no cycles", state.services)
end)
