-- carbon-ingestion/high-consumer-lag: Issue 2 of the 254Carbon ingestion
-- platform's Operations Runbook.
--
--   runbook run carbon-ingestion/high-consumer-lag --dry-run
--
-- prints `would: kubectl scale deployment/enrichment-service --replicas=5
-- -n carbon-ingestion` when the lag is above 1000 messages.
--
--   runbook run carbon-ingestion/high-consumer-lag --param group=normalization-service \
--       --param deployment=normalization-service

local ci = require "carbon_ingestion"
local kafka = require "kafka"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/high-consumer-lag",
  title       = "High Kafka consumer lag (> 1000 messages)",
  description = [[Reads the consumer group's lag (kafka-consumer-groups --describe) and, above
1000 messages, the service's pods and resource usage; scales the deployment up to 5 replicas,
sets PARALLELISM=8, waits for the rollout, looks for errors in the service's logs, and re-checks
the lag: if it keeps growing after scaling, escalates immediately (P2, Platform Team).
002_f134cbc51c64e878.txt › Common Issues › Issue 2: High Consumer Lag.]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 2: High Consumer Lag",
  tags        = { "carbon-ingestion", "incident", "kafka", "kubectl" },
  mutates     = { "scales the consumer's deployment up (kubectl scale)",
                  "sets PARALLELISM on the deployment (kubectl set env)",
                  "escalates (email + Slack) when the lag grows after scaling" },
  params = {
    bootstrap_server = { default = ci.bootstrap_server, help = "Kafka bootstrap server" },
    group            = { default = "enrichment-service", help = "the consumer group" },
    deployment       = { default = "enrichment-service", help = "the consumer's deployment" },
    namespace        = { default = ci.namespace, help = "Kubernetes namespace" },
    lag_threshold    = { type = "number", default = ci.thresholds.consumer_lag,
                         help = "total lag (messages) above which to act" },
    replicas         = { type = "number", default = 5, help = "replicas to scale up to" },
    parallelism      = { type = "number", default = 8, help = "PARALLELISM to set (0: leave it)" },
    rollout_timeout  = { type = "number", default = 300, help = "seconds to wait for the rollout" },
    log_tail         = { type = "number", default = 200, help = "log lines to look for errors in" },
    recheck_after    = { type = "number", default = 120,
                         help = "seconds after the rollout before the lag is measured again" },
  },
}

local deployment = "deployment/" .. params.deployment
local selector = "app=" .. params.deployment
local function ns() return { namespace = params.namespace } end

local function consumer_lag()
  return kafka.consumer_lag{ bootstrap_server = params.bootstrap_server, group = params.group }
end

step("Check consumer lag", {
  description = "Issue 2 › Diagnosis: `kafka-consumer-groups --bootstrap-server kafka:9092 " ..
                "--describe --group enrichment-service`; Symptoms: lag > 1000 messages.",
}, function()
  local lag = consumer_lag()
  for _, row in ipairs(lag.rows) do
    log.info("%s[%s] current %s, log end %s, lag %s", row.topic, tostring(row.partition),
             tostring(row.current), tostring(row.log_end), row.lag and tostring(row.lag) or "-")
  end
  state.lag = lag.total
  state.high = lag.total > params.lag_threshold
  log[state.high and "warn" or "info"]("group %s: total lag %d over %d partition(s)%s (threshold %d)",
    params.group, lag.total, lag.partitions,
    lag.unknown > 0 and string.format(", %d without a committed offset", lag.unknown) or "",
    params.lag_threshold)
end)

step("Check the service's resource usage", {
  description = "Issue 2 › Diagnosis: `kubectl top pod -l app=enrichment-service -n " ..
                "carbon-ingestion`, and the deployment's replicas and PARALLELISM.",
  when = function() return state.high end,
}, function()
  local ok, top = pcall(kubectl.top, "pod", nil, { namespace = params.namespace, selector = selector })
  if ok and type(top) == "string" then
    for line in top:gmatch("[^\n]+") do log.info("%s", line) end
  else
    log.warn("no resource usage (%s)", tostring(top))
  end
  local d = kubectl.get(deployment, ns())
  state.replicas_before = d.spec and d.spec.replicas or 0
  local containers = d.spec and d.spec.template and d.spec.template.spec.containers or {}
  for _, e in ipairs(containers[1] and containers[1].env or {}) do
    if e.name == "PARALLELISM" then state.parallelism_before = tonumber(e.value) end
  end
  log.info("%s: %d replica(s), %d ready, PARALLELISM %s", deployment, state.replicas_before,
           d.status and d.status.readyReplicas or 0, tostring(state.parallelism_before or "unset"))
end)

