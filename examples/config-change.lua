-- examples/config-change.lua: change a config file safely -- back it up,
-- ask before writing, validate, and undo everything if validation fails.
--
-- Shows yaml.load/yaml.encode, json.encode, confirm(), a secret param
-- (redacted as **** in the output and the audit log), and `undo` with
-- --rollback.  It edits a demo file under $TMPDIR/runbook-config-demo.
--
--   runbook run examples/config-change.lua --dry-run --yes   # confirm() asks in a dry-run too
--   runbook run examples/config-change.lua                 # asks before writing (needs a terminal)
--   runbook run examples/config-change.lua --yes           # approves in advance (CI)
--   runbook run examples/config-change.lua --yes --rollback --param break_validation=true

local DIR = env("TMPDIR", "/tmp") .. "/runbook-config-demo"

runbook {
  name        = "examples/config-change",
  title       = "Rotate the API token in a service's config",
  tags        = { "example", "config", "rollback" },
  params = {
    config           = { default = DIR .. "/app.yaml", help = "the YAML config to change" },
    token            = { secret = true, default = "s3cr3t-demo-token", help = "the new API token" },
    break_validation = { type = "boolean", default = false, help = "make validation fail, to see --rollback" },
  },
}

step("Back up the config", {
  description = "Copy the config next to itself (creating a demo config first if there is none).",
  undo = function()
    fs.copy(state.backup, params.config)
    log.warn("restored %s from %s", params.config, state.backup)
  end,
}, function()
  if not fs.exists(params.config) then
    fs.mkdir(DIR, { parents = true })
    fs.write(params.config, yaml.encode({
      service = "calendar-api",
      api = { url = "http://127.0.0.1:8000", token = "old-token" },
    }))
  end
  state.backup = params.config .. ".bak"
  fs.copy(params.config, state.backup)
end)

step("Write the new token", {
  description = "Set api.token in the config, after asking.",
}, function()
  -- in a dry-run the demo config may not exist yet: start from an empty one
  local cfg = fs.exists(params.config) and yaml.load(params.config) or { api = {} }
  cfg.api.token = params.token
  cfg.api.rotated_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
  -- confirm() asks in every mode, live or dry-run, unless --yes
  if not confirm("Write the new token to " .. params.config) then
    error("the operator declined the change", 0)
  end
  fs.write(params.config, yaml.encode(cfg), { mode = "0600" })
  fs.append(DIR .. "/changes.jsonl", json.encode({
    at = cfg.api.rotated_at, file = params.config, change = "api.token rotated",
  }) .. "\n")
end)

step("Validate", {
  description = "Read the config back and check the token is in place.",
  when = function() return fs.exists(params.config) end, -- not in a first dry-run
}, function()
  local cfg = yaml.load(params.config)
  check(not params.break_validation, "validation failed on purpose (break_validation=true)")
  check(cfg.api and cfg.api.token == params.token,
        "%s: api.token is not the new token", params.config)
  log.info("%s has the new token (%s)", params.config, params.token) -- printed as ****
end)
