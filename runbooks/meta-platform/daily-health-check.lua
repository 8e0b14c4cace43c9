runbook {
  name        = "meta-platform/daily-health-check",
  title       = "254Carbon meta: daily health check dashboard (9:00 UTC)",
  description = [[Renders the platform overview, recomputes quality scores and drift, then
checks the document's expected output natively: every service scores >70 (from
catalog/latest_quality_snapshot.json), no critical drift (the drift report), no failing
GitHub Actions workflow in the last 24 hours. Service owners below 70 are alerted; the run
fails when an expectation is not met. 000_ec9a80fe7bc3b02e.txt › 1. Daily Operations ›
1.1 Health Check Dashboard.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 1. Daily Operations › 1.1 Health Check Dashboard",
  schedule    = "daily",
  tags        = { "meta-platform", "health", "daily" },
  mutates     = { "writes the overview report (/tmp/daily-overview.md)",
                  "recomputes quality scores and the drift report (meta_cli.py)",
                  "emails owners of services below 70, posts to Slack" },
  params = {
    root          = { default = ".", help = "the meta repository checkout (scripts/, catalog/)" },
    python        = { default = "python", help = "Python interpreter for scripts/meta_cli.py" },
    catalog_file  = { default = "catalog/service-index.yaml", help = "the catalog" },
    overview_file = { default = "/tmp/daily-overview.md", help = "where the overview dashboard is rendered" },
    quality_file  = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot written by `quality compute`" },
    drift_file    = { default = "analysis/reports/drift/latest_drift_report.json", help = "drift report written by `drift detect`" },
    min_score     = { type = "number", default = 70, help = "1.1: all services must score above this" },
    github_api    = { default = "https://api.github.com", help = "GitHub API" },
    github_repo   = { default = "254carbon/254carbon-meta", help = "repository whose workflows are checked; empty: skip" },
    github_token  = { secret = true, default = "", help = "GitHub token (optional; raises the rate limit)" },
    timeout       = { type = "number", default = 1800, help = "seconds per meta_cli.py command" },
  },
}

local mp = require "meta_platform"

step("Generate platform overview dashboard", {
  description = "1.1: meta_cli.py report render --report-type catalog --input-file catalog/service-index.yaml --output-file /tmp/daily-overview.md",
}, function()
  exec(mp.cli(params, "report", "render", "--report-type", "catalog", "--input-file", params.catalog_file,
              "--output-file", params.overview_file), mp.opts(params))
  log.info("overview dashboard: %s", params.overview_file)
end)

step("Check quality scores", {
  description = "1.1: meta_cli.py quality compute --catalog-file catalog/service-index.yaml; expected: all services >70",
}, function()
  exec(mp.cli(params, "quality", "compute", "--catalog-file", params.catalog_file), mp.opts(params))
  local scores, min = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  check(#scores > 0, "%s lists no service scores", params.quality_file)
  for _, s in ipairs(scores) do
    local level = mp.threshold_level("quality_score", s.score)
    if level then log.warn("%s: quality %s (8.2 %s)", s.service, tostring(s.score), level) end
  end
  state.quality_min = min
  state.below = mp.below(scores, params.min_score)
  log[#state.below > 0 and "warn" or "info"]("%d service(s), lowest score %s; below %d: %s", #scores,
    tostring(min), params.min_score, #state.below > 0 and table.concat(state.below, ", ") or "none")
end)

step("Detect drift issues", {
  description = "1.1: meta_cli.py drift detect --catalog-file catalog/service-index.yaml; expected: no critical drift",
}, function()
  exec(mp.cli(params, "drift", "detect", "--catalog-file", params.catalog_file), mp.opts(params))
  local c = mp.drift_counts(mp.load_json(mp.path(params, params.drift_file)))
  state.drift_total, state.critical_drift, state.high_drift = c.total, c.critical, c.high
  state.critical_issues = c.critical_issues
  for _, i in ipairs(c.critical_issues) do log.warn("critical drift: %s", i) end
  log.info("drift: %d issue(s), %d critical, %d high, %d moderate, %d low", c.total, c.critical, c.high,
           c.moderate, c.low)
end)

step("Check workflows of the last 24 hours", {
  description = "1.1 expected: no failing workflows in last 24 hours (GitHub Actions runs with status=failure)",
  when = function() return params.github_repo ~= "" end,
}, function()
  local since = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(now()) - 86400)
  local headers = { Accept = "application/vnd.github+json" }
  if params.github_token ~= "" then headers.Authorization = "Bearer " .. params.github_token end
  -- the query in the URL itself (not http's query option) so that it shows in the audit and in scenarios
  local r = http.get(string.format("%s/repos/%s/actions/runs?status=failure&created=%%3E%%3D%s", params.github_api,
                                   params.github_repo, (since:gsub(":", "%%3A"))), { headers = headers, timeout = 30 })
  check(r.status == 200, "GitHub %s: HTTP %d", params.github_repo, r.status)
  state.failed_workflows = {}
  for _, run in ipairs(r:json().workflow_runs or {}) do
    state.failed_workflows[#state.failed_workflows + 1] = tostring(run.name)
    log.warn("failed workflow %s at %s: %s", tostring(run.name), tostring(run.created_at), tostring(run.html_url))
  end
  local level = mp.threshold_level("build_failures", #state.failed_workflows)
  if level then
    log.warn("8.2 Build Failures %s: %d failed run(s) in 24 h -- %s", level, #state.failed_workflows,
             mp.ALERT_THRESHOLDS.build_failures.action)
  end
end)

step("Alert service owners for quality issues", {
  description = "1.1 Actions if Issues Found 3: alert service owners for quality issues <70",
  when = function() return #(state.below or {}) > 0 end,
}, function()
  local catalog = mp.load_catalog(mp.path(params, params.catalog_file))
  local owners = {}
  local scores = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  for _, s in ipairs(scores) do
    if s.score < params.min_score then
      local owner = mp.owner_of(catalog, s.service)
      owners[owner] = owners[owner] or {}
      table.insert(owners[owner], string.format("%s (%s)", s.service, tostring(s.score)))
    end
  end
  local sorted = {}
  for o in pairs(owners) do sorted[#sorted + 1] = o end
  table.sort(sorted)
  for _, owner in ipairs(sorted) do
    notify.email{ to = owner, subject = "254Carbon quality below " .. params.min_score,
                  body = "Services below the quality threshold: " .. table.concat(owners[owner], ", ") ..
                         "\n(000 › 1.1 Health Check Dashboard)" }
  end
  state.owners_alerted = sorted
end)

step("Report drift and workflow issues", {
  description = "1.1 Actions if Issues Found 1-2: review failing workflows in GitHub Actions, check the drift report for critical issues",
  when = function() return (state.critical_drift or 0) > 0 or #(state.failed_workflows or {}) > 0 end,
}, function()
  local lines = { "254Carbon daily health check: issues found" }
  if state.critical_drift > 0 then
    lines[#lines + 1] = string.format("critical drift (%d): %s", state.critical_drift,
                                      table.concat(state.critical_issues, "; "))
  end
  if #(state.failed_workflows or {}) > 0 then
    lines[#lines + 1] = "failing workflows: " .. table.concat(state.failed_workflows, ", ")
  end
  notify.slack{ text = table.concat(lines, "\n") }
end)

step("Expected output", {
  description = "1.1 Expected Output: all services >70, no critical drift, no failing workflows in 24 h",
}, function()
  local issues = {}
  if #state.below > 0 then issues[#issues + 1] = "quality below " .. params.min_score .. ": " .. table.concat(state.below, ", ") end
  if state.critical_drift > 0 then issues[#issues + 1] = state.critical_drift .. " critical drift issue(s)" end
  if #(state.failed_workflows or {}) > 0 then
    issues[#issues + 1] = #state.failed_workflows .. " failing workflow(s)"
  end
  state.healthy = #issues == 0
  check(state.healthy, "daily health check: %s", table.concat(issues, "; "))
  log.info("platform healthy: all services above %d, no critical drift, no failing workflows", params.min_score)
end)
