-- carbon-ingestion/alert-response: the Alert Response table of the 254Carbon
-- ingestion platform's Operations Runbook -- one alert in, its action run.
--
--   runbook run carbon-ingestion/alert-response --param alert=ServiceDown --param service=projection
--   runbook run carbon-ingestion/alert-response --param alert=HighLatency --param service=enrichment --dry-run
--   runbook run carbon-ingestion/alert-response --param alert=DataLoss
--
-- ServiceDown and LowQualityScore run the runbooks of their issue
-- (carbon-ingestion/service-not-starting, carbon-ingestion/data-quality-degradation),
-- which escalate on their own; the others are done here.

local ci = require "carbon_ingestion"
local escalation = require "escalation"

-- Monitoring and Alerting › Alert Response, as data: priority (the Severity
-- Levels row it maps to), the alert's condition, the action and the
-- escalation rule.  immediately: escalate before acting, to `contact`.
local ALERTS = {
  { alert = "ServiceDown", priority = "P1", condition = "Service unavailable for > 2 minutes",
    action = "Restart service immediately", escalation = "If restart fails",
    runbook = "carbon-ingestion/service-not-starting" },
  { alert = "DataLoss", priority = "P1", condition = "Data loss detected",
    action = "Stop all writes, assess scope", escalation = "Immediately to Platform Lead",
    immediately = true, contact = "platform_lead" },
  { alert = "SecurityBreach", priority = "P1", condition = "Unauthorized access detected",
    action = "Isolate affected systems", escalation = "Immediately to Security Team",
    immediately = true, contact = "security" },
  { alert = "HighErrorRate", priority = "P2", condition = "Error rate > 10%",
    action = "Investigate logs, identify root cause", escalation = "If unresolved in 30 minutes",
    contact = "platform" },
  { alert = "LowQualityScore", priority = "P2", condition = "Quality score < 0.5",
    action = "Check data sources, review validation rules", escalation = "If quality doesn't improve in 1 hour",
    runbook = "carbon-ingestion/data-quality-degradation" },
  { alert = "HighLatency", priority = "P2", condition = "p95 latency > 10s",
    action = "Check resource usage, scale if needed", escalation = "If latency persists after scaling",
    contact = "platform" },
}
local NAMES = {}
for _, a in ipairs(ALERTS) do NAMES[#NAMES + 1] = a.alert end

-- who the immediate escalations go to (Contact Information; carbon_ingestion
-- has the Escalation Contacts, not these two)
local CONTACTS = {
  platform_lead = { team = "Platform Lead", line = "Platform Lead (On-Call Rotation › Escalation; " ..
                    "PagerDuty: Carbon Ingestion Platform)", slack = ci.contacts.platform.slack },
  security = { team = "Security Team", line = "Security Team (security@254carbon.com, Slack: #security)",
               slack = "#security" },
}

runbook {
  name        = "carbon-ingestion/alert-response",
  title       = "Alert response (ServiceDown, DataLoss, SecurityBreach, HighErrorRate, LowQualityScore, HighLatency)",
  description = [[Takes the alert that fired and does what the Alert Response table says:
ServiceDown -> carbon-ingestion/service-not-starting (restart, escalates if it fails); DataLoss ->
page the Platform Lead, stop all writes (the writer deployments scaled to 0, after confirm()),
assess scope; SecurityBreach -> page the Security Team, isolation checkpoint; HighErrorRate ->
error lines of the service's logs, escalate if unresolved; LowQualityScore ->
carbon-ingestion/data-quality-degradation; HighLatency -> kubectl top against the limits, scale
up if needed, escalate if latency persists.
002_f134cbc51c64e878.txt › Monitoring and Alerting › Alert Response.]],
  source      = "002_f134cbc51c64e878.txt › Monitoring and Alerting › Alert Response",
  tags        = { "carbon-ingestion", "incident", "alerts", "P1", "P2" },
  mutates     = { "ServiceDown: restarts the service (via carbon-ingestion/service-not-starting)",
                  "DataLoss: scales the writer deployments to 0 (after confirm)",
                  "HighLatency: scales the service's deployment up (kubectl scale)",
                  "pages / notifies (PagerDuty, Slack, email) by the alert's escalation" },
  params = {
    alert         = { required = true, choices = NAMES, help = "the alert that fired" },
    service       = { default = "normalization",
                      help = "the service the alert is about (normalization, enrichment, aggregation, projection)" },
    platform      = { default = "kubernetes", choices = { "kubernetes", "compose" },
                      help = "ServiceDown: where the platform runs" },
    namespace     = { default = ci.namespace, help = "Kubernetes namespace" },
    writers       = { type = "list", default = { "projection-service" },
                      help = "DataLoss: the deployments that write to storage (projection: ClickHouse + Redis)" },
    clickhouse    = { default = ci.clickhouse_url, help = "DataLoss: ClickHouse HTTP interface, to assess the scope" },
    quality_url   = { default = ci.quality_url, help = "LowQualityScore: the data quality service" },
    replicas      = { type = "number", default = 5,
                      help = "HighLatency: replicas to scale up to (Issue 2: --replicas=5)" },
    busy          = { type = "number", default = 0.8,
                      help = "HighLatency: CPU or memory use, as a share of the limit, that asks for scaling" },
    log_tail      = { type = "number", default = 500, help = "HighErrorRate: log lines to read" },
    details       = { default = "", help = "what the alert said (for the notifications)" },
  },
}

local row
for _, a in ipairs(ALERTS) do if a.alert == params.alert then row = a end end
local svc = ci.service(params.service)
check(svc ~= nil, "unknown service %q (one of normalization, enrichment, aggregation, projection)", params.service)
local deployment = "deployment/" .. svc.deployment
local function ns() return { namespace = params.namespace } end
local function is(name) return function() return params.alert == name end end

local function summary(text)
  return string.format("%s: %s -- %s%s", row.alert, row.condition, text,
                       params.details ~= "" and (" (" .. params.details .. ")") or "")
end

-- "980m" -> 980, "1.5" -> 1500 (millicores); "1210Mi" -> bytes
local function cpu_m(s)
  s = tostring(s or "")
  local m = s:match("^(%d+)m$")
  if m then return tonumber(m) end
  return tonumber(s) and tonumber(s) * 1000 or nil
end
local UNITS = { Ki = 2^10, Mi = 2^20, Gi = 2^30, Ti = 2^40, K = 1e3, M = 1e6, G = 1e9, T = 1e12 }
local function bytes(s)
  local n, u = tostring(s or ""):match("^([%d%.]+)(%a*)$")
  if not n then return nil end
  if u == "" then return tonumber(n) end
  return UNITS[u] and tonumber(n) * UNITS[u] or nil
end

step("Look up the alert", {
  description = "Alert Response: the alert's priority (Critical P1 / High P2), condition, action and " ..
                "escalation rule.",
}, function()
  local level = ci.level(row.priority)
  state.priority, state.action, state.escalation = row.priority, row.action, row.escalation
  log.warn("%s (%s %s, respond within %s): %s", row.alert, row.priority, level.title, level.response, row.condition)
  log.info("action: %s; escalate: %s", row.action, row.escalation)
  if row.runbook then log.info("runs %s", row.runbook) end
end)

step("Escalate immediately", {
  description = "Alert Response › DataLoss: escalate immediately to Platform Lead; SecurityBreach: " ..
                "immediately to Security Team (P1: Immediate page -- PagerDuty + Slack).",
  when = function() return row.immediately == true end,
}, function()
  local c = CONTACTS[row.contact]
  state.sent = escalation.notify(ci.level(row.priority), {
    summary = summary(row.action .. "; escalated immediately to " .. c.team),
    details = { alert = row.alert, action = row.action, escalate_to = c.line, details = params.details },
    dedup_key = "carbon-ingestion/alert/" .. row.alert,
    source = ci.source,
    slack = { channel = c.slack },
  })
  state.escalated = c.team
  log.warn("paged %s (%s)", c.line, table.concat(state.sent, ", "))
end)

step("ServiceDown: restart the service", {
  description = "Alert Response › ServiceDown: restart service immediately, escalate if restart " ..
                "fails -- carbon-ingestion/service-not-starting (Issue 1), which restarts the service " ..
                "and escalates when it stays down.",
  when = is("ServiceDown"),
}, function()
  local ok, st = pcall(run_runbook, row.runbook, { service = svc.name, platform = params.platform,
                                                   namespace = params.namespace })
  if ok then
    state.failing, state.restarted, state.resolved = st.failing, st.restarted, st.resolved
    log.info("%s: %s", svc.name, not st.failing and "running, nothing to restart" or
             st.restarted and "restarted" or "not restarted")
    return
  end
  state.resolved = false
  check(false, "%s did not bring %s back (it escalates itself): %s", row.runbook, svc.name,
        (tostring(st):gsub("^[^\n]-%.lua:%d+: ", "")))
end)

step("DataLoss: stop all writes", {
  description = "Alert Response › DataLoss: stop all writes (`kubectl scale deployment/projection-service " ..
                "--replicas=0 -n carbon-ingestion` for each writer), after a confirm().",
  when = is("DataLoss"),
}, function()
  local by = {}
  for _, d in ipairs(kubectl.get("deployments", nil, ns()).items or {}) do by[d.metadata.name] = d end
  state.writer_replicas = {}
  local names = {}
  for _, w in ipairs(params.writers) do
    check(by[w] ~= nil, "no deployment %s in %s", w, params.namespace)
    state.writer_replicas[w] = by[w].spec and by[w].spec.replicas or 0
    names[#names + 1] = string.format("%s (%d replicas)", w, state.writer_replicas[w])
  end
  if not confirm(string.format("Data loss: stop all writes -- scale %s to 0?", table.concat(names, ", "))) then
    log.warn("writes NOT stopped: %s keep writing", table.concat(params.writers, ", "))
    state.writes_stopped = false
    return
  end
  for _, w in ipairs(params.writers) do
    if state.writer_replicas[w] > 0 then kubectl.scale("deployment/" .. w, 0, ns()) end
  end
  state.writes_stopped = true
  log.warn("writes stopped; they stay stopped until the data is restored (carbon-ingestion/dr-complete-" ..
           "data-loss); resume with kubectl scale deployment/NAME --replicas=N")
end)

step("DataLoss: assess scope", {
  description = "Alert Response › DataLoss: assess scope -- rows per table of carbon_ingestion " ..
                "(system.parts) and the newest bar of gold_ohlc_bars; the recovery is " ..
                "carbon-ingestion/dr-complete-data-loss.",
  when = is("DataLoss"),
}, function()
  local ch = require("clickhouse").client(params.clickhouse)
  local ok, rows = pcall(ch.query, ch, string.format(
    "SELECT table, sum(rows) AS rows FROM system.parts WHERE database = '%s' AND active " ..
    "GROUP BY table ORDER BY table", ci.clickhouse_database))
  if not ok then
    log.error("cannot read ClickHouse (%s): %s", params.clickhouse, (tostring(rows):gsub("^[^\n]-%.lua:%d+: ", "")))
    state.scope = "unknown"
  else
    state.tables = {}
    for _, r in ipairs(rows) do
      state.tables[r.table] = tonumber(r.rows) or 0
      log.info("  %-28s %12d rows", r.table, tonumber(r.rows) or 0)
    end
    state.scope = string.format("%d table(s) in %s", #rows, ci.clickhouse_database)
  end
  log.warn("next: carbon-ingestion/dr-complete-data-loss (identify the time range, restore, reprocess)")
end)

step("SecurityBreach: isolate affected systems", {
  description = "Alert Response › SecurityBreach: isolate affected systems -- a checkpoint for a " ..
                "human (the document names no tool), after the Security Team was paged.",
  when = is("SecurityBreach"),
}, function()
  state.isolated = confirm("Unauthorized access: the affected systems are isolated (network policies, " ..
                           "revoked credentials, scaled down), with the Security Team?")
  check(state.isolated, "the affected systems are not isolated yet: the Security Team is paged")
end)

step("HighErrorRate: investigate logs", {
  description = "Alert Response › HighErrorRate: investigate logs (`kubectl logs deployment/" ..
                "normalization-service -n carbon-ingestion --tail=500`, error lines grouped), identify " ..
                "the root cause (the operator confirms it is resolved).",
  when = is("HighErrorRate"),
}, function()
  local text = kubectl.logs(deployment, { namespace = params.namespace, tail = params.log_tail,
                                          check = false }) or ""
  local lines, errors, counts, order = 0, 0, {}, {}
  for line in text:gmatch("[^\n]+") do
    lines = lines + 1
    if line:find("ERROR", 1, true) or line:find("CRITICAL", 1, true) or line:find("Exception", 1, true)
       or line:find("Traceback", 1, true) then
      errors = errors + 1
      -- the message without timestamps and numbers: errors of one kind count together
      local sig = line:gsub("^%S+%s+%S+%s+", ""):gsub("%d+", "N"):sub(1, 120)
      if not counts[sig] then counts[sig] = 0; order[#order + 1] = sig end
      counts[sig] = counts[sig] + 1
    end
  end
  table.sort(order, function(a, b) if counts[a] ~= counts[b] then return counts[a] > counts[b] end return a < b end)
  state.log_lines, state.log_errors, state.top_errors = lines, errors, {}
  for i = 1, math.min(5, #order) do
    state.top_errors[i] = order[i]
    log.warn("%5d x %s", counts[order[i]], order[i])
  end
  log[errors > 0 and "warn" or "info"]("%d error line(s) in the last %d lines of %s", errors, lines, deployment)
  state.resolved = confirm(string.format(
    "%d error line(s) in %s (most: %s). Root cause identified and resolved (within 30 minutes of the alert)?",
    errors, svc.deployment, order[1] or "none"))
  state.unresolved = not state.resolved
end)

step("LowQualityScore: check data sources", {
  description = "Alert Response › LowQualityScore: check data sources, review validation rules -- " ..
                "carbon-ingestion/data-quality-degradation (Issue 3), which escalates to the Data " ..
                "Team below 0.5.",
  when = is("LowQualityScore"),
}, function()
  local ok, st = pcall(run_runbook, row.runbook, { quality_url = params.quality_url })
  if ok then
    state.quality_score, state.degraded = st.score, st.degraded
    log.info("quality score %.2f: %s", st.score or -1, st.degraded and "degraded" or "recovered")
    return
  end
  check(false, "%s: %s", row.runbook, (tostring(st):gsub("^[^\n]-%.lua:%d+: ", "")))
end)

step("HighLatency: check resource usage", {
  description = "Alert Response › HighLatency: check resource usage (`kubectl top pod -l " ..
                "app=enrichment-service -n carbon-ingestion`) against the containers' limits.",
  when = is("HighLatency"),
}, function()
  local d = kubectl.get(deployment, ns())
  state.replicas_before = d.spec and d.spec.replicas or 0
  local cpu_limit, mem_limit = 0, 0
  for _, c in ipairs(d.spec and d.spec.template and d.spec.template.spec.containers or {}) do
    local res = c.resources or {}
    local lim, req = res.limits or {}, res.requests or {}
    cpu_limit = cpu_limit + (cpu_m(lim.cpu or req.cpu) or 0)
    mem_limit = mem_limit + (bytes(lim.memory or req.memory) or 0)
  end
  local top = kubectl.top("pod", nil, { namespace = params.namespace, selector = "app=" .. svc.deployment })
  local cpu, mem, pods = 0, 0, 0
  for line in tostring(top or ""):gmatch("[^\n]+") do
    local name, c, m = line:match("^(%S+)%s+(%S+)%s+(%S+)")
    if name and name ~= "NAME" and cpu_m(c) then
      pods = pods + 1
      cpu, mem = cpu + cpu_m(c), mem + (bytes(m) or 0)
      log.info("  %-44s %8s %10s", name, c, m)
    end
  end
  check(pods > 0, "kubectl top shows no pod of %s (metrics-server?)", svc.deployment)
  state.cpu_pct = cpu_limit > 0 and math.floor(cpu / pods / cpu_limit * 100 + 0.5) or nil
  state.mem_pct = mem_limit > 0 and math.floor(mem / pods / mem_limit * 100 + 0.5) or nil
  if not state.cpu_pct and not state.mem_pct then
    log.warn("%s has no CPU or memory limits: the operator decides whether to scale", svc.deployment)
    state.busy = confirm(string.format("%s: %d pod(s), %.0fm CPU and %.0f MiB each, no limits. Scale to %d replicas?",
                                       svc.deployment, pods, cpu / pods, mem / pods / 2^20, params.replicas))
  else
    state.busy = (state.cpu_pct or 0) >= params.busy * 100 or (state.mem_pct or 0) >= params.busy * 100
  end
  log[state.busy and "warn" or "info"]("%s: %d replica(s), CPU %s%%, memory %s%% of the limits%s",
    svc.deployment, state.replicas_before, tostring(state.cpu_pct or "?"), tostring(state.mem_pct or "?"),
    state.busy and " -- busy: scale" or "")
end)

step("HighLatency: scale if needed", {
  description = "Alert Response › HighLatency: scale if needed (`kubectl scale deployment " ..
                "enrichment-service --replicas=5 -n carbon-ingestion`), wait for the rollout, then " ..
                "ask whether the p95 latency is back under 10 s.",
  when = is("HighLatency"),
}, function()
  if state.busy and state.replicas_before < params.replicas then
    kubectl.scale(deployment, params.replicas, ns())
    state.scaled = true
    -- in a dry-run the rehearsal answers this wait: the deployment changed only there
    kubectl.rollout_status(deployment, { namespace = params.namespace, wait_timeout = "300s" })
    if dry_run() then return end -- nothing scaled: today's latency would not tell
  elseif state.busy then
    log.warn("%s already has %d replica(s) (>= %d)", svc.deployment, state.replicas_before, params.replicas)
  end
  state.latency_ok = confirm(string.format(
    "%s: p95 latency back under 10 s%s (Grafana: http://grafana:3000/d/pipeline-monitoring)?",
    svc.deployment, state.scaled and " after scaling" or ""))
  state.unresolved = not state.latency_ok
end)

step("Escalate", {
  description = "Alert Response › HighErrorRate: escalate if unresolved in 30 minutes; HighLatency: " ..
                "if latency persists after scaling (P2: email + Slack, Platform Team).",
  when = function() return state.unresolved == true end,
}, function()
  local what = row.alert == "HighLatency"
    and string.format("%s latency persists%s", svc.deployment, state.scaled and
                      string.format(" after scaling to %d replicas", params.replicas) or "")
    or string.format("%s: root cause not found (%d error line(s); most: %s)", svc.deployment,
                     state.log_errors or 0, state.top_errors and state.top_errors[1] or "none")
  state.sent = escalation.notify(ci.level(row.priority), {
    summary = summary(what),
    details = { alert = row.alert, service = svc.deployment, top_errors = state.top_errors,
                cpu_pct = state.cpu_pct, mem_pct = state.mem_pct, scaled = state.scaled,
                escalate_to = ci.contact_line(row.contact) },
    dedup_key = "carbon-ingestion/alert/" .. row.alert .. "/" .. svc.name,
    source = ci.source,
  })
  state.escalated = ci.contacts[row.contact].team
  check(false, "%s: escalated (%s) to %s", what, table.concat(state.sent, ", "), ci.contact_line(row.contact))
end)
