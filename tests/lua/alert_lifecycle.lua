-- stdlib/prometheus.lua and alertmanager.lua without a server: OpenMetrics
-- exemplars, values printed as Prometheus prints them, durations, and the
-- argument checks of query_range/targets/rules/alerts and silence/silences/
-- expire, which raise before any request (so no action is taken here; the
-- servers' side is tests/cli/test_alert_lifecycle.py).
-- Run by ctest from tests/lua as `runbook run alert_lifecycle.lua --no-audit --yes`.
runbook { name = "tests/alert-lifecycle", title = "prometheus and alertmanager: pure parts" }

local prometheus = require "prometheus"
local alertmanager = require "alertmanager"
local support = require "stdlib_support"

local function checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error containing '" .. pattern .. "', but the call succeeded")
  err = tostring(err)
  assert(err:find(pattern, 1, true), "error '" .. err .. "' lacks '" .. pattern .. "'")
  assert(not err:find("stdlib/"), "raised inside the module, not at the caller: " .. err)
  return err
end

step("exemplars", function()
  local s = prometheus.parse('foo_bucket{le="0.1"} 5 # {trace_id="abc"} 0.05 1234')
  assert(#s == 1 and s[1].value == 5 and s[1].labels.le == "0.1")
  assert(s[1].timestamp == nil)
  local ex = s[1].exemplar
  assert(ex and ex.labels.trace_id == "abc" and ex.value == 0.05 and ex.timestamp == 1234)
  -- with the sample's own timestamp, without the exemplar's, float timestamps
  s = prometheus.parse('a_total 3 1700000000.5 # {id="x"} 1\nb 1 # {} NaN 1.25')
  assert(s[1].timestamp == 1700000000.5 and s[1].exemplar.value == 1)
  assert(s[1].exemplar.timestamp == nil)
  assert(next(s[2].exemplar.labels) == nil and s[2].exemplar.value ~= s[2].exemplar.value)
  assert(s[2].exemplar.timestamp == 1.25)
  -- a "#" inside a label value is not an exemplar
  s = prometheus.parse('a{path="/x # y"} 2')
  assert(s[1].labels.path == "/x # y" and s[1].exemplar == nil)
  for _, bad in ipairs({ 'a 1 # trace', 'a 1 # {id="x"}', 'a 1 # {id="x"} z',
                         'a 1 # {id="x" 1', 'a 1 # {id="x"} 1 2 3' }) do
    checkerr("exemplar", prometheus.parse, bad)
  end
end)

step("format_value prints as Prometheus", function()
  local cases = {
    { prometheus.parse_value("NaN"), "NaN" }, { 0 / 0, "NaN" }, { -(0 / 0), "NaN" },
    { math.huge, "+Inf" }, { -math.huge, "-Inf" }, { 1, "1" }, { 1.0, "1" }, { -3.0, "-3" },
    { 0.1, "0.1" }, { 2.5, "2.5" }, { 1 / 3, "0.3333333333333333" }, { 1e300, "1e+300" },
    { 144320, "144320" },
  }
  for _, c in ipairs(cases) do
    local got = prometheus.format_value(c[1])
    assert(got == c[2], string.format("%s: got %s, want %s", tostring(c[1]), got, c[2]))
  end
  -- the parser's NaN has no sign bit, so even tostring() is not "-nan"
  assert(tostring(prometheus.parse_value("NaN")) ~= "-nan")
  assert(tostring(prometheus.parse("a -nan")[1].value) ~= "-nan")
end)

step("durations", function()
  local cases = { { "30s", 30 }, { "5m", 300 }, { "1h30m", 5400 }, { "500ms", 0.5 },
                  { "2d", 172800 }, { "1w", 604800 }, { 90, 90 }, { "45", 45 },
                  { "1.5h", 5400 } }
  for _, c in ipairs(cases) do
    assert(support.duration(c[1]) == c[2], tostring(c[1]))
  end
  for _, bad in ipairs({ "5 mins", "m", "", "30x", {}, -1 }) do
    assert(support.duration(bad) == nil, tostring(bad))
  end
end)

step("unknown options and missing arguments raise before any request", function()
  local P, A = "http://127.0.0.1:1", "http://127.0.0.1:1"
  checkerr("unknown option 'stpe' for prometheus.query_range (did you mean 'step'?)",
           prometheus.query_range, P, "up", { start = 1, stpe = 1 })
  checkerr("unknown option 'end' for prometheus.query_range",
           prometheus.query_range, P, "up", { start = 1, step = 1, ["end"] = 2 })
  checkerr("unknown option 'timout' for prometheus.targets (did you mean 'timeout'?)",
           prometheus.targets, P, { timout = 1 })
  checkerr("unknown option 'kind' for prometheus.rules", prometheus.rules, P, { kind = 1 })
  checkerr("prometheus.alerts: argument 2 (opts) must be an options table, got string",
           prometheus.alerts, P, "x")
  checkerr("prometheus.query_range: missing option 'step'", prometheus.query_range, P, "up",
           { start = 1 })
  checkerr("prometheus.query_range: argument 2 (promql) must be a string, got table",
           prometheus.query_range, P, { start = 1 })
  checkerr("start must be an RFC 3339 time", prometheus.query_range, P, "up",
           { start = "2024-05-01 09:00", step = 1 })
  checkerr("stop must be an RFC 3339 time", prometheus.query_range, P, "up",
           { start = 1, stop = 0 / 0, step = 1 })
  checkerr("step: must be more than 0", prometheus.query_range, P, "up", { start = 1, step = 0 })

  local ok_opts = { matchers = { alertname = "X" }, duration = "30m", comment = "why" }
  local function with(k, v)
    local o = {}
    for x, y in pairs(ok_opts) do o[x] = y end
    o[k] = v
    return o
  end
  checkerr("unknown option 'comnent' for alertmanager.silence (did you mean 'comment'?)",
           alertmanager.silence, A, with("comnent", "x"))
  checkerr("unknown option 'for' for alertmanager.silence",
           alertmanager.silence, A, with("for", "1h"))
  checkerr("alertmanager.silence: missing option 'matchers'", alertmanager.silence, A,
           with("matchers", nil))
  checkerr("alertmanager.silence: matchers: at least one matcher", alertmanager.silence, A,
           with("matchers", {}))
  checkerr("alertmanager: bad filter", alertmanager.silence, A, with("matchers", "a=~"))
  checkerr('alertmanager.silence: duration: bad duration "soon"', alertmanager.silence, A,
           with("duration", "soon"))
  checkerr("alertmanager.silence: comment must say why", alertmanager.silence, A,
           with("comment", "  "))
  checkerr("alertmanager.silence: missing argument 2 (opts); usage: alertmanager.silence(base, opts)",
           alertmanager.silence, A)
  checkerr("unknown option 'stat' for alertmanager.silences (did you mean 'state'?)",
           alertmanager.silences, A, nil, { stat = "active" })
  -- a hint is given only where the option it names exists
  local e = checkerr("unknown option 'filter' for alertmanager.silences", alertmanager.silences,
                     A, nil, { filter = { a = "b" } })
  assert(not e:find("did you mean 'matchers'"), e)
  checkerr("unknown option 'filter' for alertmanager.silence",
           alertmanager.silence, A, with("filter", { a = "b" }))
  checkerr("alertmanager.expire: missing argument 2 (id)", alertmanager.expire, A)
  checkerr("alertmanager.expire: expected a silence id", alertmanager.expire, A, "")
  checkerr("alertmanager.expire: argument 1 (base) must be a string, got nil",
           alertmanager.expire, nil, "id")
  checkerr("alertmanager.expire: expected the Alertmanager base URL", alertmanager.expire, "",
           "id")
end)
