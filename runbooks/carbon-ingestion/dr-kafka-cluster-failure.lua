local kafka = require "kafka"
local escalation = require "escalation"
local ci = require "carbon_ingestion"

runbook {
  name        = "carbon-ingestion/dr-kafka-cluster-failure",
  title       = "DR: Kafka cluster failure -- rolling broker restart, replication and consumption checks",
  description = [[Asks the cluster (`kafka-broker-api-versions`) and the broker pods for their state,
pages on-call when Kafka does not answer (complete pipeline failure), restarts the brokers one at a
time (`kubectl delete pod`, `kubectl wait --for=condition=ready`, then waits until Kafka answers
before touching the next), waits for every partition to be fully replicated again
(`kafka-topics --describe`) and checks that the services' consumer groups resume.
002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 3: Kafka Cluster Failure.]],
  source      = "002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 3: Kafka Cluster Failure",
  severity    = "P1",
  tags        = { "carbon-ingestion", "dr", "kafka", "P1" },
  mutates     = { "deletes Kafka broker pods one at a time (the StatefulSet recreates them)",
                  "pages on-call / notifies the Platform Team" },
  params = {
    bootstrap_server    = { default = ci.bootstrap_server, help = "Kafka bootstrap server" },
    kafka_namespace     = { default = "kafka", help = "namespace of the Kafka brokers (kubectl ... -n kafka)" },
    statefulset         = { default = "kafka", help = "the brokers' StatefulSet (its pods are kafka-0, kafka-1, ...)" },
    brokers             = { type = "list", default = {},
                            help = "broker pods to restart, in order (default: the StatefulSet's pods that are " ..
                                   "not ready, or all of them when Kafka does not answer)" },
    restart_all         = { type = "boolean", default = false,
                            help = "restart every broker, one at a time, even when the cluster looks healthy" },
    broker_address      = { default = "",
                            help = "address of one broker for its readiness check, {broker} replaced by the pod " ..
                                   "name (e.g. {broker}.kafka-headless.kafka.svc:9092); empty: the bootstrap server" },
    ready_timeout       = { type = "number", default = 300, help = "seconds to wait for each broker (kubectl wait --timeout=300s)" },
    replication_timeout = { type = "number", default = 600, help = "seconds to wait for under-replicated partitions to catch up" },
    groups              = { type = "list", default = {},
                            help = "consumer groups to watch (default: the pipeline services' groups)" },
    lag_threshold       = { type = "number", default = ci.thresholds.consumer_lag, help = "consumer lag above which a group is behind (Issue 2)" },
    flow_interval       = { type = "number", default = 60, help = "seconds between the two consumer-group samples" },
  },
}

local RTO = 3600 -- Scenario 3 › RTO: 1 hour

local function kns() return { namespace = params.kafka_namespace } end

local function address_of(broker)
  if params.broker_address == "" then return params.bootstrap_server end
  return (params.broker_address:gsub("{broker}", broker))
end

