-- carbon-ingestion/planned-maintenance: the Planned Maintenance Window of the
-- 254Carbon ingestion platform's Operations Runbook, on Kubernetes.
--
--   runbook run carbon-ingestion/planned-maintenance --param phase=pre \
--       --param window="Sat 02:00-04:00 UTC" --param summary="ClickHouse upgrade"   # T-24 hours
--   runbook run carbon-ingestion/planned-maintenance --param phase=window --rollback
--   runbook run carbon-ingestion/planned-maintenance --param phase=window \
--       --param tasks=database-maintenance --rollback
--
-- --rollback is worth giving in the window: when a step after "Stop
-- consumers" fails, its undo scales the consumers back to their replicas.

local ci = require "carbon_ingestion"
local health = require "health"
local kafka = require "kafka"

local CONSUMERS = {}
for _, s in ipairs(ci.services) do CONSUMERS[#CONSUMERS + 1] = s.deployment end

runbook {
  name        = "carbon-ingestion/planned-maintenance",
  title       = "Planned maintenance window (backup, stop consumers, maintain, resume)",
  description = [[Pre-maintenance (T-24 hours): notifies the stakeholders on Slack, backs up all
data (clickhouse-backup create) and checks the rollback plan and the staging test with the operator.
During: maintenance mode checkpoint, stops the consumers (each deployment scaled to 0, its replicas
remembered; undo scales them back), the maintenance tasks (a checkpoint, or
carbon-ingestion/database-maintenance), validation tests (ClickHouse, Kafka, data quality service).
Post: resumes the consumers, waits for their pods and for the consumer lag to fall, checks the
logs, the services' health and that offsets advance, and announces the completion.
002_f134cbc51c64e878.txt › Maintenance Procedures › Planned Maintenance Window.]],
  source      = "002_f134cbc51c64e878.txt › Maintenance Procedures › Planned Maintenance Window",
  schedule    = "on demand",
  tags        = { "carbon-ingestion", "maintenance", "kubectl", "clickhouse", "on demand" },
  mutates     = { "notifies the stakeholders on Slack (announcement and completion)",
                  "creates a ClickHouse backup (clickhouse-backup create)",
                  "scales the consumer deployments to 0 and back (kubectl scale)",
                  "with tasks=database-maintenance: OPTIMIZE, drops old partitions, deletes old rows (after confirm)" },
  params = {
    phase            = { default = "all", choices = { "all", "pre", "window" },
                         help = "pre: the T-24 hours steps only; window: during + post; all: everything" },
    summary          = { default = "planned maintenance", help = "what the maintenance does, for the notifications" },
    window           = { default = "", example = "Sat 2026-11-28 02:00-04:00 UTC",
                         help = "when the window is, for the announcement" },
    namespace        = { default = ci.namespace, help = "Kubernetes namespace" },
    consumers        = { type = "list", default = CONSUMERS,
                         help = "the consumer deployments to stop (their consumer groups have the same names)" },
    backup_name      = { default = "", help = "name of the backup (empty: carbon-ingestion-maintenance-<UTC time>)" },
    backup_command   = { type = "list", default = { "clickhouse-backup" },
                         help = "how to run clickhouse-backup where ClickHouse's files are, e.g. " ..
                                "kubectl,exec,clickhouse-0,--,clickhouse-backup" },
    backup_timeout   = { type = "number", default = 14400, help = "seconds the backup may take" },
    tasks            = { default = "checkpoint", choices = { "checkpoint", "database-maintenance" },
                         help = "the maintenance tasks: a checkpoint for the operator, or run " ..
                                "carbon-ingestion/database-maintenance" },
    retention_days   = { type = "number", default = 365,
                         help = "tasks=database-maintenance: days of data to keep" },
    clickhouse       = { default = ci.clickhouse_url, help = "ClickHouse HTTP interface" },
    clickhouse_user  = { default = "default", help = "tasks=database-maintenance: ClickHouse user" },
    clickhouse_password = { secret = true, default = "",
                         help = "tasks=database-maintenance: ClickHouse password (empty: none)" },
    bootstrap_server = { default = ci.bootstrap_server, help = "Kafka bootstrap server" },
    host             = { default = "localhost", help = "where the services' ports answer (/health)" },
    validation_urls  = { type = "list", default = {},
                         help = "more URLs that must answer 2xx in the validation tests" },
    stop_timeout     = { type = "number", default = 300, help = "seconds for the consumers' pods to be gone" },
    ready_timeout    = { type = "number", default = 600, help = "seconds for the consumers' pods to be ready again" },
    lag_threshold    = { type = "number", default = ci.thresholds.consumer_lag,
                         help = "total consumer lag (messages) the consumers must get under (Issue 2: 1000)" },
    monitor_timeout  = { type = "number", default = 1800, help = "seconds for the lag to fall under the threshold" },
    log_tail         = { type = "number", default = 200, help = "log lines of each consumer to look for errors in" },
  },
}

check(#params.consumers > 0, "no consumer deployment given")

local PRE = params.phase == "all" or params.phase == "pre"
local WINDOW = params.phase == "all" or params.phase == "window"

local function ns() return { namespace = params.namespace } end
local function list_text(t) return table.concat(t, ", ") end

local function backup_cmd(...)
  local argv = {}
  for _, a in ipairs(params.backup_command) do argv[#argv + 1] = a end
  for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
  return argv
end

-- { [deployment] = the Deployment object } of the namespace
local function deployments()
  local by = {}
  for _, d in ipairs(kubectl.get("deployments", nil, ns()).items or {}) do by[d.metadata.name] = d end
  return by
end

-- scale every consumer back to the replicas it had (undo of "Stop consumers",
-- and "Resume services")
local function scale_back(why)
  for _, dep in ipairs(params.consumers) do
    local n = state.replicas and state.replicas[dep]
    if n and n > 0 then
      kubectl.scale("deployment/" .. dep, n, ns())
      log.info("%s: scaled back to %d replica(s) (%s)", dep, n, why)
    end
  end
  state.resumed = true
end

-- consumer lag per group -> total lag, total committed offsets, { group = lag }
local function lag_now()
  local total, offsets, by = 0, 0, {}
  for _, dep in ipairs(params.consumers) do
    local l = kafka.consumer_lag{ bootstrap_server = params.bootstrap_server, group = dep }
    total = total + l.total
    by[dep] = l.total
    for _, r in ipairs(l.rows) do offsets = offsets + (r.current or 0) end
  end
  return total, offsets, by
end

-- ---- Pre-Maintenance (T-24 hours) -----------------------------------------

step("Notify stakeholders", {
  description = "Pre-Maintenance (T-24 hours): notify stakeholders (Slack).",
  when = PRE,
}, function()
  notify.slack{ text = string.format(
    "Planned maintenance of the 254Carbon ingestion platform%s: %s. The consumers (%s) will be " ..
    "stopped during the window; all data is backed up first. Contact: %s",
    params.window ~= "" and (" (" .. params.window .. ")") or "", params.summary,
    list_text(params.consumers), ci.contact_line("platform")) }
  state.announced = true
end)

step("Create backup of all data", {
  description = "Pre-Maintenance: create backup of all data (`clickhouse-backup create NAME`), " ..
                "then check it is listed (`clickhouse-backup list local`).",
  when = PRE,
  timeout = params.backup_timeout + 300,
}, function()
  state.backup = params.backup_name ~= "" and params.backup_name
                 or "carbon-ingestion-maintenance-" .. os.date("!%Y%m%dT%H%M%SZ", math.floor(now()))
  exec(backup_cmd("create", state.backup), { timeout = params.backup_timeout })
  if dry_run() then return end -- no backup was created: there is none to find in the list
  local listed = exec(backup_cmd("list", "local"), { readonly = true, timeout = 300 })
  local found = false
  for line in (listed.stdout or ""):gmatch("[^\n]+") do
    if line:match("^%s*(%S+)") == state.backup then found = true end
  end
  check(found, "backup %s is not in `clickhouse-backup list local`:\n%s", state.backup, listed.stdout or "")
  log.info("backup %s created", state.backup)
end)

step("Prepare rollback plan, test in staging", {
  description = "Pre-Maintenance: prepare rollback plan; test changes in staging -- checkpoints " ..
                "the operator confirms (nothing is stopped before both are done).",
  when = PRE,
}, function()
  state.rollback_plan = confirm(string.format(
    "Rollback plan prepared (restore: `clickhouse-backup restore --schema --data %s`; scale the " ..
    "consumers back)?", state.backup or "<backup>"))
  check(state.rollback_plan, "no rollback plan: do not start the maintenance")
  state.staging_tested = confirm(string.format("Changes (%s) tested in staging?", params.summary))
  check(state.staging_tested, "changes not tested in staging: do not start the maintenance")
end)

-- ---- During Maintenance ----------------------------------------------------

step("Enable maintenance mode (if available)", {
  description = "During Maintenance: enable maintenance mode (if available) -- the document names " ..
                "none: a checkpoint.",
  when = WINDOW,
}, function()
  state.maintenance_mode = confirm("Maintenance mode enabled (or the platform has none)? Start the window?")
  check(state.maintenance_mode, "maintenance window not started")
end)

step("Stop consumers", {
  description = "During Maintenance: stop consumers to prevent data loss (`kubectl scale " ..
                "deployment/normalization-service --replicas=0 -n carbon-ingestion` for each, " ..
                "their replicas remembered), then wait until their pods are gone.",
  when = WINDOW,
  undo = function()
    if not state.resumed then scale_back("undo of Stop consumers") end
  end,
}, function()
  local by = deployments()
  state.replicas = {}
  local missing = {}
  for _, dep in ipairs(params.consumers) do
    local d = by[dep]
    if not d then missing[#missing + 1] = dep end
  end
  check(#missing == 0, "no deployment %s in %s", list_text(missing), params.namespace)
  state.resumed = false
  for _, dep in ipairs(params.consumers) do
    local n = by[dep].spec and by[dep].spec.replicas or 0
    state.replicas[dep] = n
    if n > 0 then
      kubectl.scale("deployment/" .. dep, 0, ns())
      state.rehearsal = dry_run() -- nothing stopped: no pods to wait for
      log.info("%s: %d -> 0 replica(s)", dep, n)
    else
      log.info("%s: already at 0 replicas", dep)
    end
  end
  if state.rehearsal then return end
  local selector = string.format("app in (%s)", table.concat(params.consumers, ","))
  local gone = pcall(wait_until, function()
    local pods = kubectl.get("pods", nil, { namespace = params.namespace, selector = selector })
    state.pods_left = #(pods.items or {})
    return state.pods_left == 0
  end, { timeout = params.stop_timeout, every = 5, what = "the consumers' pods gone" })
  -- a failing step has no undo: say what state the consumers are in
  check(gone, "%s consumer pod(s) still there %d s after scaling to 0 (`kubectl get pods -l '%s' -n %s`): " ..
        "do not start the maintenance; the deployments stay at 0 -- scale them back by hand if you stop here",
        tostring(state.pods_left or "?"), math.floor(params.stop_timeout), selector, params.namespace)
  log.info("consumers stopped: %s", list_text(params.consumers))
end)

step("Perform maintenance tasks", {
  description = "During Maintenance: perform maintenance tasks -- a checkpoint for the operator, or " ..
                "(tasks=database-maintenance) the Database Maintenance runbook.",
  when = WINDOW,
}, function()
  if params.tasks == "database-maintenance" then
    local st = run_runbook("carbon-ingestion/database-maintenance", {
      clickhouse = params.clickhouse, user = params.clickhouse_user, password = params.clickhouse_password,
      retention_days = params.retention_days })
    state.tasks = { database_maintenance = { cutoff = st.cutoff, dropped = st.dropped,
                                             vacuumed = st.vacuumed, verified = st.verified } }
    return
  end
  state.tasks = { checkpoint = confirm(string.format(
    "Consumers stopped. Perform the maintenance tasks now (%s). Done?", params.summary)) }
  check(state.tasks.checkpoint, "maintenance tasks not done: the consumers stay stopped " ..
        "(--rollback scales them back)")
end)

step("Run validation tests", {
  description = "During Maintenance: run validation tests -- ClickHouse answers /ping, the data " ..
                "quality service /health (port 8514), the Kafka broker answers, and the extra " ..
                "validation_urls; the consumers stay stopped if one fails.",
  when = WINDOW,
}, function()
  local endpoints = {
    { name = "clickhouse", url = params.clickhouse .. "/ping", contains = "Ok." },
    { name = ci.quality_service.name,
      url = string.format("http://%s:%d/health", params.host, ci.quality_service.port) },
  }
  for _, u in ipairs(params.validation_urls) do endpoints[#endpoints + 1] = { url = u } end
  local r = health.check(endpoints, { timeout = 10 })
  health.report(r)
  local failed = {}
  for _, n in ipairs(r.down) do failed[#failed + 1] = n end
  local kafka_ok, why = kafka.broker_ready{ bootstrap_server = params.bootstrap_server }
  log[kafka_ok and "info" or "error"]("kafka %s: %s", params.bootstrap_server,
                                      kafka_ok and "answers" or ("NOT ready: " .. tostring(why)))
  if not kafka_ok then failed[#failed + 1] = "kafka" end
  state.validation_failed = failed
  check(#failed == 0, "validation failed: %s -- the consumers stay stopped; execute the rollback plan " ..
        "(--rollback scales them back)", list_text(failed))
end)

-- ---- Post-Maintenance ------------------------------------------------------

step("Resume services", {
  description = "Post-Maintenance: resume services (`kubectl scale deployment/... --replicas=N` " ..
                "back to the replicas each had).",
  when = WINDOW,
}, function()
  check(state.replicas ~= nil, "no remembered replica counts: resume the run that stopped the " ..
        "consumers (--resume RUN_ID), or scale them by hand")
  scale_back("resume")
end)

step("Monitor for errors", {
  description = "Post-Maintenance: monitor for errors -- the consumers' pods ready again, their " ..
                "logs (errors), and the consumer lag (`kafka-consumer-groups --describe --group " ..
                "...`) falling under 1000 messages.",
  when = function() return WINDOW and not state.rehearsal end,
}, function()
  wait_until(function()
    local by = deployments()
    local waiting = {}
    for _, dep in ipairs(params.consumers) do
      local want = state.replicas[dep] or 0
      local ready = by[dep] and by[dep].status and by[dep].status.readyReplicas or 0
      if ready < want then waiting[#waiting + 1] = string.format("%s %d/%d", dep, ready, want) end
    end
    state.not_ready = waiting
    return #waiting == 0
  end, { timeout = params.ready_timeout, every = 10, what = "the consumers' pods ready" })
  log.info("every consumer is ready")

  state.log_errors = 0
  for _, dep in ipairs(params.consumers) do
    if (state.replicas[dep] or 0) > 0 then
      local text = kubectl.logs("deployment/" .. dep, { namespace = params.namespace, tail = params.log_tail,
                                                       check = false }) or ""
      for line in text:gmatch("[^\n]+") do
        if line:find("ERROR", 1, true) or line:find("CRITICAL", 1, true) or line:find("Exception", 1, true)
           or line:find("Traceback", 1, true) then
          state.log_errors = state.log_errors + 1
          log.warn("%s | %s", dep, line)
        end
      end
    end
  end
  if state.log_errors > 0 then
    state.errors_accepted = confirm(string.format(
      "%d error line(s) in the consumers' logs since they resumed (above). Expected (e.g. reconnects)? " ..
      "Continue?", state.log_errors))
    check(state.errors_accepted, "%d error line(s) in the consumers' logs after the maintenance", state.log_errors)
  end

  local first = true
  local ok, err = pcall(wait_until, function()
    local total, offsets, by = lag_now()
    if first then state.lag_start, state.offsets_start, first = total, offsets, false end
    state.lag, state.lag_by_group = total, by
    return total <= params.lag_threshold
  end, { timeout = params.monitor_timeout, every = 60, what = "the consumer lag under the threshold" })
  log[ok and "info" or "error"]("consumer lag %s -> %s (threshold %d)", tostring(state.lag_start),
                                tostring(state.lag), params.lag_threshold)
  check(ok, "the consumer lag is still %s after %d s: the consumers are not catching up (%s)",
        tostring(state.lag), math.floor(params.monitor_timeout), (tostring(err):gsub("^[^\n]-%.lua:%d+: ", "")))
end)

step("Verify data flow", {
  description = "Post-Maintenance: verify data flow -- every service answers /health (the Appendix's " ..
                "`curl -f http://localhost:$port/health` loop, ports 8510-8514) and the consumers' " ..
                "committed offsets advanced since they resumed.",
  when = function() return WINDOW and not state.rehearsal end,
}, function()
  local r = health.check(ci.health_endpoints(params.host), { timeout = 10 })
  health.report(r)
  state.down = r.down
  local total, offsets = lag_now()
  state.consumed = offsets - (state.offsets_start or offsets)
  log.info("%d message(s) consumed since the consumers resumed, lag %d", state.consumed, total)
  if state.consumed <= 0 and total == 0 then
    log.warn("no message consumed and no lag: nothing was produced since the restart (cannot tell more)")
  end
  state.flowing = state.consumed > 0 or total == 0
  check(r.ok, "services down after the maintenance: %s", list_text(r.down))
  check(state.flowing, "the consumers committed no offset since they resumed (lag %d): data is not flowing", total)
end)

step("Send completion notification", {
  description = "Post-Maintenance: send completion notification (Slack).",
  when = WINDOW,
}, function()
  notify.slack{ text = string.format(
    "Planned maintenance of the 254Carbon ingestion platform completed: %s. Consumers resumed (%s)%s%s.",
    params.summary, list_text(params.consumers),
    state.backup and (", backup " .. state.backup) or "",
    state.lag and string.format(", consumer lag %d", state.lag) or "") }
  state.completed = true
end)
