-- examples/quickstart.lua: a backup drill that runs on any Linux machine.
--
-- It backs up a directory with tar, verifies the archive with sha256sum,
-- rehearses the restore into a scratch directory and compares it with diff,
-- then prunes old backups.  With no params it works on sample data under
-- $TMPDIR/runbook-quickstart, which its first step creates.
--
--   runbook run examples/quickstart.lua --dry-run   # reads run, changes are shown as `would:`
--   runbook run examples/quickstart.lua             # live, recorded in the audit log
--   runbook run examples/quickstart.lua --confirm   # approve each step (y/s/a/q)
--   runbook run examples/quickstart.lua --param source=$HOME/notes --param keep=5

local WORK = env("TMPDIR", "/tmp") .. "/runbook-quickstart"

runbook {
  name        = "examples/quickstart",
  title       = "Backup drill: back up, verify, rehearse the restore",
  description = [[Back up a directory with tar, verify the archive, restore it
into a scratch directory and compare, then keep only the newest backups.]],
  tags        = { "example", "backup", "dr-drill" },
  params = {
    source     = { default = WORK .. "/data", help = "directory to back up" },
    backup_dir = { default = WORK .. "/backups", help = "where timestamped backups go" },
    keep       = { type = "number", default = 3, help = "backups to keep (older ones are removed)" },
  },
}

local SAMPLE = WORK .. "/data"

step("Create sample data", {
  description = "Write a few files to back up (skipped when --param source=DIR names your own).",
  when = function() return params.source == SAMPLE end,
}, function()
  fs.mkdir(SAMPLE .. "/etc", { parents = true })
  fs.write(SAMPLE .. "/etc/app.conf", "listen = 127.0.0.1:8080\nworkers = 4\n")
  fs.write(SAMPLE .. "/orders.csv", "id,customer,total\n1,ada,12.50\n2,grace,99.00\n")
  fs.write(SAMPLE .. "/README", "Sample data for the runbook quickstart.\n")
  log.info("sample data in %s", SAMPLE)
end)

step("Back up the source", {
  description = "tar the source into a new timestamped directory under backup_dir.",
  -- run in reverse order for completed steps when a later step fails and
  -- the run was started with --rollback
  undo = function()
    fs.remove(state.backup, { recursive = true })
  end,
}, function()
  check(params.keep >= 1, "keep must be at least 1, got %s", params.keep)
  local t = now()
  local stamp = os.date("!%Y%m%dT%H%M%S", math.floor(t)) .. string.format(".%03dZ", math.floor(t % 1 * 1000))
  state.backup = params.backup_dir .. "/" .. stamp
  state.archive = state.backup .. "/data.tar.gz"

  local parent, name = params.source:match("^(.*)/([^/]+)/*$")
  check(parent and name, "source must be a path like /dir/name, got %q", params.source)
  fs.mkdir(state.backup, { parents = true })
  exec{ "tar", "-czf", state.archive, "-C", parent, name }
  -- In --dry-run a mutating action is not performed; it returns a result
  -- shaped like success.  dry_run() says this run is a rehearsal, so later
  -- steps do not read an archive that was never written.
  state.rehearsal = dry_run()
  fs.write(state.backup .. "/MANIFEST",
           string.format("source: %s\ncreated: %s\narchive: data.tar.gz\n", params.source, stamp))
  log.info("backup %s", state.archive)
end)

step("Verify the backup", {
  description = "Checksum the archive, record it next to it, and list its contents.",
  -- nothing to verify in a dry-run, or if the operator skipped the backup (--confirm)
  when = function() return state.archive ~= nil and not state.rehearsal end,
}, function()
  local sum = exec{ "sha256sum", state.archive }.stdout:match("^(%x+)")
  check(sum, "sha256sum printed no checksum for %s", state.archive)
  fs.write(state.backup .. "/SHA256SUMS", sum .. "  data.tar.gz\n")
  exec({ "sha256sum", "--check", "--quiet", "SHA256SUMS" }, { cwd = state.backup })

  -- tar is not on the read-only allowlist; this call only lists, so say so
  local list = exec({ "tar", "-tzf", state.archive }, { readonly = true })
  local entries = select(2, list.stdout:gsub("\n", "\n"))
  check(entries > 0, "the archive %s is empty", state.archive)
  state.sha256 = sum
  log.info("sha256 %s, %d entries", sum:sub(1, 16) .. "…", entries)
end)

step("Rehearse the restore", {
  description = "Extract the archive into a scratch directory and diff it against the source.",
  when = function() return state.archive ~= nil end,
}, function()
  local scratch = WORK .. "/restore-drill"
  fs.remove(scratch, { recursive = true, check = false }) -- check = false: fine if absent
  fs.mkdir(scratch, { parents = true })
  exec{ "tar", "-xzf", state.archive, "-C", scratch }
  if state.rehearsal then
    log.info("dry-run: nothing was extracted, so there is nothing to compare")
    return
  end
  local name = params.source:match("([^/]+)/*$")
  local d = exec({ "diff", "-r", params.source, scratch .. "/" .. name }, { check = false })
  check(d.code == 0, "the restored copy differs from %s:\n%s", params.source, d.stdout)
  fs.remove(scratch, { recursive = true })
  log.info("restore drill passed: the restored copy matches %s", params.source)
end)

step("Prune old backups", {
  description = "Keep the newest `keep` backups in backup_dir, remove the rest.",
}, function()
  if not fs.exists(params.backup_dir) then
    log.info("no backups in %s yet", params.backup_dir)
    return
  end
  local backups = fs.list(params.backup_dir) -- sorted: timestamps sort oldest first
  local extra = #backups - params.keep
  for i = 1, extra do
    fs.remove(params.backup_dir .. "/" .. backups[i], { recursive = true })
  end
  log.info("%d backup(s) kept, %d removed", math.min(#backups, params.keep), math.max(extra, 0))
end)
