-- docker's Lua half (src/primitives/docker.c holds the rows and their
-- describe hooks): the Docker Engine API client, the docker.compose object,
-- and what a scenario mock or a recording makes of a docker call.
--
-- The client speaks the Engine API over the daemon's socket through the
-- un-funnelled HTTP transfer (the funnel has already described, classified
-- and will record the docker action, so the requests under it are not
-- actions of their own).  It yields inside raw(); the C entry calls it with
-- lua_pcallk.  raw, json.encode/decode and note are handed over by the C
-- side (rt.docker_client), taken when the module opened, so a runbook cannot
-- shadow them.
--
-- mutates: :restart :up :down :pull :stop
local rt = ...
local signature = require "signature"

local sfmt, sbyte, ssub, unpack, concat = string.format, string.byte, string.sub, string.unpack, table.concat
local ostime, floor = os.time, math.floor

-- ---- the Engine API client ---------------------------------------------------

local raw, encode, decode, note -- set by rt.docker_client

local MAX_API, MIN_API = "1.47", "1.24"
local versions = {} -- host -> the API version negotiated with it

local function urlenc(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return sfmt("%%%02X", sbyte(c)) end))
end

local function query(t)
  local out = {}
  for _, kv in ipairs(t) do
    if kv[2] ~= nil then out[#out + 1] = urlenc(kv[1]) .. "=" .. urlenc(kv[2]) end
  end
  return #out > 0 and ("?" .. concat(out, "&")) or ""
end

local function vnum(v)
  local a, b = tostring(v):match("^(%d+)%.(%d+)")
  return a and (tonumber(a) * 1000 + tonumber(b)) or 0
end

local function endpoint(host)
  if ssub(host, 1, 7) == "unix://" then return "http://localhost", ssub(host, 8) end
  if ssub(host, 1, 1) == "/" then return "http://localhost", host end
  if ssub(host, 1, 6) == "tcp://" then return "http://" .. ssub(host, 7):gsub("/+$", ""), nil end
  if ssub(host, 1, 7) == "http://" then return (host:gsub("/+$", "")), nil end
  error('docker: unsupported Docker host "' .. host .. '" (use unix:///path or tcp://host:port)', 0)
end

-- one request; transport failures become "cannot reach Docker at HOST: cause"
local function transfer(ctx, method, path, body)
  local url = ctx.base .. (ctx.api and ("/v" .. ctx.api) or "") .. path
  local req = { method = method, url = url, unix_socket = ctx.sock, redirects = 0 }
  if body then
    req.body = body
    req.headers = { ["Content-Type"] = "application/json" }
  end
  local ok, resp = pcall(raw, req)
  if not ok then
    if type(resp) ~= "string" then error(resp, 0) end -- not a transport error
    local msg = tostring(resp)
    local i = msg:find(url, 1, true)
    if i and ssub(msg, i + #url, i + #url + 1) == ": " then msg = ssub(msg, i + #url + 2) end
    error("cannot reach Docker at " .. ctx.host .. ": " .. msg, 0)
  end
  return resp
end

local function connect(host)
  local base, sock = endpoint(host)
  local ctx = { host = host, base = base, sock = sock }
  local v = versions[host]
  if not v then
    local r = transfer(ctx, "GET", "/_ping")
    v = r.headers and r.headers["api-version"]
    if not v then
      local r2 = transfer(ctx, "GET", "/version")
      local ok, d = pcall(decode, r2.body or "")
      v = ok and type(d) == "table" and d.ApiVersion or nil
      if not v then
        error("cannot reach Docker at " .. host .. ": /_ping answered HTTP " .. tostring(r.status) ..
              " without an API version", 0)
      end
    end
    if vnum(v) < vnum(MIN_API) then
      error("Docker at " .. host .. " speaks API " .. v .. ", older than " .. MIN_API, 0)
    end
    if vnum(v) > vnum(MAX_API) then v = MAX_API end
    versions[host] = v
  end
  ctx.api = v
  return ctx
end

local function daemon_message(resp)
  local ok, d = pcall(decode, resp.body or "")
  local m
  if ok and type(d) == "table" and type(d.message) == "string" then
    m = d.message
  else
    m = (resp.body or ""):match("^[^\r\n]*")
  end
  if m == nil or m == "" then m = "HTTP " .. tostring(resp.status) end
  return (m:gsub("^No such", "no such"))
end

local function check(what, resp, extra_ok)
  local s = resp.status or 0
  if (s >= 200 and s < 300) or (extra_ok and extra_ok[s]) then return resp end
  note(resp)
  error(what .. ": " .. daemon_message(resp), 0)
end

local function json_of(what, resp)
  if resp.status == 204 or resp.body == nil or resp.body == "" then return {} end
  local ok, d = pcall(decode, resp.body)
  if not ok then error(what .. ": the daemon answered invalid JSON: " .. tostring(d), 0) end
  return d
end

local function filters_json(f)
  if f == nil then return nil end
  if type(f) ~= "table" then error("docker.ps: filters must be a table", 0) end
  local out, any = {}, false
  for k, v in pairs(f) do
    local list = {}
    if type(v) == "table" then
      if #v > 0 then
        for _, x in ipairs(v) do list[#list + 1] = tostring(x) end
      else
        for kk, vv in pairs(v) do
          list[#list + 1] = vv == true and tostring(kk) or (tostring(kk) .. "=" .. tostring(vv))
        end
        table.sort(list)
      end
    else
      list[1] = tostring(v)
    end
    if #list > 0 then out[tostring(k)] = list; any = true end
  end
  return any and encode(out) or nil
end

local UNITS = { b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 }
local function bytes(v, what)
  if type(v) == "number" then return floor(v) end
  local n, u = tostring(v):lower():match("^%s*([%d%.]+)%s*([bkmgt]?)b?%s*$")
  if not n or not tonumber(n) then
    error(what .. ': cannot read a size from "' .. tostring(v) .. '" (say 512m, 2g)', 0)
  end
  return floor(tonumber(n) * UNITS[u ~= "" and u or "b"])
end

local function since_ts(v)
  if v == nil then return nil end
  if type(v) == "number" then return sfmt("%d", floor(v)) end
  local n, u = tostring(v):match("^(%d+)([smhd])$")
  if n then
    local mult = ({ s = 1, m = 60, h = 3600, d = 86400 })[u]
    return sfmt("%d", ostime() - tonumber(n) * mult)
  end
  return tostring(v)
end

local function demux(body, multiplexed)
  local out, err = {}, {}
  if not multiplexed then return body, "" end
  local pos, n = 1, #body
  while pos + 7 <= n do
    local kind, size = unpack(">B xxx I4", body, pos)
    local chunk = ssub(body, pos + 8, pos + 7 + size)
    if kind == 2 then err[#err + 1] = chunk else out[#out + 1] = chunk end
    pos = pos + 8 + size
  end
  return concat(out), concat(err)
end

local function num(x) return tonumber(x) or 0 end

-- CPU % and memory the way `docker stats --no-stream` shows them
local function stats_of(name, s)
  local cpu, pre = s.cpu_stats or {}, s.precpu_stats or {}
  local cu, pu = cpu.cpu_usage or {}, pre.cpu_usage or {}
  local cpu_delta = num(cu.total_usage) - num(pu.total_usage)
  local sys_delta = num(cpu.system_cpu_usage) - num(pre.system_cpu_usage)
  local online = num(cpu.online_cpus)
  if online == 0 and type(cu.percpu_usage) == "table" then online = #cu.percpu_usage end
  local cpu_pct = 0.0
  if sys_delta > 0 and cpu_delta > 0 then cpu_pct = cpu_delta / sys_delta * online * 100.0 end
  local mem = s.memory_stats or {}
  local st = mem.stats or {}
  local usage = num(mem.usage)
  local cache = st.total_inactive_file
  if cache == nil then cache = st.inactive_file end
  if cache ~= nil and num(cache) < usage then usage = usage - num(cache) end
  local limit = num(mem.limit)
  local mem_pct = limit > 0 and (usage / limit * 100.0) or 0.0
  local rx, tx = 0, 0
  for _, n in pairs(s.networks or {}) do
    rx = rx + num(n.rx_bytes)
    tx = tx + num(n.tx_bytes)
  end
  local br, bw = 0, 0
  for _, e in ipairs((s.blkio_stats or {}).io_service_bytes_recursive or {}) do
    local op = tostring(e.op):lower()
    if op == "read" then br = br + num(e.value) elseif op == "write" then bw = bw + num(e.value) end
  end
  return {
    name = s.name and tostring(s.name):gsub("^/", "") or name, id = s.id,
    cpu_percent = cpu_pct, memory_usage = usage, memory_limit = limit, memory_percent = mem_pct,
    net_rx = rx, net_tx = tx, block_read = br, block_write = bw,
    pids = num((s.pids_stats or {}).current), online_cpus = online, raw = s,
  }
end

local function add_names(c)
  if type(c) ~= "table" then return c end
  c.id = c.Id
  if type(c.Names) == "table" and c.Names[1] then c.name = tostring(c.Names[1]):gsub("^/", "") end
  if type(c.Labels) == "table" then
    c.project = c.Labels["com.docker.compose.project"]
    c.service = c.Labels["com.docker.compose.service"]
  end
  return c
end

local function cpath(name, rest) return "/containers/" .. urlenc(name) .. rest end

local V = {}

function V.ps(ctx, opts)
  opts = opts or {}
  local q = { { "all", opts.all and "1" or nil }, { "filters", filters_json(opts.filters) },
              { "limit", opts.limit and sfmt("%d", opts.limit) or nil } }
  local what = "docker ps"
  local list = json_of(what, check(what, transfer(ctx, "GET", "/containers/json" .. query(q))))
  for _, c in ipairs(list) do add_names(c) end
  return list
end

function V.inspect(ctx, name)
  local what = "docker inspect " .. name
  local d = json_of(what, check(what, transfer(ctx, "GET", cpath(name, "/json"))))
  if type(d) == "table" then
    d.id = d.Id
    if type(d.Name) == "string" then d.name = d.Name:gsub("^/", "") end
  end
  return d
end

function V.logs(ctx, name, opts)
  opts = opts or {}
  local tail = opts.tail
  if tail ~= nil and tail ~= "all" then tail = sfmt("%d", tail) end
  local q = { { "stdout", "1" }, { "stderr", "1" }, { "tail", tail },
              { "since", since_ts(opts.since) }, { "until", since_ts(opts["until"]) },
              { "timestamps", opts.timestamps and "1" or nil } }
  local what = "docker logs " .. name
  local r = check(what, transfer(ctx, "GET", cpath(name, "/logs" .. query(q))))
  local ct = r.headers and r.headers["content-type"] or ""
  local body = r.body or ""
  local mux
  if ct:find("multiplexed", 1, true) then mux = true
  elseif ct:find("raw-stream", 1, true) then
    -- before API 1.42 every stream says raw-stream: look at the bytes
    local b = sbyte(body, 1)
    mux = #body >= 8 and (b == 0 or b == 1 or b == 2) and ssub(body, 2, 4) == "\0\0\0"
  else
    local b = sbyte(body, 1)
    mux = #body >= 8 and (b == 0 or b == 1 or b == 2) and ssub(body, 2, 4) == "\0\0\0"
  end
  local out, err = demux(body, mux)
  return { stdout = out, stderr = err, name = name }
end

function V.stats(ctx, name)
  local what = "docker stats " .. name
  local s = json_of(what, check(what, transfer(ctx, "GET", cpath(name, "/stats?stream=false"))))
  return stats_of(name, s)
end

function V.version(ctx)
  local what = "docker version"
  local d = json_of(what, check(what, transfer(ctx, "GET", "/version")))
  if type(d) == "table" then d.negotiated_api = ctx.api end
  return d
end

function V.info(ctx)
  local what = "docker info"
  return json_of(what, check(what, transfer(ctx, "GET", "/info")))
end

function V.images(ctx, opts)
  opts = opts or {}
  local q = { { "all", opts.all and "1" or nil }, { "filters", filters_json(opts.filters) } }
  local what = "docker images"
  return json_of(what, check(what, transfer(ctx, "GET", "/images/json" .. query(q))))
end

local NOT_MODIFIED = { [304] = true }
local function lifecycle(verb, ctx, name, q)
  local what = "docker " .. verb .. " " .. name
  local r = check(what, transfer(ctx, "POST", cpath(name, "/" .. verb .. query(q))), NOT_MODIFIED)
  return { ok = true, name = name, status = r.status, changed = r.status ~= 304 }
end

function V.restart(ctx, name, opts)
  opts = opts or {}
  return lifecycle("restart", ctx, name, { { "t", opts.timeout and sfmt("%d", opts.timeout) } })
end
function V.start(ctx, name)
  return lifecycle("start", ctx, name, {})
end
function V.stop(ctx, name, opts)
  opts = opts or {}
  return lifecycle("stop", ctx, name, { { "t", opts.timeout and sfmt("%d", opts.timeout) } })
end
function V.kill(ctx, name, opts)
  opts = opts or {}
  return lifecycle("kill", ctx, name, { { "signal", opts.signal } })
end

-- DELETE /containers/NAME: 204, or 409 for a running container without force
function V.rm(ctx, name, opts)
  opts = opts or {}
  local q = { { "force", opts.force and "1" or nil }, { "v", opts.volumes and "1" or nil } }
  local r = check("docker rm " .. name, transfer(ctx, "DELETE", cpath(name, query(q))))
  return { ok = true, name = name, status = r.status }
end

function V.update(ctx, name, opts)
  opts = opts or {}
  local what = "docker update " .. name
  local body = {}
  if opts.memory ~= nil then body.Memory = bytes(opts.memory, what) end
  if opts.memory_swap ~= nil then
    body.MemorySwap = opts.memory_swap == -1 and -1 or bytes(opts.memory_swap, what)
  end
  if opts.memory_reservation ~= nil then body.MemoryReservation = bytes(opts.memory_reservation, what) end
  if opts.cpus ~= nil then
    local cpus = tonumber(opts.cpus)
    if not cpus then error(what .. ': cpus must be a number, got "' .. tostring(opts.cpus) .. '"', 0) end
    body.NanoCpus = floor(cpus * 1e9 + 0.5)
  end
  if opts.cpu_shares ~= nil then body.CpuShares = floor(opts.cpu_shares) end
  if opts.pids_limit ~= nil then body.PidsLimit = floor(opts.pids_limit) end
  if opts.restart ~= nil then body.RestartPolicy = { Name = tostring(opts.restart) } end
  if next(body) == nil then
    error(what .. ": nothing to update (give memory, cpus, memory_swap, cpu_shares, pids_limit or restart)", 0)
  end
  local r = check(what, transfer(ctx, "POST", cpath(name, "/update"), encode(body)))
  local d = json_of(what, r)
  return { ok = true, name = name, status = r.status, warnings = type(d) == "table" and d.Warnings or nil }
end

function V.prune(ctx, opts)
  opts = opts or {}
  local res, total = { ok = true }, 0
  for _, kind in ipairs({ "containers", "images", "volumes" }) do
    if opts[kind] then
      local what = "docker prune " .. kind
      local q = {}
      if kind == "images" and opts[kind] == "all" then q = { { "filters", encode({ dangling = { "false" } }) } } end
      local d = json_of(what, check(what, transfer(ctx, "POST", "/" .. kind .. "/prune" .. query(q))))
      res[kind] = d
      total = total + num(type(d) == "table" and d.SpaceReclaimed)
    end
  end
  res.space_reclaimed = total
  return res
end

-- docker compose, by the labels compose puts on the containers it creates
local PROJECT, SERVICE = "com.docker.compose.project", "com.docker.compose.service"
local function by_service(a, b)
  if (a.service or "") ~= (b.service or "") then return (a.service or "") < (b.service or "") end
  return (a.name or "") < (b.name or "")
end

function V.compose_ps(ctx, project, opts)
  opts = opts or {}
  local labels = { PROJECT .. "=" .. project }
  if opts.service ~= nil then labels[2] = SERVICE .. "=" .. tostring(opts.service) end
  local list = V.ps(ctx, { all = opts.all ~= false, filters = { label = labels } })
  for _, c in ipairs(list) do c.state = c.State; c.status = c.Status end
  table.sort(list, by_service)
  return list
end

function V.compose_restart(ctx, project, service, opts)
  opts = opts or {}
  local what = "docker compose restart " .. service
  local list = V.compose_ps(ctx, project, { service = service })
  if #list == 0 then
    error(what .. ': no container of service "' .. service .. '" in compose project "' .. project .. '"', 0)
  end
  local names = {}
  for _, c in ipairs(list) do
    V.restart(ctx, c.name or c.Id, { timeout = opts.timeout })
    names[#names + 1] = c.name or c.Id
  end
  return { ok = true, project = project, service = service, containers = names }
end

-- rt.docker_client(raw, encode, decode, note) -> call(verb, host, a, b, c):
-- the client, on the transfer and codecs the C side took at start.
function rt.docker_client(raw_, encode_, decode_, note_)
  raw, encode, decode, note = raw_, encode_, decode_, note_
  return function(verb, host, a, b, c)
    local ctx = connect(host)
    return V[verb](ctx, a, b, c)
  end
end

-- ---- docker.compose(file) ----------------------------------------------------
-- ps and restart are the hidden funnelled rows docker.compose_ps and
-- docker.compose_restart (Engine API, by the compose labels); pull, up, down,
-- stop and logs the hidden row docker.compose_cli, performed by the Compose
-- CLI the host has (the docker CLI's plugin, or docker-compose).

local ps, restart, cli_row -- set by rt.docker_compose

local M = {}
M.__index = M
M.__metatable = "docker.compose"
M.__tostring = function(self) return "docker.compose(" .. self.file .. ")" end

local function me(self, verb)
  if type(self) ~= "table" or rawget(self, "file") == nil then
    error("docker.compose: call it as compose:" .. verb .. "(...), with a colon", 3)
  end
  return self
end

local function opts_of(verb, o)
  if o == nil then return {} end
  if type(o) ~= "table" then error("docker.compose:" .. verb .. ": options must be a table", 3) end
  return o
end

-- errors raised under a method point at the runbook line that called it
local function rethrow(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then error((e:gsub("^runbook/docker%.lua:%d+: ", "")), 2) end
  error(e, 0)
end

-- `docker compose -f FILE [-p PROJECT] verb ...`: the compose_cli row
local function cli(self, verb, o, args, svcs)
  local spec = { file = self.file, project = self.project, explicit = self.explicit, verb = verb,
                 args = args, services = svcs }
  local co = { timeout = o.timeout, check = o.check, readonly = o.readonly }
  return rethrow(pcall(cli_row, spec, next(co) and co or nil))
end

-- the service names of a call, appended to args; returns them as a list
local function services(verb, args, list)
  if list == nil then return nil end
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" then error("docker.compose:" .. verb .. ": services must be a list of names", 3) end
  local out = {}
  for _, s in ipairs(list) do
    out[#out + 1] = tostring(s)
    args[#args + 1] = tostring(s)
  end
  return out
end

-- Each method checks its call first (signature.wrap, named "compose:VERB"):
-- a misspelled option raises at the runbook's line before anything runs.
-- ps and restart pass their options on to the hidden rows; the CLI verbs
-- hand on timeout, check and readonly (the funnel honours readonly on both).
local CLI = "timeout check readonly"

M.ps = signature.wrap("compose:ps", "opts?:opts", "all service readonly", function(self, o)
  me(self, "ps")
  return rethrow(pcall(ps, self.project, opts_of("ps", o)))
end)

M.restart = signature.wrap("compose:restart", "service:str opts?:opts", "timeout readonly",
                           function(self, service, o)
  me(self, "restart")
  if type(service) ~= "string" or service == "" then
    error("docker.compose:restart: give the service to restart", 2)
  end
  return rethrow(pcall(restart, self.project, service, opts_of("restart", o)))
end)

M.pull = signature.wrap("compose:pull", "opts?:opts", "services " .. CLI, function(self, o)
  me(self, "pull")
  o = opts_of("pull", o)
  local args = {}
  return cli(self, "pull", o, args, services("pull", args, o.services))
end)

M.up = signature.wrap("compose:up", "opts?:opts",
                      "detach services no_deps build force_recreate wait " .. CLI, function(self, o)
  me(self, "up")
  o = opts_of("up", o)
  local args = {}
  if o.detach ~= false then args[#args + 1] = "-d" end
  if o.no_deps then args[#args + 1] = "--no-deps" end
  if o.build then args[#args + 1] = "--build" end
  if o.force_recreate then args[#args + 1] = "--force-recreate" end
  if o.wait then args[#args + 1] = "--wait" end
  return cli(self, "up", o, args, services("up", args, o.services))
end)

-- stop{ services, stop_timeout, timeout }: stop_timeout is compose's own
-- --timeout, the seconds each container gets to stop before it is killed;
-- timeout, as for every CLI verb, bounds the command
M.stop = signature.wrap("compose:stop", "opts?:opts", "services stop_timeout " .. CLI, function(self, o)
  me(self, "stop")
  o = opts_of("stop", o)
  local args = {}
  if o.stop_timeout ~= nil then args[#args + 1] = "--timeout"; args[#args + 1] = sfmt("%d", o.stop_timeout) end
  return cli(self, "stop", o, args, services("stop", args, o.services))
end)

M.down = signature.wrap("compose:down", "opts?:opts", "volumes remove_orphans " .. CLI, function(self, o)
  me(self, "down")
  o = opts_of("down", o)
  local args = {}
  if o.volumes then args[#args + 1] = "--volumes" end
  if o.remove_orphans then args[#args + 1] = "--remove-orphans" end
  return cli(self, "down", o, args)
end)

M.logs = signature.wrap("compose:logs", "service?:str opts?:opts", "tail since timestamps " .. CLI,
                        function(self, service, o)
  me(self, "logs")
  if type(service) == "table" and o == nil then service, o = nil, service end
  o = opts_of("logs", o)
  local args = { "--no-color" }
  if o.tail ~= nil then args[#args + 1] = "--tail"; args[#args + 1] = tostring(o.tail) end
  if o.since ~= nil then args[#args + 1] = "--since"; args[#args + 1] = tostring(o.since) end
  if o.timestamps then args[#args + 1] = "--timestamps" end
  local svcs = service ~= nil and services("logs", args, service) or nil
  return cli(self, "logs", o, args, svcs)
end)

-- rt.docker_compose(ps, restart, cli) -> new(file, project, explicit): the
-- constructor of compose objects, on the rows the C side took at start.
function rt.docker_compose(ps_, restart_, cli_)
  ps, restart, cli_row = ps_, restart_, cli_
  return function(file, project, explicit)
    return setmetatable({ file = file, project = project, explicit = explicit }, M)
  end
end

-- ---- scenarios and recordings ------------------------------------------------
-- A mock's respond becomes what the call returns live: error raises in the
-- call's words, json is the result as given, result a text result (the
-- stdout of logs), and any other keys are the result's own fields, laid over
-- the shape a live call returns ({ ok = true, name, status = 204, changed }
-- for a restart).

local LIFECYCLE = { restart = true, start = true, stop = true, kill = true }

local STATS = { "cpu_percent", "memory_usage", "memory_limit", "memory_percent", "net_rx", "net_tx",
                "block_read", "block_write", "pids", "online_cpus" }

local function live_shape(fn, f)
  if LIFECYCLE[fn] then return { ok = true, name = f.name, status = 204, changed = true } end
  if fn == "update" then return { ok = true, name = f.name, status = 200 } end
  if fn == "rm" then return { ok = true, name = f.name, status = 204 } end
  if fn == "logs" then return { stdout = "", stderr = "", name = f.name } end
  if fn == "prune" then return { ok = true, space_reclaimed = 0 } end
  if fn == "compose_restart" then
    return { ok = true, project = f.project, service = f.service, containers = {} }
  end
  if fn == "stats" then
    local s = { name = f.name }
    for _, k in ipairs(STATS) do s[k] = 0 end
    return s
  end
  return {}
end

-- What a live call's errors start with: the action without its options
-- ("docker kill web", "docker prune images"; compose ps fails in its ps).
local function what(info)
  local f = info.fields or {}
  if info.fn == "compose_ps" then return "docker ps" end
  if info.fn == "prune" then
    for _, k in ipairs({ "containers", "images", "volumes" }) do
      if f[k] then return "docker prune " .. k end
    end
  end
  return "docker " .. tostring(f.verb or info.fn) .. (f.name and (" " .. f.name) or "")
end

-- rt.docker_answer(respond, info, args...) -> the call's result
function rt.docker_answer(r, info)
  if r.error ~= nil then error(what(info) .. ": " .. tostring(r.error), 0) end
  if r.json ~= nil then return r.json end
  local fn = info.fn
  if r.result ~= nil and fn ~= "logs" then return r.result end
  local out = live_shape(fn, info.fields or {})
  for k, v in pairs(r) do out[k] = v end
  if fn == "logs" and r.result ~= nil then
    out.stdout, out.result = r.result, nil
  end
  if LIFECYCLE[fn] and r.changed == false and r.status == nil then out.status = 304 end
  return out
end

-- The cause of a failed call without the runbook's position and the call's
-- own words ("docker restart web: no such container: web" -> "no such
-- container: web"): answering it again puts the words back.
local function cause(info, err)
  local msg = tostring(err):gsub("^[^\n:]-:%d+: ", "")
  local head, rest = msg:match("^(.-): (.*)$")
  if head == what(info) or (head and head ~= "" and ssub(info.words .. " ", 1, #head + 1) == head .. " ") then
    return rest
  end
  return msg
end

-- rt.docker_recorded(info, err, result) -> the respond a recording writes
function rt.docker_recorded(info, err, res)
  if err ~= nil then return { error = cause(info, err) } end
  if info.fn == "logs" and type(res) == "table" then return { stdout = res.stdout, stderr = res.stderr } end
  if type(res) == "table" then return { json = res } end
  return { result = res }
end
