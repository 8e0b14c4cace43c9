-- carbon-ingestion/kafka-topic-lag: Issue 6 of the 254Carbon ingestion
-- platform's Operations Runbook.
--
--   runbook run carbon-ingestion/kafka-topic-lag --dry-run
--   runbook run carbon-ingestion/kafka-topic-lag --param topic=enriched.market.ticks.v1 \
--       --param deployment=aggregation-service

local ci = require "carbon_ingestion"
local kafka = require "kafka"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/kafka-topic-lag",
  title       = "Kafka topic lag (messages piling up, consumer groups falling behind)",
  description = [[Reads every consumer group's lag (kafka-consumer-groups --all-groups --describe)
and the topic's partitions; when the topic's consumers are behind, scales the consuming deployment
to 5 replicas and, when there would be more consumers than partitions, raises the topic to 10
partitions after a confirm(); re-checks the lag, leaves the consumer configuration to the operator
(a checkpoint) and escalates to the Platform Team above 10,000 messages.
002_f134cbc51c64e878.txt › Common Issues › Issue 6: Kafka Topic Lag.]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 6: Kafka Topic Lag",
  tags        = { "carbon-ingestion", "incident", "kafka", "kubectl" },
  mutates     = { "scales the consumer deployment (kubectl scale)",
                  "adds partitions to the topic (kafka-topics --alter, after confirm)",
                  "escalates (email + Slack) when the lag is above 10,000 messages" },
  params = {
    bootstrap_server = { default = ci.bootstrap_server, help = "Kafka bootstrap server" },
    topic            = { default = ci.topic, help = "the topic whose lag to resolve" },
    deployment       = { default = "normalization-service", help = "the deployment consuming it" },
    namespace        = { default = ci.namespace, help = "Kubernetes namespace" },
    lag_threshold    = { type = "number", default = ci.thresholds.consumer_lag,
                         help = "lag (messages, per group) above which to act" },
    escalate_lag     = { type = "number", default = ci.thresholds.topic_lag_escalate,
                         help = "lag above which to escalate to the Platform Team" },
    replicas         = { type = "number", default = 5, help = "consumer replicas to scale to" },
    partitions       = { type = "number", default = 10, help = "partitions to raise the topic to" },
    rollout_timeout  = { type = "number", default = 300, help = "seconds to wait for the rollout" },
    recheck_after    = { type = "number", default = 120, help = "seconds before the lag is measured again" },
  },
}

local deployment = "deployment/" .. params.deployment
local function ns() return { namespace = params.namespace } end

-- every group's lag; -> { [group] = lag on params.topic }, max lag on it, total of all groups
local function all_lag()
  local r = exec({ "kafka-consumer-groups", "--bootstrap-server", params.bootstrap_server,
                   "--all-groups", "--describe" }, { readonly = true, timeout = 120 })
  local ok, rows = pcall(kafka.parse_consumer_groups, r.stdout)
  if not ok then
    log.warn("no consumer group offsets in the output: %s", tostring(rows))
    rows = {}
  end
  local on_topic, by_group, total = {}, {}, 0
  for _, row in ipairs(rows) do
    local g = row.group or "?"
    by_group[g] = (by_group[g] or 0) + (row.lag or 0)
    total = total + (row.lag or 0)
    if row.topic == params.topic then on_topic[g] = (on_topic[g] or 0) + (row.lag or 0) end
  end
  local max = 0
  for _, lag in pairs(on_topic) do if lag > max then max = lag end end
  return on_topic, max, total, by_group
end

