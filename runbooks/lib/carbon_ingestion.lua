-- carbon_ingestion: what the runbooks of the 254Carbon ingestion platform
-- share, as data, from its Operations Runbook (002_f134cbc51c64e878.txt):
-- the services and their ports (Service Architecture › Critical Services),
-- the thresholds of the Common Issues, the severity levels and contacts
-- (Escalation Procedures) and the Escalation Decision Tree.
--
--   local ci = require "carbon_ingestion"
--   local leaf, path = escalation.decide(ci.decision_tree, { service_down = true })
--   escalation.notify(ci.level(leaf.level), { summary = ..., source = ci.source })
--
-- Owned by the runbooks of runbooks/carbon-ingestion/ (common issues and
-- escalation); the DR/maintenance runbooks of the folder read it too.
local M = {}

M.document = "002_f134cbc51c64e878.txt"
M.source = "carbon-ingestion"           -- the PagerDuty/Slack source of our notifications

-- Defaults the document uses throughout
M.namespace = "carbon-ingestion"        -- kubectl ... -n carbon-ingestion
M.bootstrap_server = "kafka:9092"       -- kafka-consumer-groups --bootstrap-server kafka:9092
M.clickhouse_url = "http://clickhouse:8123"   -- Issue 4: curl http://clickhouse:8123/ping
M.clickhouse_database = "carbon_ingestion"
M.clickhouse_table = "gold_ohlc_bars"
M.redis_host = "localhost"              -- Issue 5: redis-cli (its default host)
M.redis_port = 6379
M.compose_file = "docker-compose.yml"   -- Log Locations: docker-compose logs <service>
M.quality_url = "http://localhost:8514" -- Issue 3: curl http://localhost:8514/quality/report
M.projection_url = "http://localhost:8513"    -- Issue 5: curl http://localhost:8513/cache/stats
M.grafana_quality = "http://localhost:3000/d/data-quality"

