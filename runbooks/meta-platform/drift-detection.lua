runbook {
  name        = "meta-platform/drift-detection",
  title       = "254Carbon meta: drift detection, with the drift-detection-timeout diagnosis",
  description = [[Runs `meta_cli.py drift detect` (bounded by the 30-minute symptom of 3.1 Scenario 3),
reads the drift report natively and grades it with the 8.2 thresholds (>5 issues warning,
>10 critical) and the critical issues (A.1 --critical-only). When detection fails or times
out it runs Scenario 3's diagnosis (GitHub API status and rate limit, collect_manifests.py
--dry-run, detect_drift.py --specs-repo --debug). Critical drift is posted and fails the run.
000_ec9a80fe7bc3b02e.txt › 1.1 Health Check Dashboard (drift), 3.1 Scenario 3: Drift Detection
Timeout, 8.2 Alert Thresholds, Appendix A.1.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 3: Drift Detection Timeout",
  schedule    = "daily",
  tags        = { "meta-platform", "health", "incident", "daily" },
  mutates     = { "rewrites the drift report (meta_cli.py drift detect, detect_drift.py)", "posts to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    drift_file   = { default = "analysis/reports/drift/latest_drift_report.json", help = "drift report written by `drift detect`" },
    specs_repo   = { default = "254carbon/254carbon-specs", help = "spec repository (3.1 Scenario 3)" },
    github_api   = { default = "https://api.github.com", help = "GitHub API" },
    github_token = { secret = true, default = "", help = "GitHub token (optional)" },
    max_minutes  = { type = "number", default = 30, help = "3.1 Scenario 3: drift detection taking longer is the timeout symptom" },
    warning      = { type = "number", default = 5, help = "8.2 Drift Issues warning: more than this many issues" },
    critical     = { type = "number", default = 10, help = "8.2 Drift Issues critical: more than this many issues" },
  },
}

local mp = require "meta_platform"

step("Detect drift", {
  description = "meta_cli.py drift detect --catalog-file catalog/service-index.yaml (stopped after max_minutes: 3.1 Scenario 3)",
}, function()
  local ok, r = pcall(function()
    return exec(mp.cli(params, "drift", "detect", "--catalog-file", params.catalog_file),
                { cwd = params.root, timeout = params.max_minutes * 60, check = false })
  end)
  if not ok then
    state.detect_failed = tostring(r)
  elseif r.code ~= 0 then
    state.detect_failed = string.format("exit %d: %s", r.code, (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
  if state.detect_failed then log.error("drift detection failed: %s", state.detect_failed) end
end)

step("Check GitHub API status and rate limit", {
  description = "3.1 Scenario 3 Diagnosis: curl -s https://api.github.com/zen; monitor rate limit usage " ..
                "(collect_manifests.py --dry-run, and GET /rate_limit)",
  when = function() return state.detect_failed ~= nil end,
}, function()
  local headers = {}
  if params.github_token ~= "" then headers.Authorization = "Bearer " .. params.github_token end
  local zen = http.get(params.github_api .. "/zen", { headers = headers, timeout = 30 })
  state.github_status = zen.status
  log.info("GitHub API /zen: HTTP %d %s", zen.status, zen.body:sub(1, 80))
  local rl = http.get(params.github_api .. "/rate_limit", { headers = headers, timeout = 30 })
  if rl.status == 200 then
    local core = (rl:json().resources or {}).core or {}
    state.rate_remaining, state.rate_limit = core.remaining, core.limit
    log[(core.remaining or 1) == 0 and "error" or "info"]("GitHub rate limit: %s of %s left",
      tostring(core.remaining), tostring(core.limit))
  end
  exec(mp.script(params, "collect_manifests.py", "--dry-run"), mp.opts(params, { readonly = true, check = false }))
end)

step("Check for large spec repositories", {
  description = "3.1 Scenario 3 Diagnosis: python scripts/detect_drift.py --specs-repo 254carbon/254carbon-specs --debug",
  when = function() return state.detect_failed ~= nil end,
}, function()
  local ok, r = pcall(function()
    return exec(mp.script(params, "detect_drift.py", "--specs-repo", params.specs_repo, "--debug"),
                { cwd = params.root, timeout = params.max_minutes * 60, check = false })
  end)
  state.debug_run_ok = ok and r.code == 0
  if state.rate_remaining == 0 then
    log.error("GitHub API rate limit exhausted: 3.1 Scenario 3 Resolution 1, use a token with higher rate limits")
  end
end)

step("Grade the drift report", {
  description = "8.2 Drift Issues: >5 warning, >10 critical; A.1 detect_drift.py --critical-only",
  when = function() return state.detect_failed == nil end,
}, function()
  local c = mp.drift_counts(mp.load_json(mp.path(params, params.drift_file)))
  state.drift_total, state.critical_drift, state.high_drift = c.total, c.critical, c.high
  state.critical_issues = c.critical_issues
  state.level = (c.total > params.critical or c.critical > 0) and "critical"
                or c.total > params.warning and "warning" or "ok"
  for _, i in ipairs(c.critical_issues) do log.warn("critical: %s", i) end
  log.info("drift: %d issue(s) (%d critical, %d high, %d moderate, %d low): %s", c.total, c.critical, c.high,
           c.moderate, c.low, state.level)
end)

step("Escalate drift", {
  description = "8.2 Action for drift: immediate remediation (critical); warning posted for the platform team",
  when = function() return state.detect_failed ~= nil or state.level == "critical" or state.level == "warning" end,
}, function()
  local text
  if state.detect_failed then
    text = string.format("254Carbon drift detection failed (%s); GitHub API HTTP %s, rate limit %s/%s left",
      state.detect_failed, tostring(state.github_status), tostring(state.rate_remaining), tostring(state.rate_limit))
  else
    text = string.format("254Carbon drift %s: %d issue(s), %d critical%s", state.level, state.drift_total,
      state.critical_drift, #state.critical_issues > 0 and ("\n- " .. table.concat(state.critical_issues, "\n- ")) or "")
  end
  notify.slack{ text = text }
end)

step("Expected output", {
  description = "1.1 expected: no critical drift issues detected; detection completed",
}, function()
  check(not state.detect_failed, "drift detection did not complete: %s", tostring(state.detect_failed))
  check(state.level ~= "critical", "critical drift: %d issue(s), %d critical", state.drift_total, state.critical_drift)
end)
