-- calendar_api: what the Calendar API runbooks share, taken from its
-- operational procedures (001_ef3bce7d6f139975.txt): the document's
-- addresses and paths, its severity levels (Incident Response › Severity
-- Levels) and its alert escalation matrix (Monitoring and Alerting › Alert
-- Management), and the reads every procedure repeats (the API's /metrics,
-- `grep PATTERN logs/FILE | tail -N`, the compose services, docker stats).
--
--   local cal = require "calendar_api"
--   params = { api = { default = cal.API }, ... }
--   local ratio = cal.error_ratio(cal.metrics(params.api))
--
-- Only reads and pure functions live here: every change a runbook makes is
-- written in the runbook itself, where its dry-run and coverage show it.
local M = {}

M.DOC = "001_ef3bce7d6f139975.txt"

-- the document's values (the runbooks' param defaults)
M.ROOT = "/opt/calendar-api"                          -- Weekly Maintenance: cd /opt/calendar-api
M.COMPOSE_FILE = "deployment/docker-compose.prod.yml" -- relative to ROOT
M.SERVICE = "calendar-api"
M.API = "http://localhost:8000"
M.PROMETHEUS = "http://localhost:9090"
M.GRAFANA = "http://localhost:3000"
M.ALERTMANAGER = "http://localhost:9093"
M.LOG_DIR = "logs"                                    -- relative to ROOT
M.BACKUP_DIR = "backups"                              -- relative to ROOT

-- Incident Response › Severity Levels, as an escalation matrix (most severe
-- first).  Facts the runbooks set: api_down, service_down, data_corruption,
-- error_rate (0..1), p95_seconds, accuracy (0..1), cache_issue,
-- component_failed, maintenance.
M.SEVERITY = {
  { level = "P1", title = "Critical - Service Down", response = "15 minutes", escalation = "Immediate",
    notify = { "pagerduty", "slack" }, pagerduty_severity = "critical", -- P1 is this document's worst
    any = { { "api_down", "==", true }, { "service_down", "==", true }, { "data_corruption", "==", true } } },
  { level = "P2", title = "High - Degraded Performance", response = "1 hour",
    escalation = "2 hours if unresolved", notify = { "slack", "email" },
    any = { { "error_rate", ">", 0.10 }, { "p95_seconds", ">", 2 }, { "accuracy", "<", 0.70 } } },
  { level = "P3", title = "Medium - Minor Issues", response = "4 hours", escalation = "Next business day",
    notify = { "slack" },
    any = { { "cache_issue", "==", true }, { "component_failed", "==", true } } },
  { level = "P4", title = "Low - Maintenance", response = "Next business day", escalation = "Weekly review",
    notify = {}, default = true },
}

-- the SEVERITY row of a level ("P2")
function M.level(name)
  for _, row in ipairs(M.SEVERITY) do
    if row.level == name then return row end
  end
  error("calendar_api.level: no severity level " .. tostring(name), 2)
end

-- Monitoring and Alerting › Alert Management › Alert Escalation Matrix
M.ESCALATION = {
  "Level 1: On-call engineer (0-15 minutes)",
  "Level 2: Team lead (15-60 minutes)",
  "Level 3: Engineering manager (1-4 hours)",
  "Level 4: Director of Engineering (4+ hours)",
}

-- ROOT-relative path unless already absolute
function M.path(root, p)
  if p:sub(1, 1) == "/" then return p end
  if root == "" or root == "." then return p end
  return (root:gsub("/+$", "")) .. "/" .. p
end

