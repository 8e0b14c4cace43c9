-- Fixture for tests/cli/test_scenarios.py: confirm() answered by the
-- scenario (`confirm:` true/false, a list in order, or a map by question).
runbook { name = "scenarios/confirm-guarded-restart" }

step("Ask", function()
  if not confirm("Proceed?") then error("declined") end
  state.proceed = true
end)

step("Restart", function()
  exec{ "systemctl", "restart", "calendar-api" }
  if confirm("Also purge the cache?") then
    sh("rm -rf /var/cache/calendar-api/*")
    state.purged = true
  else
    state.purged = false
  end
end)
