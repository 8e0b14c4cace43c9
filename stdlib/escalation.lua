-- escalation: severity matrices and decision trees as data, so a runbook
-- states the document's table once and the code only asks it.
--
--   local escalation = require "escalation"
--   local MATRIX = {
--     { level = "P0", title = "Critical", response = "15 minutes", notify = { "pagerduty", "slack" },
--       any = { { "service_down", "==", true }, { "error_rate", ">=", 0.5 } } },
--     { level = "P1", title = "High", response = "1 hour", notify = { "slack" },
--       any = { { "error_rate", ">=", 0.1 }, { "region", "in", { "eu", "us" } } } },
--     { level = "P3", title = "Low", default = true },
--   }
--   local row, reason = escalation.classify(MATRIX, { error_rate = 0.6 })
--   -- row.level == "P0", reason == "error_rate 0.6 >= 0.5"
--   escalation.notify(row, { summary = "calendar-api 5xx at 60%", dedup_key = "cal-5xx" })
--
--   local leaf, path = escalation.decide({
--     ask = "lag growing after scale-out?", key = "lag_growing",
--     yes = { action = "page the data team", escalate = "L2 on-call" },
--     no  = { ask = "lag above 10000?", test = { "lag", ">", 10000 },
--             yes = { action = "scale out again" }, no = { action = "keep watching" } },
--   }, { lag_growing = false, lag = 25000 })
--   -- leaf.action == "scale out again"; path = { "lag growing after scale-out? no",
--   --                                            "lag above 10000? yes" }
--
-- escalation.classify(matrix, facts) -> row, reason: the first row (most
--   severe first) one of whose `any` criteria holds; `all = { ... }` on a row
--   requires every one of those as well (an extension).  A criterion is
--   { fact, op, value } with op == ~= > >= < <= or "in" (value a list); a
--   function(facts) -> bool[, reason] is accepted too.  A missing fact never
--   satisfies a comparison (but `~=` holds).  The row with default = true
--   matches when none did (reason "default"); without one -> nil, "no row
--   matched".
-- escalation.check(criterion, facts) -> bool, reason (one criterion).
-- escalation.notify(row, { summary, details, dedup_key, source, channels })
--   -> the channels sent, in order: "pagerduty" -> notify.pagerduty{ summary,
--   severity (the row's pagerduty_severity, else its severity when that is
--   critical/error/warning/info, else P0 critical, P1 error, P2 warning, P3
--   info: a document whose P1 is its most severe level says
--   pagerduty_severity = "critical" on that row), dedup_key, source,
--   custom_details = details }, "slack" -> notify.slack{ text }, "email" -> notify.email{
--   subject, body }, "webhook" -> notify.webhook(opts.webhook, payload).
--   The text starts with "[P1 High] ".  Each is a mutating notify action.
--   Endpoints come from runbook.yaml; a runbook may also pass them:
--   routing_key, slack_webhook, or whole tables of extra fields per channel
--   (opts.pagerduty, opts.slack, opts.email, e.g. email = { to = "x@y" }).
-- escalation.decide(tree, facts) -> leaf, path.  A node is { ask, key,
--   yes, no } (key's truthiness in facts) or { ask, test = { fact, op, value },
--   yes, no }; a leaf is any table without yes/no (usually { action,
--   escalate }).  path lists "question? yes|no" per node visited.
-- mutates: escalation.notify
local support = require "stdlib_support"
local list = support.list
local fail, public = support.errors("escalation")

local M = {}

local OPS = {
  ["=="] = function(a, b) return a == b end,
  ["~="] = function(a, b) return a ~= b end,
  ["!="] = function(a, b) return a ~= b end,
  [">"] = function(a, b) return a > b end,
  [">="] = function(a, b) return a >= b end,
  ["<"] = function(a, b) return a < b end,
  ["<="] = function(a, b) return a <= b end,
}

local SEVERITY = { P0 = "critical", P1 = "error", P2 = "warning", P3 = "info", P4 = "info" }
local PD = { critical = true, error = true, warning = true, info = true }

