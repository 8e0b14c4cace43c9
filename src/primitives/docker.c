/*
 * The docker module: the Docker Engine API spoken directly over its socket
 * (SPEC §3, §4), never by parsing `docker` CLI text.
 *
 *   reads   ps{ all, filters }, inspect(name), logs(name, { tail, since,
 *           until, timestamps }), stats(name), version(), info(), images()
 *   writes  restart/start/stop(name, { timeout }), kill(name, { signal }),
 *           update(name, { memory = "2g", cpus = 1.0, ... }),
 *           prune{ containers, images, volumes }
 *   compose docker.compose(file [, { project }]) -> an object:
 *           :ps{ all = true, service } and :restart(service, { timeout })
 *           by the Engine API and the compose labels
 *           (com.docker.compose.project/service), as docker actions
 *           (`docker compose restart calendar-api`, mutate); :pull{ services },
 *           :up{ detach = true, services, no_deps, build, force_recreate, wait },
 *           :down{ volumes, remove_orphans }, :logs(service, { tail, since })
 *           run `docker compose -f FILE [-p PROJECT] ...` through the global
 *           (funnelled) exec, so they are exec actions classified by exec's
 *           allowlist.  The project is { project }, else COMPOSE_PROJECT_NAME,
 *           else the file's top-level `name:`, else its directory's name,
 *           normalised as docker compose does; `-p` is passed to the CLI
 *           only when the project was given.
 *
 * The daemon is found as DOCKER_HOST (unix:///path or tcp://host:port), else
 * runbook.yaml `docker: { host: ... }` (the --env environment first), else
 * unix:///var/run/docker.sock.  The API version is negotiated once per host
 * with GET /_ping (its Api-Version header; /version as a fallback), capped at
 * the newest version this module was written against, and every request is
 * then sent to /v<version>/....
 *
 * The requests go out through registry["runbook.http_raw"] (mod_http.c), the
 * un-funnelled transfer with `unix_socket`: the funnel has already described,
 * classified, confirmed and will record the docker action, so the HTTP
 * requests under it are not actions of their own.  The C part is the rb_fn
 * rows and their describe hooks (verb, target and the operator's words,
 * `docker update calendar-api --memory 2g --cpus 1`); the request building
 * and the decoding (the 8-byte-header multiplexed log stream, the CPU and
 * memory figures of `docker stats --no-stream`) are a Lua chunk compiled
 * into the binary and loaded when the module opens, with the helpers it
 * needs (string, os.time, json.encode/decode, raw) captured at that moment
 * so a runbook cannot shadow them.  The chunk yields inside raw(); the C
 * entry calls it with lua_pcallk and a continuation.
 *
 * Errors name the action and quote the daemon (`docker restart calendar-api:
 * no such container: calendar-api`, after noting the response for the audit
 * record); a daemon that cannot be reached gives one line: `cannot reach
 * Docker at unix:///var/run/docker.sock: <cause>`.
 */
#include "config.h"
#include "engine.h"
#include "primitives.h"
#include "runbook/runbook.h"

#include <ctype.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPL_KEY     "runbook.docker.impl"
#define RAW_KEY      "runbook.http_raw"
#define DEFAULT_HOST "unix:///var/run/docker.sock"

/* The Lua half: `return function(verb, host, a, b)`, given (raw, encode,
 * decode, note) as its chunk arguments. */
