-- carbon-ingestion/escalation: the Escalation Decision Tree of the 254Carbon
-- ingestion platform's Operations Runbook, as code.
--
--   runbook run carbon-ingestion/escalation --param summary="p95 latency 14 s" \
--       --param degradation=0.6
--
-- The facts the tree asks about are measured where the document says how
-- (service health: the Appendix's `curl -f http://localhost:$port/health`
-- loop; data quality: /quality/report) and given as params otherwise.

local ci = require "carbon_ingestion"
local escalation = require "escalation"
local health = require "health"

runbook {
  name        = "carbon-ingestion/escalation",
  title       = "Escalate an issue (decision tree -> severity P1-P4 -> contacts)",
  description = [[Walks the document's Escalation Decision Tree (service completely down? data
quality < 0.5? performance degraded > 50%? affecting users?) with facts measured from the platform
(the services' /health, the data quality score) or given as params, then notifies by the Severity
Levels table: P1 page (PagerDuty + Slack), P2 email + Slack, P3 Slack, P4 a ticket (a checkpoint).
002_f134cbc51c64e878.txt › Escalation Procedures › Escalation Decision Tree, Severity Levels,
Escalation Contacts.]],
  source      = "002_f134cbc51c64e878.txt › Escalation Procedures › Escalation Decision Tree",
  tags        = { "carbon-ingestion", "incident", "escalation" },
  mutates     = { "sends the notifications of the severity level (PagerDuty, email, Slack)" },
  params = {
    summary         = { default = "Issue detected", help = "what was detected, for the notification" },
    service_down    = { default = "auto", choices = { "auto", "yes", "no" },
                        help = "is a service completely down? auto: check the services' /health" },
    host            = { default = "localhost", help = "where the services' ports answer (auto)" },
    quality_score   = { type = "number", default = -1,
                        help = "the data quality score (0..1); -1: read it from the data quality service" },
    quality_url     = { default = ci.quality_url, help = "the data quality service" },
    degradation     = { type = "number", default = 0,
                        help = "how much performance is degraded (0..1); above 0.5 counts" },
    affecting_users = { type = "boolean", default = false, help = "is the issue affecting users?" },
  },
}

step("Is service completely down?", {
  description = "Escalation Decision Tree, question 1, from the Appendix's `for port in 8510 8511 " ..
                "8512 8513 8514; do curl -f http://localhost:$port/health; done` (or the param).",
}, function()
  state.facts = { quality_score = nil, performance_degraded = params.degradation > 0.5,
                  affecting_users = params.affecting_users }
  if params.service_down ~= "auto" then
    state.facts.service_down = params.service_down == "yes"
    return
  end
  local r = health.check(ci.health_endpoints(params.host), { timeout = 10 })
  health.report(r)
  state.down = r.down
  state.facts.service_down = #r.down > 0
end)

step("Is data quality < 0.5?", {
  description = "Escalation Decision Tree, question 2: the score of `curl " ..
                "http://localhost:8514/quality/report?hours=24` (or the param).",
  when = function() return not state.facts.service_down end,
}, function()
  if params.quality_score >= 0 then
    state.facts.quality_score = params.quality_score
    return
  end
  local ok, r = pcall(http.get, params.quality_url .. "/quality/report?hours=24", { timeout = 30 })
  local doc = ok and r.status == 200 and select(2, pcall(json.decode, r.body)) or nil
  local score = ci.quality_report(type(doc) == "table" and doc or nil)
  if score then
    state.facts.quality_score = score
    log.info("data quality score %.2f (last 24 h)", score)
  else
    log.warn("no data quality score (%s): this question counts as no",
             ok and ("HTTP " .. tostring(r.status)) or tostring(r))
  end
end)

step("Decide", {
  description = "Escalation Decision Tree: the path through the questions to P1-P4, and the " ..
                "Severity Levels row (response time, escalation).",
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, state.facts)
  for _, p in ipairs(path) do log.info("%s", p) end
  local row = ci.level(leaf.level)
  state.level, state.action, state.team, state.path = leaf.level, leaf.action, leaf.team, path
  log.warn("%s - %s (%s): %s; respond within %s, %s -> %s", leaf.level, row.title, row.description,
           leaf.action, row.response, row.escalation, ci.contact_line(leaf.team))
end)

step("Escalate", {
  description = "Severity Levels › Escalation: P1 immediate page, P2 email + Slack, P3 Slack " ..
                "(Escalation Contacts).",
  when = function() return state.level ~= "P4" end,
}, function()
  local sent = escalation.notify(ci.level(state.level), {
    summary = string.format("%s -- %s", params.summary, state.action),
    details = { path = state.path, down = state.down, quality_score = state.facts.quality_score,
                degradation = params.degradation, affecting_users = params.affecting_users,
                escalate_to = ci.contact_line(state.team) },
    dedup_key = "carbon-ingestion/escalation/" .. params.summary:lower():gsub("[^%w]+", "-"),
    source = ci.source,
  })
  state.sent = sent
  log.info("sent: %s", table.concat(sent, ", "))
end)

step("Create a ticket", {
  description = "Escalation Decision Tree › no: log issue -> P4: create ticket (Severity Levels: " ..
                "next business day) -- the document names no ticket system: a checkpoint.",
  when = function() return state.level == "P4" end,
}, function()
  state.ticket = confirm(string.format("P4: create a ticket for %q for the Platform Team (%s). Done?",
                                       params.summary, ci.contacts.platform.email))
end)
