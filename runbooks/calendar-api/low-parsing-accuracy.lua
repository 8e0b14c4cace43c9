local cal = require "calendar_api"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/low-parsing-accuracy",
  title       = "Calendar API: low parsing accuracy (<70%)",
  description = [[Reads the confidence breakdown of the last 100 parsing decisions, runs the golden
test evaluation for the accuracy, and looks for data quality issues (low_confidence decisions,
parsing_error lines). Below the threshold the team is told (P2); updating the golden test set is
offered (only right when the golden expectations are stale, so it asks), and enabling manual
review mode is a checkpoint for a person. 001_ef3bce7d6f139975.txt › Incident Response › Common
Incident Scenarios › Low Parsing Accuracy (<70%); Troubleshooting Guide › Data Issues › Parsing
Accuracy Drop.]],
  source      = "001_ef3bce7d6f139975.txt › Incident Response › Common Incident Scenarios › Low Parsing Accuracy (<70%)",
  severity    = "P2",
  tags        = { "calendar-api", "incident", "P2" },
  mutates     = { "updates the golden test set (scripts/update_golden_set.py --auto-update), after asking",
                  "notifies the team (Slack, email)" },
  params = {
    root        = { default = cal.ROOT, help = "the Calendar API checkout (holds scripts/ and logs/)" },
    log_dir     = { default = cal.LOG_DIR, help = "log directory, relative to root" },
    python      = { default = "python", help = "the Python that runs the project's scripts" },
    golden      = { default = "scripts/run_golden_tests.py", help = "the golden test evaluation (relative to root)" },
    update      = { default = "scripts/update_golden_set.py", help = "the golden set update script (relative to root)" },
    threshold   = { type = "number", default = 0.70, help = "accuracy below this is low (<70%)" },
    target      = { type = "number", default = 0.85, help = "the accuracy SLO (> 85% overall)" },
    timeout     = { type = "number", default = 1800, help = "seconds the golden tests may take" },
  },
}

local function logfile(name) return cal.path(params.root, params.log_dir .. "/" .. name) end

-- the accuracy in a script's output: "accuracy: 0.82", "Overall accuracy 82.5%", "accuracy=82%"
local function accuracy_of(text)
  local found
  for num, pct in text:gmatch("[Aa]ccuracy[^%d\n]*(%d+%.?%d*)%s*(%%?)") do
    local v = tonumber(num)
    if v then found = (pct == "%" or v > 1) and v / 100 or v end
  end
  return found
end

local function golden_tests()
  local r = exec({ params.python, params.golden }, { cwd = params.root, readonly = true, check = false,
                                                      timeout = params.timeout })
  for line in ((r.stdout or "") .. (r.stderr or "")):gmatch("[^\n]+") do log.info("golden | %s", line) end
  local acc = accuracy_of((r.stdout or "") .. "\n" .. (r.stderr or ""))
  if r.code ~= 0 and not acc then
    error(string.format("%s %s exited %d without an accuracy figure", params.python, params.golden, r.code), 0)
  end
  return acc
end

