-- alertmanager: the alerts an Alertmanager holds, filtered by labels.
--
--   local alertmanager = require "alertmanager"
--   local crit = alertmanager.firing("http://localhost:9093", { severity = "critical" })
--   for _, a in ipairs(crit) do log.warn("%s: %s", a.name, a.annotations.summary or "") end
--
-- alertmanager.alerts(base_url [, opts]) is one GET of /api/v2/alerts (an
-- audited read; /api/v1/alerts when the server has no v2 API) returning
--   { { name = labels.alertname, labels, annotations, state = "active" |
--       "suppressed" | "unprocessed", silenced, inhibited, startsAt, endsAt,
--       updatedAt, fingerprint, generatorURL, receivers = { names } }, ... }
-- opts: active, silenced, inhibited, unprocessed (booleans, as the API: all
-- default true), filter, receiver (a regex), timeout, headers, auth,
-- insecure, cacert.  The filter is sent to the server (API matchers) and
-- applied here as well, so the result is right whatever the server did:
--   { severity = "critical" }                 label equals
--   { severity = { "critical", "warning" } }  label is one of
--   { 'team=~"infra|db"', 'env!="dev"' }      matcher strings
--   '{severity="critical",team=~"infra.*"}'   one selector string
-- A missing label equals "" (as in Prometheus).
-- alertmanager.firing(base_url [, filter [, opts]]): active, not silenced,
-- not inhibited.
local prometheus = require "prometheus"

local M = {}

local support = require "stdlib_support"
local list = support.list
-- errors for the caller: { am = message }, re-raised at the runbook's line
local fail, public = support.errors("am")

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- A Go-quoted matcher value for the API's filter parameter.
local function quote(v)
  return '"' .. tostring(v):gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"'
end

local function regex_quote(v)
  return (tostring(v):gsub("[%^%$%(%)%%%.%[%]%*%+%-%?%{%}|\\]", "\\%0"))
end

-- The filter as a list of { label, op, value } matchers.
local function matchers_of(filter)
  if filter == nil then return {} end
  if type(filter) == "string" then
    -- a selector (`{...}`, `Name{...}`, `Name`) as it is, bare matchers in braces
    local sel = filter
    if not (filter:find("^%s*{") or filter:find("^%s*[%a_:][%w_:]*%s*{")
            or filter:find("^%s*[%a_:][%w_:]*%s*$")) then
      sel = "{" .. filter .. "}"
    end
    local ok, s = pcall(prometheus.selector, sel)
    if not ok then fail("alertmanager: bad filter %q: %s", filter, tostring(s)) end
    local out = {}
    if s.name then out[1] = { "alertname", "=", s.name } end
    for _, m in ipairs(s.matchers) do out[#out + 1] = m end
    return out
  end
  if type(filter) ~= "table" then
    fail("alertmanager: filter must be a table or a selector string, got %s", type(filter))
  end
  local out = {}
  for _, m in ipairs(filter) do
    for _, x in ipairs(matchers_of(m)) do out[#out + 1] = x end
  end
  local keys = {}
  for k in pairs(filter) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = filter[k]
    if type(v) == "table" then
      local alts = {}
      for i, x in ipairs(v) do alts[i] = regex_quote(x) end
      if #alts == 0 then fail("alertmanager: filter %s is an empty list", k) end
      out[#out + 1] = { k, "=~", table.concat(alts, "|") }
    elseif type(v) == "string" or type(v) == "number" or type(v) == "boolean" then
      out[#out + 1] = { k, "=", tostring(v) }
    else
      fail("alertmanager: filter %s must be a string or a list, got %s", k, type(v))
    end
  end
  return out
end

local function count(t)
  return type(t) == "table" and #t or 0
end

local function normalize(a)
  local status = type(a.status) == "table" and a.status or {}
  local receivers = list()
  for i, r in ipairs(a.receivers or {}) do
    receivers[i] = type(r) == "table" and r.name or r
  end
  local labels = a.labels or {}
  return {
    name = labels.alertname,
    labels = labels,
    annotations = a.annotations or {},
    state = status.state or (type(a.status) == "string" and a.status) or "active",
    silenced = count(status.silencedBy) > 0,
    inhibited = count(status.inhibitedBy) > 0,
    startsAt = a.startsAt,
    endsAt = a.endsAt,
    updatedAt = a.updatedAt,
    fingerprint = a.fingerprint,
    generatorURL = a.generatorURL,
    receivers = receivers,
    status = status,
  }
end

-- The API's own rules for active/silenced/inhibited/unprocessed.
local function wanted(a, opts)
  if opts.silenced == false and a.silenced then return false end
  if opts.inhibited == false and a.inhibited then return false end
  if opts.active == false and a.state == "active" then return false end
  if opts.unprocessed == false and a.state == "unprocessed" then return false end
  return true
end

local function body_line(r)
  return ((r.body or ""):match("^[^\n]*") or ""):sub(1, 200)
end

local function get(url, opts)
  return http.get(url, { timeout = opts.timeout, headers = opts.headers, auth = opts.auth,
                         insecure = opts.insecure, cacert = opts.cacert })
end

local function alerts(base, opts)
  if type(base) ~= "string" or base == "" then
    fail("alertmanager.alerts: expected the Alertmanager base URL (http://host:9093), got %s",
         type(base))
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail("alertmanager.alerts: opts must be a table") end
  local matchers = matchers_of(opts.filter)
  base = base:gsub("/+$", "")
  local q = {}
  for _, k in ipairs({ "active", "silenced", "inhibited", "unprocessed" }) do
    if opts[k] ~= nil then q[#q + 1] = k .. "=" .. tostring(opts[k] and true or false) end
  end
  for _, m in ipairs(matchers) do
    q[#q + 1] = "filter=" .. urlencode(m[1] .. m[2] .. quote(m[3]))
  end
  if opts.receiver then q[#q + 1] = "receiver=" .. urlencode(opts.receiver) end
  local qs = #q > 0 and "?" .. table.concat(q, "&") or ""
  local url = base .. "/api/v2/alerts"
  local r = get(url .. qs, opts)
  local alerts_list
  if r.status == 404 and opts.v1 ~= false then
    url = base .. "/api/v1/alerts"
    r = get(url .. qs, opts)
  end
  if r.status ~= 200 then
    fail("alertmanager GET %s: HTTP %d: %s", url, r.status, body_line(r))
  end
  local ok, doc = pcall(json.decode, r.body)
  if not ok or type(doc) ~= "table" then
    fail("alertmanager GET %s: not JSON: %s", url, body_line(r))
  end
  if url:find("/api/v1/", 1, true) then
    if doc.status ~= "success" then
      fail("alertmanager GET %s: %s", url, tostring(doc.error or doc.status))
    end
    alerts_list = doc.data or {}
  else
    alerts_list = doc
  end
  local out = list()
  for _, raw in ipairs(alerts_list) do
    local a = normalize(raw)
    if wanted(a, opts) and prometheus.match(a.labels, matchers, a.name) then
      out[#out + 1] = a
    end
  end
  return out
end

M.alerts = public(alerts)

M.firing = public(function(base, filter, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.active, o.silenced, o.inhibited, o.unprocessed = true, false, false, false
  o.filter = filter
  return alerts(base, o)
end)

return M
