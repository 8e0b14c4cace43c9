"""`runbook schedule`: a runbook's `schedule` metadata as the schedulers teams
run read it, and `runbook check` refusing a schedule they could not.

systemd: the service + timer pair is verified by the real `systemd-analyze
verify` (with ExecStart= the binary under test, as verify wants a program
that exists), and the timer's OnCalendar= lines are checked against the
real `systemd-analyze calendar`: its next elapses from a base time must be
the runs `runbook schedule --list --from` computes, for keywords, ranges,
steps, lists and cron's day-of-month OR day-of-week rule (two lines).

Kubernetes: the CronJob goes through the real `kubectl apply --dry-run=server
--validate=strict`.  Client-side validation (`--dry-run=client`) cannot run
here: kubectl downloads the schema from a server's /openapi/v2 as protobuf,
and no cluster runs where the tests run.  tests/fixtures/fake_kube.py knows
no batch/v1, so this file starts a small API server of its own (discovery for
batch/v1, an OpenAPI v3 that tells kubectl the server validates fields, and
the cronjobs create endpoint) that judges what kubectl POSTs the way the real
one does with fieldValidation=Strict: unknown fields, wrong types and missing
required fields are refused.  Its schema is not written here: it is read
from the Kubernetes API models Debian ships in python3-kubernetes (generated
from the Kubernetes OpenAPI spec; read as source, not imported).  Those models
are of Kubernetes 1.22, older than CronJob's timeZone, so --time-zone is
checked on the text of the manifest only.  The test asserts what reached the
server: the schedule, the args, the Secret, the audit volume.
"""
import ast
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import BIN, RunbookTestCase  # noqa: E402

MODELS = "/usr/lib/python3/dist-packages/kubernetes/client/models"
AUDIT = "/home/runbook/.local/state/runbook"  # the image's VOLUME (Dockerfile)


# ---- the Kubernetes schema, from python3-kubernetes's model sources ---------

class K8sSchema:
    """Model name -> (json field -> type, required json fields), parsed from
    the generated sources with ast (the package's imports are not needed)."""

    def __init__(self, models_dir):
        self.files = {}
        for path in glob.glob(os.path.join(models_dir, "*.py")):
            with open(path) as f:
                m = re.search(r"^class (\w+)\(object\)", f.read(), re.M)
            if m:
                self.files[m.group(1)] = path
        self.cache = {}

    def model(self, name):
        if name not in self.cache:
            with open(self.files[name]) as f:
                src = f.read()
            types, names = {}, {}
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                        isinstance(node.targets[0], ast.Name) and \
                        node.targets[0].id in ("openapi_types", "attribute_map"):
                    d = ast.literal_eval(node.value)
                    (types if node.targets[0].id == "openapi_types" else names).update(d)
            required = {names[a] for a in
                        re.findall(r"Invalid value for `(\w+)`, must not be `None`", src)}
            self.cache[name] = ({names[a]: t for a, t in types.items()}, required)
        return self.cache[name]

    def check(self, value, typ, path, errors):
        if typ.startswith("list["):
            if not isinstance(value, list):
                errors.append("%s: expected a list" % path)
                return
            for i, v in enumerate(value):
                self.check(v, typ[5:-1], "%s[%d]" % (path, i), errors)
        elif typ.startswith("dict("):
            inner = typ[typ.index(",") + 1:-1].strip()
            if not isinstance(value, dict):
                errors.append("%s: expected a map" % path)
                return
            for k, v in value.items():
                self.check(v, inner, "%s[%s]" % (path, k), errors)
        elif typ in ("str", "datetime", "date"):
            if not isinstance(value, str):
                errors.append("%s: expected a string, got %r" % (path, value))
        elif typ == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append("%s: expected an integer, got %r" % (path, value))
        elif typ == "bool":
            if not isinstance(value, bool):
                errors.append("%s: expected a boolean, got %r" % (path, value))
        elif typ == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                errors.append("%s: expected a number" % path)
        elif typ == "object":
            pass
        else:
            fields, required = self.model(typ)
            if not isinstance(value, dict):
                errors.append("%s: expected an object (%s)" % (path, typ))
                return
            for k, v in value.items():
                if k not in fields:
                    errors.append('unknown field "%s%s"' % (path + "." if path else "", k))
                else:
                    self.check(v, fields[k], (path + "." if path else "") + k, errors)
            for k in sorted(required - set(value)):
                errors.append("%s%s: Required value" % (path + "." if path else "", k))


