-- examples/carbon-high-consumer-lag.lua: the 254Carbon ingestion platform's
-- "Issue 2: High Consumer Lag" procedure (Operations Runbook › Common
-- Issues), as a runbook.
--
-- The document's steps: Diagnosis -- the consumer lag from
-- `kafka-consumer-groups --bootstrap-server kafka:9092 --describe --group
-- enrichment-service` and the service's pods; Resolution -- 1. scale up the
-- service (`kubectl scale deployment enrichment-service --replicas=5 -n
-- carbon-ingestion`), 2. increase parallelism (`kubectl set env
-- deployment/enrichment-service PARALLELISM=8`); Escalation -- if the lag
-- keeps growing after scaling, escalate immediately.
--
-- The lag check is a read (run with readonly = true, so it runs in a
-- dry-run too); scale and set env are mutations:
--
--   runbook run examples/carbon-high-consumer-lag.lua --dry-run
--
-- prints `would: kubectl scale deployment/enrichment-service --replicas=5
-- -n carbon-ingestion` when the lag is above the threshold, and changes
-- nothing.
--
--   runbook run examples/carbon-high-consumer-lag.lua --param lag_threshold=5000 --param parallelism=8

runbook {
  name        = "examples/carbon-high-consumer-lag",
  title       = "254Carbon ingestion: high Kafka consumer lag on enrichment-service",
  tags        = { "example", "carbon-ingestion", "kafka", "kubectl" },
  params = {
    bootstrap_server = { default = "kafka:9092", help = "Kafka bootstrap server" },
    group            = { default = "enrichment-service", help = "the consumer group" },
    lag_threshold    = { type = "number", default = 1000, help = "total lag (messages) above which to act" },
    namespace        = { default = "carbon-ingestion", help = "Kubernetes namespace" },
    deployment       = { default = "deployment/enrichment-service", help = "the consumer's deployment" },
    selector         = { default = "app=enrichment-service", help = "label selector of its pods" },
    replicas         = { type = "number", default = 5, help = "replicas to scale up to" },
    parallelism      = { type = "number", default = 0, help = "set PARALLELISM to this (0: leave it)" },
    rollout_timeout  = { type = "number", default = 300, help = "seconds to wait for the rollout" },
  },
}

-- `kafka-consumer-groups --describe` output: a header line naming the
-- columns (GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
-- CONSUMER-ID HOST CLIENT-ID; older versions have no GROUP), then one row
-- per partition.  A LAG of "-" (no committed offset) counts as unknown.
local function parse_lag(text)
  local cols, rows = nil, {}
  for line in text:gmatch("[^\n]+") do
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    if not cols then
      for i, w in ipairs(words) do
        if w == "LAG" then
          cols = {}
          for j, name in ipairs(words) do cols[name] = j end
          break
        end
      end
    elseif #words >= cols.LAG then
      rows[#rows + 1] = {
        topic = words[cols.TOPIC], partition = tonumber(words[cols.PARTITION]),
        current = tonumber(words[cols["CURRENT-OFFSET"]]),
        log_end = tonumber(words[cols["LOG-END-OFFSET"]]),
        lag = tonumber(words[cols.LAG]),
      }
    end
  end
  check(cols ~= nil and cols.TOPIC and cols.PARTITION and cols.LAG,
        "kafka-consumer-groups printed no TOPIC/PARTITION/LAG header:\n%s", text)
  return rows
end

local function consumer_lag()
  local r = exec({ "kafka-consumer-groups", "--bootstrap-server", params.bootstrap_server,
                   "--describe", "--group", params.group },
                 { readonly = true, timeout = 60 })
  local rows = parse_lag(r.stdout)
  local total, unknown = 0, 0
  for _, row in ipairs(rows) do
    if row.lag then total = total + row.lag else unknown = unknown + 1 end
  end
  return total, rows, unknown
end

local function ns() return { namespace = params.namespace } end

step("Check consumer lag", {
  description = "Issue 2 › Diagnosis: `kafka-consumer-groups --bootstrap-server kafka:9092 " ..
                "--describe --group enrichment-service`; Symptoms: lag > 1000 messages.",
}, function()
  local total, rows, unknown = consumer_lag()
  for _, row in ipairs(rows) do
    log.info("%s[%s] current %s, log end %s, lag %s", row.topic, tostring(row.partition),
             tostring(row.current), tostring(row.log_end), row.lag and tostring(row.lag) or "-")
  end
  state.lag = total
  state.high = total > params.lag_threshold
  log[state.high and "warn" or "info"]("group %s: total lag %d over %d partition(s)%s (threshold %d)",
    params.group, total, #rows, unknown > 0 and string.format(", %d without a committed offset", unknown) or "",
    params.lag_threshold)
end)

step("Check the service's pods", {
  description = "Issue 2 › Diagnosis: the service's resource usage " ..
                "(`kubectl top pod -l app=enrichment-service -n carbon-ingestion`): its pods " ..
                "and the deployment's current replicas.",
  when = function() return state.high end,
}, function()
  local pods = kubectl.get("pods", nil, { namespace = params.namespace, selector = params.selector })
  for _, p in ipairs(pods.items or {}) do
    log.info("%-40s %s", p.metadata.name, p.status and p.status.phase or "?")
  end
  local d = kubectl.get(params.deployment, ns())
  state.replicas_before = d.spec and d.spec.replicas or 0
  log.info("%s: %d replica(s), %d ready", params.deployment, state.replicas_before,
           d.status and d.status.readyReplicas or 0)
end)

step("Scale up the service", {
  description = "Issue 2 › Resolution 1: `kubectl scale deployment enrichment-service " ..
                "--replicas=5 -n carbon-ingestion` (only when the lag is above the threshold " ..
                "and the deployment has fewer replicas).",
  when = function() return state.high and (state.replicas_before or 0) < params.replicas end,
}, function()
  kubectl.scale(params.deployment, params.replicas, ns())
  state.scaled = true
end)

step("Increase parallelism", {
  description = "Issue 2 › Resolution 2: `kubectl set env deployment/enrichment-service " ..
                "PARALLELISM=8 -n carbon-ingestion` (only with --param parallelism=N).",
  when = function() return state.high and params.parallelism > 0 end,
}, function()
  kubectl.set_env(params.deployment, { PARALLELISM = tostring(math.floor(params.parallelism)) }, ns())
  state.scaled = true
end)

step("Wait for the rollout", {
  description = "After Resolution 1/2: `kubectl rollout status` until the new replicas are " ..
                "available.",
  when = function() return state.scaled == true end,
}, function()
  kubectl.rollout_status(params.deployment, {
    namespace = params.namespace,
    wait_timeout = string.format("%ds", math.ceil(params.rollout_timeout)),
  })
end)

step("Re-check consumer lag", {
  description = "Issue 2 › Escalation: if the lag continues to grow after scaling, escalate " ..
                "immediately.",
  when = function() return state.scaled == true end,
}, function()
  local total = consumer_lag()
  if total > state.lag then
    log.error("lag grew from %d to %d after scaling: escalate immediately", state.lag, total)
  else
    log.info("lag %d (was %d)", total, state.lag)
  end
  state.lag_after = total
end)
