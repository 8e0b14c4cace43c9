-- Fixture for tests/cli/test_scenarios.py: kubectl mocks with a namespace,
-- kind/name and args.
runbook {
  name = "scenarios/kubectl-scale-out",
  params = {
    namespace = { default = "carbon-ingestion" },
    deployment = { default = "enrichment-service" },
    replicas = { type = "number", default = 5 },
  },
}

step("Current replicas", function()
  local d = kubectl.get("deployment", params.deployment, { namespace = params.namespace })
  state.before = d.spec.replicas
end)

step("Scale out", { when = function() return state.before < params.replicas end }, function()
  kubectl.scale("deployment/" .. params.deployment, params.replicas, { namespace = params.namespace })
end)

step("Restart the consumers", function()
  kubectl.rollout_restart("deployment/" .. params.deployment, { namespace = params.namespace })
  local pods = kubectl.get("pods", nil, { namespace = params.namespace, selector = "app=" .. params.deployment })
  state.pods = #pods.items
end)
