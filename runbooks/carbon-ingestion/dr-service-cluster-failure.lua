local escalation = require "escalation"
local kafka = require "kafka"
local clickhouse = require "clickhouse"
local ci = require "carbon_ingestion"

runbook {
  name        = "carbon-ingestion/dr-service-cluster-failure",
  title       = "DR: service cluster failure -- fail over to the backup cluster",
  description = [[Confirms the primary cluster has lost the pipeline (its API or the services' ready pods),
pages on-call, checks that the backup cluster runs every pipeline service before any traffic is moved,
has the operator switch DNS / the load balancer (a checkpoint: the document names no tool for it), then
verifies the backup cluster's pods (`kubectl get pods -n carbon-ingestion --context=backup-cluster`)
and, when their endpoints are given, the data sync (ClickHouse replicas, Kafka topics).
002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 2: Service Cluster Failure.]],
  source      = "002_f134cbc51c64e878.txt › Disaster Recovery › Scenario 2: Service Cluster Failure",
  severity    = "P1",
  tags        = { "carbon-ingestion", "dr", "kubernetes", "failover", "P1" },
  mutates     = { "moves traffic to the backup cluster (done by the operator at a confirmation)",
                  "pages on-call / notifies the Platform Team" },
  params = {
    namespace               = { default = ci.namespace, help = "Kubernetes namespace of the pipeline" },
    primary_context         = { default = "", help = "kubectl context of the primary cluster (empty: the current one)" },
    backup_context          = { default = "backup-cluster", help = "kubectl context of the backup cluster" },
    force                   = { type = "boolean", default = false,
                                help = "fail over even when the primary cluster looks healthy" },
    ready_timeout           = { type = "number", default = 1800,
                                help = "seconds to wait for the backup cluster's pods to be ready (RTO: 30 minutes)" },
    backup_clickhouse_url   = { default = "",
                                help = "ClickHouse HTTP interface of the backup cluster, to check its replicas (empty: skip)" },
    max_replica_delay       = { type = "number", default = 300, help = "seconds of replication delay that count as out of sync" },
    backup_bootstrap_server = { default = "",
                                help = "Kafka of the backup cluster, to check the mirrored topics (empty: skip)" },
    topics                  = { type = "list", default = { ci.topic },
                                help = "topics MirrorMaker must have replicated to the backup Kafka" },
  },
}

local RTO = 1800 -- Scenario 2 › RTO: 30 minutes

local function opts(context)
  return { namespace = params.namespace, context = context ~= "" and context or nil }
end

-- { [deployment] = ready replicas } of the pipeline services in a cluster
local function services_ready(context)
  local list = kubectl.get("deployments", nil, opts(context))
  local ready = {}
  for _, d in ipairs(list.items or {}) do
    ready[d.metadata.name] = d.status and d.status.readyReplicas or 0
  end
  local missing = {}
  for _, s in ipairs(ci.services) do
    if (ready[s.deployment] or 0) < 1 then missing[#missing + 1] = s.deployment end
  end
  return ready, missing
end

step("Assess the primary cluster", {
  description = "Scenario 2: is the primary cluster really lost? Its API, and a ready pod for every " ..
                "pipeline service (Critical Services).",
}, function()
  state.started = now()
  local ok, ready, missing = pcall(services_ready, params.primary_context)
  if not ok then
    state.primary_down = true
    state.primary_error = ci.cause(ready)
    log.error("primary cluster: %s", state.primary_error)
  else
    state.primary_missing = missing
    state.primary_down = #missing > 0
    for _, s in ipairs(ci.services) do
      log.info("primary %-24s %d ready (%s if down)", s.deployment, ready[s.deployment] or 0, s.impact)
    end
  end
  state.failover = state.primary_down or params.force
  if not state.failover then
    log.info("the primary cluster runs every pipeline service: no failover (--param force=true to fail over anyway)")
  end
end)

step("Page on-call", {
  description = "Escalation Decision Tree: the service is completely down -> P1: page on-call immediately.",
  when = function() return state.primary_down end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = true })
  log.info("decision: %s -> %s", table.concat(path, "; "), leaf.action)
  state.paged = escalation.notify(ci.level(leaf.level), {
    summary = string.format("carbon-ingestion primary cluster down (%s): failing over to %s (DR Scenario 2)",
                            state.primary_error or ("no ready pods: " .. table.concat(state.primary_missing, ", ")),
                            params.backup_context),
    dedup_key = "carbon-ingestion-cluster-failure",
    source = ci.source,
  })
end)

step("Check the backup cluster before failover", {
  description = "Scenario 2 › 2, before any traffic moves: every pipeline service has a ready replica in " ..
                "the backup cluster (`kubectl get deployments -n carbon-ingestion --context=backup-cluster`).",
  when = function() return state.failover end,
}, function()
  local ok, ready, missing = pcall(services_ready, params.backup_context)
  if not ok then
    state.backup_problem = string.format("backup cluster %s: %s", params.backup_context, ci.cause(ready))
  elseif #missing > 0 then
    state.backup_problem = string.format("backup cluster %s has no ready replica of %s", params.backup_context,
                                         table.concat(missing, ", "))
  else
    for _, s in ipairs(ci.services) do
      log.info("%s %-24s %d ready", params.backup_context, s.deployment, ready[s.deployment])
    end
  end
  if state.backup_problem then log.error("%s: not failing over", state.backup_problem) end
end)

step("Fail over to the backup cluster", {
  description = "Scenario 2 › 1: update DNS / the load balancer to point to the backup cluster (or let " ..
                "Kubernetes federation do it) -- done by the operator, confirmed here.",
  when = function() return state.failover and not state.backup_problem end,
}, function()
  check(confirm(string.format("Point DNS / the load balancer of carbon-ingestion at %s now (or confirm " ..
                              "federation has moved the traffic). Answer yes once traffic goes to %s.",
                              params.backup_context, params.backup_context)),
        "failover not confirmed: traffic still goes to the primary cluster")
  state.failed_over = true
end)

step("Verify backup cluster health", {
  description = "Scenario 2 › 2: `kubectl get pods -n carbon-ingestion --context=backup-cluster` until " ..
                "every pod is Running and ready (within the 30 minute RTO).",
  when = function() return state.failed_over == true end,
}, function()
  local last = {}
  local ok, err = pcall(wait_until, function()
    local pods = kubectl.get("pods", nil, opts(params.backup_context))
    local total, ready, bad = 0, 0, {}
    for _, p in ipairs(pods.items or {}) do
      total = total + 1
      if p.status and p.status.phase == "Running" and ci.pod_ready(p) then
        ready = ready + 1
      elseif not (p.status and p.status.phase == "Succeeded") then
        bad[#bad + 1] = string.format("%s (%s)", p.metadata.name, p.status and p.status.phase or "?")
      else
        total = total - 1
      end
    end
    last = { total = total, ready = ready, bad = bad }
    return total > 0 and ready == total
  end, { timeout = params.ready_timeout, every = 15, what = params.backup_context .. " pods ready" })
  state.pods_total, state.pods_ready = last.total, last.ready
  if ok then
    log.info("%s: %d/%d pods ready", params.backup_context, last.ready, last.total)
  else
    state.health_problem = string.format("%s: %d/%d pods ready, not ready: %s", params.backup_context,
                                         last.ready or 0, last.total or 0, table.concat(last.bad or {}, ", "))
    log.error("%s (%s)", state.health_problem, ci.cause(err))
  end
end)

step("Check data sync", {
  description = "Scenario 2 › 3: ClickHouse replication (system.replicas of the backup ClickHouse: read-only " ..
                "or delayed replicas) and Kafka MirrorMaker (the topics exist in the backup Kafka); only the " ..
                "endpoints given as params.",
  when = function() return state.failed_over == true and (params.backup_clickhouse_url ~= "" or
                                                          params.backup_bootstrap_server ~= "") end,
}, function()
  state.sync_problems = {}
  if params.backup_clickhouse_url ~= "" then
    local rows = clickhouse.client(params.backup_clickhouse_url):query(string.format(
      "SELECT database, table, is_readonly, absolute_delay, queue_size FROM system.replicas " ..
      "WHERE database = '%s' ORDER BY table", ci.clickhouse_database))
    for _, r in ipairs(rows) do
      local delay = tonumber(r.absolute_delay) or 0
      if tonumber(r.is_readonly) == 1 or delay > params.max_replica_delay then
        state.sync_problems[#state.sync_problems + 1] = string.format("ClickHouse %s.%s %s, %d s behind, queue %s",
          r.database, r.table, tonumber(r.is_readonly) == 1 and "read-only" or "writable", delay, tostring(r.queue_size))
      end
    end
    log.info("ClickHouse %s: %d replicated table(s) checked", params.backup_clickhouse_url, #rows)
  end
  if params.backup_bootstrap_server ~= "" then
    local have = {}
    for _, t in ipairs(kafka.topics{ bootstrap_server = params.backup_bootstrap_server }) do have[t] = true end
    for _, t in ipairs(params.topics) do
      if not have[t] then
        state.sync_problems[#state.sync_problems + 1] = string.format("Kafka %s has no topic %s (MirrorMaker)",
                                                                      params.backup_bootstrap_server, t)
      end
    end
  end
  for _, p in ipairs(state.sync_problems) do log.error("%s", p) end
end)

step("Escalate or close", {
  description = "Escalation Decision Tree over the result: no failover possible -> P1 page; backup cluster " ..
                "or data sync not right -> P2 Platform Team; else the failover is announced. RTO 30 min.",
  when = function() return state.failover end,
}, function()
  local problems = {}
  if state.backup_problem then problems[#problems + 1] = state.backup_problem end
  if state.health_problem then problems[#problems + 1] = state.health_problem end
  for _, p in ipairs(state.sync_problems or {}) do problems[#problems + 1] = p end
  local elapsed = now() - state.started
  log[elapsed > RTO and "warn" or "info"]("%.0f min since the assessment (RTO 30 min)", elapsed / 60)
  if #problems == 0 then
    notify.slack{ text = string.format("[resolved] carbon-ingestion failed over to %s: %d/%d pods ready%s",
                                       params.backup_context, state.pods_ready, state.pods_total,
                                       state.sync_problems and ", data in sync" or "") }
    return
  end
  local leaf, path = escalation.decide(ci.decision_tree, {
    service_down = state.backup_problem ~= nil,
    performance_degraded = true,
  })
  log.info("decision: %s -> %s", table.concat(path, "; "), leaf.action)
  state.escalated = leaf.level
  escalation.notify(ci.level(leaf.level), {
    summary = "carbon-ingestion cluster failover incomplete: " .. table.concat(problems, "; "),
    details = { backup_context = params.backup_context, team = ci.contact_line(leaf.team) },
    dedup_key = "carbon-ingestion-cluster-failure",
    source = ci.source,
  })
  check(false, "failover to %s not complete (%s): %s", params.backup_context, leaf.action,
        table.concat(problems, "; "))
end)
