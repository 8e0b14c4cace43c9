runbook {
  name        = "meta-platform/observability-ingest",
  title       = "254Carbon meta: daily observability data ingestion (14:00 UTC)",
  description = [[Ingests the Prometheus metrics (meta_cli.py observability ingest --system prometheus)
and regenerates the quality trends (analyze_quality_trends.py). A failed ingestion is posted
to Slack and fails the run; a trend reported as declining is logged as a warning.
000_ec9a80fe7bc3b02e.txt › 1. Daily Operations › 1.3 Observability Data Ingestion.]],
  source      = "000_ec9a80fe7bc3b02e.txt › 1. Daily Operations › 1.3 Observability Data Ingestion",
  schedule    = "daily",
  tags        = { "meta-platform", "maintenance", "daily" },
  mutates     = { "ingests Prometheus metrics", "writes quality trend reports", "posts a failed ingestion to Slack" },
  params = {
    root        = { default = ".", help = "the meta repository checkout" },
    python      = { default = "python", help = "Python interpreter" },
    system      = { default = "prometheus", choices = { "prometheus", "datadog" }, help = "1.3: --system" },
    config_file = { default = "config/observability-prometheus.yaml", help = "1.3: --config-file" },
    output_dir  = { default = "analysis/reports/", help = "1.3: trends --output-dir" },
    timeout     = { type = "number", default = 1800, help = "seconds per script" },
  },
}

local mp = require "meta_platform"

step("Ingest Prometheus metrics", {
  description = "1.3: python scripts/meta_cli.py observability ingest --system prometheus --config-file config/observability-prometheus.yaml",
}, function()
  local ok, err = pcall(function()
    return exec(mp.cli(params, "observability", "ingest", "--system", params.system,
                       "--config-file", params.config_file), mp.opts(params))
  end)
  state.ingested = ok
  if not ok then
    notify.slack{ text = "254Carbon observability ingestion FAILED: " .. tostring(err) }
    error(err, 0)
  end
end)

step("Generate quality trends", {
  description = "1.3: python scripts/analyze_quality_trends.py --output-dir analysis/reports/",
}, function()
  local r = exec(mp.script(params, "analyze_quality_trends.py", "--output-dir", params.output_dir), mp.opts(params))
  state.declining = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local l = line:lower()
    if l:find("declin") or l:find("down") or l:find("degrad") then
      state.declining[#state.declining + 1] = line
      log.warn("trend: %s", line)
    end
  end
  if #state.declining == 0 then log.info("1.3 expected: trends stable or improving") end
end)
