runbook {
  name        = "skafu/post-incident-review",
  title       = "Skafu: post-incident review record",
  description = [[Post_Incident_Review_Process: checks the review is within 48 hours of resolution (an
overdue one is flagged to the team), lists the participants (Customer Success when
customer-impacting), writes the review document from the template in runbooks/lib/skafu.lua
(review areas, action items, follow-up) filled from the params, and tells the participants.
The severity is given, or classified from the observed facts with the Incident Classification
table. 003_8c25f41fdd75a5fb.txt › Incident Response › Post-Incident Review; Incident Response
Playbook › Step_4_Recovery › documentation.]],
  source      = "003_8c25f41fdd75a5fb.txt › Incident Response › Post-Incident Review",
  tags        = { "skafu", "incident", "review" },
  mutates     = { "writes the review document (<out_dir>/<incident_id>.md)",
                  "notifies the participants on Slack (and flags an overdue review)" },
  params = {
    incident_id = { required = true, help = "incident id (skafu/incident-classify prints it)" },
    title       = { default = "", help = "one line: what happened" },
    severity    = { default = "", choices = { "", "P0", "P1", "P2", "P3" },
                    help = "the incident's level (empty: classify from observed)" },
    observed    = { type = "list", default = {}, help = "facts, as for skafu/incident-classify, when severity is empty" },
    detected_at = { default = "", help = "when it was detected, UTC ISO 8601" },
    resolved_at = { default = "", help = "when it was resolved, UTC ISO 8601 (empty: now)" },
    commander   = { default = "", help = "Incident Commander" },
    responders  = { type = "list", default = {}, help = "technical responders" },
    product     = { type = "list", default = {}, help = "product stakeholders" },
    customer_impacting = { type = "boolean", default = false, help = "adds Customer Success to the participants" },
    detection   = { default = "", help = "how the incident was detected" },
    root_cause  = { default = "", help = "the root cause, if identified" },
    fix         = { default = "", help = "the fix applied" },
    out_dir     = { default = "post-incident-reviews", help = "where review documents are written" },
    review_hours = { type = "number", default = 48, help = "Timeline: within 48 hours of incident resolution" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function fmt_time(t) return t and skafu.iso(t) or "" end

step("Check the review timeline", {
  description = "Post_Incident_Review_Process › Timeline: within 48 hours of incident resolution.",
}, function()
  local t_now = now()
  state.resolved = params.resolved_at ~= "" and skafu.iso_time(params.resolved_at) or t_now
  check(state.resolved, "resolved_at %q is not ISO 8601 (2026-11-23T14:05:00Z)", params.resolved_at)
  if params.detected_at ~= "" then
    state.detected = skafu.iso_time(params.detected_at)
    check(state.detected, "detected_at %q is not ISO 8601", params.detected_at)
  end
  state.due = state.resolved + params.review_hours * 3600
  state.overdue = t_now > state.due
  local hours = (t_now - state.resolved) / 3600
  if state.overdue then
    log.warn("the review is overdue: resolved %.0f hours ago, due by %s", hours, fmt_time(state.due))
  else
    log.info("review due by %s (%.0f hours left)", fmt_time(state.due), (state.due - t_now) / 3600)
  end
end)

step("Flag the overdue review", {
  description = "Timeline missed: tell the team, the review still gets written now.",
  when = function() return state.overdue == true end,
}, function()
  notify.slack{ text = string.format("Skafu: the post-incident review of %s is overdue (due %s, %d hours after resolution)",
                                     params.incident_id, fmt_time(state.due), params.review_hours) }
end)

step("Severity and participants", {
  description = "Incident Classification (the level, or classified from the facts); " ..
                "Participants: Incident Commander, technical responders, product stakeholders, " ..
                "Customer Success (if customer-impacting).",
}, function()
  local matrix = skafu.matrix()
  local row
  if params.severity ~= "" then
    for _, r in ipairs(matrix) do if r.level == params.severity then row = r end end
    state.severity_reason = "given"
  else
    local facts = skafu.base_facts()
    for _, f in ipairs(params.observed) do
      check(type(facts[f]) == "boolean", "observed: unknown fact %q", f)
      facts[f] = true
    end
    local reason
    row, reason = escalation.classify(matrix, facts)
    state.severity_reason = reason
  end
  state.severity = row.level
  state.row = { title = row.title, description = row.description, response = row.response,
                escalation_time = row.escalation_time, communication = row.communication }
  local p = {}
  p[#p + 1] = "- Incident Commander: " .. (params.commander ~= "" and params.commander or "_to name_")
  p[#p + 1] = "- Technical responders: " .. (#params.responders > 0 and table.concat(params.responders, ", ") or "_to name_")
  p[#p + 1] = "- Product stakeholders: " .. (#params.product > 0 and table.concat(params.product, ", ") or "_to name_")
  if params.customer_impacting then p[#p + 1] = "- Customer Success (customer-impacting)" end
  state.participants = table.concat(p, "\n")
  log.info("%s %s (%s)", row.level, row.title, state.severity_reason)
end)

step("Write the review document", {
  description = "Review_Areas, Action_Items and Follow_Up as a document, from the template " ..
                "(runbooks/lib/skafu.lua REVIEW_TEMPLATE); an existing review is only replaced " ..
                "after confirmation.",
}, function()
  state.path = params.out_dir .. "/" .. params.incident_id:gsub("[^%w%-_.]", "_") .. ".md"
  if fs.exists(state.path) then
    check(confirm(string.format("%s exists: replace it?", state.path)), "kept the existing %s", state.path)
  end
  local duration = ""
  if state.detected then
    local m = math.floor((state.resolved - state.detected) / 60 + 0.5)
    duration = string.format("%d h %02d min", m // 60, m % 60)
  end
  local doc = skafu.render(skafu.REVIEW_TEMPLATE, {
    incident_id = params.incident_id, title = params.title,
    severity = state.severity, severity_title = state.row.title, severity_description = state.row.description,
    response_time = state.row.response, escalation_time = state.row.escalation_time,
    communication = state.row.communication,
    detected_at = state.detected and fmt_time(state.detected) or "", resolved_at = fmt_time(state.resolved),
    review_due = fmt_time(state.due) .. (state.overdue and " — overdue" or ""),
    written_at = fmt_time(now()), commander = params.commander, participants = state.participants,
    detection = params.detection, detection_timely = "", root_cause = params.root_cause, fix = params.fix,
    duration = duration,
  })
  fs.mkdir(params.out_dir, { parents = true })
  fs.write(state.path, doc)
  state.written = true
  log.info("wrote %s", state.path)
end)

step("Schedule the review", {
  description = "Step_4_Recovery › documentation: complete incident report, schedule post-mortem " ..
                "(tell the participants where the document is and when the review is due).",
}, function()
  notify.slack{ text = string.format("Skafu post-incident review %s (%s%s): %s, due %s. Participants:\n%s",
    params.incident_id, state.severity, params.title ~= "" and (", " .. params.title) or "", state.path,
    fmt_time(state.due), state.participants) }
end)
