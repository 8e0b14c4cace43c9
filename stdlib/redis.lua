-- redis: Redis through redis-cli (exec); the password travels in the
-- REDISCLI_AUTH environment variable, never on the command line.
--
--   local redis = require "redis"
--   local r = redis.client{ host = "redis", port = 6379, password = secret("REDIS_PASSWORD") }
--   check(r:ping(), "redis does not answer PING")
--   local mem = r:memory()                       -- INFO memory, numbers as numbers
--   log.info("used %s of %s", mem.used_memory_human, mem.maxmemory_human)
--   local keys = r:scan("session:*", { limit = 10000 })
--   r:del(keys)                                  -- mutation: dry-run shows `would: ...`
--
-- redis.client{ host = "localhost", port = 6379, password, db = 0,
--   command = "redis-cli" (a name, path or list such as { "docker", "exec",
--   "redis", "redis-cli" }), tls = false, timeout = 30 } -> r
-- Every call is one exec of `redis-cli -h HOST -p PORT [-n DB] ARGS...`:
-- reads with readonly = true (redis-cli is not on exec's allowlist),
-- mutations plain, so dry-run prints them and returns success-shaped
-- results.  Scenario mocks match the words, e.g.
--   exec: { command: "redis-cli -h redis -p 6379 INFO memory" }
-- reads:
--   r:ping() -> true | false, why   (never raises)
--   r:info([section]) -> { key = value } (numbers as numbers; dbN, cmdstat_*,
--     errorstat_*, slaveN lines as tables: db0 = { keys, expires, avg_ttl })
--   r:memory() -> r:info("memory")
--   r:dbsize() -> n
--   r:get(key) -> value | nil  (raw mode: an empty string also reads as nil)
--   r:exists(key) -> bool
--   r:ttl(key) -> seconds (-1 no expiry, -2 no such key)
--   r:type(key) -> "string" | "hash" | ... | "none"
--   r:scan(pattern [, { count, limit }]) -> keys (sorted, at most limit; one
--     `redis-cli --scan --pattern P` action, the whole keyspace iterated by
--     redis-cli; count adds --count N, which needs redis-cli >= 7.2)
--   r:slowlog([n = 10]) -> { { id, time, duration_us, args = {...}, client, client_name } }
--   r:config_get(param) -> value (string), all (table param -> value)
--   r:bigkeys() -> the text of `redis-cli --bigkeys`
-- mutations:
--   r:del(keys) -> n deleted (a key or a list; DEL in batches of 500; in
--     dry-run: the number of keys given)
--   r:flushdb([{ async = true }]) -> true
--   r:config_set(param, value) -> true
--   r:command(argv [, { readonly = false, parse = false }]) -> output, result
--     anything else: output is redis-cli's raw text without the final
--     newline; parse = true runs with --no-raw and returns the reply decoded
--     (arrays as lists, integers as numbers, a nil reply as nil, a nil element
--     of an array as json.null) as the first value.
-- Errors name the command and quote redis-cli:
--   redis: redis-cli -h redis -p 6379 INFO memory: exit 1: Could not connect to Redis at redis:6379: Connection refused
-- mutates: :del :flushdb :config_set :command
local support = require "stdlib_support"
local signature = require "signature"
local cause = support.cause
local last_line = support.last_line
local words_of = support.words
local list = support.list
local fail, public = support.errors("redis")

local M = {}
local Client = {}
Client.__index = Client

local function me(self, fn)
  if getmetatable(self) ~= Client then fail("redis: call it as r:%s(...), with a colon", fn) end
  return self
end

-- error replies as redis-cli prints them (raw mode: the bare message)
local ERROR_PREFIXES = { "ERR", "WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM", "READONLY", "LOADING",
                         "BUSY", "NOSCRIPT", "MOVED", "ASK", "OOM", "EXECABORT", "MISCONF",
                         "NOREPLICAS", "MASTERDOWN", "CROSSSLOT", "TRYAGAIN", "CLUSTERDOWN",
                         "NOTBUSY", "UNKILLABLE", "NOPROTO" }

local function error_reply(out)
  local first = (out or ""):match("^[^\n]*") or ""
  local e = first:match("^%(error%) (.*)$")
  if e then return e end
  local word = first:match("^(%u+)[%s]") or first:match("^(%u+)$")
  if word then
    for _, p in ipairs(ERROR_PREFIXES) do
      if word == p then return first end
    end
  end
  return nil
end

local function argv_of(self, args)
  local argv = {}
  for _, x in ipairs(self.cli) do argv[#argv + 1] = x end
  argv[#argv + 1] = "-h"; argv[#argv + 1] = self.host
  argv[#argv + 1] = "-p"; argv[#argv + 1] = tostring(self.port)
  if self.db ~= 0 then argv[#argv + 1] = "-n"; argv[#argv + 1] = tostring(self.db) end
  if self.tls then argv[#argv + 1] = "--tls" end
  for _, a in ipairs(args) do argv[#argv + 1] = tostring(a) end
  return argv
end

-- one redis-cli run; returns the result table; raises "redis: WORDS: why".
-- expect_reply: a command whose first output line may be an error reply
local function run(self, args, readonly, o)
  o = o or {}
  local argv = argv_of(self, args)
  local eo = { check = false, timeout = o.timeout or self.timeout }
  if readonly then eo.readonly = true end
  if self.password then eo.env = { REDISCLI_AUTH = self.password } end
  local ok, r = pcall(exec, argv, eo)
  if not ok then fail("redis: %s", cause(r)) end
  if r.dry_run then return r end
  local out = r.stdout or ""
  if r.code ~= 0 then
    local why = last_line(r.stderr)
    if why == "" then why = last_line(out) end
    fail("redis: %s: exit %d%s", words_of(argv), r.code, why ~= "" and (": " .. why) or "")
  end
  -- redis-cli prints a failed connection on stderr and may still exit 0
  local err_line = last_line(r.stderr)
  if out == "" and err_line:find("Could not connect", 1, true) then
    fail("redis: %s: %s", words_of(argv), err_line)
  end
  if not o.no_error_check then
    local e = error_reply(out)
    if e then
      -- a wrong REDISCLI_AUTH: "AUTH failed: WRONGPASS ..." on stderr, NOAUTH on stdout
      if err_line ~= "" then e = e .. " (" .. err_line .. ")" end
      fail("redis: %s: %s", words_of(argv), e)
    end
  end
  return r
end

local function chomp(s)
  return (tostring(s or ""):gsub("\r?\n$", ""))
end

local function lines(s)
  local out = {}
  for l in tostring(s or ""):gmatch("([^\n]*)\n") do out[#out + 1] = (l:gsub("\r$", "")) end
  local tail = tostring(s or ""):match("([^\n]+)$")
  if tail then out[#out + 1] = (tail:gsub("\r$", "")) end
  return out
end

local function int(fn, s)
  local n = math.tointeger(tonumber(chomp(s)))
  if not n then fail("redis.%s: expected an integer reply, got %q", fn, chomp(s):sub(1, 100)) end
  return n
end

-- ---- reply parsing ------------------------------------------------------

local STRING_KEYS = { redis_git_sha1 = 1, redis_build_id = 1, run_id = 1, master_replid = 1,
                      master_replid2 = 1, os = 1, executable = 1, config_file = 1 }

local function info_value(k, v)
  if (k:match("^db%d+$") or k:match("^cmdstat_") or k:match("^errorstat_") or k:match("^slave%d+$")
      or k:match("^latency_percentiles_usec_")) and v:find("=") then
    local t = {}
    for kk, vv in v:gmatch("([^,=]+)=([^,]*)") do t[kk] = tonumber(vv) or vv end
    return t
  end
  if STRING_KEYS[k] then return v end
  local n = tonumber(v)
  if n and v:match("^%-?[%d%.]+$") then return math.tointeger(n) or n end
  return v
end

local function parse_info(text)
  local t = {}
  for _, line in ipairs(lines(text)) do
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local k, v = line:match("^([^:]+):(.*)$")
      if k then t[k] = info_value(k, v) end
    end
  end
  return t
end

-- redis-cli --no-raw text -> the reply (arrays as lists; nil as nil)
local function unquote(s)
  local body = s:match('^"(.*)"$')
  if not body then return s end
  local map = { n = "\n", r = "\r", t = "\t", a = "\a", b = "\b", ['"'] = '"', ["\\"] = "\\" }
  return (body:gsub("\\(x%x%x)", function(h) return string.char(tonumber(h:sub(2), 16)) end)
              :gsub("\\(.)", function(c) return map[c] or c end))
end

local NIL = {}
local function scalar(v)
  if v == "(nil)" then return NIL end
  if v == "(empty array)" or v == "(empty list or set)" or v == "(empty set)" or v == "(empty hash)" then
    return list()
  end
  local n = v:match("^%(integer%) (%-?%d+)$")
  if n then return math.tointeger(tonumber(n)) end
  local d = v:match("^%(double%) (.+)$")
  if d then return tonumber(d) or d end
  local e = v:match("^%(error%) (.*)$")
  if e then return { error = e } end
  return unquote(v)
end

local function parse_noraw(text)
  local ls = lines(text)
  if #ls == 0 then return nil end
  if not ls[1]:match("^%s*%d+%) ") then
    local v = scalar(ls[1])
    if v == NIL then return nil end
    if #ls > 1 then return table.concat(ls, "\n") end
    return v
  end
  local root = list()
  local stack = { { col = nil, arr = root } }
  for _, line in ipairs(ls) do
    local pos = 1
    local first = true
    while true do
      local s, idx, after = line:match("^(%s*)(%d+)%) ()", pos)
      if not s then break end
      local col = pos + #s + #idx -- the column of ')'
      if first then
        while #stack > 1 and stack[#stack].col ~= nil and stack[#stack].col > col do
          table.remove(stack)
        end
        if stack[#stack].col == nil then stack[#stack].col = col end
        first = false
      end
      local top = stack[#stack]
      if top.col ~= col then
        -- a nested array opened by the marker before it on this line
        local arr = list()
        top.arr[top.pending] = arr
        stack[#stack + 1] = { col = col, arr = arr }
        top = stack[#stack]
      end
      top.pending = tonumber(idx)
      pos = after
      if not line:match("^%s*%d+%) ", pos) then
        local v = scalar(line:sub(pos))
        if v == NIL then v = json.null end -- a hole would break # and ipairs
        top.arr[top.pending] = v
        break
      end
    end
  end
  return root
end

-- ---- the client -------------------------------------------------------------

local function ping(self)
  me(self, "ping")
  local ok, r = pcall(run, self, { "PING" }, true)
  if not ok then
    return false, type(r) == "table" and r.redis or cause(r)
  end
  if r.dry_run then return true end
  if chomp(r.stdout) == "PONG" then return true end
  return false, "unexpected answer: " .. chomp(r.stdout):sub(1, 100)
end

local function info(self, section)
  me(self, "info")
  local args = { "INFO" }
  if section ~= nil then args[2] = tostring(section) end
  local r = run(self, args, true)
  return parse_info(r.stdout)
end

local function dbsize(self)
  me(self, "dbsize")
  return int("dbsize", run(self, { "DBSIZE" }, true).stdout)
end

local function key_arg(fn, key)
  if type(key) ~= "string" and type(key) ~= "number" then
    fail("redis.%s: expected a key, got %s", fn, type(key))
  end
  return tostring(key)
end

local function get(self, key)
  me(self, "get")
  local r = run(self, { "GET", key_arg("get", key) }, true, { no_error_check = false })
  local v = chomp(r.stdout)
  if v == "" then return nil end
  return v
end

local function exists(self, key)
  me(self, "exists")
  return int("exists", run(self, { "EXISTS", key_arg("exists", key) }, true).stdout) > 0
end

local function ttl(self, key)
  me(self, "ttl")
  return int("ttl", run(self, { "TTL", key_arg("ttl", key) }, true).stdout)
end

local function key_type(self, key)
  me(self, "type")
  return chomp(run(self, { "TYPE", key_arg("type", key) }, true).stdout)
end

local function scan(self, pattern, opts)
  me(self, "scan")
  if type(pattern) == "table" and opts == nil then pattern, opts = nil, pattern end -- r:scan{ limit }
  pattern = pattern or "*"
  if type(pattern) ~= "string" then fail("redis.scan: the pattern must be a string, got %s", type(pattern)) end
  opts = opts or {}
  local args = { "--scan", "--pattern", pattern }
  -- --count exists from redis-cli 7.2 on; only when asked for
  if opts.count then args[#args + 1] = "--count"; args[#args + 1] = tostring(opts.count) end
  local r = run(self, args, true, { timeout = opts.timeout })
  local keys, seen = list(), {}
  for _, k in ipairs(lines(r.stdout)) do
    if k ~= "" and not seen[k] then seen[k] = true; keys[#keys + 1] = k end
  end
  table.sort(keys)
  if opts.limit and #keys > opts.limit then
    for i = #keys, opts.limit + 1, -1 do keys[i] = nil end
  end
  return keys
end

local function slowlog(self, n)
  me(self, "slowlog")
  n = n or 10
  local r = run(self, { "--no-raw", "SLOWLOG", "GET", tostring(n) }, true)
  local reply = parse_noraw(r.stdout) or {}
  local out = list()
  for _, e in ipairs(type(reply) == "table" and reply or {}) do
    if type(e) == "table" then
      out[#out + 1] = { id = e[1], time = e[2], duration_us = e[3],
                        args = type(e[4]) == "table" and e[4] or list(), client = e[5], client_name = e[6] }
    end
  end
  return out
end

local function config_get(self, param)
  me(self, "config_get")
  if type(param) ~= "string" or param == "" then fail("redis.config_get: give the parameter name") end
  local r = run(self, { "CONFIG", "GET", param }, true)
  local ls = lines(r.stdout)
  local all = {}
  for i = 1, #ls - 1, 2 do all[ls[i]] = ls[i + 1] end
  local v = all[param]
  if v == nil then
    for k, x in pairs(all) do if k:lower() == param:lower() then v = x end end
  end
  return v, all
end

local function bigkeys(self, opts)
  me(self, "bigkeys")
  opts = opts or {}
  return run(self, { "--bigkeys" }, true, { timeout = opts.timeout or 600, no_error_check = true }).stdout
end

local function del(self, keys)
  me(self, "del")
  if type(keys) == "string" or type(keys) == "number" then keys = { tostring(keys) } end
  if type(keys) ~= "table" then fail("redis.del: expected a key or a list of keys, got %s", type(keys)) end
  local n, batch, dry = 0, {}, false
  local function flush()
    if #batch == 0 then return end
    local args = { "DEL" }
    for _, k in ipairs(batch) do args[#args + 1] = k end
    local r = run(self, args, false)
    if r.dry_run then
      dry = true
      n = n + #batch
    else
      n = n + int("del", r.stdout)
    end
    batch = {}
  end
  for i, k in ipairs(keys) do
    batch[#batch + 1] = key_arg("del", k)
    if #batch >= 500 then flush() end
  end
  flush()
  return n, dry
end

local function flushdb(self, opts)
  me(self, "flushdb")
  opts = opts or {}
  local args = { "FLUSHDB" }
  if opts.async then args[2] = "ASYNC" end
  local r = run(self, args, false)
  if not r.dry_run and chomp(r.stdout) ~= "OK" then
    fail("redis: FLUSHDB answered %q", chomp(r.stdout):sub(1, 100))
  end
  return true
end

local function config_set(self, param, value)
  me(self, "config_set")
  if type(param) ~= "string" or param == "" then fail("redis.config_set: give the parameter name") end
  if value == nil then fail("redis.config_set: give the value for %s", param) end
  local r = run(self, { "CONFIG", "SET", param, tostring(value) }, false)
  if not r.dry_run and chomp(r.stdout) ~= "OK" then
    fail("redis: CONFIG SET %s answered %q", param, chomp(r.stdout):sub(1, 100))
  end
  return true
end

local function command(self, argv, opts)
  me(self, "command")
  if type(argv) == "string" then
    local t = {}
    for w in argv:gmatch("%S+") do t[#t + 1] = w end
    argv = t
  end
  if type(argv) ~= "table" or #argv == 0 then
    fail("redis.command: expected the command as a list of words, got %s", type(argv))
  end
  opts = opts or {}
  local args = {}
  if opts.parse then args[1] = "--no-raw" end
  for _, a in ipairs(argv) do args[#args + 1] = tostring(a) end
  local r = run(self, args, opts.readonly == true, { timeout = opts.timeout })
  if opts.parse then return parse_noraw(r.stdout), r end
  return chomp(r.stdout), r
end

-- the client's methods, each checked against its signature first (self
-- left out: a name with ":" is a method's)
local method = support.declarer(Client, "redis:", public)

method("ping", "", "", ping)
method("info", "section?:str", "", info)
method("memory", "", "", function(self) me(self, "memory"); return info(self, "memory") end)
method("dbsize", "", "", dbsize)
method("get", "key:str", "", get)
method("exists", "key:str", "", exists)
method("ttl", "key:str", "", ttl)
method("type", "key:str", "", key_type)
method("scan", "pattern?:str opts?:opts", "count limit timeout", scan)
method("slowlog", "n?:int", "", slowlog)
method("config_get", "param:str", "", config_get)
method("bigkeys", "opts?:opts", "timeout", bigkeys)
method("del", "keys:str|table", "", del)
method("flushdb", "opts?:opts", "async", flushdb)
method("config_set", "param:str value", "", config_set)
method("command", "argv:str|table opts?:opts", "readonly parse timeout", command)
Client.__tostring = function(self) return string.format("redis.client(%s:%d)", self.host, self.port) end

M.client = signature.wrap("redis.client", "opts?:opts",
                          "host port password db command tls timeout", public(function(o)
  o = o or {}
  if type(o) ~= "table" then fail("redis.client: expected a table of options, got %s", type(o)) end
  local host = o.host or "localhost"
  if type(host) ~= "string" or host == "" then fail("redis.client: host must be a non-empty string") end
  local port = math.tointeger(tonumber(o.port or 6379))
  if not port or port < 1 or port > 65535 then fail("redis.client: bad port %s", tostring(o.port)) end
  local db = math.tointeger(tonumber(o.db or 0))
  if not db or db < 0 then fail("redis.client: bad db %s", tostring(o.db)) end
  if o.password ~= nil and type(o.password) ~= "string" then
    fail("redis.client: password must be a string (secret(...)), got %s", type(o.password))
  end
  local cmd = o.command or "redis-cli"
  if type(cmd) == "string" then cmd = { cmd } end
  if type(cmd) ~= "table" or #cmd == 0 then fail("redis.client: command must be a string or a list") end
  return setmetatable({ host = host, port = port, db = db, password = o.password ~= "" and o.password or nil,
                        cli = cmd, tls = o.tls == true, timeout = o.timeout or 30 }, Client)
end))

M.parse_info = signature.wrap("redis.parse_info", "text:str", "", parse_info)
M.parse_reply = signature.wrap("redis.parse_reply", "text:str", "", parse_noraw)
return M
