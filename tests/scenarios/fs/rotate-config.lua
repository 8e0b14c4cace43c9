-- Fixture for tests/cli/test_scenarios.py: fs in the scenario's scratch
-- directory, seeded from `fs:` (inline text and {file: NAME}).
runbook {
  name = "scenarios/fs-rotate-config",
  params = { dir = { default = "/etc/calendar-api" } },
}

step("Read", function()
  local conf = yaml.load(params.dir .. "/app.yaml")
  state.port = conf.server.port
  state.motd = fs.read("/etc/motd")
  state.files = fs.list(params.dir)
  state.has_backup = fs.exists(params.dir .. "/app.yaml.bak")
end)

step("Back up and rewrite", function()
  fs.copy(params.dir .. "/app.yaml", params.dir .. "/app.yaml.bak")
  local text = fs.read(params.dir .. "/app.yaml"):gsub("port: %d+", "port: 9090")
  fs.write(params.dir .. "/app.yaml", text)
  fs.mkdir("/var/lib/calendar-api/state", { parents = true })
  fs.write("/var/lib/calendar-api/state/rotated", "yes\n")
end)

step("Verify", function()
  state.new_port = yaml.load(params.dir .. "/app.yaml").server.port
  state.backup_port = yaml.load(params.dir .. "/app.yaml.bak").server.port
  state.rotated = fs.read("/var/lib/calendar-api/state/rotated")
  state.glob = fs.glob(params.dir .. "/*.bak")
end)
