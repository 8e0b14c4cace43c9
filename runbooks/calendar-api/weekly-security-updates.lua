local cal = require "calendar_api"

runbook {
  name        = "calendar-api/weekly-security-updates",
  title       = "Calendar API: weekly security updates (Sundays 2:00 AM)",
  description = [[Pulls the newer base images of the compose stack (not deployed: that is the monthly
dependency update, through staging), scans the API image with Trivy and counts the
vulnerabilities by severity, and lists the outdated Python packages. Critical vulnerabilities fail
the run after telling the team. 001_ef3bce7d6f139975.txt › Maintenance Procedures › Weekly
Maintenance › 3. Security Updates.]],
  source      = "001_ef3bce7d6f139975.txt › Maintenance Procedures › Weekly Maintenance (Sundays 2:00 AM) › 3. Security Updates",
  schedule    = "weekly",
  tags        = { "calendar-api", "maintenance", "weekly" },
  mutates     = { "pulls the compose images (docker compose pull; nothing is restarted)", "notifies the team (Slack)" },
  params = {
    root         = { default = cal.ROOT, help = "the Calendar API checkout (holds deployment/)" },
    compose_file = { default = cal.COMPOSE_FILE, help = "compose file, relative to root" },
    image        = { default = "calendar-api:latest", help = "the image to scan" },
    trivy_image  = { default = "aquasec/trivy", help = "the Trivy image" },
    pip          = { default = "pip", help = "pip of the API's environment" },
    fail_on      = { type = "list", default = { "CRITICAL" }, help = "severities that fail the run" },
  },
}

local FILE = cal.path(params.root, params.compose_file)

step("Update base images", {
  description = "`docker-compose -f deployment/docker-compose.prod.yml pull`",
  timeout = 3600,
}, function()
  exec({ "docker", "compose", "-f", FILE, "pull" }, { timeout = 3600 })
end)

step("Check for security vulnerabilities", {
  description = "`docker run --rm -v /var/run/docker.sock:/var/run/docker.sock aquasec/trivy image " ..
                "calendar-api:latest` (JSON output, counted by severity; a scan only reads, so it runs " ..
                "in a dry-run too).",
  timeout = 3600,
}, function()
  local r = exec({ "docker", "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", params.trivy_image,
                   "image", "--quiet", "--format", "json", params.image }, { readonly = true, timeout = 3600 })
  local ok, doc = pcall(json.decode, r.stdout)
  check(ok and type(doc) == "table", "trivy gave no JSON report: %s", (r.stdout or ""):sub(1, 200))
  local counts, top = {}, {}
  for _, res in ipairs(doc.Results or {}) do
    for _, v in ipairs(res.Vulnerabilities or {}) do
      counts[v.Severity] = (counts[v.Severity] or 0) + 1
      if v.Severity == "CRITICAL" and #top < 10 then
        top[#top + 1] = string.format("%s %s %s -> %s", v.VulnerabilityID, v.PkgName, v.InstalledVersion or "?",
                                      v.FixedVersion or "no fix")
      end
    end
  end
  state.vulnerabilities = counts
  for _, l in ipairs(top) do log.warn("critical: %s", l) end
  log.info("vulnerabilities: CRITICAL %d, HIGH %d, MEDIUM %d, LOW %d", counts.CRITICAL or 0, counts.HIGH or 0,
           counts.MEDIUM or 0, counts.LOW or 0)
end)

step("List outdated dependencies", {
  description = "`pip list --outdated` (the update itself is Monthly Maintenance › 3. Dependency Updates).",
}, function()
  local r = exec({ params.pip, "list", "--outdated", "--format", "json" }, { cwd = params.root, readonly = true, check = false })
  local ok, list = pcall(json.decode, r.stdout or "")
  state.outdated = 0
  if ok and type(list) == "table" then
    state.outdated = #list
    for _, p in ipairs(list) do log.info("outdated: %s %s -> %s", p.name, p.version, p.latest_version) end
  else
    log.warn("pip list --outdated: %s", ((r.stderr or "") .. (r.stdout or "")):match("[^\n]*"))
  end
end)

step("Report", {
  description = "Tell the team; fail on the fail_on severities so the schedule sees it.",
}, function()
  local c = state.vulnerabilities
  local bad = 0
  for _, sev in ipairs(params.fail_on) do bad = bad + (c[sev] or 0) end
  local text = string.format("calendar-api weekly security: %s CRITICAL %d, HIGH %d; %d outdated Python packages",
                             params.image, c.CRITICAL or 0, c.HIGH or 0, state.outdated)
  notify.slack{ text = text }
  check(bad == 0, "%d vulnerabilities of severity %s in %s", bad, table.concat(params.fail_on, "/"), params.image)
end)
