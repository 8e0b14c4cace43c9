runbook {
  name        = "meta-platform/architecture-review",
  title       = "254Carbon meta: weekly architecture review (Wednesday 10:00 UTC)",
  description = [[Runs the architecture analysis, suggestions and graph-rule validation scripts, and
checks natively that the dependency graph follows the layering rules of config/rules.yaml
(a lower domain layer never depends on a higher one) and has no cycles. Violations go to
Slack and fail the run. 000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.3 Architecture Review.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.3 Architecture Review",
  schedule    = "weekly",
  tags        = { "meta-platform", "maintenance", "weekly" },
  mutates     = { "writes architecture reports and suggestions (analyze_architecture.py, architecture suggest)",
                  "posts violations to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    rules_file   = { default = "config/rules.yaml", help = "2.3: --rules-file (domain layers)" },
    timeout      = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

local function violation(fmt, ...)
  state.violations = state.violations or {}
  table.insert(state.violations, string.format(fmt, ...))
end

step("Analyze architecture patterns", {
  description = "2.3: python scripts/analyze_architecture.py --catalog-file catalog/service-index.yaml",
}, function()
  exec(mp.script(params, "analyze_architecture.py", "--catalog-file", params.catalog_file), mp.opts(params))
end)

step("Generate architecture suggestions", {
  description = "2.3: python scripts/meta_cli.py architecture suggest --catalog-file catalog/service-index.yaml",
}, function()
  local r = exec(mp.cli(params, "architecture", "suggest", "--catalog-file", params.catalog_file), mp.opts(params))
  local n = 0
  for line in r.stdout:gmatch("[^\n]+") do n = n + 1; if n <= 20 then log.info("suggestion: %s", line) end end
  state.suggestions = n
end)

step("Validate dependency graph rules", {
  description = "2.3: python scripts/validate_graph.py --catalog-file catalog/service-index.yaml --rules-file config/rules.yaml; " ..
                "natively: domain layering and cycles",
}, function()
  local catalog = mp.load_catalog(mp.path(params, params.catalog_file))
  local rules = mp.load_rules(mp.path(params, params.rules_file))
  for _, v in ipairs(mp.layer_violations(catalog.services, rules)) do violation("layering: %s", v.message) end
  for _, c in ipairs(mp.find_cycles(catalog.services)) do violation("cycle: %s", mp.format_cycle(c)) end
  local r = exec(mp.script(params, "validate_graph.py", "--catalog-file", params.catalog_file, "--rules-file", params.rules_file),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then
    violation("validate_graph.py exited %d: %s", r.code, (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
end)

step("Report violations", {
  description = "2.3 Expected Output: no architectural violations, the graph follows the layering rules",
  when = function() return #(state.violations or {}) > 0 end,
}, function()
  notify.slack{ text = string.format("254Carbon architecture review: %d violation(s)\n- %s", #state.violations,
                                     table.concat(state.violations, "\n- ")) }
  check(false, "%d architectural violation(s): %s", #state.violations, table.concat(state.violations, "; "))
end)
