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
    local up = compose.up(params.compose_file, fg.compose_opts(params, { services = { service }, no_deps = true }))
    if up.dry_run then goto next end
    local url = fg.health_url(params, service) -- verify-service.sh: /health where there is one
    local ok, err = pcall(wait_until, function()
      local rows = fg.service_rows(compose.status(params.compose_file, fg.compose_opts(params)), service)
      if #rows == 0 or #compose.down_services(rows) > 0 then return false end
      if url then return http.get(url, { timeout = 5, check = false }).status == 200 end
      return true
    end, { timeout = params.verify_timeout, every = 5, what = service .. " verified" })
    if not ok then
      state.failed_service = service
      fg.post(escalation.notify, fg.row("CRITICAL"), {
        summary = "forge gateway rolling update: " .. service .. " did not verify after the update; the update stopped",
        details = { updated = state.updated, error = tostring(err) },
        dedup_key = "forge-gateway-rolling-update", source = "runbook forge-gateway/rolling-update",
      })
      check(false, "%s did not verify within %d s; not updated: the services after it", service, params.verify_timeout)
    end
    state.updated[#state.updated + 1] = service
    log.info("%s updated and verified", service)
    ::next::
  end
end)
