-- skafu: what the Skafu platform's runbooks share (003_8c25f41fdd75a5fb.txt,
-- "Operational Procedures"): the services and thresholds the document names,
-- its incident classification table as an escalation matrix, the post-incident
-- review template, and small readers of the `aws` CLI's JSON output.
--
-- Reads go through exec with readonly = true (so a dry-run shows real state);
-- the runbooks make every mutating `aws` call themselves with a plain exec,
-- so dry-run prints it and coverage sees the call site.
--
-- The document names no AWS region, cluster, database or load balancer: the
-- runbooks' params default to placeholders (us-east-1, skafu-production,
-- skafu-alb, skafu-api) that an environment in runbook.yaml overrides.

local M = {}

-- Daily Operations › Monitoring Dashboard Review › checkSystemHealth(): the
-- critical services, and the incident fact each one's outage sets (the
-- examples of Incident Classification).
M.SERVICES = {
  { name = "project-management-api",     fact = "project_creation_failing" },      -- P1 example
  { name = "template-management-api",    fact = "template_recommendations_slow" }, -- P2 example
  { name = "ai-integration-service",     fact = "ai_analysis_down" },              -- P1 example
  { name = "github-integration-service", fact = "github_integration_down" },       -- P1 example
  { name = "observability-service",      fact = "monitoring_alerts_not_firing" },  -- P2 example
}

-- Health Check Procedures › Performance_Metrics and Performance Monitoring ›
-- Key_Performance_Indicators.
M.THRESHOLDS = {
  p95_target_ms     = 200,    -- API response times (< 200ms P95)
  p95_alert_ms      = 500,    -- response_time alerting: "Threshold: 500ms"
  error_target_pct  = 1,      -- Error rates (< 1% across all services)
  error_alert_pct   = 2,      -- error_rate alerting: "Threshold: > 2%"
  utilization_pct   = 80,     -- Memory and CPU utilization (< 80%)
  healthy_pct       = 95,     -- overallStatus: >= 95 healthy
  degraded_pct      = 80,     --                >= 80 degraded, else unhealthy
}