# ---- a small API server: batch/v1 cronjobs, validated ------------------------

class KubeBatch:
    """Enough of the API server for `kubectl apply --dry-run=server`: legacy
    discovery, an OpenAPI v3 whose PATCH takes fieldValidation (so kubectl
    lets the server validate), GET (404: nothing exists) and POST of
    cronjobs.  Every request is kept in self.requests."""

    def __init__(self, schema):
        self.schema, self.requests = schema, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path, _, query = self.path.partition("?")
                entry = {"method": self.command, "path": path, "query": query}
                if body:
                    entry["body"] = json.loads(body)
                outer.requests.append(entry)
                code, out = outer.route(self.command, path, query, entry.get("body"))
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def status(code, reason, message):
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": message, "reason": reason, "code": code}

    def route(self, method, path, query, body):
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-test"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
        if path == "/apis":
            gv = {"groupVersion": "batch/v1", "version": "v1"}
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "batch", "versions": [gv], "preferredVersion": gv}]}
        if path == "/apis/batch/v1":
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "batch/v1",
                         "resources": [{"name": "cronjobs", "singularName": "cronjob",
                                        "namespaced": True, "kind": "CronJob",
                                        "verbs": ["create", "delete", "get", "list", "patch",
                                                  "update", "watch"]}]}
        if path == "/openapi/v3":
            return 200, {"paths": {"apis/batch/v1": {
                "serverRelativeURL": "/openapi/v3/apis/batch/v1?hash=B1"}}}
        if path == "/openapi/v3/apis/batch/v1":
            gvk = {"group": "batch", "version": "v1", "kind": "CronJob"}
            params = [{"name": n, "in": "query", "schema": {"type": "string"}}
                      for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
            return 200, {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32"},
                         "paths": {"/apis/batch/v1/namespaces/{namespace}/cronjobs/{name}": {
                             "get": {"x-kubernetes-group-version-kind": gvk, "responses": {}},
                             "patch": {"x-kubernetes-group-version-kind": gvk,
                                       "parameters": params, "responses": {}}}},
                         "components": {"schemas": {}}}
        m = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/cronjobs(?:/([^/]+))?", path)
        if not m:
            return self.status(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and m.group(2):
            return self.status(404, "NotFound", 'cronjobs.batch "%s" not found' % m.group(2))
        if method != "POST":
            return self.status(405, "MethodNotAllowed", "not here")
        return self.create(m.group(1), query, body)

    def create(self, namespace, query, obj):
        if "dryRun=All" not in query:
            return self.status(400, "BadRequest", "this test server only answers dry runs")
        errors = []
        if obj.get("apiVersion") != "batch/v1" or obj.get("kind") != "CronJob":
            errors.append("expected batch/v1 CronJob")
        self.schema.check(obj, "V1CronJob", "", errors)
        unknown = [e for e in errors if e.startswith("unknown field")]
        if unknown and "fieldValidation=Strict" in query:
            return self.status(400, "BadRequest",
                               "CronJob in version \"v1\" cannot be handled as a CronJob: strict "
                               "decoding error: " + ", ".join(unknown))
        errors = [e for e in errors if not e.startswith("unknown field")]
        name = (obj.get("metadata") or {}).get("name") or ""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                            name) or len(name) > 52:
            errors.append("metadata.name: Invalid value: %r" % name)
        spec = obj.get("spec") or {}
        if len(str(spec.get("schedule", "")).split()) != 5:
            errors.append("spec.schedule: Invalid value: %r" % spec.get("schedule"))
        if spec.get("concurrencyPolicy") not in (None, "Allow", "Forbid", "Replace"):
            errors.append("spec.concurrencyPolicy: Unsupported value")
        if errors:
            return self.status(422, "Invalid", 'CronJob.batch "%s" is invalid: %s'
                               % (name, "; ".join(errors)))
        return 201, obj


# ---- the library the tests schedule -------------------------------------------

LIBRARY = {
    "runbooks/ops/nightly-report.lua": '''
        runbook {
          name = "ops/nightly-report",
          title = "Nightly report: 100% of the queues",
          schedule = "30 2 * * 1-5",
          params = {
            target = { default = "all", help = "what to report on" },
            days   = { type = "number", default = 1 },
          },
        }
        step("report", function() log.info("report on %s", params.target) end)
    ''',
    "runbooks/ops/hourly-sweep.lua": '''
        runbook { name = "ops/hourly-sweep", schedule = "hourly" }
        step("sweep", function() end)
    ''',
    "runbooks/ops/restart.lua": '''
        runbook { name = "ops/restart", title = "Restart, when someone asks" }
        step("restart", function() end)
    ''',
    "runbooks/ops/deploy.lua": '''
        runbook { name = "ops/deploy", schedule = "on demand" }
        step("deploy", function() end)
    ''',
}

CONFIG = '''
    environments:
      prod:
        params: { target: "prod-queues" }
'''


class ScheduleCase(RunbookTestCase):

    def setUp(self):
        super().setUp()
        for name, text in LIBRARY.items():
            self.write(name, text)
        self.write("runbook.yaml", CONFIG)
        self.env["TZ"] = "UTC"

    def emit(self, name, kind, *flags):
        out = self.path("out-%s" % kind)
        os.makedirs(out, exist_ok=True)
        res = self.rb("schedule", name, "--emit", kind, "--out", out, *flags)
        self.assertExit(res, 0)
        return out

    def listing(self, *flags):
        res = self.rb("schedule", "--list", "--json", *flags)
        self.assertExit(res, 0)
        return {r["name"]: r for r in map(json.loads, res.out.splitlines())}


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze (package systemd) missing")
class Systemd(ScheduleCase):

    def verify(self, *units):
        p = subprocess.run(["systemd-analyze", "verify"] + list(units), capture_output=True,
                           text=True, timeout=60, env=self.child_env())
        return p.returncode, p.stdout + p.stderr

    def test_units_verify_and_exec_start_is_quoted(self):
        tricky = 'target=a "b" 100% $HOME\\x'
        user = pwd.getpwuid(os.getuid()).pw_name
        out = self.emit("ops/nightly-report", "systemd", "--bin", os.path.abspath(BIN),
                        "--env", "prod", "--param", tricky, "--param", "days=3", "--user", user)
        svc = os.path.join(out, "runbook-ops-nightly-report.service")
        tmr = os.path.join(out, "runbook-ops-nightly-report.timer")
        code, text = self.verify(svc, tmr)
        self.assertEqual(code, 0, text)
        self.assertNotIn("runbook-ops-nightly-report", text)  # no warning about our units
        service = self.read(svc)
        self.assertIn("\nType=oneshot\nUser=%s\n" % user, service)
        self.assertIn("\nWorkingDirectory=%s\n" % self.tmp, service)
        # systemd.syntax(7): % and $ doubled, the word quoted with C escapes
        self.assertIn("\nExecStart=" + os.path.abspath(BIN) + " run ops/nightly-report --yes "
                      '--env prod --param "target=a \\"b\\" 100%% $$HOME\\\\x" --param days=3\n',
                      service)
        self.assertIn("Description=runbook ops/nightly-report: Nightly report: 100%% of the "
                      "queues\n", service)
        timer = self.read(tmr)
        self.assertIn("\nOnCalendar=Mon..Fri *-*-* 02:30:00\n", timer)
        self.assertIn("\nPersistent=true\n", timer)
        self.assertIn("\nUnit=runbook-ops-nightly-report.service\n", timer)

    def test_verify_catches_a_missing_binary(self):
        """The check above means something: a unit whose ExecStart= names no
        program fails verify."""
        out = self.emit("ops/hourly-sweep", "systemd", "--bin", self.path("no-such-runbook"))
        code, text = self.verify(os.path.join(out, "runbook-ops-hourly-sweep.service"))
        self.assertNotEqual(code, 0, text)

    def systemd_runs(self, oncalendar, base, n):
        runs = []
        for expr in oncalendar:
            p = subprocess.run(["systemd-analyze", "calendar", "--iterations=%d" % n,
                                "--base-time=@%d" % base, expr], capture_output=True, text=True,
                               timeout=60, env=self.child_env())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            runs += re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d):00",
                               p.stdout)
        return sorted(set(runs))[:n]

    def our_runs(self, name, base, n):
        runs, t = [], base
        for _ in range(n):
            r = self.listing("--from", "@%d" % t)[name]
            runs.append(r["next"][:16])
            t = r["next_epoch"]
        return runs

    def test_oncalendar_fires_when_cron_would(self):
        """For each schedule, the timer's OnCalendar= lines (as systemd reads
        them) and --list (cron's rules) give the same next five runs."""
        base = 1772445600  # Mon 2026-03-02 10:00 UTC
        cases = ["30 2 * * 1-5", "*/20 9-17 * * *", "0 0 13 * 5", "15 12 1 jan,jul *",
                 "5 4 */10 * *", "0 6 * * sun,7", "weekly", "daily", "monthly", "@yearly"]
        for i, sched in enumerate(cases):
            with self.subTest(schedule=sched):
                name = "cal/c%d" % i
                self.write("runbooks/cal/c%d.lua" % i, 'runbook { name = "%s", schedule = "%s" }\n'
                           'step("s", function() end)\n' % (name, sched))
                out = self.emit(name, "systemd", "--bin", os.path.abspath(BIN))
                timer = self.read(os.path.join(out, "runbook-cal-c%d.timer" % i))
                lines = re.findall(r"^OnCalendar=(.*)$", timer, re.M)
                # cron ORs a restricted day of month with a restricted weekday
                self.assertEqual(len(lines), 2 if sched == "0 0 13 * 5" else 1, timer)
                self.assertEqual(self.our_runs(name, base, 5),
                                 self.systemd_runs(lines, base, 5))

    def test_daylight_saving_changes_as_systemd(self):
        """In local time across both changes: the skipped 02:30 does not run,
        the repeated one runs once, at its first occurrence."""
        self.env["TZ"] = "Europe/Berlin"
        self.write("runbooks/cal/dst.lua", 'runbook { name = "cal/dst", schedule = "30 2 * * *" }\n'
                   'step("s", function() end)\n', dedent=False)
        out = self.emit("cal/dst", "systemd", "--bin", os.path.abspath(BIN))
        lines = re.findall(r"^OnCalendar=(.*)$", self.read(os.path.join(out, "runbook-cal-dst.timer")),
                           re.M)
        for base in (1774605600, 1792836000):  # 2026-03-27 and 2026-10-24, 10:00 UTC
            with self.subTest(base=base):
                ours = self.our_runs("cal/dst", base, 4)
                self.assertEqual(ours, self.systemd_runs(lines, base, 4))
                self.assertEqual(len(set(ours)), 4)

    def test_keyword_time_is_stable_and_in_the_night(self):
        a = self.listing()["ops/nightly-report"]
        self.assertEqual(a["cron"], "30 2 * * 1-5")
        h = self.listing()["ops/hourly-sweep"]
        minute, rest = h["cron"].split(" ", 1)
        self.assertEqual(rest, "* * * *")
        self.assertEqual(self.listing()["ops/hourly-sweep"]["cron"], h["cron"])
        self.assertTrue(0 <= int(minute) < 60)


