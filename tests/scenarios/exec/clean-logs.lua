-- Fixture for tests/cli/test_scenarios.py: exec (argv and command globs,
-- stdout_file, a non-zero exit with check = false) and sh.
runbook {
  name = "scenarios/exec-clean-logs",
  params = { service = { default = "nginx" }, days = { type = "number", default = 7 } },
}

step("Disk usage", function()
  local r = exec{ "df", "-P", "/var/log" }
  state.use = tonumber(r.stdout:match("(%d+)%%"))
end)

step("Compress and prune", function()
  exec{ "find", "/var/log/app", "-name", "*.log.1", "-exec", "gzip", "{}", ";" }
  exec{ "find", "/var/log/app", "-name", "*.gz", "-mtime", "+" .. params.days, "-delete" }
  sh("rm -rf /var/cache/app/*")
end)

step("Restart", function()
  exec{ "systemctl", "restart", params.service }
  local st = exec({ "systemctl", "is-active", params.service }, { check = false })
  state.active_code = st.code
  state.active = st.stdout:gsub("%s+$", "")
  local hn = sh("hostname -f", { readonly = true })
  state.host = hn.stdout:gsub("%s+$", "")
end)