static const char IMPL[] =
    "local raw, encode, decode, note = ...\n"
    "local sfmt, sbyte, ssub, unpack, concat = string.format, string.byte, string.sub, "
    "string.unpack, table.concat\n"
    "local ostime, floor = os.time, math.floor\n"
    "local MAX_API, MIN_API = '1.47', '1.24'\n"
    "local versions = {}\n"
    "\n"
    "local function urlenc(s)\n"
    "  return (tostring(s):gsub('[^%w%-%._~]', function(c) return sfmt('%%%02X', sbyte(c)) end))\n"
    "end\n"
    "\n"
    "local function query(t)\n"
    "  local out = {}\n"
    "  for _, kv in ipairs(t) do\n"
    "    if kv[2] ~= nil then out[#out + 1] = urlenc(kv[1]) .. '=' .. urlenc(kv[2]) end\n"
    "  end\n"
    "  return #out > 0 and ('?' .. concat(out, '&')) or ''\n"
    "end\n"
    "\n"
    "local function vnum(v)\n"
    "  local a, b = tostring(v):match('^(%d+)%.(%d+)')\n"
    "  return a and (tonumber(a) * 1000 + tonumber(b)) or 0\n"
    "end\n"
    "\n"
    "local function endpoint(host)\n"
    "  if ssub(host, 1, 7) == 'unix://' then return 'http://localhost', ssub(host, 8) end\n"
    "  if ssub(host, 1, 1) == '/' then return 'http://localhost', host end\n"
    "  if ssub(host, 1, 6) == 'tcp://' then return 'http://' .. ssub(host, 7):gsub('/+$', ''), nil "
    "end\n"
    "  if ssub(host, 1, 7) == 'http://' then return (host:gsub('/+$', '')), nil end\n"
    "  error('docker: unsupported Docker host \"' .. host .. '\" (use unix:///path or "
    "tcp://host:port)', 0)\n"
    "end\n"
    "\n"
    "-- one request; transport failures become \"cannot reach Docker at HOST: cause\"\n"
    "local function transfer(ctx, method, path, body)\n"
    "  local url = ctx.base .. (ctx.api and ('/v' .. ctx.api) or '') .. path\n"
    "  local req = { method = method, url = url, unix_socket = ctx.sock, redirects = 0 }\n"
    "  if body then\n"
    "    req.body = body\n"
    "    req.headers = { ['Content-Type'] = 'application/json' }\n"
    "  end\n"
    "  local ok, resp = pcall(raw, req)\n"
    "  if not ok then\n"
    "    if type(resp) ~= 'string' then error(resp, 0) end -- not a transport error\n"
    "    local msg = tostring(resp)\n"
    "    local i = msg:find(url, 1, true)\n"
    "    if i and ssub(msg, i + #url, i + #url + 1) == ': ' then msg = ssub(msg, i + #url + 2) "
    "end\n"
    "    error('cannot reach Docker at ' .. ctx.host .. ': ' .. msg, 0)\n"
    "  end\n"
    "  return resp\n"
    "end\n"
    "\n"
    "local function connect(host)\n"
    "  local base, sock = endpoint(host)\n"
    "  local ctx = { host = host, base = base, sock = sock }\n"
    "  local v = versions[host]\n"
    "  if not v then\n"
    "    local r = transfer(ctx, 'GET', '/_ping')\n"
    "    v = r.headers and r.headers['api-version']\n"
    "    if not v then\n"
    "      local r2 = transfer(ctx, 'GET', '/version')\n"
    "      local ok, d = pcall(decode, r2.body or '')\n"
    "      v = ok and type(d) == 'table' and d.ApiVersion or nil\n"
    "      if not v then\n"
    "        error('cannot reach Docker at ' .. host .. ': /_ping answered HTTP ' .. "
    "tostring(r.status) ..\n"
    "              ' without an API version', 0)\n"
    "      end\n"
    "    end\n"
    "    if vnum(v) < vnum(MIN_API) then\n"
    "      error('Docker at ' .. host .. ' speaks API ' .. v .. ', older than ' .. MIN_API, 0)\n"
    "    end\n"
    "    if vnum(v) > vnum(MAX_API) then v = MAX_API end\n"
    "    versions[host] = v\n"
    "  end\n"
    "  ctx.api = v\n"
    "  return ctx\n"
    "end\n"
    "\n"
    "local function daemon_message(resp)\n"
    "  local ok, d = pcall(decode, resp.body or '')\n"
    "  local m\n"
    "  if ok and type(d) == 'table' and type(d.message) == 'string' then\n"
    "    m = d.message\n"
    "  else\n"
    "    m = (resp.body or ''):match('^[^\\r\\n]*')\n"
    "  end\n"
    "  if m == nil or m == '' then m = 'HTTP ' .. tostring(resp.status) end\n"
    "  return (m:gsub('^No such', 'no such'))\n"
    "end\n"
    "\n"
    "local function check(what, resp, extra_ok)\n"
    "  local s = resp.status or 0\n"
    "  if (s >= 200 and s < 300) or (extra_ok and extra_ok[s]) then return resp end\n"
    "  note(resp)\n"
    "  error(what .. ': ' .. daemon_message(resp), 0)\n"
    "end\n"
    "\n"
    "local function json_of(what, resp)\n"
    "  if resp.status == 204 or resp.body == nil or resp.body == '' then return {} end\n"
    "  local ok, d = pcall(decode, resp.body)\n"
    "  if not ok then error(what .. ': the daemon answered invalid JSON: ' .. tostring(d), 0) end\n"
    "  return d\n"
    "end\n"
    "\n"
    "local function filters_json(f)\n"
    "  if f == nil then return nil end\n"
    "  if type(f) ~= 'table' then error('docker.ps: filters must be a table', 0) end\n"
    "  local out, any = {}, false\n"
    "  for k, v in pairs(f) do\n"
    "    local list = {}\n"
    "    if type(v) == 'table' then\n"
    "      if #v > 0 then\n"
    "        for _, x in ipairs(v) do list[#list + 1] = tostring(x) end\n"
    "      else\n"
    "        for kk, vv in pairs(v) do\n"
    "          list[#list + 1] = vv == true and tostring(kk) or (tostring(kk) .. '=' .. "
    "tostring(vv))\n"
    "        end\n"
    "        table.sort(list)\n"
    "      end\n"
    "    else\n"
    "      list[1] = tostring(v)\n"
    "    end\n"
    "    if #list > 0 then out[tostring(k)] = list; any = true end\n"
    "  end\n"
    "  return any and encode(out) or nil\n"
    "end\n"
    "\n"
    "local UNITS = { b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 }\n"
    "local function bytes(v, what)\n"
    "  if type(v) == 'number' then return floor(v) end\n"
    "  local n, u = tostring(v):lower():match('^%s*([%d%.]+)%s*([bkmgt]?)b?%s*$')\n"
    "  if not n or not tonumber(n) then error(what .. ': cannot read a size from \"' .. "
    "tostring(v) .. '\" (say 512m, 2g)', 0) end\n"
    "  return floor(tonumber(n) * UNITS[u ~= '' and u or 'b'])\n"
    "end\n"
    "\n"
    "local function since_ts(v)\n"
    "  if v == nil then return nil end\n"
    "  if type(v) == 'number' then return sfmt('%d', floor(v)) end\n"
    "  local n, u = tostring(v):match('^(%d+)([smhd])$')\n"
    "  if n then\n"
    "    local mult = ({ s = 1, m = 60, h = 3600, d = 86400 })[u]\n"
    "    return sfmt('%d', ostime() - tonumber(n) * mult)\n"
    "  end\n"
    "  return tostring(v)\n"
    "end\n"
    "\n"
    "local function demux(body, multiplexed)\n"
    "  local out, err, lines = {}, {}, {}\n"
    "  if not multiplexed then return body, '' end\n"
    "  local pos, n = 1, #body\n"
    "  while pos + 7 <= n do\n"
    "    local kind, size = unpack('>B xxx I4', body, pos)\n"
    "    local chunk = ssub(body, pos + 8, pos + 7 + size)\n"
    "    if kind == 2 then err[#err + 1] = chunk else out[#out + 1] = chunk end\n"
    "    pos = pos + 8 + size\n"
    "  end\n"
    "  return concat(out), concat(err)\n"
    "end\n"
    "\n"
    "local function num(x) return tonumber(x) or 0 end\n"
    "\n"
    "-- CPU % and memory the way `docker stats --no-stream` shows them\n"
    "local function stats_of(name, s)\n"
    "  local cpu, pre = s.cpu_stats or {}, s.precpu_stats or {}\n"
    "  local cu, pu = cpu.cpu_usage or {}, pre.cpu_usage or {}\n"
    "  local cpu_delta = num(cu.total_usage) - num(pu.total_usage)\n"
    "  local sys_delta = num(cpu.system_cpu_usage) - num(pre.system_cpu_usage)\n"
    "  local online = num(cpu.online_cpus)\n"
    "  if online == 0 and type(cu.percpu_usage) == 'table' then online = #cu.percpu_usage end\n"
    "  local cpu_pct = 0.0\n"
    "  if sys_delta > 0 and cpu_delta > 0 then cpu_pct = cpu_delta / sys_delta * online * 100.0 "
    "end\n"
    "  local mem = s.memory_stats or {}\n"
    "  local st = mem.stats or {}\n"
    "  local usage = num(mem.usage)\n"
    "  local cache = st.total_inactive_file\n"
    "  if cache == nil then cache = st.inactive_file end\n"
    "  if cache ~= nil and num(cache) < usage then usage = usage - num(cache) end\n"
    "  local limit = num(mem.limit)\n"
    "  local mem_pct = limit > 0 and (usage / limit * 100.0) or 0.0\n"
    "  local rx, tx = 0, 0\n"
    "  for _, n in pairs(s.networks or {}) do rx = rx + num(n.rx_bytes); tx = tx + num(n.tx_bytes) "
    "end\n"
    "  local br, bw = 0, 0\n"
    "  for _, e in ipairs((s.blkio_stats or {}).io_service_bytes_recursive or {}) do\n"
    "    local op = tostring(e.op):lower()\n"
    "    if op == 'read' then br = br + num(e.value) elseif op == 'write' then bw = bw + "
    "num(e.value) end\n"
    "  end\n"
    "  return {\n"
    "    name = s.name and tostring(s.name):gsub('^/', '') or name, id = s.id,\n"
    "    cpu_percent = cpu_pct, memory_usage = usage, memory_limit = limit, memory_percent = "
    "mem_pct,\n"
    "    net_rx = rx, net_tx = tx, block_read = br, block_write = bw,\n"
    "    pids = num((s.pids_stats or {}).current), online_cpus = online, raw = s,\n"
    "  }\n"
    "end\n"
    "\n"
    "local function add_names(c)\n"
    "  if type(c) ~= 'table' then return c end\n"
    "  c.id = c.Id\n"
    "  if type(c.Names) == 'table' and c.Names[1] then c.name = tostring(c.Names[1]):gsub('^/', "
    "'') end\n"
    "  if type(c.Labels) == 'table' then\n"
    "    c.project = c.Labels['com.docker.compose.project']\n"
    "    c.service = c.Labels['com.docker.compose.service']\n"
    "  end\n"
    "  return c\n"
    "end\n"
    "\n"
    "local function cpath(name, rest) return '/containers/' .. urlenc(name) .. rest end\n"
    "\n"
    "local V = {}\n"
    "\n"
    "function V.ps(ctx, opts)\n"
    "  opts = opts or {}\n"
    "  local q = { { 'all', opts.all and '1' or nil }, { 'filters', filters_json(opts.filters) },\n"
    "              { 'limit', opts.limit and sfmt('%d', opts.limit) or nil } }\n"
    "  local what = 'docker ps'\n"
    "  local list = json_of(what, check(what, transfer(ctx, 'GET', '/containers/json' .. "
    "query(q))))\n"
    "  for _, c in ipairs(list) do add_names(c) end\n"
    "  return list\n"
    "end\n"
    "\n"
    "function V.inspect(ctx, name)\n"
    "  local what = 'docker inspect ' .. name\n"
    "  local d = json_of(what, check(what, transfer(ctx, 'GET', cpath(name, '/json'))))\n"
    "  if type(d) == 'table' then\n"
    "    d.id = d.Id\n"
    "    if type(d.Name) == 'string' then d.name = d.Name:gsub('^/', '') end\n"
    "  end\n"
    "  return d\n"
    "end\n"
    "\n"
    "function V.logs(ctx, name, opts)\n"
    "  opts = opts or {}\n"
    "  local tail = opts.tail\n"
    "  if tail ~= nil and tail ~= 'all' then tail = sfmt('%d', tail) end\n"
    "  local q = { { 'stdout', '1' }, { 'stderr', '1' }, { 'tail', tail },\n"
    "              { 'since', since_ts(opts.since) }, { 'until', since_ts(opts['until']) },\n"
    "              { 'timestamps', opts.timestamps and '1' or nil } }\n"
    "  local what = 'docker logs ' .. name\n"
    "  local r = check(what, transfer(ctx, 'GET', cpath(name, '/logs' .. query(q))))\n"
    "  local ct = r.headers and r.headers['content-type'] or ''\n"
    "  local body = r.body or ''\n"
    "  local mux\n"
    "  if ct:find('multiplexed', 1, true) then mux = true\n"
    "  elseif ct:find('raw-stream', 1, true) then\n"
    "    -- before API 1.42 every stream says raw-stream: look at the bytes\n"
    "    local b = sbyte(body, 1)\n"
    "    mux = #body >= 8 and (b == 0 or b == 1 or b == 2) and ssub(body, 2, 4) == '\\0\\0\\0'\n"
    "  else\n"
    "    local b = sbyte(body, 1)\n"
    "    mux = #body >= 8 and (b == 0 or b == 1 or b == 2) and ssub(body, 2, 4) == '\\0\\0\\0'\n"
    "  end\n"
    "  local out, err = demux(body, mux)\n"
    "  return { stdout = out, stderr = err, name = name }\n"
    "end\n"
    "\n"
    "function V.stats(ctx, name)\n"
    "  local what = 'docker stats ' .. name\n"
    "  local s = json_of(what, check(what, transfer(ctx, 'GET', cpath(name, "
    "'/stats?stream=false'))))\n"
    "  return stats_of(name, s)\n"
    "end\n"
    "\n"
    "function V.version(ctx)\n"
    "  local what = 'docker version'\n"
    "  local d = json_of(what, check(what, transfer(ctx, 'GET', '/version')))\n"
    "  if type(d) == 'table' then d.negotiated_api = ctx.api end\n"
    "  return d\n"
    "end\n"
    "\n"
    "function V.info(ctx)\n"
    "  local what = 'docker info'\n"
    "  return json_of(what, check(what, transfer(ctx, 'GET', '/info')))\n"
    "end\n"
    "\n"
    "function V.images(ctx, opts)\n"
    "  opts = opts or {}\n"
    "  local q = { { 'all', opts.all and '1' or nil }, { 'filters', filters_json(opts.filters) } "
    "}\n"
    "  local what = 'docker images'\n"
    "  return json_of(what, check(what, transfer(ctx, 'GET', '/images/json' .. query(q))))\n"
    "end\n"
    "\n"
    "local NOT_MODIFIED = { [304] = true }\n"
    "local function lifecycle(verb, ctx, name, opts, q)\n"
    "  local what = 'docker ' .. verb .. ' ' .. name\n"
    "  local r = check(what, transfer(ctx, 'POST', cpath(name, '/' .. verb .. query(q))), "
    "NOT_MODIFIED)\n"
    "  return { ok = true, name = name, status = r.status, changed = r.status ~= 304 }\n"
    "end\n"
    "\n"
    "function V.restart(ctx, name, opts)\n"
    "  opts = opts or {}\n"
    "  return lifecycle('restart', ctx, name, opts, { { 't', opts.timeout and sfmt('%d', "
    "opts.timeout) } })\n"
    "end\n"
    "function V.start(ctx, name, opts)\n"
    "  return lifecycle('start', ctx, name, opts, {})\n"
    "end\n"
    "function V.stop(ctx, name, opts)\n"
    "  opts = opts or {}\n"
    "  return lifecycle('stop', ctx, name, opts, { { 't', opts.timeout and sfmt('%d', "
    "opts.timeout) } })\n"
    "end\n"
    "function V.kill(ctx, name, opts)\n"
    "  opts = opts or {}\n"
    "  return lifecycle('kill', ctx, name, opts, { { 'signal', opts.signal } })\n"
    "end\n"
    "\n"
    "function V.update(ctx, name, opts)\n"
    "  opts = opts or {}\n"
    "  local what = 'docker update ' .. name\n"
    "  local body = {}\n"
    "  if opts.memory ~= nil then body.Memory = bytes(opts.memory, what) end\n"
    "  if opts.memory_swap ~= nil then\n"
    "    body.MemorySwap = opts.memory_swap == -1 and -1 or bytes(opts.memory_swap, what)\n"
    "  end\n"
    "  if opts.memory_reservation ~= nil then body.MemoryReservation = "
    "bytes(opts.memory_reservation, what) end\n"
    "  if opts.cpus ~= nil then body.NanoCpus = floor(tonumber(opts.cpus) * 1e9 + 0.5) end\n"
    "  if opts.cpu_shares ~= nil then body.CpuShares = floor(opts.cpu_shares) end\n"
    "  if opts.pids_limit ~= nil then body.PidsLimit = floor(opts.pids_limit) end\n"
    "  if opts.restart ~= nil then body.RestartPolicy = { Name = tostring(opts.restart) } end\n"
    "  if next(body) == nil then\n"
    "    error(what .. ': nothing to update (give memory, cpus, memory_swap, cpu_shares, "
    "pids_limit or restart)', 0)\n"
    "  end\n"
    "  local r = check(what, transfer(ctx, 'POST', cpath(name, '/update'), encode(body)))\n"
    "  local d = json_of(what, r)\n"
    "  return { ok = true, name = name, status = r.status, warnings = type(d) == 'table' and "
    "d.Warnings or nil }\n"
    "end\n"
    "\n"
    "function V.prune(ctx, opts)\n"
    "  opts = opts or {}\n"
    "  local res, total = { ok = true }, 0\n"
    "  for _, kind in ipairs({ 'containers', 'images', 'volumes' }) do\n"
    "    if opts[kind] then\n"
    "      local what = 'docker prune ' .. kind\n"
    "      local q = {}\n"
    "      if kind == 'images' and opts[kind] == 'all' then q = { { 'filters', encode({ dangling = "
    "{ 'false' } }) } } end\n"
    "      local d = json_of(what, check(what, transfer(ctx, 'POST', '/' .. kind .. '/prune' .. "
    "query(q))))\n"
    "      res[kind] = d\n"
    "      total = total + num(type(d) == 'table' and d.SpaceReclaimed)\n"
    "    end\n"
    "  end\n"
    "  res.space_reclaimed = total\n"
    "  return res\n"
    "end\n"
    "\n"
    "-- docker compose, by the labels compose puts on the containers it creates\n"
    "local PROJECT, SERVICE = 'com.docker.compose.project', 'com.docker.compose.service'\n"
    "local function by_service(a, b)\n"
    "  if (a.service or '') ~= (b.service or '') then return (a.service or '') < (b.service or '') "
    "end\n"
    "  return (a.name or '') < (b.name or '')\n"
    "end\n"
    "\n"
    "function V.compose_ps(ctx, project, opts)\n"
    "  opts = opts or {}\n"
    "  local labels = { PROJECT .. '=' .. project }\n"
    "  if opts.service ~= nil then labels[2] = SERVICE .. '=' .. tostring(opts.service) end\n"
    "  local list = V.ps(ctx, { all = opts.all ~= false, filters = { label = labels } })\n"
    "  for _, c in ipairs(list) do c.state = c.State; c.status = c.Status end\n"
    "  table.sort(list, by_service)\n"
    "  return list\n"
    "end\n"
    "\n"
    "function V.compose_restart(ctx, project, service, opts)\n"
    "  opts = opts or {}\n"
    "  local what = 'docker compose restart ' .. service\n"
    "  local list = V.compose_ps(ctx, project, { service = service })\n"
    "  if #list == 0 then\n"
    "    error(what .. ': no container of service \"' .. service .. '\" in compose project \"' .. "
    "project .. '\"', 0)\n"
    "  end\n"
    "  local names = {}\n"
    "  for _, c in ipairs(list) do\n"
    "    V.restart(ctx, c.name or c.Id, { timeout = opts.timeout })\n"
    "    names[#names + 1] = c.name or c.Id\n"
    "  end\n"
    "  return { ok = true, project = project, service = service, containers = names }\n"
    "end\n"
    "\n"
    "return function(verb, host, a, b, c)\n"
    "  local ctx = connect(host)\n"
    "  return V[verb](ctx, a, b, c)\n"
    "end\n";

