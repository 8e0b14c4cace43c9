local escalation = require "escalation"
local ci = require "carbon_ingestion"

runbook {
  name        = "carbon-ingestion/rolling-update",
  title       = "Rolling update of a carbon-ingestion service, rolled back automatically on failure",
  description = [[Sets a new image on one deployment (`kubectl set image`), follows the rollout
(`kubectl rollout status`), then checks the service's /health for a soak period. A rollout that
fails or a service that is not healthy afterwards is rolled back to the revision it ran before
(`kubectl rollout undo --to-revision`), and the run fails naming why.
002_f134cbc51c64e878.txt › Maintenance Procedures › Service Updates.]],
  source      = "002_f134cbc51c64e878.txt › Maintenance Procedures › Service Updates",
  schedule    = "on demand",
  tags        = { "carbon-ingestion", "deploy", "kubernetes", "on demand" },
  mutates     = { "sets the deployment's container image (rolling update)",
                  "rolls the deployment back to its previous revision when the update fails",
                  "posts the result to Slack; pages / notifies the Platform Team when the rollback is unhealthy" },
  params = {
    namespace       = { default = ci.namespace, help = "Kubernetes namespace" },
    deployment      = { default = "normalization-service", help = "the deployment to update" },
    container       = { default = "normalization-service", help = "the container whose image changes" },
    image           = { default = "carbon-ingestion/normalization:v1.1.0", help = "the new image" },
    rollout_timeout = { type = "number", default = 300, help = "seconds `kubectl rollout status` waits" },
    health_url      = { default = "http://localhost:8510/health",
                        help = "the service's health endpoint (Appendix › Useful Commands: ports 8510-8514)" },
    health_timeout  = { type = "number", default = 120, help = "seconds to wait for /health to answer 200 after the rollout" },
    soak            = { type = "number", default = 60, help = "seconds /health must stay 200 after the rollout" },
    soak_every      = { type = "number", default = 10, help = "seconds between health probes during the soak" },
  },
}

local function ns() return { namespace = params.namespace } end
local function target() return "deployment/" .. params.deployment end

local function slack(text)
  notify.slack{ text = text }
end

local function healthy()
  local ok, r = pcall(http.get, params.health_url, { timeout = 10 })
  if not ok then return false, ci.cause(r) end
  if r.status ~= 200 then return false, string.format("HTTP %d", r.status) end
  return true
end

-- The one place that undoes the update: used by the "Roll back" step and as
-- the undo of "Set the new image" (--rollback), never twice.
local function roll_back(reason)
  if state.rolled_back or not state.updated then return end
  log.error("rolling %s back to revision %s: %s", target(), tostring(state.revision_before), reason)
  kubectl.rollout_undo(target(), { namespace = params.namespace, to_revision = state.revision_before })
  state.rolled_back = true
  state.rollback_reason = reason
end

step("Record the current revision", {
  description = "Service Updates › before `kubectl set image`: the deployment's current image and " ..
                "revision, so a rollback returns exactly there.",
}, function()
  local d = kubectl.get("deployment", params.deployment, ns())
  local containers = d.spec and d.spec.template and d.spec.template.spec and d.spec.template.spec.containers or {}
  for _, c in ipairs(containers) do
    if c.name == params.container then state.image_before = c.image end
  end
  check(state.image_before, "%s has no container named %s", target(), params.container)
  local ann = d.metadata and d.metadata.annotations or {}
  state.revision_before = tonumber(ann["deployment.kubernetes.io/revision"])
  log.info("%s: %s at revision %s, %d/%d replicas ready", target(), state.image_before,
           tostring(state.revision_before), d.status and d.status.readyReplicas or 0,
           d.spec and d.spec.replicas or 0)
  state.up_to_date = state.image_before == params.image
  if state.up_to_date then log.info("already running %s: nothing to update", params.image) end
end)

step("Check health before the update", {
  description = "Planned Maintenance Window › Pre-Maintenance: do not start from a broken service " ..
                "without saying so.",
  when = function() return not state.up_to_date end,
}, function()
  local ok, why = healthy()
  state.healthy_before = ok
  if not ok then
    log.warn("%s is not healthy before the update (%s)", params.health_url, why)
    check(confirm(string.format("%s is already unhealthy (%s). Update %s to %s anyway?",
                                params.deployment, why, target(), params.image)),
          "update cancelled: the service is unhealthy before it")
  end
end)

