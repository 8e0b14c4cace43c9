"""kubectl.* (SPEC §3, §4) through the real kubectl binary against a fake
Kubernetes API server on loopback (tests/fixtures/fake_kube.py): tests
assert the requests that reached the fake, and that dry-run sends reads
but never writes."""
import json
import os
import shutil
import sys
import unittest

from rbtest import RunbookTestCase, lua_str

sys.dont_write_bytecode = True

KUBECTL = shutil.which("kubectl")


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class KubeCase(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()

    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/kube", **kw)

    def writes(self):
        return self.kube_writes(self.kube)


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


NS = '{ namespace = "carbon-ingestion" }'
DEPLOY = "/apis/apps/v1/namespaces/carbon-ingestion/deployments/enrichment-service"
MANIFEST = """{ apiVersion = "v1", kind = "Pod",
    metadata = { name = "debug-pod", namespace = "carbon-ingestion", labels = { app = "debug" } },
    spec = { containers = { { name = "sh", image = "busybox:1.36" } } } }"""

# One call per mutating primitive: (lua call, words printed in dry-run)
MUTATIONS = [
    ('kubectl.scale("deployment/enrichment-service", 4, %s)' % NS,
     "kubectl scale deployment/enrichment-service --replicas=4 -n carbon-ingestion"),
    ('kubectl.rollout_undo("deployment/enrichment-service", %s)' % NS,
     "kubectl rollout undo deployment/enrichment-service -n carbon-ingestion"),
    ('kubectl.set_env("deployment/enrichment-service", { K = "v", LOG = "debug" }, %s)' % NS,
     "kubectl set env deployment/enrichment-service K=v LOG=debug -n carbon-ingestion"),
    ('kubectl.set_image("deployment/enrichment-service", '
     '{ ["enrichment-service"] = "enrich:1.5" }, %s)' % NS,
     "kubectl set image deployment/enrichment-service enrichment-service=enrich:1.5 "
     "-n carbon-ingestion"),
    ('kubectl.delete("pod", "enrichment-service-7d9f-fghij", %s)' % NS,
     "kubectl delete pod enrichment-service-7d9f-fghij -n carbon-ingestion"),
    ('kubectl.apply(%s, %s)' % (MANIFEST, NS),
     "kubectl apply -f - -n carbon-ingestion"),
]


class Verbs(KubeCase):
    """describe, top (pod and node, from metrics.k8s.io), rollout
    status/history/undo, set env/image, delete, apply, wait and exec_in
    (over the WebSocket exec stream) through the real kubectl against the
    fake."""

    def test_reads(self):
        res = self.runbook("""
step("reads", function()
  local ns = %s
  out({ pod = kubectl.describe("pod", "enrichment-service-7d9f-abcde", ns) })
  out({ deploy = kubectl.describe("deployment/enrichment-service", ns) })
  out({ top = kubectl.top("pod", nil, ns) })
  out({ status = kubectl.rollout_status("deployment/enrichment-service",
                                        { namespace = "carbon-ingestion", wait_timeout = 10 }) })
  out({ history = kubectl.rollout_history("deployment/enrichment-service", ns) })
  local w = kubectl.wait("deployment/enrichment-service",
                         { ["for"] = "condition=Available", timeout = 10,
                           namespace = "carbon-ingestion" })
  out({ wait = w })
end)
""" % NS)
        self.assertExit(res, 0)
        d = res.data
        self.assertIn("Name:         enrichment-service-7d9f-abcde", d[0]["pod"])
        self.assertIn("Events:          <none>", d[0]["pod"])
        self.assertIn("3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
                      d[1]["deploy"])
        # kubectl top pod: the table of the namespace's PodMetrics (metrics-server
        # reports nanocores and KiB; kubectl prints millicores and MiB)
        top = [l.split() for l in d[2]["top"].splitlines()]
        self.assertEqual(top, [["NAME", "CPU(cores)", "MEMORY(bytes)"],
                               ["enrichment-service-7d9f-abcde", "125m", "64Mi"],
                               ["enrichment-service-7d9f-fghij", "98m", "48Mi"]])
        self.assertTrue(self.kube.requests(
            path="/apis/metrics.k8s.io/v1beta1/namespaces/carbon-ingestion/pods"))
        self.assertIn('deployment "enrichment-service" successfully rolled out',
                      d[3]["status"]["stdout"])
        hist = d[4]["history"]["stdout"]
        self.assertIn("REVISION  CHANGE-CAUSE", hist)
        self.assertEqual([l.split() for l in hist.splitlines() if l[:1].isdigit()],
                         [["1", "<none>"], ["2", "<none>"]])
        self.assertIn("condition met", d[5]["wait"]["stdout"])
        self.assertTrue(self.kube.requests(
            path="/api/v1/namespaces/carbon-ingestion/events"))
        self.assertEqual(self.writes(), [])
        acts = self.actions(primitive="kubectl")
        self.assertIn("kubectl wait deployment/enrichment-service --for=condition=Available "
                      "--timeout=10s -n carbon-ingestion", [a.get("words") for a in acts])
        self.assertFalse([a for a in acts if a.get("simulated")])

    def test_wait_kind_name_names_the_pod_and_namespace(self):
        # (kind, name, opts) like get/describe/delete: the pod and the
        # namespace reach the cluster (they were once dropped, and every pod
        # of the default namespace was waited for)
        res = self.runbook("""
step("w", function()
  local w = kubectl.wait("pod", "enrichment-service-7d9f-abcde",
                         { namespace = "carbon-ingestion", timeout = 10 })
  out({ ok = w.ok, stdout = w.stdout })
end)
""")
        self.assertExit(res, 0)
        self.assertIn("enrichment-service-7d9f-abcde condition met", res.data[0]["stdout"])
        reads = [r for r in self.kube.requests() if "/pods" in r["path"]]
        self.assertTrue(reads)
        for r in reads:
            with self.subTest(request=r):
                self.assertTrue(r["path"].startswith("/api/v1/namespaces/carbon-ingestion/pods"))
                named = (r["path"].endswith("/pods/enrichment-service-7d9f-abcde") or
                         r["query"].get("fieldSelector") ==
                         "metadata.name=enrichment-service-7d9f-abcde")
                self.assertTrue(named, r)
        self.assertEqual(self.writes(), [])
        acts = self.actions(primitive="kubectl")
        self.assertEqual([a.get("words") for a in acts],
                         ["kubectl wait pod enrichment-service-7d9f-abcde "
                          "--for=condition=ready --timeout=10s -n carbon-ingestion"])
        self.assertEqual(acts[0]["class"], "read")

    def test_mutations_live_send_exact_requests(self):
        body = "".join("  out({ r = %s })\n" % call for call, _ in MUTATIONS)
        res = self.runbook('step("ops", function()\n%send)\n' % body)
        self.assertExit(res, 0)
        scaled, undone, env, image, deleted, applied = [x["r"] for x in res.data]
        # scale returns the object after the change (a read-back), not before
        self.assertEqual(scaled["spec"]["replicas"], 4)
        self.assertTrue(scaled["ok"])
        self.assertEqual(undone["spec"]["template"]["spec"]["containers"][0]["image"],
                         "enrich:1.3")
        self.assertEqual(applied["metadata"]["name"], "debug-pod")
        w = self.writes()
        self.assertEqual([(r["method"], r["path"]) for r in w], [
            ("PATCH", DEPLOY + "/scale"),
            ("PATCH", DEPLOY),
            ("PATCH", DEPLOY),
            ("PATCH", DEPLOY),
            ("DELETE", "/api/v1/namespaces/carbon-ingestion/pods/enrichment-service-7d9f-fghij"),
            ("POST", "/api/v1/namespaces/carbon-ingestion/pods"),
        ])
        self.assertEqual(w[0]["body"], {"spec": {"replicas": 4}})
        # rollout undo: a JSON patch of the template back to revision 1
        self.assertEqual(w[1]["content_type"], "application/json-patch+json")
        ops = {op["path"]: op["value"] for op in w[1]["body"]}
        self.assertEqual(ops["/spec/template"]["spec"]["containers"][0]["image"], "enrich:1.3")
        # set env / set image: strategic merge patches of the named container
        self.assertEqual(w[2]["content_type"], "application/strategic-merge-patch+json")
        c = w[2]["body"]["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c, [{"name": "enrichment-service",
                              "env": [{"name": "K", "value": "v"},
                                      {"name": "LOG", "value": "debug"}]}])
        c = w[3]["body"]["spec"]["template"]["spec"]["containers"]
        self.assertEqual(c, [{"name": "enrichment-service", "image": "enrich:1.5"}])
        self.assertEqual(w[4]["body"], {"propagationPolicy": "Background"})
        self.assertEqual(w[5]["query"].get("fieldManager"), "kubectl-client-side-apply")
        self.assertEqual(w[5]["body"]["spec"]["containers"],
                         [{"name": "sh", "image": "busybox:1.36"}])
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration",
                      w[5]["body"]["metadata"]["annotations"])
        # the scale's read-back is a GET after its PATCH
        reqs = self.kube.requests()
        i = next(i for i, r in enumerate(reqs) if r["path"] == DEPLOY + "/scale"
                 and r["method"] == "PATCH")
        self.assertTrue([r for r in reqs[i + 1:] if r["method"] == "GET"
                         and r["path"] == DEPLOY])
        words = [a.get("words") for a in self.actions(primitive="kubectl")]
        self.assertEqual(words, [w for _, w in MUTATIONS])

    def test_mutations_dry_run_reach_nothing(self):
        body = "".join("  out({ r = %s })\n" % call for call, _ in MUTATIONS)
        res = self.runbook('step("ops", function()\n%send)\n' % body, "--dry-run")
        self.assertExit(res, 0)
        for _, words in MUTATIONS:
            self.assertIn("would: " + words, res.out)
        self.assertEqual([x["r"] for x in res.data], [{"ok": True, "dry_run": True}] * 6)
        self.assertEqual(self.kube.requests(), [])
        sim = [a for a in self.actions(primitive="kubectl") if a.get("simulated")]
        self.assertEqual(len(sim), len(MUTATIONS))

    def test_top_node(self):
        res = self.runbook("""
step("t", function() out({ top = kubectl.top("node") }) end)
""")
        self.assertExit(res, 0)
        top = [l.split() for l in res.data[0]["top"].splitlines()]
        # 850m of 4 cores allocatable, 4096Mi of 16Gi
        self.assertEqual(top, [["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
                               ["node-1", "850m", "21%", "4096Mi", "25%"]])
        self.assertTrue(self.kube.requests(path="/apis/metrics.k8s.io/v1beta1/nodes"))
        self.assertEqual(self.writes(), [])

    def test_exec_in_websocket_stdout_and_exit_code(self):
        # kubectl 1.32 execs over a WebSocket (v5.channel.k8s.io); the fake
        # answers with canned output on channel 1 and a Status on channel 3
        res = self.runbook("""
step("x", function()
  local ns = { namespace = "carbon-ingestion" }
  local r = kubectl.exec_in("enrichment-service-7d9f-abcde", { "ls", "/" }, ns)
  out({ ok = r.ok, code = r.code, stdout = r.stdout })
  local h = kubectl.exec_in("enrichment-service-7d9f-abcde", { "cat", "/etc/hostname" }, ns)
  out({ stdout = h.stdout })
  local ok, err = pcall(kubectl.exec_in, "enrichment-service-7d9f-abcde",
                        { "sh", "-c", "exit 3" }, ns)
  out({ ok = ok, err = tostring(err) })
  local f = kubectl.exec_in("enrichment-service-7d9f-abcde", { "sh", "-c", "exit 3" },
                            { namespace = "carbon-ingestion", check = false })
  out({ ok = f.ok, code = f.code, error = f.error })
end)
""")
        self.assertExit(res, 0)
        d = res.data
        self.assertEqual(d[0], {"ok": True, "code": 0, "stdout": "bin\netc\n"})
        self.assertEqual(d[1], {"stdout": "enrichment-service-7d9f-abcde\n"})
        self.assertFalse(d[2]["ok"])
        self.assertIn("kubectl exec enrichment-service-7d9f-abcde -n carbon-ingestion -- "
                      "sh -c 'exit 3': command terminated with exit code 3", d[2]["err"])
        self.assertEqual(d[3]["code"], 3)
        self.assertFalse(d[3]["ok"])
        self.assertIn("command terminated with exit code 3", d[3]["error"])
        execs = self.kube.requests(
            path="/api/v1/namespaces/carbon-ingestion/pods/enrichment-service-7d9f-abcde/exec")
        self.assertEqual([(e["method"], e["status"], e["protocol"], e["command"])
                          for e in execs[:2]],
                         [("GET", 101, "v5.channel.k8s.io", ["ls", "/"]),
                          ("GET", 101, "v5.channel.k8s.io", ["cat", "/etc/hostname"])])
        self.assertEqual(execs[0]["query"].get("stdout"), "true")
        # exec mutates (SPEC §3): recorded as a live action
        words = [a.get("words") for a in self.actions(primitive="kubectl")]
        self.assertIn("kubectl exec enrichment-service-7d9f-abcde -n carbon-ingestion -- ls /",
                      words)

    def test_exec_in_no_such_pod_error_names_pod(self):
        res = self.runbook("""
step("x", function()
  local ok, err = pcall(kubectl.exec_in, "nope-pod", { "ls", "/" },
                        { namespace = "carbon-ingestion" })
  out({ ok = ok, err = tostring(err) })
end)
""")
        self.assertExit(res, 0)
        self.assertFalse(res.data[0]["ok"])
        self.assertIn("kubectl exec nope-pod -n carbon-ingestion -- ls /: "
                      'Error from server (NotFound): pods "nope-pod" not found',
                      res.data[0]["err"])


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

    def test_a_rollout_the_rehearsal_started_is_not_watched(self):
        """After a simulated scale, rollout_status and wait on that deployment
        answer as the rehearsal's world would -- no request watches the real
        one for a change that never came -- while the same reads of another
        deployment still reach the cluster."""
        body = """
step("ops", function()
  kubectl.scale("deployment/calendar-api", 5)
  local r = kubectl.rollout_status("deployment/calendar-api", { timeout = 300 })
  local w = kubectl.wait("deployment", "calendar-api", { ["for"] = "condition=Available" })
  local o = kubectl.rollout_status("deployment/enrichment-service", { namespace = "carbon-ingestion" })
  out({ ok = r.ok, stdout = r.stdout, wait = w.ok, other = o.ok })
end)
"""
        res = self.runbook(body, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0]["ok"], True)
        self.assertEqual(res.data[0]["wait"], True)
        self.assertIn("changed only in this rehearsal", res.data[0]["stdout"])
        self.assertEqual(self.kube.requests(path="/apis/apps/v1/namespaces/default/deployments/calendar-api*"), [],
                         "the rehearsal watched a deployment it never changed")
        self.assertTrue(self.kube.requests(
            path="/apis/apps/v1/namespaces/carbon-ingestion/deployments/enrichment-service*"))
        self.assertEqual(self.writes(), [])
        acts = {a["words"]: a for a in self.actions(primitive="kubectl")}
        watch = [a for w, a in acts.items() if w.startswith("kubectl rollout status deployment/calendar-api")]
        self.assertEqual(len(watch), 1)
        self.assertTrue(watch[0]["simulated"])
        self.assertIn("changed only in this rehearsal", watch[0].get("evidence", ""))
        # live, the same runbook scales and watches the real rollout
        res = self.runbook(body, "--yes")
        self.assertExit(res, 0)
        self.assertTrue(self.kube.requests(path="/apis/apps/v1/namespaces/default/deployments/calendar-api*"))



