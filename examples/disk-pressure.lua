-- examples/disk-pressure.lua: NodeFilesystemSpaceFillingUp -- a filesystem
-- will be full within hours at the rate it is filling.
--
-- Translated from the prometheus-operator runbook for the
-- NodeFilesystemSpaceFillingUp alert (the `source` below);
-- examples/disk-usage.lua is the generic read-only look at every
-- filesystem, this one follows the alert for one mountpoint.  Step by step:
--
--   1 "Current usage"            <- Meaning: "current usage above a certain
--     threshold" (the node-mixin rule behind the 24 h warning: less than 40%
--     available); `df` of the alert's mountpoint label.
--   2 "When will it be full?"    <- Meaning + Diagnosis: "the extrapolation
--     predicts to run out of space" (warning under 24 h, critical under 4
--     h): deriv(node_filesystem_avail_bytes[6h]) from Prometheus when
--     --param prometheus=URL is given (and the 24 h trend, since "a
--     periodic pattern of writing and cleaning up can trick the linear
--     prediction into a false alert"); without Prometheus, two df samples.
--   3 "Worst and recent offenders" <- Diagnosis: "use the usual OS tools to
--     investigate what directories are the worst and/or recent offenders":
--     du of the mountpoint's top directories, find of big files written in
--     the last hour ("is this some irregular condition, e.g. a process fails
--     to clean up behind itself, or organic growth?").
--   4 "Remove unused images"     <- Mitigation: "for the case that the
--     mountpoint label is /, /sysroot or /var, removing unused images solves
--     that issue" (the source leaves the command as a TODO): `docker image
--     prune` (dangling images) or `crictl rmi --prune` (every unused image),
--     chosen by --param image_cleanup, after confirm().
--   5 "Measure again" and 6 "Verdict": fails while the filesystem still
--     fills up within the warning horizon.
--
-- df, du and find are reads, run for real in --dry-run; the image cleanup
-- is a change (`would:` in a dry-run).
--
--   runbook run examples/disk-pressure.lua --dry-run --param mountpoint=/var
--   runbook run examples/disk-pressure.lua --param mountpoint=/ --param prometheus=http://prometheus:9090 \
--       --param instance=node-1:9100 --param image_cleanup=crictl

local prometheus = require "prometheus"

runbook {
  name        = "examples/disk-pressure",
  title       = "NodeFilesystemSpaceFillingUp: when will it be full, who fills it, free space",
  description = [[Measures how full the alert's mountpoint is and how fast it fills (Prometheus'
deriv of node_filesystem_avail_bytes, or two df samples), lists the biggest directories and the big
files written in the last hour, and on /, /sysroot or /var removes unused container images when
asked; fails while the filesystem would still be full within 24 hours.]],
  source      = "https://runbooks.prometheus-operator.dev/runbooks/node/nodefilesystemspacefillingup/ (Node Filesystem Space Filling Up)",
  severity    = "warning",
  tags        = { "example", "disk", "node", "incident" },
  mutates     = { "removes unused container images (docker image prune or crictl rmi --prune), when image_cleanup is set" },
  params = {
    mountpoint     = { default = "/", help = "the alert's mountpoint label" },
    prometheus     = { default = "", help = "Prometheus base URL for the trend (empty: sample df instead)" },
    instance       = { default = "", help = "the alert's instance label (node-exporter target), for Prometheus" },
    sample_seconds = { type = "number", default = 60, help = "without Prometheus: seconds between the two df samples" },
    warning_hours  = { type = "number", default = 24, help = "full within this many hours: warning" },
    critical_hours = { type = "number", default = 4, help = "full within this many hours: critical" },
    warning_avail_pct = { type = "number", default = 40, help = "available space (%) below which the alert can fire" },
    recent_minutes = { type = "number", default = 60, help = "files written in the last N minutes count as recent offenders" },
    big_file_mb    = { type = "number", default = 100, help = "size from which a recent file is listed (MB)" },
    top            = { type = "number", default = 5, help = "how many directories and files to show" },
    image_cleanup  = { default = "none", choices = { "none", "docker", "crictl" },
                       help = "remove unused images on /, /sysroot or /var: docker (dangling) or crictl (unused)" },
  },
}

local IMAGE_MOUNTS = { ["/"] = true, ["/sysroot"] = true, ["/var"] = true }

-- df -P -k of one mountpoint -> { device, size_kb, used_kb, avail_kb, avail_pct, mount }
local function df(path)
  local out = exec{ "df", "-P", "-k", path }.stdout
  local line = out:match("\n([^\n]+)")
  local dev, size, used, avail, mount = (line or ""):match("^(%S+)%s+(%d+)%s+(%d+)%s+(%d+)%s+%d+%%%s+(.+)$")
  check(dev, "df printed nothing usable for %s:\n%s", path, out)
  size, used, avail = tonumber(size), tonumber(used), tonumber(avail)
  return { device = dev, size_kb = size, used_kb = used, avail_kb = avail, mount = mount,
           avail_pct = size > 0 and avail * 100 / size or 0 }
end

local function gb(kb) return string.format("%.1f GB", kb / 1048576) end

step("Current usage", {
  description = "df of the alert's mountpoint: size, used, available.",
}, function()
  local d = df(params.mountpoint)
  check(d.mount == params.mountpoint, "%s is not a mountpoint: it is on %s (mounted at %s)",
        params.mountpoint, d.device, d.mount)
  state.before = d
  log.info("%s (%s): %s available of %s (%.1f%%)", d.mount, d.device, gb(d.avail_kb), gb(d.size_kb), d.avail_pct)
  state.low = d.avail_pct < params.warning_avail_pct
  if not state.low then
    log.info("more than %d%% available: the alert's usage condition does not hold", params.warning_avail_pct)
  end
end)

step("When will it be full?", {
  description = "deriv(node_filesystem_avail_bytes[6h]) (and [24h], for a periodic pattern), or " ..
                "two df samples; hours left at that rate.",
}, function()
  local rate -- bytes per second the available space shrinks by (> 0: filling up)
  if params.prometheus ~= "" then
    local sel = string.format('mountpoint="%s"', params.mountpoint)
    if params.instance ~= "" then sel = sel .. string.format(',instance="%s"', params.instance) end
    local d6 = prometheus.query_value(params.prometheus,
      string.format("min(deriv(node_filesystem_avail_bytes{%s}[6h]))", sel))
    local d24 = prometheus.query_value(params.prometheus,
      string.format("min(deriv(node_filesystem_avail_bytes{%s}[24h]))", sel))
    check(d6 ~= nil, "Prometheus has no node_filesystem_avail_bytes{%s}", sel)
    rate = -d6
    log.info("trend: %.0f bytes/s over 6 h, %s over 24 h", -d6,
             d24 and string.format("%.0f bytes/s", -d24) or "no data")
    if rate > 0 and d24 and d24 >= 0 then
      state.periodic = true
      log.warn("filling over 6 h but not over 24 h: likely a periodic write-and-clean-up pattern " ..
               "(a false alert, says the source) -- check the dashboard")
    end
  else
    local first = state.before
    sleep(params.sample_seconds)
    local second = df(params.mountpoint)
    rate = (first.avail_kb - second.avail_kb) * 1024 / params.sample_seconds
    state.before = second
    log.info("trend: %.0f bytes/s over %d s of df samples", rate, params.sample_seconds)
  end
  state.rate = rate
  if rate <= 0 then
    state.hours_left = nil
    state.severity = "none"
    log.info("%s is not filling up", params.mountpoint)
    return
  end
  state.hours_left = state.before.avail_kb * 1024 / rate / 3600
  state.severity = state.hours_left < params.critical_hours and "critical"
                   or state.hours_left < params.warning_hours and "warning" or "none"
  log[state.severity == "none" and "info" or "warn"]("%s is full in %.1f h at this rate (%s)",
    params.mountpoint, state.hours_left, state.severity)
end)

step("Worst and recent offenders", {
  description = "du: the biggest directories on the filesystem; find: big files written recently.",
}, function()
  local r = exec({ "du", "-x", "-k", "-d", "1", params.mountpoint }, { check = false, timeout = 300 })
  local dirs = {}
  for kb, dir in r.stdout:gmatch("(%d+)%s+([^\n]+)") do
    if dir ~= params.mountpoint then dirs[#dirs + 1] = { dir = dir, kb = tonumber(kb) } end
  end
  table.sort(dirs, function(a, b) return a.kb > b.kb end)
  state.biggest = {}
  for i = 1, math.min(params.top, #dirs) do
    state.biggest[i] = dirs[i].dir
    log.info("%10s  %s", gb(dirs[i].kb), dirs[i].dir)
  end
  if r.code ~= 0 then log.warn("du could not read everything under %s (exit %d)", params.mountpoint, r.code) end
  local f = exec({ "find", params.mountpoint, "-xdev", "-type", "f",
                   "-mmin", "-" .. math.floor(params.recent_minutes),
                   "-size", "+" .. math.floor(params.big_file_mb) .. "M",
                   "-printf", "%s %p\n" }, { check = false, timeout = 300 })
  local files = {}
  for size, path in f.stdout:gmatch("(%d+) ([^\n]+)") do files[#files + 1] = { path = path, bytes = tonumber(size) } end
  table.sort(files, function(a, b) return a.bytes > b.bytes end)
  state.recent = {}
  for i = 1, math.min(params.top, #files) do
    state.recent[i] = files[i].path
    log.warn("written in the last %d min: %s (%s)", params.recent_minutes, files[i].path,
             gb(files[i].bytes / 1024))
  end
  if #files == 0 then
    log.info("no file over %d MB written in the last %d min: organic growth rather than a runaway writer",
             params.big_file_mb, params.recent_minutes)
  end
end)

step("Remove unused images", {
  description = "Mitigation for /, /sysroot and /var: docker image prune (dangling images) or " ..
                "crictl rmi --prune (unused images), after confirm().",
  when = function()
    return params.image_cleanup ~= "none" and IMAGE_MOUNTS[params.mountpoint]
           and (state.low or state.severity ~= "none")
  end,
}, function()
  local how = params.image_cleanup == "docker" and "docker image prune (dangling images)"
              or "crictl rmi --prune (every image no container uses)"
  if not confirm(string.format("Free space on %s with %s", params.mountpoint, how)) then
    log.warn("images left in place")
    return
  end
  if params.image_cleanup == "docker" then
    local r = docker.prune{ images = true }
    log.info("docker reclaimed %s", gb((r.space_reclaimed or 0) / 1024))
  else
    exec{ "crictl", "rmi", "--prune" }
  end
  state.cleaned = params.image_cleanup
end)

step("Measure again", {
  description = "df after the clean-up: how much it freed.",
  when = function() return state.cleaned ~= nil and not dry_run() end,
}, function()
  local d = df(params.mountpoint)
  state.freed_kb = d.avail_kb - state.before.avail_kb
  state.after = d
  log.info("%s: %s available (%.1f%%), %s freed", d.mount, gb(d.avail_kb), d.avail_pct, gb(math.max(state.freed_kb, 0)))
  if state.rate and state.rate > 0 then
    state.hours_left = d.avail_kb * 1024 / state.rate / 3600
    log.info("full in %.1f h at the same rate", state.hours_left)
  end
end)

step("Verdict", function()
  local d = state.after or state.before
  local filling = state.hours_left ~= nil and state.hours_left < params.warning_hours
  if not filling then
    log[d.avail_pct < params.warning_avail_pct and "warn" or "info"](
      "%s: %.1f%% available, not full within %d h at the current rate", params.mountpoint,
      d.avail_pct, params.warning_hours)
    return
  end
  if state.after and d.avail_pct >= params.warning_avail_pct then
    log.info("%s: %.1f%% available after the clean-up", params.mountpoint, d.avail_pct)
    return
  end
  if state.cleaned and dry_run() then
    log.info("rehearsal: a live run would have removed images (%s) and measured again", state.cleaned)
    return
  end
  check(false, "%s fills up (%s): %.1f%% available, full in %.1f h; biggest: %s%s -- find who writes there",
        params.mountpoint, state.severity, d.avail_pct, state.hours_left,
        table.concat(state.biggest or {}, ", "),
        #(state.recent or {}) > 0 and ("; written recently: " .. table.concat(state.recent, ", ")) or "")
end)
