-- stdlib/prometheus.lua without a server: the exposition-format parser,
-- selectors, the RE2 -> POSIX ERE translation, sum/ratio/value.  Pure
-- functions: no action is taken.
-- Run by ctest from tests/lua as `runbook run prometheus_parse.lua --no-audit --yes`.
runbook { name = "tests/prometheus-parse", title = "prometheus.parse and selectors" }

local prometheus = require "prometheus"

local function checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "', but the call succeeded")
  err = tostring(err)
  assert(err:find(pattern), "error '" .. err .. "' does not match '" .. pattern .. "'")
  return err
end

local function isnan(x) return x ~= x end

-- a deterministic rendering of a sample: name{k="v",...} value [ts]
local function show(s)
  local keys = {}
  for k in pairs(s.labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = string.format("%s=%q", k, s.labels[k])
  end
  local v = isnan(s.value) and "NaN" or (s.value == math.huge and "+Inf")
            or (s.value == -math.huge and "-Inf")
            or (math.type(s.value) == "integer" and tostring(s.value))
            or string.format("%.17g", s.value)
  local out = s.name .. "{" .. table.concat(parts, ",") .. "} " .. v
  if s.timestamp then out = out .. " @" .. tostring(s.timestamp) end
  return out
end

local function shows(samples)
  local out = {}
  for i, s in ipairs(samples) do out[i] = show(s) end
  return table.concat(out, "\n")
end

local METRICS = [[
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027 1395066363000
http_requests_total{method="GET",code="500"} 3 1395066363000
http_requests_total{method="POST",code="503"} 7
http_requests_total{method="POST",code="200"} 60
http_requests_total{method="GET",code="404"} 10

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
]]

step("parse: the exposition format example", function()
  local s = prometheus.parse(METRICS)
  assert(#s == 17, "17 samples, got " .. #s)
  assert(show(s[1]) == 'http_requests_total{code="200",method="GET"} 1027 @1395066363000', show(s[1]))
  assert(math.type(s[1].timestamp) == "integer")
  assert(s[3].timestamp == nil)
  assert(s[6].labels.path == [[C:\DIR\FILE.TXT]], s[6].labels.path)
  assert(s[6].labels.error == 'Cannot find file:\n"FILE.TXT"', s[6].labels.error)
  assert(s[6].value == 1458255915)
  assert(s[7].name == "metric_without_timestamp_and_labels" and s[7].value == 12.47)
  assert(next(s[7].labels) == nil, "no labels is an empty table")
  assert(s[8].value == math.huge and s[8].timestamp == -3982045)
  assert(s[11].labels.le == "+Inf" and s[11].value == 144320)
  assert(s[12].name == "http_request_duration_seconds_sum")
  assert(s[15].name == "rpc_duration_seconds" and s[15].labels.quantile == "0.99")
  assert(s[16].value == 1.7560473e+07)
end)

-- { input, expected rendering (one line per sample) }
local PARSE_CASES = {
  { "a 1", "a{} 1" },
  { "a 1\n", "a{} 1" },
  { "a 1\r\nb 2\r\n", "a{} 1\nb{} 2" },
  { "   a 1", "a{} 1" },
  { "a\t1\t5", "a{} 1 @5" },
  { "a{} 1", "a{} 1" },
  { "a{x=\"1\",} 1", 'a{x="1"} 1' },
  { "a{ x = \"1\" , y=\"2\" } 1", 'a{x="1",y="2"} 1' },
  { "a{x=\"\"} 1", 'a{x=""} 1' },
  { "a{x=\"a,b}c\"} 1", 'a{x="a,b}c"} 1' },
  { 'a{x="\\\\n"} 1', 'a{x="\\\\n"} 1' },
  { "ns:rule_name:rate5m 0.5", "ns:rule_name:rate5m{} 0.5" },
  { "_under 1", "_under{} 1" },
  { "a NaN", "a{} NaN" },
  { "a -Inf", "a{} -Inf" },
  { "a +inf", "a{} +Inf" },
  { "a 1e-3", "a{} 0.001" },
  { "a -0.5", "a{} -0.5" },
  { "a .5", "a{} 0.5" },
  { "a 9007199254740993", "a{} 9007199254740993" },
  { "# only a comment\n\n# another", "" },
  { "# EOF", "" },
  { '{"my.dotted.metric", env="prod"} 3', 'my.dotted.metric{env="prod"} 3' },
  { '{"quoted.name"} 4', "quoted.name{} 4" },
  { 'a{"dotted.label"="v"} 5', 'a{dotted.label="v"} 5' },
  { "a 1 1700000000000 # {trace_id=\"x\"} 1", "a{} 1 @1700000000000" },
}

step("parse: table of cases", function()
  for i, c in ipairs(PARSE_CASES) do
    local got = shows(prometheus.parse(c[1]))
    assert(got == c[2], string.format("case %d %q: got\n%s\nwant\n%s", i, c[1], got, c[2]))
  end
  assert(isnan(prometheus.parse("a NaN")[1].value))
end)

-- { input, error pattern }
local PARSE_ERRORS = {
  { "a", "line 1: no value" },
  { "ok 1\n  b{x=\"1\"}", "line 2: no value" },
  { "a{x=1} 1", "line 1: expected a quoted value for label x" },
  { "a{x=\"1\" 1", "expected , or }" },
  { "a{x=\"1} 2", "unterminated string" },
  { "a{x=\"\\q\"} 1", "invalid escape \\q" },
  { "a{x=\"1\",x=\"2\"} 1", "duplicate label x" },
  { "a{1x=\"1\"} 1", "bad label name" },
  { "a abc", "bad value 'abc'" },
  { "a 1 notatime", "bad timestamp 'notatime'" },
  { "a 1 2 3", "unexpected text after the timestamp" },
  { "9a 1", "line 1: not a sample" },
  { "{x=\"1\"} 1", "without a metric name" },
}

step("parse: errors name the line and the reason", function()
  for _, c in ipairs(PARSE_ERRORS) do
    local err = checkerr("prometheus%.parse: ", prometheus.parse, c[1])
    assert(err:find(c[2], 1, true), string.format("%q: error %q lacks %q", c[1], err, c[2]))
  end
  -- raised at the caller's line, not inside the module
  local err = checkerr("prometheus_parse%.lua:%d+: prometheus%.parse",
                       function() local r = prometheus.parse("a"); return r end)
  assert(not err:find("stdlib/prometheus"), err)
  checkerr("prometheus%.parse: argument 1 %(text%) must be a string, got nil", prometheus.parse, nil)
  checkerr("expected the exposition text", prometheus.parse, 42)
end)

-- { selector, the expected samples of METRICS by index }
local SELECT_CASES = {
  { "http_requests_total", { 1, 2, 3, 4, 5 } },
  { "http_requests_total{}", { 1, 2, 3, 4, 5 } },
  { 'http_requests_total{code="200"}', { 1, 4 } },
  { 'http_requests_total{code!="200"}', { 2, 3, 5 } },
  { 'http_requests_total{code=~"5.."}', { 2, 3 } },
  { 'http_requests_total{code=~"5"}', {} },                -- anchored
  { 'http_requests_total{code=~".*0"}', { 1, 2, 4 } },
  { 'http_requests_total{code!~"5.."}', { 1, 4, 5 } },
  { 'http_requests_total{code=~"5..",method!="GET"}', { 3 } },
  { 'http_requests_total{code=~"404|503"}', { 3, 5 } },
  { 'http_requests_total{code=~"(4|5)0[0-9]"}', { 2, 3, 5 } },
  { "http_requests_total{code=~'5\\d\\d'}", { 2, 3 } },
  { 'http_requests_total{code=~"5\\\\d+"}', { 2, 3 } },
  { "http_requests_total{code=~`[45]\\d{2}`}", { 2, 3, 5 } },
  { 'http_requests_total{code=~"(?:2|5)00"}', { 1, 2, 4 } },
  { 'http_requests_total{method=~"get|post"}', {} },       -- case-sensitive
  { 'http_requests_total{method=~"P.+?"}', { 3, 4 } },     -- lazy = greedy for a full match
  { 'http_requests_total{nolabel=""}', { 1, 2, 3, 4, 5 } }, -- missing label is ""
  { 'http_requests_total{nolabel!=""}', {} },
  { 'http_requests_total{nolabel=~".*"}', { 1, 2, 3, 4, 5 } },
  { '{__name__="metric_without_timestamp_and_labels"}', { 7 } },
  { '{__name__=~"rpc_.*_count"}', { 17 } },
  { '{__name__=~"http_request_duration_seconds_.*",le=~"0\\\\.[0-9]+"}', { 9, 10 } },
  { '{quantile=~"0\\\\.\\\\d+"}', { 14, 15 } },
  { 'http_request_duration_seconds_bucket{le="+Inf"}', { 11 } },
  { 'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT"}', { 6 } },
  { 'msdos_file_access_time_seconds{error=~"Cannot.*TXT\\""}', { 6 } }, -- . matches \n
  { 'something_weird{problem=~"division by [a-z]+"}', { 8 } },
  { 'something_weird{problem=~"division\\\\sby\\\\s\\\\w+"}', { 8 } },
  { 'something_weird{problem=~"[^x]+"}', { 8 } },
  { 'something_weird{problem=~"[d][i]vision.*"}', { 8 } },
  { '  http_requests_total { code = "500" }  ', { 2 } },
}

step("select: matchers", function()
  local samples = prometheus.parse(METRICS)
  for _, c in ipairs(SELECT_CASES) do
    local got = prometheus.select(samples, c[1])
    local want = {}
    for i, idx in ipairs(c[2]) do want[i] = show(samples[idx]) end
    assert(shows(got) == table.concat(want, "\n"),
           string.format("%s: got\n%s\nwant\n%s", c[1], shows(got), table.concat(want, "\n")))
  end
  -- text works as well as parsed samples
  assert(#prometheus.select(METRICS, 'http_requests_total{code=~"5.."}') == 2)
  -- and so does an http response
  assert(#prometheus.select({ status = 200, body = METRICS }, "rpc_duration_seconds") == 2)
end)

local SELECTOR_ERRORS = {
  { "", "empty selector" },
  { "{}", "empty selector" },
  { "a{", "missing }" },
  { 'a{x="1"', "missing }" },
  { 'a{x:"1"}', "expected =, !=, =~ or !~" },
  { "a{x=1}", "expected a quoted value" },
  { 'a{x="1"} extra', "text after }" },
  { 'a{x="1" y="2"}', "expected , or }" },
  { "a b", "expected { after the metric name" },
  { 'a{x=~"(?i)get"}', "not supported" },
  { 'a{x=~"\\\\bword"}', "\\b is not supported" },
  { 'a{x=~"[b-a]"}', "bad range" },
  { 'a{x=~"[abc"}', "missing ]" },
}

step("select: selector errors", function()
  for _, c in ipairs(SELECTOR_ERRORS) do
    local err = checkerr("prometheus: ", prometheus.select, METRICS, c[1])
    assert(err:find(c[2], 1, true), string.format("%q: error %q lacks %q", c[1], err, c[2]))
  end
  checkerr("a selector must be a string", prometheus.select, METRICS, 42)
  checkerr("expected samples, exposition text or a response", prometheus.select, 42, "a")
end)

-- { RE2 pattern, subjects that must match (whole), subjects that must not }
local REGEX_CASES = {
  { "5..", { "500", "503", "5xx" }, { "50", "5000", "200" } },
  { "a|b", { "a", "b" }, { "ab", "" } },
  { "(a|b)+c", { "ac", "abbac" }, { "c", "abd" } },
  { "colou?r", { "color", "colour" }, { "colouur" } },
  { "x{2,3}", { "xx", "xxx" }, { "x", "xxxx" } },
  { "[0-9]+", { "0", "123" }, { "", "12a" } },
  { "\\d+\\.\\d+", { "1.5", "10.25" }, { "1x5", "1." } },
  { "\\D+", { "abc" }, { "a1" } },
  { "\\w+", { "a_B9" }, { "a-b" } },
  { "\\W", { "-" }, { "a" } },
  { "\\s\\S", { " x" }, { "  ", "xx" } },
  { "[\\d.]+", { "1.2.3" }, { "1,2" } },
  { "[\\w-]+", { "my-host_1" }, { "my host" } },
  { "[]a]+", { "]a]" }, { "b" } },
  { "[a\\]]+", { "a]" }, { "b" } },
  { "[^\\]]+", { "abc" }, { "a]" } },
  { "[.]", { "." }, { "x" } },
  { "[\\\\]", { "\\" }, { "x" } },
  { "a-b", { "a-b" }, { "ab" } },
  { "[a-c-]+", { "a-c-b" }, { "d" } },
  { "[\\^a]+", { "^a^" }, { "b" } },
  { "[[:digit:]]+", { "42" }, { "4x" } },
  { "a\\+b", { "a+b" }, { "aab" } },
  { "\\(x\\)", { "(x)" }, { "x" } },
  { "a\\/b", { "a/b" }, { "ab" } },
  { "\\{", { "{" }, { "x" } },
  { ".*", { "", "anything\nat all" }, {} },
  { "^abc$", { "abc" }, { "xabc" } },
  { "a*?b", { "aab", "b" }, { "a" } },
  { "(?:ab)+", { "abab" }, { "aba" } },
}

step("regex: RE2 syntax through POSIX ERE", function()
  for _, c in ipairs(REGEX_CASES) do
    local sel = "{x=~`" .. c[1] .. "`}"
    for _, s in ipairs(c[2]) do
      assert(prometheus.match({ x = s }, sel), string.format("%s should match %q (ERE %s)", c[1], s,
             prometheus.regex(c[1])))
    end
    for _, s in ipairs(c[3]) do
      assert(not prometheus.match({ x = s }, sel),
             string.format("%s should not match %q (ERE %s)", c[1], s, prometheus.regex(c[1])))
    end
  end
  assert(prometheus.regex("\\d") == "[0-9]")
  assert(prometheus.regex("(?:a|b)c*?") == "(a|b)c*")
end)

step("match: label sets against selectors and matcher lists", function()
  local labels = { alertname = "HighErrorRate", severity = "critical", team = "api" }
  assert(prometheus.match(labels, '{severity="critical"}'))
  assert(prometheus.match(labels, '{severity=~"critical|warning",team!="db"}'))
  assert(not prometheus.match(labels, '{severity="warning"}'))
  assert(prometheus.match(labels, { { "team", "=~", "a.*" } }))
  assert(prometheus.match(labels, "HighErrorRate", "HighErrorRate"))
  assert(not prometheus.match(labels, "Other", "HighErrorRate"))
end)

step("sum, value, ratio", function()
  assert(prometheus.sum(METRICS, "http_requests_total") == 1107)
  assert(prometheus.sum(METRICS, 'http_requests_total{code=~"5.."}') == 10)
  assert(prometheus.sum(METRICS, "no_such_metric") == 0)
  assert(prometheus.sum(prometheus.select(METRICS, 'http_requests_total{method="POST"}')) == 67)
  assert(prometheus.value(METRICS, "metric_without_timestamp_and_labels") == 12.47)
  assert(prometheus.value(METRICS, "no_such_metric") == nil)
  checkerr("prometheus%.value: 5 samples match", prometheus.value, METRICS, "http_requests_total")
  -- SPEC §2: the 5xx ratio of a /metrics body
  local r = prometheus.ratio(METRICS, 'http_requests_total{code=~"5.."}', "http_requests_total")
  assert(math.abs(r - 10 / 1107) < 1e-12, r)
  assert(prometheus.ratio(METRICS, "http_requests_total", "no_such_metric") == 0,
         "a zero denominator gives 0")
  assert(prometheus.ratio("", "a", "b") == 0)
  local s = prometheus.parse("x 1\ny 0")
  assert(prometheus.ratio(s, "x", "y") == 0)
  assert(prometheus.ratio("x 1\ny 4", "x", "y") == 0.25)
end)

step("parse_value", function()
  local cases = { ["1"] = 1, ["-2.5"] = -2.5, ["1e3"] = 1000, ["+Inf"] = math.huge,
                  ["-Inf"] = -math.huge, ["Inf"] = math.huge }
  for text, want in pairs(cases) do
    assert(prometheus.parse_value(text) == want, text)
  end
  assert(isnan(prometheus.parse_value("NaN")))
  assert(prometheus.parse_value("abc") == nil)
  assert(prometheus.parse_value("") == nil)
end)

-- no time limit here (tests never time things: under ASan on a loaded CI
-- runner a fixed limit only flakes); the size is the check that parsing stays
-- usable on a real exposition
step("a large exposition parses", function()
  local lines = {}
  for i = 1, 20000 do
    lines[i] = string.format('req_total{code="%d",path="/api/v1/item/%d"} %d', 200 + (i % 5) * 100,
                             i, i)
  end
  local text = table.concat(lines, "\n")
  local r = prometheus.ratio(text, 'req_total{code=~"5.."}', "req_total")
  assert(math.abs(r - 0.2) < 0.01, r)
  assert(#prometheus.parse(text) == 20000)
end)
