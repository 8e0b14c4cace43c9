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
--
-- Silences (classified as the http calls they are: creating and expiring
-- are changes, listing is a read):
--   local id = alertmanager.silence(am, { matchers = { alertname = "DiskFull" },
--                                         duration = "30m", comment = "INC-42" })
--   alertmanager.silences(am, { alertname = "DiskFull" }, { state = "active" })
--   alertmanager.expire(am, id)
-- (details at each function below).  Every function declares its signature
-- (signature.wrap): a missing or misplaced argument raises with the usage
-- line, an unknown option key `unknown option 'X' for alertmanager.F (did
-- you mean 'Y'?)`, before any request.
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

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "alertmanager.", public)

-- what every call passes on to http
local HTTP_OPTS = "timeout headers auth insecure cacert"

export("alerts", "base:str opts?:opts",
       "active silenced inhibited unprocessed filter receiver v1 " .. HTTP_OPTS, alerts)

-- firing sets active/silenced/inhibited/unprocessed and the filter itself
export("firing", "base:str filter?:table|str opts?:opts", "receiver v1 " .. HTTP_OPTS,
       function(base, filter, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.active, o.silenced, o.inhibited, o.unprocessed = true, false, false, false
  o.filter = filter
  return alerts(base, o)
end)

-- ---- silences -------------------------------------------------------------------

local function http_opts(opts)
  return { timeout = opts.timeout, headers = opts.headers, auth = opts.auth,
           insecure = opts.insecure, cacert = opts.cacert }
end

local function base_url(fname, base)
  if type(base) ~= "string" or base == "" then
    fail("%s: expected the Alertmanager base URL (http://host:9093), got %s", fname, type(base))
  end
  return (base:gsub("/+$", ""))
end

local function rfc3339(t)
  local whole = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", math.floor((t - whole) * 1000))
end

local function clock()
  return now and now() or os.time()
end

-- alertmanager.silence(base_url, { matchers, duration, comment [, created_by,
-- timeout, headers, auth, insecure, cacert] }) -> the silence id.
-- POST /api/v2/silences, a change.  matchers: the forms of firing's filter;
-- duration: "30m", "2h", "1h30m" or seconds, from now; created_by defaults
-- to $SUDO_USER, $USER, else "runbook".  In a rehearsal nothing is created
-- and the id is "dry-run" (expire accepts it), so a runbook that silences
-- and later expires completes in both modes.
export("silence", "base:str opts:opts", "matchers duration comment created_by " .. HTTP_OPTS,
       function(base, opts)
  local fname = "alertmanager.silence"
  base = base_url(fname, base)
  for _, k in ipairs({ "matchers", "duration", "comment" }) do
    if opts[k] == nil then
      fail("%s: missing option '%s' (%s(base, { matchers, duration, comment, created_by }))",
           fname, k, fname)
    end
  end
  local ms = matchers_of(opts.matchers)
  if #ms == 0 then fail("%s: matchers: at least one matcher is needed", fname) end
  local secs, why = support.duration(opts.duration)
  if not secs or secs <= 0 then fail("%s: duration: %s", fname, why or "must be more than 0") end
  if type(opts.comment) ~= "string" or not opts.comment:find("%S") then
    fail("%s: comment must say why (a non-empty string)", fname)
  end
  local by = opts.created_by or env("SUDO_USER") or env("USER") or "runbook"
  local api = list()
  for i, m in ipairs(ms) do
    api[i] = { name = m[1], value = tostring(m[3]), isRegex = m[2] == "=~" or m[2] == "!~",
               isEqual = m[2] == "=" or m[2] == "=~" }
  end
  local t = clock()
  local url = base .. "/api/v2/silences"
  local o = http_opts(opts)
  o.json = { matchers = api, startsAt = rfc3339(t), endsAt = rfc3339(t + secs),
             createdBy = tostring(by), comment = opts.comment }
  local r = http.post(url, o)
  if r.dry_run then return "dry-run" end
  if r.status ~= 200 then
    fail("%s POST %s: HTTP %d: %s", fname, url, r.status, body_line(r))
  end
  local ok, doc = pcall(json.decode, r.body)
  if not ok or type(doc) ~= "table" or type(doc.silenceID) ~= "string" then
    fail("%s POST %s: no silenceID in the answer: %s", fname, url, body_line(r))
  end
  return doc.silenceID
end)

-- A silence of the API as the runbook sees it.
local function silence_of(s)
  local labels, ms = {}, list()
  for i, m in ipairs(s.matchers or {}) do
    local eq = m.isEqual ~= false
    local op = m.isRegex and (eq and "=~" or "!~") or (eq and "=" or "!=")
    ms[i] = { m.name, op, m.value }
    if op == "=" then labels[m.name] = m.value end
  end
  local status = type(s.status) == "table" and s.status or {}
  return { id = s.id, state = status.state, matchers = ms, labels = labels,
           comment = s.comment, createdBy = s.createdBy, startsAt = s.startsAt,
           endsAt = s.endsAt, updatedAt = s.updatedAt }
end

-- alertmanager.silences(base_url [, filter [, { state, timeout, ... }]]) ->
-- { { id, state = "active" | "pending" | "expired", matchers = { {label,
-- op, value}, ... }, labels (the equality matchers as a label set), comment,
-- createdBy, startsAt, endsAt, updatedAt }, ... }: GET /api/v2/silences, a
-- read.  The filter (firing's forms) selects silences by their matchers, as
-- the API does (a silence whose matchers include alertname="X" matches
-- { alertname = "X" }); state keeps only silences in that state.
export("silences", "base:str filter?:table|str opts?:opts", "state " .. HTTP_OPTS,
       function(base, filter, opts)
  local fname = "alertmanager.silences"
  base = base_url(fname, base)
  opts = opts or {}
  local ms = matchers_of(filter)
  local q = {}
  for _, m in ipairs(ms) do
    q[#q + 1] = "filter=" .. urlencode(m[1] .. m[2] .. quote(m[3]))
  end
  local url = base .. "/api/v2/silences"
  local r = http.get(url .. (#q > 0 and "?" .. table.concat(q, "&") or ""), http_opts(opts))
  if r.status ~= 200 then
    fail("alertmanager GET %s: HTTP %d: %s", url, r.status, body_line(r))
  end
  local ok, doc = pcall(json.decode, r.body)
  if not ok or type(doc) ~= "table" then
    fail("alertmanager GET %s: not JSON: %s", url, body_line(r))
  end
  local out = list()
  for _, raw in ipairs(doc) do
    local s = silence_of(raw)
    if (opts.state == nil or s.state == opts.state) and prometheus.match(s.labels, ms) then
      out[#out + 1] = s
    end
  end
  return out
end)

-- alertmanager.expire(base_url, id [, { timeout, ... }]) -> true: DELETE
-- /api/v2/silence/{id}, a change.  In a rehearsal nothing is expired (the
-- id "dry-run" that silence() answered there is fine).
export("expire", "base:str id:str opts?:opts", HTTP_OPTS, function(base, id, opts)
  local fname = "alertmanager.expire"
  base = base_url(fname, base)
  if type(id) ~= "string" or id == "" then
    fail("%s: expected a silence id (%s(base, id)), got %s", fname, fname, type(id))
  end
  opts = opts or {}
  local url = base .. "/api/v2/silence/" .. urlencode(id)
  local r = http.delete(url, http_opts(opts))
  if r.dry_run then return true end
  if r.status ~= 200 then
    fail("%s %s: HTTP %d: %s", fname, id, r.status, body_line(r))
  end
  return true
end)

return M
