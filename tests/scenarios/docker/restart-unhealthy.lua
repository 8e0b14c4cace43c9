-- Fixture for tests/cli/test_scenarios.py: docker mocks (json, json_file,
-- plain fields as the result table).
runbook {
  name = "scenarios/docker-restart-unhealthy",
  params = { container = { default = "calendar-api" } },
}

step("Inspect", function()
  local c = docker.inspect(params.container)
  state.health = c.State.Health.Status
  state.image = c.Config.Image
end)

step("Restart when unhealthy", { when = function() return state.health ~= "healthy" end }, function()
  local r = docker.restart(params.container, { timeout = 10 })
  state.restart_ok = r.ok
end)

step("List", function()
  local list = docker.ps{ all = true }
  local names = {}
  for _, c in ipairs(list) do names[#names + 1] = c.Names[1] end
  state.names = names
end)