class RecordAndReplay(KubeCase):
    """--record writes each kubectl call's answer with the row's recorded
    hook and `runbook test` answers it with the row's answer hook: the
    replay gives the runbook what the live run against the fake gave it --
    objects, texts, command results, failures with check = false and
    raised errors."""

    def test_a_recorded_run_replays_with_the_same_results(self):
        rec = self.path("drill.scenario.yaml")
        res = self.runbook("""
step("drill", function()
  local ns = { namespace = "carbon-ingestion" }
  local d = kubectl.get("deployment", "enrichment-service", ns)
  local pods = kubectl.get("pods", nil, { namespace = "carbon-ingestion",
                                          selector = "app=enrichment-service" })
  local s = kubectl.scale("deployment/enrichment-service", 5, ns)
  local st = kubectl.rollout_status("deployment/enrichment-service", ns)
  local l = kubectl.logs("enrichment-service-7d9f-abcde", { namespace = "carbon-ingestion", tail = 2 })
  local bad = kubectl.get("deployment", "nope", { namespace = "carbon-ingestion", check = false })
  local nl, nerr = kubectl.logs("nope-pod", { namespace = "carbon-ingestion", check = false })
  local ok, err = pcall(kubectl.get, "deployment", "nope2", ns)
  local w = kubectl.wait("pod", "enrichment-service-7d9f-abcde", { namespace = "carbon-ingestion" })
  local v = kubectl.run({ "get", "pods", "-n", "carbon-ingestion", "-o", "json" })
  local out_ = { replicas = d.spec.replicas, pods = #pods.items, scaled = s.spec.replicas, scale_ok = s.ok,
    status = { st.ok, st.code, st.stdout }, logs = l, bad = { bad.ok, bad.code, bad.error },
    nologs = { nl == nil, nerr }, ok = ok, err = tostring(err):gsub("^[^:]*:%d+: ", ""),
    wait = { w.ok, w.stdout }, run = { v.ok, #v.json.items, #v.stdout > 0 } }
  state.s = out_
  out(out_)
end)
""", "--record", rec)
        self.assertExit(res, 0)
        live = res.data[0]
        self.assertEqual((live["scaled"], live["scale_ok"], live["bad"][0], live["ok"]),
                         (5, True, False, False))
        self.assertTrue(live["nologs"][0])
        text = self.read(rec)
        self.assertIn("verb: rollout status", text)
        with open(rec, "w") as f:
            f.write(text.replace("expect:\n", "expect:\n  state: { s: %s }\n" % json.dumps(live), 1))
        before = len(self.kube.requests())
        t = self.rb("test", rec)
        self.assertEqual(t.code, 0, t.all)
        self.assertIn("1 passed, 0 failed", t.out)
        self.assertEqual(len(self.kube.requests()), before)