/* The compose object: `return function(file, project, explicit)`, given
 * (ps, restart, exec) as its chunk arguments -- the hidden funnelled rows
 * docker.compose_ps/compose_restart and the global (funnelled) exec, all
 * captured when the module opened. */
static const char COMPOSE[] =
    "local ps, restart, exec = ...\n"
    "local M = {}\n"
    "M.__index = M\n"
    "M.__metatable = 'docker.compose'\n"
    "M.__tostring = function(self) return 'docker.compose(' .. self.file .. ')' end\n"
    "\n"
    "local function me(self, verb)\n"
    "  if type(self) ~= 'table' or rawget(self, 'file') == nil then\n"
    "    error('docker.compose: call it as compose:' .. verb .. '(...), with a colon', 3)\n"
    "  end\n"
    "  return self\n"
    "end\n"
    "\n"
    "local function opts_of(verb, o)\n"
    "  if o == nil then return {} end\n"
    "  if type(o) ~= 'table' then error('docker.compose:' .. verb .. ': options must be a "
    "table', 3) end\n"
    "  return o\n"
    "end\n"
    "\n"
    "-- errors raised under a method point at the runbook line that called it\n"
    "local function rethrow(ok, ...)\n"
    "  if ok then return ... end\n"
    "  local e = ...\n"
    "  if type(e) == 'string' then error((e:gsub('^docker%.compose:%d+: ', '')), 2) end\n"
    "  error(e, 0)\n"
    "end\n"
    "\n"
    "-- `docker compose -f FILE [-p PROJECT] verb ...` through the funnelled exec\n"
    "local function cli(self, verb, o, args)\n"
    "  local argv = { 'docker', 'compose', '-f', self.file }\n"
    "  if self.explicit then argv[#argv + 1] = '-p'; argv[#argv + 1] = self.project end\n"
    "  argv[#argv + 1] = verb\n"
    "  for _, x in ipairs(args) do argv[#argv + 1] = x end\n"
    "  local eo = { timeout = o.timeout, check = o.check, readonly = o.readonly }\n"
    "  return rethrow(pcall(exec, argv, next(eo) and eo or nil))\n"
    "end\n"
    "\n"
    "local function services(verb, args, list)\n"
    "  if list == nil then return args end\n"
    "  if type(list) == 'string' then list = { list } end\n"
    "  if type(list) ~= 'table' then error('docker.compose:' .. verb .. ': services must be a "
    "list of names', 3) end\n"
    "  for _, s in ipairs(list) do args[#args + 1] = tostring(s) end\n"
    "  return args\n"
    "end\n"
    "\n"
    "function M.ps(self, o)\n"
    "  me(self, 'ps')\n"
    "  return rethrow(pcall(ps, self.project, opts_of('ps', o)))\n"
    "end\n"
    "\n"
    "function M.restart(self, service, o)\n"
    "  me(self, 'restart')\n"
    "  if type(service) ~= 'string' or service == '' then\n"
    "    error('docker.compose:restart: give the service to restart', 2)\n"
    "  end\n"
    "  return rethrow(pcall(restart, self.project, service, opts_of('restart', o)))\n"
    "end\n"
    "\n"
    "function M.pull(self, o)\n"
    "  me(self, 'pull')\n"
    "  o = opts_of('pull', o)\n"
    "  return cli(self, 'pull', o, services('pull', {}, o.services))\n"
    "end\n"
    "\n"
    "function M.up(self, o)\n"
    "  me(self, 'up')\n"
    "  o = opts_of('up', o)\n"
    "  local args = {}\n"
    "  if o.detach ~= false then args[#args + 1] = '-d' end\n"
    "  if o.no_deps then args[#args + 1] = '--no-deps' end\n"
    "  if o.build then args[#args + 1] = '--build' end\n"
    "  if o.force_recreate then args[#args + 1] = '--force-recreate' end\n"
    "  if o.wait then args[#args + 1] = '--wait' end\n"
    "  return cli(self, 'up', o, services('up', args, o.services))\n"
    "end\n"
    "\n"
    "function M.down(self, o)\n"
    "  me(self, 'down')\n"
    "  o = opts_of('down', o)\n"
    "  local args = {}\n"
    "  if o.volumes then args[#args + 1] = '--volumes' end\n"
    "  if o.remove_orphans then args[#args + 1] = '--remove-orphans' end\n"
    "  return cli(self, 'down', o, args)\n"
    "end\n"
    "\n"
    "function M.logs(self, service, o)\n"
    "  me(self, 'logs')\n"
    "  if type(service) == 'table' and o == nil then service, o = nil, service end\n"
    "  o = opts_of('logs', o)\n"
    "  local args = { '--no-color' }\n"
    "  if o.tail ~= nil then args[#args + 1] = '--tail'; args[#args + 1] = tostring(o.tail) end\n"
    "  if o.since ~= nil then args[#args + 1] = '--since'; args[#args + 1] = tostring(o.since) "
    "end\n"
    "  if o.timestamps then args[#args + 1] = '--timestamps' end\n"
    "  if service ~= nil then services('logs', args, service) end\n"
    "  return cli(self, 'logs', o, args)\n"
    "end\n"
    "\n"
    "return function(file, project, explicit)\n"
    "  return setmetatable({ file = file, project = project, explicit = explicit }, M)\n"
    "end\n";

