runbook {
  name        = "skafu/database-monthly-backup",
  title       = "Skafu: monthly full database backup (RDS snapshot)",
  description = [[Database_Maintenance › Monthly_Tasks › Full database backup as a manual RDS snapshot
(kept outside the 30-day automated retention): `aws rds create-db-snapshot`, wait until it is
available, verify it (encrypted, size of the instance), and optionally copy it to another region
(Backup Procedures: "cross-region replication"). A failed backup is reported to the team.
003_8c25f41fdd75a5fb.txt › Maintenance Procedures › Database Maintenance › Monthly_Tasks; Backup
and Recovery › Backup Procedures › Database_Backups.]],
  source      = "003_8c25f41fdd75a5fb.txt › Maintenance Procedures › Database Maintenance › Monthly_Tasks › Full database backup",
  schedule    = "monthly",
  tags        = { "skafu", "backup", "monthly" },
  mutates     = { "creates a manual RDS snapshot <db>-monthly-<YYYYMMDD> (and its copy in copy_region)",
                  "posts the result to Slack" },
  params = {
    region      = { default = "us-east-1", help = "AWS region (the document names none)" },
    db_instance = { default = "skafu-production", help = "RDS instance identifier (not in the document)" },
    copy_region = { default = "", help = "also copy the snapshot to this region (cross-region replication; empty: no copy)" },
    kms_key_id  = { default = "", help = "KMS key in copy_region for an encrypted snapshot's copy" },
    timeout     = { type = "number", default = 7200, help = "seconds to wait for the snapshot" },
    every       = { type = "number", default = 60, help = "seconds between checks" },
  },
}

local skafu = require "skafu"

local function snapshot(region, id)
  local r = skafu.aws(region, { "rds", "describe-db-snapshots", "--db-snapshot-identifier", id }, { check = false })
  return r and (r.DBSnapshots or {})[1] or nil
end

local function wait_snapshot(region, id)
  local last = "not found"
  local ok, err = pcall(wait_until, function()
    local s = snapshot(region, id)
    last = s and string.format("%s %s%%", s.Status, tostring(s.PercentProgress or 0)) or "not found"
    return s ~= nil and (s.Status == "available" or s.Status == "failed")
  end, { timeout = params.timeout, every = params.every, what = id .. " available" })
  local s = snapshot(region, id)
  if not ok or not s or s.Status ~= "available" then
    return nil, string.format("%s in %s: %s%s", id, region, last, ok and "" or (" (" .. tostring(err) .. ")"))
  end
  return s
end

step("Check the database", {
  description = "The instance exists and is available (`aws rds describe-db-instances`).",
}, function()
  local db = skafu.db_instance(params.region, params.db_instance)
  check(db, "RDS instance %s not found in %s", params.db_instance, params.region)
  check(skafu.DB_UP[db.DBInstanceStatus], "%s is %s: no snapshot possible", params.db_instance, db.DBInstanceStatus)
  state.allocated_gb = db.AllocatedStorage
  state.encrypted = db.StorageEncrypted == true
  state.snapshot = string.format("%s-monthly-%s", params.db_instance, os.date("!%Y%m%d", math.floor(now())))
  check(not snapshot(params.region, state.snapshot), "snapshot %s already exists", state.snapshot)
end)

step("Full database backup", {
  description = "Monthly_Tasks › Full database backup: `aws rds create-db-snapshot`, then wait " ..
                "until it is available (`aws rds describe-db-snapshots`).",
}, function()
  exec(skafu.aws_argv(params.region, { "rds", "create-db-snapshot", "--db-instance-identifier", params.db_instance,
                                       "--db-snapshot-identifier", state.snapshot,
                                       "--tags", "Key=skafu-backup,Value=monthly" }))
  state.rehearsal = dry_run() -- no snapshot was created: nothing to wait for or check
  if state.rehearsal then return end
  local s, why = wait_snapshot(params.region, state.snapshot)
  if not s then state.failed = why; log.error("backup failed: %s", why); return end
  state.snapshot_arn = s.DBSnapshotArn
  state.snapshot_gb = s.AllocatedStorage
  state.snapshot_encrypted = s.Encrypted == true
end)

step("Backup integrity checks", {
  description = "Database_Backups › verification › Backup integrity checks: the snapshot is as " ..
                "large as the instance and encrypted like it.",
  when = function() return not state.rehearsal and not state.failed end,
}, function()
  if state.snapshot_gb ~= state.allocated_gb then
    state.failed = string.format("%s is %s GiB, the instance %s GiB", state.snapshot, tostring(state.snapshot_gb),
                                 tostring(state.allocated_gb))
  elseif state.encrypted and not state.snapshot_encrypted then
    state.failed = state.snapshot .. " is not encrypted"
  end
  if state.failed then log.error("%s", state.failed) else log.info("%s verified", state.snapshot) end
end)

step("Cross-region copy", {
  description = "Database_Backups › storage_location › cross-region replication: " ..
                "`aws rds copy-db-snapshot` into copy_region, wait until available.",
  when = function() return params.copy_region ~= "" and not state.failed end,
}, function()
  local args = { "rds", "copy-db-snapshot", "--source-db-snapshot-identifier", state.snapshot_arn or state.snapshot,
                 "--target-db-snapshot-identifier", state.snapshot, "--source-region", params.region, "--copy-tags" }
  if params.kms_key_id ~= "" then args[#args + 1] = "--kms-key-id"; args[#args + 1] = params.kms_key_id end
  exec(skafu.aws_argv(params.copy_region, args))
  if state.rehearsal then return end
  local s, why = wait_snapshot(params.copy_region, state.snapshot)
  if not s then state.failed = "copy " .. why; log.error("%s", state.failed); return end
  state.copied = true
end)

step("Report the backup", {
  description = "The result to the team; a failed backup fails the run.",
}, function()
  if state.failed then
    notify.slack{ text = string.format("Skafu monthly database backup of %s FAILED: %s", params.db_instance, state.failed) }
    check(false, "monthly backup failed: %s", state.failed)
  end
  notify.slack{ text = string.format("Skafu monthly database backup: %s (%s GiB)%s%s", state.snapshot,
    tostring(state.snapshot_gb or state.allocated_gb), state.copied and (", copied to " .. params.copy_region) or "",
    state.rehearsal and " [dry-run]" or "") }
end)
