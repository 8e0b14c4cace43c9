runbook {
  name        = "meta-platform/manifest-recovery",
  title       = "254Carbon meta: recover corrupted service manifests",
  description = [[Service manifest corruption: identifies the corrupted manifests (natively, every
manifests/collected/*.yaml that does not parse or validate, and the errors of `catalog
validate --report`), collects a fresh manifest for each (collect_manifests.py --repo-filter),
validates it (validate_catalog.py --manifest) and rebuilds the catalog (catalog build --force).
000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.2 Service Restoration.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 5. Disaster Recovery › 5.2 Service Restoration",
  tags        = { "meta-platform", "dr" },
  mutates     = { "re-collects the corrupted services' manifests", "rebuilds the catalog (catalog build --force)",
                  "posts an unrecoverable manifest to Slack" },
  params = {
    root          = { default = ".", help = "the meta repository checkout" },
    python        = { default = "python", help = "Python interpreter" },
    manifests_dir = { default = "manifests/collected", help = "collected service manifests" },
    rules_file    = { default = "config/rules.yaml", help = "validation rules (built-in defaults when absent)" },
    services      = { type = "list", default = {}, help = "services to recover (default: the corrupted ones found)" },
    timeout       = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Identify corrupted service", {
  description = "5.2 step 1: python scripts/meta_cli.py catalog validate --report | grep -i error; natively: " ..
                "manifests/collected/*.yaml that do not parse or validate",
}, function()
  local r = exec(mp.cli(params, "catalog", "validate", "--report"), mp.opts(params, { readonly = true, check = false }))
  for line in (r.stdout .. "\n" .. r.stderr):gmatch("[^\n]+") do
    if line:lower():find("error") then log.warn("%s", line) end
  end
  state.corrupted = {}
  if #params.services > 0 then
    for _, s in ipairs(params.services) do state.corrupted[#state.corrupted + 1] = s end
  else
    local bad = mp.check_manifests(mp.path(params, params.manifests_dir), mp.load_rules(mp.path(params, params.rules_file)))
    for _, m in ipairs(bad) do
      state.corrupted[#state.corrupted + 1] = m.service
      log.error("%s (%s): %s", m.service, m.file, table.concat(m.problems, "; "))
    end
  end
  log.info("%d corrupted manifest(s)%s", #state.corrupted,
           #state.corrupted > 0 and (": " .. table.concat(state.corrupted, ", ")) or "")
end)

step("Collect fresh manifest", {
  description = "5.2 step 2: python scripts/collect_manifests.py --repo-filter corrupted-service",
  when = function() return #state.corrupted > 0 end,
}, function()
  for _, s in ipairs(state.corrupted) do
    exec(mp.script(params, "collect_manifests.py", "--repo-filter", s), mp.opts(params))
  end
end)

step("Validate new manifest", {
  description = "5.2 step 3: python scripts/validate_catalog.py --manifest manifests/collected/corrupted-service.yaml",
  when = function() return #state.corrupted > 0 end,
}, function()
  local failed = {}
  for _, s in ipairs(state.corrupted) do
    local r = exec(mp.script(params, "validate_catalog.py", "--manifest", params.manifests_dir .. "/" .. s .. ".yaml"),
                   mp.opts(params, { readonly = true, check = false }))
    if r.code ~= 0 then failed[#failed + 1] = s .. ": " .. ((r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$")) end
  end
  if #failed > 0 then
    notify.slack{ text = "254Carbon manifest recovery: fresh manifest still invalid -- fix it in the service repository (3.2)\n- " ..
                         table.concat(failed, "\n- ") }
  end
  check(#failed == 0, "fresh manifest(s) invalid, catalog not rebuilt: %s", table.concat(failed, "; "))
end)

step("Rebuild catalog", {
  description = "5.2 step 4: python scripts/meta_cli.py catalog build --force",
  when = function() return #state.corrupted > 0 end,
}, function()
  exec(mp.cli(params, "catalog", "build", "--force"), mp.opts(params))
  state.rebuilt = true
end)