/* ---- describe ------------------------------------------------------------ */

enum verb {
    V_PS,
    V_INSPECT,
    V_LOGS,
    V_STATS,
    V_VERSION,
    V_INFO,
    V_IMAGES,
    V_RESTART,
    V_START,
    V_STOP,
    V_KILL,
    V_UPDATE,
    V_PRUNE,
    V_COMPOSE_PS,
    V_COMPOSE_RESTART
};
static const char *const VERB[] = {"ps",   "inspect", "logs",    "stats",      "version",
                                   "info", "images",  "restart", "start",      "stop",
                                   "kill", "update",  "prune",   "compose_ps", "compose_restart"};

/* verbs whose first argument is a container */
static int takes_name(int v)
{
    return v == V_INSPECT || v == V_LOGS || v == V_STATS || (v >= V_RESTART && v <= V_UPDATE);
}

/* The options table at idx (nil/none allowed): its index, or 0. */
static int opts_at(lua_State *L, int idx, int v)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    if (t != LUA_TTABLE)
        luaL_argerror(L, idx, lua_pushfstring(L, "docker.%s: options must be a table", VERB[v]));
    return idx;
}

/* A number or a string option shown as `--flag value`; pushes the piece
 * and returns 1, or 0 when absent. */
static int flag_piece(lua_State *L, int opts, const char *key, const char *flag, int v)
{
    if (!opts)
        return 0;
    int t = lua_getfield(L, opts, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t == LUA_TNUMBER) {
        char num[64];
        snprintf(num, sizeof num, "%.15g", (double)lua_tonumber(L, -1));
        lua_pop(L, 1);
        lua_pushfstring(L, " %s %s", flag, num);
        return 1;
    }
    if (t == LUA_TSTRING) {
        luaL_Buffer b;
        const char *s = lua_tostring(L, -1);
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        luaL_addstring(&b, flag);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, s);
        luaL_pushresult(&b);
        lua_remove(L, -2);
        return 1;
    }
    return luaL_error(L, "docker.%s: '%s' must be a number or a string, got %s", VERB[v], key,
                      luaL_typename(L, -1));
}

