-- prometheus: the text exposition format, label selectors and the HTTP API.
--
--   local prometheus = require "prometheus"
--   local samples = prometheus.parse(http.get(api .. "/metrics").body)
--   local errors  = prometheus.select(samples, 'http_requests_total{code=~"5.."}')
--   local ratio   = prometheus.ratio(body, 'http_requests_total{code=~"5.."}',
--                                    "http_requests_total")
--   local up      = prometheus.query("http://prometheus:9090", 'up{job="api"}')
--
--   local rng     = prometheus.query_range(prom, "rate(errors_total[5m])",
--                                          { start = now() - 3600, step = "1m" })
--   local targets = prometheus.targets(prom)     -- scrape targets, with up
--   local rules   = prometheus.rules(prom)       -- every rule, flattened
--   local firing  = prometheus.alerts(prom)      -- pending and firing alerts
--
-- parse/select/sum/ratio/format_value are pure Lua (no action); query,
-- query_range, targets, rules and alerts are one http.get each, so they run
-- through the funnel like any read.  Every function declares its signature
-- (signature.wrap): a missing or misplaced argument raises with the usage
-- line, and an unknown option key raises `unknown option 'X' for
-- prometheus.F (did you mean 'Y'?)` before any request.
--
-- parse takes the Prometheus text format and OpenMetrics: an exemplar after
-- a sample (`foo_bucket{le="0.1"} 5 # {trace_id="abc"} 0.05 1234`) is kept
-- as sample.exemplar = { labels, value, timestamp }.  NaN, +Inf and -Inf
-- are Lua numbers; prometheus.format_value(v) prints them as Prometheus does.
--
-- Selectors are PromQL instant-vector selectors: `name`, `name{matchers}` or
-- `{matchers}`, matchers `label="v"`, `!=`, `=~`, `!~`, values in "...",
-- '...' or `...`.  As in Prometheus a missing label equals "", and regular
-- expressions are anchored at both ends (`code=~"5.."` is ^(?:5..)$).
-- Regexes run on the C library's POSIX ERE (regex.match); the RE2 syntax
-- Prometheus uses is translated for the common forms: alternation, groups
-- and (?:...), . * + ? {m,n} (lazy forms too), [classes] with escapes,
-- \d \D \w \W \s \S, \n \t, escaped metacharacters.  Not supported (an
-- error says so): flags such as (?i), \b, \pL, named groups, backreferences.
local M = {}

local support = require "stdlib_support"
local list = support.list
-- errors for the caller: { prom = message }, re-raised at the runbook's line
local fail, public = support.errors("prom")

-- ---- parsing ---------------------------------------------------------------

-- 0/0 has its sign bit set on x86, which the C library prints as "-nan";
-- fabs clears it, so a NaN we hand out prints as "nan" at worst (format_value
-- below prints it as Prometheus does: "NaN").
local NAN = math.abs(0 / 0)

local special_values = {
  ["+inf"] = math.huge, ["inf"] = math.huge, ["-inf"] = -math.huge,
  ["nan"] = NAN, ["+nan"] = NAN, ["-nan"] = NAN,
}

-- A sample value: a Go float ("1e3", "0x1p-2" is not valid in the format but
-- harmless), +Inf, -Inf, NaN.  nil when it is not a number.
local function parse_value(s)
  local v = special_values[s:lower()]
  if v then return v end
  if s:find("^[+-]?[%d.]") then
    return tonumber(s)
  end
  return nil
end

