-- Fixture for tests/cli/test_scenarios.py: notify mocks on slack, webhook
-- and pagerduty, judged by the notifications expectation.
runbook {
  name = "scenarios/notify-announce",
  params = { service = { default = "calendar-api" } },
}

step("Announce", function()
  notify.slack{ text = "Restarting " .. params.service .. " (runbook)", webhook = "https://hooks.slack.test/services/T0/B0/x" }
  notify.webhook("https://status.example.test/hook", { service = params.service, status = "degraded" })
end)

step("Page", function()
  local r = notify.pagerduty{
    summary = params.service .. " is down",
    severity = "critical",
    source = "runbook",
    dedup_key = params.service .. "-down",
    routing_key = "R0UTINGKEYFIXTURE",
  }
  state.paged = r.ok == true
end)
