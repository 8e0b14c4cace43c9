-- conn:transaction(fn), db.backup, db.verify and db.restore: plain Lua over
-- the drivers' funnelled methods, fs and exec, so every statement, tool run
-- and file written is its own classified, audited action (pg_dump is a
-- write, pg_restore --list a read), and dry-run shows each one.
-- mutates: db.backup db.restore
local rt = ...
local signature = require "signature"

-- conn:transaction(fn) -> fn's results: COMMIT when fn returns, ROLLBACK
-- when it raises (the error goes on).  Nested calls use savepoints.
local depth = setmetatable({}, { __mode = "k" })
local transaction = signature.wrap("db:transaction", "fn:fn", "", function(self, fn)
  local d = depth[self] or 0
  local sp = "runbook_tx_" .. d
  self:exec(d == 0 and "BEGIN" or ("SAVEPOINT " .. sp))
  depth[self] = d + 1
  local res = table.pack(pcall(fn, self))
  depth[self] = d
  if res[1] then
    self:exec(d == 0 and "COMMIT" or ("RELEASE SAVEPOINT " .. sp))
    return table.unpack(res, 2, res.n)
  end
  if d == 0 then
    pcall(self.exec, self, "ROLLBACK")
  else
    pcall(self.exec, self, "ROLLBACK TO SAVEPOINT " .. sp)
    pcall(self.exec, self, "RELEASE SAVEPOINT " .. sp)
  end
  error(res[2], 0)
end)
rt.db_sqlite_meta.__index.transaction = transaction
rt.db_pg_meta.__index.transaction = transaction

-- ---- helpers ---------------------------------------------------------------

local function kind_of_url(url)
  if url:match("^sqlite:") then return "sqlite" end
  if url:match("^postgres://") or url:match("^postgresql://") then return "postgres" end
  error("expected a sqlite:PATH or postgres:// URL, got '" .. url .. "'", 3)
end

local function sqlite_path(url)
  return (url:gsub("^sqlite:", ""):gsub("^//", ""):gsub("%?.*$", ""))
end