-- Incident Response › Incident Classification as an escalation matrix (most
-- severe first). Facts named after the document's examples; the numeric ones
-- are the KPIs above (alerting threshold: P1 "significant performance
-- degradation"; target missed: P2 "moderate performance impact").
function M.matrix(t)
  t = setmetatable(t or {}, { __index = M.THRESHOLDS })
  return {
    { level = "P0", title = "Critical",
      description = "Complete service outage or security breach",
      response = "15 minutes", escalation_time = "30 minutes",
      stakeholders = { "CTO", "Engineering Manager", "Security Team" },
      communication = "Immediate status page update",
      notify = { "pagerduty", "slack" },
      any = {
        { "complete_outage", "==", true },       -- Complete service outage
        { "all_apis_5xx", "==", true },          -- All APIs returning 5xx errors
        { "database_unavailable", "==", true },  -- Database completely unavailable
        { "auth_compromised", "==", true },      -- Authentication system compromised
        { "data_breach", "==", true },           -- Data breach confirmed
      } },
    { level = "P1", title = "High",
      description = "Major feature unavailable or significant degradation",
      response = "1 hour", escalation_time = "2 hours",
      stakeholders = { "Engineering Manager", "Product Manager" },
      communication = "Status page update within 1 hour",
      notify = { "pagerduty", "slack" },
      any = {
        { "project_creation_failing", "==", true },
        { "ai_analysis_down", "==", true },
        { "github_integration_down", "==", true },
        { "significant_degradation", "==", true },
        { "overall_status", "==", "unhealthy" },       -- availability < 80 %
        { "p95_ms", ">=", t.p95_alert_ms },
        { "error_rate_pct", ">", t.error_alert_pct },
      } },
    { level = "P2", title = "Medium",
      description = "Minor feature issues or moderate performance impact",
      response = "4 hours", escalation_time = "8 hours",
      stakeholders = { "Tech Lead", "QA Lead" },
      communication = "Internal team notification",
      notify = { "slack" },
      any = {
        { "template_recommendations_slow", "==", true },
        { "noncritical_endpoints_erroring", "==", true },
        { "monitoring_alerts_not_firing", "==", true },
        { "minor_ui_issues", "==", true },
        { "moderate_performance_impact", "==", true },
        { "p95_ms", ">", t.p95_target_ms },
        { "error_rate_pct", ">=", t.error_target_pct },
        { "utilization_pct", ">=", t.utilization_pct },
      } },
    { level = "P3", title = "Low",
      description = "Cosmetic issues or minor inconveniences",
      response = "24 hours", escalation_time = "48 hours",
      stakeholders = { "Engineering Team" },
      communication = "Ticket tracking system",
      notify = { "email" },   -- the ticket system's mail-in address (runbook.yaml notify.email)
      default = true,
      any = {
        { "ui_styling_issues", "==", true },
        { "noncritical_log_errors", "==", true },
        { "documentation_gaps", "==", true },
        { "optimization_opportunities", "==", true },
      } },
  }
end

-- The facts every matrix criterion reads, with their "nothing wrong" value,
-- so a classification never compares against nil.
function M.base_facts()
  return {
    complete_outage = false, all_apis_5xx = false, database_unavailable = false,
    auth_compromised = false, data_breach = false,
    project_creation_failing = false, ai_analysis_down = false, github_integration_down = false,
    significant_degradation = false, overall_status = "healthy",
    template_recommendations_slow = false, noncritical_endpoints_erroring = false,
    monitoring_alerts_not_firing = false, minor_ui_issues = false, moderate_performance_impact = false,
    ui_styling_issues = false, noncritical_log_errors = false, documentation_gaps = false,
    optimization_opportunities = false,
    p95_ms = 0, error_rate_pct = 0, utilization_pct = 0,
  }
end

-- checkSystemHealth(): overallStatus from the share of healthy services.
function M.overall_status(availability_pct, t)
  t = setmetatable(t or {}, { __index = M.THRESHOLDS })
  if availability_pct >= t.healthy_pct then return "healthy" end
  if availability_pct >= t.degraded_pct then return "degraded" end
  return "unhealthy"
end

-- ---- aws CLI --------------------------------------------------------------------

-- argv of an aws CLI call with region and JSON output
function M.aws_argv(region, args)
  local argv = { "aws" }
  for _, a in ipairs(args) do argv[#argv + 1] = tostring(a) end
  argv[#argv + 1] = "--region"
  argv[#argv + 1] = region
  argv[#argv + 1] = "--output"
  argv[#argv + 1] = "json"
  return argv
end

-- a read-only aws call → its decoded JSON ({} when it prints nothing); with
-- opts.check = false a failure returns nil, the exec result
function M.aws(region, args, opts)
  opts = opts or {}
  local r = exec(M.aws_argv(region, args),
                 { readonly = true, timeout = opts.timeout or 120, check = opts.check })
  if not r.ok and opts.check == false then return nil, r end
  if not r.stdout or r.stdout:match("^%s*$") then return {} end
  return json.decode(r.stdout)
end

-- decode the output of a mutating aws call (nil in a dry-run: a simulated
-- exec prints nothing)
function M.decode(r)
  if not r.stdout or r.stdout:match("^%s*$") then return nil end
  return json.decode(r.stdout)
end

-- ISO 8601 (UTC "Z" or "+00:00", optional fraction) → Unix time
function M.iso_time(s)
  if type(s) == "number" then return s end
  local y, mo, d, h, mi, sec, rest = tostring(s):match("^(%d+)-(%d+)-(%d+)[T ](%d+):(%d+):(%d+)%.?%d*(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (proleptic Gregorian), no time zone involved
  local yy = mo <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(oh) * 3600 + tonumber(om) * 60
    t = sign == "+" and t - off or t + off
  end
  return t
end

function M.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- CloudWatch: one statistic of a metric over the last `hours`, aggregated
-- over the datapoints (Sum: total, Average: mean, Maximum and pNN: the
-- largest); nil when there are no datapoints.
--   M.metric(region, { namespace = "AWS/ApiGateway", metric = "Latency",
--                      dimensions = { ApiName = "skafu-api" }, stat = "p95", hours = 24 })
function M.metric(region, q)
  local hours = q.hours or 24
  local t1 = now()
  local args = { "cloudwatch", "get-metric-statistics", "--namespace", q.namespace,
                 "--metric-name", q.metric,
                 "--start-time", M.iso(t1 - hours * 3600), "--end-time", M.iso(t1),
                 "--period", tostring(q.period or math.floor(hours * 3600)) }
  local dims = {}
  for k in pairs(q.dimensions or {}) do dims[#dims + 1] = k end
  table.sort(dims)
  if #dims > 0 then
    args[#args + 1] = "--dimensions"
    for _, k in ipairs(dims) do args[#args + 1] = string.format("Name=%s,Value=%s", k, q.dimensions[k]) end
  end
  local stat = q.stat or "Average"
  if stat:match("^p%d") then
    args[#args + 1] = "--extended-statistics"
  else
    args[#args + 1] = "--statistics"
  end
  args[#args + 1] = stat
  local out = M.aws(region, args)
  local points = out.Datapoints or {}
  if #points == 0 then return nil end
  local agg
  for _, p in ipairs(points) do
    local v = stat:match("^p%d") and (p.ExtendedStatistics or {})[stat] or p[stat]
    if type(v) == "number" then
      if agg == nil then agg = v
      elseif stat == "Sum" or stat == "Average" then agg = agg + v
      elseif v > agg then agg = v end
    end
  end
  if agg and stat == "Average" then agg = agg / #points end
  return agg
end

-- ECS: the services of a cluster → { service, status, desired, running,
-- rollout, task_definition, healthy } in the order asked (describe-services
-- takes at most 10 at a time); a service ECS does not know is unhealthy.
function M.ecs_services(region, cluster, names)
  local byname, out = {}, {}
  for i = 1, #names, 10 do
    local args = { "ecs", "describe-services", "--cluster", cluster, "--services" }
    for j = i, math.min(i + 9, #names) do args[#args + 1] = names[j] end
    local r = M.aws(region, args)
    for _, s in ipairs(r.services or {}) do byname[s.serviceName] = s end
  end
  for _, name in ipairs(names) do
    local s = byname[name]
    if not s then
      out[#out + 1] = { service = name, status = "MISSING", desired = 0, running = 0, healthy = false }
    else
      local primary
      for _, d in ipairs(s.deployments or {}) do
        if d.status == "PRIMARY" then primary = d end
      end
      local row = { service = name, status = s.status, desired = s.desiredCount or 0,
                    running = s.runningCount or 0, pending = s.pendingCount or 0,
                    task_definition = s.taskDefinition,
                    rollout = primary and primary.rolloutState or nil,
                    deployments = #(s.deployments or {}) }
      row.healthy = s.status == "ACTIVE" and row.desired > 0 and row.running >= row.desired
      out[#out + 1] = row
    end
  end
  return out
end

-- RDS: one instance (nil when it does not exist, with check = false semantics)
function M.db_instance(region, id)
  local r, res = M.aws(region, { "rds", "describe-db-instances", "--db-instance-identifier", id },
                       { check = false })
  if not r then
    if (res.stderr or ""):match("DBInstanceNotFound") then return nil end
    error(string.format("aws rds describe-db-instances %s: %s", id,
                        (res.stderr or ""):match("([^\n]+)%s*$") or ("exit code " .. tostring(res.code))), 0)
  end
  return (r.DBInstances or {})[1]
end

-- RDS states in which the database still answers
M.DB_UP = { available = true, ["backing-up"] = true, modifying = true, ["configuring-log-exports"] = true,
            ["configuring-enhanced-monitoring"] = true, maintenance = true, upgrading = false,
            ["storage-optimization"] = true, ["storage-full"] = false }

-- ---- Post-Incident Review ----------------------------------------------------------

-- Incident Response › Post-Incident Review, as a document to fill in
M.REVIEW_TEMPLATE = [[
# Post-incident review: ${incident_id} — ${title}

| | |
|---|---|
| Severity | ${severity} (${severity_title}: ${severity_description}) |
| Detected | ${detected_at} |
| Resolved | ${resolved_at} |
| Review due | ${review_due} (within 48 hours of incident resolution) |
| Review written | ${written_at} |
| Incident Commander | ${commander} |

## Participants
${participants}

## Review areas

### Detection
- How was the incident detected? ${detection}
- Was detection timely? ${detection_timely}
- Could detection be improved?

### Response
- Was the response appropriate?
- Did we follow procedures?
- Were communication timelines met? (${severity}: response within ${response_time}, escalation within ${escalation_time}; ${communication})

### Resolution
- Was the root cause identified? ${root_cause}
- Was the fix appropriate? ${fix}
- Could resolution be faster? (time to resolve: ${duration})

### Prevention
- What could prevent this incident?
- Are there systemic issues?
- What monitoring is needed?

## Action items
| Kind | Action | Owner | Deadline |
|---|---|---|---|
| Immediate fixes required | | | |
| Process improvements | | | |
| Monitoring enhancements | | | |
| Training needs | | | |
| Documentation updates | | | |

## Follow-up
- [ ] Assign owners for action items
- [ ] Set completion deadlines
- [ ] Schedule progress reviews
- [ ] Update incident procedures

_Written by runbook skafu/post-incident-review from 003_8c25f41fdd75a5fb.txt › Incident Response › Post-Incident Review._
]]

-- ${name} → vars[name] (a missing value becomes "_to discuss_")
function M.render(template, vars)
  return (template:gsub("%${([%w_]+)}", function(k)
    local v = vars[k]
    if v == nil or v == "" then return "_to discuss_" end
    return tostring(v)
  end))
end

return M
