"""kubectl.* (SPEC §3, §4) through the real kubectl binary against a fake
Kubernetes API server on loopback (tests/fixtures/fake_kube.py): tests
assert the requests that reached the fake, and that dry-run sends reads
but never writes."""
import json
import os
import shutil
import sys
import unittest

from rbtest import FIXTURES, FixtureServer, RunbookTestCase, lua_str

sys.dont_write_bytecode = True

KUBECTL = shutil.which("kubectl")


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class KubeCase(RunbookTestCase):
    PREAMBLE = ('runbook { name = "t/kube" }\n'
                'local function out(x) print("@@" .. json.encode(x)) end\n')

    def setUp(self):
        super().setUp()
        self.kc = self.path("kubeconfig")
        log = self.path("kube.jsonl")
        self.kube = self._fixture(FixtureServer(
            self, [sys.executable, os.path.join(FIXTURES, "fake_kube.py"), "--log", log,
                   "--kubeconfig", self.kc], log, "http", 0))
        self.env["KUBECONFIG"] = self.kc
        self.env["KUBECACHEDIR"] = self.path("kubecache")
        self._n = 0

    def runbook(self, body, *flags, **kw):
        self._n += 1
        f = self.write("kube-%d.lua" % self._n, self.PREAMBLE + body)
        res = self.run_rb(f, *flags, **kw)
        res.data = [json.loads(l[l.index("@@") + 2:]) for l in res.out.splitlines()
                    if "@@" in l]
        return res

    def writes(self):
        # `auth can-i` is a read that POSTs a SelfSubjectAccessReview
        return [r for r in self.kube.requests() if r["method"] not in ("GET", "HEAD")
                and not r["path"].endswith("/selfsubjectaccessreviews")]