-- a word for /bin/sh, single-quoted
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- `grep -E PATTERN FILE | tail -n N` (a read): the matching lines, oldest
-- first, and whether the file could be read at all.  A missing log is a
-- warning, not an error: the procedure goes on with what it has.
function M.grep_tail(file, pattern, n)
  local cmd
  if pattern then
    cmd = string.format("test -r %s && grep -E %s %s | tail -n %d", M.quote(file), M.quote(pattern),
                        M.quote(file), n)
  else
    cmd = string.format("test -r %s && tail -n %d %s", M.quote(file), n, M.quote(file))
  end
  local r = sh(cmd, { readonly = true, check = false })
  if r.code ~= 0 then
    log.warn("%s: not readable, skipped", file)
    return {}, false
  end
  local lines = {}
  for line in (r.stdout or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines, true
end

-- lines that are JSON objects, decoded (the others are skipped)
function M.json_lines(lines)
  local out = {}
  for _, l in ipairs(lines) do
    local ok, v = pcall(json.decode, l)
    if ok and type(v) == "table" then out[#out + 1] = v end
  end
  return out
end

-- the API's /metrics (curl http://localhost:8000/metrics): the text
function M.metrics(api)
  local r = http.get(api .. "/metrics", { timeout = 10 })
  check(r.status == 200, "GET %s/metrics: HTTP %d", api, r.status)
  return r.body
end

-- `curl ... /metrics | grep http_requests_total | grep "5.."`: the share of
-- http_requests_total whose status label (whatever it is called: status,
-- code, status_code) is 5xx.  Returns ratio, errors, total.
local function is_5xx(labels)
  for k, v in pairs(labels) do
    if k ~= "le" and k ~= "quantile" and (tostring(v):match("^5%d%d$") or v == "5xx") then return true end
  end
  return false
end

function M.requests(text)
  local prometheus = require "prometheus"
  local errors, total = 0, 0
  for _, s in ipairs(prometheus.select(text, "http_requests_total")) do
    total = total + s.value
    if is_5xx(s.labels) then errors = errors + s.value end
  end
  return errors, total
end

function M.error_ratio(text)
  local errors, total = M.requests(text)
  return total > 0 and errors / total or 0, errors, total
end

-- The error rate now: two scrapes of /metrics `interval` seconds apart and
-- the 5xx share of the requests between them (the counters are cumulative);
-- interval 0: since the process started.  -> ratio, errors, total
function M.error_rate(api, interval)
  local e1, t1 = M.requests(M.metrics(api))
  if not interval or interval <= 0 then return t1 > 0 and e1 / t1 or 0, e1, t1 end
  sleep(interval)
  local e2, t2 = M.requests(M.metrics(api))
  if t2 < t1 then e1, t1 = 0, 0 end -- restarted in between: the counters began again
  local e, t = e2 - e1, t2 - t1
  return t > 0 and e / t or 0, e, t
end

-- `curl ... /metrics | grep component_latency_seconds`: mean latency per
-- component (a histogram or summary: _sum / _count; a gauge: its value),
-- slowest first -> { { component, seconds } }
function M.component_latency(text)
  local prometheus = require "prometheus"
  local sums, counts, gauges = {}, {}, {}
  local function comp(l) return l.component or l.name or l.stage or "?" end
  for _, s in ipairs(prometheus.select(text, "component_latency_seconds_sum")) do
    sums[comp(s.labels)] = (sums[comp(s.labels)] or 0) + s.value
  end
  for _, s in ipairs(prometheus.select(text, "component_latency_seconds_count")) do
    counts[comp(s.labels)] = (counts[comp(s.labels)] or 0) + s.value
  end
  for _, s in ipairs(prometheus.select(text, "component_latency_seconds")) do
    if not s.labels.quantile then gauges[comp(s.labels)] = s.value end
  end
  local out = {}
  for c, sum in pairs(sums) do
    if (counts[c] or 0) > 0 then out[#out + 1] = { component = c, seconds = sum / counts[c] } end
  end
  if #out == 0 then
    for c, v in pairs(gauges) do out[#out + 1] = { component = c, seconds = v } end
  end
  table.sort(out, function(a, b) return a.seconds > b.seconds end)
  return out
end

-- The q-quantile (0.95) of a Prometheus histogram in exposition text
-- (NAME_bucket{le=...}, summed over the other labels, cumulative since the
-- process started), interpolated as histogram_quantile() does; nil when the
-- histogram is absent or empty.
function M.histogram_quantile(text, name, q)
  local prometheus = require "prometheus"
  local by_le = {}
  for _, s in ipairs(prometheus.select(text, name .. "_bucket")) do
    local le = s.labels.le == "+Inf" and math.huge or tonumber(s.labels.le)
    if le then by_le[le] = (by_le[le] or 0) + s.value end
  end
  local les = {}
  for le in pairs(by_le) do les[#les + 1] = le end
  table.sort(les)
  if #les == 0 then return nil end
  local total = by_le[les[#les]]
  if total <= 0 then return nil end
  local rank, prev_le, prev_n = q * total, 0, 0
  for _, le in ipairs(les) do
    local n = by_le[le]
    if n >= rank then
      if le == math.huge then return prev_le end
      if n == prev_n then return le end
      return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
    end
    prev_le, prev_n = le, n
  end
  return prev_le
end

-- `docker-compose -f deployment/docker-compose.prod.yml ps`, logged:
-- -> rows, names of the services down (not running or unhealthy)
function M.services(file, project)
  local compose = require "compose"
  local rows = compose.status(file, { project = project ~= "" and project or nil })
  for _, r in ipairs(rows) do
    log.info("%-24s %-16s %-10s %s", r.name, r.service, r.state, r.health or r.status or "")
  end
  return rows, compose.down_services(rows)
end

-- `docker stats --no-stream` of the given containers (reads), logged:
-- -> { [name] = { cpu_percent, memory_percent, memory_usage, memory_limit } }
function M.stats(names)
  local out = {}
  for _, n in ipairs(names) do
    local ok, s = pcall(docker.stats, n)
    if ok and type(s) == "table" then
      out[n] = s
      log.info("%-28s CPU %5.1f%%  MEM %5.1f%% (%s / %s)", n, s.cpu_percent or 0, s.memory_percent or 0,
               M.bytes(s.memory_usage), M.bytes(s.memory_limit))
    else
      log.warn("docker stats %s: %s", n, tostring(s))
    end
  end
  return out
end

function M.bytes(n)
  n = tonumber(n) or 0
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do n = n / 1024; i = i + 1 end
  return string.format(i == 1 and "%d%s" or "%.1f%s", n, units[i])
end

-- the text of a compose .env file with NAME=VALUE set (added or replaced)
-- -> text, changed
function M.env_with(text, name, value)
  if text == "" then return name .. "=" .. value .. "\n", true end
  local out, found, changed = {}, false, false
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    local k = line:match("^%s*export%s+([%w_]+)%s*=") or line:match("^%s*([%w_]+)%s*=")
    if k == name then
      found = true
      local new = name .. "=" .. value
      if line ~= new then changed = true end
      out[#out + 1] = new
    else
      out[#out + 1] = line
    end
  end
  if not found then out[#out + 1] = name .. "=" .. value; changed = true end
  return table.concat(out, "\n") .. "\n", changed
end

-- "NAME=VALUE" -> name, value
function M.split_env(s)
  local k, v = tostring(s):match("^%s*([%w_]+)=(.*)$")
  check(k ~= nil, "expected NAME=VALUE, got %q", tostring(s))
  return k, v
end

-- errors of the functions above name the runbook's line, not this file's
for _, name in ipairs({ "grep_tail", "metrics", "error_rate", "services", "stats", "split_env" }) do
  local f = M[name]
  M[name] = function(...)
    local r = table.pack(pcall(f, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    local e = r[2]
    if type(e) == "string" then error((e:gsub("^[^:\n]*calendar_api%.lua:%d+: ", "")), 2) end
    error(e, 0)
  end
end

return M
