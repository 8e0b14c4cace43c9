local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/rolling-update",
  title       = "Zero-downtime rolling update: pull, then update and verify service by service",
  description = [[Pulls the new images, then updates one service at a time without touching its
dependencies (docker compose up -d --no-deps SERVICE), verifying each before the next: its
container running and, for the gateway and the service manager, /health answering. The first
service that does not verify stops the update (the rest keep their old version) and is paged.
004_c5e4c638679021cc.txt › Deployment Procedures › Rolling Updates › Zero-downtime Updates.]],
  source      = "004_c5e4c638679021cc.txt › Deployment Procedures › Rolling Updates › Zero-downtime Updates",
  schedule    = "on demand",
  tags        = { "forge-gateway", "deploy" },
  mutates     = { "pulls images (docker compose pull)", "recreates each service in turn (docker compose up -d --no-deps)",
                  "pages when a service does not verify" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager",
    services       = { type = "list", default = { "gateway", "service-manager" }, help = "services to update, in this order" },
    verify_timeout = { type = "number", default = 120, help = "seconds each service has to verify" },
  },
}

local compose = require "compose"
local escalation = require "escalation"

step("Pull new images", {
  description = "docker-compose -f docker-compose.production.yml pull",
}, function()
  docker.compose(params.compose_file, fg.compose_opts(params)):pull{ services = params.services }
end)

step("Update and verify service by service", {
  description = "docker-compose ... up -d --no-deps SERVICE; ./scripts/verify-service.sh SERVICE -- one at a time",
  timeout = (params.verify_timeout + 300) * math.max(#params.services, 1),
}, function()
  state.updated = {}
  for _, service in ipairs(params.services) do
    -- verify-service.sh: its containers running and, where there is one, /health answering
    local up = compose.up(params.compose_file, fg.compose_opts(params, {
      services = { service }, no_deps = true, wait_running = true, wait_url = fg.health_url(params, service),
      wait_timeout = params.verify_timeout, check = false }))
    if not up.ready then
      state.failed_service = service
      fg.post(escalation.notify, fg.row("CRITICAL"), {
        summary = "forge gateway rolling update: " .. service .. " did not verify after the update; the update stopped",
        details = { updated = state.updated, error = up.error },
        dedup_key = "forge-gateway-rolling-update", source = "runbook forge-gateway/rolling-update",
      })
      check(false, "%s did not verify within %d s; not updated: the services after it", service, params.verify_timeout)
    end
    state.updated[#state.updated + 1] = service
    if up.waited then log.info("%s updated and verified", service) end
  end
end)
