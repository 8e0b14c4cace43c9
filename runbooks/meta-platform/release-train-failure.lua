runbook {
  name        = "meta-platform/release-train-failure",
  title       = "254Carbon meta: release train execution fails",
  description = [[Diagnoses a FAILED release train: the execution logs (execute_release_train.py --dry-run),
the impact of the train's PR (analyze_impact.py), the upgrade PRs' pipelines
(monitor_upgrade_prs.py); natively, the participants' health (quality scores) and the
deployment order against the catalog's dependencies. Rollback is the operator's decision
(confirm); the findings are posted. 000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide ›
3.1 Scenario 4: Release Train Execution Fails.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 4: Release Train Execution Fails",
  tags        = { "meta-platform", "incident", "deploy" },
  mutates     = { "posts the findings to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    train_name   = { default = "Q4-upgrade", help = "the failed train (the document's example)" },
    pr           = { default = "", help = "the train's pull request number for analyze_impact.py (empty: skip)" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    plan_file    = { default = "release-trains.yaml", help = "the release plan holding the train" },
    quality_file = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot" },
    min_quality  = { type = "number", default = 80, help = "2.1: participants' quality threshold" },
    timeout      = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

local function finding(fmt, ...)
  state.findings = state.findings or {}
  table.insert(state.findings, string.format(fmt, ...))
end

step("Check execution logs", {
  description = "Diagnosis: python scripts/execute_release_train.py --train-name Q4-upgrade --dry-run",
}, function()
  local r = exec(mp.script(params, "execute_release_train.py", "--train-name", params.train_name, "--dry-run"),
                 mp.opts(params, { readonly = true, check = false }))
  for line in (r.stdout .. "\n" .. r.stderr):gmatch("[^\n]+") do
    if line:find("FAIL") or line:lower():find("error") then
      log.warn("%s", line)
      finding("execution: %s", line)
    end
  end
end)

step("Verify service dependencies", {
  description = "Diagnosis: python scripts/analyze_impact.py --pr 123 --catalog-file catalog/service-index.yaml; " ..
                "Resolution 3: proper service dependency order (natively, against the catalog)",
}, function()
  if params.pr ~= "" then
    exec(mp.script(params, "analyze_impact.py", "--pr", params.pr, "--catalog-file", params.catalog_file),
         mp.opts(params, { readonly = true, check = false }))
  end
  local plan_path = mp.path(params, params.plan_file)
  local train = fs.exists(plan_path) and mp.find_train(yaml.load(plan_path), params.train_name) or nil
  if not train then
    log.warn("%s has no train %s: participants unknown", params.plan_file, params.train_name)
    state.participants = {}
    return
  end
  state.participants = train.participants or {}
  local catalog = mp.load_catalog(mp.path(params, params.catalog_file))
  for _, msg in ipairs(mp.order_problems(state.participants, catalog)) do finding("order: %s", msg) end
end)

step("Verify prerequisite services are healthy", {
  description = "Resolution 1: verify all prerequisite services are healthy (their quality scores)",
}, function()
  local scores = {}
  for _, s in ipairs(mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))) do scores[s.service] = s.score end
  for _, p in ipairs(state.participants) do
    if scores[p] and scores[p] < params.min_quality then
      finding("health: %s quality %s below %d", p, tostring(scores[p]), params.min_quality)
    end
  end
end)

step("Check deployment pipeline status", {
  description = "Diagnosis: python scripts/monitor_upgrade_prs.py --train-name Q4-upgrade",
}, function()
  local r = exec(mp.script(params, "monitor_upgrade_prs.py", "--train-name", params.train_name),
                 mp.opts(params, { readonly = true, check = false }))
  for line in r.stdout:gmatch("[^\n]+") do
    if line:lower():find("fail") then finding("pipeline: %s", line) end
  end
end)

step("Report and decide on rollback", {
  description = "Resolution 2 (pipeline configuration) and 4 (manually trigger rollback if needed) are the operator's",
  when = function() return #(state.findings or {}) > 0 end,
}, function()
  notify.slack{ text = string.format("254Carbon release train %s failed: %d finding(s)\n- %s", params.train_name,
    #state.findings, table.concat(state.findings, "\n- ")) }
  state.rollback = confirm(string.format("Release train %s: trigger the rollback manually now?", params.train_name))
  log.warn("rollback %s by the operator", state.rollback and "chosen" or "not chosen")
end)
