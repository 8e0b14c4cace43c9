-- Fixture for the compose module's readiness waits (READY: wait_url,
-- wait_running, check = false) after start, up and restart.  Scenarios run
-- live-shaped (dry_run() is false); the rehearsal side is tests/cli/test_stdlib.py.
runbook {
  name = "stdlib-tests/compose-ready",
  params = {
    file = { default = "/srv/calendar/docker-compose.yml" },
    project = { default = "calendar" },
    health_url = { default = "http://127.0.0.1:8000/healthz" },
  },
}

local compose = require "compose"

local function keep(r)
  return { waited = r.waited, ready = r.ready, last = r.last, error = r.error, dry_run = r.dry_run }
end

step("Start the api and wait for it", function()
  state.start = keep(compose.start(params.file, { "api" }, { project = params.project, wait_running = true,
                                                            wait_url = params.health_url, wait_timeout = 60, every = 5 }))
end)

step("Update the worker without raising", function()
  state.up = keep(compose.up(params.file, { project = params.project, services = { "worker" }, no_deps = true,
                                            wait_running = true, wait_timeout = 30, every = 10, check = false }))
end)

step("Restart the worker", function()
  state.restart = keep(compose.restart(params.file, "worker", { project = params.project, wait_running = true,
                                                                timeout = 20 }))
end)
