local cal = require "calendar_api"
local compose = require "compose"

runbook {
  name        = "calendar-api/weekly-performance-analysis",
  title       = "Calendar API: weekly performance analysis (Sundays 2:00 AM)",
  description = [[Generates the weekly performance report, updates the golden test set when asked to
(`--auto-update` rewrites expectations, so it is off unless update_golden = true, and asks), and
checks the API container's memory for a leak. 001_ef3bce7d6f139975.txt › Maintenance Procedures ›
Weekly Maintenance › 2. Performance Analysis.]],
  source      = "001_ef3bce7d6f139975.txt › Maintenance Procedures › Weekly Maintenance (Sundays 2:00 AM) › 2. Performance Analysis",
  schedule    = "weekly",
  tags        = { "calendar-api", "maintenance", "weekly" },
  mutates     = { "writes the weekly performance report (scripts/generate_performance_report.py)",
                  "updates the golden test set (scripts/update_golden_set.py --auto-update), when asked" },
  params = {
    root          = { default = cal.ROOT, help = "the Calendar API checkout (holds scripts/)" },
    compose_file  = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    service       = { default = cal.SERVICE, help = "the API's compose service" },
    python        = { default = "python", help = "the Python that runs the project's scripts" },
    update_golden = { type = "boolean", default = false,
                      help = "run update_golden_set.py --auto-update (\"if needed\": a person decides)" },
    memory_pct    = { type = "number", default = 80, help = "memory % of the limit worth a warning" },
  },
}

step("Generate weekly performance report", {
  description = "`python scripts/generate_performance_report.py --period=week`",
  timeout = 3600,
}, function()
  local r = exec({ params.python, "scripts/generate_performance_report.py", "--period=week" },
                 { cwd = params.root, timeout = 3600 })
  for line in (r.stdout or ""):gmatch("[^\n]+") do log.info("report | %s", line) end
end)

step("Update golden test set if needed", {
  description = "`python scripts/update_golden_set.py --auto-update` -- only with update_golden = true, " ..
                "and after asking.",
  when = function() return params.update_golden end,
  timeout = 3600,
}, function()
  if not confirm("Update the golden test set with --auto-update (rewrites expectations from current output)?") then
    log.warn("golden set left as it is")
    return
  end
  exec({ params.python, "scripts/update_golden_set.py", "--auto-update" }, { cwd = params.root, timeout = 3600 })
  state.golden_updated = true
end)

step("Check for memory leaks", {
  description = "`docker stats --no-stream | grep calendar-api` (a leak is confirmed by " ..
                "calendar-api/high-memory-usage, which samples for ten minutes).",
}, function()
  local names = {}
  for _, r in ipairs(compose.status(cal.path(params.root, params.compose_file))) do
    if r.service == params.service and r.running then names[#names + 1] = r.name end
  end
  state.memory_high = false
  for n, s in pairs(cal.stats(names)) do
    if (s.memory_percent or 0) >= params.memory_pct then
      state.memory_high = true
      log.warn("%s at %.0f%% of its memory limit: run calendar-api/high-memory-usage", n, s.memory_percent)
    end
  end
end)
