-- health: check a set of HTTP endpoints at once (the "morning health check":
-- the API's /healthz, Prometheus /-/healthy, Grafana /api/health, ...).
--
--   local health = require "health"
--   local r = health.check({
--     { name = "api",        url = params.api .. "/healthz" },
--     { name = "prometheus", url = "http://localhost:9090/-/healthy" },
--     { name = "grafana",    url = "http://localhost:3000/api/health", contains = '"ok"' },
--     "http://localhost:9093/-/healthy",
--   }, { timeout = 5 })
--   health.report(r)            -- "3/4 up; down: grafana (connection refused)"
--   check(r.ok, "%d endpoint(s) down: %s", #r.down, table.concat(r.down, ", "))
--
-- Every endpoint is one GET through http.get_all (concurrently, each its own
-- audited read action).  An endpoint is up when the request completes, its
-- status is expected (default any 2xx; `expect = 200` or `{200, 204}`), its
-- body contains `contains` (when given) and it answered within
-- `max_latency_ms` (when given).  Options per endpoint override those of
-- the call: timeout (s, default 10), expect, contains, max_latency_ms,
-- headers, auth, insecure, cacert; the call also takes concurrency.  Both
-- functions declare their signatures (signature.wrap): a misspelled option
-- of the call raises instead of being ignored (an endpoint's own table is
-- not checked).
local M = {}
local signature = require "signature"

-- a list that json.encode writes as [] even when empty
local function list()
  return setmetatable({}, json and json.array_mt)
end

local function default_name(url)
  local rest = url:gsub("^%a[%w+.-]*://", "")
  rest = rest:gsub("^[^/@]*@", "")       -- user info
  rest = rest:gsub("[?#].*$", "")
  rest = rest:gsub("/$", "")
  return rest
end

local function expected(expect, status)
  if expect == nil then
    return status >= 200 and status <= 299
  elseif type(expect) == "number" then
    return status == expect
  end
  for _, s in ipairs(expect) do
    if status == s then return true end
  end
  return false
end

local function describe_expect(expect)
  if expect == nil then return "2xx" end
  if type(expect) == "number" then return tostring(expect) end
  local parts = {}
  for i, s in ipairs(expect) do parts[i] = tostring(s) end
  return table.concat(parts, "/")
end

-- "http GET http://x/healthz: connection refused" -> "connection refused"
local function cause(msg, url)
  msg = tostring(msg)
  local i, j = msg:find(url .. ": ", 1, true)
  if i then return msg:sub(j + 1) end
  return (msg:gsub("^.-http %u+ %S+: ", ""))
end

-- The endpoint's answer time: from its request being sent to the whole
-- response, by libcurl's timing of that transfer.  Not the transfer's total:
-- connecting happens while the one loop thread may be busy with another
-- transfer (loading the system CA bundle for a verified TLS endpoint takes
-- some 30 ms), and a fast plain endpoint would be reported that slow.
-- A mocked or simulated response has no timing: its time (0) then.
local function answer_ms(r)
  local t = r.timing
  if type(t) == "table" and t.total and t.sent then
    return math.max(t.total - t.sent, 0)
  end
  return (r.time or 0) * 1000
end

local function opt(e, opts, key)
  if e[key] ~= nil then return e[key] end
  return opts[key]
end

-- health.check(endpoints [, opts]) ->
--   { ok = all up, up = { names }, down = { names },
--     results = { { name, url, status, ok, latency_ms, total_ms, error }, ... } }
-- latency_ms: request sent -> whole answer (see answer_ms); total_ms: the
-- whole transfer, connecting included.
M.check = signature.wrap("health.check", "endpoints:table opts?:opts",
                         "timeout expect contains max_latency_ms headers auth insecure cacert " ..
                         "concurrency", function(endpoints, opts)
  opts = opts or {}
  local eps, reqs, seen = {}, {}, {}
  for i, e in ipairs(endpoints) do
    if type(e) == "string" then e = { url = e } end
    if type(e) ~= "table" or type(e.url) ~= "string" then
      error(string.format("health.check: endpoint %d has no url", i), 2)
    end
    local expect = opt(e, opts, "expect")
    if expect ~= nil and type(expect) ~= "number" and type(expect) ~= "table" then
      error(string.format("health.check: endpoint %d: expect must be a status or a list", i), 2)
    end
    local name = e.name or default_name(e.url)
    if seen[name] then name = name .. "#" .. i end
    seen[name] = true
    eps[i] = { name = name, url = e.url, expect = expect, contains = opt(e, opts, "contains"),
               max_latency_ms = opt(e, opts, "max_latency_ms") }
    reqs[i] = { method = "GET", url = e.url, timeout = opt(e, opts, "timeout") or 10,
                headers = opt(e, opts, "headers"), insecure = opt(e, opts, "insecure"),
                cacert = opt(e, opts, "cacert"), auth = opt(e, opts, "auth") }
  end
  -- https endpoints start first: libcurl works through transfers in the
  -- order they start, so a TLS handshake's setup (the CA bundle) then runs
  -- while the plain ones are still connecting, not while they wait for
  -- their answers (which answer_ms measures).
  local order = {}
  for i, q in ipairs(reqs) do
    if q.url:match("^[Hh][Tt][Tt][Pp][Ss]:") then order[#order + 1] = i end
  end
  for i, q in ipairs(reqs) do
    if not q.url:match("^[Hh][Tt][Tt][Pp][Ss]:") then order[#order + 1] = i end
  end
  local sorted = {}
  for k, i in ipairs(order) do sorted[k] = reqs[i] end
  local got = #reqs > 0 and http.get_all(sorted, { concurrency = opts.concurrency }) or {}
  local responses = {}
  for k, i in ipairs(order) do responses[i] = got[k] end
  local out = { ok = true, up = list(), down = list(), results = list() }
  for i, ep in ipairs(eps) do
    local r = responses[i] or { error = "no result" }
    local res = { name = ep.name, url = ep.url, ok = false }
    if r.error then
      res.error = cause(r.error, ep.url)
    else
      res.status = r.status
      res.latency_ms = math.floor(answer_ms(r) + 0.5)
      if r.timing then res.total_ms = math.floor(r.timing.total + 0.5) end
      if not expected(ep.expect, r.status) then
        res.error = string.format("HTTP %d, expected %s", r.status, describe_expect(ep.expect))
      elseif ep.contains and not (r.body or ""):find(ep.contains, 1, true) then
        res.error = string.format("body does not contain %q", ep.contains)
      elseif ep.max_latency_ms and res.latency_ms > ep.max_latency_ms then
        res.error = string.format("slow: %d ms > %d ms", res.latency_ms, ep.max_latency_ms)
      else
        res.ok = true
      end
    end
    out.results[i] = res
    if res.ok then
      out.up[#out.up + 1] = ep.name
    else
      out.down[#out.down + 1] = ep.name
      out.ok = false
    end
  end
  return out
end)

-- health.report(result [, { log = false }]) -> the summary as text:
--   3/4 up; down: grafana (connection refused)
--     ✓ api         200   12 ms
--     ✗ grafana     connection refused
-- logged with log.info when everything is up, log.warn otherwise (unless
-- log = false).
M.report = signature.wrap("health.report", "result:table opts?:opts", "log", function(result, opts)
  if type(result.results) ~= "table" then
    error("health.report: expected the result of health.check", 2)
  end
  opts = opts or {}
  local total = #result.results
  local downs = {}
  local width = 4
  for _, r in ipairs(result.results) do
    if #r.name > width then width = #r.name end
    if not r.ok then downs[#downs + 1] = string.format("%s (%s)", r.name, r.error or "down") end
  end
  local head = string.format("%d/%d up", #result.up, total)
  if #downs > 0 then head = head .. "; down: " .. table.concat(downs, ", ") end
  local lines = { head }
  for _, r in ipairs(result.results) do
    local mark = r.ok and "✓" or "✗"
    local detail
    if r.status then
      detail = string.format("%3d %5d ms", r.status, r.latency_ms or 0)
      if not r.ok then detail = detail .. "  " .. r.error end
    else
      detail = r.error or ""
    end
    lines[#lines + 1] = string.format("  %s %-" .. width .. "s  %s", mark, r.name, detail)
  end
  local text = table.concat(lines, "\n")
  if opts.log ~= false then
    if result.ok then log.info("%s", text) else log.warn("%s", text) end
  end
  return text
end)

return M
