-- examples/wait-for-service.lua: start services, then wait for all of them
-- at once with wait_until inside parallel.
--
-- The "services" are background shell jobs that become ready (write a
-- ready file) after 1, 2, 3... seconds, so this runs anywhere.  Waiting
-- for them in parallel takes as long as the slowest one, not the sum.  In
-- real runbooks the condition is an HTTP health check, a `pg_isready`, a
-- `kubectl rollout status`...
--
--   runbook run examples/wait-for-service.lua
--   runbook run examples/wait-for-service.lua --param services=a,b,c,d,e --param timeout=3   # fails: e takes 5 s
--   runbook run examples/wait-for-service.lua --dry-run

runbook {
  name        = "examples/wait-for-service",
  title       = "Start services and wait until every one is ready",
  tags        = { "example", "wait_until", "parallel" },
  params = {
    services = { type = "list", default = { "api", "worker", "scheduler" }, help = "services to start (a,b,c)" },
    timeout  = { type = "number", default = 10, help = "seconds to wait for each service" },
  },
}

local DIR = env("TMPDIR", "/tmp") .. "/runbook-wait-demo"
local function ready_file(name) return DIR .. "/" .. name .. ".ready" end

step("Start the services", {
  description = "Start one background job per service; service i is ready after i seconds.",
}, function()
  fs.remove(DIR, { recursive = true, check = false })
  fs.mkdir(DIR, { parents = true })
  for i, name in ipairs(params.services) do
    -- sh returns as soon as the job is in the background
    sh(string.format("(sleep %d && date > '%s') >/dev/null 2>&1 &", i, ready_file(name)))
  end
  log.info("started %d service(s): %s", #params.services, table.concat(params.services, ", "))
  state.rehearsal = dry_run() -- nothing was started: later steps have nothing to wait for
end)

step("Wait until every service is ready", {
  description = "wait_until for each service, all at once with parallel().",
  when = function() return not state.rehearsal end, -- in a dry-run nothing was started
}, function()
  local t0 = now()
  state.ready_after = {}
  -- parallel runs fn(item) for every item at once (up to `concurrency`);
  -- wait_until's sleeps and fs.exists calls yield instead of blocking
  parallel(params.services, function(name)
    wait_until(function() return fs.exists(ready_file(name)) end,
               { timeout = params.timeout, every = 0.5, what = name .. " ready" })
    state.ready_after[name] = now() - t0
  end, { concurrency = 8 })
  for _, name in ipairs(params.services) do
    log.info("%-10s ready after %.1f s", name, state.ready_after[name])
  end
  log.info("all %d ready in %.1f s (one after the other: %d s)",
           #params.services, now() - t0, #params.services * (#params.services + 1) // 2)
end)

step("Clean up", function()
  fs.remove(DIR, { recursive = true, check = false })
end)
