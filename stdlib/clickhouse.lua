-- clickhouse: the ClickHouse HTTP interface (port 8123) through http.
--
--   local clickhouse = require "clickhouse"
--   local ch = clickhouse.client("http://localhost:8123",
--                                { user = "default", password = secret("CH_PASSWORD") })
--   check(ch:ping(), "ClickHouse does not answer /ping")
--   for _, d in ipairs(ch:disks()) do log.info("%s %.1f%% used", d.name, d.used_pct) end
--   local rows = ch:query("SELECT count() AS n FROM system.merges")
--   ch:optimize("events", { partition = 202401 })          -- OPTIMIZE TABLE events PARTITION 202401 FINAL
--   if confirm("drop partition 202301 of events?") then ch:drop_partition("events", 202301) end
--
-- clickhouse.client(url [, { user, password, database, timeout = 60 }]) -> ch.
--   The credentials travel as HTTP basic auth (the password is registered
--   as a secret, so it is redacted everywhere), the user alone as the
--   X-ClickHouse-User header; never in the URL.  database is sent as the
--   `database` URL parameter.
-- ch:ping() -> true | false, why   (GET /ping answers "Ok."; never raises)
-- ch:query(sql) -> rows, result   GET /?query=SQL FORMAT JSON (a read; a GET
--   is read-only in ClickHouse itself).  rows: list of tables by column name,
--   numeric columns as Lua numbers (ClickHouse quotes 64-bit integers);
--   result: the whole JSON document (meta, rows, statistics).  A query that
--   already names a FORMAT is sent as it is and its body returned as text.
-- ch:exec(sql) -> { ok, dry_run, body, summary }  POST / with the SQL as the
--   body (a mutation: dry-run prints `would: POST http://...:8123/ SQL`).
-- ch:disks() -> { { name, path, free, total, used, used_pct } } from system.disks
-- ch:partitions(table) -> { { partition, partition_id, parts, rows, bytes } }
--   of the active parts (system.parts), sorted by partition.
-- ch:optimize(table [, { final = true, partition }]) -> OPTIMIZE TABLE t
--   [PARTITION p] [FINAL] (mutation).
-- ch:drop_partition(table, partition) -> ALTER TABLE t DROP PARTITION p
--   (mutation; the runbook confirm()s first).
-- A partition is written as given when it is a number, an expression in
-- parentheses or `ID '...'`, else quoted as a string literal ('2024-01-01').
-- Errors name the server and quote ClickHouse:
--   clickhouse http://ch:8123 query `SELECT ...`: HTTP 404: Code: 60. DB::Exception: ...
-- mutates: :optimize :drop_partition
local support = require "stdlib_support"
local signature = require "signature"
local cause = support.cause
local list = support.list
local fail, public = support.errors("clickhouse")

local M = {}
local Client = {}
Client.__index = Client

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local function short(sql)
  sql = tostring(sql):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #sql > 120 then sql = sql:sub(1, 117) .. "..." end
  return sql
end

-- the first meaningful line of an error body (ClickHouse: "Code: 60. DB::Exception: ...")
local function body_line(body)
  body = tostring(body or "")
  local code = body:match("(Code: %d+%..-)\n") or body:match("(Code: %d+%..*)$")
  local line = code or body:match("[^\r\n]*%S[^\r\n]*") or ""
  line = line:gsub("^%s+", ""):gsub("%s+$", "")
  if #line > 300 then line = line:sub(1, 297) .. "..." end
  return line
end

local function me(self, fn)
  if getmetatable(self) ~= Client then
    fail("clickhouse: call it as ch:%s(...), with a colon", fn)
  end
  return self
end

