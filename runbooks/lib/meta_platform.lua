-- meta_platform: what the meta-platform runbooks share, from the 254Carbon
-- "Operational Procedures" (000_ec9a80fe7bc3b02e.txt): the document's
-- thresholds and severity table as data, the argv of its CLI and scripts,
-- and the checks that can be done natively on the catalog
-- (catalog/service-index.yaml), the quality snapshot and the drift report,
-- so that they are testable without the Python tooling.
--
--   local mp = require "meta_platform"
--   local cat = mp.load_catalog(mp.path(params, params.catalog_file))
--   local problems = mp.validate_catalog(cat, mp.load_rules(mp.path(params, params.rules_file)))
--   local cycles = mp.find_cycles(cat.services)
--   exec(mp.cli(params, "catalog", "validate", "--strict"), { cwd = params.root })
--
-- Everything here is pure or a read (fs.exists, yaml.load, fs.read): the
-- runbooks make every exec themselves, so each mutating call site is in
-- the runbook's own source (and in its coverage).
local M = {}

M.SOURCE = "000_ec9a80fe7bc3b02e.txt"

-- ---- the document's numbers -------------------------------------------------

M.QUALITY = {
  min_score = 70,        -- 1.1 Expected Output: "All services show quality scores >70"; Actions 3: owners alerted <70
  release_min = 80,      -- 2.1 Expected Output: "All participants meet quality thresholds (>80)"
  p0_below = 60,         -- 7.1 Critical Alert (P0): "Quality score <60"
  p1_below = 70,         -- 7.1 High Alert (P1): "Quality score 60-70"
}

-- 8.2 Alert Thresholds (Warning / Critical)
M.ALERT_THRESHOLDS = {
  quality_score  = { warning = 75, critical = 65, below = true, action = "Alert service owner" },
  drift_issues   = { warning = 5, critical = 10, action = "Immediate remediation" },
  build_failures = { warning = 2, critical = 5, action = "Investigate pipeline" },       -- per day
  api_errors     = { warning = 0.01, critical = 0.05, action = "Check external services" },
}

-- 2.1 Expected Output: "Release train plan generated with 5-10 services"
M.RELEASE_TRAIN = { min_services = 5, max_services = 10 }

-- 2.4 Expected Output: "Disk space freed up (>100MB)"
M.HISTORY_FREED_MB = 100

-- drift severities (the drift report of scripts/detect_drift.py, `severity`
-- of each issue): "critical drift" of 1.1 and 7.1 P0 is an issue of severity
-- critical or error, "high drift" of 7.1 P1 one of severity high.
M.DRIFT_CRITICAL = { critical = true, error = true }
M.DRIFT_HIGH = { high = true }

-- ---- 7.1 Alert Response Procedures, as an escalation matrix -----------------
-- facts: quality_min (lowest service score), critical_drift, high_drift (counts)
M.SEVERITY = {
  { level = "P0", title = "Critical Alert", response = "30 minutes",
    notify = { "pagerduty", "slack" },
    any = { { "quality_min", "<", 60 }, { "critical_drift", ">", 0 } },
    steps = { "Acknowledge alert in monitoring system", "Assess impact using dashboard",
              "Notify stakeholders if service impact", "Begin remediation per troubleshooting guide",
              "Update status every 30 minutes until resolved" },
    status_every_min = 30 },
  { level = "P1", title = "High Alert", response = "2 hours",
    notify = { "slack" },
    any = { { "quality_min", "<", 70 }, { "high_drift", ">", 0 } },
    steps = { "Acknowledge alert in monitoring system", "Investigate root cause using diagnostic commands",
              "Implement fix or create remediation plan", "Monitor progress until resolved" } },
  { level = "none", title = "No P0/P1 condition (7.1)", response = "none", notify = {}, any = {},
    default = true },
}

-- 7.2 Escalation Procedures
M.ESCALATION_PATH = {
  "Primary On-Call (Platform Engineer)",
  "Secondary On-Call (Senior Platform Engineer)",
  "Platform Team Lead",
  "Engineering Director",
}
M.ESCALATION_TRIGGERS = {
  "Issue not resolved within SLA time",
  "Multiple services affected",
  "Critical business impact",
  "Security vulnerability detected",
}