step("Scale up service", {
  description = "Issue 2 › Resolution 1: `kubectl scale deployment enrichment-service " ..
                "--replicas=5 -n carbon-ingestion` (when it has fewer replicas).",
  when = function() return state.high and (state.replicas_before or 0) < params.replicas end,
}, function()
  kubectl.scale(deployment, params.replicas, ns())
  state.scaled = true
  state.rehearsal = dry_run() -- nothing scaled: the lag measured again would be today's
end)

step("Increase parallelism", {
  description = "Issue 2 › Resolution 2: `kubectl set env deployment/enrichment-service " ..
                "PARALLELISM=8 -n carbon-ingestion` (when it is lower or unset).",
  when = function()
    return state.high and params.parallelism > 0 and (state.parallelism_before or 0) < params.parallelism
  end,
}, function()
  kubectl.set_env(deployment, { PARALLELISM = tostring(math.floor(params.parallelism)) }, ns())
  state.scaled = true
  state.rehearsal = dry_run()
end)

-- In a dry-run the rehearsal answers this wait itself: the deployment changed
-- only there, so there is no real rollout to watch.
step("Wait for the rollout", {
  description = "After Resolution 1/2: `kubectl rollout status` until the new replicas are available.",
  when = function() return state.scaled == true end,
}, function()
  kubectl.rollout_status(deployment, {
    namespace = params.namespace,
    wait_timeout = string.format("%ds", math.ceil(params.rollout_timeout)),
  })
end)

step("Check for slow processing", {
  description = "Issue 2 › Resolution 3: review the service's logs for errors; database query " ..
                "performance and external API latency are a checkpoint for the operator.",
  when = function() return state.high end,
}, function()
  local text = kubectl.logs(deployment, { namespace = params.namespace, tail = params.log_tail,
                                          check = false }) or ""
  local errors = 0
  for line in text:gmatch("[^\n]+") do
    if line:find("ERROR", 1, true) or line:find("Exception", 1, true) or line:find("timeout", 1, true)
       or line:find("Timeout", 1, true) then
      errors = errors + 1
      if errors <= 10 then log.warn("%s", line) end
    end
  end
  state.log_errors = errors
  log.info("%d error line(s) in the last %d lines of %s", errors, params.log_tail, deployment)
  state.slow_processing_checked = confirm(string.format(
    "%s is %d messages behind: database query performance and external API latency checked " ..
    "(the document gives no command for them)?", params.group, state.lag))
end)

step("Re-check consumer lag", {
  description = "Issue 2 › Escalation: is the lag still growing after scaling? (measured " ..
                "again 2 minutes after the rollout; not in a dry-run, where nothing was scaled)",
  when = function() return state.scaled == true and not state.rehearsal end,
}, function()
  sleep(params.recheck_after)
  local lag = consumer_lag()
  state.lag_after = lag.total
  state.growing = lag.total > state.lag
  if state.growing then
    log.error("lag grew from %d to %d after scaling", state.lag, lag.total)
  else
    log.info("lag %d (was %d)", lag.total, state.lag)
  end
end)

step("Escalate", {
  description = "Issue 2 › Escalation: if lag continues to grow after scaling, escalate " ..
                "immediately (Escalation Decision Tree: performance degraded -> P2, Platform Team).",
  when = function() return state.growing == true end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = false, performance_degraded = true })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  escalation.notify(ci.level(leaf.level), {
    summary = string.format("consumer group %s: lag grew from %d to %d after scaling %s to %d replicas",
                            params.group, state.lag, state.lag_after, params.deployment, params.replicas),
    details = { group = params.group, lag_before = state.lag, lag_after = state.lag_after,
                log_errors = state.log_errors, escalate_to = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion/high-consumer-lag/" .. params.group,
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "lag still growing after scaling: %s -> %s", leaf.action, ci.contact_line(leaf.team))
end)
