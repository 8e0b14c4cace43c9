-- kafka: the Kafka CLI tools (kafka-consumer-groups, kafka-topics,
-- kafka-broker-api-versions) through exec, their output parsed.
--
--   local kafka = require "kafka"
--   local lag = kafka.consumer_lag{ bootstrap_server = "kafka:9092", group = "enrichment-service" }
--   log.info("lag %d (%d partitions without an offset)", lag.total, lag.unknown)
--   if not kafka.broker_ready{ bootstrap_server = "kafka:9092" } then ... end
--   kafka.reset_offsets{ bootstrap_server = "kafka:9092", group = "g", topic = "t", to = "latest" }
--
-- Every call takes `command` (the tool: a name, a path, or a list such as
-- { "docker", "exec", "kafka", "kafka-consumer-groups" }), `command_config`
-- (a client properties file, --command-config) and `timeout` (s, default 60).
-- Reads are exec actions with readonly = true (the tools are not on exec's
-- allowlist); reset_offsets is a mutation, so dry-run prints `would: ...`.
--
-- kafka.parse_consumer_groups(text) -> rows { group, topic, partition,
--   current, log_end, lag, consumer_id, host, client_id } of
--   `kafka-consumer-groups --describe` output; "-" is nil (no committed
--   offset, no active member).  Several groups (repeated headers) and the
--   "Consumer group 'x' has no active members." notes are fine; output
--   without a LAG header raises.
-- kafka.consumer_lag{ bootstrap_server, group, command = "kafka-consumer-groups" }
--   -> { total, rows, unknown (partitions whose lag is "-"), partitions,
--        by_topic = { [topic] = lag }, group }
-- kafka.topics{ bootstrap_server, command = "kafka-topics", internal = true }
--   -> sorted topic names (internal = false drops __consumer_offsets & co.)
-- kafka.describe_topic{ bootstrap_server, topic, command = "kafka-topics" }
--   -> { topic, partitions, replication, under_replicated, offline, configs,
--        rows = { { partition, leader, replicas = {ids}, isr = {ids} } } }
-- kafka.broker_ready{ bootstrap_server, command = "kafka-broker-api-versions" }
--   -> true | false, why  (exit 0 = ready; never raises)
-- kafka.reset_offsets{ bootstrap_server, group, topic, to = "latest" |
--   "earliest" | "datetime:2024-01-01T00:00:00.000" | "offset:N" |
--   "shift-by:N" | "duration:PT1H" | "current", preview = false }
--   -> { ok, dry_run, rows (the NEW-OFFSET table, when printed), stdout }.
--   Without topic: --all-topics.  preview = true runs kafka's own --dry-run
--   instead of --execute (a read).
-- mutates: kafka.reset_offsets
local support = require "stdlib_support"
local cause = support.cause
local last_line = support.last_line
local words_of = support.words
local list = support.list
local fail, public = support.errors("kafka")

local M = {}

local function need(fn, o, key)
  local v = o[key]
  if type(v) ~= "string" or v == "" then
    fail("kafka.%s: %s is required (a string), got %s", fn, key, type(v))
  end
  return v
end

local function opts_of(fn, o)
  if type(o) ~= "table" then fail("kafka.%s: expected a table of options, got %s", fn, type(o)) end
  return o
end