-- PagerDuty's severity for a row: its pagerduty_severity, else its own
-- severity when that is one of PagerDuty's words (a matrix using the
-- document's names, CRITICAL/WARNING), else by level P0..P4
local function pd_severity(row)
  if row.pagerduty_severity then return row.pagerduty_severity end
  local own = type(row.severity) == "string" and row.severity:lower()
  if own and PD[own] then return own end
  return SEVERITY[row.level] or "warning"
end

local function show(v)
  if type(v) == "string" then return v end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = show(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  if math.type(v) == "float" then return string.format("%.14g", v) end
  return tostring(v)
end

-- compare with tolerance for "10" vs 10 (facts often come from text)
local function coerce(a, b)
  if type(a) == "string" and type(b) == "number" then return tonumber(a) or a, b end
  if type(a) == "number" and type(b) == "string" then return a, tonumber(b) or b end
  return a, b
end

local function check(crit, facts, where)
  where = where or "criterion"
  if type(crit) == "function" then
    local ok, r, why = pcall(crit, facts)
    if not ok then fail("escalation: %s raised: %s", where, tostring(r)) end
    return r and true or false, why or (r and "function criterion" or nil)
  end
  if type(crit) ~= "table" or type(crit[1]) ~= "string" or type(crit[2]) ~= "string" then
    fail("escalation: %s must be { fact, op, value }, got %s", where,
         type(crit) == "table" and show(crit) or type(crit))
  end
  local key, op, want = crit[1], crit[2], crit[3]
  local got = facts[key]
  local reason = string.format("%s %s %s %s", key, show(got), op, show(want))
  if op == "in" then
    if type(want) ~= "table" then fail("escalation: %s: 'in' needs a list, got %s", where, type(want)) end
    if got == nil then return false, reason end
    for _, x in ipairs(want) do
      local a, b = coerce(got, x)
      if a == b then return true, reason end
    end
    return false, reason
  end
  local f = OPS[op]
  if not f then
    fail("escalation: %s: unknown operator %q (use == ~= > >= < <= in)", where, op)
  end
  if got == nil then return op == "~=" or op == "!=", reason end
  local a, b = coerce(got, want)
  if op ~= "==" and op ~= "~=" and op ~= "!=" then
    if type(a) ~= type(b) or (type(a) ~= "number" and type(a) ~= "string") then
      fail("escalation: %s: cannot compare %s (%s) %s %s (%s)", where, key, type(got), op, show(want), type(want))
    end
  end
  return f(a, b) and true or false, reason
end

local function classify(matrix, facts)
  if type(matrix) ~= "table" or #matrix == 0 then
    fail("escalation.classify: expected a matrix (a non-empty list of rows), got %s", type(matrix))
  end
  facts = facts or {}
  if type(facts) ~= "table" then fail("escalation.classify: facts must be a table, got %s", type(facts)) end
  local default
  for i, row in ipairs(matrix) do
    if type(row) ~= "table" then fail("escalation.classify: row %d is not a table", i) end
    local name = row.level or ("row " .. i)
    if row.default then default = default or row end
    local matched, reason = false, nil
    for j, crit in ipairs(row.any or {}) do
      local ok, why = check(crit, facts, string.format("%s any[%d]", name, j))
      if ok then matched, reason = true, why; break end
    end
    if matched and row.all then
      local parts = { reason }
      for j, crit in ipairs(row.all) do
        local ok, why = check(crit, facts, string.format("%s all[%d]", name, j))
        if not ok then matched = false; break end
        parts[#parts + 1] = why
      end
      reason = table.concat(parts, " and ")
    elseif not matched and row.all and #row.all > 0 and not row.any then
      -- a row with only `all`: every criterion
      local parts, okall = {}, true
      for j, crit in ipairs(row.all) do
        local ok, why = check(crit, facts, string.format("%s all[%d]", name, j))
        if not ok then okall = false; break end
        parts[#parts + 1] = why
      end
      if okall then matched, reason = true, table.concat(parts, " and ") end
    end
    if matched then return row, reason end
  end
  if default then return default, "default" end
  return nil, "no row matched"
end

local function text_of(row, opts)
  local head = string.format("[%s%s] ", tostring(row.level or "?"), row.title and (" " .. row.title) or "")
  return head .. tostring(opts.summary)
end

local function notify_row(row, opts)
  if type(row) ~= "table" then fail("escalation.notify: expected a matrix row, got %s", type(row)) end
  opts = opts or {}
  if type(opts) ~= "table" then fail("escalation.notify: options must be a table") end
  if type(opts.summary) ~= "string" or opts.summary == "" then
    fail("escalation.notify: give a summary")
  end
  local channels = opts.channels or row.notify or {}
  if type(channels) == "string" then channels = { channels } end
  local text = text_of(row, opts)
  local details = opts.details
  local body = text
  if details ~= nil then
    body = body .. "\n\n" .. (type(details) == "table" and json.encode(details) or tostring(details))
  end
  local sent = list()
  -- per-channel extras (endpoints when runbook.yaml has none): opts.slack,
  -- opts.pagerduty, opts.email tables merged into the call
  local function with(ch, t)
    local extra = opts[ch]
    if type(extra) == "table" then
      for k, v in pairs(extra) do if t[k] == nil then t[k] = v end end
    elseif extra ~= nil then
      fail("escalation.notify: opts.%s must be a table of extra fields", ch)
    end
    return t
  end
  local function send(ch, f, ...)
    local ok, e = pcall(f, ...)
    if not ok then
      fail("escalation.notify %s (%s): %s", ch, tostring(row.level), (tostring(e):gsub("^[^:\n]*%.lua:%d+: ", "")))
    end
  end
  for _, ch in ipairs(channels) do
    if ch == "pagerduty" then
      send(ch, notify.pagerduty, with("pagerduty", {
        summary = text, severity = pd_severity(row),
        dedup_key = opts.dedup_key, source = opts.source, routing_key = opts.routing_key,
        custom_details = type(details) == "table" and details or
                         (details ~= nil and { details = tostring(details) } or nil) }))
    elseif ch == "slack" then
      send(ch, notify.slack, with("slack", { text = body, webhook = opts.slack_webhook }))
    elseif ch == "email" then
      send(ch, notify.email, with("email", { subject = text, body = body }))
    elseif ch == "webhook" then
      if not opts.webhook then fail("escalation.notify: channel webhook needs opts.webhook (a URL)") end
      send(ch, notify.webhook, opts.webhook, { level = row.level, title = row.title, summary = opts.summary,
                                     details = details, dedup_key = opts.dedup_key, source = opts.source })
    else
      fail("escalation.notify: unknown channel %q (pagerduty, slack, email, webhook)", tostring(ch))
    end
    sent[#sent + 1] = ch
  end
  return sent
end

local function decide(tree, facts)
  if type(tree) ~= "table" then fail("escalation.decide: expected a decision tree, got %s", type(tree)) end
  facts = facts or {}
  local path = list()
  local node, depth = tree, 0
  while node.yes ~= nil or node.no ~= nil do
    depth = depth + 1
    if depth > 100 then fail("escalation.decide: the tree is deeper than 100 (a cycle?)") end
    local q = node.ask or node.key or "?"
    local answer
    if node.test ~= nil then
      answer = check(node.test, facts, string.format("%q test", q))
    elseif node.key ~= nil then
      answer = facts[node.key] and true or false
    else
      fail("escalation.decide: node %q has neither key nor test", q)
    end
    path[#path + 1] = string.format("%s %s", q, answer and "yes" or "no")
    local nxt = answer and node.yes or node.no
    if type(nxt) ~= "table" then
      fail("escalation.decide: node %q has no %s branch", q, answer and "yes" or "no")
    end
    node = nxt
  end
  return node, path
end

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "escalation.", public)

export("classify", "matrix:table facts?:table", "", classify)
export("check", "criterion:table|fn facts?:table", "",
       function(crit, facts) return check(crit, facts or {}) end)
-- the per-channel tables (slack, pagerduty, email) are passed on as they are
export("notify", "row:table opts?:opts",
       "summary details dedup_key source channels routing_key slack_webhook webhook " ..
       "pagerduty slack email", notify_row)
export("decide", "tree:table facts?:table", "", decide)
M.severity = SEVERITY
return M