step("Set the new image", {
  description = "Service Updates: `kubectl set image deployment/normalization-service " ..
                "normalization-service=carbon-ingestion/normalization:v1.1.0 -n carbon-ingestion`.",
  when = function() return not state.up_to_date end,
  undo = function() roll_back("--rollback after a later step failed") end,
}, function()
  kubectl.set_image(target(), { [params.container] = params.image }, ns())
  state.updated = true
  -- nothing rolled out: /health would answer for the old version.  (The rollout
  -- wait below runs in a dry-run too: the rehearsal answers it.)
  state.rehearsal = dry_run()
end)

step("Monitor the rollout", {
  description = "Service Updates: `kubectl rollout status deployment/normalization-service " ..
                "-n carbon-ingestion`; a rollout that does not complete is rolled back below.",
  when = function() return state.updated == true end,
}, function()
  local ok, err = pcall(kubectl.rollout_status, target(), {
    namespace = params.namespace,
    wait_timeout = string.format("%ds", math.ceil(params.rollout_timeout)),
  })
  if not ok then
    state.rollout_error = ci.cause(err)
    log.error("rollout of %s did not complete: %s", params.image, state.rollout_error)
  end
end)

step("Verify health after the rollout", {
  description = "Post-Maintenance › Monitor for errors: /health answers 200 and keeps answering " ..
                "200 for the soak period.",
  when = function() return state.updated == true and not state.rollout_error end,
}, function()
  if state.rehearsal then
    log.info("dry-run: no new version was rolled out, so there is nothing to soak-test")
    return
  end
  local ok, err = pcall(wait_until, healthy, { timeout = params.health_timeout, every = 5,
                                              what = params.deployment .. " healthy" })
  if not ok then
    state.health_error = ci.cause(err)
    log.error("%s", state.health_error)
    return
  end
  local waited, failures = 0, 0
  while waited < params.soak do
    sleep(params.soak_every)
    waited = waited + params.soak_every
    local good, why = healthy()
    if not good then
      failures = failures + 1
      log.warn("health probe after %d s: %s", waited, why)
    end
  end
  state.soak_failures = failures
  if failures > 0 then
    state.health_error = string.format("%d of %d health probes failed during the %d s soak",
                                       failures, math.floor(params.soak / params.soak_every), params.soak)
    log.error("%s", state.health_error)
  else
    log.info("%s healthy for %d s after the rollout", params.deployment, params.soak)
  end
end)

step("Roll back", {
  description = "Service Updates: `kubectl rollout undo deployment/normalization-service " ..
                "-n carbon-ingestion` (to the recorded revision), then wait for it and check health.",
  when = function() return state.rollout_error ~= nil or state.health_error ~= nil end,
}, function()
  roll_back(state.rollout_error or state.health_error)
  local ok, err = pcall(kubectl.rollout_status, target(), {
    namespace = params.namespace,
    wait_timeout = string.format("%ds", math.ceil(params.rollout_timeout)),
  })
  state.rollback_complete = ok
  if not ok then log.error("the rollback did not complete either: %s", ci.cause(err)) end
  local good, why = healthy()
  state.healthy_after_rollback = good
  local text = string.format("%s: update to %s rolled back to revision %s (image %s, namespace %s): %s",
    params.deployment, params.image, tostring(state.revision_before), state.image_before, params.namespace,
    state.rollback_reason)
  if ok and good then
    slack(text)
    return
  end
  -- the old version does not come back either: Escalation Decision Tree
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = not good, performance_degraded = true })
  log.error("after the rollback: %s; decision: %s -> %s", ok and ("health: " .. tostring(why)) or ci.cause(err),
            table.concat(path, "; "), leaf.action)
  state.escalated = leaf.level
  escalation.notify(ci.level(leaf.level), {
    summary = text .. string.format(" -- and the rollback is NOT healthy (%s)",
                                    ok and ("health: " .. tostring(why)) or "rollout not complete"),
    details = { team = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion-rolling-update-" .. params.deployment,
    source = ci.source,
  })
end)

step("Report", {
  description = "Post-Maintenance › Send completion notification; a rolled-back update fails the run.",
  when = function() return state.updated == true end,
}, function()
  check(not state.rolled_back, "update of %s to %s rolled back: %s", params.deployment, params.image,
        tostring(state.rollback_reason))
  slack(string.format("%s updated to %s in %s (was %s, revision %s)", params.deployment,
                      params.image, params.namespace, state.image_before, tostring(state.revision_before)))
end)