static void describe(lua_State *L, rb_action *a, int v)
{
    int top = lua_gettop(L);
    int opts;
    const char *name = NULL;
    if (takes_name(v)) {
        name = luaL_checkstring(L, 1);
        if (!*name)
            luaL_argerror(L, 1, "docker: the container name is empty");
        opts = opts_at(L, 2, v);
    } else {
        opts = opts_at(L, 1, v);
    }
    int n = 1;
    lua_pushfstring(L, "docker %s", VERB[v]);
    if (name) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, name);
        luaL_pushresult(&b);
        n++;
    }
    switch (v) {
    case V_PS:
    case V_IMAGES:
        if (rb_opt_bool(L, opts, "all", 0)) {
            lua_pushliteral(L, " --all");
            n++;
        }
        if (opts && lua_getfield(L, opts, "filters") == LUA_TTABLE) {
            lua_pop(L, 1);
            lua_pushliteral(L, " --filter ...");
            n++;
        } else if (opts) {
            lua_pop(L, 1);
        }
        break;
    case V_LOGS:
        n += flag_piece(L, opts, "tail", "--tail", v);
        n += flag_piece(L, opts, "since", "--since", v);
        n += flag_piece(L, opts, "until", "--until", v);
        if (rb_opt_bool(L, opts, "timestamps", 0)) {
            lua_pushliteral(L, " --timestamps");
            n++;
        }
        break;
    case V_STATS:
        lua_pushliteral(L, " --no-stream");
        n++;
        break;
    case V_RESTART:
    case V_STOP:
        n += flag_piece(L, opts, "timeout", "--time", v);
        break;
    case V_KILL:
        n += flag_piece(L, opts, "signal", "--signal", v);
        break;
    case V_UPDATE:
        n += flag_piece(L, opts, "memory", "--memory", v);
        n += flag_piece(L, opts, "memory_swap", "--memory-swap", v);
        n += flag_piece(L, opts, "memory_reservation", "--memory-reservation", v);
        n += flag_piece(L, opts, "cpus", "--cpus", v);
        n += flag_piece(L, opts, "cpu_shares", "--cpu-shares", v);
        n += flag_piece(L, opts, "pids_limit", "--pids-limit", v);
        n += flag_piece(L, opts, "restart", "--restart", v);
        break;
    case V_PRUNE: {
        static const char *const kinds[] = {"containers", "images", "volumes"};
        int any = 0;
        for (int i = 0; i < 3; i++) {
            if (opts && lua_getfield(L, opts, kinds[i]) != LUA_TNIL && lua_toboolean(L, -1)) {
                lua_pop(L, 1);
                lua_pushfstring(L, " %s", kinds[i]);
                n++;
                any = 1;
            } else if (opts) {
                lua_pop(L, 1);
            }
        }
        if (!any)
            luaL_argerror(L, 1,
                          "docker.prune: say what to prune: { containers = true, images = true, "
                          "volumes = true }");
        break;
    }
    default:
        break;
    }
    lua_concat(L, n);
    rb_action_set(L, a, "verb", "%s", VERB[v]);
    rb_action_set(L, a, "target", "%s", name ? name : "docker");
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    a->cls = v >= V_RESTART && v <= V_PRUNE ? RB_MUTATE : RB_READ;
    a->opts = opts;
    lua_settop(L, top);
}

