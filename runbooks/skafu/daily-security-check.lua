runbook {
  name        = "skafu/daily-security-check",
  title       = "Skafu: daily security and compliance checks",
  description = [[The document's Daily_Health_Checks › Security_Checks and Compliance_Monitoring (and the
matching Daily_Security_Tasks), read through the aws CLI: GuardDuty findings, CloudTrail logging
and log file validation, failed console logins, certificate expiration, security group changes,
AWS Config compliance, failed backup jobs, log retention, encryption. Findings go to the team on
Slack; a finding showing a compromise is a P0 (skafu/incident-classify). 003_8c25f41fdd75a5fb.txt
› Daily Operations › Health Check Procedures › Security_Checks, Compliance_Monitoring;
Maintenance Procedures › Security Maintenance › Daily_Security_Tasks.]],
  source      = "003_8c25f41fdd75a5fb.txt › Daily Operations › Health Check Procedures › Security_Checks, Compliance_Monitoring",
  schedule    = "daily",
  tags        = { "skafu", "health", "security", "daily" },
  mutates     = { "posts the findings to Slack" },
  params = {
    region        = { default = "us-east-1", help = "AWS region (the document names none)" },
    db_instance   = { default = "skafu-production", help = "RDS instance whose encryption to check (not in the document)" },
    buckets       = { type = "list", default = {}, help = "S3 buckets whose default encryption to check (none named in the document)" },
    hours         = { type = "number", default = 24, help = "look-back window, hours (a daily check)" },
    guardduty_min_severity = { type = "number", default = 7, help = "GuardDuty severity to report (7 = High)" },
    failed_logins_max = { type = "number", default = 10, help = "failed console logins per window before it is a finding (not in the document)" },
    cert_warn_days    = { type = "number", default = 30, help = "report certificates expiring within this many days (not in the document)" },
    log_retention_min_days = { type = "number", default = 90, help = "minimum log retention (not in the document; 90 days is its configuration backup retention)" },
    notify        = { type = "boolean", default = true, help = "post the findings to Slack" },
  },
}

local skafu = require "skafu"

local SG_EVENTS = { AuthorizeSecurityGroupIngress = true, AuthorizeSecurityGroupEgress = true,
                    RevokeSecurityGroupIngress = true, RevokeSecurityGroupEgress = true,
                    CreateSecurityGroup = true, DeleteSecurityGroup = true, ModifySecurityGroupRules = true }

local function aws(args, opts) return skafu.aws(params.region, args, opts) end

