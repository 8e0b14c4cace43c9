local cal = require "calendar_api"
local prometheus = require "prometheus"

runbook {
  name        = "calendar-api/evening-summary",
  title       = "Calendar API: evening summary (6:00 PM)",
  description = [[The daily metrics summary: requests processed, average response time, error rate,
parsing accuracy, cache performance and uptime over the last 24 hours (Prometheus, the API's
/metrics and /cache/stats), posted to Slack. Documenting incidents and planning maintenance stay
with a person. 001_ef3bce7d6f139975.txt › Daily Operations › Evening Summary (6:00 PM).]],
  source      = "001_ef3bce7d6f139975.txt › Daily Operations › Evening Summary (6:00 PM)",
  schedule    = "daily",
  tags        = { "calendar-api", "health", "daily" },
  mutates     = { "posts the summary to Slack" },
  params = {
    api            = { default = cal.API, help = "API base URL" },
    prometheus     = { default = cal.PROMETHEUS, help = "Prometheus base URL" },
    requests_query = { default = "sum(increase(http_requests_total[24h]))", help = "PromQL: requests in 24 h" },
    errors_query   = { default = 'sum(increase(http_requests_total{status=~"5.."}[24h]))', help = "PromQL: 5xx in 24 h" },
    latency_query  = { default = "sum(increase(http_request_duration_seconds_sum[24h])) / sum(increase(http_request_duration_seconds_count[24h]))",
                       help = "PromQL: mean response time in seconds over 24 h" },
    accuracy_query = { default = "", help = "PromQL: parsing accuracy 0..1 (the document names no metric); empty: not reported" },
    post           = { type = "boolean", default = true, help = "post the summary to Slack" },
  },
}

local function q(expr)
  if expr == "" then return nil end
  local ok, v = pcall(prometheus.query_value, params.prometheus, expr)
  if not ok then log.warn("%s: %s", expr, tostring(v)); return nil end
  if v ~= v then return nil end -- NaN: no data
  return v
end

step("Collect the daily metrics", {
  description = "Evening Summary › 1. Daily Metrics Summary: total requests, average response time, " ..
                "error rate, parsing accuracy, cache performance, system uptime.",
}, function()
  local s = {}
  s.requests = q(params.requests_query)
  local errors = q(params.errors_query)
  s.error_rate = (s.requests and s.requests > 0 and errors) and errors / s.requests or nil
  s.latency = q(params.latency_query)
  s.accuracy = q(params.accuracy_query)
  local ok, r = pcall(http.get, params.api .. "/cache/stats", { timeout = 10 })
  if ok and r.status == 200 then
    local dok, doc = pcall(json.decode, r.body)
    if dok and type(doc) == "table" then s.cache_hit_ratio = tonumber(doc.hit_ratio) end
  end
  local mok, text = pcall(cal.metrics, params.api)
  if mok then
    local start = prometheus.value(text, "process_start_time_seconds")
    if start then s.uptime_hours = math.floor((now() - start) / 360 + 0.5) / 10 end
  else
    s.api_down = true
  end
  state.summary = s
end)

step("Post the summary", {
  description = "Share it with the team (Slack); Issue Documentation (incidents, runbook updates, " ..
                "maintenance planning) is a person's.",
  when = function() return params.post end,
}, function()
  local s = state.summary
  local function f(v, fmt) return v and string.format(fmt, v) or "n/a" end
  local text = table.concat({
    "calendar-api daily summary",
    "requests: " .. f(s.requests and math.floor(s.requests + 0.5), "%d"),
    "avg response time: " .. f(s.latency and s.latency * 1000, "%.0f ms"),
    "error rate: " .. f(s.error_rate and s.error_rate * 100, "%.2f%%"),
    "parsing accuracy: " .. f(s.accuracy and s.accuracy * 100, "%.1f%%"),
    "cache hit ratio: " .. f(s.cache_hit_ratio, "%.2f"),
    "uptime: " .. (s.api_down and "API DOWN" or f(s.uptime_hours, "%.1f h")),
  }, "\n")
  log.info("%s", text)
  notify.slack{ text = text }
end)
