-- Fixture for the pure parts of the stdlib modules: parsers and decisions
-- that need no mocks (edge cases and the messages of bad input).
runbook {
  name = "stdlib-tests/parsers",
}

local kafka = require "kafka"
local escalation = require "escalation"
local compose = require "compose"
local redis = require "redis"

-- err(f, ...): the message f raises (argument checks, before any action;
-- mutating functions are named by index so coverage does not count them)
local function err(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return "no error" end
  return (tostring(e):gsub("^[^:]*:%d+: ", ""))
end

step("kafka output", function()
  -- two groups (header repeated), CRLF line ends, a rebalancing warning
  local text = "Warning: Consumer group 'a' is rebalancing.\r\n\r\n" ..
    "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID\r\n" ..
    "a t1 0 5 10 5 - - -\r\n\r\n" ..
    "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID\r\n" ..
    "b t2 3 - 7 - c-1 /10.0.0.9 cl\r\n"
  local rows = kafka.parse_consumer_groups(text)
  state.kafka_rows = #rows
  state.kafka_first = rows[1]
  state.kafka_second = { group = rows[2].group, partition = rows[2].partition, lag = rows[2].lag or "nil",
                         current = rows[2].current or "nil", log_end = rows[2].log_end, host = rows[2].host }
  -- the old layout without GROUP/CONSUMER-ID columns
  local old = kafka.parse_consumer_groups("TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\nt 0 1 4 3\n")
  state.kafka_old = { lag = old[1].lag, group = old[1].group or "nil" }
  state.kafka_empty = err(kafka.parse_consumer_groups, "")
  state.kafka_noheader = err(kafka.parse_consumer_groups, "Error: Consumer group 'x' does not exist.\n")
  state.kafka_missing = err(kafka.consumer_lag, { group = "g" })
  state.kafka_bad_to = err(kafka["reset_offsets"], { bootstrap_server = "k:9092", group = "g", to = "yesterday" })
end)

step("escalation edge cases", function()
  local M = {
    { level = "P1", any = { { "errors", ">", 10 } }, all = { { "env", "==", "prod" } } },
    { level = "P2", any = { { "env", "~=", "prod" } } },
  }
  local row, why = escalation.classify(M, { errors = 20, env = "prod" })
  state.esc_all = { level = row.level, why = why }
  row, why = escalation.classify(M, { errors = "20", env = "staging" })
  state.esc_coerce = { level = row.level, why = why }
  row, why = escalation.classify({ { level = "P1", any = { { "x", ">", 1 } } } }, {})
  state.esc_none = { row = row == nil, why = why }
  state.esc_badop = err(escalation.classify, { { level = "P0", any = { { "x", "=>", 1 } } } }, { x = 2 })
  state.esc_in_scalar = err(escalation.classify, { { level = "P0", any = { { "x", "in", 1 } } } }, { x = 1 })
  state.esc_types = err(escalation.classify, { { level = "P0", any = { { "x", ">", 1 } } } }, { x = true })
  state.esc_nobranch = err(escalation.decide, { ask = "q?", key = "k", yes = { action = "a" } }, { k = false })
  state.esc_fn = escalation.check(function(f) return f.n > 2, "n is big" end, { n = 3 })
  state.esc_summary = err(escalation["notify"], { level = "P1", notify = { "slack" } }, {})
end)

step("compose rows", function()
  local rows = {
    { service = "api", name = "api-1", state = "running", health = "starting", running = true },
    { service = "api", name = "api-2", state = "restarting", running = false },
    { service = "db", name = "db-1", state = "running", health = "unhealthy", running = true },
  }
  state.compose_down = compose.down_services(rows, { services = { "api", "db", "worker" } })
  state.compose_running = compose.down_services(rows, { require_healthy = false })
  state.compose_bad = err(compose.down_services, { { name = "x" } })
  state.compose_nofile = err(compose["restart"], nil, "api")
end)

step("redis replies", function()
  local info = redis.parse_info("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n" ..
    "uptime_in_seconds:12\r\nmem_fragmentation_ratio:1.25\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=500\r\n")
  state.redis_info = info
  state.redis_reply = redis.parse_reply("1) \"a b\"\n2) (integer) -3\n3) (nil)\n4) 1) \"x\\n\"\n   2) (empty array)\n")
  state.redis_reply_n = #state.redis_reply
  state.redis_null = state.redis_reply[3] == json.null
  state.redis_scalar = redis.parse_reply("(integer) 7\n")
  state.redis_client_bad = err(redis.client, { port = "x" })
end)