-- argv: the command (string or list) then the arguments
local function argv_of(o, default, args)
  local argv = {}
  local cmd = o.command or default
  if type(cmd) == "table" then
    for _, x in ipairs(cmd) do argv[#argv + 1] = tostring(x) end
  else
    argv[1] = tostring(cmd)
  end
  for _, a in ipairs(args) do argv[#argv + 1] = tostring(a) end
  if o.command_config then
    argv[#argv + 1] = "--command-config"
    argv[#argv + 1] = tostring(o.command_config)
  end
  return argv
end

-- run argv; a read unless mutate; raises "kafka.fn: `words`: exit N: why"
local function run(fn, argv, o, mutate)
  local eo = { check = false, timeout = o.timeout or 60 }
  if not mutate then eo.readonly = true end
  local ok, r = pcall(exec, argv, eo)
  if not ok then fail("kafka.%s: %s", fn, cause(r)) end
  if r.code ~= 0 then
    local why = last_line(r.stderr)
    if why == "" then why = last_line(r.stdout) end
    fail("kafka.%s: `%s`: exit %d%s", fn, words_of(argv), r.code, why ~= "" and (": " .. why) or "")
  end
  return r
end

local function num(s)
  if s == nil or s == "-" then return nil end
  return math.tointeger(tonumber(s)) or tonumber(s)
end

local function str(s)
  if s == nil or s == "-" or s == "" then return nil end
  return s
end

local function parse_consumer_groups(text)
  if type(text) ~= "string" then
    fail("kafka.parse_consumer_groups: expected the command's output (a string), got %s", type(text))
  end
  local cols, rows, seen_header = nil, list(), false
  for line in text:gmatch("[^\r\n]+") do
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    local is_header = false
    for _, w in ipairs(words) do
      if w == "LAG" then is_header = true; break end
    end
    if is_header then
      cols = {}
      for j, name in ipairs(words) do cols[name] = j end
      if not (cols.TOPIC and cols.PARTITION) then
        fail("kafka.parse_consumer_groups: the header has LAG but no TOPIC/PARTITION: %s", line)
      end
      seen_header = true
    elseif cols and #words >= cols.LAG and tonumber(words[cols.PARTITION]) then
      local function at(name) return cols[name] and words[cols[name]] or nil end
      rows[#rows + 1] = {
        group = str(at("GROUP")),
        topic = at("TOPIC"),
        partition = num(at("PARTITION")),
        current = num(at("CURRENT-OFFSET")),
        log_end = num(at("LOG-END-OFFSET")),
        lag = num(at("LAG")),
        consumer_id = str(at("CONSUMER-ID")),
        host = str(at("HOST")),
        client_id = str(at("CLIENT-ID")),
      }
    end
  end
  if not seen_header then
    local first = text:match("[^\r\n]*%S[^\r\n]*") or ""
    fail("kafka.parse_consumer_groups: no GROUP/TOPIC/PARTITION/LAG header in the output%s",
         first ~= "" and (": " .. first:sub(1, 200)) or " (it is empty)")
  end
  return rows
end

local function consumer_lag(o)
  o = opts_of("consumer_lag", o)
  local server, group = need("consumer_lag", o, "bootstrap_server"), need("consumer_lag", o, "group")
  local argv = argv_of(o, "kafka-consumer-groups",
                       { "--bootstrap-server", server, "--describe", "--group", group })
  local r = run("consumer_lag", argv, o)
  local ok, rows = pcall(parse_consumer_groups, r.stdout)
  if not ok then
    local why = last_line(r.stderr)
    local msg = type(rows) == "table" and rows.kafka or tostring(rows)
    fail("kafka.consumer_lag: `%s`: %s", words_of(argv),
         why ~= "" and why or msg:gsub("^kafka%.parse_consumer_groups: ", ""))
  end
  local total, unknown, by_topic = 0, 0, {}
  for _, row in ipairs(rows) do
    if row.lag then
      total = total + row.lag
      by_topic[row.topic] = (by_topic[row.topic] or 0) + row.lag
    else
      unknown = unknown + 1
      by_topic[row.topic] = by_topic[row.topic] or 0
    end
  end
  return { total = total, rows = rows, unknown = unknown, partitions = #rows, by_topic = by_topic,
           group = group }
end

local function topics(o)
  o = opts_of("topics", o)
  local server = need("topics", o, "bootstrap_server")
  local argv = argv_of(o, "kafka-topics", { "--bootstrap-server", server, "--list" })
  local r = run("topics", argv, o)
  local out = list()
  for line in r.stdout:gmatch("[^\r\n]+") do
    local name = line:match("^%s*([%w%._%-]+)%s*$")
    if name and not (o.internal == false and name:sub(1, 2) == "__") then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

local function ids(s)
  local out = list()
  for x in tostring(s or ""):gmatch("[^,]+") do out[#out + 1] = num(x) or x end
  return out
end

local function describe_topic(o)
  o = opts_of("describe_topic", o)
  local server, topic = need("describe_topic", o, "bootstrap_server"), need("describe_topic", o, "topic")
  local argv = argv_of(o, "kafka-topics", { "--bootstrap-server", server, "--describe", "--topic", topic })
  local r = run("describe_topic", argv, o)
  local res = { topic = topic, rows = list(), under_replicated = 0, offline = 0, configs = {} }
  local found = false
  for line in r.stdout:gmatch("[^\r\n]+") do
    local f = {}
    for k, v in line:gmatch("([%w]+):%s*([^\t ]*)") do f[k] = v end
    if f.Partition then
      local row = { topic = f.Topic, partition = num(f.Partition), leader = num(f.Leader),
                    replicas = ids(f.Replicas), isr = ids(f.Isr) }
      res.rows[#res.rows + 1] = row
      if #row.isr < #row.replicas then res.under_replicated = res.under_replicated + 1 end
      if row.leader == nil or row.leader == -1 or f.Leader == "none" then
        res.offline = res.offline + 1
      end
    elseif f.PartitionCount then
      found = true
      res.partitions = num(f.PartitionCount)
      res.replication = num(f.ReplicationFactor)
      local configs = line:match("Configs:%s*(.-)%s*$") or ""
      for k, v in configs:gmatch("([^,=%s]+)=([^,]*)") do res.configs[k] = v end
    end
  end
  if not found and #res.rows == 0 then
    local why = last_line(r.stderr)
    if why == "" then why = last_line(r.stdout) end
    fail("kafka.describe_topic: `%s`: no description of topic %s%s", words_of(argv), topic,
         why ~= "" and (": " .. why) or "")
  end
  res.partitions = res.partitions or #res.rows
  return res
end

local function broker_ready(o)
  if type(o) ~= "table" or type(o.bootstrap_server) ~= "string" or o.bootstrap_server == "" then
    fail("kafka.broker_ready: bootstrap_server is required")
  end
  local argv = argv_of(o, "kafka-broker-api-versions", { "--bootstrap-server", o.bootstrap_server })
  local ok, r = pcall(exec, argv, { check = false, readonly = true, timeout = o.timeout or 60 })
  if not ok then return false, cause(r) end
  if r.code == 0 then return true end
  local why = last_line(r.stderr)
  if why == "" then why = last_line(r.stdout) end
  return false, string.format("exit %d%s", r.code, why ~= "" and (": " .. why) or "")
end

local function reset_offsets(o)
  o = opts_of("reset_offsets", o)
  local server, group = need("reset_offsets", o, "bootstrap_server"), need("reset_offsets", o, "group")
  local to = o.to or "latest"
  if type(to) ~= "string" then fail("kafka.reset_offsets: to must be a string, got %s", type(to)) end
  local args = { "--bootstrap-server", server, "--group", group, "--reset-offsets" }
  local kind, value = to:match("^([%a%-]+):(.+)$")
  if to == "latest" or to == "earliest" or to == "current" then
    args[#args + 1] = "--to-" .. to
  elseif kind == "datetime" or kind == "offset" or kind == "duration" then
    args[#args + 1] = "--to-" .. kind
    args[#args + 1] = value
  elseif kind == "shift-by" or kind == "shift" then
    args[#args + 1] = "--shift-by"
    args[#args + 1] = value
  else
    fail("kafka.reset_offsets: to must be latest, earliest, current, datetime:..., offset:N, " ..
         "shift-by:N or duration:..., got %q", to)
  end
  if o.topic ~= nil then
    if type(o.topic) ~= "string" or o.topic == "" then
      fail("kafka.reset_offsets: topic must be a non-empty string")
    end
    args[#args + 1] = "--topic"
    args[#args + 1] = o.topic
  else
    args[#args + 1] = "--all-topics"
  end
  args[#args + 1] = o.preview and "--dry-run" or "--execute"
  local argv = argv_of(o, "kafka-consumer-groups", args)
  local r = run("reset_offsets", argv, o, not o.preview)
  local rows = list()
  local cols
  for line in (r.stdout or ""):gmatch("[^\r\n]+") do
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    if line:find("NEW-OFFSET", 1, true) then
      cols = {}
      for j, name in ipairs(words) do cols[name] = j end
    elseif cols and cols.PARTITION and tonumber(words[cols.PARTITION]) then
      rows[#rows + 1] = { group = words[cols.GROUP], topic = words[cols.TOPIC],
                          partition = num(words[cols.PARTITION]), new_offset = num(words[cols["NEW-OFFSET"]]) }
    end
  end
  return { ok = true, dry_run = r.dry_run == true, preview = o.preview == true, rows = rows,
           stdout = r.stdout }
end

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "kafka.", public)

-- what every call takes (argv_of and run read them)
local COMMON = "bootstrap_server command command_config timeout"

export("parse_consumer_groups", "text:str", "", parse_consumer_groups)
export("consumer_lag", "opts:opts", "group " .. COMMON, consumer_lag)
export("topics", "opts:opts", "internal " .. COMMON, topics)
export("describe_topic", "opts:opts", "topic " .. COMMON, describe_topic)
export("broker_ready", "opts:opts", COMMON, broker_ready)
export("reset_offsets", "opts:opts", "group topic to preview " .. COMMON, reset_offsets)
return M
