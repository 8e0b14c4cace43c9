-- examples/disk-usage.lua: "the disk is filling up" -- a read-only diagnosis.
--
-- Every action here is a read (df, du, ps are on the read-only allowlist),
-- so --dry-run runs all of it for real and changes nothing.  The run fails
-- (exit 1) when a filesystem is above the threshold, so cron or CI can
-- alert on it.  The only write is the optional JSON report.
--
--   runbook run examples/disk-usage.lua
--   runbook run examples/disk-usage.lua -v --param path=/var --param threshold=80
--   runbook run examples/disk-usage.lua --param report=/tmp/disk.json --dry-run   # would: fs write

runbook {
  name        = "examples/disk-usage",
  title       = "Disk filling up: what is using the space?",
  description = [[Filesystem usage, the biggest directories under a path and the
biggest processes; fails when a filesystem is above the threshold.]],
  tags        = { "example", "diagnosis", "disk" },
  params = {
    path      = { default = env("HOME", "/tmp"), help = "directory whose children to size" },
    top       = { type = "number", default = 5, help = "how many directories and processes to show" },
    threshold = { type = "number", default = 90, help = "usage (%) above which a filesystem is too full" },
    report    = { default = "", help = "also write the findings as JSON to this file" },
  },
}

step("Filesystems", { description = "df: usage of every mounted filesystem." }, function()
  local out = exec{ "df", "-P", "-k" }.stdout
  state.filesystems, state.too_full = {}, {}
  for line in out:gmatch("[^\n]+") do
    local dev, size, used, pct, mount = line:match("^(%S+)%s+(%d+)%s+(%d+)%s+%d+%s+(%d+)%%%s+(.+)$")
    if dev and tonumber(size) > 0 then
      local fsinfo = { device = dev, mount = mount, size_gb = tonumber(size) / 2^20, used_pct = tonumber(pct) }
      table.insert(state.filesystems, fsinfo)
      local flag = ""
      if fsinfo.used_pct > params.threshold then
        table.insert(state.too_full, mount)
        flag = "  <-- above " .. params.threshold .. "%"
      end
      log.info("%-24s %3d%% of %7.1f GB%s", mount, fsinfo.used_pct, fsinfo.size_gb, flag)
    end
  end
  check(#state.filesystems > 0, "df printed no filesystems:\n%s", out)
end)

step("Biggest directories", { description = "du: the largest children of `path`, on its filesystem." }, function()
  -- du exits 1 when some directories are unreadable; its totals are still useful
  local r = exec({ "du", "-x", "-k", "-d", "1", params.path }, { check = false, timeout = 120 })
  local dirs = {}
  for kb, dir in r.stdout:gmatch("(%d+)%s+([^\n]+)") do
    if dir ~= params.path then
      table.insert(dirs, { dir = dir, mb = tonumber(kb) / 1024 })
    end
  end
  table.sort(dirs, function(a, b) return a.mb > b.mb end)
  state.biggest_dirs = {}
  for i = 1, math.min(params.top, #dirs) do
    state.biggest_dirs[i] = dirs[i]
    log.info("%10.1f MB  %s", dirs[i].mb, dirs[i].dir)
  end
  if r.code ~= 0 then
    log.warn("du could not read everything under %s (exit %d)", params.path, r.code)
  end
end)

step("Biggest processes", { description = "ps: resident memory, largest first." }, function()
  local out = exec{ "ps", "-eo", "pid=,rss=,comm=", "--sort=-rss" }.stdout
  state.biggest_procs = {}
  for pid, rss, comm in out:gmatch("%s*(%d+)%s+(%d+)%s+([^\n]+)") do
    if #state.biggest_procs >= params.top then break end
    table.insert(state.biggest_procs, { pid = tonumber(pid), rss_mb = tonumber(rss) / 1024, command = comm })
    log.info("%8d  %8.1f MB  %s", tonumber(pid), tonumber(rss) / 1024, comm)
  end
end)

step("Write the report", {
  description = "The findings as JSON, when --param report=FILE is given.",
  when = function() return params.report ~= "" end,
}, function()
  fs.write(params.report, json.encode({
    host = env("HOSTNAME", ""), threshold = params.threshold,
    filesystems = state.filesystems, biggest_dirs = state.biggest_dirs,
    biggest_processes = state.biggest_procs,
  }) .. "\n")
  log.info("report: %s", params.report)
end)

step("Verdict", function()
  check(#state.too_full == 0, "%d filesystem(s) above %d%%: %s",
        #state.too_full, params.threshold, table.concat(state.too_full, ", "))
  log.info("every filesystem is below %d%%", params.threshold)
end)