-- Service Architecture › Critical Services (the pipeline services), with the
-- names the document uses for each platform: the Kubernetes deployment
-- (deployment/normalization-service, label app=normalization-service) and the
-- compose service (docker-compose logs normalization).  depends: what
-- "Verify database connectivity / Kafka broker availability" checks for it.
M.services = {
  { name = "normalization", deployment = "normalization-service", port = 8510,
    depends = { "kafka" }, impact = "Raw data not processed" },
  { name = "enrichment", deployment = "enrichment-service", port = 8511,
    depends = { "kafka" }, impact = "No semantic enrichment" },
  { name = "aggregation", deployment = "aggregation-service", port = 8512,
    depends = { "kafka" }, impact = "No OHLC bars or metrics" },
  { name = "projection", deployment = "projection-service", port = 8513,
    depends = { "kafka", "clickhouse", "redis" }, impact = "No serving layer updates" },
}
-- the data quality service (Issue 3, port 8514; in the Appendix's health loop)
M.quality_service = { name = "data-quality", port = 8514 }
-- infrastructure (Critical Services): Kafka 9092, ClickHouse 9000 (HTTP 8123), Redis 6379
M.infrastructure = {
  { name = "kafka", port = 9092, impact = "Complete pipeline failure" },
  { name = "clickhouse", port = 9000, impact = "No data persistence" },
  { name = "redis", port = 6379, impact = "No caching, slower queries" },
}

-- the service by its short name ("normalization"), deployment
-- ("normalization-service") or compose service; nil if unknown
function M.service(name)
  for _, s in ipairs(M.services) do
    if s.name == name or s.deployment == name then return s end
  end
  return nil
end

-- Issue 6: the topic the document describes
M.topic = "normalized.market.ticks.v1"

-- Thresholds of the Common Issues
M.thresholds = {
  consumer_lag = 1000,        -- Issue 2 › Symptoms: consumer lag > 1000 messages
  topic_lag_escalate = 10000, -- Issue 6 › Escalation: lag > 10,000 messages
  quality_score = 0.7,        -- Issue 3 › Symptoms: quality score < 0.7
  quality_escalate = 0.5,     -- Issue 3 › Escalation: quality score < 0.5
  cache_hit_rate = 0.70,      -- Issue 5 › Symptoms: cache hit rate < 70%
  write_latency_s = 5,        -- Issue 4 › Symptoms: ClickHouse write latency > 5s
  write_failing_min = 5,      -- Issue 4 › Escalation: writes failing for > 5 minutes
  unresolved_min = 15,        -- Issue 1 › Escalation: unresolved after 15 minutes
}

-- Escalation Procedures › Escalation Contacts
M.contacts = {
  platform = { team = "Platform Team", slack = "#carbon-ingestion-ops",
               email = "platform@254carbon.com", pagerduty = "Carbon Ingestion Platform" },
  data = { team = "Data Team", slack = "#carbon-data-quality", email = "data@254carbon.com" },
  infrastructure = { team = "Infrastructure Team", slack = "#infrastructure", email = "infra@254carbon.com" },
  oncall = { team = "On-Call Engineer", pagerduty = "254Carbon On-Call" },
}

-- Escalation Procedures › Severity Levels, as an escalation matrix (most
-- severe first).  notify: the document's "Escalation" column -- P1
-- "Immediate page" (PagerDuty, and Slack so the channel knows), P2 "Email +
-- Slack", P3 "Slack", P4 "Ticket" (no channel: a ticket by hand).
M.severity = {
  { level = "P1", title = "Critical", description = "Complete service outage",
    response = "15 minutes", escalation = "Immediate page", notify = { "pagerduty", "slack" },
    pagerduty_severity = "critical", -- this document's most severe level is P1
    any = { { "service_down", "==", true } } },
  { level = "P2", title = "High", description = "Degraded performance",
    response = "1 hour", escalation = "Email + Slack", notify = { "email", "slack" },
    any = { { "quality_score", "<", 0.5 }, { "performance_degraded", "==", true } } },
  { level = "P3", title = "Medium", description = "Non-critical issue",
    response = "4 hours", escalation = "Slack", notify = { "slack" },
    any = { { "affecting_users", "==", true } } },
  { level = "P4", title = "Low", description = "Minor issue",
    response = "Next business day", escalation = "Ticket", notify = {}, default = true },
}

-- the severity row of a level ("P2")
function M.level(level)
  for _, row in ipairs(M.severity) do
    if row.level == level then return row end
  end
  error("carbon_ingestion.level: no severity level " .. tostring(level), 2)
end

-- Escalation Procedures › Escalation Decision Tree, as data for
-- escalation.decide.  Facts: service_down (bool), quality_score (0..1, may
-- be missing: then "no"), performance_degraded (bool: > 50%, or what an
-- issue's own escalation rule names), affecting_users (bool).
M.decision_tree = {
  ask = "Is service completely down?", key = "service_down",
  yes = { level = "P1", action = "Page on-call immediately", team = "oncall" },
  no = {
    ask = "Is data quality < 0.5?", test = { "quality_score", "<", 0.5 },
    yes = { level = "P2", action = "Escalate to Data Team", team = "data" },
    no = {
      ask = "Is performance degraded > 50%?", key = "performance_degraded",
      yes = { level = "P2", action = "Escalate to Platform Team", team = "platform" },
      no = {
        ask = "Is issue affecting users?", key = "affecting_users",
        yes = { level = "P3", action = "Notify Platform Team", team = "platform" },
        no = { level = "P4", action = "Log issue, create ticket", team = "platform" },
      },
    },
  },
}

-- "Platform Team (#carbon-ingestion-ops, platform@254carbon.com)"
function M.contact_line(team)
  local c = M.contacts[team] or M.contacts.platform
  local how = {}
  for _, k in ipairs({ "slack", "email", "pagerduty" }) do
    if c[k] then how[#how + 1] = (k == "pagerduty" and "PagerDuty: " or "") .. c[k] end
  end
  return string.format("%s (%s)", c.team, table.concat(how, ", "))
end

-- The data quality service's report (Issue 3: /quality/report?hours=24):
-- the document does not show its shape, so take the usual names -- an
-- overall score (quality_score, overall_quality_score, overall_score,
-- average_quality_score, score) and per source rows (by_source,
-- by_connector, by_market, sources, connectors, markets: a list of
-- { market|connector|source, quality_score|score } or a map name -> score
-- or name -> row).  -> score (or nil), sources = { { name, score, row } }
-- sorted worst first.
local SCORE_KEYS = { "quality_score", "overall_quality_score", "overall_score",
                     "average_quality_score", "avg_quality_score", "score" }
local SOURCE_KEYS = { "by_source", "by_connector", "by_market", "sources", "connectors", "markets" }
local NAME_KEYS = { "connector", "market", "source", "name" }

local function score_of(t)
  if type(t) == "number" then return t end
  if type(t) ~= "table" then return nil end
  for _, k in ipairs(SCORE_KEYS) do
    if tonumber(t[k]) then return tonumber(t[k]) end
  end
  return nil
end

function M.quality_report(doc)
  if type(doc) ~= "table" then return nil, {} end
  local body = type(doc.report) == "table" and doc.report or doc
  local sources = {}
  for _, k in ipairs(SOURCE_KEYS) do
    local s = body[k]
    if type(s) == "table" then
      if s[1] ~= nil then
        for _, row in ipairs(s) do
          local name
          for _, nk in ipairs(NAME_KEYS) do
            if type(row) == "table" and row[nk] then name = tostring(row[nk]); break end
          end
          sources[#sources + 1] = { name = name or "?", score = score_of(row), row = row }
        end
      else
        for name, row in pairs(s) do
          sources[#sources + 1] = { name = tostring(name), score = score_of(row), row = row }
        end
      end
      break
    end
  end
  table.sort(sources, function(a, b)
    local x, y = a.score or math.huge, b.score or math.huge
    if x ~= y then return x < y end
    return a.name < b.name
  end)
  return score_of(body), sources
end

-- the /health endpoints of every pipeline service and the data-quality
-- service on host, for stdlib health.check
function M.health_endpoints(host)
  local out = {}
  for _, s in ipairs(M.services) do
    out[#out + 1] = { name = s.name, url = string.format("http://%s:%d/health", host, s.port) }
  end
  out[#out + 1] = { name = M.quality_service.name,
                    url = string.format("http://%s:%d/health", host, M.quality_service.port) }
  return out
end

-- an error's message without the "file.lua:123: " its raiser put in front
function M.cause(err)
  return (tostring(err):gsub("^[^\n]-%.lua:%d+: ", ""))
end

-- a pod (kubectl get pods -o json item) whose Ready condition is True
function M.pod_ready(pod)
  for _, c in ipairs(pod.status and pod.status.conditions or {}) do
    if c.type == "Ready" then return c.status == "True" end
  end
  return false
end

return M
