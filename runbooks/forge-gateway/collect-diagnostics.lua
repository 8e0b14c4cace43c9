local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/collect-diagnostics",
  title       = "Collect debug information, assess the incident, escalate if needed",
  description = [[The escalation procedure's first and last steps as one run: collect system
information (Docker version and daemon, disk, load), service diagnostics (compose status, health
endpoints, the last log lines of every service), assess the severity with the document's levels
(and its Immediate Escalation list: multiple services down, ...), write it all as a debug report
into logs_dir/incident-STAMP/, and page when the assessment is CRITICAL.
004_c5e4c638679021cc.txt › Troubleshooting Guide › Debugging Procedures › Collect Debug Information
and › Escalation Procedures › Escalation Process (Step 1, Step 3).]],
  source      = "004_c5e4c638679021cc.txt › Troubleshooting Guide › Debugging Procedures › Collect Debug Information",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "writes the debug report into logs_dir/incident-STAMP/", "pages when the assessment is CRITICAL" },
  params      = fg.params{ "compose_file", "project", "gateway", "service_manager", "admin_ui", "logs_dir", "stamp",
    log_lines = { type = "number", default = 200, help = "log lines per service in the report" },
  },
}

local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

step("Collect system information", {
  description = "./scripts/debug-info.sh: Docker version and daemon, disk, load",
}, function()
  local info = {}
  local okv, v = pcall(docker.version)
  info.docker_version = okv and v.Version or ("unreachable: " .. tostring(v))
  local oki, d = pcall(docker.info)
  if oki then
    info.containers_running, info.containers_stopped = d.ContainersRunning, d.ContainersStopped
    info.memory_bytes, info.cpus = d.MemTotal, d.NCPU
  end
  local df = exec({ "df", "-P", "/" }, { check = false })
  info.disk_pct = fg.df_pct(df.stdout or "")
  info.uptime = (exec({ "uptime" }, { check = false }).stdout or ""):gsub("^%s+", ""):gsub("%s+$", "")
  state.system = info
  log.info("Docker %s, %s containers running, disk %s%%, %s", tostring(info.docker_version),
           tostring(info.containers_running), tostring(info.disk_pct), info.uptime)
end)

step("Collect service diagnostics", {
  description = "./scripts/service-diagnostics.sh: compose status, health endpoints, recent logs per service",
}, function()
  local rows = compose.status(params.compose_file, fg.compose_opts(params))
  state.services_down = compose.down_services(rows)
  local h = health.check(fg.endpoints(params), { timeout = 10 })
  health.report(h)
  state.endpoints_down = h.down
  state.services = {}
  local c = docker.compose(params.compose_file, fg.compose_opts(params))
  state.logs = {}
  for _, r in ipairs(rows) do
    state.services[#state.services + 1] = { service = r.service, name = r.name, state = r.state, health = r.health,
                                            status = r.status }
    local l = c:logs(r.service, { tail = math.tointeger(params.log_lines), readonly = true, check = false })
    state.logs[r.service] = l.stdout or ""
  end
end)

step("Assess incident severity", {
  description = "./scripts/assess-incident.sh: Severity Levels and When to Escalate",
}, function()
  local down = #state.services_down + #state.endpoints_down
  local row, why = escalation.classify(fg.SEVERITY, {
    service_down = down > 0, services_down = #state.services_down, disk_pct = state.system.disk_pct,
  })
  state.level, state.reason = row.level, why
  log.info("assessed %s (%s)", row.level, why)
end)

step("Generate debug report", {
  description = "./scripts/debug-report.sh, document-incident.sh: report.json and one log file per service",
}, function()
  local dir = string.format("%s/incident-%s", params.logs_dir, fg.stamp(params))
  fs.mkdir(dir, { parents = true })
  fs.write(dir .. "/report.json", json.encode({
    level = state.level, reason = state.reason, system = state.system, services = state.services,
    services_down = state.services_down, endpoints_down = state.endpoints_down,
    collected_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }) .. "\n")
  local names = {}
  for s in pairs(state.logs) do names[#names + 1] = s end
  table.sort(names)
  for _, s in ipairs(names) do fs.write(dir .. "/" .. s .. ".log", state.logs[s]) end
  state.logs = nil
  state.report = dir
  log.info("debug report in %s", dir)
end)

step("Escalate if needed", {
  description = "./scripts/escalate-incident.sh, notify-stakeholders.sh: page when CRITICAL, with the report",
  when = function() return state.level == "CRITICAL" end,
}, function()
  local parts = {}
  for _, s in ipairs(state.services_down) do parts[#parts + 1] = "service " .. s .. " down" end
  for _, n in ipairs(state.endpoints_down) do parts[#parts + 1] = n .. " not answering" end
  if #parts == 0 then parts[1] = state.reason end
  fg.post(escalation.notify, fg.row("CRITICAL"), {
    summary = "forge gateway incident: " .. table.concat(parts, "; "),
    details = { report = state.report, reason = state.reason, next = fg.CONTACTS[2] },
    dedup_key = "forge-gateway-incident", source = "runbook forge-gateway/collect-diagnostics",
  })
  state.escalated = true
end)
