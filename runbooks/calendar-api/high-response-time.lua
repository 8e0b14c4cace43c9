local cal = require "calendar_api"
local compose = require "compose"
local prometheus = require "prometheus"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/high-response-time",
  title       = "Calendar API: high response time (>2 seconds)",
  description = [[Measures the 95th percentile response time (Prometheus, else the API's own
histogram), the per-component latencies, the slow requests of the performance log and the
system resources (docker stats, free -h, iostat). When the container is short of CPU or memory
it raises its limits (the document's "scale resources"); the other options (cache TTL, component
optimisation, horizontal scaling, GC tuning) are for a person, and the run escalates with the
slowest component named. 001_ef3bce7d6f139975.txt › Incident Response › Common Incident Scenarios
› High Response Time (>2 seconds); Troubleshooting Guide › Performance Issues › Slow Response Times.]],
  source      = "001_ef3bce7d6f139975.txt › Incident Response › Common Incident Scenarios › High Response Time (>2 seconds)",
  severity    = "P2",
  tags        = { "calendar-api", "incident", "P2" },
  mutates     = { "raises the calendar-api container's memory/CPU limits (docker update)",
                  "notifies the team (Slack, email)" },
  params = {
    root           = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/ and logs/)" },
    compose_file   = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project        = { default = "", help = "compose project (default: as docker compose names it)" },
    service        = { default = cal.SERVICE, help = "the API's compose service" },
    api            = { default = cal.API, help = "API base URL" },
    prometheus     = { default = cal.PROMETHEUS, help = "Prometheus base URL; empty: use the API's /metrics only" },
    p95_query      = { default = 'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))',
                       help = "PromQL for the 95th percentile response time in seconds" },
    histogram      = { default = "http_request_duration_seconds",
                       help = "the API's request-duration histogram in /metrics (fallback when Prometheus has no answer)" },
    log_dir        = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    threshold      = { type = "number", default = 2, help = "seconds: the 95th percentile above this is high (SLO < 2 s)" },
    cpu_pct        = { type = "number", default = 90, help = "container CPU % (of its limit) that means CPU-bound" },
    memory_pct     = { type = "number", default = 90, help = "container memory % (of its limit) that means short of memory" },
    memory         = { default = "2g", help = "memory limit for `docker update --memory`" },
    cpus           = { type = "number", default = 1.0, help = "CPU limit for `docker update --cpus`" },
    settle_seconds = { type = "number", default = 300, help = "seconds to wait after raising limits before measuring again" },
  },
}

local FILE = cal.path(params.root, params.compose_file)

local function p95()
  if params.prometheus ~= "" then
    local ok, v = pcall(prometheus.query_value, params.prometheus, params.p95_query)
    if ok and v and v == v then return v, "prometheus" end
    if not ok then log.warn("Prometheus: %s", tostring(v)) end
  end
  return cal.histogram_quantile(cal.metrics(params.api), params.histogram, 0.95), "/metrics"
end

step("Measure the response time", {
  description = "SLO: 95th percentile < 2 seconds (Monitoring and Alerting › KPIs).",
}, function()
  local v, src = p95()
  check(v ~= nil, "no response-time data: neither %s nor %s in %s/metrics", params.p95_query, params.histogram, params.api)
  state.p95 = v
  state.slow = v > params.threshold
  log[state.slow and "warn" or "info"]("95th percentile %.2f s (from %s; threshold %g s)", v, src, params.threshold)
end)

step("Check component latencies", {
  description = "`curl http://localhost:8000/metrics | grep component_latency_seconds`; " ..
                "`grep \"duration_ms\" logs/performance-metrics.log | tail -20 | jq`.",
}, function()
  local comps = cal.component_latency(cal.metrics(params.api))
  for _, c in ipairs(comps) do log.info("component %-20s %.3f s mean", c.component, c.seconds) end
  state.slowest = comps[1] and comps[1].component or nil
  local recs = cal.json_lines(cal.grep_tail(cal.path(params.root, params.log_dir .. "/performance-metrics.log"),
                                            "duration_ms", 20))
  table.sort(recs, function(a, b) return (tonumber(a.duration_ms) or 0) > (tonumber(b.duration_ms) or 0) end)
  for i = 1, math.min(5, #recs) do
    local r = recs[i]
    log.info("slow request: %s ms %s %s", tostring(r.duration_ms), tostring(r.endpoint or r.path or ""),
             tostring(r.component or ""))
  end
end)

step("Check system resources", {
  description = "`docker stats --no-stream`, `free -h`, `iostat -x 1 3`.",
}, function()
  state.containers = {}
  for _, r in ipairs(compose.status(FILE, { project = params.project ~= "" and params.project or nil })) do
    if r.service == params.service and r.running then state.containers[#state.containers + 1] = r.name end
  end
  state.cpu_bound, state.memory_bound = false, false
  for _, s in pairs(cal.stats(state.containers)) do
    if (s.cpu_percent or 0) >= params.cpu_pct then state.cpu_bound = true end
    if (s.memory_percent or 0) >= params.memory_pct then state.memory_bound = true end
  end
  local free = exec({ "free", "-h" }, { check = false })
  for line in (free.stdout or ""):gmatch("[^\n]+") do log.info("free | %s", line) end
  local io = exec({ "iostat", "-x", "1", "3" }, { readonly = true, check = false, timeout = 30 })
  if io.code == 0 then
    for line in (io.stdout or ""):gmatch("[^\n]+") do log.debug("iostat | %s", line) end
  else
    log.info("iostat not available (%s)", (io.stderr or ""):match("[^\n]*"))
  end
end)

step("Scale resources", {
  description = "Mitigation 3 (scale) in its vertical form: `docker update --memory=2g --cpus=1.0 " ..
                "$(docker-compose ps -q calendar-api)` (Incident Response › Mitigation), when the " ..
                "container is CPU- or memory-bound.",
  when = function() return state.slow and (state.cpu_bound or state.memory_bound) and #state.containers > 0 end,
}, function()
  for _, name in ipairs(state.containers) do
    docker.update(name, { memory = params.memory, cpus = params.cpus })
  end
  state.scaled = true
  state.rehearsal = dry_run() -- nothing was scaled: the latency would not tell
end)

step("Verify and escalate", {
  description = "The 95th percentile again after settle_seconds; still above 2 s: escalate (P2) with " ..
                "the slowest component -- increase cache TTL, optimise components, scale horizontally, " ..
                "tune garbage collection are a person's decisions.",
  when = function() return state.slow and not state.rehearsal end,
}, function()
  if state.scaled then
    sleep(params.settle_seconds)
    state.p95_after = p95()
    state.resolved = state.p95_after ~= nil and state.p95_after <= params.threshold
  else
    state.resolved = false
  end
  local summary = string.format("calendar-api p95 %.2f s (> %g s)%s; slowest component: %s", state.p95,
    params.threshold,
    state.scaled and string.format(", %.2f s after raising limits", state.p95_after or -1) or ", not resource-bound",
    state.slowest or "?")
  escalation.notify(cal.level("P2"), { summary = summary, dedup_key = "calendar-api-high-response-time",
                                       source = "calendar-api/high-response-time" })
  check(state.resolved, "%s: needs a person (cache TTL, component optimisation, horizontal scaling, GC)", summary)
end)