-- A sample value as Prometheus prints it: "NaN", "+Inf", "-Inf", integral
-- values without a decimal point, others the shortest decimal that reads
-- back as the same number (never the C library's "-nan" or "inf").
local function format_value(v)
  if type(v) ~= "number" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format("%d", math.tointeger(v))
  end
  for prec = 15, 17 do
    local t = string.format("%." .. prec .. "g", v)
    if tonumber(t) == v then return t end
  end
  return string.format("%.17g", v)
end

local escapes = { ["\\"] = "\\", ['"'] = '"', n = "\n" }

-- Read a double-quoted string starting at s:sub(i, i) == '"'.
-- Returns the value and the index after the closing quote, or nil, error.
local function read_quoted(s, i)
  local parts, j = {}, i + 1
  while true do
    local k = s:find('[\\"]', j)
    if not k then return nil, "unterminated string" end
    parts[#parts + 1] = s:sub(j, k - 1)
    if s:sub(k, k) == '"' then
      return table.concat(parts), k + 1
    end
    local e = s:sub(k + 1, k + 1)
    local rep = escapes[e]
    if not rep then
      return nil, "invalid escape \\" .. e .. " in a label value"
    end
    parts[#parts + 1] = rep
    j = k + 2
  end
end

-- Parse the label set of line starting after "{" at i; returns name (when
-- the set carries a quoted metric name), labels, index after "}"; or nil,
-- nil, error.
local function parse_labels(line, i)
  local labels, name = {}, nil
  while true do
    i = line:find("[^ \t]", i) or #line + 1
    local c = line:sub(i, i)
    if c == "}" then return name, labels, i + 1 end
    if c == "" then return nil, nil, "missing }" end
    local key
    if c == '"' then -- a quoted name: a label name, or the metric name itself
      local v, j = read_quoted(line, i)
      if not v then return nil, nil, j end
      key, i = v, j
      local k = line:find("[^ \t]", i) or #line + 1
      if line:sub(k, k) ~= "=" then
        if name then return nil, nil, "two metric names" end
        name = key
        key = nil
        i = k
      end
    else
      key = line:match("^[%a_][%w_]*", i)
      if not key then return nil, nil, "bad label name at column " .. i end
      i = i + #key
    end
    if key then
      i = line:find("[^ \t]", i) or #line + 1
      if line:sub(i, i) ~= "=" then return nil, nil, "expected = after label " .. key end
      i = line:find("[^ \t]", i + 1) or #line + 1
      if line:sub(i, i) ~= '"' then return nil, nil, "expected a quoted value for label " .. key end
      local v, j = read_quoted(line, i)
      if not v then return nil, nil, j end
      if labels[key] ~= nil then return nil, nil, "duplicate label " .. key end
      labels[key] = v
      i = j
    end
    i = line:find("[^ \t]", i) or #line + 1
    c = line:sub(i, i)
    if c == "," then
      i = i + 1
    elseif c ~= "}" then
      return nil, nil, "expected , or } in the label set"
    end
  end
end

-- The exemplar after a sample's " # ": `{labels} value [timestamp]` ->
-- { labels, value, timestamp? }, or nil, error.
local function parse_exemplar(ex)
  local i = ex:find("[^ \t]") or #ex + 1
  if ex:sub(i, i) ~= "{" then return nil, "expected {labels} after #" end
  local qname, labels, j = parse_labels(ex, i + 1)
  if not labels then return nil, j end
  if qname then return nil, "a metric name in an exemplar's labels" end
  local vs, ts, extra = ex:sub(j):match("^[ \t]+(%S+)[ \t]*(%S*)[ \t]*(.*)$")
  if not vs then return nil, "no value" end
  if extra ~= "" then return nil, "unexpected text after the timestamp" end
  local v = parse_value(vs)
  if not v then return nil, "bad value '" .. vs .. "'" end
  local out = { labels = labels, value = v }
  if ts ~= "" then
    local t = tonumber(ts)
    if not t then return nil, "bad timestamp '" .. ts .. "'" end
    out.timestamp = math.tointeger(t) or t
  end
  return out
end

-- One sample line -> sample, or nil, error.
local function parse_line(line)
  local name, labels, i
  local n = line:match("^[%a_:][%w_:]*")
  if n then
    name, i = n, #n + 1
  end
  local c = line:sub(i or 1, i or 1)
  if c == "{" then
    local qname, ls, j = parse_labels(line, (i or 1) + 1)
    if not ls then return nil, j end
    if qname and name then return nil, "two metric names" end
    name, labels, i = name or qname, ls, j
  elseif not name then
    return nil, "not a sample"
  else
    labels = {}
  end
  if not name then return nil, "a sample without a metric name" end
  local rest = line:sub(i)
  -- OpenMetrics: `value [timestamp] # {labels} value [timestamp]`, an exemplar
  local ex
  local h = rest:find("[ \t]#")
  if h then
    rest, ex = rest:sub(1, h - 1), rest:sub(h + 2)
  end
  local vs, ts, extra = rest:match("^[ \t]+(%S+)[ \t]*(%S*)[ \t]*(.*)$")
  if not vs then return nil, "no value" end
  if extra ~= "" then return nil, "unexpected text after the timestamp" end
  local v = parse_value(vs)
  if not v then return nil, "bad value '" .. vs .. "'" end
  local sample = { name = name, labels = labels, value = v }
  if ts ~= "" then
    local t = tonumber(ts)
    if not t then return nil, "bad timestamp '" .. ts .. "'" end
    sample.timestamp = math.tointeger(t) or t
  end
  if ex then
    local err
    sample.exemplar, err = parse_exemplar(ex)
    if not sample.exemplar then return nil, "exemplar: " .. err end
  end
  return sample
end

-- prometheus.parse(text) -> { { name, labels = {k = v}, value, timestamp?,
-- exemplar? }, ... }; exemplar = { labels, value, timestamp? } (OpenMetrics).
-- Comments, # HELP, # TYPE, # EOF and blank lines are skipped; histogram
-- and summary series come out as the plain samples they are (_bucket with
-- le, _sum, _count, quantile).  A malformed line raises with its number.
local function parse(text)
  if type(text) ~= "string" then
    fail("prometheus.parse: expected the exposition text (a string), got %s", type(text))
  end
  local out, lineno = {}, 0
  for line in (text:find("\n$") and text or text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    line = line:gsub("\r$", ""):gsub("^[ \t]+", "")
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local s, err = parse_line(line)
      if not s then
        fail("prometheus.parse: line %d: %s: %s", lineno, err,
             #line > 80 and line:sub(1, 80) .. "..." or line)
      end
      out[#out + 1] = s
    end
  end
  return out
end

-- ---- regular expressions: RE2 syntax -> POSIX ERE -------------------------

local ere_special = {}
for c in ("^.[$()|*+?{\\]}"):gmatch(".") do ere_special[c] = true end

local class_of = {
  d = "0-9", w = "0-9A-Za-z_", s = " \t\n\r\f\v",
}

-- Translate a bracket expression starting at p:sub(i, i) == "[".
-- Returns the ERE text and the index after "]".
local function translate_class(p, i)
  local j = i + 1
  local negate = false
  if p:sub(j, j) == "^" then negate, j = true, j + 1 end
  local chars, ranges, named = {}, {}, {}
  local first = true
  local function add_char(c) chars[#chars + 1] = c end
  while true do
    local c = p:sub(j, j)
    if c == "" then error("missing ] in a character class", 0) end
    if c == "]" and not first then break end
    first = false
    local item
    if c == "[" and p:sub(j, j + 1) == "[:" then
      local name, e = p:match("^%[:(%a+):%]()", j)
      if not name then error("bad [:class:] in a character class", 0) end
      named[#named + 1] = "[:" .. name .. ":]"
      j = e
    else
      if c == "\\" then
        local e = p:sub(j + 1, j + 1)
        if class_of[e] then
          named[#named + 1] = class_of[e]
          j = j + 2
          goto continue
        elseif class_of[e:lower()] then
          error("\\" .. e .. " inside a character class is not supported", 0)
        elseif e == "n" then item = "\n"
        elseif e == "t" then item = "\t"
        elseif e == "r" then item = "\r"
        elseif e == "f" then item = "\f"
        elseif e == "v" then item = "\v"
        elseif e:match("%w") then
          error("\\" .. e .. " is not supported", 0)
        elseif e == "" then
          error("trailing \\", 0)
        else item = e end
        j = j + 2
      else
        item = c
        j = j + 1
      end
      -- a range a-b (the '-' not last)
      if p:sub(j, j) == "-" and p:sub(j + 1, j + 1) ~= "]" and p:sub(j + 1, j + 1) ~= "" then
        local hi = p:sub(j + 1, j + 1)
        local after = j + 2
        if hi == "\\" then
          hi = p:sub(j + 2, j + 2)
          hi = ({ n = "\n", t = "\t", r = "\r", f = "\f", v = "\v" })[hi] or hi
          after = j + 3
        end
        if hi:byte() < item:byte() then
          error("bad range " .. item .. "-" .. hi .. " in a character class", 0)
        end
        ranges[#ranges + 1] = { item, hi }
        j = after
      else
        add_char(item)
      end
    end
    ::continue::
  end
  -- POSIX: ']' first, '-' last, '^' not first, no escapes inside
  local has = {}
  for _, c in ipairs(chars) do has[c] = true end
  local body = {}
  if has["]"] then body[#body + 1] = "]" end
  for _, r in ipairs(ranges) do
    local lo, hi = r[1], r[2]
    if lo == "]" or lo == "-" or lo == "^" or hi == "]" or hi == "-" or lo == "[" then
      error("a range starting or ending with ] - ^ [ is not supported", 0)
    end
    body[#body + 1] = lo .. "-" .. hi
  end
  for _, n in ipairs(named) do body[#body + 1] = n end
  for _, c in ipairs(chars) do
    if c ~= "]" and c ~= "-" and c ~= "^" and c ~= "[" then body[#body + 1] = c end
  end
  if has["["] then body[#body + 1] = "[" end
  if has["^"] then body[#body + 1] = "^" end
  if has["-"] then body[#body + 1] = "-" end
  local inner = table.concat(body)
  if inner == "^" and not negate then return "\\^", j + 1 end
  if inner == "" then error("empty character class", 0) end
  return "[" .. (negate and "^" or "") .. inner .. "]", j + 1
end

local function translate(p)
  local out, i, n = {}, 1, #p
  while i <= n do
    local c = p:sub(i, i)
    if c == "\\" then
      local e = p:sub(i + 1, i + 1)
      if e == "" then error("trailing \\", 0) end
      if class_of[e] then
        out[#out + 1] = "[" .. class_of[e] .. "]"
      elseif class_of[e:lower()] then
        out[#out + 1] = "[^" .. class_of[e:lower()] .. "]"
      elseif e == "n" then out[#out + 1] = "\n"
      elseif e == "t" then out[#out + 1] = "\t"
      elseif e == "r" then out[#out + 1] = "\r"
      elseif e == "f" then out[#out + 1] = "\f"
      elseif e == "v" then out[#out + 1] = "\v"
      elseif e:match("%w") then
        error("\\" .. e .. " is not supported", 0)
      elseif ere_special[e] then out[#out + 1] = "\\" .. e
      else out[#out + 1] = e end
      i = i + 2
    elseif c == "[" then
      local cls, j = translate_class(p, i)
      out[#out + 1] = cls
      i = j
    elseif c == "(" then
      if p:sub(i + 1, i + 1) == "?" then
        if p:sub(i + 2, i + 2) ~= ":" then
          error("(?" .. p:sub(i + 2, i + 2) .. "...) (flags, named groups) is not supported", 0)
        end
        i = i + 3
      else
        i = i + 1
      end
      out[#out + 1] = "("
    elseif c == "*" or c == "+" or c == "?" or c == "}" then
      out[#out + 1] = c
      i = i + 1
      if p:sub(i, i) == "?" then i = i + 1 end -- lazy: the same set of full matches
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

local translated = {}

-- The POSIX ERE for the RE2-syntax re (fails with the reason when it cannot
-- be translated).
local function to_ere(re)
  local t = translated[re]
  if t then return t end
  local ok, res = pcall(translate, re)
  if not ok then
    fail("prometheus: regex %q: %s", re, tostring(res))
  end
  translated[re] = res
  return res
end

local regex_match_c = regex and regex.match -- taken now, while it is ours

local function regex_match(re, s)
  if not regex_match_c then
    fail("prometheus: =~ and !~ need the regex module")
  end
  return regex_match_c(to_ere(re), s)
end

-- ---- selectors ----------------------------------------------------------------

local selector_cache = {}

local function read_selector_string(s, i)
  local q = s:sub(i, i)
  if q == '"' then
    local parts, j = {}, i + 1
    while true do
      local k = s:find('[\\"]', j)
      if not k then return nil, "unterminated string" end
      parts[#parts + 1] = s:sub(j, k - 1)
      if s:sub(k, k) == '"' then return table.concat(parts), k + 1 end
      local e = s:sub(k + 1, k + 1)
      -- PromQL strings use Go escapes; a regex keeps its own backslashes
      local rep = ({ n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\" })[e]
      parts[#parts + 1] = rep or ("\\" .. e)
      j = k + 2
    end
  elseif q == "'" then
    local parts, j = {}, i + 1
    while true do
      local k = s:find("[\\']", j)
      if not k then return nil, "unterminated string" end
      parts[#parts + 1] = s:sub(j, k - 1)
      if s:sub(k, k) == "'" then return table.concat(parts), k + 1 end
      local e = s:sub(k + 1, k + 1)
      local rep = ({ n = "\n", t = "\t", r = "\r", ["'"] = "'", ["\\"] = "\\" })[e]
      parts[#parts + 1] = rep or ("\\" .. e)
      j = k + 2
    end
  elseif q == "`" then
    local k = s:find("`", i + 1, true)
    if not k then return nil, "unterminated string" end
    return s:sub(i + 1, k - 1), k + 1
  end
  return nil, "expected a quoted value"
end

-- prometheus.selector(text) -> { name = "x" | nil, matchers = { {label, op, value}, ... } }
local function selector(sel)
  if type(sel) ~= "string" then
    fail("prometheus: a selector must be a string, got %s", type(sel))
  end
  local cached = selector_cache[sel]
  if cached then return cached end
  local function bad(msg)
    fail("prometheus: bad selector %q: %s", sel, msg)
  end
  local s = sel:gsub("^%s+", ""):gsub("%s+$", "")
  local name, i = s:match("^([%a_:][%w_:]*)()")
  i = i or 1
  local matchers = {}
  local rest = s:sub(i):gsub("^%s+", "")
  if rest ~= "" then
    if rest:sub(1, 1) ~= "{" then bad("expected { after the metric name") end
    local j = 2
    while true do
      j = rest:find("%S", j) or #rest + 1
      local c = rest:sub(j, j)
      if c == "}" then
        if rest:sub(j + 1):find("%S") then bad("text after }") end
        break
      end
      if c == "" then bad("missing }") end
      local label
      if c == '"' then
        local v, k = read_selector_string(rest, j)
        if not v then bad(k) end
        label, j = v, k
      else
        label = rest:match("^[%a_][%w_]*", j)
        if not label then bad("expected a label name at '" .. rest:sub(j, j + 10) .. "'") end
        j = j + #label
      end
      j = rest:find("%S", j) or #rest + 1
      local op = rest:match("^=~", j) or rest:match("^!~", j) or rest:match("^!=", j)
                 or rest:match("^=", j)
      if not op then bad("expected =, !=, =~ or !~ after " .. label) end
      j = rest:find("%S", j + #op) or #rest + 1
      local v, k = read_selector_string(rest, j)
      if not v then bad(k .. " for " .. label) end
      if op == "=~" or op == "!~" then
        local ok, err = pcall(to_ere, v)
        if not ok then bad(type(err) == "table" and err.prom or tostring(err)) end
      end
      if label == "__name__" and op == "=" and not name then
        name = v
      else
        matchers[#matchers + 1] = { label, op, v }
      end
      j = rest:find("%S", k) or #rest + 1
      c = rest:sub(j, j)
      if c == "," then
        j = j + 1
      elseif c == "" then
        bad("missing }")
      elseif c ~= "}" then
        bad("expected , or }")
      end
    end
  end
  if not name and #matchers == 0 then bad("empty selector") end
  local out = { name = name, matchers = matchers }
  selector_cache[sel] = out
  return out
end

-- Does the label set (with the metric name as __name__) satisfy matchers?
local function match_labels(labels, matchers, name)
  for _, m in ipairs(matchers) do
    local label, op, want = m[1], m[2], m[3]
    local have
    if label == "__name__" then have = name else have = labels[label] end
    have = have ~= nil and tostring(have) or ""
    local ok
    if op == "=" then ok = have == want
    elseif op == "!=" then ok = have ~= want
    elseif op == "=~" then ok = regex_match(want, have)
    else ok = not regex_match(want, have) end
    if not ok then return false end
  end
  return true
end

local last_text, last_samples

-- Samples from a list of samples, exposition text, or an http response.
local function samples_of(x, fname)
  if type(x) == "table" and type(x.body) == "string" and x.status then
    x = x.body
  end
  if type(x) == "string" then
    if x ~= last_text then
      last_samples = parse(x)
      last_text = x
    end
    return last_samples
  elseif type(x) == "table" then
    return x
  end
  fail("prometheus.%s: expected samples, exposition text or a response, got %s", fname, type(x))
end

local function select_(x, sel, fname)
  local samples = samples_of(x, fname)
  local s = selector(sel)
  local out = list()
  for _, smp in ipairs(samples) do
    if (not s.name or smp.name == s.name) and match_labels(smp.labels, s.matchers, smp.name) then
      out[#out + 1] = smp
    end
  end
  return out
end

local function sum(x, sel)
  local samples = sel and select_(x, sel, "sum") or samples_of(x, "sum")
  local total = 0
  for _, smp in ipairs(samples) do total = total + smp.value end
  return total
end

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "prometheus.", public)

-- prometheus.parse(text) -> samples (see above)
export("parse", "text:str", "", parse)

-- prometheus.parse_value(text) -> the sample value (NaN, +Inf, -Inf too), nil if none
export("parse_value", "text:str", "", function(s) return parse_value(tostring(s)) end)

-- prometheus.selector(text) -> { name = "x" | nil, matchers = { {label, op, value}, ... } }
export("selector", "text:str", "", selector)

-- prometheus.regex(re) -> the POSIX ERE that implements the RE2-syntax re
export("regex", "re:str", "", to_ere)

-- prometheus.match(labels, selector_or_matchers [, name]) -> boolean: does a
-- label set satisfy a selector ("{severity=~\"crit.*\"}") or matcher list?
export("match", "labels selector:str|table name?:str", "", function(labels, sel, name)
  local s = type(sel) == "string" and selector(sel) or { matchers = sel }
  if s.name and s.name ~= name then return false end
  return match_labels(labels or {}, s.matchers, name)
end)

-- prometheus.select(samples_or_text, selector) -> the matching samples
export("select", "samples:table|str selector:str", "",
       function(x, sel) return select_(x, sel, "select") end)

-- prometheus.sum(samples_or_text [, selector]) -> the sum of the values (0 for none)
export("sum", "samples:table|str selector?:str", "", sum)

-- prometheus.value(samples_or_text, selector) -> the value of the one
-- matching sample, nil when none; raises when several match.
export("value", "samples:table|str selector:str", "", function(x, sel)
  local found = select_(x, sel, "value")
  if #found > 1 then
    fail("prometheus.value: %d samples match %s", #found, sel)
  end
  return found[1] and found[1].value
end)

-- prometheus.ratio(samples_or_text, num_selector, den_selector) ->
-- sum(num) / sum(den), 0 when the denominator is 0.
export("ratio", "samples:table|str num:str den:str", "", function(x, num, den)
  local samples = samples_of(x, "ratio")
  local d = sum(samples, den)
  if d == 0 then return 0 end
  return sum(samples, num) / d
end)

-- ---- the HTTP API --------------------------------------------------------------

local function api_url(base, path)
  if type(base) ~= "string" or base == "" then
    fail("prometheus: expected the Prometheus base URL (http://host:9090), got %s", type(base))
  end
  return (base:gsub("/+$", "")) .. path
end

local function api_get(base, path, query, opts, what)
  opts = opts or {}
  local url = api_url(base, path)
  local r = http.get(url, { query = query, timeout = opts.timeout, headers = opts.headers,
                            auth = opts.auth, insecure = opts.insecure, cacert = opts.cacert })
  local ok, doc = pcall(json.decode, r.body)
  if not ok or type(doc) ~= "table" then
    fail("prometheus %s: HTTP %d from %s: %s", what, r.status, url,
         (r.body or ""):match("^[^\n]*"):sub(1, 200))
  end
  if doc.status ~= "success" then
    fail("prometheus %s: %s: %s", what, tostring(doc.errorType or r.status),
         tostring(doc.error or "status " .. tostring(doc.status)))
  end
  return doc.data, doc
end

local function point(p)
  return tonumber(p[1]), parse_value(tostring(p[2]))
end

-- prometheus.query(base_url, promql [, { time, timeout, headers, auth }]) ->
-- { { metric = { labels }, value = number, timestamp = seconds }, ... }
-- (a scalar answer is one item with metric = {}; a string answer has the
-- string as value; a range vector has values = { {t, v}, ... }).
local function query(base, promql, opts)
  if type(promql) ~= "string" then
    fail("prometheus.query: expected a PromQL expression, got %s", type(promql))
  end
  opts = opts or {}
  local q = { query = promql }
  if opts.time then q.time = tostring(opts.time) end
  if opts.eval_timeout then q.timeout = tostring(opts.eval_timeout) end
  local data = api_get(base, "/api/v1/query", q, opts, "query " .. promql)
  local out = list()
  local rt, res = data.resultType, data.result
  if rt == "vector" then
    for _, item in ipairs(res) do
      local t, v = point(item.value)
      out[#out + 1] = { metric = item.metric or {}, value = v, timestamp = t }
    end
  elseif rt == "scalar" then
    local t, v = point(res)
    out[1] = { metric = {}, value = v, timestamp = t }
  elseif rt == "string" then
    out[1] = { metric = {}, value = res[2], timestamp = tonumber(res[1]) }
  elseif rt == "matrix" then
    for _, item in ipairs(res) do
      local values = {}
      for _, p in ipairs(item.values or {}) do
        local t, v = point(p)
        values[#values + 1] = { t, v }
      end
      out[#out + 1] = { metric = item.metric or {}, values = values }
    end
  else
    fail("prometheus.query: unknown resultType %s", tostring(rt))
  end
  return out
end

-- what every API call passes on to http.get
local HTTP_OPTS = "timeout headers auth insecure cacert"
local QUERY_OPTS = "time eval_timeout " .. HTTP_OPTS

export("query", "base:str promql:str opts?:opts", QUERY_OPTS, query)

-- prometheus.query_value(base_url, promql [, opts]) -> the single value, or
-- nil when the result is empty; raises when there are several series.
export("query_value", "base:str promql:str opts?:opts", QUERY_OPTS, function(base, promql, opts)
  local r = query(base, promql, opts)
  if #r > 1 then
    fail("prometheus.query_value: %d series for %s", #r, promql)
  end
  return r[1] and r[1].value
end)

-- ---- ranges, targets, rules and alerts ---------------------------------------

-- An RFC 3339 time ("2024-05-01T09:00:00Z", "...T09:00:00.5+02:00") or unix
-- seconds (a number or its text), as the API's start/end/time parameters.
local function api_time(fname, what, v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then
    return math.type(v) == "integer" and tostring(v) or string.format("%.3f", v)
  end
  if type(v) == "string" then
    if tonumber(v) then return api_time(fname, what, tonumber(v)) end
    local fixed = v:match("^%d%d%d%d%-%d%d%-%d%d[Tt]%d%d:%d%d:%d%d(.*)$")
    if fixed then
      fixed = fixed:gsub("^%.%d+", "")
      if fixed == "Z" or fixed == "z" or fixed:find("^[+-]%d%d:%d%d$") then return v end
    end
  end
  fail("%s: %s must be an RFC 3339 time (\"2024-05-01T09:00:00Z\") or unix seconds, got %s",
       fname, what, type(v) == "string" and string.format("%q", v) or tostring(v))
end

local function series_values(item)
  local values = list()
  for _, p in ipairs(item.values or {}) do
    local t, v = point(p)
    values[#values + 1] = { t, v }
  end
  return values
end

-- prometheus.query_range(base_url, promql, { start, stop, step [, timeout,
-- headers, auth, insecure, cacert] }) -> { { metric = { labels },
-- values = { {t, v}, ... } }, ... }: GET /api/v1/query_range.  start and
-- stop: RFC 3339 or unix seconds (stop defaults to now); step: "30s", "1m"
-- or seconds.
export("query_range", "base:str promql:str opts?:opts",
       "start stop step eval_timeout " .. HTTP_OPTS, function(base, promql, opts)
  local fname = "prometheus.query_range"
  opts = opts or {}
  for _, k in ipairs({ "start", "step" }) do
    if opts[k] == nil then
      fail("%s: missing option '%s' (%s(base, promql, { start, stop, step }))", fname, k, fname)
    end
  end
  local step, why = support.duration(opts.step)
  if not step or step <= 0 then
    fail("%s: step: %s", fname, why or "must be more than 0")
  end
  local stop = opts.stop
  if stop == nil then stop = now and now() or os.time() end
  local q = { query = promql, start = api_time(fname, "start", opts.start),
              ["end"] = api_time(fname, "stop", stop),
              step = math.tointeger(step) and tostring(math.tointeger(step)) or tostring(step) }
  if opts.eval_timeout then q.timeout = tostring(opts.eval_timeout) end
  local data = api_get(base, "/api/v1/query_range", q, opts, "query_range " .. promql)
  if data.resultType ~= "matrix" then
    fail("%s: expected a matrix, got %s", fname, tostring(data.resultType))
  end
  local out = list()
  for _, item in ipairs(data.result or {}) do
    out[#out + 1] = { metric = item.metric or {}, values = series_values(item) }
  end
  return out
end)

-- prometheus.targets(base_url [, { state, timeout, ... }]) -> the active
-- scrape targets of GET /api/v1/targets, each the API's object plus
-- job, instance (from its labels) and up (health == "up"); the dropped
-- targets as a second result.  state: "active", "dropped" or "any" (the
-- API's filter).
export("targets", "base:str opts?:opts", "state " .. HTTP_OPTS, function(base, opts)
  opts = opts or {}
  local q = opts.state and { state = tostring(opts.state) } or nil
  local data = api_get(base, "/api/v1/targets", q, opts, "targets")
  local active, dropped = list(), list()
  for _, t in ipairs(data.activeTargets or {}) do
    local labels = t.labels or {}
    t.job, t.instance, t.up = labels.job, labels.instance, t.health == "up"
    active[#active + 1] = t
  end
  for _, t in ipairs(data.droppedTargets or {}) do dropped[#dropped + 1] = t end
  return active, dropped
end)

-- prometheus.rules(base_url [, { type, timeout, ... }]) -> every rule of
-- GET /api/v1/rules, flattened: the API's rule object (name, query, type =
-- "alerting" | "recording", health, lastError, labels, annotations; for
-- alerting rules state = "firing" | "pending" | "inactive", duration,
-- alerts) plus group and file, its group's name and file.  type: "alert" or
-- "record" (the API's filter).
export("rules", "base:str opts?:opts", "type " .. HTTP_OPTS, function(base, opts)
  opts = opts or {}
  local q = opts.type and { type = tostring(opts.type) } or nil
  local data = api_get(base, "/api/v1/rules", q, opts, "rules")
  local out = list()
  for _, g in ipairs(data.groups or {}) do
    for _, r in ipairs(g.rules or {}) do
      r.group, r.file = g.name, g.file
      out[#out + 1] = r
    end
  end
  return out
end)

-- prometheus.alerts(base_url [, { timeout, ... }]) -> the alerts Prometheus
-- itself holds (pending and firing), GET /api/v1/alerts: { { name =
-- labels.alertname, labels, annotations, state = "pending" | "firing",
-- activeAt, value = number }, ... }
export("alerts", "base:str opts?:opts", HTTP_OPTS, function(base, opts)
  opts = opts or {}
  local data = api_get(base, "/api/v1/alerts", nil, opts, "alerts")
  local out = list()
  for _, a in ipairs(data.alerts or {}) do
    local labels = a.labels or {}
    out[#out + 1] = { name = labels.alertname, labels = labels, annotations = a.annotations or {},
                      state = a.state, activeAt = a.activeAt,
                      value = a.value ~= nil and parse_value(tostring(a.value)) or nil }
  end
  return out
end)

-- prometheus.format_value(v) -> v as Prometheus prints it ("NaN", "+Inf", "-Inf")
export("format_value", "v", "", format_value)

return M
