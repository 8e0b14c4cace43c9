-- Fixture for tests/cli/test_scenarios.py: `times` (a mock answers at most
-- N calls, then the next matching mock answers), `required`, sequences.
runbook {
  name = "scenarios/mocks-flaky-probe",
  params = { url = { default = "http://svc.test/ready" }, probes = { type = "number", default = 3 } },
}

step("Probe", function()
  local seen = {}
  for i = 1, params.probes do
    seen[i] = http.get(params.url).status
  end
  state.seen = seen
end)

step("Token", function()
  local out = {}
  for i = 1, 3 do out[i] = exec{ "vault", "token", "lookup" }.stdout:gsub("%s+$", "") end
  state.tokens = out
end)
