runbook {
  name        = "skafu/daily-cost-check",
  title       = "Skafu: daily cost tracking",
  description = [[Cost Monitoring › Daily_Cost_Tracking through the aws CLI: yesterday's cost by service
(Cost Explorer), cost anomalies of the last days, budget variance (actual and forecast against
each budget), unused resources (unattached EBS volumes, unassociated Elastic IPs). Findings go
to the team on Slack; terminating anything stays a human decision. 003_8c25f41fdd75a5fb.txt ›
Cost Management › Cost Monitoring › Daily_Cost_Tracking.]],
  source      = "003_8c25f41fdd75a5fb.txt › Cost Management › Cost Monitoring › Daily_Cost_Tracking",
  schedule    = "daily",
  tags        = { "skafu", "maintenance", "cost", "daily" },
  mutates     = { "posts the findings to Slack" },
  params = {
    region         = { default = "us-east-1", help = "region of the resources to look for unused ones (the document names none)" },
    anomaly_days   = { type = "number", default = 7, help = "look-back for cost anomalies, days" },
    anomaly_min    = { type = "number", default = 10, help = "report anomalies with at least this total impact, USD (not in the document)" },
    notify         = { type = "boolean", default = true, help = "post the findings to Slack" },
  },
}

local skafu = require "skafu"

-- Cost Explorer and Budgets answer in us-east-1 only
local function global(args, opts) return skafu.aws("us-east-1", args, opts) end

local function finding(fmt, ...)
  local msg = string.format(fmt, ...)
  state.findings[#state.findings + 1] = msg
  log.warn("%s", msg)
end

local function day(offset) return os.date("!%Y-%m-%d", math.floor(now()) + offset * 86400) end

step("Service-specific cost analysis", {
  description = "Daily_Cost_Tracking › AWS Cost and Usage Report review; Service-specific cost " ..
                "analysis: yesterday's unblended cost by service (`aws ce get-cost-and-usage`).",
}, function()
  state.findings = {}
  local r = global({ "ce", "get-cost-and-usage", "--time-period", string.format("Start=%s,End=%s", day(-1), day(0)),
                     "--granularity", "DAILY", "--metrics", "UnblendedCost",
                     "--group-by", "Type=DIMENSION,Key=SERVICE" })
  local rows, total = {}, 0
  for _, period in ipairs(r.ResultsByTime or {}) do
    for _, g in ipairs(period.Groups or {}) do
      local amount = tonumber(((g.Metrics or {}).UnblendedCost or {}).Amount) or 0
      rows[#rows + 1] = { service = (g.Keys or {})[1] or "?", amount = amount }
      total = total + amount
    end
  end
  table.sort(rows, function(a, b) return a.amount > b.amount end)
  for i = 1, math.min(5, #rows) do log.info("%-40s %10.2f USD", rows[i].service, rows[i].amount) end
  state.cost_yesterday = math.floor(total * 100 + 0.5) / 100
  state.top_service = rows[1] and rows[1].service
  log.info("total %.2f USD on %s", total, day(-1))
end)

step("Anomaly detection review", {
  description = "Daily_Cost_Tracking › Anomaly detection review: `aws ce get-anomalies` for " ..
                "the last days.",
}, function()
  local r = global({ "ce", "get-anomalies", "--date-interval",
                     string.format("StartDate=%s,EndDate=%s", day(-params.anomaly_days), day(0)) })
  state.anomalies = 0
  for _, a in ipairs(r.Anomalies or {}) do
    local impact = tonumber((a.Impact or {}).TotalImpact) or 0
    if impact >= params.anomaly_min then
      state.anomalies = state.anomalies + 1
      local cause = ((a.RootCauses or {})[1] or {})
      finding("cost anomaly since %s: %.2f USD over expected (%s %s)", tostring(a.AnomalyStartDate),
              impact, cause.Service or "?", cause.UsageType or "")
    end
  end
end)

step("Budget variance analysis", {
  description = "Daily_Cost_Tracking › Budget variance analysis: actual and forecast spend " ..
                "against each budget (`aws sts get-caller-identity`, `aws budgets describe-budgets`).",
}, function()
  local account = global({ "sts", "get-caller-identity" }).Account
  check(account, "cannot read the account id")
  local budgets = global({ "budgets", "describe-budgets", "--account-id", account }).Budgets or {}
  state.budgets = #budgets
  for _, b in ipairs(budgets) do
    local limit = tonumber((b.BudgetLimit or {}).Amount)
    local spend = b.CalculatedSpend or {}
    local actual = tonumber((spend.ActualSpend or {}).Amount)
    local forecast = tonumber((spend.ForecastedSpend or {}).Amount)
    if limit and limit > 0 then
      if actual and actual > limit then
        finding("budget %s: %.2f spent of %.2f (%.0f%%)", b.BudgetName, actual, limit, actual / limit * 100)
      elseif forecast and forecast > limit then
        finding("budget %s: forecast %.2f over the limit %.2f", b.BudgetName, forecast, limit)
      else
        log.info("budget %s: %.2f of %.2f", b.BudgetName, actual or 0, limit)
      end
    end
  end
end)

step("Unused resource identification", {
  description = "Daily_Cost_Tracking › Unused resource identification: unattached EBS volumes " ..
                "(`aws ec2 describe-volumes --filters Name=status,Values=available`) and " ..
                "unassociated Elastic IPs (`aws ec2 describe-addresses`).",
}, function()
  local vols = skafu.aws(params.region, { "ec2", "describe-volumes", "--filters", "Name=status,Values=available" }).Volumes or {}
  local size = 0
  for _, v in ipairs(vols) do size = size + (v.Size or 0) end
  if #vols > 0 then finding("%d unattached EBS volume(s), %d GiB", #vols, size) end
  local idle = {}
  for _, a in ipairs(skafu.aws(params.region, { "ec2", "describe-addresses" }).Addresses or {}) do
    if not a.AssociationId then idle[#idle + 1] = a.PublicIp end
  end
  if #idle > 0 then finding("%d Elastic IP(s) not associated: %s", #idle, table.concat(idle, ", ")) end
  state.unused_volumes, state.idle_ips = #vols, #idle
end)

step("Report the findings", {
  description = "The findings to the team; Cost_Optimization_Activities (terminate, resize) are " ..
                "decided by people.",
  when = function() return #state.findings > 0 and params.notify end,
}, function()
  notify.slack{ text = string.format("Skafu daily cost check (%.2f USD yesterday): %d finding(s)\n- %s",
                                     state.cost_yesterday or 0, #state.findings, table.concat(state.findings, "\n- ")) }
end)