step("Check recent parsing decisions", {
  description = "`tail -100 logs/parsing-decisions.log | jq '.confidence_breakdown'`.",
}, function()
  local recs = cal.json_lines(cal.grep_tail(logfile("parsing-decisions.log"), nil, 100))
  local sums, counts, low = {}, {}, 0
  for _, d in ipairs(recs) do
    if d.low_confidence then low = low + 1 end
    for k, v in pairs(type(d.confidence_breakdown) == "table" and d.confidence_breakdown or {}) do
      if tonumber(v) then sums[k] = (sums[k] or 0) + tonumber(v); counts[k] = (counts[k] or 0) + 1 end
    end
  end
  local names = {}
  for k in pairs(sums) do names[#names + 1] = k end
  table.sort(names)
  state.confidence = {}
  for _, k in ipairs(names) do
    state.confidence[k] = math.floor(sums[k] / counts[k] * 1000 + 0.5) / 1000
    log.info("confidence %-16s %.3f mean over %d decisions", k, state.confidence[k], counts[k])
  end
  state.decisions, state.low_confidence = #recs, low
  log.info("%d decisions, %d low confidence", #recs, low)
end)

step("Run the golden test evaluation", {
  description = "Review golden test results: `python scripts/run_golden_tests.py` (Troubleshooting › " ..
                "Data Issues › Parsing Accuracy Drop), run in root; its accuracy figure is read from the output.",
}, function()
  local acc = golden_tests()
  check(acc ~= nil, "%s printed no accuracy figure", params.golden)
  state.accuracy = acc
  state.low = acc < params.threshold
  log[state.low and "warn" or "info"]("accuracy %.1f%% (low below %.0f%%, SLO > %.0f%%)", acc * 100,
                                       params.threshold * 100, params.target * 100)
end)

step("Check for data quality issues", {
  description = "`grep \"low_confidence\" logs/parsing-decisions.log | tail -20`; " ..
                "`grep \"parsing_error\" logs/calendar-api.log | tail -20`.",
}, function()
  local lowc = cal.grep_tail(logfile("parsing-decisions.log"), "low_confidence", 20)
  local errs = cal.grep_tail(logfile("calendar-api.log"), "parsing_error", 20)
  for _, l in ipairs(errs) do log.info("parsing_error | %s", l) end
  state.parsing_errors = #errs
  log.info("%d recent low_confidence decisions, %d parsing_error lines", #lowc, #errs)
end)

step("Tell the team", {
  description = "Severity Levels: a parsing accuracy drop is P2 (respond within 1 hour).",
  when = function() return state.low end,
}, function()
  local parts = {}
  for k, v in pairs(state.confidence) do parts[#parts + 1] = string.format("%s %.2f", k, v) end
  table.sort(parts)
  escalation.notify(cal.level("P2"), {
    summary = string.format("calendar-api parsing accuracy %.1f%% (< %.0f%%); confidence %s; %d parsing errors",
                            state.accuracy * 100, params.threshold * 100,
                            #parts > 0 and table.concat(parts, ", ") or "n/a", state.parsing_errors),
    dedup_key = "calendar-api-parsing-accuracy", source = "calendar-api/low-parsing-accuracy",
  })
end)

step("Update golden test set", {
  description = "Mitigation option 1: `python scripts/update_golden_set.py --auto-update` (as in Weekly " ..
                "Maintenance › Performance Analysis), then the golden tests again. Only when the golden " ..
                "expectations are stale rather than the parser wrong: asks first.",
  when = function() return state.low end,
}, function()
  if not confirm(string.format("Accuracy %.1f%%: are the golden expectations stale (not a parser regression)? " ..
                               "Update the golden test set with --auto-update?", state.accuracy * 100)) then
    log.warn("golden set left as it is")
    return
  end
  exec({ params.python, params.update, "--auto-update" }, { cwd = params.root, timeout = params.timeout })
  state.golden_updated = true
  if dry_run() then state.rehearsal = true; return end -- the golden set is unchanged: no new accuracy
  state.accuracy_after = golden_tests()
  log.info("accuracy after the update: %s", state.accuracy_after and string.format("%.1f%%", state.accuracy_after * 100) or "?")
end)

step("Manual review mode and escalation", {
  description = "Mitigation options 2-4 (retrain models, adjust confidence thresholds, enable manual " ..
                "review mode) are a person's decisions: a checkpoint, then the run fails while the " ..
                "accuracy stays low.",
  when = function() return state.low and not state.rehearsal end,
}, function()
  local acc = state.accuracy_after or state.accuracy
  if acc >= params.threshold then
    log.info("accuracy back to %.1f%%", acc * 100)
    return
  end
  confirm(string.format("Accuracy still %.1f%%: enable manual review mode / adjust confidence thresholds / " ..
                        "retrain (the document gives no command). Acknowledged?", acc * 100))
  check(false, "parsing accuracy %.1f%% below %.0f%%: escalate (P2)", acc * 100, params.threshold * 100)
end)
