runbook {
  name        = "meta-platform/historical-data-management",
  title       = "254Carbon meta: weekly historical data management (Thursday 15:00 UTC)",
  description = [[Archives quality data older than 90 days, deletes drift reports older than 30 days,
regenerates the historical trends (scripts/manage_historical_data.py,
analyze_quality_trends.py --historical) and measures the space freed under analysis/ (du)
against the expected >100MB. A failing script is posted to Slack and fails the run.
000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.4 Historical Data Management.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.4 Historical Data Management",
  schedule    = "weekly",
  tags        = { "meta-platform", "maintenance", "weekly" },
  mutates     = { "archives quality data older than archive_days", "deletes drift reports older than cleanup_days",
                  "regenerates historical trend reports", "posts a failure to Slack" },
  params = {
    root          = { default = ".", help = "the meta repository checkout" },
    python        = { default = "python", help = "Python interpreter" },
    data_dir      = { default = "analysis", help = "historical data, measured before and after (du)" },
    archive_days  = { type = "number", default = 90, help = "2.4: archive quality data older than this (days)" },
    cleanup_glob  = { default = "drift-*.json", help = "2.4: drift reports to clean up" },
    cleanup_days  = { type = "number", default = 30, help = "2.4: delete drift reports older than this (days)" },
    output_dir    = { default = "analysis/reports/", help = "where trends are written" },
    expect_freed_mb = { type = "number", default = 100, help = "2.4 expected output: disk space freed up (>100MB)" },
    timeout       = { type = "number", default = 3600, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

local function usage_kb()
  local r = exec({ "du", "-sk", params.data_dir }, { cwd = params.root, check = false })
  return tonumber(r.stdout:match("^(%d+)"))
end

local function run(what, argv)
  local ok, err = pcall(function() return exec(argv, mp.opts(params)) end)
  if not ok then
    notify.slack{ text = string.format("254Carbon historical data management: %s FAILED: %s", what, tostring(err)) }
    error(err, 0)
  end
end

step("Measure historical data", {
  description = "du -sk analysis (for 2.4's expected output: disk space freed up)",
}, function()
  state.before_kb = usage_kb()
  log.info("%s: %s KB", params.data_dir, tostring(state.before_kb))
end)

step("Archive old quality data", {
  description = "2.4: python scripts/manage_historical_data.py --action archive --days-old 90",
}, function()
  run("archive", mp.script(params, "manage_historical_data.py", "--action", "archive",
                           "--days-old", tostring(math.tointeger(params.archive_days) or params.archive_days)))
end)

step("Clean up old drift reports", {
  description = "2.4: python scripts/manage_historical_data.py --action cleanup --pattern \"drift-*.json\" --days-old 30",
}, function()
  run("cleanup", mp.script(params, "manage_historical_data.py", "--action", "cleanup", "--pattern", params.cleanup_glob,
                           "--days-old", tostring(math.tointeger(params.cleanup_days) or params.cleanup_days)))
end)

step("Generate historical trends", {
  description = "2.4: python scripts/analyze_quality_trends.py --historical --output-dir analysis/reports/",
}, function()
  run("historical trends", mp.script(params, "analyze_quality_trends.py", "--historical", "--output-dir", params.output_dir))
end)

step("Expected output", {
  description = "2.4 Expected Output: old data archived, disk space freed up (>100MB), historical trends generated",
}, function()
  state.after_kb = usage_kb()
  if state.before_kb and state.after_kb then
    state.freed_mb = (state.before_kb - state.after_kb) / 1024
    log[state.freed_mb > params.expect_freed_mb and "info" or "warn"]("freed %.1f MB under %s (expected >%d MB)",
      state.freed_mb, params.data_dir, params.expect_freed_mb)
  end
end)