/* The hidden compose rows: (project, opts) for ps, (project, service, opts)
 * for restart; the words are the `docker compose` command an operator would
 * type in the project's directory. */
static void describe_compose(lua_State *L, rb_action *a, int v)
{
    int top = lua_gettop(L);
    const char *project = luaL_checkstring(L, 1);
    const char *service = NULL;
    int opts;
    luaL_Buffer b;
    if (v == V_COMPOSE_RESTART) {
        service = luaL_checkstring(L, 2);
        if (!*service)
            luaL_argerror(L, 2, "docker compose restart: the service name is empty");
        opts = opts_at(L, 3, v);
    } else {
        opts = opts_at(L, 2, v);
    }
    int n = 1;
    lua_pushstring(L, v == V_COMPOSE_PS ? "docker compose ps" : "docker compose restart");
    if (v == V_COMPOSE_PS) {
        if (rb_opt_bool(L, opts, "all", 1)) {
            lua_pushliteral(L, " --all");
            n++;
        }
        if (opts && lua_getfield(L, opts, "service") == LUA_TSTRING) {
            const char *svc = lua_tostring(L, -1);
            luaL_buffinit(L, &b);
            luaL_addchar(&b, ' ');
            rb_quote_arg(&b, svc);
            luaL_pushresult(&b);
            lua_remove(L, -2);
            n++;
        } else if (opts) {
            lua_pop(L, 1);
        }
    } else {
        n += flag_piece(L, opts, "timeout", "--timeout", v);
        luaL_buffinit(L, &b);
        luaL_addchar(&b, ' ');
        rb_quote_arg(&b, service);
        luaL_pushresult(&b);
        n++;
    }
    lua_concat(L, n);
    rb_action_set(L, a, "verb", "%s", v == V_COMPOSE_PS ? "compose ps" : "compose restart");
    rb_action_set(L, a, "target", "%s", service ? service : project);
    rb_action_set(L, a, "words", "%s", lua_tostring(L, -1));
    a->cls = v == V_COMPOSE_RESTART ? RB_MUTATE : RB_READ;
    a->opts = opts;
    lua_settop(L, top);
}

