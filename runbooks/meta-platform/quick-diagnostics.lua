runbook {
  name        = "meta-platform/quick-diagnostics",
  title       = "254Carbon meta: emergency quick diagnostics",
  description = [[The emergency commands: platform status, a quick quality check, the blocking (critical)
drift issues, and -- only when the catalog does not parse or validate, after confirm -- the
emergency catalog rebuild (catalog build --force --debug).
000_ec9a80fe7bc3b02e.txt › Appendix A: Emergency Commands › A.1 Quick Diagnostics.]],
  source      = "000_ec9a80fe7bc3b02e.txt › Appendix A: Emergency Commands › A.1 Quick Diagnostics",
  tags        = { "meta-platform", "incident", "health" },
  mutates     = { "recomputes quick quality scores and the critical drift report",
                  "rebuilds the catalog when it is invalid (after confirm)" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    rules_file   = { default = "config/rules.yaml", help = "validation rules (built-in defaults when absent)" },
    quality_file = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot" },
    drift_file   = { default = "analysis/reports/drift/latest_drift_report.json", help = "drift report" },
    timeout      = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Platform health check", {
  description = "A.1: python scripts/meta_cli.py status",
}, function()
  local r = exec(mp.cli(params, "status"), mp.opts(params, { readonly = true, check = false }))
  for line in r.stdout:gmatch("[^\n]+") do log.info("%s", line) end
  state.status_code = r.code
end)

step("Quick quality check", {
  description = "A.1: python scripts/compute_quality.py --catalog-file catalog/service-index.yaml --quick",
}, function()
  exec(mp.script(params, "compute_quality.py", "--catalog-file", params.catalog_file, "--quick"), mp.opts(params))
  local scores, min = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  state.quality_min = min
  state.below = mp.below(scores, mp.QUALITY.min_score)
  log[#state.below > 0 and "warn" or "info"]("lowest quality %s; below %d: %s", tostring(min), mp.QUALITY.min_score,
    #state.below > 0 and table.concat(state.below, ", ") or "none")
end)

step("Check for blocking issues", {
  description = "A.1: python scripts/detect_drift.py --catalog-file catalog/service-index.yaml --critical-only",
}, function()
  exec(mp.script(params, "detect_drift.py", "--catalog-file", params.catalog_file, "--critical-only"), mp.opts(params))
  local c = mp.drift_counts(mp.load_json(mp.path(params, params.drift_file)))
  state.critical_drift = c.critical
  for _, i in ipairs(c.critical_issues) do log.warn("blocking: %s", i) end
end)

step("Check the catalog", {
  description = "does catalog/service-index.yaml parse and validate (decides the emergency rebuild)",
}, function()
  local ok, cat = pcall(mp.load_catalog, mp.path(params, params.catalog_file))
  state.catalog_problems = {}
  if not ok then
    state.catalog_problems[1] = (tostring(cat):gsub("^.-:%d+: ", ""))
  else
    for _, p in ipairs(mp.validate_catalog(cat, mp.load_rules(mp.path(params, params.rules_file)))) do
      state.catalog_problems[#state.catalog_problems + 1] = p.service .. ": " .. p.message
    end
  end
  for _, p in ipairs(state.catalog_problems) do log.error("catalog: %s", p) end
end)

step("Emergency catalog rebuild", {
  description = "A.1: python scripts/meta_cli.py catalog build --force --debug (only when the catalog is invalid)",
  when = function() return #state.catalog_problems > 0 end,
}, function()
  check(confirm("The catalog is invalid: run the emergency rebuild (catalog build --force --debug)?"), "rebuild declined")
  exec(mp.cli(params, "catalog", "build", "--force", "--debug"), mp.opts(params))
  state.rebuilt = true
end)
