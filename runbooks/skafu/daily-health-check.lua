runbook {
  name        = "skafu/daily-health-check",
  title       = "Skafu: daily health check (system status, performance, services)",
  description = [[The document's Daily_Health_Checks › System_Status and Performance_Metrics, and
the Monitoring Dashboard Review's checkSystemHealth() (five critical services, overall status
healthy >= 95 %, degraded >= 80 %), read through the aws CLI. Anything wrong becomes an
incident fact, is classified P0-P3 with the Incident Classification table and notified on the
level's channels. 003_8c25f41fdd75a5fb.txt › Daily Operations › Health Check Procedures;
Monitoring Dashboard Review; Performance Optimization › Performance Monitoring.]],
  source      = "003_8c25f41fdd75a5fb.txt › Daily Operations › Health Check Procedures; Monitoring Dashboard Review",
  schedule    = "daily",
  tags        = { "skafu", "health", "daily" },
  mutates     = { "sends the incident notification when a check fails (PagerDuty/Slack/e-mail per level)" },
  params = {
    region      = { default = "us-east-1", help = "AWS region (the document names none)" },
    cluster     = { default = "skafu-production", help = "ECS cluster of the critical services (not in the document)" },
    services    = { type = "list", default = { "project-management-api", "template-management-api",
                    "ai-integration-service", "github-integration-service", "observability-service" },
                    help = "the critical services (checkSystemHealth)" },
    db_instance = { default = "skafu-production", help = "RDS instance identifier (not in the document)" },
    alb_name    = { default = "skafu-alb", help = "Application Load Balancer name (not in the document; empty: skip)" },
    api_name    = { default = "skafu-api", help = "API Gateway API name for the KPIs (not in the document)" },
    buckets     = { type = "list", default = {}, help = "S3 buckets whose accessibility to check (none named in the document)" },
    distribution_id = { default = "", help = "CloudFront distribution id (none named in the document; empty: skip)" },
    hours       = { type = "number", default = 24, help = "metrics window, hours (a daily check)" },
    p95_target_ms     = { type = "number", default = 200, help = "API response times < 200ms P95" },
    p95_alert_ms      = { type = "number", default = 500, help = "response_time alerting threshold 500ms" },
    error_target_pct  = { type = "number", default = 1, help = "error rates < 1% across all services" },
    error_alert_pct   = { type = "number", default = 2, help = "error_rate alerting threshold > 2%" },
    utilization_pct   = { type = "number", default = 80, help = "memory and CPU utilization < 80%" },
    lambda_timeout_ms = { type = "number", default = 30000, help = "Lambda function duration < 30s timeout" },
    aws_health  = { type = "boolean", default = true, help = "read the AWS Health API (needs a Business support plan)" },
    notify      = { type = "boolean", default = true, help = "classify and notify when something is wrong" },
  },
}

local skafu = require "skafu"
local escalation = require "escalation"

local function thresholds()
  return { p95_target_ms = params.p95_target_ms, p95_alert_ms = params.p95_alert_ms,
           error_target_pct = params.error_target_pct, error_alert_pct = params.error_alert_pct,
           utilization_pct = params.utilization_pct }
end