#define DESCRIBE(fn, v)                                                                            \
    static void fn(lua_State *L, rb_action *a)                                                     \
    {                                                                                              \
        describe(L, a, v);                                                                         \
    }
DESCRIBE(d_ps, V_PS)
DESCRIBE(d_inspect, V_INSPECT)
DESCRIBE(d_logs, V_LOGS)
DESCRIBE(d_stats, V_STATS)
DESCRIBE(d_version, V_VERSION)
DESCRIBE(d_info, V_INFO)
DESCRIBE(d_images, V_IMAGES)
DESCRIBE(d_restart, V_RESTART)
DESCRIBE(d_start, V_START)
DESCRIBE(d_stop, V_STOP)
DESCRIBE(d_kill, V_KILL)
DESCRIBE(d_update, V_UPDATE)
DESCRIBE(d_prune, V_PRUNE)

static void d_compose_ps(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_PS);
}
static void d_compose_restart(lua_State *L, rb_action *a)
{
    describe_compose(L, a, V_COMPOSE_RESTART);
}

/* ---- the call ------------------------------------------------------------ */

/* Push the daemon's address: DOCKER_HOST, runbook.yaml docker.host (the
 * --env environment's section first), the default socket. */
static void push_host(lua_State *L)
{
    const char *h = getenv("DOCKER_HOST");
    if (h && *h) {
        lua_pushstring(L, h);
        return;
    }
    rb_engine *E = rb_engine_of(L);
    for (int pass = 0; E && E->config && pass < 2; pass++) {
        const char *env = pass == 0 ? E->env_name : NULL;
        if (pass == 0 && !env)
            continue;
        int top = lua_gettop(L);
        config_push(E->config, L, env, "docker");
        if (lua_istable(L, -1) && lua_getfield(L, -1, "host") == LUA_TSTRING) {
            lua_replace(L, top + 1);
            lua_settop(L, top + 1);
            return;
        }
        lua_settop(L, top);
    }
    lua_pushliteral(L, DEFAULT_HOST);
}

static int docker_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD)
        return lua_error(L);
    return 1;
}

static int push_impl(lua_State *L);

static int docker_call(lua_State *L, int v)
{
    lua_settop(L, 3);
    push_impl(L);
    lua_pushstring(L, VERB[v]);
    push_host(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    int st = lua_pcallk(L, 5, 1, 0, 0, docker_k);
    return docker_k(L, st, 0);
}

#define CALL(fn, v)                                                                                \
    static int fn(lua_State *L)                                                                    \
    {                                                                                              \
        return docker_call(L, v);                                                                  \
    }
CALL(l_ps, V_PS)
CALL(l_inspect, V_INSPECT)
CALL(l_logs, V_LOGS)
CALL(l_stats, V_STATS)
CALL(l_version, V_VERSION)
CALL(l_info, V_INFO)
CALL(l_images, V_IMAGES)
CALL(l_restart, V_RESTART)
CALL(l_start, V_START)
CALL(l_stop, V_STOP)
CALL(l_kill, V_KILL)
CALL(l_update, V_UPDATE)
CALL(l_prune, V_PRUNE)
CALL(l_compose_ps, V_COMPOSE_PS)
CALL(l_compose_restart, V_COMPOSE_RESTART)

/* note(response): keep a failed answer for the audit record */
static int l_note(lua_State *L)
{
    rb_note_result(L, 1);
    return 0;
}

/* ---- docker.compose(file [, { project }]) -------------------------------- */

#define COMPOSE_KEY "runbook.docker.compose"

/* Push name the way docker compose normalises a project name: lower case,
 * only [a-z0-9_-], no leading '_' or '-'. */
static void push_project_name(lua_State *L, const char *name, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        int c = tolower((unsigned char)name[i]);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            ((c == '_' || c == '-') && luaL_bufflen(&b) > 0))
            luaL_addchar(&b, (char)c);
    }
    luaL_pushresult(&b);
}

/* A top-level `name:` in the compose file, or 0. */
static int push_file_name(lua_State *L, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[512];
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "name:", 5) != 0)
            continue;
        char *v = line + 5;
        v += strspn(v, " \t\"'");
        size_t n = strcspn(v, " \t\r\n\"'#");
        if (n > 0) {
            push_project_name(L, v, n);
            found = lua_rawlen(L, -1) > 0;
            if (!found)
                lua_pop(L, 1);
        }
    }
    fclose(f);
    return found;
}

