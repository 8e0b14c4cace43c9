-- carbon-ingestion/redis-cache-issues: Issue 5 of the 254Carbon ingestion
-- platform's Operations Runbook, through redis-cli.
--
--   runbook run carbon-ingestion/redis-cache-issues --dry-run
--   runbook run carbon-ingestion/redis-cache-issues --param host=127.0.0.1 --param cache_stats_url=
--
-- On a healthy Redis (an empty one too) it only reads: PING, INFO, INFO
-- memory, DBSIZE, and the projection service's cache stats when they answer.

local ci = require "carbon_ingestion"
local redis = require "redis"
local escalation = require "escalation"

runbook {
  name        = "carbon-ingestion/redis-cache-issues",
  title       = "Redis cache issues (hit rate < 70%, memory warnings, slow queries)",
  description = [[Checks that Redis answers, reads INFO, INFO memory and the cache hit rate (the
projection service's /cache/stats, else Redis's keyspace hits and misses); under memory pressure
raises maxmemory to 2gb, or, when it is already there, flushes the cache after a confirm(); for a
low hit rate samples the keys' TTLs and walks the operator through the document's checks; escalates
immediately when the cache is completely unavailable.
002_f134cbc51c64e878.txt › Common Issues › Issue 5: Redis Cache Issues.]],
  source      = "002_f134cbc51c64e878.txt › Common Issues › Issue 5: Redis Cache Issues",
  tags        = { "carbon-ingestion", "incident", "redis" },
  mutates     = { "CONFIG SET maxmemory 2gb under memory pressure",
                  "FLUSHDB when memory is still short at 2gb (after confirm)",
                  "pages on-call (PagerDuty + Slack) when Redis is unavailable" },
  params = {
    host            = { default = ci.redis_host, help = "Redis host" },
    port            = { type = "number", default = ci.redis_port, help = "Redis port" },
    password        = { secret = true, default = "", help = "Redis password (empty: none)" },
    db              = { type = "number", default = 0, help = "Redis database (FLUSHDB clears this one)" },
    cache_stats_url = { default = ci.projection_url .. "/cache/stats",
                        help = "the projection service's cache stats (empty: use Redis's own counters)" },
    hit_rate        = { type = "number", default = ci.thresholds.cache_hit_rate,
                        help = "cache hit rate under which the cache is not doing its job" },
    min_lookups     = { type = "number", default = 1000,
                        help = "lookups Redis must have counted before its hit rate means anything" },
    memory_threshold = { type = "number", default = 0.9,
                        help = "used_memory / maxmemory at which memory is short" },
    maxmemory       = { default = "2gb", help = "maxmemory to raise to (CONFIG SET maxmemory 2gb)" },
    sample_keys     = { type = "number", default = 20, help = "keys whose TTL is sampled for a low hit rate" },
  },
}

local r = redis.client{ host = params.host, port = params.port, db = params.db,
                        password = params.password ~= "" and params.password or nil }

