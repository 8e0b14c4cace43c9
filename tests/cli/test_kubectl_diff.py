"""`runbook run --dry-run --diff` shows kubectl.apply as `kubectl diff` does
(issue 16, item 3): the live objects against the API server's rehearsal of
the apply (dryRun=All), as YAML, object by object.  Against the real kubectl
and a fake of the Kubernetes API server on loopback (tests/fixtures/
fake_kube.py: no cluster runs here).  The attacks: nothing reached the fake
that was not a read or a dryRun=All request, the live object is byte for
byte what it was, and the lines that change are the ones real `kubectl
diff` (run by the test, outside any sandbox) says change."""
import json
import os
import shutil
import subprocess
import unittest

from rbtest import RunbookTestCase, lua_str

KUBECTL = shutil.which("kubectl")
NS = "carbon-ingestion"
DEPLOY = "/apis/apps/v1/namespaces/%s/deployments/enrichment-service" % NS


def changed_lines(diff_text, indent=0):
    """The +/- lines of a unified diff, without their marks, indentation and
    quotes (kubectl's YAML and ours indent lists and quote strings
    differently), headers and resourceVersion (a counter each rehearsal
    moves) left out."""
    out = []
    for line in diff_text.splitlines():
        line = line[indent:]
        if line.startswith(("---", "+++", "diff ")) or line[:1] not in ("+", "-"):
            continue
        text = line[1:].strip().lstrip("- ").strip().replace("'", "").replace('"', "")
        if not text.startswith("resourceVersion:"):
            out.append(line[0] + text)
    return sorted(out)


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class ApplyDiff(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()

    def dry_diff(self, body, *flags):
        """Run a runbook with --dry-run --diff (not run_body: a diff's hunk
        headers begin with the @@ that run_body reads as out() lines)."""
        f = self.write("apply.lua", 'runbook { name = "t/apply" }\n' + body)
        return self.rb("run", f, "--audit", self.audit, "--dry-run", "--diff", *flags)

    def live(self):
        out = subprocess.run([KUBECTL, "get", "deployment", "enrichment-service", "-n", NS,
                              "-o", "json"], capture_output=True, text=True,
                             env=self.child_env(), check=True).stdout
        return json.loads(out)

    def manifest(self, image, replicas):
        """The live deployment, as a team's manifest would have it, with a new
        image and replica count."""
        d = self.live()
        m = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "enrichment-service", "namespace": NS,
                          "labels": d["metadata"].get("labels", {})},
             "spec": d["spec"]}
        m["spec"]["replicas"] = replicas
        m["spec"]["template"]["spec"]["containers"][0]["image"] = image
        return self.write("deploy.json", json.dumps(m, indent=2), dedent=False)

    def test_dry_run_diff_is_kubectl_diffs_and_changes_nothing(self):
        before = self.live()
        f = self.manifest("enrich:1.9", 6)
        n_before = len(self.kube.requests())
        res = self.dry_diff("""
            step("Roll out 1.9", function()
              local r = kubectl.apply(%s)
              print("result: " .. json.encode(r))
            end)
        """ % lua_str(f))
        self.assertExit(res, 0)
        self.assertIn("would: kubectl apply -f %s" % f, res.out)
        self.assertIn("--- live/apps.v1.Deployment.%s.enrichment-service" % NS, res.out)
        self.assertIn("+++ merged/apps.v1.Deployment.%s.enrichment-service" % NS, res.out)
        self.assertIn('result: {"dry_run":true,"ok":true}', res.out)
        ours = changed_lines(res.out[res.out.index("    --- live/"):], indent=4)
        self.assertIn("+image: enrich:1.9", ours)
        self.assertIn("+replicas: 6", ours)
        # nothing but reads and the server's rehearsal reached the fake
        for r in self.kube.requests()[n_before:]:
            if r["method"] not in ("GET", "HEAD"):
                self.assertEqual(r["query"].get("dryRun"), "All", r)
        self.assertEqual(self.live(), before)
        # what real kubectl diff says changes, run by the test unconfined
        kd = subprocess.run([KUBECTL, "diff", "-f", f], capture_output=True, text=True,
                            env=self.child_env())
        self.assertEqual(kd.returncode, 1, kd.stderr)  # 1: differences found
        self.assertEqual(ours, changed_lines(kd.stdout))
        self.assertEqual(self.live(), before)

    def test_json_output_carries_the_diff_event(self):
        f = self.manifest("enrich:2.0", 3)
        res = self.dry_diff("""
            step("apply", function() kubectl.apply(%s) end)
        """ % lua_str(f), "--output", "json")
        self.assertExit(res, 0)
        events = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        diffs = [e for e in events if e.get("event") == "diff"]
        self.assertEqual(len(diffs), 1, res.out)
        self.assertIn("+", diffs[0]["diff"])
        self.assertIn("enrich:2.0", diffs[0]["diff"])

    def test_a_new_object_is_diffed_against_nothing(self):
        m = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "debug-shell", "namespace": "default"},
             "spec": {"containers": [{"name": "sh", "image": "busybox:1.36"}]}}
        f = self.write("pod.json", json.dumps(m), dedent=False)
        res = self.dry_diff("""
            step("apply", function() kubectl.apply(%s) end)
        """ % lua_str(f))
        self.assertExit(res, 0)
        self.assertIn("--- /dev/null", res.out)
        self.assertIn("+++ merged/v1.Pod.default.debug-shell", res.out)
        self.assertIn("busybox:1.36", res.out)
        self.assertEqual([r for r in self.kube.requests(method="POST")
                          if r["query"].get("dryRun") != "All"], [])
        gone = subprocess.run([KUBECTL, "get", "pod", "debug-shell", "-n", "default"],
                              capture_output=True, text=True, env=self.child_env())
        self.assertNotEqual(gone.returncode, 0, "the rehearsal created the pod")

    def test_without_diff_no_rehearsal_request(self):
        f = self.manifest("enrich:1.9", 6)
        n_before = len(self.kube.requests())
        res = self.run_body("""
            step("apply", function() kubectl.apply(%s) end)
        """ % lua_str(f), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual([r for r in self.kube.requests()[n_before:]
                          if r["method"] not in ("GET", "HEAD")], [])


if __name__ == "__main__":
    unittest.main()
