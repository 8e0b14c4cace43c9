runbook {
  name        = "meta-platform/release-train-planning",
  title       = "254Carbon meta: weekly release train planning (Monday 10:00 UTC)",
  description = [[Generates the week's release train plan (meta_cli.py release plan --train
weekly-DATE), validates it and the upgrade eligibility with the document's scripts, then
checks the plan natively: 5-10 participants, every participant's quality score above 80,
no participant deployed before an internal dependency. Problems go to Slack and fail the run.
000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.1 Release Train Planning.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 2. Weekly Maintenance › 2.1 Release Train Planning",
  schedule    = "weekly",
  tags        = { "meta-platform", "maintenance", "weekly", "deploy" },
  mutates     = { "writes the release plan (release-trains.yaml)", "posts plan problems to Slack" },
  params = {
    root         = { default = ".", help = "the meta repository checkout" },
    python       = { default = "python", help = "Python interpreter" },
    catalog_file = { default = "catalog/service-index.yaml", help = "the catalog" },
    plan_file    = { default = "release-trains.yaml", help = "where the plan is written" },
    quality_file = { default = "catalog/latest_quality_snapshot.json", help = "quality snapshot" },
    train        = { default = "", help = "train name (default: weekly-YYYYMMDD, today UTC)" },
    min_quality  = { type = "number", default = 80, help = "2.1: participants meet quality thresholds (>80)" },
    min_services = { type = "number", default = 5, help = "2.1: plan generated with 5-10 services" },
    max_services = { type = "number", default = 10, help = "2.1: plan generated with 5-10 services" },
    timeout      = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

local function problem(fmt, ...)
  state.problems = state.problems or {}
  table.insert(state.problems, string.format(fmt, ...))
end

step("Generate release train plan", {
  description = "2.1: meta_cli.py release plan --train weekly-$(date +%Y%m%d) --output-file release-trains.yaml",
}, function()
  state.train = params.train ~= "" and params.train or ("weekly-" .. mp.datestamp())
  exec(mp.cli(params, "release", "plan", "--train", state.train, "--output-file", params.plan_file), mp.opts(params))
end)

step("Validate release train", {
  description = "2.1: python scripts/validate_release_train.py --plan-file release-trains.yaml",
}, function()
  local r = exec(mp.script(params, "validate_release_train.py", "--plan-file", params.plan_file),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then
    problem("validate_release_train.py exited %d: %s", r.code, (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
end)

step("Check upgrade eligibility", {
  description = "2.1: python scripts/check_upgrade_eligibility.py --catalog-file catalog/service-index.yaml",
}, function()
  local r = exec(mp.script(params, "check_upgrade_eligibility.py", "--catalog-file", params.catalog_file),
                 mp.opts(params, { readonly = true, check = false }))
  if r.code ~= 0 then problem("check_upgrade_eligibility.py exited %d", r.code) end
end)

step("Check the plan", {
  description = "2.1 Expected Output: 5-10 services, all participants >80, no blocking dependencies (order)",
}, function()
  local path = mp.path(params, params.plan_file)
  if not fs.exists(path) then
    problem("%s was not written", params.plan_file)
    return
  end
  local t = mp.find_train(yaml.load(path), state.train)
  if not t then
    problem("%s has no train %s", params.plan_file, state.train)
    return
  end
  local participants = t.participants or {}
  state.participants = #participants
  if #participants < params.min_services or #participants > params.max_services then
    problem("%d participant(s), expected %d-%d", #participants, params.min_services, params.max_services)
  end
  local scores = {}
  for _, s in ipairs(mp.quality_scores(mp.load_json(mp.path(params, params.quality_file)))) do scores[s.service] = s.score end
  for _, p in ipairs(participants) do
    if scores[p] == nil then problem("%s has no quality score", p)
    elseif scores[p] < params.min_quality then problem("%s quality %s is below %d", p, tostring(scores[p]), params.min_quality) end
  end
  local catalog = mp.load_catalog(mp.path(params, params.catalog_file))
  for _, msg in ipairs(mp.order_problems(participants, catalog)) do problem("%s", msg) end
  log.info("train %s: %d participant(s): %s", state.train, #participants, table.concat(participants, ", "))
end)

step("Report plan problems", {
  description = "blocked participants and failed checks, for the release manager",
  when = function() return #(state.problems or {}) > 0 end,
}, function()
  notify.slack{ text = string.format("254Carbon release train %s: %d problem(s)\n- %s", state.train,
    #state.problems, table.concat(state.problems, "\n- ")) }
end)

step("Expected output", {
  description = "2.1 Expected Output",
}, function()
  state.ready = #(state.problems or {}) == 0
  check(state.ready, "release train %s not ready: %s", state.train, table.concat(state.problems or {}, "; "))
end)
