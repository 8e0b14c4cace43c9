local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/manual-scaling",
  title       = "Manual scaling: scale a service up or down and check the result",
  description = [[Scales a stateless service of the stack (the gateway by default) to a number of
replicas, as incident-response.sh -s does (docker compose up -d --scale SERVICE=N), then checks
the scaling status until that many containers run (and /health answers for the gateway).
Stateful services (postgres, redis, ...) are refused: more replicas of them would split their data.
004_c5e4c638679021cc.txt › Performance Optimization › Scaling Procedures › Manual Scaling.]],
  source      = "004_c5e4c638679021cc.txt › Performance Optimization › Scaling Procedures › Manual Scaling",
  schedule    = "on demand",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "changes the number of containers of a service (docker compose up -d --scale)" },
  params      = fg.params{ "compose_file", "project", "gateway",
    service  = { default = "gateway", help = "the service to scale" },
    replicas = { type = "number", default = 3, help = "replicas wanted (scale up: 3, scale down: 1, as in the document)" },
    timeout  = { type = "number", default = 120, help = "seconds for the scaling to settle" },
  },
}

local compose = require "compose"

local function running()
  local n = 0
  for _, r in ipairs(fg.service_rows(compose.status(params.compose_file, fg.compose_opts(params)), params.service)) do
    if r.running then n = n + 1 end
  end
  return n
end

step("Check the current scale", {
  description = "./scripts/scale-status.sh: the service's running containers now",
}, function()
  check(fg.STATELESS[params.service], "%s holds state: scaling it is not a runbook step (stateless: gateway, web-admin)",
        params.service)
  check(math.tointeger(params.replicas) and params.replicas >= 1, "replicas must be a whole number >= 1")
  state.before = running()
  log.info("%s: %d running, %d wanted", params.service, state.before, params.replicas)
end)

step("Scale the service", {
  description = "./scripts/incident-response.sh -s gateway 3 (or 1): docker compose up -d --scale",
  when = function() return state.before ~= params.replicas end,
}, function()
  exec(fg.scale_argv(params, params.service, params.replicas))
  state.scaled = not dry_run() -- a rehearsal scaled nothing: no new containers to wait for
end)

step("Check scaling status", {
  description = "./scripts/scale-status.sh: as many containers running as wanted, and /health answering",
  when = function() return state.scaled end,
  timeout = params.timeout + 30,
}, function()
  local url = fg.health_url(params, params.service)
  local ok = pcall(wait_until, function()
    if running() ~= params.replicas then return false end
    return not url or http.get(url, { timeout = 5, check = false }).status == 200
  end, { timeout = params.timeout, every = 5, what = params.service .. " at " .. params.replicas .. " replicas" })
  state.after = running()
  check(ok, "%s: %d running after %d s, %d wanted (scaling may still be in progress)", params.service, state.after,
        params.timeout, params.replicas)
  log.info("%s runs %d replicas", params.service, state.after)
end)
