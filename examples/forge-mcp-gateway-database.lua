-- examples/forge-mcp-gateway-database.lua: the Forge MCP gateway's database
-- procedures (004_c5e4c638679021cc.txt) as one runbook:
--
--   Weekly Maintenance › Database Maintenance: health check (`pg_isready`),
--     statistics (`pg_stat_database`), `VACUUM ANALYZE`;
--   Backup and Recovery › Backup Procedures: run a backup, verify its
--     integrity (`./scripts/backup-create.sh`, `backup-verify.sh`);
--   Daily Operations › Backup Verification: test the backup's restoration
--     (`./scripts/test-backup.sh`) -- restored into a scratch database,
--     compared table by table, then dropped;
--   and a retention rule for the backup directory.
--
-- Restoring over the live database is examples/forge-mcp-gateway-restore.lua.
--
--   runbook run examples/forge-mcp-gateway-database.lua --dry-run \
--       --param db_url=postgres://forge@db.internal/forge
--
-- reads for real (health, statistics, row counts) and shows the writes:
-- `would: db exec ...: VACUUM ANALYZE`, `would: pg_dump ...`, and which old
-- backups retention would delete.  The password, from the URL or PGPASSWORD,
-- is never printed or recorded.

runbook {
  name   = "examples/forge-mcp-gateway-database",
  title  = "Forge MCP gateway: database health, maintenance and verified backup",
  tags   = { "example", "forge", "postgres", "backup" },
  params = {
    db_url       = { default = "postgresql:///forge", help = "the gateway's PostgreSQL (PG* variables fill in the rest)" },
    backup_dir   = { default = "backups", help = "where backups are written" },
    vacuum       = { type = "boolean", default = true, help = "run VACUUM ANALYZE" },
    restore_test = { type = "boolean", default = true, help = "restore the new backup into a scratch database and compare" },
    keep_last    = { type = "number", default = 7, help = "backups to keep (the newest); older ones are deleted" },
    keep_days    = { type = "number", default = 14, help = "also keep every backup younger than this many days" },
  },
}

local backup = require "backup"

local function dbname(url) return db.pg_url(url).dbname or "postgres" end

-- the URL of another database on the same server
local function sibling_url(url, name)
  local base, query = url:match("^([^?]*)(.*)$")
  local prefix = base:match("^(postgres[a-z]*://[^/]*)") or base
  return prefix .. "/" .. name .. query
end

step("Database health check", {
  description = "pg_isready: is the server accepting connections?",
}, function()
  local u = db.pg_url(params.db_url)
  local argv = { "pg_isready" }
  for _, kv in ipairs({ { "-h", u.host }, { "-p", u.port }, { "-d", u.dbname }, { "-U", u.user } }) do
    if kv[2] then argv[#argv + 1] = kv[1]; argv[#argv + 1] = kv[2] end
  end
  local r = exec(argv, { check = false, timeout = 15 })
  check(r.code == 0, "database not ready: %s", (r.stdout .. r.stderr):gsub("%s+$", ""))
  log.info("%s", (r.stdout:gsub("%s+$", "")))
end)

step("Database statistics", {
  description = "pg_stat_database for the gateway's database: connections, commits, cache hits, size",
}, function()
  local conn <close> = db.open(params.db_url)
  local s = conn:query([[
    SELECT numbackends, xact_commit, xact_rollback, deadlocks, conflicts,
           round(100.0 * blks_hit / nullif(blks_hit + blks_read, 0), 2) AS cache_hit_pct,
           pg_size_pretty(pg_database_size(datname)) AS size
    FROM pg_stat_database WHERE datname = current_database()]])[1]
  log.info("%d connections, %d commits, %d rollbacks, %d deadlocks, cache hit %s%%, size %s",
           s.numbackends, s.xact_commit, s.xact_rollback, s.deadlocks,
           tostring(s.cache_hit_pct), s.size)
  state.size = s.size
end)

step("Vacuum and analyze", {
  description = "VACUUM ANALYZE: reclaim dead rows and refresh the planner's statistics",
  when = function() return params.vacuum end,
  timeout = 3600,
}, function()
  local conn <close> = db.open(params.db_url)
  conn:exec("VACUUM ANALYZE", { timeout = 3600 })
end)

step("Run a backup", {
  description = "pg_dump --format=custom from one snapshot, with a manifest of sizes, sha256 and row counts",
  timeout = 3600,
}, function()
  fs.mkdir(params.backup_dir, { parents = true })
  local path = string.format("%s/%s-%s.dump", params.backup_dir, dbname(params.db_url),
                             os.date("!%Y%m%dT%H%M%SZ"))
  local r = db.backup(params.db_url, path)
  state.backup = path
  if r.dry_run then
    log.info("would back up %d rows to %s", r.rows, path)
  else
    log.info("%s: %d bytes, sha256 %s, %d rows in %s", path, r.size, r.sha256, r.rows,
             string.format("%.1f s", r.duration))
  end
end)

step("Verify backup integrity", {
  description = "checksum against the manifest; pg_restore --list reads the archive's table of contents",
}, function()
  if not fs.exists(state.backup) then
    log.info("no backup file (dry-run): nothing to verify")
    return
  end
  local v = db.verify(state.backup)
  log.info("%s verified: sha256 matches, every table's data is in the archive", state.backup)
  state.tables = v.tables
end)

step("Test backup restoration", {
  description = "restore into a scratch database, compare row counts table by table, drop it",
  when = function() return params.restore_test end,
  timeout = 3600,
}, function()
  if not fs.exists(state.backup) then
    log.info("no backup file (dry-run): nothing to restore")
    return
  end
  local scratch = dbname(params.db_url) .. "_restore_test"
  local admin <close> = db.open(sibling_url(params.db_url, "postgres"))
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  admin:exec('CREATE DATABASE "' .. scratch .. '"')
  local ok, r = pcall(db.restore, state.backup, sibling_url(params.db_url, scratch))
  admin:exec('DROP DATABASE IF EXISTS "' .. scratch .. '"')
  if not ok then error(r, 0) end
  log.info("restored %d rows; every table's count matches the backup", r.rows)
end)

step("Apply retention", {
  description = "keep the newest keep_last backups and any younger than keep_days days; delete the rest",
}, function()
  local p = backup.prune(params.backup_dir .. "/" .. dbname(params.db_url) .. "-*.dump",
                         { keep_last = math.tointeger(params.keep_last), keep_days = params.keep_days })
  log.info("kept %d backup(s), deleted %d", #p.keep, #p.delete)
end)