-- rows per table, { ["name"] = n }, and the total
local function sqlite_counts(conn)
  local counts, total = {}, 0
  local names = conn:query("SELECT name FROM sqlite_schema WHERE type = 'table' " ..
                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")
  for _, r in ipairs(names) do
    local n = conn:query('SELECT count(*) AS n FROM "' .. r.name:gsub('"', '""') .. '"')[1].n
    counts[r.name] = n
    total = total + n
  end
  return counts, total
end

-- ordinary tables outside the system schemas, as "schema.table"; each
-- count is its own rows (FROM ONLY), as pg_dump dumps them
local function pg_counts(conn)
  local counts, total = {}, 0
  local names = conn:query([[
    SELECT n.nspname || '.' || c.relname AS name, format('%I.%I', n.nspname, c.relname) AS ident
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1]])
  for _, r in ipairs(names) do
    local n = conn:query("SELECT count(*) AS n FROM ONLY " .. r.ident)[1].n
    counts[r.name] = n
    total = total + n
  end
  return counts, total
end

local function counts_of(kind, conn)
  if kind == "sqlite" then return sqlite_counts(conn) end
  return pg_counts(conn)
end

-- differences between two { table = rows } maps, as sentences
-- (extra tables in got count only when strict: a restore target may hold more)
local function compare_counts(want, got, what, strict)
  local problems = {}
  local names = {}
  for k in pairs(want) do names[#names + 1] = k end
  for k in pairs(got) do if want[k] == nil and strict then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    if want[k] == nil then
      problems[#problems + 1] = string.format("table %s is in %s but not in the manifest", k, what)
    elseif got[k] == nil then
      problems[#problems + 1] = string.format("table %s is missing from %s", k, what)
    elseif want[k] ~= got[k] then
      problems[#problems + 1] = string.format("table %s has %d rows in %s, %d expected",
                                              k, got[k], what, want[k])
    end
  end
  return problems
end

-- how a PostgreSQL tool is told where to connect: -h -p -U -d as an operator
-- would type them, or a conninfo string when the URL says more than that
local function pg_target(info)
  for k in pairs(info) do
    if not ({ host = 1, port = 1, user = 1, dbname = 1, password = 1, conninfo = 1 })[k] then
      return { "--dbname=" .. info.conninfo }
    end
  end
  local args = {}
  for _, kv in ipairs({ { "-h", "host" }, { "-p", "port" }, { "-U", "user" }, { "-d", "dbname" } }) do
    if info[kv[2]] then
      args[#args + 1] = kv[1]
      args[#args + 1] = info[kv[2]]
    end
  end
  return args
end

local function argv(...)
  local out = {}
  for _, part in ipairs({ ... }) do
    for _, a in ipairs(part) do out[#out + 1] = a end
  end
  return out
end

-- a tool's password goes through its environment, never its argv
local function pg_tool_env(info)
  if info.password then return { PGPASSWORD = info.password } end
  return nil
end

local last_line = rt.last_line

local function manifest_path(path, opts)
  return opts and opts.manifest or (path .. ".manifest.json")
end

-- ---- db.backup ---------------------------------------------------------------

-- db.backup(src_url, dest_path [, { timeout, pg_dump }]) -> report
-- A consistent copy (SQLite online backup API; pg_dump -Fc from an exported
-- snapshot), the row counts of that same snapshot, a manifest beside it
-- (DEST.manifest.json: kind, size, sha256, tables), then db.verify().
-- (pg_restore and manifest are passed on to db.verify; connect_timeout to db.open)
db.backup = signature.wrap("db.backup", "src:str dest:str opts?:opts",
                           "timeout connect_timeout pg_dump pg_restore manifest",
                           function(src, dest, opts)
  opts = opts or {}
  local t0 = now()
  local kind = kind_of_url(src)
  local tmp = dest .. ".partial"
  local report = { kind = kind, source = src, path = dest, manifest = manifest_path(dest, opts) }
  local conn = db.open(src, { timeout = opts.connect_timeout })
  local ok, err = pcall(function()
    if kind == "sqlite" then
      conn:exec("BEGIN") -- counts and copy from one read snapshot
      report.tables, report.rows = sqlite_counts(conn)
      report.dry_run = conn:backup_to(tmp, { timeout = opts.timeout }).dry_run
    else
      local info = db.pg_url(src)
      conn:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
      local snap = conn:query("SELECT pg_export_snapshot() AS s", { readonly = true })[1].s
      report.tables, report.rows = pg_counts(conn)
      local r = exec(argv({ opts.pg_dump or "pg_dump", "--format=custom", "--snapshot=" .. snap,
                            "--file=" .. tmp }, pg_target(info)),
                     { env = pg_tool_env(info), timeout = opts.timeout or 3600 })
      report.dry_run = r.dry_run
    end
  end)
  pcall(conn.exec, conn, ok and "COMMIT" or "ROLLBACK")
  conn:close()
  if not ok then
    if not report.dry_run and fs.exists(tmp) then fs.remove(tmp) end
    error(err, 0)
  end
  if report.dry_run then
    report.duration = now() - t0
    return report
  end
  fs.move(tmp, dest)
  report.size = fs.stat(dest).size
  report.sha256 = fs.sha256(dest)
  fs.write(report.manifest, json.encode({
    kind = kind, file = dest:match("[^/]+$"), size = report.size, sha256 = report.sha256,
    tables = report.tables, rows = report.rows, created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }) .. "\n", { mode = "0644" })
  local v = db.verify(dest, { manifest = report.manifest, pg_restore = opts.pg_restore })
  report.verified = v.ok
  report.duration = now() - t0
  return report
end)

-- ---- db.verify ----------------------------------------------------------------

local function file_kind(path)
  local head = exec({ "head", "-c", "16", path }).stdout
  if head:sub(1, 15) == "SQLite format 3" then return "sqlite" end
  if head:sub(1, 5) == "PGDMP" then return "postgres" end
  return nil
end

-- db.verify(path [, { manifest, check = true }]) -> report { ok, problems, ... }
-- Reads only.  The file's size and sha256 against its manifest; SQLite:
-- PRAGMA integrity_check and per-table row counts against the manifest;
-- PostgreSQL: pg_restore --list reads the archive's table of contents and
-- every table of the manifest has its data in it.  Raises on a problem
-- unless check = false.
db.verify = signature.wrap("db.verify", "path:str opts?:opts", "manifest check pg_restore timeout",
                           function(path, opts)
  opts = opts or {}
  local report = { path = path, problems = setmetatable({}, json.array_mt) }
  local function problem(fmt, ...) report.problems[#report.problems + 1] = fmt:format(...) end
  local mpath = manifest_path(path, opts)
  local manifest
  if fs.exists(mpath) then
    local okm, m = pcall(json.decode, fs.read(mpath))
    if okm and type(m) == "table" then manifest = m else problem("manifest %s is not valid JSON", mpath) end
  end
  report.manifest = manifest and mpath or nil
  report.size = fs.stat(path).size
  report.sha256 = fs.sha256(path)
  if manifest then
    if manifest.sha256 ~= report.sha256 then
      problem("sha256 %s differs from the manifest's %s", report.sha256, tostring(manifest.sha256))
    end
    if manifest.size ~= report.size then
      problem("size %d bytes differs from the manifest's %s", report.size, tostring(manifest.size))
    end
  end
  report.kind = (manifest and manifest.kind) or file_kind(path)
  if report.kind == "sqlite" then
    local okc, conn = pcall(db.open, "sqlite:" .. path .. "?mode=ro")
    if not okc then
      problem("not a readable SQLite database: %s", conn)
    else
      local oki, rows = pcall(conn.query, conn, "PRAGMA integrity_check")
      if not oki then
        problem("integrity_check failed: %s", rows)
      elseif not (#rows == 1 and rows[1].integrity_check == "ok") then
        problem("integrity_check: %s", tostring(rows[1] and rows[1].integrity_check))
      else
        report.tables, report.rows = sqlite_counts(conn)
        if manifest and manifest.tables then
          for _, p in ipairs(compare_counts(manifest.tables, report.tables, "the backup", true)) do problem("%s", p) end
        end
      end
      conn:close()
    end
  elseif report.kind == "postgres" then
    local r = exec({ opts.pg_restore or "pg_restore", "--list", path }, { readonly = true, check = false })
    if r.code ~= 0 then
      problem("pg_restore --list: %s", last_line(r.stderr))
    else
      local in_archive = {}
      for schema, rest in r.stdout:gmatch("\n%d+; %d+ %d+ TABLE DATA (%S+) ([^\n]+)") do
        in_archive[schema .. "." .. rest:gsub(" %S+$", "")] = true
      end
      report.tables, report.rows = manifest and manifest.tables, manifest and manifest.rows
      for name in pairs(manifest and manifest.tables or {}) do
        if not in_archive[name] then problem("table %s has no data in the archive", name) end
      end
      -- the table of contents is at the start: a truncated or damaged
      -- archive still lists, so read all of it (the data goes nowhere)
      if #report.problems == 0 then
        local full = exec({ opts.pg_restore or "pg_restore", "--file=/dev/null", path },
                          { readonly = true, check = false, timeout = opts.timeout or 3600 })
        if full.code ~= 0 then problem("pg_restore cannot read the archive: %s", last_line(full.stderr)) end
      end
    end
  else
    problem("neither a SQLite database nor a pg_dump custom-format archive")
  end
  report.ok = #report.problems == 0
  if not report.ok and opts.check ~= false then
    error("db.verify " .. path .. ": " .. table.concat(report.problems, "; "), 2)
  end
  return report
end)

-- ---- db.restore ---------------------------------------------------------------

-- db.restore(backup_path, dest_url [, { manifest, timeout, check = true }]) -> report
-- Verifies the backup first (a corrupt one is refused before anything is
-- touched), restores it (SQLite: online backup API into the destination;
-- PostgreSQL: pg_restore --clean --if-exists in one transaction, stopping at
-- the first error), then compares the destination's row counts with the
-- manifest.
db.restore = signature.wrap("db.restore", "backup:str dest:str opts?:opts",
                            "manifest timeout check pg_restore", function(backup, dest, opts)
  opts = opts or {}
  local t0 = now()
  local v = db.verify(backup, { manifest = opts.manifest, pg_restore = opts.pg_restore })
  local kind = kind_of_url(dest)
  if kind ~= v.kind then
    error(string.format("db.restore: %s is a %s backup, %s is a %s database", backup,
                        tostring(v.kind), dest, kind), 2)
  end
  local report = { kind = kind, path = backup, target = dest, sha256 = v.sha256, size = v.size,
                   backup_verified = true }
  if kind == "sqlite" then
    local src = db.open("sqlite:" .. backup .. "?mode=ro")
    local ok, r = pcall(src.backup_to, src, sqlite_path(dest), { timeout = opts.timeout })
    src:close()
    if not ok then error(r, 0) end
    report.dry_run = r.dry_run
  else
    local info = db.pg_url(dest)
    local r = exec(argv({ opts.pg_restore or "pg_restore", "--clean", "--if-exists", "--no-owner",
                          "--single-transaction", "--exit-on-error" }, pg_target(info), { backup }),
                   { env = pg_tool_env(info), timeout = opts.timeout or 3600 })
    report.dry_run = r.dry_run
  end
  if report.dry_run then
    report.duration = now() - t0
    return report
  end
  local conn = db.open(dest)
  report.tables, report.rows = counts_of(kind, conn)
  conn:close()
  report.problems = setmetatable(v.tables and compare_counts(v.tables, report.tables, "the restored database") or {}, json.array_mt)
  report.ok = #report.problems == 0
  report.duration = now() - t0
  if not report.ok and opts.check ~= false then
    error("db.restore " .. backup .. " -> " .. dest .. ": " .. table.concat(report.problems, "; "), 2)
  end
  return report
end)
