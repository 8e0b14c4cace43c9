local fg = require "forge_gateway"

runbook {
  name        = "forge-gateway/network-issues",
  title       = "Network issues: DNS, reachability, port, restart networking",
  description = [[The gateway cannot be reached. Checks, in the document's order, that the host
answers ping, that port 8000 accepts connections (an HTTP GET of /health instead of telnet), and
that the name resolves (nslookup, here getent hosts: what clients resolve). Then decides: a name
that does not resolve or a refused port is not fixed by restarting the network (the run names the
runbook to use); an unreachable host is, after a confirmation (scripts/network-restart.sh), and
must answer again afterwards.
004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › Network Issues.]],
  source      = "004_c5e4c638679021cc.txt › Troubleshooting Guide › Common Issues › Network Issues",
  tags        = { "forge-gateway", "incident" },
  mutates     = { "runs scripts/network-restart.sh, after confirmation" },
  params      = fg.params{ "scripts_dir",
    gateway_host = { default = "localhost", help = "the gateway's host name (the document's gateway-host)" },
    port         = { type = "number", default = 8000, help = "the gateway's port (telnet gateway-host 8000)" },
    wait_timeout = { type = "number", default = 120, help = "seconds the gateway has to answer after the network restart" },
  },
}

local escalation = require "escalation"

local function port_check()
  local url = string.format("http://%s:%d/health", params.gateway_host, math.tointeger(params.port))
  local ok, r = pcall(http.get, url, { timeout = 5, connect_timeout = 5 })
  if ok then return true, "HTTP " .. r.status end
  return false, tostring(r):match(": ([^:]+)$") or tostring(r)
end

local TREE = {
  ask = "does the name resolve?", key = "dns",
  no  = { action = "escalate", why = "%s does not resolve: fix DNS (or /etc/hosts); restarting the network will not help" },
  yes = { ask = "does the host answer ping?", key = "ping",
          no  = { action = "restart", why = "%s does not answer ping" },
          yes = { ask = "does port accept connections?", key = "port",
                  yes = { action = "none" },
                  no  = { action = "escalate",
                          why = "%s is reachable but refuses the port: the gateway itself is down (forge-gateway/gateway-service-issues)" } } },
}

step("Check network connectivity", {
  description = "ping gateway-host",
}, function()
  local r = exec({ "ping", "-c", "3", "-W", "2", params.gateway_host }, { readonly = true, check = false, timeout = 30 })
  state.ping = r.code == 0
  log.info("ping %s: %s", params.gateway_host, state.ping and ((r.stdout or ""):match("(%d+%% packet loss)") or "ok") or "no answer")
end)

step("Check port availability", {
  description = "telnet gateway-host 8000 (as an HTTP GET of /health)",
}, function()
  local ok, what = port_check()
  state.port = ok
  log.info("%s:%d: %s", params.gateway_host, params.port, what)
end)

step("Check DNS resolution", {
  description = "nslookup gateway-host (getent hosts: the resolver clients use)",
}, function()
  local r = exec({ "getent", "hosts", params.gateway_host }, { readonly = true, check = false })
  state.dns = r.code == 0
  log.info("%s resolves to %s", params.gateway_host, state.dns and (r.stdout or ""):match("^(%S+)") or "nothing")
end)

step("Decide", function()
  local leaf, path = escalation.decide(TREE, { dns = state.dns, ping = state.ping, port = state.port })
  for _, p in ipairs(path) do log.info("%s", p) end
  state.action = leaf.action
  state.why = leaf.why and leaf.why:format(params.gateway_host)
  check(leaf.action ~= "escalate", "%s", state.why)
end)

step("Restart networking", {
  description = "./scripts/network-restart.sh, after confirmation; then the gateway must answer again",
  when = function() return state.action == "restart" end,
  timeout = params.wait_timeout + 120,
}, function()
  check(confirm(state.why .. ". Restart networking (scripts/network-restart.sh)?"), "network restart declined")
  exec({ params.scripts_dir .. "/network-restart.sh" }, { timeout = 120 })
  if dry_run() then return end -- nothing restarted: the port would only show today's state
  wait_until(function() return (port_check()) end,
             { timeout = params.wait_timeout, every = 5, what = params.gateway_host .. ":" .. params.port .. " answering" })
  state.recovered = true
  log.info("%s:%d answers again", params.gateway_host, params.port)
end)
