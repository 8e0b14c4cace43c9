-- Fixture for the kafka module: lag of a group, topics, a topic's
-- replication, broker readiness, and an offset reset when asked.
runbook {
  name = "stdlib-tests/kafka-lag",
  params = {
    bootstrap_server = { default = "kafka:9092" },
    group = { default = "enrichment-service" },
    reset = { type = "boolean", default = false },
  },
}

local kafka = require "kafka"

step("Broker", function()
  local ready, why = kafka.broker_ready{ bootstrap_server = params.bootstrap_server }
  state.ready = ready
  state.why = why
end)

step("Lag", { when = function() return state.ready end }, function()
  local lag = kafka.consumer_lag{ bootstrap_server = params.bootstrap_server, group = params.group }
  state.total, state.unknown, state.by_topic = lag.total, lag.unknown, lag.by_topic
  state.partitions = lag.partitions
  state.first = lag.rows[1]
  state.dlq_lag = lag.rows[3].lag == nil and "none" or lag.rows[3].lag
end)

step("Topics", { when = function() return state.ready end }, function()
  state.topics = kafka.topics{ bootstrap_server = params.bootstrap_server, internal = false }
  local d = kafka.describe_topic{ bootstrap_server = params.bootstrap_server, topic = "carbon-raw" }
  state.describe = { partitions = d.partitions, replication = d.replication,
                     under_replicated = d.under_replicated, offline = d.offline,
                     min_isr = d.configs["min.insync.replicas"], isr1 = d.rows[2].isr }
end)

step("Reset offsets", { when = function() return state.ready and params.reset end }, function()
  local r = kafka.reset_offsets{ bootstrap_server = params.bootstrap_server, group = params.group,
                                 topic = "carbon-raw", to = "latest" }
  state.reset_rows = #r.rows
end)
