-- Fixture for tests/cli/test_scenarios.py: db mocks (a stand-in
-- connection; query rows, exec affected).
runbook {
  name = "scenarios/db-requeue-jobs",
  params = { url = { default = "postgres://app@db.test/jobs" } },
}

step("Find stuck jobs", function()
  local conn <close> = db.open(params.url)
  local rows = conn:query("SELECT id, queue FROM jobs WHERE state = $1 AND updated_at < now() - interval '1 hour'", "running")
  local ids = {}
  for _, r in ipairs(rows) do ids[#ids + 1] = r.id end
  state.stuck = ids
  state.first_queue = rows[1] and rows[1].queue
end)

step("Requeue", { when = function() return #state.stuck > 0 end }, function()
  local conn <close> = db.open(params.url)
  state.requeued = conn:exec("UPDATE jobs SET state = 'queued' WHERE state = $1 AND id = ANY($2)", "running", "{" .. table.concat(state.stuck, ",") .. "}")
  local n = conn:query("SELECT count(*) AS n FROM jobs WHERE state = 'queued'")
  state.queued_now = n[1].n
end)