/* The project docker compose would use for file: COMPOSE_PROJECT_NAME, the
 * file's top-level `name:`, else the name of the directory holding it. */
static void push_default_project(lua_State *L, const char *file)
{
    const char *env = getenv("COMPOSE_PROJECT_NAME");
    if (env && *env) {
        push_project_name(L, env, strlen(env));
        return;
    }
    if (push_file_name(L, file))
        return;
    const char *slash = strrchr(file, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == file)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    /* a directory that does not exist (yet) is named from the path */
    const char *d = realpath(dir, real) ? real : dir;
    size_t len = strlen(d);
    while (len > 1 && d[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && d[start - 1] != '/')
        start--;
    push_project_name(L, d + start, len - start);
}

static int l_compose(lua_State *L)
{
    const char *file = luaL_checkstring(L, 1);
    if (!*file)
        luaL_argerror(L, 1, "docker.compose: the compose file is empty");
    int t = lua_type(L, 2);
    if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE)
        luaL_argerror(L, 2, "docker.compose: options must be a table");
    const char *project = t == LUA_TTABLE ? rb_opt_string(L, 2, "project") : NULL;
    if (project && !*project)
        luaL_argerror(L, 2, "docker.compose: the project name is empty");
    if (lua_getfield(L, LUA_REGISTRYINDEX, COMPOSE_KEY) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (luaL_loadbuffer(L, COMPOSE, sizeof COMPOSE - 1, "=docker.compose") != LUA_OK)
            return lua_error(L);
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.compose_ps");
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.compose_restart");
        lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.exec");
        lua_call(L, 3, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, COMPOSE_KEY);
    }
    lua_pushvalue(L, 1);
    if (project)
        lua_pushstring(L, project);
    else
        push_default_project(L, file);
    if (lua_rawlen(L, -1) == 0)
        return luaL_error(L,
                          "docker.compose: cannot tell the project name of %s (give { "
                          "project = ... })",
                          file);
    lua_pushboolean(L, project != NULL);
    lua_call(L, 3, 1);
    return 1;
}

/* Push json[field] captured now, or a function raising that it is missing. */
static void push_json(lua_State *L, const char *field)
{
    if (lua_getglobal(L, "json") == LUA_TTABLE && lua_getfield(L, -1, field) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return;
    }
    luaL_error(L, "docker: json.%s is not available", field);
}

void mod_docker_open(lua_State *L)
{
    static const rb_fn fns[] = {
        {.name = "ps", .fn = l_ps, .cls = RB_READ, .describe = d_ps},
        {.name = "inspect", .fn = l_inspect, .cls = RB_READ, .describe = d_inspect},
        {.name = "logs", .fn = l_logs, .cls = RB_READ, .describe = d_logs},
        {.name = "stats", .fn = l_stats, .cls = RB_READ, .describe = d_stats},
        {.name = "version", .fn = l_version, .cls = RB_READ, .describe = d_version},
        {.name = "info", .fn = l_info, .cls = RB_READ, .describe = d_info},
        {.name = "images", .fn = l_images, .cls = RB_READ, .describe = d_images},
        {.name = "restart", .fn = l_restart, .cls = RB_MUTATE, .describe = d_restart},
        {.name = "start", .fn = l_start, .cls = RB_MUTATE, .describe = d_start},
        {.name = "stop", .fn = l_stop, .cls = RB_MUTATE, .describe = d_stop},
        {.name = "kill", .fn = l_kill, .cls = RB_MUTATE, .describe = d_kill},
        {.name = "update", .fn = l_update, .cls = RB_MUTATE, .describe = d_update},
        {.name = "prune", .fn = l_prune, .cls = RB_MUTATE, .describe = d_prune},
        {.name = "compose", .fn = l_compose, .cls = RB_PURE},
        {.name = NULL},
    };
    /* the compose object's API verbs: funnelled docker actions, kept out of
     * the docker table (they are reached through docker.compose(...)) */
    static const char *const hidden_names[] = {"compose_ps", "compose_restart"};
    static const rb_fn hidden[] = {
        {.name = "compose_ps", .fn = l_compose_ps, .cls = RB_READ, .describe = d_compose_ps},
        {.name = "compose_restart", .fn = l_compose_restart, .cls = RB_MUTATE, .describe = d_compose_restart},
        {.name = NULL},
    };
    rb_register(L, "docker", fns);
    rb_register(L, "docker", hidden);
    lua_getglobal(L, "docker");
    for (int i = 0; i < 2; i++) {
        char key[64];
        snprintf(key, sizeof key, "runbook.docker.%s", hidden_names[i]);
        lua_getfield(L, -1, hidden_names[i]);
        lua_setfield(L, LUA_REGISTRYINDEX, key);
        lua_pushnil(L);
        lua_setfield(L, -2, hidden_names[i]);
    }
    lua_pop(L, 1);
    /* the funnelled global exec, for the compose verbs run by the CLI */
    lua_getglobal(L, "exec");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.exec");
    /* the json functions are taken now, before a runbook could shadow them;
     * the client itself is compiled on first use (start-up stays cheap) */
    push_json(L, "encode");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.encode");
    push_json(L, "decode");
    lua_setfield(L, LUA_REGISTRYINDEX, "runbook.docker.decode");
}

/* Push the client (IMPL compiled and set up), compiling it the first time. */
static int push_impl(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, IMPL_KEY) == LUA_TFUNCTION)
        return 1;
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, IMPL, sizeof IMPL - 1, "=docker") != LUA_OK)
        return lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, RAW_KEY);
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.encode");
    lua_getfield(L, LUA_REGISTRYINDEX, "runbook.docker.decode");
    lua_pushcfunction(L, l_note);
    lua_call(L, 4, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, IMPL_KEY);
    return 1;
}
