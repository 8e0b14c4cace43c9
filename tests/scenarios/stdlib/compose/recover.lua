-- Fixture for the compose module: status of a project, restart of what is
-- down (waiting for its health URL), stop/start of the workers.
runbook {
  name = "stdlib-tests/compose-recover",
  params = {
    file = { default = "/srv/calendar/docker-compose.yml" },
    project = { default = "calendar" },
    health_url = { default = "http://127.0.0.1:8000/healthz" },
  },
}

local compose = require "compose"

step("Status", function()
  local st = compose.status(params.file, { project = params.project })
  local seen = {}
  for _, s in ipairs(st) do
    seen[#seen + 1] = string.format("%s=%s/%s", s.service, s.state, s.health or "-")
    log.info("%s (%s): %s %s", s.service, s.name, s.state, s.health or "")
  end
  state.seen = seen
  state.down = compose.down_services(st)
  state.not_running = compose.down_services(st, { require_healthy = false })
end)

step("Restart what is down", { when = function() return #state.down > 0 end }, function()
  for _, s in ipairs(state.down) do
    local r = compose.restart(params.file, s, { project = params.project, wait_url = params.health_url,
                                                timeout = 30, every = 1 })
    state.waited = r.waited
  end
end)

step("Cycle the workers", function()
  compose.stop(params.file, { "worker" }, { project = params.project })
  compose.start(params.file, "worker", { project = params.project })
end)