@unittest.skipUnless(shutil.which("kubectl") and os.path.isdir(MODELS),
                     "kubectl or python3-kubernetes (the CronJob schema) missing")
class CronJob(ScheduleCase):

    def setUp(self):
        super().setUp()
        self.api = KubeBatch(K8sSchema(MODELS))
        self.addCleanup(self.api.stop)
        kc = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
              "clusters": [{"name": "t", "cluster": {"server": "http://127.0.0.1:%d"
                                                     % self.api.port}}],
              "users": [{"name": "t", "user": {"token": "t"}}],
              "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t",
                                                     "namespace": "default"}}]}
        self.write("kubeconfig", json.dumps(kc))
        self.env["KUBECONFIG"] = self.path("kubeconfig")
        self.env["KUBECACHEDIR"] = self.path("kubecache")

    def kubectl_apply(self, path):
        p = subprocess.run(["kubectl", "apply", "--dry-run=server", "--validate=strict",
                            "-f", path], capture_output=True, text=True, timeout=120,
                           env=self.child_env())
        return p.returncode, p.stdout + p.stderr

    def created(self):
        return [r["body"] for r in self.api.requests if r["method"] == "POST"]

    def test_cronjob_applies_and_carries_the_run(self):
        out = self.emit("ops/nightly-report", "cronjob", "--env", "prod", "--param",
                        'target=a "b"', "--secret", "ops-secrets", "--image",
                        "registry.example/runbook:1.2", "--namespace", "ops")
        path = os.path.join(out, "runbook-ops-nightly-report.yaml")
        code, text = self.kubectl_apply(path)
        self.assertEqual(code, 0, text)
        self.assertIn("created (server dry run)", text)
        [obj] = self.created()
        self.assertEqual(obj["metadata"]["name"], "runbook-ops-nightly-report")
        self.assertEqual(obj["metadata"]["namespace"], "ops")
        spec = obj["spec"]
        self.assertEqual(spec["schedule"], "30 2 * * 1-5")
        self.assertEqual(spec["concurrencyPolicy"], "Forbid")
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        self.assertEqual(pod["restartPolicy"], "Never")
        [c] = pod["containers"]
        self.assertEqual(c["image"], "registry.example/runbook:1.2")
        self.assertEqual(c["args"], ["run", "ops/nightly-report", "--yes", "--env", "prod",
                                     "--param", 'target=a "b"',
                                     "--audit", AUDIT + "/audit.db"])
        self.assertEqual(c["envFrom"], [{"secretRef": {"name": "ops-secrets"}}])
        self.assertEqual(c["volumeMounts"], [{"name": "audit", "mountPath": AUDIT}])
        # the image's user (Dockerfile: USER runbook, uid 10001) can write the volume
        self.assertEqual(pod["securityContext"], {"runAsNonRoot": True, "runAsUser": 10001,
                                                  "fsGroup": 10001})
        self.assertEqual(pod["volumes"], [{"name": "audit", "emptyDir": {}}])

    def test_the_server_refuses_what_kubernetes_would(self):
        """The validation bites: an unknown field and a wrong type in the
        same manifest are refused (so the pass above is not a rubber stamp)."""
        out = self.emit("ops/hourly-sweep", "cronjob")
        path = os.path.join(out, "runbook-ops-hourly-sweep.yaml")
        text = self.read(path)
        bad = self.write("bad.yaml", text.replace("restartPolicy: Never",
                                                  "restartPolicy: Never\n          bogus: 1"),
                         dedent=False)
        code, msg = self.kubectl_apply(bad)
        self.assertNotEqual(code, 0, msg)
        self.assertIn('unknown field "spec.jobTemplate.spec.template.spec.bogus"', msg)
        bad = self.write("bad2.yaml", text.replace("backoffLimit: 0", "backoffLimit: \"0\""),
                         dedent=False)
        code, msg = self.kubectl_apply(bad)
        self.assertNotEqual(code, 0, msg)
        self.assertIn("backoffLimit: expected an integer", msg)

    def test_postgres_audit_log_is_used_and_its_password_not_written(self):
        self.write("runbook.yaml", CONFIG + "    audit: postgres://rb:s3cret@db.internal/audit\n")
        out = self.emit("ops/nightly-report", "cronjob", "--env", "prod", "--secret", "pg")
        path = os.path.join(out, "runbook-ops-nightly-report.yaml")
        text = self.read(path)
        self.assertNotIn("s3cret", text)
        self.assertIn("postgres://rb:****@db.internal/audit", text)
        code, msg = self.kubectl_apply(path)
        self.assertEqual(code, 0, msg)
        [obj] = self.created()
        pod = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        self.assertNotIn("volumes", pod)
        self.assertEqual(pod["containers"][0]["args"],
                         ["run", "ops/nightly-report", "--yes", "--env", "prod"])

    def test_audit_off_means_no_volume(self):
        for where in ("top", "env"):
            with self.subTest(where=where):
                self.write("runbook.yaml", CONFIG + ("    audit: false\n" if where == "top" else
                                                     "        audit: false\n"))
                res = self.rb("schedule", "ops/nightly-report", "--emit", "cronjob", "--env",
                              "prod")
                self.assertExit(res, 0)
                self.assertIn("# Audit log: off", res.out)
                self.assertNotIn("volumes:", res.out)
                self.assertNotIn('"--audit"', res.out)

    def test_audit_pvc_and_time_zone(self):
        out = self.emit("ops/hourly-sweep", "cronjob", "--audit-pvc", "runbook-audit")
        path = os.path.join(out, "runbook-ops-hourly-sweep.yaml")
        code, msg = self.kubectl_apply(path)
        self.assertEqual(code, 0, msg)
        [obj] = self.created()
        self.assertEqual(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"],
                         [{"name": "audit", "persistentVolumeClaim":
                           {"claimName": "runbook-audit"}}])
        # timeZone (batch/v1 since Kubernetes 1.27) postdates the 1.22 models: text only
        res = self.rb("schedule", "ops/hourly-sweep", "--emit", "cronjob", "--time-zone",
                      "Europe/Paris")
        self.assertExit(res, 0)
        self.assertIn('\n  timeZone: "Europe/Paris"\n', res.out)