local function finding(fmt, ...)
  local msg = string.format(fmt, ...)
  state.findings[#state.findings + 1] = msg
  log.warn("%s", msg)
end

local function since() return skafu.iso(now() - params.hours * 3600) end

step("GuardDuty findings review", {
  description = "Security_Checks › GuardDuty findings review: `aws guardduty list-detectors`, " ..
                "`list-findings` (severity >= 7, not archived), `get-findings`.",
}, function()
  state.findings = {}
  local detectors = aws({ "guardduty", "list-detectors" }).DetectorIds or {}
  if #detectors == 0 then
    finding("GuardDuty is not enabled in %s", params.region)
    return
  end
  local criteria = json.encode({ Criterion = { severity = { Gte = params.guardduty_min_severity },
                                               ["service.archived"] = { Eq = { "false" } } } })
  state.guardduty = 0
  for _, d in ipairs(detectors) do
    local ids = aws({ "guardduty", "list-findings", "--detector-id", d, "--finding-criteria", criteria }).FindingIds or {}
    state.guardduty = state.guardduty + #ids
    if #ids > 0 then
      local args = { "guardduty", "get-findings", "--detector-id", d, "--finding-ids" }
      for i = 1, math.min(#ids, 10) do args[#args + 1] = ids[i] end
      for _, f in ipairs(aws(args).Findings or {}) do
        finding("GuardDuty %.1f %s: %s", f.Severity or 0, f.Type or "?", f.Title or "")
      end
    end
  end
end)

step("CloudTrail log integrity", {
  description = "Security_Checks › CloudTrail log integrity: every trail logging " ..
                "(`aws cloudtrail get-trail-status`) with log file validation on " ..
                "(`describe-trails`).",
}, function()
  local trails = aws({ "cloudtrail", "describe-trails" }).trailList or {}
  if #trails == 0 then finding("no CloudTrail trail in %s", params.region) end
  for _, t in ipairs(trails) do
    if not t.LogFileValidationEnabled then finding("CloudTrail %s: log file validation is off", t.Name) end
    local st = aws({ "cloudtrail", "get-trail-status", "--name", t.TrailARN or t.Name })
    if not st.IsLogging then finding("CloudTrail %s is not logging", t.Name) end
    if st.LatestDeliveryError then finding("CloudTrail %s: delivery error %s", t.Name, st.LatestDeliveryError) end
  end
  state.trails = #trails
end)

step("Failed authentication attempts", {
  description = "Security_Checks › Failed authentication attempts: failed console logins in " ..
                "the window (`aws cloudtrail lookup-events`, ConsoleLogin).",
}, function()
  local r = aws({ "cloudtrail", "lookup-events", "--lookup-attributes",
                  "AttributeKey=EventName,AttributeValue=ConsoleLogin", "--start-time", since() })
  local failed, who = 0, {}
  for _, e in ipairs(r.Events or {}) do
    local ok, ev = pcall(json.decode, e.CloudTrailEvent or "{}")
    if ok and type(ev) == "table" and (ev.responseElements or {}).ConsoleLogin == "Failure" then
      failed = failed + 1
      who[e.Username or "?"] = (who[e.Username or "?"] or 0) + 1
    end
  end
  state.failed_logins = failed
  if failed > params.failed_logins_max then
    local parts = {}
    for u, n in pairs(who) do parts[#parts + 1] = string.format("%s %d", u, n) end
    table.sort(parts)
    finding("%d failed console logins in %d h (more than %d): %s", failed, params.hours,
            params.failed_logins_max, table.concat(parts, ", "))
  else
    log.info("%d failed console login(s) in %d h", failed, params.hours)
  end
end)

step("Certificate expiration status", {
  description = "Security_Checks › Certificate expiration status: ACM certificates " ..
                "(`aws acm list-certificates`) expiring within 30 days.",
}, function()
  local certs = aws({ "acm", "list-certificates", "--certificate-statuses", "ISSUED", "EXPIRED" }).CertificateSummaryList or {}
  state.certificates = #certs
  for _, c in ipairs(certs) do
    local not_after = c.NotAfter
    if not_after == nil then
      not_after = (aws({ "acm", "describe-certificate", "--certificate-arn", c.CertificateArn }).Certificate or {}).NotAfter
    end
    local t = skafu.iso_time(not_after)
    if t then
      local days = (t - now()) / 86400
      if days < params.cert_warn_days then
        finding("certificate %s %s %s (%.0f days)", c.DomainName or c.CertificateArn,
                days < 0 and "expired on" or "expires on", skafu.iso(t), days)
      end
    end
  end
end)

step("Security group changes", {
  description = "Security_Checks › Security group changes: EC2 security group events in the " ..
                "window (`aws cloudtrail lookup-events`, EventSource ec2.amazonaws.com).",
}, function()
  local r = aws({ "cloudtrail", "lookup-events", "--lookup-attributes",
                  "AttributeKey=EventSource,AttributeValue=ec2.amazonaws.com", "--start-time", since() })
  state.sg_changes = 0
  for _, e in ipairs(r.Events or {}) do
    if SG_EVENTS[e.EventName] then
      state.sg_changes = state.sg_changes + 1
      local target = "?"
      for _, res in ipairs(e.Resources or {}) do target = res.ResourceName or target end
      finding("security group change to review: %s %s by %s at %s", e.EventName, target, e.Username or "?",
              tostring(e.EventTime))
    end
  end
end)

step("AWS Config compliance status", {
  description = "Compliance_Monitoring › AWS Config compliance status: " ..
                "`aws configservice describe-compliance-by-config-rule --compliance-types NON_COMPLIANT`.",
}, function()
  local rules = aws({ "configservice", "describe-compliance-by-config-rule", "--compliance-types",
                      "NON_COMPLIANT" }).ComplianceByConfigRules or {}
  state.noncompliant_rules = #rules
  for _, r in ipairs(rules) do finding("AWS Config rule %s is NON_COMPLIANT", r.ConfigRuleName) end
end)

step("Backup completion verification", {
  description = "Compliance_Monitoring › Backup completion verification: failed or aborted " ..
                "AWS Backup jobs in the window (`aws backup list-backup-jobs --by-state`).",
}, function()
  state.failed_backups = 0
  for _, st in ipairs({ "FAILED", "ABORTED", "EXPIRED" }) do
    local jobs = aws({ "backup", "list-backup-jobs", "--by-state", st, "--by-created-after", since() }).BackupJobs or {}
    for _, j in ipairs(jobs) do
      state.failed_backups = state.failed_backups + 1
      finding("backup job %s of %s: %s %s", j.BackupJobId or "?", j.ResourceArn or "?", st, j.StatusMessage or "")
    end
  end
end)

step("Log retention compliance", {
  description = "Compliance_Monitoring › Log retention compliance: CloudWatch log groups with " ..
                "no retention or less than the minimum (`aws logs describe-log-groups`).",
}, function()
  local groups = aws({ "logs", "describe-log-groups" }).logGroups or {}
  local never, short = {}, {}
  for _, g in ipairs(groups) do
    if g.retentionInDays == nil then never[#never + 1] = g.logGroupName
    elseif g.retentionInDays < params.log_retention_min_days then
      short[#short + 1] = string.format("%s (%d days)", g.logGroupName, g.retentionInDays)
    end
  end
  state.log_groups = #groups
  if #short > 0 then finding("log groups kept less than %d days: %s", params.log_retention_min_days, table.concat(short, ", ")) end
  if #never > 0 then finding("log groups without a retention policy: %s", table.concat(never, ", ")) end
end)

step("Encryption status verification", {
  description = "Compliance_Monitoring › Encryption status verification: the database's storage " ..
                "(`aws rds describe-db-instances`) and the buckets' default encryption " ..
                "(`aws s3api get-bucket-encryption`).",
}, function()
  local db = skafu.db_instance(params.region, params.db_instance)
  if not db then
    finding("database %s not found", params.db_instance)
  elseif not db.StorageEncrypted then
    finding("database %s storage is not encrypted", params.db_instance)
  end
  for _, b in ipairs(params.buckets) do
    local r, res = aws({ "s3api", "get-bucket-encryption", "--bucket", b }, { check = false })
    if not r then
      finding("bucket %s: no default encryption readable (%s)", b, ((res.stderr or ""):match("([^\n]+)%s*$")) or "?")
    end
  end
end)

step("Report the findings", {
  description = "Daily_Security_Tasks › Security alert review: the findings to the team; a " ..
                "compromise is a P0 (run skafu/incident-classify --param observed=auth_compromised).",
  when = function() return #state.findings > 0 and params.notify end,
}, function()
  notify.slack{ text = string.format("Skafu daily security check: %d finding(s)\n- %s", #state.findings,
                                     table.concat(state.findings, "\n- ")) }
  log.warn("if a finding shows a compromise or a breach: skafu/incident-classify --param observed=auth_compromised (or data_breach)")
end)