local function request_opts(self, extra)
  local o = { timeout = self.timeout, check = false }
  if self.user and self.password and self.password ~= "" then
    o.auth = { user = self.user, password = self.password }
  elseif self.user then
    o.headers = { ["X-ClickHouse-User"] = self.user }
  end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function url_for(self, params)
  local q = {}
  for _, kv in ipairs(params) do q[#q + 1] = kv[1] .. "=" .. urlencode(kv[2]) end
  if self.database then q[#q + 1] = "database=" .. urlencode(self.database) end
  return self.url .. "/" .. (#q > 0 and ("?" .. table.concat(q, "&")) or "")
end

local NUMERIC = { "^U?Int%d+$", "^Float%d+$", "^Decimal", "^Nullable%(U?Int%d+%)$",
                  "^Nullable%(Float%d+%)$", "^Nullable%(Decimal", "^LowCardinality%(U?Int" }

local function numeric(t)
  for _, p in ipairs(NUMERIC) do
    if tostring(t):find(p) then return true end
  end
  return false
end

local function query(self, sql)
  me(self, "query")
  if type(sql) ~= "string" or sql:find("^%s*$") then
    fail("clickhouse %s query: expected the SQL text, got %s", self.url, type(sql))
  end
  local q = sql:gsub("[%s;]+$", "")
  local raw = q:upper():find("%sFORMAT%s+[%w_]+$") ~= nil
  if not raw then q = q .. " FORMAT JSON" end
  local url = url_for(self, { { "query", q } })
  local ok, r = pcall(http.get, url, request_opts(self))
  if not ok then fail("clickhouse %s query `%s`: %s", self.url, short(sql), cause(r)) end
  if r.error then fail("clickhouse %s query `%s`: %s", self.url, short(sql), cause(r.error)) end
  if r.status ~= 200 then
    fail("clickhouse %s query `%s`: HTTP %d: %s", self.url, short(sql), r.status, body_line(r.body))
  end
  if raw then return r.body, r end
  local body = r.body or ""
  if body == "" then
    -- nothing to decode (a dry-run shape, or a query with no result set)
    return list(), { data = list(), meta = {}, rows = 0, dry_run = r.dry_run }
  end
  local okd, doc = pcall(json.decode, body)
  if not okd or type(doc) ~= "table" then
    fail("clickhouse %s query `%s`: the answer is not JSON: %s", self.url, short(sql), body_line(body))
  end
  local rows = doc.data or list()
  local nums = {}
  for _, m in ipairs(doc.meta or {}) do
    if m.name and numeric(m.type) then nums[#nums + 1] = m.name end
  end
  if #nums > 0 then
    for _, row in ipairs(rows) do
      if type(row) == "table" then
        for _, k in ipairs(nums) do
          if type(row[k]) == "string" then row[k] = math.tointeger(tonumber(row[k])) or tonumber(row[k]) or row[k] end
        end
      end
    end
  end
  return rows, doc
end

local function exec_sql(self, sql)
  me(self, "exec")
  if type(sql) ~= "string" or sql:find("^%s*$") then
    fail("clickhouse %s exec: expected the SQL text, got %s", self.url, type(sql))
  end
  local url = url_for(self, {})
  local ok, r = pcall(http.post, url, request_opts(self, { body = sql }))
  if not ok then fail("clickhouse %s exec `%s`: %s", self.url, short(sql), cause(r)) end
  if r.error then fail("clickhouse %s exec `%s`: %s", self.url, short(sql), cause(r.error)) end
  if r.status ~= 200 then
    fail("clickhouse %s exec `%s`: HTTP %d: %s", self.url, short(sql), r.status, body_line(r.body))
  end
  local res = { ok = true, dry_run = r.dry_run == true, body = r.body or "" }
  local hs = r.headers and (r.headers["x-clickhouse-summary"] or r.headers["X-ClickHouse-Summary"])
  if type(hs) == "string" and hs ~= "" then
    local okd, s = pcall(json.decode, hs)
    if okd then res.summary = s end
  end
  return res
end

local function ident(fn, t)
  if type(t) ~= "string" or not t:match("^[%w_%.`\"]+$") or t:find("^%.") or t:find("%.$") then
    fail("clickhouse.%s: expected a table name (db.table), got %s", fn,
         type(t) == "string" and string.format("%q", t) or type(t))
  end
  return t
end

local function partition_expr(fn, p)
  if math.type(p) == "integer" then return tostring(p) end
  if type(p) == "number" then fail("clickhouse.%s: partition %s is not a whole number", fn, tostring(p)) end
  if type(p) ~= "string" or p == "" then
    fail("clickhouse.%s: expected a partition (number or string), got %s", fn, type(p))
  end
  if p:match("^%-?%d+$") then return p end
  if p:match("^%b()$") or p:match("^tuple%b()$") or p:match("^ID%s+'[^']*'$") or p:match("^'[^']*'$") then
    return p
  end
  return "'" .. p:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
end

local function disks(self)
  me(self, "disks")
  local rows = query(self, "SELECT name, path, free_space, total_space FROM system.disks ORDER BY name")
  local out = list()
  for _, r in ipairs(rows) do
    local free, total = tonumber(r.free_space) or 0, tonumber(r.total_space) or 0
    local used = total - free
    out[#out + 1] = { name = r.name, path = r.path, free = free, total = total, used = used,
                      used_pct = total > 0 and math.floor(used / total * 1000 + 0.5) / 10 or 0 }
  end
  return out
end

local function partitions(self, t)
  me(self, "partitions")
  t = ident("partitions", t)
  local db, name = t:gsub('[`"]', ""):match("^(.-)%.([^%.]+)$")
  if not db then name = t:gsub('[`"]', "") end
  local where = string.format("table = '%s' AND active", name)
  if db then where = where .. string.format(" AND database = '%s'", db)
  else where = where .. " AND database = currentDatabase()" end
  local rows = query(self, "SELECT partition, partition_id, count() AS parts, sum(rows) AS rows, " ..
                           "sum(bytes_on_disk) AS bytes FROM system.parts WHERE " .. where ..
                           " GROUP BY partition, partition_id ORDER BY partition")
  local out = list()
  for _, r in ipairs(rows) do
    out[#out + 1] = { partition = r.partition, partition_id = r.partition_id, parts = tonumber(r.parts),
                      rows = tonumber(r.rows), bytes = tonumber(r.bytes) }
  end
  return out
end

local function optimize(self, t, opts)
  me(self, "optimize")
  t = ident("optimize", t)
  opts = opts or {}
  if type(opts) ~= "table" then fail("clickhouse.optimize: options must be a table") end
  local sql = "OPTIMIZE TABLE " .. t
  if opts.partition ~= nil then sql = sql .. " PARTITION " .. partition_expr("optimize", opts.partition) end
  if opts.final ~= false then sql = sql .. " FINAL" end
  if opts.deduplicate then sql = sql .. " DEDUPLICATE" end
  return exec_sql(self, sql)
end

local function drop_partition(self, t, p)
  me(self, "drop_partition")
  t = ident("drop_partition", t)
  if p == nil then fail("clickhouse.drop_partition: give the partition to drop") end
  return exec_sql(self, "ALTER TABLE " .. t .. " DROP PARTITION " .. partition_expr("drop_partition", p))
end

local function ping(self)
  me(self, "ping")
  local ok, r = pcall(http.get, self.url .. "/ping", request_opts(self, { timeout = math.min(self.timeout, 10) }))
  if not ok then return false, cause(r) end
  if r.error then return false, cause(r.error) end
  if r.status ~= 200 then return false, string.format("HTTP %d: %s", r.status, body_line(r.body)) end
  if not tostring(r.body or ""):find("^%s*Ok%.") then
    return false, "unexpected answer: " .. body_line(r.body)
  end
  return true
end

-- the client's methods, each checked against its signature first (self
-- left out: a name with ":" is a method's)
local method = support.declarer(Client, "clickhouse:", public)

method("ping", "", "", ping)
method("query", "sql:str", "", query)
method("exec", "sql:str", "", exec_sql)
method("disks", "", "", disks)
method("partitions", "table:str", "", partitions)
method("optimize", "table:str opts?:opts", "final partition deduplicate", optimize)
method("drop_partition", "table:str partition:str", "", drop_partition)
Client.__tostring = function(self) return "clickhouse.client(" .. self.url .. ")" end

M.client = signature.wrap("clickhouse.client", "url:str opts?:opts",
                          "user password database timeout", public(function(url, opts)
  if type(url) ~= "string" or not url:match("^https?://[^/]+") then
    fail("clickhouse.client: expected the HTTP interface URL (http://host:8123), got %s",
         type(url) == "string" and string.format("%q", url) or type(url))
  end
  if url:match("^https?://[^/]*@") then
    fail("clickhouse.client: put credentials in { user, password }, not in the URL")
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail("clickhouse.client: options must be a table") end
  for _, k in ipairs({ "user", "password", "database" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      fail("clickhouse.client: %s must be a string, got %s", k, type(opts[k]))
    end
  end
  return setmetatable({ url = url:gsub("[?#].*$", ""):gsub("/+$", ""), user = opts.user or (opts.password and "default"),
                        password = opts.password, database = opts.database,
                        timeout = opts.timeout or 60 }, Client)
end))
return M