local function problem(fmt, ...)
  local msg = string.format(fmt, ...)
  state.problems[#state.problems + 1] = msg
  log.warn("%s", msg)
end

local function round2(x) return math.floor(x * 100 + 0.5) / 100 end

local function metric(q)
  q.hours = params.hours
  return skafu.metric(params.region, q)
end

step("AWS Service Health Dashboard", {
  description = "System_Status › AWS Service Health Dashboard: open events for the region " ..
                "(`aws health describe-events`, us-east-1 endpoint).",
  when = function() return params.aws_health end,
}, function()
  state.problems = state.problems or {}
  state.facts = state.facts or skafu.base_facts()
  local filter = json.encode({ eventStatusCodes = { "open" }, regions = { params.region, "global" } })
  local r, res = skafu.aws("us-east-1", { "health", "describe-events", "--filter", filter }, { check = false })
  if not r then
    log.warn("AWS Health API not available (%s): look at the AWS Health Dashboard by hand",
             ((res.stderr or ""):match("([^\n]+)%s*$")) or "exit " .. tostring(res.code))
    state.aws_health = "unavailable"
    return
  end
  state.aws_health = #(r.events or {})
  for _, e in ipairs(r.events or {}) do
    problem("AWS Health: %s %s in %s (%s)", e.service or "?", e.eventTypeCode or "?", e.region or "?",
            e.statusCode or "?")
  end
end)

step("Critical services", {
  description = "Monitoring Dashboard Review › checkSystemHealth(): the five services " ..
                "(`aws ecs describe-services`), serviceAvailability and overallStatus.",
}, function()
  state.problems = state.problems or {}
  state.facts = state.facts or skafu.base_facts()
  local fact_of = {}
  for _, s in ipairs(skafu.SERVICES) do fact_of[s.name] = s.fact end
  local rows = skafu.ecs_services(params.region, params.cluster, params.services)
  local healthy = 0
  for _, s in ipairs(rows) do
    if s.healthy then
      healthy = healthy + 1
      log.info("%-28s %d/%d running", s.service, s.running, s.desired)
    else
      problem("%s: %d of %d tasks running (%s)", s.service, s.running, s.desired, s.status)
      if fact_of[s.service] then state.facts[fact_of[s.service]] = true end
    end
  end
  state.availability_pct = #rows > 0 and healthy / #rows * 100 or 100
  state.overall_status = skafu.overall_status(state.availability_pct)
  state.facts.overall_status = state.overall_status
  if #rows > 0 and healthy == 0 then state.facts.complete_outage = true end
  log.info("service availability %.0f%%: %s", state.availability_pct, state.overall_status)
end)

step("Application Load Balancer health", {
  description = "System_Status › Application Load Balancer health: `aws elbv2 " ..
                "describe-load-balancers`, `describe-target-groups`, `describe-target-health`.",
  when = function() return params.alb_name ~= "" end,
}, function()
  local lb = (skafu.aws(params.region, { "elbv2", "describe-load-balancers", "--names", params.alb_name })
              .LoadBalancers or {})[1]
  check(lb, "load balancer %s not found", params.alb_name)
  if (lb.State or {}).Code ~= "active" then
    problem("ALB %s is %s", params.alb_name, tostring((lb.State or {}).Code))
  end
  local tgs = skafu.aws(params.region, { "elbv2", "describe-target-groups", "--load-balancer-arn",
                                         lb.LoadBalancerArn }).TargetGroups or {}
  local healthy_total, total = 0, 0
  for _, tg in ipairs(tgs) do
    local th = skafu.aws(params.region, { "elbv2", "describe-target-health", "--target-group-arn",
                                          tg.TargetGroupArn }).TargetHealthDescriptions or {}
    local healthy = 0
    for _, t in ipairs(th) do
      if (t.TargetHealth or {}).State == "healthy" then healthy = healthy + 1 end
    end
    healthy_total, total = healthy_total + healthy, total + #th
    if healthy < #th or #th == 0 then
      problem("target group %s: %d of %d targets healthy", tg.TargetGroupName or "?", healthy, #th)
    end
  end
  state.alb_healthy_targets = healthy_total
  if total == 0 or healthy_total == 0 then
    -- no healthy target: the ALB answers every API request with a 5xx
    state.facts.all_apis_5xx = true
  end
end)

step("Database connection status", {
  description = "System_Status › Database connection status: `aws rds describe-db-instances`.",
}, function()
  local db = skafu.db_instance(params.region, params.db_instance)
  state.db_status = db and db.DBInstanceStatus or "not found"
  if not skafu.DB_UP[state.db_status] then
    state.facts.database_unavailable = true
    problem("database %s is %s", params.db_instance, state.db_status)
  else
    log.info("database %s: %s", params.db_instance, state.db_status)
  end
end)

step("API response times and error rates", {
  description = "Performance_Metrics › API response times (< 200ms P95), error rates (< 1%); " ..
                "KPI alerting at 500ms and > 2% (`aws cloudwatch get-metric-statistics`, AWS/ApiGateway).",
}, function()
  local dims = { ApiName = params.api_name }
  local p95 = metric{ namespace = "AWS/ApiGateway", metric = "Latency", dimensions = dims, stat = "p95" }
  local count = metric{ namespace = "AWS/ApiGateway", metric = "Count", dimensions = dims, stat = "Sum" }
  local errors = metric{ namespace = "AWS/ApiGateway", metric = "5XXError", dimensions = dims, stat = "Sum" }
  state.p95_ms = p95
  state.error_rate_pct = (count and count > 0) and round2((errors or 0) / count * 100) or nil
  if p95 then
    state.facts.p95_ms = p95
    if p95 > params.p95_target_ms then
      problem("API P95 %.0f ms (target < %d ms, alert at %d ms)", p95, params.p95_target_ms, params.p95_alert_ms)
    end
  else
    log.warn("no API Gateway latency datapoints for %s", params.api_name)
  end
  if state.error_rate_pct then
    state.facts.error_rate_pct = state.error_rate_pct
    if state.error_rate_pct >= params.error_target_pct then
      problem("API 5xx rate %.2f%% (target < %g%%, alert above %g%%)", state.error_rate_pct,
              params.error_target_pct, params.error_alert_pct)
    end
  end
end)

step("Lambda function error rates and duration", {
  description = "System_Status › Lambda function error rates; Performance_Metrics › Lambda " ..
                "function duration (< 30s timeout) (AWS/Lambda Errors, Invocations, Duration).",
}, function()
  local errors = metric{ namespace = "AWS/Lambda", metric = "Errors", stat = "Sum" }
  local calls = metric{ namespace = "AWS/Lambda", metric = "Invocations", stat = "Sum" }
  local duration = metric{ namespace = "AWS/Lambda", metric = "Duration", stat = "Maximum" }
  state.lambda_error_rate_pct = (calls and calls > 0) and round2((errors or 0) / calls * 100) or 0
  state.lambda_max_duration_ms = duration
  if state.lambda_error_rate_pct >= params.error_target_pct then
    state.facts.noncritical_endpoints_erroring = true
    problem("Lambda error rate %.2f%% (target < %g%%)", state.lambda_error_rate_pct, params.error_target_pct)
  end
  if duration and duration >= params.lambda_timeout_ms then
    state.facts.moderate_performance_impact = true
    problem("a Lambda function ran %.0f ms: at the %d ms timeout", duration, params.lambda_timeout_ms)
  end
end)

step("Memory and CPU utilization", {
  description = "Performance_Metrics › Memory and CPU utilization (< 80%): AWS/ECS for the " ..
                "cluster, AWS/RDS for the database (Maximum).",
}, function()
  local ecs = { ClusterName = params.cluster }
  local values = {
    ["ECS CPU"] = metric{ namespace = "AWS/ECS", metric = "CPUUtilization", dimensions = ecs, stat = "Maximum" },
    ["ECS memory"] = metric{ namespace = "AWS/ECS", metric = "MemoryUtilization", dimensions = ecs, stat = "Maximum" },
    ["RDS CPU"] = metric{ namespace = "AWS/RDS", metric = "CPUUtilization",
                          dimensions = { DBInstanceIdentifier = params.db_instance }, stat = "Maximum" },
  }
  local top = 0
  for _, what in ipairs({ "ECS CPU", "ECS memory", "RDS CPU" }) do
    local v = values[what]
    if v then
      top = math.max(top, v)
      if v >= params.utilization_pct then problem("%s utilization peaked at %.0f%% (< %d%%)", what, v, params.utilization_pct) end
    end
  end
  state.utilization_pct = top
  state.facts.utilization_pct = top
end)

step("S3 bucket accessibility", {
  description = "System_Status › S3 bucket accessibility: `aws s3api head-bucket`.",
  when = function() return #params.buckets > 0 end,
}, function()
  for _, b in ipairs(params.buckets) do
    local r, res = skafu.aws(params.region, { "s3api", "head-bucket", "--bucket", b }, { check = false })
    if not r then
      state.facts.noncritical_endpoints_erroring = true
      problem("S3 bucket %s not accessible: %s", b, ((res.stderr or ""):match("([^\n]+)%s*$")) or "?")
    end
  end
end)

step("CloudFront distribution status", {
  description = "System_Status › CloudFront distribution status: `aws cloudfront get-distribution`.",
  when = function() return params.distribution_id ~= "" end,
}, function()
  local d = skafu.aws(params.region, { "cloudfront", "get-distribution", "--id", params.distribution_id }).Distribution or {}
  state.cloudfront = d.Status
  if not (d.DistributionConfig or {}).Enabled then
    state.facts.minor_ui_issues = true
    problem("CloudFront distribution %s is disabled", params.distribution_id)
  elseif d.Status ~= "Deployed" then
    log.info("CloudFront distribution %s: %s (a change is deploying)", params.distribution_id, tostring(d.Status))
  end
end)

step("Classify and notify", {
  description = "What failed, classified with Incident Classification (P0-P3) and sent on the " ..
                "level's channels (skafu/incident-classify does the same for a reported incident).",
  when = function() return #state.problems > 0 and params.notify end,
}, function()
  local row, reason = escalation.classify(skafu.matrix(thresholds()), state.facts)
  state.level = row.level
  log.warn("%s %s: %s (respond within %s)", row.level, row.title, reason, row.response)
  state.notified = escalation.notify(row, {
    summary = string.format("Skafu daily health check: %d problem(s), %s", #state.problems, reason),
    details = { problems = state.problems, availability_pct = state.availability_pct,
                overall_status = state.overall_status, response_time = row.response },
    dedup_key = "skafu-daily-health-" .. os.date("!%Y%m%d", math.floor(now())),
    source = "skafu/daily-health-check",
  })
end)

step("Daily report", {
  description = "DailyOperationsReport: the system health part of the checklist.",
}, function()
  state.report = {
    overallStatus = state.overall_status, serviceAvailability = state.availability_pct,
    errorRate = state.error_rate_pct, responseTime = state.p95_ms,
    cpuMemoryPeak = state.utilization_pct, problems = #state.problems,
  }
  if #state.problems == 0 then
    log.info("all daily checks passed: %s, %.0f%% of services available", state.overall_status, state.availability_pct)
  else
    log.warn("%d problem(s):\n  %s", #state.problems, table.concat(state.problems, "\n  "))
  end
end)
