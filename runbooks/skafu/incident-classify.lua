runbook {
  name        = "skafu/incident-classify",
  title       = "Skafu: detect, classify (P0-P3) and notify an incident",
  description = [[Incident Response playbook Step 1 (Detection) and the first part of Step 2:
reads what the automation sees (CloudWatch alarms in ALARM, the five critical ECS services,
the database's status), adds what the operator observed (--param observed=data_breach,...),
classifies with the document's Incident Classification table (runbooks/lib/skafu.lua) and
notifies the response team on the level's channels. 003_8c25f41fdd75a5fb.txt › Incident
Response › Incident Classification; Incident Response Playbook › Step_1_Detection.]],
  source      = "003_8c25f41fdd75a5fb.txt › Incident Response › Incident Classification; Incident Response Playbook",
  tags        = { "skafu", "incident" },
  mutates     = { "sends the incident notification (PagerDuty, Slack or the ticket e-mail, per level)" },
  params = {
    region      = { default = "us-east-1", help = "AWS region (the document names none)" },
    cluster     = { default = "skafu-production", help = "ECS cluster of the critical services (not in the document)" },
    db_instance = { default = "skafu-production", help = "RDS instance identifier (not in the document)" },
    services    = { type = "list", default = { "project-management-api", "template-management-api",
                    "ai-integration-service", "github-integration-service", "observability-service" },
                    help = "the critical services (Monitoring Dashboard Review › checkSystemHealth)" },
    detect      = { type = "boolean", default = true, help = "read alarms, services and database (false: only the operator's facts)" },
    observed    = { type = "list", default = {}, help = "what the operator observed, as fact names: " ..
                    "all_apis_5xx auth_compromised data_breach significant_degradation " ..
                    "noncritical_endpoints_erroring minor_ui_issues ui_styling_issues " ..
                    "noncritical_log_errors documentation_gaps optimization_opportunities ..." },
    p95_ms         = { type = "number", default = 0, help = "API P95 response time seen, ms (0: unknown)" },
    error_rate_pct = { type = "number", default = 0, help = "error rate seen, % (0: unknown)" },
    summary     = { default = "", help = "one line describing the incident (default: the classification reason)" },
    incident_id = { default = "", help = "incident id (default skafu-YYYYMMDD-HHMM)" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

step("Acknowledge the incident", {
  description = "Step_1_Detection › initial_actions: acknowledge the incident (give it an id).",
}, function()
  state.incident_id = params.incident_id ~= "" and params.incident_id or
                      ("skafu-" .. os.date("!%Y%m%d-%H%M", math.floor(now())))
  state.facts = skafu.base_facts()
  state.findings = {}
  local known = skafu.base_facts()
  for _, f in ipairs(params.observed) do
    check(type(known[f]) == "boolean", "observed: unknown fact %q (see runbooks/lib/skafu.lua, matrix)", f)
    state.facts[f] = true
    state.findings[#state.findings + 1] = "observed: " .. f
  end
  if params.p95_ms > 0 then state.facts.p95_ms = params.p95_ms end
  if params.error_rate_pct > 0 then state.facts.error_rate_pct = params.error_rate_pct end
  log.info("incident %s", state.incident_id)
end)

step("Automated detection: CloudWatch alarms", {
  description = "Step_1_Detection › automated_detection › CloudWatch alarms: " ..
                "`aws cloudwatch describe-alarms --state-value ALARM`.",
  when = function() return params.detect end,
}, function()
  local r = skafu.aws(params.region, { "cloudwatch", "describe-alarms", "--state-value", "ALARM" })
  state.alarms = {}
  for _, a in ipairs(r.MetricAlarms or {}) do
    state.alarms[#state.alarms + 1] = a.AlarmName
    log.warn("ALARM %s: %s", a.AlarmName, a.StateReason or "")
  end
  for _, a in ipairs(r.CompositeAlarms or {}) do
    state.alarms[#state.alarms + 1] = a.AlarmName
    log.warn("ALARM %s (composite)", a.AlarmName)
  end
  if #state.alarms == 0 then log.info("no CloudWatch alarm in ALARM") end
end)

step("Automated detection: health check failures", {
  description = "Step_1_Detection › Health check failures: the critical services " ..
                "(`aws ecs describe-services`) and the database (`aws rds describe-db-instances`).",
  when = function() return params.detect end,
}, function()
  local fact_of = {}
  for _, s in ipairs(skafu.SERVICES) do fact_of[s.name] = s.fact end
  local rows = skafu.ecs_services(params.region, params.cluster, params.services)
  local healthy = 0
  state.affected = {}
  for _, s in ipairs(rows) do
    if s.healthy then
      healthy = healthy + 1
    else
      state.affected[#state.affected + 1] = s.service
      state.findings[#state.findings + 1] = string.format("%s: %d/%d running (%s)", s.service, s.running,
                                                          s.desired, s.status)
      if fact_of[s.service] then state.facts[fact_of[s.service]] = true end
      log.warn("%s: %d of %d tasks running, status %s", s.service, s.running, s.desired, s.status)
    end
  end
  local pct = #rows > 0 and healthy / #rows * 100 or 100
  state.facts.overall_status = skafu.overall_status(pct)
  if #rows > 0 and healthy == 0 then state.facts.complete_outage = true end
  state.availability_pct = pct
  log.info("service availability %.0f%% (%s)", pct, state.facts.overall_status)

  local db = skafu.db_instance(params.region, params.db_instance)
  local status = db and db.DBInstanceStatus or "not found"
  state.db_status = status
  if not skafu.DB_UP[status] then
    state.facts.database_unavailable = true
    state.findings[#state.findings + 1] = string.format("database %s: %s", params.db_instance, status)
    log.error("database %s is %s", params.db_instance, status)
  else
    log.info("database %s is %s", params.db_instance, status)
  end
end)

step("Assess severity level", {
  description = "Step_1_Detection › initial_actions: assess severity level, with the " ..
                "Incident_Classifications table (P0 Critical .. P3 Low).",
}, function()
  local row, reason = escalation.classify(skafu.matrix(), state.facts)
  if reason == "default" then reason = "no P0-P2 criterion holds" end
  state.level = row.level
  state.reason = reason
  state.response_time = row.response
  log[row.level <= "P1" and "warn" or "info"]("%s %s (%s): %s — respond within %s, escalate after %s; stakeholders: %s; %s",
    row.level, row.title, row.description, reason, row.response, row.escalation_time,
    table.concat(row.stakeholders, ", "), row.communication)
end)

step("Notify response team", {
  description = "Step_1_Detection › initial_actions: notify response team, on the level's " ..
                "channels (P0/P1 PagerDuty and Slack, P2 Slack, P3 the ticket system by e-mail).",
}, function()
  local row
  for _, r in ipairs(skafu.matrix()) do if r.level == state.level then row = r end end
  local summary = params.summary ~= "" and params.summary or
                  string.format("Skafu incident %s: %s", state.incident_id, state.reason)
  state.notified = escalation.notify(row, {
    summary = summary,
    details = { incident = state.incident_id, reason = state.reason, findings = state.findings,
                alarms = state.alarms, affected = state.affected,
                stakeholders = table.concat(row.stakeholders, ", "),
                response_time = row.response, communication = row.communication },
    dedup_key = state.incident_id,
    source = "skafu/incident-classify",
  })
end)

step("Create incident channel and update status page", {
  description = "Step_1_Detection › initial_actions: create incident channel; Incident " ..
                "Classification › communication (P0 immediate status page update, P1 within " ..
                "1 hour): human checkpoints.",
  when = function() return state.level == "P0" or state.level == "P1" end,
}, function()
  state.channel_created = confirm(string.format("Incident channel for %s created and the response team in it?",
                                                state.incident_id))
  state.status_page = confirm(string.format("%s: status page updated (%s)?", state.level,
    state.level == "P0" and "Immediate status page update" or "Status page update within 1 hour"))
  if not (state.channel_created and state.status_page) then
    log.warn("communication not done yet: do it now, the %s response time is %s", state.level, state.response_time)
  end
end)
