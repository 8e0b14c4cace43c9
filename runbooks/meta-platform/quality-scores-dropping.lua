runbook {
  name        = "meta-platform/quality-scores-dropping",
  title       = "254Carbon meta: quality scores dropping",
  description = [[Diagnoses dropping quality: detailed quality report (--debug), the last 7 days of
trends and the drift issues (the document's scripts), then, natively from the quality
snapshot, which services are below 70 and which of the four resolutions applies to each
(vulnerabilities, coverage, outdated dependencies, policy violations); posted to Slack.
000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 2: Quality Scores Dropping.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 2: Quality Scores Dropping",
  severity    = "P1",
  tags        = { "meta-platform", "incident", "P1" },
  mutates     = { "recomputes quality scores and the drift report", "posts the findings to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    quality_file = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot" },
    since        = { default = "7 days ago", help = "3.1 Scenario 2: analyze_quality_trends.py --since" },
    min_score    = { type = "number", default = 70, help = "Symptoms: multiple services show quality <70" },
    timeout      = { type = "number", default = 3600, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Generate detailed quality report", {
  description = "Diagnosis: python scripts/compute_quality.py --catalog-file catalog/service-index.yaml --debug",
}, function()
  exec(mp.script(params, "compute_quality.py", "--catalog-file", params.catalog_file, "--debug"), mp.opts(params))
  local snapshot = mp.load_json(mp.path(params, params.quality_file))
  local scores, min = mp.quality_scores(snapshot)
  state.quality_min = min
  state.below = mp.below(scores, params.min_score)
  state.causes = {}
  for _, s in ipairs(scores) do
    if s.score < params.min_score then
      local causes = mp.quality_causes((snapshot.services[s.service] or {}).metrics)
      state.causes[s.service] = #causes > 0 and table.concat(causes, ", ") or "no cause in the metrics: see the --debug report"
      log.warn("%s (%s): %s", s.service, tostring(s.score), state.causes[s.service])
    end
  end
end)

step("Check recent changes", {
  description = "Diagnosis: python scripts/analyze_quality_trends.py --since \"7 days ago\"",
}, function()
  local r = exec(mp.script(params, "analyze_quality_trends.py", "--since", params.since), mp.opts(params, { check = false }))
  for line in r.stdout:gmatch("[^\n]+") do
    if line:lower():find("down") or line:lower():find("declin") then log.warn("trend: %s", line) end
  end
end)

step("Review drift issues", {
  description = "Diagnosis: python scripts/detect_drift.py --catalog-file catalog/service-index.yaml",
}, function()
  exec(mp.script(params, "detect_drift.py", "--catalog-file", params.catalog_file), mp.opts(params, { check = false }))
end)

step("Post the resolution plan", {
  description = "Resolution 1-4: critical vulnerabilities, test coverage, outdated dependencies, policy violations, per service",
  when = function() return #(state.below or {}) > 0 end,
}, function()
  local names = {}
  for name in pairs(state.causes) do names[#names + 1] = name end
  table.sort(names)
  local lines = {}
  for _, n in ipairs(names) do lines[#lines + 1] = n .. ": " .. state.causes[n] end
  notify.slack{ text = string.format("254Carbon quality dropping: %d service(s) below %d\n- %s", #names,
    params.min_score, table.concat(lines, "\n- ")) }
end)
