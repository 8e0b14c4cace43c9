-- Fixture for the redis module: memory, slow log, sessions found by SCAN
-- and deleted, maxmemory raised, the cache flushed when asked.
runbook {
  name = "stdlib-tests/redis-cache",
  params = {
    host = { default = "redis" },
    port = { type = "number", default = 6379 },
    password = { secret = true, default = "" },
    flush = { type = "boolean", default = false },
  },
}

local redis = require "redis"
local r = redis.client{ host = params.host, port = params.port,
                        password = params.password ~= "" and params.password or nil }

step("Ping", function()
  local ok, why = r:ping()
  state.up = ok
  check(ok, "redis %s:%d does not answer: %s", params.host, params.port, tostring(why))
end)

step("Memory", function()
  local m = r:memory()
  state.used = m.used_memory
  state.human = m.used_memory_human
  state.policy = m.maxmemory_policy
  state.dbsize = r:dbsize()
  state.maxmemory = r:config_get("maxmemory")
end)

step("Slow log", function()
  local log_ = r:slowlog(2)
  state.slow = #log_
  state.slow_cmd = log_[1] and log_[1].args[1]
end)

step("Sessions", function()
  local keys = r:scan("session:*", { limit = 100 })
  state.sessions = #keys
  state.ttl = keys[1] and r:ttl(keys[1])
  state.value = keys[1] and r:get(keys[1])
  state.deleted = r:del(keys)
end)

step("Raise maxmemory", function()
  r:config_set("maxmemory", "256mb")
end)

step("Flush", { when = function() return params.flush end }, function()
  state.flushed = r:flushdb()
end)
