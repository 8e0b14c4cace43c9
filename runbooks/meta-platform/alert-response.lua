runbook {
  name        = "meta-platform/alert-response",
  title       = "254Carbon meta: P0/P1 alert response",
  description = [[Runs the quick diagnostics (A.1), classifies the alert with the document's P0/P1
table (7.1, data in runbooks/lib/meta_platform.lua: P0 quality <60 or critical drift, P1
quality 60-70 or high drift), acknowledges it, assesses impact (dashboard, affected
services and owners), notifies per the level (P0 PagerDuty + Slack, P1 Slack), applies the
7.2 escalation triggers (multiple services, security vulnerability) and points remediation
at the troubleshooting guide. 000_ec9a80fe7bc3b02e.txt › 7. On-Call Runbook › 7.1 Alert
Response Procedures, 7.2 Escalation Procedures; Appendix A.1 Quick Diagnostics.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 7. On-Call Runbook › 7.1 Alert Response Procedures",
  severity    = "P0",
  tags        = { "meta-platform", "incident", "P0", "P1" },
  mutates     = { "recomputes quick quality scores and critical drift (A.1 scripts)",
                  "acknowledges the PagerDuty alert", "renders /tmp/incident-overview.md",
                  "pages / posts per the 7.1 level", "emails the security team on a vulnerability" },
  params = {
    root          = { default = ".", help = "the meta repository checkout" },
    python        = { default = "python", help = "Python interpreter" },
    catalog_file  = { default = "catalog/service-index.yaml", help = "the catalog" },
    quality_file  = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot" },
    drift_file    = { default = "analysis/reports/drift/latest_drift_report.json", help = "drift report" },
    overview_file = { default = "/tmp/incident-overview.md", help = "the dashboard rendered for the impact assessment" },
    dedup_key     = { default = "", help = "PagerDuty dedup key of the alert (acknowledged through PagerDuty; empty: confirm by hand)" },
    timeout       = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"
local escalation = require "escalation"

-- 7.1 "Begin remediation per troubleshooting guide": which section
local REMEDIATION = {
  ask = "critical drift detected?", test = { "critical_drift", ">", 0 },
  yes = { action = "3.1 Scenario 3 / drift report: run meta-platform/drift-detection, fix critical drift issues",
          runbook = "meta-platform/drift-detection" },
  no = {
    ask = "quality below 70?", test = { "quality_min", "<", 70 },
    yes = { action = "3.1 Scenario 2 Quality Scores Dropping: run meta-platform/quality-scores-dropping",
            runbook = "meta-platform/quality-scores-dropping" },
    no = { action = "3.1 troubleshooting guide: high drift -- review the drift report (meta-platform/drift-detection)",
           runbook = "meta-platform/drift-detection" },
  },
}

step("Quick diagnostics", {
  description = "A.1: meta_cli.py status; compute_quality.py --catalog-file catalog/service-index.yaml --quick; " ..
                "detect_drift.py --catalog-file catalog/service-index.yaml --critical-only",
}, function()
  local st = exec(mp.cli(params, "status"), mp.opts(params, { readonly = true, check = false }))
  for line in st.stdout:gmatch("[^\n]+") do log.info("status: %s", line) end
  exec(mp.script(params, "compute_quality.py", "--catalog-file", params.catalog_file, "--quick"), mp.opts(params))
  exec(mp.script(params, "detect_drift.py", "--catalog-file", params.catalog_file, "--critical-only"), mp.opts(params))
  local scores, min = mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))
  check(min ~= nil, "%s lists no quality scores: cannot classify the alert", params.quality_file)
  local drift = mp.drift_counts(mp.load_json(mp.path(params, params.drift_file)))
  local vulns = 0
  for _, s in ipairs(scores) do vulns = vulns + (s.critical_vulns or 0) end
  state.facts = { quality_min = min, critical_drift = drift.critical, high_drift = drift.high,
                  critical_vulns = vulns }
  state.below = mp.below(scores, mp.QUALITY.p1_below)
  state.critical_issues = drift.critical_issues
  -- affected services: below 70, or named by a critical/high drift issue
  local affected, seen = {}, {}
  for _, s in ipairs(scores) do
    if s.score < mp.QUALITY.p1_below and not seen[s.service] then seen[s.service] = true; affected[#affected + 1] = s.service end
  end
  for _, i in ipairs(mp.load_json(mp.path(params, params.drift_file)).issues or {}) do
    local sev = tostring(i.severity)
    if (mp.DRIFT_CRITICAL[sev] or mp.DRIFT_HIGH[sev]) and i.service and not seen[i.service] then
      seen[i.service] = true
      affected[#affected + 1] = tostring(i.service)
    end
  end
  table.sort(affected)
  state.affected = affected
end)

step("Classify the alert", {
  description = "7.1: P0 quality score <60 or critical drift (respond <30 min); P1 quality 60-70 or high drift (<2 h)",
}, function()
  local row, reason = escalation.classify(mp.SEVERITY, state.facts)
  state.level, state.reason = row.level, reason
  if row.level == "none" then
    log.info("no P0/P1 condition: lowest quality %s, %d critical / %d high drift issue(s)",
      tostring(state.facts.quality_min), state.facts.critical_drift, state.facts.high_drift)
  else
    log.warn("%s %s (%s): respond within %s", row.level, row.title, reason, row.response)
    for i, s in ipairs(row.steps) do log.info("  %d. %s", i, s) end
  end
end)

step("Acknowledge alert", {
  description = "7.1 P0/P1 step 1: acknowledge alert in monitoring system (PagerDuty acknowledge with the dedup key)",
  when = function() return state.level ~= "none" end,
}, function()
  if params.dedup_key ~= "" then
    notify.pagerduty{ action = "acknowledge", dedup_key = params.dedup_key,
                      summary = "acknowledged by meta-platform/alert-response" }
    state.acknowledged = "pagerduty"
  else
    check(confirm(string.format("%s alert: acknowledged in the monitoring system?", state.level)),
          "alert not acknowledged")
    state.acknowledged = "operator"
  end
end)

step("Assess impact", {
  description = "7.1 P0 step 2: assess impact using dashboard (report render); P1 step 2: investigate with the diagnostics above",
  when = function() return state.level ~= "none" end,
}, function()
  exec(mp.cli(params, "report", "render", "--report-type", "catalog", "--input-file", params.catalog_file,
              "--output-file", params.overview_file), mp.opts(params))
  local catalog = mp.load_catalog(mp.path(params, params.catalog_file))
  for _, name in ipairs(state.affected) do
    log.warn("affected: %s (owner %s)", name, mp.owner_of(catalog, name))
  end
  for _, i in ipairs(state.critical_issues) do log.warn("critical drift: %s", i) end
  log.info("dashboard: %s; %d service(s) affected", params.overview_file, #state.affected)
end)

step("Notify stakeholders", {
  description = "7.1 P0 step 3: notify stakeholders if service impact (P0: PagerDuty + Slack, P1: Slack)",
  when = function() return state.level ~= "none" and #state.affected > 0 end,
}, function()
  local row = escalation.classify(mp.SEVERITY, state.facts)
  state.notified = escalation.notify(row, {
    summary = string.format("254Carbon meta platform: %s; affected: %s", state.reason, table.concat(state.affected, ", ")),
    details = { facts = state.facts, affected = state.affected, below_70 = state.below,
                critical_drift = state.critical_issues, response = row.response },
    dedup_key = params.dedup_key ~= "" and params.dedup_key or ("meta-platform-" .. row.level),
    source = "meta-platform/alert-response",
  })
end)

step("Apply escalation triggers", {
  description = "7.2 Escalation Triggers: multiple services affected, security vulnerability detected " ..
                "(security contact of A.2); path: primary -> secondary -> team lead -> director",
  when = function() return state.level ~= "none" and (#state.affected > 1 or state.facts.critical_vulns > 0) end,
}, function()
  state.triggers = {}
  if #state.affected > 1 then state.triggers[#state.triggers + 1] = mp.ESCALATION_TRIGGERS[2] end
  if state.facts.critical_vulns > 0 then
    state.triggers[#state.triggers + 1] = mp.ESCALATION_TRIGGERS[4]
    escalation.notify(escalation.classify(mp.SEVERITY, state.facts), {
      summary = string.format("security vulnerability: %d critical vulnerability(ies) in the quality snapshot",
                              state.facts.critical_vulns),
      channels = { "email" }, email = { to = mp.CONTACTS.security.email },
    })
  end
  log.warn("escalation triggers: %s -> escalate to %s", table.concat(state.triggers, "; "), mp.ESCALATION_PATH[2])
end)

step("Begin remediation", {
  description = "7.1 P0 step 4: begin remediation per troubleshooting guide; P1 step 3: implement fix or remediation plan",
  when = function() return state.level ~= "none" end,
}, function()
  local leaf, path = escalation.decide(REMEDIATION, state.facts)
  for _, p in ipairs(path) do log.info("%s", p) end
  state.remediation = leaf.runbook
  log.warn("remediation: %s", leaf.action)
  local row = escalation.classify(mp.SEVERITY, state.facts)
  if row.status_every_min then
    log.warn("P0: update status every %d minutes until resolved (7.1 step 5)", row.status_every_min)
  end
  check(confirm(string.format("Remediation started (%s)?", leaf.runbook)), "remediation not started")
end)
