runbook { name = "bench/strict-calls" }
-- ns per call of functions that do little, where the signature check every
-- call meets (src/core/signature.c) is the largest share; bench/strict_calls.sh
local N = tonumber(env("BENCH_N", "500000"))
local function per_call(what, f)
  local t0 = os.clock()
  for _ = 1, N do f() end
  print(string.format("%-34s %7.0f ns/call", what, (os.clock() - t0) * 1e9 / N))
end
step("calls", function()
  per_call('time.duration("5m")', function() return time.duration("5m") end)
  per_call('json.encode({ a = 1 })', function() return json.encode({ a = 1 }) end)
  local prom = require "prometheus"
  per_call('prometheus.format_value(1.5)', function() return prom.format_value(1.5) end)
  per_call('fs.exists("/") (an action)', function() return fs.exists("/") end)
end)
