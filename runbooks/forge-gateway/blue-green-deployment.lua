local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/blue-green-deployment",
  title       = "Blue-green deployment: deploy green, test it, switch traffic, decommission blue",
  description = [[Runs the gateway repository's blue-green scripts in the document's order, with
gates between them: blue (production) must be healthy before, green must pass test-green.sh, and
answer green_url/health when given, before traffic moves, the switch is confirmed, production must
answer /health after it, and blue is decommissioned only then, after a second confirmation. When
green fails its tests nothing is switched; when production fails after the switch, blue is kept
and the incident is paged (switch back with switch-traffic.sh).
004_c5e4c638679021cc.txt › Deployment Procedures › Rolling Updates › Blue-Green Deployment.]],
  source      = "004_c5e4c638679021cc.txt › Deployment Procedures › Rolling Updates › Blue-Green Deployment",
  schedule    = "on demand",
  tags        = { "forge-gateway", "deploy" },
  mutates     = { "runs scripts/deploy-green.sh and test-green.sh; after a confirmation each, switch-traffic.sh and decommission-blue.sh",
                  "pages when green fails or production fails after the switch" },
  params      = fg.params{ "gateway", "service_manager", "scripts_dir",
    green_url      = { default = "", help = "green gateway base URL for a /health check before the switch (empty: test-green.sh only)" },
    verify_timeout = { type = "number", default = 120, help = "seconds production has to answer /health after the switch" },
    script_timeout = { type = "number", default = 1800, help = "seconds each script may take" },
  },
}

local health = require "health"
local escalation = require "escalation"

local function script(name)
  return params.scripts_dir .. "/" .. name
end

local function page(summary)
  fg.post(escalation.notify, fg.row("CRITICAL"), { summary = summary, dedup_key = "forge-gateway-blue-green",
                                                   source = "runbook forge-gateway/blue-green-deployment" })
end

step("Check blue (production) before starting", {
  description = "production must be healthy: a failing blue is an incident, not a deployment",
}, function()
  local r = health.check({ { name = "gateway", url = params.gateway .. "/health" },
                           { name = "service-manager", url = params.service_manager .. "/health" } }, { timeout = 10 })
  health.report(r)
  check(r.ok, "production is not healthy (%s): handle that first (forge-gateway/gateway-service-issues)",
        table.concat(r.down, ", "))
end)

step("Deploy to green environment", {
  description = "./scripts/deploy-green.sh",
  timeout = params.script_timeout + 60,
}, function()
  exec({ script("deploy-green.sh") }, { timeout = params.script_timeout })
end)

step("Test green environment", {
  description = "./scripts/test-green.sh, and green_url/health when given",
  timeout = params.script_timeout + 60,
}, function()
  local r = exec({ script("test-green.sh") }, { check = false, timeout = params.script_timeout })
  local problems = {}
  if r.code ~= 0 then
    local last = ((r.stderr or "") ~= "" and r.stderr or r.stdout or ""):gsub("%s+$", ""):match("[^\n]*$")
    problems[#problems + 1] = "test-green.sh exit " .. r.code .. (last ~= "" and (": " .. last) or "")
  end
  if params.green_url ~= "" then
    local h = health.check({ { name = "green", url = params.green_url .. "/health" } }, { timeout = 10 })
    health.report(h)
    if not h.ok then problems[#problems + 1] = "green /health: " .. tostring(h.results[1].error) end
  end
  state.green_ok = #problems == 0
  if not state.green_ok then
    page("forge gateway blue-green: green failed its tests, traffic stays on blue: " .. table.concat(problems, "; "))
    check(false, "green failed its tests: %s (traffic stays on blue)", table.concat(problems, "; "))
  end
  log.info("green passed its tests")
end)

step("Switch traffic", {
  description = "./scripts/switch-traffic.sh, after confirmation",
}, function()
  check(confirm("Green passed its tests. Switch production traffic to green?"), "switch declined: traffic stays on blue")
  exec({ script("switch-traffic.sh") }, { timeout = params.script_timeout })
  state.switched = true
  state.rehearsal = dry_run() -- traffic did not move: production /health would not tell
end)

step("Verify production after the switch", {
  description = "production answers /health through the switched traffic",
  when = function() return not state.rehearsal end,
  timeout = params.verify_timeout + 60,
}, function()
  local ok = pcall(wait_until, function()
    return http.get(params.gateway .. "/health", { timeout = 5, check = false }).status == 200
  end, { timeout = params.verify_timeout, every = 5, what = "production /health on green" })
  state.verified = ok
  if not ok then
    page("forge gateway blue-green: production not healthy after switching to green; blue is kept -- switch back")
    check(false, "production not healthy after the switch; blue was NOT decommissioned: switch traffic back (switch-traffic.sh)")
  end
  log.info("production answers /health on green")
end)

step("Decommission blue environment", {
  description = "./scripts/decommission-blue.sh, after confirmation",
}, function()
  if not confirm("Production is healthy on green. Decommission blue?") then
    log.warn("blue kept running (declined)")
    return
  end
  exec({ script("decommission-blue.sh") }, { timeout = params.script_timeout })
  state.decommissioned = true
end)
