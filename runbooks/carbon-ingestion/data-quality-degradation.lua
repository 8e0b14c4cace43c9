-- carbon-ingestion/data-quality-degradation: Issue 3 of the 254Carbon
-- ingestion platform's Operations Runbook.
--
--   runbook run carbon-ingestion/data-quality-degradation --dry-run
--   runbook run carbon-ingestion/data-quality-degradation --param hours=6 \
--       --param platform_dir=/srv/254carbon-ingestion

local ci = require "carbon_ingestion"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/data-quality-degradation",
  title       = "Data quality degradation (quality score < 0.7)",
  description = [[Reads the data quality report of the last 24 hours and the latest anomalies
from the data quality service (port 8514), finds the market/connector that drags the score down,
tests that connector's upstream source (scripts/connector_manager.py test), walks the operator
through the temporary mitigations (confirm() checkpoints: the document gives no command for them)
and escalates to the Data Team when the score is below 0.5.
002_f134cbc51c64e878.txt › Common Issues › Issue 3: Data Quality Degradation.]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 3: Data Quality Degradation",
  tags        = { "carbon-ingestion", "incident", "data-quality" },
  mutates     = { "escalates to the Data Team (email + Slack) when the score is below 0.5" },
  params = {
    quality_url   = { default = ci.quality_url, help = "the data quality service" },
    hours         = { type = "number", default = 24, help = "report window (quality/report?hours=24)" },
    anomaly_limit = { type = "number", default = 50, help = "anomalies to read (anomalies?limit=50)" },
    threshold     = { type = "number", default = ci.thresholds.quality_score,
                      help = "quality score under which the data is degraded" },
    escalate_below = { type = "number", default = ci.thresholds.quality_escalate,
                      help = "quality score under which the Data Team is called immediately" },
    platform_dir  = { default = ".", help = "checkout of the ingestion platform (for scripts/connector_manager.py)" },
    python        = { default = "python", help = "the Python interpreter for the platform's scripts" },
    dashboard     = { default = ci.grafana_quality, help = "the Grafana data quality dashboard" },
  },
}

local function get_json(path)
  local r = http.get(params.quality_url .. path, { timeout = 30 })
  check(r.status == 200, "GET %s%s: HTTP %d", params.quality_url, path, r.status)
  local ok, doc = pcall(json.decode, r.body)
  check(ok and type(doc) == "table", "GET %s%s: the answer is not JSON", params.quality_url, path)
  return doc
end

-- the source an anomaly belongs to (connector, else market)
local function source_of(a)
  return tostring(a.connector or a.source or a.market or "unknown")
end

