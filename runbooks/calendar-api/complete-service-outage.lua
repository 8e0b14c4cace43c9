local cal = require "calendar_api"
local compose = require "compose"
local health = require "health"
local escalation = require "escalation"

runbook {
  name        = "calendar-api/complete-service-outage",
  title       = "Calendar API: complete service outage (emergency)",
  description = [[The emergency procedure for a full outage: verify the scope (API, monitoring,
compose services), check the infrastructure (Docker daemon, disk, memory), page the incident
response team (P1), restart all services, check the dependencies, verify, and tell the
stakeholders. Data integrity and the status page are checkpoints for a person.
001_ef3bce7d6f139975.txt › Emergency Procedures › Complete Service Outage.]],
  source      = "001_ef3bce7d6f139975.txt › Emergency Procedures › Complete Service Outage",
  severity    = "P1",
  tags        = { "calendar-api", "incident", "P1" },
  mutates     = { "pages the incident response team (PagerDuty, Slack)", "restarts every compose service" },
  params = {
    root           = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/)" },
    compose_file   = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    project        = { default = "", help = "compose project (default: as docker compose names it)" },
    api            = { default = cal.API, help = "API base URL" },
    prometheus     = { default = cal.PROMETHEUS, help = "Prometheus base URL" },
    grafana        = { default = cal.GRAFANA, help = "Grafana base URL" },
    llm_url        = { default = "", help = "health URL of the LLM service (the document names none); empty: not checked" },
    db_url         = { default = "", secret = true, help = "the API's database; empty: not checked" },
    restart_timeout = { type = "number", default = 180, help = "seconds to wait for /healthz after the restart" },
  },
}

local FILE = cal.path(params.root, params.compose_file)
local PROJECT = params.project ~= "" and params.project or nil

-- ---- 1. Immediate Actions (0-5 minutes) ----

step("Verify outage scope", {
  description = "Immediate Actions: is the API down, and what else is (monitoring, compose services)?",
}, function()
  local r = health.check({
    { name = "api", url = params.api .. "/healthz" },
    { name = "prometheus", url = params.prometheus .. "/-/healthy" },
    { name = "grafana", url = params.grafana .. "/api/health" },
  }, { timeout = 10 })
  health.report(r)
  state.api_down = false
  for _, n in ipairs(r.down) do if n == "api" then state.api_down = true end end
  state.endpoints_down = r.down
end)

step("Check infrastructure status", {
  description = "Immediate Actions: the Docker daemon, the compose services, disk and memory of the host.",
}, function()
  local ok, info = pcall(docker.info)
  check(ok, "the Docker daemon does not answer (%s): the host needs a person first", tostring(info))
  log.info("Docker %s: %s containers running, %s stopped", tostring(info.ServerVersion),
           tostring(info.ContainersRunning), tostring(info.ContainersStopped))
  local rows, down = cal.services(FILE, params.project)
  state.services = {}
  local seen = {}
  for _, r in ipairs(rows) do
    if not seen[r.service] then seen[r.service] = true; state.services[#state.services + 1] = r.service end
  end
  state.services_down = down
  local df = exec({ "df", "-h", params.root }, { check = false })
  local free = exec({ "free", "-h" }, { check = false })
  log.info("%s", ((df.stdout or "") .. (free.stdout or "")):gsub("\n$", ""))
end)

step("Activate incident response team", {
  description = "Immediate Actions: page (Severity Levels: P1, escalation immediate).",
}, function()
  escalation.notify(cal.level("P1"), {
    summary = string.format("calendar-api outage: %s down; services down: %s",
                            table.concat(state.endpoints_down, ", "),
                            #state.services_down > 0 and table.concat(state.services_down, ", ") or "none"),
    dedup_key = "calendar-api-outage", source = "calendar-api/complete-service-outage",
  })
end)

-- ---- 2. Recovery Actions (5-15 minutes) ----

step("Restart all services", {
  description = "Recovery Actions: `docker-compose -f deployment/docker-compose.prod.yml restart` " ..
                "of every service, then wait for /healthz.",
  when = function() return state.api_down or #state.services_down > 0 end,
  continue_on_error = true,   -- the stakeholders are told either way
}, function()
  check(#state.services > 0, "no compose service found: the stack must be brought up by a person (docker compose up -d)")
  for _, s in ipairs(state.services) do
    compose.restart(FILE, s, { project = PROJECT, timeout = params.restart_timeout,
                               wait_url = s == cal.SERVICE and (params.api .. "/healthz") or nil })
  end
  state.restarted = true
  state.rehearsal = dry_run() -- nothing was restarted: there is no recovery to verify
end)

step("Check dependencies", {
  description = "Recovery Actions: the LLM service and the database, when given.",
}, function()
  state.dependencies_down = {}
  if params.llm_url ~= "" then
    local ok, r = pcall(http.get, params.llm_url, { timeout = 10 })
    if not (ok and r.status >= 200 and r.status < 300) then state.dependencies_down[#state.dependencies_down + 1] = "llm" end
  end
  if params.db_url ~= "" then
    local ok = pcall(function()
      local conn <close> = db.open(params.db_url, { timeout = 10 })
      conn:query("SELECT 1")
    end)
    if not ok then state.dependencies_down[#state.dependencies_down + 1] = "database" end
  end
  if #state.dependencies_down > 0 then log.warn("dependencies down: %s", table.concat(state.dependencies_down, ", ")) end
end)

step("Verify recovery and data integrity", {
  description = "Recovery Actions: the API answers /healthz and every service runs; data integrity " ..
                "is a person's check (checkpoint).",
  when = function() return not state.rehearsal end,
}, function()
  local ok, r = pcall(http.get, params.api .. "/healthz", { timeout = 10 })
  local _, down = cal.services(FILE, params.project)
  state.recovered = ok and r.status == 200 and #down == 0
  state.still_down = down
  if state.recovered then
    confirm("Service is back. Verify data integrity (recent parses, cache stats, Grafana): looks right?")
  end
end)

-- ---- 3. Communication (15-30 minutes) ----

step("Notify stakeholders", {
  description = "Communication: notify stakeholders, update the status page (a person), provide " ..
                "regular updates.",
}, function()
  local summary = state.recovered and "calendar-api outage: service restored after restarting all services"
    or string.format("calendar-api outage continues (still down: %s; dependencies down: %s)",
                     table.concat(state.still_down or state.services_down, ", "),
                     table.concat(state.dependencies_down, ", "))
  escalation.notify(cal.level("P1"), { summary = summary, channels = { "slack" },
                                       dedup_key = "calendar-api-outage", source = "calendar-api/complete-service-outage" })
  confirm("Update the status page and plan the next update to stakeholders. Done?")
  check(state.recovered or state.rehearsal, "%s: escalate along the Alert Escalation Matrix (%s)", summary,
        cal.ESCALATION[2])
end)