class Live(KubeCase):
    def test_get_scale_restart_logs(self):
        res = self.runbook("""
step("ops", function()
  local pods = kubectl.get("pods", nil, { namespace = "carbon-ingestion",
                                          selector = "app=enrichment-service" })
  local d = kubectl.get("deployment", "enrichment-service", { namespace = "carbon-ingestion" })
  out({ n = #pods.items, first = pods.items[1].metadata.name, replicas = d.spec.replicas })
  local s = kubectl.scale("deployment/enrichment-service", 5, { namespace = "carbon-ingestion" })
  out({ ok = s.ok })
  kubectl.rollout_restart("deployment/enrichment-service", { namespace = "carbon-ingestion" })
  out({ logs = kubectl.logs("enrichment-service-7d9f-abcde",
                            { namespace = "carbon-ingestion", tail = 2 }) })
  local d2 = kubectl.get("deployment/enrichment-service", { namespace = "carbon-ingestion" })
  out({ replicas = d2.spec.replicas,
        restarted = d2.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] ~= nil })
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"n": 2, "first": "enrichment-service-7d9f-abcde",
                                       "replicas": 3})
        self.assertEqual(res.data[1], {"ok": True})
        self.assertEqual(res.data[2]["logs"],
                         "line 9: enriched batch 9\nline 10: enriched batch 10\n")
        self.assertEqual(res.data[3], {"replicas": 5, "restarted": True})
        scale = [r for r in self.writes() if r["path"].endswith("/scale")]
        self.assertEqual(len(scale), 1, self.writes())
        self.assertEqual(scale[0]["method"], "PATCH")
        self.assertEqual(scale[0]["body"], {"spec": {"replicas": 5}})
        self.assertEqual(scale[0]["path"],
                         "/apis/apps/v1/namespaces/carbon-ingestion/deployments/"
                         "enrichment-service/scale")
        restart = [r for r in self.writes() if r["path"].endswith("/enrichment-service")]
        self.assertEqual(len(restart), 1)
        self.assertIn("kubectl.kubernetes.io/restartedAt",
                      restart[0]["body"]["spec"]["template"]["metadata"]["annotations"])
        logs = [r for r in self.kube.requests() if r["path"].endswith("/log")]
        self.assertEqual(logs[0]["query"].get("tailLines"), "2")
        acts = self.actions(primitive="kubectl")
        words = [a.get("words") for a in acts]
        self.assertIn("kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", words)
        self.assertIn("kubectl rollout restart deployment/enrichment-service "
                      "-n carbon-ingestion", words)

    def test_error_carries_stderr_line(self):
        res = self.runbook("""
step("get", function()
  local ok, err = pcall(kubectl.get, "deployment", "nope", { namespace = "x" })
  out({ ok = ok, err = tostring(err) })
  local r = kubectl.get("deployment", "nope", { namespace = "x", check = false })
  out({ ok = r.ok, code = r.code, error = r.error })
end)
""")
        self.assertExit(res, 0)
        self.assertFalse(res.data[0]["ok"])
        self.assertIn('kubectl get deployment nope -n x: Error from server (NotFound): '
                      'deployments.apps "nope" not found', res.data[0]["err"])
        self.assertEqual(res.data[1]["code"], 1)
        self.assertIn("NotFound", res.data[1]["error"])

    def test_defaults_and_config_environment(self):
        self.write("runbook.yaml", """
            environments:
              prod:
                kubectl:
                  context: fake-prod
                  namespace: carbon-ingestion
            """)
        res = self.runbook("""
step("get", function()
  local d = kubectl.get("deployment", "enrichment-service")
  out({ name = d.metadata.name })
  kubectl.defaults{ namespace = "default" }
  local c = kubectl.get("deployment", "calendar-api")
  out({ name = c.metadata.name })
end)
""", "--env", "prod")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"name": "enrichment-service"}, {"name": "calendar-api"}])
        words = [a.get("words") for a in self.actions(primitive="kubectl")]
        self.assertEqual(words, [
            "kubectl get deployment enrichment-service -n carbon-ingestion --context=fake-prod",
            "kubectl get deployment calendar-api -n default --context=fake-prod"])


class DryRun(KubeCase):
    def test_reads_reach_the_fake_writes_never_do(self):
        res = self.runbook("""
step("ops", function()
  local d = kubectl.get("deployment", "enrichment-service", { namespace = "carbon-ingestion" })
  local s = kubectl.scale("deployment/enrichment-service", 5, { namespace = "carbon-ingestion" })
  local r = kubectl.rollout_restart("deployment/enrichment-service", { namespace = "carbon-ingestion" })
  local x = kubectl.run({ "delete", "pod", "batch-job-1", "-n", "default" })
  local v = kubectl.run({ "get", "pods", "-n", "default", "-o", "json" })
  out({ replicas = d.spec.replicas, s = s, r = r, x = x.ok, npods = #v.json.items })
end)
""", "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0]["replicas"], 3)
        self.assertEqual(res.data[0]["s"], {"ok": True, "dry_run": True})
        self.assertEqual(res.data[0]["npods"], 2)
        self.assertIn("would: kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", res.out)
        self.assertIn("would: kubectl rollout restart deployment/enrichment-service "
                      "-n carbon-ingestion", res.out)
        self.assertIn("would: kubectl delete pod batch-job-1 -n default", res.out)
        self.assertEqual(self.writes(), [])
        self.assertTrue(self.kube.requests(
            path="/apis/apps/v1/namespaces/carbon-ingestion/deployments/enrichment-service"))
        sim = [a for a in self.actions(primitive="kubectl") if a.get("simulated")]
        self.assertEqual(len(sim), 3)


class Classification(KubeCase):
    def test_verbs(self):
        res = self.runbook("""
step("c", function()
  for _, argv in ipairs({ {"version", "--client", "-o", "json"}, {"auth", "can-i", "get", "pods"},
                          {"rollout", "history", "deployment/x"}, {"rollout", "undo", "deployment/x"},
                          {"-n", "x", "annotate", "pod", "p", "a=b"}, {"cordon", "node-1"} }) do
    kubectl.run(argv, { check = false })
  end
end)
""", "--dry-run")
        self.assertExit(res, 0)
        self.assertNotIn("would: kubectl version", res.out)
        self.assertNotIn("would: kubectl auth can-i", res.out)
        self.assertNotIn("would: kubectl rollout history", res.out)
        self.assertIn("would: kubectl rollout undo deployment/x", res.out)
        self.assertIn("would: kubectl -n x annotate pod p a=b", res.out)
        self.assertIn("would: kubectl cordon node-1", res.out)
        self.assertEqual(self.writes(), [])


if __name__ == "__main__":
    unittest.main()