step("Check data quality metrics", {
  description = "Issue 3 › Diagnosis: `curl http://localhost:8514/quality/report?hours=24`; " ..
                "Symptoms: quality score < 0.7.",
}, function()
  local doc = get_json(string.format("/quality/report?hours=%d", params.hours))
  local score, sources = ci.quality_report(doc)
  check(score ~= nil, "no quality score in %s/quality/report (expected quality_score or " ..
        "overall_quality_score)", params.quality_url)
  state.score = score
  state.degraded = score < params.threshold
  state.low_sources = {}
  for _, s in ipairs(sources) do
    log.info("  %-20s %s", s.name, s.score and string.format("%.2f", s.score) or "?")
    if s.score and s.score < params.threshold then state.low_sources[#state.low_sources + 1] = s.name end
  end
  log[state.degraded and "warn" or "info"]("quality score %.2f over the last %d h (threshold %.2f)",
    score, params.hours, params.threshold)
  log.info("dashboard: %s", params.dashboard)
end)

step("Check anomalies", {
  description = "Issue 3 › Diagnosis: `curl http://localhost:8514/anomalies?limit=50`; Symptoms: " ..
                "high anomaly detection rate, validation errors increasing.",
}, function()
  local doc = get_json(string.format("/anomalies?limit=%d", params.anomaly_limit))
  local list = doc[1] ~= nil and doc or doc.anomalies or doc.items or {}
  local by, order = {}, {}
  for _, a in ipairs(list) do
    local s = source_of(a)
    if not by[s] then by[s] = 0; order[#order + 1] = s end
    by[s] = by[s] + 1
  end
  table.sort(order, function(x, y) if by[x] ~= by[y] then return by[x] > by[y] end return x < y end)
  for _, s in ipairs(order) do log.info("  %-20s %d anomal%s", s, by[s], by[s] == 1 and "y" or "ies") end
  state.anomalies = #list
  state.anomaly_source = order[1]
  log.info("%d anomal%s in the latest %d", #list, #list == 1 and "y" or "ies", params.anomaly_limit)
end)

step("Identify source", {
  description = "Issue 3 › Resolution 1: which market/connector is affected (the lowest score, " ..
                "else the most anomalies), and its upstream source's health " ..
                "(`python scripts/connector_manager.py test <connector>`, Appendix).",
  when = function() return state.degraded end,
}, function()
  state.source = state.low_sources[1] or state.anomaly_source
  check(state.source ~= nil and state.source ~= "unknown",
        "quality score %.2f but no source stands out: look at %s", state.score, params.dashboard)
  log.warn("affected source: %s", state.source)
  local r = exec({ params.python, "scripts/connector_manager.py", "test", state.source:lower() },
                 { cwd = params.platform_dir, readonly = true, check = false, timeout = 300 })
  state.upstream_ok = r.code == 0
  for line in ((r.stdout or "") .. (r.stderr or "")):gmatch("[^\n]+") do log.info("connector test | %s", line) end
  log[state.upstream_ok and "info" or "warn"]("connector %s test: %s", state.source,
    state.upstream_ok and "passed (upstream healthy: look at the validation rules)" or
    "FAILED (upstream data source or extraction problem)")
end)

step("Temporary mitigation", {
  description = "Issue 3 › Resolution 2: disable the problematic connector if necessary, enable " ..
                "stricter validation rules, increase quality threshold alerts -- the document " ..
                "gives no command for these: each is a checkpoint the operator confirms.",
  when = function() return state.degraded end,
}, function()
  state.mitigation = {
    disable_connector = confirm(string.format(
      "Disable connector %s if necessary (upstream test %s). Done, or not needed?", state.source,
      state.upstream_ok and "passed" or "failed")),
    stricter_validation = confirm(
      "Enable stricter validation rules (configs/data_quality_rules.yaml). Done?"),
    threshold_alerts = confirm("Increase the quality threshold alerts. Done?"),
  }
  for k, v in pairs(state.mitigation) do
    if not v then log.warn("mitigation not done: %s", k) end
  end
end)

step("Long-term fix", {
  description = "Issue 3 › Resolution 3: contact the data provider, update validation rules, " ..
                "enhance the connector's error handling -- follow-up work, listed.",
  when = function() return state.degraded end,
}, function()
  if state.upstream_ok == false then
    log.warn("follow-up: contact the data provider of %s (External Contacts), enhance the " ..
             "connector's error handling", state.source)
  else
    log.warn("follow-up: update the validation rules if these are false positives " ..
             "(configs/data_quality_rules.yaml)")
  end
end)

step("Escalate to the Data Team", {
  description = "Issue 3 › Escalation: if quality score < 0.5, escalate to Data Team immediately " ..
                "(Escalation Decision Tree: data quality < 0.5 -> P2).",
  when = function() return state.score ~= nil and state.score < params.escalate_below end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = false, quality_score = state.score })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  escalation.notify(ci.level(leaf.level), {
    summary = string.format("data quality score %.2f over %d h (below %.2f), source %s", state.score,
                            params.hours, params.escalate_below, tostring(state.source)),
    details = { score = state.score, source = state.source, upstream_ok = state.upstream_ok,
                anomalies = state.anomalies, dashboard = params.dashboard,
                escalate_to = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion/data-quality/" .. tostring(state.source),
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "quality score %.2f: %s (%s)", state.score, leaf.action, ci.contact_line(leaf.team))
end)