local function groups()
  if #params.groups > 0 then return params.groups end
  local out = {}
  for _, s in ipairs(ci.services) do out[#out + 1] = s.deployment end
  return out
end

step("Assess Kafka cluster state", {
  description = "Scenario 3 › 1: `kafka-broker-api-versions --bootstrap-server kafka:9092`, and the " ..
                "broker pods of the StatefulSet (which are not ready).",
}, function()
  state.started = now()
  local ok, why = kafka.broker_ready{ bootstrap_server = params.bootstrap_server }
  state.reachable = ok
  if ok then
    log.info("%s answers", params.bootstrap_server)
  else
    log.error("%s does not answer: %s", params.bootstrap_server, tostring(why))
  end
  local got, sts = pcall(kubectl.get, "statefulset", params.statefulset, kns())
  if not got then
    -- Kafka's state is known: page first (next step), then stop at the restart
    state.k8s_error = ci.cause(sts)
    state.healthy, state.to_restart = false, {}
    log.error("cannot read the brokers' pods: %s", state.k8s_error)
    return
  end
  local replicas = sts.spec and sts.spec.replicas or 0
  if replicas < 1 then
    state.k8s_error = string.format("statefulset/%s in %s has no replicas (scaled to 0?)", params.statefulset,
                                    params.kafka_namespace)
    state.healthy, state.to_restart = false, {}
    log.error("%s", state.k8s_error)
    return
  end
  local labels = {}
  for k, v in pairs(sts.spec and sts.spec.selector and sts.spec.selector.matchLabels or {}) do
    labels[#labels + 1] = k .. "=" .. v
  end
  table.sort(labels)
  local ready = {}
  if #labels > 0 then
    local pods = kubectl.get("pods", nil, { namespace = params.kafka_namespace, selector = table.concat(labels, ",") })
    for _, p in ipairs(pods.items or {}) do ready[p.metadata.name] = ci.pod_ready(p) end
  end
  state.brokers, state.unready = {}, {}
  for i = 0, replicas - 1 do
    local name = string.format("%s-%d", params.statefulset, i)
    state.brokers[#state.brokers + 1] = name
    if not ready[name] then state.unready[#state.unready + 1] = name end
    log.info("%-12s %s", name, ready[name] and "ready" or (ready[name] == nil and "missing" or "NOT ready"))
  end
  if #params.brokers > 0 then
    state.to_restart = params.brokers
  elseif params.restart_all or not ok then
    state.to_restart = state.brokers
  else
    state.to_restart = state.unready
  end
  state.healthy = ok and #state.unready == 0
  log[state.healthy and "info" or "warn"]("%d/%d brokers ready, cluster %s; %d broker(s) to restart",
    replicas - #state.unready, replicas, ok and "answering" or "NOT answering", #state.to_restart)
end)

step("Page on-call", {
  description = "Escalation Decision Tree: Kafka down is a complete pipeline failure (Critical Services) " ..
                "-> P1: page on-call immediately.",
  when = function() return not state.reachable end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = true })
  log.info("decision: %s -> %s", table.concat(path, "; "), leaf.action)
  state.paged = escalation.notify(ci.level(leaf.level), {
    summary = string.format("Kafka cluster %s does not answer: complete pipeline failure; " ..
                            "DR Scenario 3 (rolling broker restart) started", params.bootstrap_server),
    dedup_key = "carbon-ingestion-kafka-cluster-failure",
    source = ci.source,
  })
end)

step("Restart Kafka brokers one at a time", {
  description = "Scenario 3 › 2: `kubectl delete pod kafka-0 -n kafka`, `kubectl wait --for=condition=ready " ..
                "pod/kafka-0 -n kafka --timeout=300s`, then Kafka answers again before the next broker.",
  when = function() return #state.to_restart > 0 or state.k8s_error ~= nil end,
}, function()
  check(not state.k8s_error, "cannot restart the brokers without Kubernetes: %s", tostring(state.k8s_error))
  check(confirm(string.format("Restart %d Kafka broker(s) one at a time (%s) in namespace %s?",
                              #state.to_restart, table.concat(state.to_restart, ", "), params.kafka_namespace)),
        "broker restart declined by the operator")
  state.restarted = {}
  for _, broker in ipairs(state.to_restart) do
    local ok, err = pcall(function()
      kubectl.delete("pod", broker, kns())
      kubectl.wait("pod/" .. broker, { namespace = params.kafka_namespace, ["for"] = "condition=ready",
                                       timeout = params.ready_timeout })
      wait_until(function() return kafka.broker_ready{ bootstrap_server = address_of(broker) } end,
                 { timeout = params.ready_timeout, every = 10, what = broker .. " answering" })
    end)
    if not ok then
      state.restart_error = string.format("%s: %s", broker, ci.cause(err))
      log.error("%s did not come back; not restarting the brokers after it", state.restart_error)
      return
    end
    state.restarted[#state.restarted + 1] = broker
    log.info("%s restarted and ready", broker)
  end
end)

step("Verify topic replication", {
  description = "Scenario 3 › 3: `kafka-topics --bootstrap-server kafka:9092 --describe`: wait until no " ..
                "partition is under-replicated or offline.",
  when = function() return not state.restart_error end,
}, function()
  local topics = kafka.topics{ bootstrap_server = params.bootstrap_server }
  state.topics = #topics
  local last = {}
  local ok, err = pcall(wait_until, function()
    local under, offline, bad = 0, 0, {}
    for _, t in ipairs(topics) do
      local d = kafka.describe_topic{ bootstrap_server = params.bootstrap_server, topic = t }
      under, offline = under + d.under_replicated, offline + d.offline
      if d.under_replicated + d.offline > 0 then
        bad[#bad + 1] = string.format("%s (%d under-replicated, %d offline)", t, d.under_replicated, d.offline)
      end
    end
    last = { under = under, offline = offline, bad = bad }
    return under == 0 and offline == 0
  end, { timeout = params.replication_timeout, every = 15, what = "all partitions in sync" })
  state.under_replicated, state.offline = last.under, last.offline
  if ok then
    log.info("%d topic(s), every partition fully replicated", #topics)
  else
    state.replication_error = (last.bad and #last.bad > 0) and table.concat(last.bad, ", ") or ci.cause(err)
    log.error("replication has not caught up: %s (%s)", state.replication_error, ci.cause(err))
  end
end)

step("Resume service consumption", {
  description = "Scenario 3 › 4: services reconnect by themselves; monitor consumer lag and verify data " ..
                "flow resumes (two samples of each group, `kafka-consumer-groups --describe --group G`).",
  when = function() return not state.restart_error end,
}, function()
  local function sample()
    local out = {}
    for _, g in ipairs(groups()) do
      local ok, lag = pcall(kafka.consumer_lag, { bootstrap_server = params.bootstrap_server, group = g })
      if ok then
        local current, members = 0, 0
        for _, r in ipairs(lag.rows) do
          current = current + (r.current or 0)
          if r.consumer_id then members = members + 1 end
        end
        out[g] = { lag = lag.total, current = current, members = members }
      else
        out[g] = { error = tostring(lag) }
      end
    end
    return out
  end
  local first = sample()
  sleep(params.flow_interval)
  local second = sample()
  state.stalled, state.lagging = {}, {}
  for _, g in ipairs(groups()) do
    local a, b = first[g], second[g]
    if b.error then
      state.stalled[#state.stalled + 1] = g
      log.error("%s: %s", g, b.error)
    elseif b.members == 0 then
      state.stalled[#state.stalled + 1] = g
      log.error("%s: no active consumers (lag %d)", g, b.lag)
    elseif b.lag > 0 and not a.error and b.current <= a.current then
      state.stalled[#state.stalled + 1] = g
      log.error("%s: consumers connected but offsets not moving in %d s (lag %d)", g, params.flow_interval, b.lag)
    elseif b.lag > params.lag_threshold then
      state.lagging[#state.lagging + 1] = g
      log.warn("%s: consuming, lag %d (was %s) above %d", g, b.lag, a.error and "?" or tostring(a.lag),
               params.lag_threshold)
    else
      log.info("%s: consuming, lag %d", g, b.lag)
    end
  end
end)

step("Escalate or close", {
  description = "Escalation Decision Tree over the outcome: Kafka still down -> P1 page; replication or " ..
                "consumption not recovered -> P2 Platform Team; otherwise the incident is closed. RTO: 1 hour.",
}, function()
  local problems = {}
  if state.restart_error then problems[#problems + 1] = "broker restart failed: " .. state.restart_error end
  if state.replication_error then problems[#problems + 1] = "under-replicated: " .. state.replication_error end
  if state.stalled and #state.stalled > 0 then
    problems[#problems + 1] = "consumption not resumed: " .. table.concat(state.stalled, ", ")
  end
  if state.lagging and #state.lagging > 0 then
    problems[#problems + 1] = "consumer lag above threshold: " .. table.concat(state.lagging, ", ")
  end
  local down = not kafka.broker_ready{ bootstrap_server = params.bootstrap_server }
  local elapsed = now() - state.started
  log[elapsed > RTO and "warn" or "info"]("%.0f min since the assessment (RTO 60 min)", elapsed / 60)
  if #problems == 0 and not down then
    log.info("Kafka recovered: %d broker(s) restarted, replication in sync, consumers resumed",
             state.restarted and #state.restarted or 0)
    if state.paged then
      notify.slack{ text = string.format("[resolved] Kafka cluster %s recovered: %d broker(s) restarted, " ..
                                         "replication in sync, consumers resumed", params.bootstrap_server,
                                         state.restarted and #state.restarted or 0) }
    end
    return
  end
  if down then problems[#problems + 1] = "Kafka does not answer" end
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = down, performance_degraded = true })
  log.info("decision: %s -> %s", table.concat(path, "; "), leaf.action)
  state.escalated = leaf.level
  escalation.notify(ci.level(leaf.level), {
    summary = "Kafka cluster recovery incomplete: " .. table.concat(problems, "; "),
    details = { restarted = state.restarted, unready = state.unready, team = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion-kafka-cluster-failure",
    source = ci.source,
  })
  check(false, "Kafka cluster not recovered (%s): %s", leaf.action, table.concat(problems, "; "))
end)