step("List topics and their lag", {
  description = "Issue 6 › Diagnosis: `kafka-consumer-groups --bootstrap-server kafka:9092 " ..
                "--all-groups --describe`.",
}, function()
  local on_topic, max, total, by_group = all_lag()
  local groups = {}
  for g in pairs(by_group) do groups[#groups + 1] = g end
  table.sort(groups)
  for _, g in ipairs(groups) do
    log.info("  %-28s lag %8d%s", g, by_group[g],
             on_topic[g] and string.format("  (%d on %s)", on_topic[g], params.topic) or "")
  end
  state.lag = max
  state.total_lag = total
  state.behind = max > params.lag_threshold
  log[state.behind and "warn" or "info"]("%s: lag %d (the most behind of %d group(s) on it; threshold %d)",
    params.topic, max, (function() local n = 0; for _ in pairs(on_topic) do n = n + 1 end; return n end)(),
    params.lag_threshold)
end)

step("Check topic details", {
  description = "Issue 6 › Diagnosis: `kafka-topics --bootstrap-server kafka:9092 --describe " ..
                "--topic normalized.market.ticks.v1`.",
}, function()
  local t = kafka.describe_topic{ bootstrap_server = params.bootstrap_server, topic = params.topic }
  state.partitions = t.partitions
  log.info("%s: %d partition(s), replication %s, %d under-replicated, %d offline", params.topic,
           t.partitions, tostring(t.replication), t.under_replicated, t.offline)
  if t.under_replicated > 0 or t.offline > 0 then
    log.warn("%s has under-replicated or offline partitions: a broker problem, see " ..
             "carbon-ingestion/dr-kafka-cluster-failure", params.topic)
  end
end)

step("Scale consumers", {
  description = "Issue 6 › Resolution 1: `kubectl scale deployment normalization-service " ..
                "--replicas=5 -n carbon-ingestion` (when it has fewer replicas).",
  when = function() return state.behind end,
}, function()
  local d = kubectl.get(deployment, ns())
  state.replicas_before = d.spec and d.spec.replicas or 0
  log.info("%s: %d replica(s)", deployment, state.replicas_before)
  if state.replicas_before < params.replicas then
    kubectl.scale(deployment, params.replicas, ns())
    state.scaled = true
    state.rehearsal = dry_run() -- nothing scaled: the lag measured again would be today's
  end
end)

step("Increase partitions", {
  description = "Issue 6 › Resolution 2 (if needed): `kafka-topics --bootstrap-server kafka:9092 " ..
                "--alter --topic normalized.market.ticks.v1 --partitions 10` -- needed when there " ..
                "are more consumers than partitions; after a confirm() (it cannot be undone).",
  when = function()
    return state.behind and state.partitions < params.partitions and state.partitions < params.replicas
  end,
}, function()
  if not confirm(string.format(
      "%s has %d partition(s) for %d consumers: raise it to %d partitions? Partitions cannot be " ..
      "removed again, and keyed messages map to different partitions afterwards.",
      params.topic, state.partitions, params.replicas, params.partitions)) then
    log.warn("partitions left at %d: only %d consumer(s) can work on %s", state.partitions,
             state.partitions, params.topic)
    return
  end
  exec({ "kafka-topics", "--bootstrap-server", params.bootstrap_server, "--alter",
         "--topic", params.topic, "--partitions", tostring(math.floor(params.partitions)) },
       { timeout = 120 })
  state.repartitioned = true
  state.rehearsal = dry_run() -- nothing repartitioned: no new lag to read either
end)

-- In a dry-run the rehearsal answers this wait itself: the deployment changed
-- only there, so there is no real rollout to watch.
step("Wait for the rollout", {
  description = "After Resolution 1: `kubectl rollout status` until the new consumers are available.",
  when = function() return state.scaled == true end,
}, function()
  kubectl.rollout_status(deployment, {
    namespace = params.namespace,
    wait_timeout = string.format("%ds", math.ceil(params.rollout_timeout)),
  })
end)

step("Re-check lag", {
  description = "After Resolution 1-2: the topic's lag again, 2 minutes later.",
  when = function() return (state.scaled or state.repartitioned) and not state.rehearsal end,
}, function()
  sleep(params.recheck_after)
  local _, max = all_lag()
  state.lag_after = max
  log[max > params.lag_threshold and "warn" or "info"]("%s: lag %d (was %d)", params.topic, max, state.lag)
end)

step("Optimize consumer configuration", {
  description = "Issue 6 › Resolution 3: increase max_poll_records, adjust fetch_min_bytes and " ..
                "fetch_max_wait_ms, enable compression -- the document gives no values or file: " ..
                "a checkpoint, when the lag is still above the threshold.",
  when = function() return state.behind and (state.lag_after or state.lag) > params.lag_threshold end,
}, function()
  state.consumer_config = confirm(string.format(
    "%s is still %d messages behind: consumer configuration reviewed (max_poll_records, " ..
    "fetch_min_bytes, fetch_max_wait_ms, compression)?", params.topic, state.lag_after or state.lag))
end)

step("Escalate to the Platform Team", {
  description = "Issue 6 › Escalation: if lag > 10,000 messages, escalate to Platform Team " ..
                "(Escalation Decision Tree: performance degraded -> P2).",
  when = function() return (state.lag_after or state.lag) > params.escalate_lag end,
}, function()
  local lag = state.lag_after or state.lag
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = false, performance_degraded = true })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  escalation.notify(ci.level(leaf.level), {
    summary = string.format("Kafka topic %s lag %d messages (> %d)", params.topic, lag, params.escalate_lag),
    details = { topic = params.topic, lag = lag, lag_before = state.lag, partitions = state.partitions,
                scaled_to = state.scaled and params.replicas or nil,
                escalate_to = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion/kafka-topic-lag/" .. params.topic,
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "%s is %d messages behind: %s (%s)", params.topic, lag, leaf.action, ci.contact_line(leaf.team))
end)
