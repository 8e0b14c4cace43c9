local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/security-updates",
  title       = "Weekly security updates: pinned images, pull, restart, verify",
  description = [[Lists the images that are pinned to a version (not :latest -- the ones an update
must be decided for), then, after a confirmation, pulls the compose images and recreates the
services with them (docker compose up -d), and verifies every health endpoint; a stack that
does not come back is paged (roll back with forge-gateway/production-deployment's backup or the
previous image tags).
004_c5e4c638679021cc.txt › Maintenance Procedures › Weekly Maintenance › Security Updates.]],
  source      = "004_c5e4c638679021cc.txt › Maintenance Procedures › Weekly Maintenance › Security Updates",
  schedule    = "weekly",
  tags        = { "forge-gateway", "maintenance", "weekly" },
  mutates     = { "pulls images (docker compose pull), after confirmation",
                  "recreates the services with the new images (docker compose up -d)",
                  "pages when the services do not come back" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager", "admin_ui",
    verify_timeout = { type = "number", default = 300, help = "seconds the endpoints have to answer after the restart" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

step("Check for security updates", {
  description = "docker images | grep -v \"latest\": the images pinned to a version",
}, function()
  state.pinned = {}
  for _, img in ipairs(docker.images()) do
    for _, tag in ipairs(img.RepoTags or {}) do
      if tag ~= "<none>:<none>" and not tag:match(":latest$") then state.pinned[#state.pinned + 1] = tag end
    end
  end
  table.sort(state.pinned)
  log.info("%d pinned image(s): %s", #state.pinned, table.concat(state.pinned, ", "))
end)

step("Update images if needed", {
  description = "docker-compose -f docker-compose.production.yml pull, after confirmation",
}, function()
  state.update = confirm("Pull the newest images of " .. params.compose_file .. " and restart the services with them?")
  if not state.update then
    log.info("no update this week (declined)")
    return
  end
  docker.compose(params.compose_file, fg.compose_opts(params)):pull()
end)

step("Restart services with new images", {
  description = "docker-compose -f docker-compose.production.yml up -d",
  when = function() return state.update end,
}, function()
  compose.up(params.compose_file, fg.compose_opts(params))
  state.rehearsal = dry_run() -- nothing restarted: the endpoints would only show today's state
end)

step("Verify services", {
  description = "every health endpoint answers again (Health Checks)",
  when = function() return state.update and not state.rehearsal end,
  timeout = params.verify_timeout + 60,
}, function()
  local last
  local ok = pcall(wait_until, function()
    last = health.check(fg.endpoints(params), { timeout = 5 })
    return last.ok
  end, { timeout = params.verify_timeout, every = 10, what = "every endpoint answering" })
  health.report(last)
  state.verified = ok
  if not ok then
    fg.post(escalation.notify, fg.row("CRITICAL"), {
      summary = "forge gateway security update: not answering after the restart: " .. table.concat(last.down, ", "),
      dedup_key = "forge-gateway-security-update", source = "runbook forge-gateway/security-updates",
    })
    check(false, "not answering after the update: %s", table.concat(last.down, ", "))
  end
end)
