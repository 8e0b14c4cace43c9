-- examples/pod-crash-looping.lua: KubePodCrashLooping -- a pod's container
-- keeps dying and Kubernetes keeps restarting it.
--
-- Translated from the prometheus-operator runbook for the KubePodCrashLooping
-- alert (the `source` below).  Step by step:
--
--   1 "Find the crash-looping pods"  <- Diagnosis: "Check template via
--     `kubectl -n $NAMESPACE get pod $POD`": the containers' restart counts,
--     CrashLoopBackOff and how the last run ended (reason, exit code).
--   2 "Read the pod's events"        <- "Check pod events via `kubectl -n
--     $NAMESPACE describe pod $POD`": probe failures, volumes/config maps/
--     secrets that cannot be mounted.
--   3 "Read the crashed container's logs" <- "Check pod logs via `kubectl
--     -n $NAMESPACE logs $POD -c $CONTAINER`" (with --previous: the run that
--     crashed), matched against "Other things to check": a service it waits
--     for (database), missing files, a read-only filesystem, wrong user
--     permissions.
--   4 "Check the pod template"        <- "Check pod template parameters":
--     pod priority, resources (memory too low -> OOMKilled), readiness and
--     liveness probes; and which deployment owns the pod, at which revision.
--   5 "Raise the memory limit"        <- "memory too low": `kubectl set
--     resources --limits=memory=...` when the container was OOMKilled and
--     --param memory_limit=... says how much (after confirm()).
--   6 "Roll back the deployment"      <- Impact "inability to do rolling
--     upgrades": when the crashing pods run the deployment's newest revision,
--     `kubectl rollout undo` to the previous one (--param rollback=true,
--     after confirm()).
--   7 "Wait for the rollout"; 8 "Verdict": the source's Mitigation -- "talk
--     with developers or read documentation about the app" -- is what is
--     left when neither fix applies: the run fails naming the cause found.
--
-- get, describe and logs are reads (run for real in --dry-run); set
-- resources and rollout undo are changes (`would:` in a dry-run).
--
--   runbook run examples/pod-crash-looping.lua --dry-run --param namespace=shop --param selector=app=api
--   runbook run examples/pod-crash-looping.lua --param namespace=shop --param pod=api-7d9f-x2k4q --param rollback=true

runbook {
  name        = "examples/pod-crash-looping",
  title       = "KubePodCrashLooping: why does the pod keep restarting?",
  description = [[Finds the crash-looping containers (restarts, CrashLoopBackOff, how the last run
ended), reads the pod's events and the crashed container's logs, checks the pod template
(resources, probes, priority) and names the cause; raises the memory limit of an OOMKilled
container, or rolls a bad release back, when asked; fails with the cause otherwise.]],
  source      = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/ (Kube Pod Crash Looping)",
  severity    = "warning",
  tags        = { "example", "kubernetes", "kubectl", "incident" },
  mutates     = { "raises a container's memory limit (kubectl set resources), when memory_limit is given",
                  "rolls the owning deployment back one revision (kubectl rollout undo), when rollback=true" },
  params = {
    namespace    = { default = "default", help = "the alert's namespace label" },
    pod          = { default = "", help = "the alert's pod label (empty: every pod the selector picks)" },
    selector     = { default = "", help = "label selector for the pods when no pod is named, e.g. app=api" },
    min_restarts = { type = "number", default = 3,
                     help = "restarts that count as crash looping even between two CrashLoopBackOff waits" },
    log_tail     = { type = "number", default = 50, help = "log lines of the crashed run to read" },
    memory_limit = { default = "", example = "1Gi",
                     help = "new memory limit for an OOMKilled container (empty: do not change it)" },
    rollback     = { type = "boolean", default = false,
                     help = "roll the owning deployment back when its newest revision is the one crashing" },
    rollout_timeout = { type = "number", default = 300, help = "seconds to wait for the rollout after a fix" },
  },
}

local function ns() return { namespace = params.namespace } end
-- the crashing pods' specs, kept out of `state` (saved with the run): an
-- env value in a spec may be a secret
local SPECS = {}

-- log line patterns -> the source's "Other things to check"
local LOG_CAUSES = {
  { cause = "dependency", hint = "the app waits for another service (e.g. its database) to start",
    patterns = { "connection refused", "could not connect", "no route to host", "i/o timeout",
                 "name or service not known", "no such host" } },
  { cause = "read_only_fs", hint = "the container's filesystem is read only",
    patterns = { "read%-only file system" } },
  { cause = "permissions", hint = "wrong user permissions in the container (securityContext)",
    patterns = { "permission denied", "operation not permitted" } },
  { cause = "missing_files", hint = "missing files: config maps, secrets, volumes, or a different WORKDIR",
    patterns = { "no such file or directory", "cannot open", "not found" } },
  { cause = "misconfiguration", hint = "a misconfiguration makes the app crash on start",
    patterns = { "invalid", "missing required", "config", "panic:", "fatal", "exception" } },
}

local function match_logs(text)
  local lower = text:lower()
  for _, c in ipairs(LOG_CAUSES) do
    for _, p in ipairs(c.patterns) do
      if lower:find(p) then return c end
    end
  end
end

step("Find the crash-looping pods", {
  description = "kubectl get pod: each container's restarts, CrashLoopBackOff, and how its last run ended.",
}, function()
  check(params.pod ~= "" or params.selector ~= "", "name the pod (--param pod=...) or a selector (--param selector=...)")
  local got
  if params.pod ~= "" then
    got = { kubectl.get("pod", params.pod, ns()) }
  else
    got = kubectl.get("pods", nil, { namespace = params.namespace, selector = params.selector }).items or {}
  end
  state.crashing = {}
  for _, p in ipairs(got) do
    for _, cs in ipairs(p.status and p.status.containerStatuses or {}) do
      local waiting = cs.state and cs.state.waiting or {}
      local last = cs.lastState and cs.lastState.terminated or {}
      local looping = waiting.reason == "CrashLoopBackOff"
                      or (not cs.ready and (cs.restartCount or 0) >= params.min_restarts)
      log.info("%-40s %-16s restarts=%-3d %s%s", p.metadata.name, cs.name, cs.restartCount or 0,
               waiting.reason or (cs.ready and "ready" or "not ready"),
               last.reason and string.format("  (last run: %s, exit %s)", last.reason, tostring(last.exitCode)) or "")
      if looping then
        state.crashing[#state.crashing + 1] = {
          pod = p.metadata.name, container = cs.name, restarts = cs.restartCount or 0,
          waiting = waiting.reason, last_reason = last.reason, exit_code = last.exitCode,
          owner = p.metadata.ownerReferences and p.metadata.ownerReferences[1]
                  and p.metadata.ownerReferences[1].name,
          owner_kind = p.metadata.ownerReferences and p.metadata.ownerReferences[1]
                       and p.metadata.ownerReferences[1].kind,
        }
        SPECS[p.metadata.name] = p.spec
      end
    end
  end
  state.pods = #got
  if #state.crashing == 0 then
    log.info("no crash-looping container in %d pod(s): nothing to do", #got)
  else
    state.target = state.crashing[1]
    log.warn("%d crash-looping container(s); looking at %s/%s", #state.crashing,
             state.target.pod, state.target.container)
  end
end)

step("Read the pod's events", {
  description = "kubectl describe pod: probe failures, mounts that fail, back-off.",
  when = function() return state.target ~= nil end,
}, function()
  local text = kubectl.describe("pod", state.target.pod, ns()) or ""
  local events = text:match("\nEvents:(.*)$") or ""
  state.events = {}
  for line in events:gmatch("[^\n]+") do
    if line:find("Warning") then
      state.events[#state.events + 1] = line:gsub("^%s+", "")
      log.info("event: %s", state.events[#state.events])
      if line:find("probe failed") then state.probe_failing = true end
      if line:find("FailedMount") or line:find("CreateContainerConfigError") then
        state.mount_failing = line:match("(%S+ \"[^\"]+\" not found)") or "a volume cannot be mounted"
      end
    end
  end
  if #state.events == 0 then log.info("no warning events") end
end)

step("Read the crashed container's logs", {
  description = "kubectl logs --previous -c CONTAINER: the run that crashed, matched against the " ..
                "source's \"other things to check\".",
  when = function() return state.target ~= nil end,
}, function()
  local t = state.target
  local text = kubectl.logs(t.pod, { namespace = params.namespace, container = t.container,
                                     previous = true, tail = params.log_tail, check = false }) or ""
  for line in text:gmatch("[^\n]+") do log.info("%s | %s", t.container, line) end
  local c = match_logs(text)
  if c then
    state.log_cause, state.log_hint = c.cause, c.hint
    log.warn("the logs point at: %s", c.hint)
  end
end)

step("Check the pod template", {
  description = "Resources, probes and priority of the crashing container; the deployment that " ..
                "owns the pod and the revision it runs.",
  when = function() return state.target ~= nil end,
}, function()
  local t = state.target
  local spec = SPECS[t.pod] or {}
  for _, c in ipairs(spec.containers or {}) do
    if c.name == t.container then
      local res = c.resources or {}
      local limits, requests = res.limits or {}, res.requests or {}
      state.memory_limit = limits.memory
      log.info("resources: requests cpu=%s memory=%s, limits cpu=%s memory=%s",
               tostring(requests.cpu or "-"), tostring(requests.memory or "-"),
               tostring(limits.cpu or "-"), tostring(limits.memory or "-"))
      local function probe(p)
        if not p then return "none" end
        local how = p.httpGet and ("http " .. tostring(p.httpGet.port) .. (p.httpGet.path or ""))
                    or p.tcpSocket and ("tcp " .. tostring(p.tcpSocket.port))
                    or p.exec and "exec" or "?"
        return string.format("%s, initialDelay %ss, timeout %ss", how,
                             tostring(p.initialDelaySeconds or 0), tostring(p.timeoutSeconds or 1))
      end
      log.info("liveness probe: %s; readiness probe: %s", probe(c.livenessProbe), probe(c.readinessProbe))
    end
  end
  log.info("priority class: %s", spec.priorityClassName or "(none)")
  -- the deployment behind the pod: pod -> ReplicaSet -> Deployment
  if t.owner_kind == "ReplicaSet" then
    local rs = kubectl.get("replicaset", t.owner, ns())
    local owner = rs.metadata.ownerReferences and rs.metadata.ownerReferences[1]
    if owner and owner.kind == "Deployment" then
      state.deployment = owner.name
      local d = kubectl.get("deployment", owner.name, ns())
      local ann = function(o) return o.metadata.annotations and o.metadata.annotations["deployment.kubernetes.io/revision"] end
      state.pod_revision = tonumber(ann(rs))
      state.deployment_revision = tonumber(ann(d))
      log.info("owned by deployment/%s; the pod runs revision %s of %s", owner.name,
               tostring(state.pod_revision), tostring(state.deployment_revision))
    end
  end
  -- the cause, most specific first
  if t.last_reason == "OOMKilled" or t.exit_code == 137 and not state.probe_failing then
    state.cause = "oom"
    log.warn("cause: the container ran out of memory (OOMKilled) -- its limit is %s",
             tostring(state.memory_limit or "unset"))
  elseif state.mount_failing then
    state.cause = "missing_config"
    log.warn("cause: %s -- missing config map/secret/volume", state.mount_failing)
  elseif state.probe_failing then
    state.cause = "probe"
    log.warn("cause: the liveness probe fails -- wrong port or command, or it gives up too fast")
  elseif state.log_cause then
    state.cause = state.log_cause
    log.warn("cause: %s", state.log_hint)
  else
    state.cause = "unknown"
    log.warn("cause: not found in the status, events or logs")
  end
end)

step("Raise the memory limit", {
  description = "For an OOMKilled container: kubectl set resources --limits=memory=MEMORY_LIMIT on " ..
                "its deployment, after confirm().",
  when = function()
    return state.cause == "oom" and params.memory_limit ~= "" and state.deployment ~= nil
  end,
}, function()
  local t = state.target
  if not confirm(string.format("Set the memory limit of %s in deployment/%s to %s (now %s)",
                               t.container, state.deployment, params.memory_limit,
                               tostring(state.memory_limit or "unset"))) then
    log.warn("memory limit left as it is")
    return
  end
  kubectl.run({ "set", "resources", "deployment/" .. state.deployment, "-c", t.container,
                "--limits=memory=" .. params.memory_limit }, ns())
  state.fixed = "memory limit raised to " .. params.memory_limit
end)

step("Roll back the deployment", {
  description = "When the crashing pods run the deployment's newest revision and there is an " ..
                "older one: kubectl rollout undo, after confirm() (--param rollback=true).",
  when = function()
    return params.rollback and state.fixed == nil and state.cause ~= "oom"
           and state.deployment ~= nil and (state.deployment_revision or 0) > 1
           and state.pod_revision == state.deployment_revision
  end,
}, function()
  if not confirm(string.format("Roll deployment/%s back from revision %d", state.deployment,
                               state.deployment_revision)) then
    log.warn("not rolled back")
    return
  end
  kubectl.rollout_undo("deployment/" .. state.deployment, ns())
  state.fixed = string.format("rolled back from revision %d", state.deployment_revision)
end)

step("Wait for the rollout", {
  description = "kubectl rollout status: the fixed pods start and stay up.",
  when = function() return state.fixed ~= nil end,
}, function()
  kubectl.rollout_status("deployment/" .. state.deployment,
                         { namespace = params.namespace, wait_timeout = params.rollout_timeout })
  log.info("deployment/%s rolled out (%s)", state.deployment, state.fixed)
end)

step("Verdict", function()
  if state.target == nil or state.fixed then return end
  local t = state.target
  check(false, "%s/%s is crash looping (%d restarts, cause: %s): talk with the app's developers " ..
        "or read its documentation, and give it sane defaults to start with (the source's mitigation)%s",
        t.pod, t.container, t.restarts, state.cause,
        state.cause == "oom" and "; or rerun with --param memory_limit=..." or
        (state.deployment and not params.rollback) and "; or rerun with --param rollback=true" or "")
end)