-- Appendix A.2 Emergency Contacts
M.CONTACTS = {
  platform       = { email = "platform-team@254carbon.com", phone = "+1-555-PLATFORM", slack = "#platform-emergency" },
  infrastructure = { email = "infra-team@254carbon.com", phone = "+1-555-INFRA", slack = "#infrastructure" },
  security       = { email = "security@254carbon.com", phone = "+1-555-SECURITY", slack = "#security-incidents" },
}

-- ---- the CLI and the scripts ------------------------------------------------

-- mp.path(params, p): p under the meta repository checkout (params.root)
function M.path(params, p)
  if p:sub(1, 1) == "/" or params.root == nil or params.root == "" or params.root == "." then return p end
  return params.root .. "/" .. p
end

-- mp.cli(params, ...) -> argv of `python scripts/meta_cli.py ...`
function M.cli(params, ...)
  return { params.python, "scripts/meta_cli.py", ... }
end

-- mp.script(params, name, ...) -> argv of `python scripts/NAME ...`
function M.script(params, name, ...)
  return { params.python, "scripts/" .. name, ... }
end

-- exec options for the tooling: run in the checkout; reads that exec's
-- allowlist cannot know are marked readonly so a dry-run runs them
function M.opts(params, extra)
  local o = { cwd = params.root ~= "" and params.root or nil, timeout = params.timeout or 1800 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- ---- the catalog --------------------------------------------------------------

-- built-in validation rules (config/rules.yaml of the meta repository
-- overrides them when it exists): 3.2 Manifest Validation Errors
M.DEFAULT_RULES = {
  required_fields = { "name", "repo", "domain", "version", "maturity", "dependencies" },
  allowed_external = { "redis", "clickhouse", "postgresql", "mongodb", "elasticsearch", "kafka",
                       "rabbitmq", "nginx", "envoy", "istio", "cert-manager" },
  domains = { "access", "data-processing", "ml", "infrastructure", "shared", "data" },
  maturities = { "experimental", "beta", "stable", "deprecated" },
  domain_layers = { infrastructure = 1, shared = 2, access = 3, ["data-processing"] = 4, ml = 5 },
}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

-- mp.load_rules(path) -> rules (the file's dependency/manifest sections
-- merged over DEFAULT_RULES; the defaults alone when there is no file)
function M.load_rules(path)
  local r = {}
  for k, v in pairs(M.DEFAULT_RULES) do r[k] = v end
  if path and path ~= "" and fs.exists(path) then
    local doc = yaml.load(path) or {}
    local dep, man = doc.dependency or {}, doc.manifest or {}
    if type(dep.allowed_external) == "table" then r.allowed_external = dep.allowed_external end
    if type(dep.domain_layers) == "table" then r.domain_layers = dep.domain_layers end
    if type(man.required_fields) == "table" then r.required_fields = man.required_fields end
    r.file = path
  end
  return r
end

-- mp.load_catalog(path) -> { metadata, services = {...} }; raises with a
-- message naming the file when it is not a catalog (the corruption case)
function M.load_catalog(path)
  check(fs.exists(path), "catalog %s does not exist", path)
  local ok, doc = pcall(yaml.load, path)
  check(ok, "catalog %s is not valid YAML: %s", path, tostring(doc))
  check(type(doc) == "table" and type(doc.services) == "table",
        "catalog %s has no services list", path)
  return doc
end

-- "gateway-core@1.0.0" -> "gateway-core", "1.0.0"
function M.parse_dep(s)
  s = tostring(s)
  local name, version = s:match("^%s*([^@%s]+)@(%S+)%s*$")
  if name then return name, version end
  return (s:match("^%s*(%S+)%s*$") or s), nil
end

-- internal dependencies of a service as names, or nil and why when the
-- format is wrong (3.2 "Invalid dependency format": internal must be a list)
local function internal_deps(svc)
  local deps = svc.dependencies
  if deps == nil then return {} end
  if type(deps) ~= "table" then return nil, "dependencies must be a mapping (internal, external)" end
  local internal = deps.internal
  if internal == nil then return {} end
  if type(internal) ~= "table" or (next(internal) ~= nil and internal[1] == nil) then
    return nil, "dependencies.internal must be a list (e.g. - gateway-core@1.0.0)"
  end
  local out = {}
  for _, d in ipairs(internal) do out[#out + 1] = (M.parse_dep(d)) end
  return out
end

-- mp.validate_catalog(catalog, rules) -> problems, warnings: lists of
-- { service, message } (3.2: missing required fields, invalid dependency
-- format; name/version/domain/maturity formats; duplicate names; external
-- dependencies not whitelisted (1.2); internal dependencies on services the
-- catalog does not have are warnings)
function M.validate_catalog(catalog, rules)
  rules = rules or M.DEFAULT_RULES
  local problems, warnings = {}, {}
  local function bad(list, svc, fmt, ...)
    list[#list + 1] = { service = svc, message = string.format(fmt, ...) }
  end
  local allowed = set_of(rules.allowed_external)
  local domains, maturities = set_of(rules.domains), set_of(rules.maturities)
  local names = {}
  for i, svc in ipairs(catalog.services or {}) do
    local id = type(svc) == "table" and type(svc.name) == "string" and svc.name or ("services[" .. i .. "]")
    if type(svc) ~= "table" then
      bad(problems, id, "is not a mapping")
    else
      for _, f in ipairs(rules.required_fields or {}) do
        if svc[f] == nil or svc[f] == "" then bad(problems, id, "missing required field '%s'", f) end
      end
      if type(svc.name) == "string" then
        if not svc.name:match("^[a-z][a-z0-9%-]*[a-z0-9]$") or #svc.name > 50 then
          bad(problems, id, "name '%s' must match ^[a-z][a-z0-9-]*[a-z0-9]$ (2-50 chars)", svc.name)
        end
        if names[svc.name] then bad(problems, id, "duplicate service name") end
        names[svc.name] = true
      end
      if svc.version ~= nil and not tostring(svc.version):match("^%d+%.%d+%.%d+$") then
        bad(problems, id, "version '%s' is not MAJOR.MINOR.PATCH", tostring(svc.version))
      end
      if svc.domain ~= nil and not domains[svc.domain] then
        bad(problems, id, "unknown domain '%s'", tostring(svc.domain))
      end
      if svc.maturity ~= nil and not maturities[svc.maturity] then
        bad(problems, id, "unknown maturity '%s'", tostring(svc.maturity))
      end
      local _, why = internal_deps(svc)
      if why then bad(problems, id, "%s", why) end
      local ext = type(svc.dependencies) == "table" and svc.dependencies.external or nil
      if ext ~= nil and type(ext) ~= "table" then
        bad(problems, id, "dependencies.external must be a list")
      else
        for _, d in ipairs(ext or {}) do
          local name = M.parse_dep(d)
          if not allowed[name] then bad(problems, id, "external dependency '%s' is not whitelisted", name) end
        end
      end
    end
  end
  for _, svc in ipairs(catalog.services or {}) do
    if type(svc) == "table" and type(svc.name) == "string" then
      for _, d in ipairs(internal_deps(svc) or {}) do
        if not names[d] then bad(warnings, svc.name, "depends on '%s', which is not in the catalog", d) end
      end
    end
  end
  return problems, warnings
end

-- mp.find_cycles(services) -> list of cycles, each a list of names starting
-- at its smallest name and ending with it again ({ "a", "b", "a" }); 1.2
-- "No circular dependencies detected", 3.2 "Circular dependency"
function M.find_cycles(services)
  local graph, order = {}, {}
  for _, svc in ipairs(services or {}) do
    if type(svc) == "table" and type(svc.name) == "string" then
      graph[svc.name] = internal_deps(svc) or {}
      order[#order + 1] = svc.name
    end
  end
  table.sort(order)
  local color, stack, cycles, seen = {}, {}, {}, {}
  local function record(from)
    local cyc = {}
    for i = from, #stack do cyc[#cyc + 1] = stack[i] end
    local min = 1
    for i = 2, #cyc do if cyc[i] < cyc[min] then min = i end end
    local rot = {}
    for i = 0, #cyc - 1 do rot[#rot + 1] = cyc[(min - 1 + i) % #cyc + 1] end
    rot[#rot + 1] = rot[1]
    local key = table.concat(rot, ">")
    if not seen[key] then seen[key] = true; cycles[#cycles + 1] = rot end
  end
  local function visit(n)
    color[n] = "grey"
    stack[#stack + 1] = n
    for _, d in ipairs(graph[n] or {}) do
      if graph[d] then
        if color[d] == "grey" then
          for i = #stack, 1, -1 do if stack[i] == d then record(i); break end end
        elseif color[d] == nil then
          visit(d)
        end
      end
    end
    stack[#stack] = nil
    color[n] = "black"
  end
  for _, n in ipairs(order) do if color[n] == nil then visit(n) end end
  return cycles
end

-- mp.layer_violations(services, rules) -> { { service, dep, message } }:
-- 2.3 "Dependency graph follows layering rules" (a lower layer must not
-- depend on a higher one; domain_layers of config/rules.yaml)
function M.layer_violations(services, rules)
  local layers = (rules or M.DEFAULT_RULES).domain_layers or {}
  local domain = {}
  for _, svc in ipairs(services or {}) do
    if type(svc) == "table" and svc.name then domain[svc.name] = svc.domain end
  end
  local out = {}
  for _, svc in ipairs(services or {}) do
    if type(svc) == "table" and svc.name then
      local from = layers[svc.domain]
      for _, d in ipairs(internal_deps(svc) or {}) do
        local to = layers[domain[d] or ""]
        if from and to and to > from then
          out[#out + 1] = { service = svc.name, dep = d, message = string.format(
            "%s (%s, layer %d) depends on %s (%s, layer %d)", svc.name, svc.domain, from, d, domain[d], to) }
        end
      end
    end
  end
  return out
end

-- backups named by date (service-index-YYYYMMDD.yaml, catalog-YYYYMMDD.tar.gz):
-- newest first by the date in the name, whatever their mtimes (a copy or a
-- restore from archive resets those)
function M.by_name_desc(list)
  table.sort(list, function(a, b) return a.name > b.name end)
  return list
end

-- mp.check_archive(path) -> "SHA256  name\n" for a SHA256SUMS file, after
-- `tar -tzf` listed the archive cleanly (a read); nil when the file is not
-- there (a dry-run wrote nothing)
function M.check_archive(path)
  if not fs.exists(path) then return nil end
  exec({ "tar", "-tzf", path }, { readonly = true, timeout = 3600 })
  return fs.sha256(path) .. "  " .. path:match("[^/]+$") .. "\n"
end

-- the date stamp of the document's $(date +%Y%m%d), or the one given
function M.datestamp(given)
  if given and given ~= "" then return given end
  return os.date("!%Y%m%d")
end

function M.format_cycle(c) return table.concat(c, " -> ") end

-- mp.check_manifests(dir, rules) -> list of { file, service, problems } for
-- the service manifests in dir (manifests/collected/*.yaml) that do not
-- parse or do not validate (3.2); the valid ones are left out
function M.check_manifests(dir, rules)
  local out = {}
  for _, path in ipairs(fs.glob(dir .. "/*.yaml")) do
    local file = path:match("[^/]+$")
    local ok, m = pcall(yaml.load, path)
    if not ok or type(m) ~= "table" or m[1] ~= nil then
      out[#out + 1] = { file = file, service = file:gsub("%.yaml$", ""),
                        problems = { ok and "not a manifest (a mapping)" or "does not parse as YAML" } }
    else
      local problems = {}
      for _, p in ipairs(M.validate_catalog({ services = { m } }, rules)) do problems[#problems + 1] = p.message end
      if #problems > 0 then
        out[#out + 1] = { file = file, service = type(m.name) == "string" and m.name or file:gsub("%.yaml$", ""),
                          problems = problems }
      end
    end
  end
  return out
end

-- ---- release trains ---------------------------------------------------------

-- mp.find_train(plan, name) -> the train (release-trains.yaml: trains = { { name,
-- participants, ... } }); the only train when name is nil and there is one
function M.find_train(plan, name)
  local trains = type(plan) == "table" and plan.trains or nil
  check(type(trains) == "table", "the release plan has no trains list")
  for _, t in ipairs(trains) do
    if type(t) == "table" and (t.name == name or (name == nil and #trains == 1)) then return t end
  end
  return nil
end

-- mp.order_problems(participants, catalog) -> list of messages: a
-- participant deployed before an internal dependency that is also in the
-- train (3.1 Scenario 4 Resolution 3: proper service dependency order)
function M.order_problems(participants, catalog)
  local pos = {}
  for i, p in ipairs(participants or {}) do pos[tostring(p)] = i end
  local out = {}
  for _, svc in ipairs((catalog or {}).services or {}) do
    if type(svc) == "table" and pos[svc.name] then
      for _, d in ipairs(internal_deps(svc) or {}) do
        if pos[d] and pos[d] > pos[svc.name] then
          out[#out + 1] = string.format("%s (#%d) is deployed before its dependency %s (#%d)",
                                        svc.name, pos[svc.name], d, pos[d])
        end
      end
    end
  end
  return out
end

-- ---- quality and drift ------------------------------------------------------

-- mp.load_json(path) -> the decoded file; raises naming it
function M.load_json(path)
  check(fs.exists(path), "%s does not exist", path)
  local ok, doc = pcall(json.decode, fs.read(path))
  check(ok and type(doc) == "table", "%s is not valid JSON", path)
  return doc
end

-- mp.quality_scores(snapshot) -> list of { service, score, grade, critical_vulns }
-- sorted by score (lowest first), and the lowest score (nil when empty);
-- the snapshot is catalog/latest_quality_snapshot.json of `quality compute`
function M.quality_scores(snapshot)
  local out = {}
  for name, s in pairs(snapshot.services or {}) do
    if type(s) == "table" and tonumber(s.score) then
      out[#out + 1] = { service = name, score = tonumber(s.score), grade = s.grade,
                        critical_vulns = s.metrics and tonumber(s.metrics.critical_vulns) or 0 }
    end
  end
  table.sort(out, function(a, b)
    if a.score ~= b.score then return a.score < b.score end
    return a.service < b.service
  end)
  return out, out[1] and out[1].score or nil
end

-- the services scoring below `threshold`, as "name (score)"
-- 3.1 Scenario 2 Resolution 1-4 for one service, from its snapshot metrics
function M.quality_causes(metrics)
  metrics = metrics or {}
  local out = {}
  if (tonumber(metrics.critical_vulns) or 0) > 0 or (tonumber(metrics.high_vulns) or 0) > 0 then
    out[#out + 1] = "address critical vulnerabilities immediately"
  end
  if tonumber(metrics.coverage) and tonumber(metrics.coverage) < 0.70 then
    out[#out + 1] = string.format("increase test coverage (%.0f%%)", tonumber(metrics.coverage) * 100)
  end
  if (tonumber(metrics.drift_issues) or 0) > 0 then out[#out + 1] = "update outdated dependencies" end
  if (tonumber(metrics.policy_failures) or 0) > 0 then out[#out + 1] = "review and fix policy violations" end
  return out
end

function M.below(scores, threshold)
  local out = {}
  for _, s in ipairs(scores) do
    if s.score < threshold then out[#out + 1] = string.format("%s (%s)", s.service, tostring(s.score)) end
  end
  return out
end

-- mp.drift_counts(report) -> { total, critical, high, moderate, low, critical_issues }
-- for the drift report of `drift detect` (latest_drift_report.json)
function M.drift_counts(report)
  local c = { total = 0, critical = 0, high = 0, moderate = 0, low = 0, critical_issues = {} }
  for _, i in ipairs(report.issues or {}) do
    if type(i) == "table" then
      c.total = c.total + 1
      local sev = tostring(i.severity or "low")
      if M.DRIFT_CRITICAL[sev] then
        c.critical = c.critical + 1
        c.critical_issues[#c.critical_issues + 1] = string.format("%s: %s", tostring(i.service),
          tostring(i.description or i.type))
      elseif M.DRIFT_HIGH[sev] then c.high = c.high + 1
      elseif sev == "moderate" then c.moderate = c.moderate + 1
      else c.low = c.low + 1 end
    end
  end
  return c
end

-- the 8.2 level of a value: "critical", "warning" or nil
function M.threshold_level(metric, value)
  local t = M.ALERT_THRESHOLDS[metric]
  if not t or value == nil then return nil end
  if t.below then
    if value < t.critical then return "critical" elseif value < t.warning then return "warning" end
  else
    if value > t.critical then return "critical" elseif value > t.warning then return "warning" end
  end
  return nil
end

-- owners to alert for a service (the catalog's owner / team, else the
-- 8.2 "Alert service owner" falls back to the platform team)
function M.owner_of(catalog, name)
  for _, svc in ipairs((catalog or {}).services or {}) do
    if type(svc) == "table" and svc.name == name then
      return svc.owner or svc.team or M.CONTACTS.platform.email
    end
  end
  return M.CONTACTS.platform.email
end

return M
