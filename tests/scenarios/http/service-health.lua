-- Fixture for tests/cli/test_scenarios.py: http mocks (a 503, 503, 200
-- sequence under wait_until on the virtual clock, body_file, json_file,
-- a POST matched by headers and JSON body, a transport error).
runbook {
  name = "scenarios/http-service-health",
  params = { api = { default = "http://api.test" } },
}

step("Wait for healthy", function()
  local t0 = now()
  local attempts = 0
  wait_until(function()
    attempts = attempts + 1
    return http.get(params.api .. "/healthz").status == 200
  end, { timeout = 600, every = 30, what = "api healthy" })
  local waited = now() - t0
  state.attempts = attempts
  state.waited_a_minute = waited >= 60          -- two sleeps of 30 s, virtual
  state.waited_intervals = math.floor(waited / 30)
  state.after = http.get(params.api .. "/healthz").status -- the last response repeats
end)

step("Read metrics", function()
  local r = http.get(params.api .. "/metrics")
  state.metrics_status = r.status
  state.errors = tonumber(r.body:match("http_errors_total (%d+)"))
end)

step("Read the release", function()
  local r = http.get(params.api .. "/release")
  local rel = r:json()
  state.version = rel.version
  state.content_type = r.headers["content-type"]
end)

step("Deploy", function()
  local r = http.post(params.api .. "/deploy", {
    headers = { Authorization = "Bearer fixture-token", ["X-Request-Id"] = "rb-1" },
    json = { version = state.version, env = "prod", canary = false },
  })
  check(r.status == 202, "deploy answered %d", r.status)
  state.deploy_id = r:json().id
end)

step("Probe the dependency", function()
  local r = http.get("http://dep.test/ping", { check = false })
  state.dep_ok = r.ok
  state.dep_status = r.status
  local ok, err = pcall(http.get, "http://dep.test/ping")
  state.dep_raised = not ok
  state.dep_error = tostring(err)
  log.info("dependency down: %s", tostring(err))
end)
