runbook {
  name        = "meta-platform/quality-assessment",
  title       = "254Carbon meta: weekly comprehensive quality assessment (Tuesday 14:00 UTC)",
  description = [[Computes detailed quality scores with the thresholds file, posts the quality summary
report, checks natively that every catalog service has a score, and creates quality issues
(create_quality_issues.py) only when services score below 70.
000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.2 Comprehensive Quality Assessment.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.2 Comprehensive Quality Assessment",
  schedule    = "weekly",
  tags        = { "meta-platform", "maintenance", "weekly" },
  mutates     = { "recomputes quality scores (compute_quality.py)", "posts the summary (post_quality_summary.py)",
                  "creates GitHub issues for services below 70 (create_quality_issues.py)" },
  params = {
    root            = { default = ".", help = "the meta repository checkout" },
    python          = { default = "python", help = "Python interpreter" },
    catalog_file    = { default = "catalog/service-index.yaml", help = "the catalog" },
    thresholds_file = { default = "config/thresholds.yaml", help = "2.2: --thresholds-file" },
    summary_file    = { default = "analysis/reports/quality-summary.md", help = "2.2: the summary posted" },
    quality_file    = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot written by compute_quality.py" },
    min_score       = { type = "number", default = 70, help = "2.2: issues for services <70" },
    timeout         = { type = "number", default = 3600, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Compute detailed quality scores", {
  description = "2.2: python scripts/compute_quality.py --catalog-file catalog/service-index.yaml --thresholds-file config/thresholds.yaml",
}, function()
  exec(mp.script(params, "compute_quality.py", "--catalog-file", params.catalog_file,
                 "--thresholds-file", params.thresholds_file), mp.opts(params))
  local scores, min = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  local have = {}
  for _, s in ipairs(scores) do have[s.service] = true end
  state.missing = {}
  for _, svc in ipairs(mp.load_catalog(mp.path(params, params.catalog_file)).services) do
    if type(svc) == "table" and svc.name and not have[svc.name] then state.missing[#state.missing + 1] = svc.name end
  end
  state.quality_min = min
  state.below = mp.below(scores, params.min_score)
  log.info("%d score(s), lowest %s; below %d: %s", #scores, tostring(min), params.min_score,
           #state.below > 0 and table.concat(state.below, ", ") or "none")
  check(#state.missing == 0, "2.2 expected all services scored; no score for: %s", table.concat(state.missing, ", "))
end)

step("Generate quality summary report", {
  description = "2.2: python scripts/post_quality_summary.py --quality-file analysis/reports/quality-summary.md",
}, function()
  exec(mp.script(params, "post_quality_summary.py", "--quality-file", params.summary_file), mp.opts(params))
end)

step("Create quality issues for failing services", {
  description = "2.2: python scripts/create_quality_issues.py --catalog-file catalog/service-index.yaml (services <70)",
  when = function() return #(state.below or {}) > 0 end,
}, function()
  exec(mp.script(params, "create_quality_issues.py", "--catalog-file", params.catalog_file), mp.opts(params))
  state.issues_for = state.below
end)
