local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/debug-mode",
  title       = "Enable debug mode: restart the stack with DEBUG and debug logging",
  description = [[Restarts the whole stack with DEBUG=true and LOG_LEVEL=debug in the environment
of docker compose (down, then up -d: an outage of every service, so it asks first), waits for the
gateway's /health, and shows the last minutes of debug logs (the document's `logs -f`, once).
Run it again with debug=false to go back to normal logging.
004_c5e4c638679021cc.txt › Troubleshooting Guide › Debugging Procedures › Enable Debug Mode.]],
  source      = "004_c5e4c638679021cc.txt › Troubleshooting Guide › Debugging Procedures › Enable Debug Mode",
  schedule    = "on demand",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "stops and starts the whole compose stack (docker compose down, up -d), after confirmation" },
  params      = fg.params{ "compose_file", "project", "gateway",
    debug        = { type = "boolean", default = true, help = "true: DEBUG=true LOG_LEVEL=debug; false: back to DEBUG=false LOG_LEVEL=info" },
    wait_timeout = { type = "number", default = 300, help = "seconds the gateway has to answer /health after the restart" },
    since        = { default = "5m", help = "how much of the debug logs to show" },
  },
}

local function compose_argv(...)
  local argv = { "docker", "compose", "-f", params.compose_file }
  if params.project ~= "" then argv[#argv + 1] = "-p"; argv[#argv + 1] = params.project end
  for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
  return argv
end

local ENV = params.debug and { DEBUG = "true", LOG_LEVEL = "debug" } or { DEBUG = "false", LOG_LEVEL = "info" }

step("Restart services with debug", {
  description = "export DEBUG=true LOG_LEVEL=debug; docker-compose ... down; docker-compose ... up -d",
  timeout = 900,
}, function()
  check(confirm(string.format("Restart the whole stack of %s with DEBUG=%s LOG_LEVEL=%s? Every service is down meanwhile.",
                              params.compose_file, ENV.DEBUG, ENV.LOG_LEVEL)), "declined: nothing restarted")
  exec(compose_argv("down"), { env = ENV, timeout = 300 })
  exec(compose_argv("up", "-d"), { env = ENV, timeout = 600 })
  state.restarted = not dry_run() -- a rehearsal restarted nothing: no gateway to wait for
end)

step("Wait for the gateway", {
  description = "http://localhost:8000/health answers again",
  when = function() return state.restarted end,
  timeout = params.wait_timeout + 60,
}, function()
  wait_until(function() return http.get(params.gateway .. "/health", { timeout = 5, check = false }).status == 200 end,
             { timeout = params.wait_timeout, every = 5, what = "gateway /health" })
  log.info("gateway answers /health")
end)

step("Monitor debug logs", {
  description = "docker-compose -f docker-compose.production.yml logs -f (here: the last " .. params.since .. ", once)",
}, function()
  local r = exec(compose_argv("logs", "--no-color", "--since", params.since), { readonly = true, check = false })
  local n = 0
  for line in (r.stdout or ""):gmatch("[^\n]+") do
    n = n + 1
    if n <= 50 then print(line) end
  end
  state.log_lines = n
  log.info("%d log lines in the last %s%s", n, params.since, n > 50 and " (first 50 shown)" or "")
end)
