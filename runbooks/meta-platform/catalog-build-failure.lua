runbook {
  name        = "meta-platform/catalog-build-failure",
  title       = "254Carbon meta: catalog build fails",
  description = [[Diagnoses a failing `catalog build`: which manifests fail (catalog validate --report, and
natively every manifests/collected/*.yaml), each failing manifest on its own
(validate_catalog.py --manifest), the GitHub API rate limit and token (collect_manifests.py
--dry-run, GET /rate_limit, GET /user). Manifest errors are posted (fix per 3.2); a temporary
issue (no manifest errors, API available) is retried with `catalog build --force`.
000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 1: Catalog Build Fails.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 3. Troubleshooting Guide › 3.1 Scenario 1: Catalog Build Fails",
  tags        = { "meta-platform", "incident" },
  mutates     = { "retries the catalog build with --force (after confirm)", "posts manifest errors to Slack" },
  params = {
    root          = { default = ".", help = "the meta repository checkout" },
    python        = { default = "python", help = "Python interpreter" },
    catalog_file  = { default = "catalog/service-index.yaml", help = "the catalog" },
    manifests_dir = { default = "manifests/collected", help = "collected service manifests" },
    rules_file    = { default = "config/rules.yaml", help = "validation rules (built-in defaults when absent)" },
    github_api    = { default = "https://api.github.com", help = "GitHub API" },
    github_token  = { secret = true, default = "", help = "the token the collection uses (Resolution 3: verify its permissions)" },
    timeout       = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Check which manifests are failing", {
  description = "Diagnosis: meta_cli.py catalog validate --catalog-file catalog/service-index.yaml --report; natively manifests/collected/*.yaml",
}, function()
  local r = exec(mp.cli(params, "catalog", "validate", "--catalog-file", params.catalog_file, "--report"),
                 mp.opts(params, { readonly = true, check = false }))
  for line in (r.stdout .. "\n" .. r.stderr):gmatch("[^\n]+") do
    if line:lower():find("error") then log.warn("%s", line) end
  end
  state.failing = {}
  state.errors = {}
  for _, m in ipairs(mp.check_manifests(mp.path(params, params.manifests_dir), mp.load_rules(mp.path(params, params.rules_file)))) do
    state.failing[#state.failing + 1] = m.file
    state.errors[#state.errors + 1] = m.service .. ": " .. table.concat(m.problems, "; ")
  end
  log.info("%d failing manifest(s)", #state.failing)
end)

step("Test individual manifests", {
  description = "Diagnosis: python scripts/validate_catalog.py --manifest manifests/collected/service-manifest.yaml",
  when = function() return #state.failing > 0 end,
}, function()
  for _, f in ipairs(state.failing) do
    local r = exec(mp.script(params, "validate_catalog.py", "--manifest", params.manifests_dir .. "/" .. f),
                   mp.opts(params, { readonly = true, check = false }))
    log.warn("%s: validate_catalog.py exit %d %s", f, r.code, (r.stderr ~= "" and r.stderr or r.stdout):match("([^\n]*)\n*$"))
  end
end)

step("Check GitHub API rate limits and token", {
  description = "Diagnosis: python scripts/collect_manifests.py --dry-run; Resolution 2-3: repository accessibility, token permissions",
}, function()
  exec(mp.script(params, "collect_manifests.py", "--dry-run"), mp.opts(params, { readonly = true, check = false }))
  local headers = {}
  if params.github_token ~= "" then headers.Authorization = "Bearer " .. params.github_token end
  local rl = http.get(params.github_api .. "/rate_limit", { headers = headers, timeout = 30 })
  if rl.status == 200 then
    local core = (rl:json().resources or {}).core or {}
    state.rate_remaining = core.remaining
    log.info("GitHub rate limit: %s of %s left", tostring(core.remaining), tostring(core.limit))
  end
  if params.github_token ~= "" then
    local me = http.get(params.github_api .. "/user", { headers = headers, timeout = 30 })
    state.token_ok = me.status == 200
    log[state.token_ok and "info" or "error"]("GitHub token: HTTP %d%s", me.status,
      me.headers["x-oauth-scopes"] and (", scopes " .. me.headers["x-oauth-scopes"]) or "")
  end
end)

step("Report manifest errors", {
  description = "Resolution 1: fix manifest validation errors (see 3.2) -- in the services' repositories",
  when = function() return #state.failing > 0 end,
}, function()
  notify.slack{ text = string.format("254Carbon catalog build: %d manifest(s) fail validation (fix per 3.2)\n- %s",
    #state.errors, table.concat(state.errors, "\n- ")) }
  check(false, "%d manifest(s) fail validation: %s", #state.errors, table.concat(state.errors, "; "))
end)

step("Retry with --force", {
  description = "Resolution 4: retry with --force if temporary issue (python scripts/meta_cli.py catalog build --force)",
  when = function() return #state.failing == 0 end,
}, function()
  check(state.rate_remaining ~= 0, "GitHub API rate limit exhausted: retry after the reset (Resolution 3: a token with higher limits)")
  check(state.token_ok ~= false, "the GitHub token is refused: verify its permissions (Resolution 3)")
  check(confirm("No manifest errors: retry the catalog build with --force?"), "retry declined")
  exec(mp.cli(params, "catalog", "build", "--force"), mp.opts(params))
  state.retried = true
end)