class Mocks(RunbookTestCase):
    """Scenario mocks match kubectl calls by their fields: kind and name
    (from "kind/name" or the two arguments), namespace as a field, selector,
    replicas, the command's words (args); and answer in the live shape."""

    RUNBOOK = """
        runbook { name = "t/kube-mocks" }
        step("s", function()
          local s = {}
          local ns = { namespace = "prod" }
          s.get = kubectl.get("deployment", "api", ns).spec.replicas
          s.pods = #kubectl.get("pods", nil, { namespace = "prod", selector = "app in (api)" }).items
          s.scale = kubectl.scale("deployment/api", 5, ns)
          s.status = kubectl.rollout_status("deployment/api", ns)
          s.wait = kubectl.wait("pod", "api-0", { namespace = "prod", timeout = 30 }).ok
          local r = kubectl.get("deployment", "gone", { namespace = "prod", check = false })
          s.gone = { r.ok, r.code, r.error }
          local text, err = kubectl.logs("api-0", { namespace = "prod", check = false })
          s.logs = { text == nil, err }
          s.env = kubectl.set_env("deployment/api", { LEVEL = "debug" }, ns).ok
          s.deleted = kubectl.delete("pod", "api-1", ns).ok
          local ok, e = pcall(kubectl.describe, "deployment/api", ns)
          s.describe = { ok, (tostring(e):gsub("^[^:]*:%d+: ", "")) }
          s.run = kubectl.run({ "get", "nodes", "-o", "json" }).json.items[1].metadata.name
          state.s = s
        end)
        """

    def test_fields_match_and_answers_have_the_live_shape(self):
        self.write("k.lua", self.RUNBOOK)
        self.write("k.scenario.yaml", """
            runbook: k.lua
            mocks:
              - kubectl: { verb: get, kind: deployment, name: api, namespace: prod }
                respond: { json: { spec: { replicas: 2 } } }
              - kubectl: { verb: get, kind: pods, selector: "app in (api)" }
                respond: { json: { items: [ {}, {}, {} ] } }
              - kubectl: { verb: scale, kind: deployment, name: api, namespace: prod, replicas: 5,
                           args: [ "--replicas=5", -n, prod ] }
                required: true
              - kubectl: { verb: rollout status, kind: deployment }
              - kubectl: { verb: wait, kind: pod, name: api-0, namespace: prod, for: condition=ready }
                required: true
              - kubectl: { verb: get, name: gone }
                respond: { error: 'deployments.apps "gone" not found' }
              - kubectl: { verb: logs, kind: pod, name: api-0 }
                respond: { error: 'pods "api-0" not found' }
              - kubectl: { verb: set env, name: api, env: { LEVEL: debug } }
                required: true
              - kubectl: { verb: delete, kind: pod, name: "api-?" }
                required: true
              - kubectl: { verb: describe, kind: deployment, name: api }
                respond: { error: "the server is unreachable" }
              - kubectl: { verb: get, kind: nodes }
                respond: { json: { items: [ { metadata: { name: node-1 } } ] } }
            expect:
              actions: [ "kubectl scale deployment/api --replicas=5 -n prod",
                         "kubectl set env deployment/api LEVEL=debug -n prod",
                         "kubectl delete pod api-1 -n prod" ]
              state:
                s:
                  get: 2
                  pods: 3
                  scale: { ok: true, kind: Deployment, metadata: { name: api, namespace: prod },
                           spec: { replicas: 5 } }
                  status: { ok: true, code: 0, stdout: "" }
                  wait: true
                  gone: [ false, 1, 'deployments.apps "gone" not found' ]
                  logs: [ true, 'pods "api-0" not found' ]
                  env: true
                  deleted: true
                  describe: [ false, "kubectl describe deployment/api -n prod: the server is unreachable" ]
                  run: node-1
            """)
        res = self.rb("test", "k.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)

    def test_namespace_is_a_field_from_wherever_it_comes(self):
        # kubectl.defaults, the argv of kubectl.run (`--namespace=X`), the options
        self.write("k.lua", """
            runbook { name = "t/kube-ns" }
            step("s", function()
              kubectl.defaults{ namespace = "prod" }
              state.prod = #kubectl.get("pods").items
              state.staging = kubectl.run({ "get", "pods", "--namespace=staging" }).stdout
              kubectl.get("pods", nil, { namespace = "dev" })
            end)
            """)
        self.write("k.scenario.yaml", """
            runbook: k.lua
            mocks:
              - kubectl: { verb: get, kind: pods, namespace: prod }
                respond: { json: { items: [ {} ] } }
              - kubectl: { verb: get, kind: pods, namespace: staging }
                respond: { result: "NAME READY\n" }
            expect: { outcome: failed, state: { prod: 1, staging: "NAME READY\n" } }
            """)
        res = self.rb("test", "k.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("no mock answers `kubectl get pods -n dev`", res.out)
        self.assertIn("which did not match: namespace: wanted prod, got dev", res.out)
        self.assertNotIn("state:", res.out)

# argv given to kubectl.run -> does it mutate (print `would:` in dry-run)?
CLASSES = [
    (["get", "pods", "-n", "default"], False),
    (["describe", "deployment", "x"], False),
    (["logs", "p", "--tail=5"], False),
    (["top", "pod"], False),
    (["explain", "pods"], False),
    (["version", "--client"], False),
    (["api-resources"], False),
    (["auth", "can-i", "delete", "pods"], False),
    (["rollout", "status", "deployment/x"], False),
    (["rollout", "history", "deployment/x"], False),
    (["diff", "-f", "m.yaml"], False),
    (["wait", "pod/p", "--for=delete"], False),
    (["--context", "fake", "-n", "x", "get", "pods"], False),  # options before the verb
    (["-o", "json", "get", "pods"], False),
    (["rollout", "restart", "deployment/x"], True),
    (["rollout", "undo", "deployment/x"], True),
    (["rollout", "pause", "deployment/x"], True),
    (["scale", "deployment/x", "--replicas=2"], True),
    (["set", "image", "deployment/x", "x=y:1"], True),
    (["delete", "pod", "p"], True),
    (["apply", "-f", "m.yaml"], True),
    (["create", "namespace", "n"], True),
    (["patch", "deployment", "x", "--type", "merge"], True),
    (["label", "pod", "p", "a=b"], True),
    (["drain", "node-1"], True),
    (["exec", "p", "--", "ls"], True),
    (["auth", "reconcile", "-f", "r.yaml"], True),
    (["-n", "get", "delete", "pod", "p"], True),  # "get" is -n's value, the verb is delete
    (["--", "get"], True),  # no verb before --: unknown, so it mutates
]


class ClassificationTable(KubeCase):
    def test_table(self):
        calls = "".join("  kubectl.run({ %s }, { check = false })\n" %
                        ", ".join(lua_str(w) for w in argv) for argv, _ in CLASSES)
        res = self.runbook('step("c", function()\n%send)\n' % calls, "--dry-run")
        self.assertExit(res, 0)
        would = [l.split("would: ", 1)[1] for l in res.out.splitlines() if "would: " in l]
        for argv, mutates in CLASSES:
            words = " ".join(["kubectl"] + argv)
            with self.subTest(argv=argv):
                self.assertEqual(any(w.startswith(words) for w in would), mutates, would)
        self.assertEqual(len(would), sum(m for _, m in CLASSES))
        self.assertEqual(self.writes(), [])
        acts = self.actions(primitive="kubectl")
        self.assertEqual([a.get("simulated") is True for a in acts], [m for _, m in CLASSES])


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