-- "2gb" -> bytes (Redis's units: k/kb/m/mb/g/gb are 1000/1024-based like redis.conf)
local UNITS = { [""] = 1, b = 1, k = 1000, kb = 1024, m = 1000 ^ 2, mb = 1024 ^ 2, g = 1000 ^ 3, gb = 1024 ^ 3 }
local function bytes(s)
  local n, u = tostring(s):lower():match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  check(n and UNITS[u], "maxmemory %q: expected a size such as 2gb or 512mb", tostring(s))
  return math.floor(tonumber(n) * UNITS[u])
end

local function human(n)
  if n >= 1024 ^ 3 then return string.format("%.2fG", n / 1024 ^ 3) end
  if n >= 1024 ^ 2 then return string.format("%.1fM", n / 1024 ^ 2) end
  return string.format("%.1fK", n / 1024)
end

step("Check Redis service health", {
  description = "Issue 5 › Resolution 3 (connection issues): check Redis service health and " ..
                "network connectivity (`redis-cli PING`).",
}, function()
  local ok, why = r:ping()
  state.available = ok
  if ok then
    log.info("redis %s:%d answers PING", params.host, params.port)
  else
    log.error("redis %s:%d does not answer: %s", params.host, params.port, tostring(why))
  end
end)

step("Check Redis info", {
  description = "Issue 5 › Diagnosis: `redis-cli INFO` (version, clients, keyspace, hits/misses).",
  when = function() return state.available end,
}, function()
  local info = r:info()
  state.keys = r:dbsize()
  state.connected_clients = info.connected_clients or 0
  state.rejected_connections = info.rejected_connections or 0
  state.hits, state.misses = info.keyspace_hits or 0, info.keyspace_misses or 0
  state.evicted_keys, state.expired_keys = info.evicted_keys or 0, info.expired_keys or 0
  log.info("redis %s, up %s s, %d client(s), %d key(s) in db%d", tostring(info.redis_version),
           tostring(info.uptime_in_seconds), state.connected_clients, state.keys, params.db)
  log.info("keyspace hits %d, misses %d, evicted %d, expired %d", state.hits, state.misses,
           state.evicted_keys, state.expired_keys)
  if state.rejected_connections > 0 then
    log.warn("%d connection(s) rejected (maxclients %s)", state.rejected_connections,
             tostring(info.maxclients or r:config_get("maxclients")))
    state.pool_checked = confirm(string.format(
      "Redis rejected %d connection(s): verify the connection pool settings of the projection " ..
      "service. Done?", state.rejected_connections))
  end
end)

step("Check memory usage", {
  description = "Issue 5 › Diagnosis: `redis-cli INFO memory`; Symptoms: Redis memory warnings.",
  when = function() return state.available end,
}, function()
  local m = r:memory()
  state.used_memory = m.used_memory or 0
  state.maxmemory = m.maxmemory or 0
  state.memory_ratio = state.maxmemory > 0 and state.used_memory / state.maxmemory or nil
  state.memory_pressure = state.memory_ratio ~= nil and state.memory_ratio >= params.memory_threshold
  log[state.memory_pressure and "warn" or "info"]("memory used %s of %s (%s), policy %s, fragmentation %s",
    human(state.used_memory), state.maxmemory > 0 and human(state.maxmemory) or "no limit",
    state.memory_ratio and string.format("%.0f%%", state.memory_ratio * 100) or "-",
    tostring(m.maxmemory_policy), tostring(m.mem_fragmentation_ratio))
end)

step("Check cache hit rate", {
  description = "Issue 5 › Diagnosis: `curl http://localhost:8513/cache/stats`; Symptoms: low " ..
                "cache hit rate (< 70%). Without the stats: Redis's keyspace hits and misses.",
  when = function() return state.available end,
}, function()
  local rate, source
  if params.cache_stats_url ~= "" then
    local ok, resp = pcall(http.get, params.cache_stats_url, { timeout = 10 })
    local doc = ok and resp.status == 200 and select(2, pcall(json.decode, resp.body)) or nil
    if type(doc) == "table" then
      local hits, misses = tonumber(doc.hits or doc.cache_hits), tonumber(doc.misses or doc.cache_misses)
      rate = tonumber(doc.hit_rate or doc.cache_hit_rate)
      if not rate and hits and misses and hits + misses > 0 then rate = hits / (hits + misses) end
      if rate and rate > 1 then rate = rate / 100 end -- a percentage
      source = "projection /cache/stats"
    else
      log.warn("no cache stats from %s (%s): using Redis's counters", params.cache_stats_url,
               ok and ("HTTP " .. tostring(resp.status)) or tostring(resp))
    end
  end
  if not rate then
    local lookups = state.hits + state.misses
    if lookups >= params.min_lookups then
      rate, source = state.hits / lookups, "redis keyspace hits/misses"
    else
      log.info("only %d lookup(s) counted by Redis (< %d): no hit rate yet", lookups, params.min_lookups)
    end
  end
  state.hit_rate = rate
  state.low_hit_rate = rate ~= nil and rate < params.hit_rate
  if rate then
    log[state.low_hit_rate and "warn" or "info"]("cache hit rate %.1f%% (%s; threshold %.0f%%)",
      rate * 100, source, params.hit_rate * 100)
  end
end)

step("Resolve memory issues", {
  description = "Issue 5 › Resolution 1: `redis-cli CONFIG SET maxmemory 2gb` when the limit is " ..
                "lower; when it is already there, `redis-cli FLUSHDB` (clear the cache) after a confirm().",
  when = function() return state.available and state.memory_pressure end,
}, function()
  local target = bytes(params.maxmemory)
  if state.maxmemory < target then
    r:config_set("maxmemory", params.maxmemory)
    state.memory_action = "maxmemory"
    log.info("maxmemory %s -> %s", human(state.maxmemory), params.maxmemory)
  elseif confirm(string.format("Redis uses %s of %s already: FLUSHDB db%d (%d keys; the cache " ..
                               "refills from ClickHouse, queries are slower meanwhile)?",
                               human(state.used_memory), human(state.maxmemory), params.db, state.keys)) then
    r:flushdb()
    state.memory_action = "flushdb"
  else
    log.warn("cache not flushed: memory stays short")
    state.memory_action = "none"
  end
end)

step("Review low hit rate", {
  description = "Issue 5 › Resolution 2: review cache TTL settings (a sample of keys' TTLs), " ..
                "whether invalidation is too aggressive (expired/evicted keys), whether query " ..
                "patterns match cache keys -- checkpoints for the operator.",
  when = function() return state.available and state.low_hit_rate end,
}, function()
  local keys = r:scan("*", { limit = params.sample_keys })
  local no_ttl, short = 0, 0
  for _, k in ipairs(keys) do
    local t = r:ttl(k)
    if t == -1 then no_ttl = no_ttl + 1 elseif t >= 0 and t < 60 then short = short + 1 end
  end
  state.sampled, state.no_ttl, state.short_ttl = #keys, no_ttl, short
  log.info("%d key(s) sampled: %d without a TTL, %d expiring within a minute", #keys, no_ttl, short)
  if state.evicted_keys > 0 then
    log.warn("%d key(s) evicted: the cache is too small for its working set", state.evicted_keys)
  end
  state.review = {
    ttl = confirm(string.format("Cache TTL settings reviewed (%d of %d sampled keys expire within " ..
                                "a minute)?", short, #keys)),
    invalidation = confirm(string.format("Cache invalidation checked (%d expired, %d evicted keys)?",
                                         state.expired_keys, state.evicted_keys)),
    key_patterns = confirm("Query patterns verified against the cache keys?"),
  }
end)

step("Verify memory", {
  description = "After Resolution 1: `redis-cli INFO memory` again.",
  when = function() return state.memory_action == "maxmemory" or state.memory_action == "flushdb" end,
}, function()
  local m = r:memory()
  local max = m.maxmemory or 0
  state.memory_ratio_after = max > 0 and (m.used_memory or 0) / max or nil
  log.info("memory used %s of %s after %s", human(m.used_memory or 0), max > 0 and human(max) or "no limit",
           state.memory_action)
end)

step("Escalate", {
  description = "Issue 5 › Escalation: if cache completely unavailable, escalate immediately " ..
                "(Escalation Decision Tree: service completely down -> P1, page on-call).",
  when = function() return not state.available end,
}, function()
  local leaf, path = escalation.decide(ci.decision_tree, { service_down = true })
  for _, p in ipairs(path) do log.info("decision tree: %s", p) end
  escalation.notify(ci.level(leaf.level), {
    summary = string.format("Redis cache %s:%d completely unavailable (no caching, slower queries)",
                            params.host, params.port),
    details = { host = params.host, port = params.port, escalate_to = ci.contact_line(leaf.team) },
    dedup_key = string.format("carbon-ingestion/redis/%s:%d", params.host, params.port),
    source = ci.source,
  })
  state.escalated = leaf.level
  check(false, "Redis %s:%d is unavailable: %s (%s)", params.host, params.port, leaf.action,
        ci.contact_line(leaf.team))
end)
