-- Fixture for the escalation module: a severity matrix, a decision tree and
-- the notifications of the level found.
runbook {
  name = "stdlib-tests/escalation-classify",
  params = {
    error_rate   = { type = "number", default = 0 },
    service_down = { type = "boolean", default = false },
    region       = { default = "none" },
    lag          = { type = "number", default = 0 },
    lag_growing  = { type = "boolean", default = false },
  },
}

local escalation = require "escalation"

local MATRIX = {
  { level = "P0", title = "Critical", response = "15 minutes", notify = { "pagerduty", "slack" },
    any = { { "service_down", "==", true }, { "error_rate", ">=", 0.5 } } },
  { level = "P1", title = "High", response = "1 hour", notify = { "slack", "email" },
    any = { { "error_rate", ">=", 0.1 }, { "region", "in", { "eu-west", "us-east" } } } },
  { level = "P2", title = "Medium", notify = { "slack" }, any = { { "error_rate", ">", 0.01 } } },
  { level = "P3", title = "Low", any = {}, default = true },
}

local TREE = {
  ask = "lag growing after scale-out?", key = "lag_growing",
  yes = { action = "page the data team", escalate = "L2 on-call" },
  no = { ask = "lag above 10000?", test = { "lag", ">", 10000 },
         yes = { action = "scale out again" },
         no = { action = "keep watching" } },
}

local facts = {
  error_rate = params.error_rate, service_down = params.service_down,
  region = params.region, lag = params.lag, lag_growing = params.lag_growing,
}

step("Classify", function()
  local row, reason = escalation.classify(MATRIX, facts)
  state.level, state.reason = row.level, reason
  log.info("severity %s (%s): %s", row.level, row.title, reason)
end)

step("Decide", function()
  local leaf, path = escalation.decide(TREE, facts)
  state.action, state.escalate, state.path = leaf.action, leaf.escalate, path
  log.info("decision: %s (%s)", leaf.action, table.concat(path, "; "))
end)

step("Notify", function()
  local row = escalation.classify(MATRIX, facts)
  state.sent = escalation.notify(row, { summary = "calendar-api errors at " .. params.error_rate,
                                        details = { error_rate = params.error_rate },
                                        dedup_key = "cal-errors", source = "runbook",
                                        routing_key = "R0UTINGKEYFIXTURE",
                                        slack_webhook = "https://hooks.slack.test/services/T0/B0/x",
                                        email = { to = "oncall@example.test", from = "runbook@example.test",
                                                  smtp = "smtp://127.0.0.1:2525" } })
end)
