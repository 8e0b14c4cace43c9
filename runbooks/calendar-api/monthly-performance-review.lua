local cal = require "calendar_api"

runbook {
  name        = "calendar-api/monthly-performance-review",
  title       = "Calendar API: monthly performance optimisation review (first Sunday 1:00 AM)",
  description = [[Runs the three analysis scripts of the monthly review: performance trends, alert
threshold optimisation (it may rewrite thresholds, so it asks first; the Alert Tuning Guidelines
want a person to review them) and capacity planning. Reading the results is a person's job.
001_ef3bce7d6f139975.txt › Maintenance Procedures › Monthly Maintenance › 2. Performance
Optimization Review.]],
  source      = "001_ef3bce7d6f139975.txt › Maintenance Procedures › Monthly Maintenance (First Sunday 1:00 AM) › 2. Performance Optimization Review",
  schedule    = "monthly",
  tags        = { "calendar-api", "maintenance", "monthly" },
  mutates     = { "runs scripts/monthly_performance_analysis.py, scripts/optimize_alert_thresholds.py (after asking) " ..
                  "and scripts/capacity_planning_analysis.py, which write their reports" },
  params = {
    root   = { default = cal.ROOT, help = "the Calendar API checkout (holds scripts/)" },
    python = { default = "python", help = "the Python that runs the project's scripts" },
  },
}

local function script(name)
  local r = exec({ params.python, "scripts/" .. name }, { cwd = params.root, timeout = 3600 })
  for line in (r.stdout or ""):gmatch("[^\n]+") do log.info("%s | %s", name, line) end
end

step("Analyze monthly performance trends", {
  description = "`python scripts/monthly_performance_analysis.py`",
  timeout = 3600,
}, function()
  script("monthly_performance_analysis.py")
end)

step("Review and update alert thresholds", {
  description = "`python scripts/optimize_alert_thresholds.py` -- asks first (Alert Tuning Guidelines: " ..
                "review monthly, reduce false positives, actionable alerts only).",
  timeout = 3600,
}, function()
  if not confirm("Run optimize_alert_thresholds.py (it may change the alert thresholds)?") then
    log.warn("alert thresholds left as they are")
    return
  end
  script("optimize_alert_thresholds.py")
  state.thresholds_optimised = true
end)

step("Update capacity planning", {
  description = "`python scripts/capacity_planning_analysis.py`",
  timeout = 3600,
}, function()
  script("capacity_planning_analysis.py")
end)