class ListAndErrors(ScheduleCase):

    def test_list_shows_the_scheduled_runbooks_and_their_next_run(self):
        got = self.listing("--from", "2026-03-02 10:00")  # a Monday, TZ=UTC
        self.assertEqual(sorted(got), ["ops/hourly-sweep", "ops/nightly-report"])
        self.assertEqual(got["ops/nightly-report"]["next"], "2026-03-03 02:30 UTC")
        self.assertEqual(got["ops/nightly-report"]["schedule"], "30 2 * * 1-5")
        minute = int(got["ops/hourly-sweep"]["cron"].split()[0])
        self.assertEqual(got["ops/hourly-sweep"]["next"], "2026-03-02 10:%02d UTC" % minute
                         if minute > 0 else "2026-03-02 11:00 UTC")
        # the table, in another time zone: local time
        res = self.rb("schedule", "--list", "--from", "2026-03-02 10:00",
                      env={"TZ": "America/New_York"})
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"(?m)^ops/nightly-report +30 2 \* \* 1-5 +30 2 \* \* 1-5 +"
                                  r"2026-03-03 02:30 EST$")
        self.assertNotIn("ops/restart", res.out)
        self.assertNotIn("ops/deploy", res.out)

    def test_check_reports_a_bad_schedule_at_its_line(self):
        self.write("runbooks/ops/bad.lua", '''
            runbook {
              name = "ops/bad",
              description = "a schedule = text that is not the key",
              schedule    = "0 25 * * *",
            }
            step("s", function() end)
        ''')
        res = self.rb("check", "runbooks")
        self.assertExit(res, 1)
        self.assertIn("runbooks/ops/bad.lua:4:3: error: schedule '0 25 * * *': hour field "
                      "'25': out of range 0-23", res.out)
        self.assertIn("1 error", res.out)
        for sched, why in [("every day", "5 fields"), ("0 0 30 2 *", "never fires"),
                           ("0 0 L * *", "not standard cron"), ("@reboot", "not a time"),
                           ("*/0 * * * *", "day"), ("0 0 * * 8", "out of range")]:
            with self.subTest(schedule=sched):
                self.write("runbooks/ops/bad.lua", 'runbook { name = "ops/bad", schedule = "%s" }\n'
                           'step("s", function() end)\n' % sched, dedent=False)
                res = self.rb("check", "runbooks/ops/bad.lua")
                self.assertExit(res, 1)
                self.assertRegex(res.out, r"runbooks/ops/bad.lua:1:29: error: .*")
                if why != "day":
                    self.assertIn(why, res.out)
        for sched in ("on demand", "monthly", "@weekly", "0 9-17/2 1,15 jan-mar mon-fri"):
            with self.subTest(schedule=sched):
                self.write("runbooks/ops/bad.lua", 'runbook { name = "ops/bad", schedule = "%s" }\n'
                           'step("s", function() end)\n' % sched, dedent=False)
                self.assertExit(self.rb("check", "runbooks/ops/bad.lua"), 0)

    def test_usage_errors_exit_2(self):
        self.write("runbooks/ops/needs-host.lua", '''
            runbook { name = "ops/needs-host", schedule = "daily",
                      params = { host = { required = true } } }
            step("s", function() end)
        ''')
        cases = [
            (["schedule", "ops/needs-host", "--emit", "systemd"], "needs --param host=VALUE"),
            (["schedule", "ops/nope", "--emit", "systemd"], "no runbook named 'ops/nope'"),
            (["schedule", "ops/restart", "--emit", "systemd"], "declares no schedule"),
            (["schedule", "ops/deploy", "--emit", "cronjob"], "run on demand"),
            (["schedule", "ops/nightly-report", "--emit", "cron"], "expected systemd or cronjob"),
            (["schedule", "ops/nightly-report", "--emit", "systemd", "--param", "nope=1"],
             "declares no param 'nope'"),
            (["schedule", "ops/nightly-report", "--emit", "systemd", "--param", "days=x"],
             "must be a number"),
            (["schedule", "ops/nightly-report", "--emit", "systemd", "--env", "staging"],
             "no such environment"),
            (["schedule", "ops/nightly-report"], "which runbook and what"),
            (["schedule", "--list", "--from", "tomorrow"], "expected YYYY-MM-DD HH:MM"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                res = self.rb(*args)
                self.assertExit(res, 2)
                self.assertIn(msg, res.err)
                self.assertEqual(res.out, "")


if __name__ == "__main__":
    unittest.main()
