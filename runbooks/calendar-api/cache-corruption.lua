local cal = require "calendar_api"

runbook {
  name        = "calendar-api/cache-corruption",
  title       = "Calendar API: cache corruption (clear and watch the hit ratio)",
  description = [[Reads the cache statistics, clears the cache through the API, checks that the
cache answers again and watches its hit ratio recover (the document's `watch -n 5`), for
watch_seconds. 001_ef3bce7d6f139975.txt › Troubleshooting Guide › Data Issues › Cache Corruption.]],
  source      = "001_ef3bce7d6f139975.txt › Troubleshooting Guide › Data Issues › Cache Corruption",
  severity    = "P3",
  tags        = { "calendar-api", "incident", "P3" },
  mutates     = { "clears the API cache (DELETE /cache/clear)" },
  params = {
    api           = { default = cal.API, help = "API base URL" },
    watch_seconds = { type = "number", default = 60, help = "how long to watch the hit ratio after the clear" },
    every         = { type = "number", default = 5, help = "seconds between two looks (watch -n 5)" },
  },
}

local function stats()
  local r = http.get(params.api .. "/cache/stats", { timeout = 10 })
  check(r.status == 200, "GET %s/cache/stats: HTTP %d", params.api, r.status)
  local ok, doc = pcall(json.decode, r.body)
  check(ok and type(doc) == "table", "GET %s/cache/stats: not JSON: %s", params.api, (r.body or ""):sub(1, 200))
  return doc
end

step("Read the cache statistics", {
  description = "`curl http://localhost:8000/cache/stats` before the clear, for the record.",
}, function()
  local ok, s = pcall(stats)
  if ok then
    state.hit_ratio_before = tonumber(s.hit_ratio)
    log.info("before: %s", json.encode(s))
  else
    log.warn("cache stats unavailable before the clear: %s", tostring(s))
  end
end)

step("Clear cache", {
  description = "`curl -X DELETE http://localhost:8000/cache/clear`",
}, function()
  local r = http.delete(params.api .. "/cache/clear", { timeout = 60 })
  state.rehearsal = dry_run() -- nothing cleared: the statistics after would be those before
  check(r.status >= 200 and r.status < 300, "DELETE %s/cache/clear: HTTP %s %s", params.api,
        tostring(r.status), (r.body or ""):sub(1, 200))
end)

step("Verify cache operation", {
  description = "`curl http://localhost:8000/cache/stats` answers after the clear.",
  when = function() return not state.rehearsal end,
}, function()
  local s = stats()
  log.info("after: %s", json.encode(s))
  state.hit_ratio_after = tonumber(s.hit_ratio)
end)

step("Monitor cache performance", {
  description = "`watch -n 5 'curl -s http://localhost:8000/cache/stats | jq .hit_ratio'` for " ..
                "watch_seconds: the hit ratio should climb back as the cache refills.",
  when = function() return not state.rehearsal and params.watch_seconds > 0 end,
}, function()
  local seen = {}
  local t_end = now() + params.watch_seconds
  repeat
    sleep(params.every)
    local ok, s = pcall(stats)
    seen[#seen + 1] = ok and tonumber(s.hit_ratio) or -1
    log.info("hit_ratio %s", ok and tostring(s.hit_ratio) or ("error: " .. tostring(s)))
  until now() >= t_end
  state.hit_ratios = seen
  local last = seen[#seen]
  check(last >= 0, "the cache stopped answering while being watched")
  if #seen > 1 and last <= seen[1] and last < (state.hit_ratio_before or 1) then
    log.warn("the hit ratio is not recovering (%.2f): check for errors in logs/calendar-api.log", last)
  end
end)
