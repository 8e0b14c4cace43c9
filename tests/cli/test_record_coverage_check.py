"""`runbook run --record`, `runbook test --coverage` and `runbook check`.

Recording: a real run (against the loopback HTTP fixture, real commands, real
files) or a dry-run is written as a scenario; the property that matters is
that `runbook test` of a fresh recording passes -- with the fixture server
stopped and the files it read gone, so the replay is hermetic -- and fails
when the recording is changed.  The recorded YAML is read back through the
binary's own yaml.decode (Python has no YAML parser in its standard library).

Coverage: one runbook with conditional steps and two scenarios, one per
branch: the merged report, and the report of either alone.

Check: every class of problem on a purpose-made file, each with its
file:line:col and exit 1; --json; a clean pair passes.

Every fixture (runbooks, scenarios) is written at run time into the test's
private directory: nothing here adds a *.scenario.yaml to the repository,
which `runbook test` in CI would pick up."""
import json
import os
import re
import unittest

from rbtest import RunbookTestCase

API_KEY = "k3y-9f8e7d6c5b4a-SECRET"   # secret("RB_REC_API_KEY"), from the environment
TOKEN = "tok-Zq81-param-SECRET"        # a param declared secret = true
SECRET_ENV = {"RB_REC_API_KEY": API_KEY}

SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)? \((\d+\.\d\d) s\)$", re.M)

# The live runbook: a health check polled until it answers 200 (the fixture's
# /sequence/ route answers 503, 503, then 200), real commands, a small and a
# large file read, secrets in request headers (so they come back in /echo's
# body), a large response body, a connection refused caught with pcall, and
# the mutations: a file write, a POST and a Slack message.
LIVE = r"""
runbook {
  name = "t/recorded",
  params = {
    base = { type = "string" },
    conf = { type = "string" },
    big = { type = "string" },
    out = { type = "string" },
    dead = { type = "string" },
    seq = { type = "string" },
    token = { type = "string", secret = true },
    replicas = { type = "number", default = 3 },
  },
}

step("Wait for healthy", function()
  local polls = 0
  wait_until(function()
    polls = polls + 1
    return http.get(params.base .. "/sequence/" .. params.seq .. "/503,503,200").status == 200
  end, { timeout = 30, every = 0.05, what = "healthy" })
  state.polls = polls
end)

step("Inspect", function()
  state.os = exec{"uname", "-s"}.stdout:gsub("%s+$", "")
  state.greeting = exec{"echo", "hello", "from", "runbook"}.stdout
  state.count = #exec{"seq", "1", "2000"}.stdout
  state.shout = sh("echo quiet | tr a-z A-Z").stdout
  state.conf = fs.read(params.conf):gsub("%s+$", "")
  state.big = #fs.read(params.big)
  local key = secret("RB_REC_API_KEY")
  local small = http.get(params.base .. "/echo", {
    headers = { Authorization = "Bearer " .. key, ["X-Token"] = params.token } })
  state.small = small:json().method
  local large = http.get(params.base .. "/echo?pad=" .. string.rep("x", 5000), {
    headers = { Authorization = "Bearer " .. key } })
  state.large = #large.body > 4096
  local ok, err = pcall(http.get, params.dead .. "/ping")
  state.dead_ok = ok
  state.dead_err = tostring(err):match("connection refused") ~= nil
  log.info("token %s, %d replicas", params.token, params.replicas)
end)

step("Apply", function()
  fs.write(params.out, "mode " .. state.conf .. "\n")
  local r = http.post(params.base .. "/echo", { json = { mode = state.conf, replicas = params.replicas } })
  state.posted = r.status
  notify.slack{ text = "applied " .. state.conf .. " on " .. state.os, webhook = params.base .. "/slack" }
end)
"""

# A run that fails in its second step: a command exits 3.
FAILING = r"""
runbook {
  name = "t/recorded-failure",
  params = { base = { type = "string" }, out = { type = "string" } },
}

step("Prepare", function()
  state.ready = http.get(params.base .. "/json"):json().name
  fs.write(params.out, "prepared\n")
end)

step("Migrate", function()
  exec{"sh", "-c", "echo migrating; echo 'migration 42 failed' >&2; exit 3"}
  fs.write(params.out, "migrated\n")
end)

step("Announce", function()
  http.post(params.base .. "/echo", { json = { done = true } })
end)
"""


class Recorded(RunbookTestCase):
    """Helpers: a runbook under rb/, its recording under scen/."""

    def setUp(self):
        super().setUp()
        self.scen = self.path("scen")
        os.makedirs(self.scen)

    def yaml_doc(self, p):
        """The YAML file p as Python data, decoded by the binary itself."""
        if not hasattr(self, "_y2j"):
            self._y2j = self.write("tools/yaml2json.lua", (
                'runbook { name = "t/yaml2json", params = { file = { type = "string" } } }\n'
                'step("Decode", function()\n'
                '  print("@@" .. json.encode(yaml.decode(fs.read(params.file))))\n'
                'end)\n'), dedent=False)
        res = self.rb("run", self._y2j, "--no-audit", "--param", "file=" + p)
        self.assertExit(res, 0, "the recorded scenario is not valid YAML")
        lines = [l for l in res.out.splitlines() if l.startswith("@@")]
        self.assertEqual(len(lines), 1, res)
        return json.loads(lines[0][2:])

    def all_bytes_under(self, d):
        out = {}
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = f.read()
        return out

    def assertReplayPasses(self, scenario, env=None):
        res = self.rb("test", scenario, env=env)
        self.assertExit(res, 0, "the replay of a fresh recording must pass")
        self.assertIn("✓ %s (" % scenario, res.out, res)
        m = SUMMARY_RE.search(res.out)
        self.assertTrue(m, res)
        self.assertEqual((m.group(1), m.group(2)), ("1", "0"), res)
        return res

    def assertReplayFails(self, scenario, pattern, env=None):
        res = self.rb("test", scenario, env=env)
        self.assertExit(res, 1)
        self.assertIn("✗ %s (" % scenario, res.out, res)
        self.assertRegex(res.out, pattern)
        return res

    def assertChecks(self, *files):
        res = self.rb("check", *files)
        self.assertExit(res, 0, "a recorded scenario must pass `runbook check`")
        self.assertIn("%d file%s checked: 0 errors, 0 warnings" % (
            len(files), "" if len(files) == 1 else "s"), res.out, res)
        return res

    def mocks(self, doc, prim, **match):
        return [m for m in doc["mocks"] if prim in m
                and all(m[prim].get(k) == v for k, v in match.items())]


class RecordLive(Recorded):
    def record_live(self, *flags, name="live"):
        self.srv = self.httpd({"/slack": {"status": 200, "body": "ok", "methods": ["POST"]}})
        self.rbfile = self.write("rb/live.lua", LIVE)
        self.conf = self.write("etc/app.conf", "blue\n")
        self.big_text = "".join("line %05d of a large configuration file\n" % i for i in range(300))
        self.big = self.write("etc/big.conf", self.big_text, dedent=False)
        self.out_file = self.path("var", "applied.txt")
        os.makedirs(os.path.dirname(self.out_file))
        self.dead = "http://127.0.0.1:%d" % self.closed_port()
        self.seq = "health-%s" % name
        self.rel = os.path.join("scen", name + ".scenario.yaml")
        self.params = {"base": self.srv.base, "conf": self.conf, "big": self.big,
                       "out": self.out_file, "dead": self.dead, "seq": self.seq}
        args = ["run", self.rbfile, "--audit", self.audit, "--record", self.rel]
        for k, v in sorted(self.params.items()):
            args += ["--param", "%s=%s" % (k, v)]
        args += ["--param", "token=" + TOKEN] + list(flags)
        res = self.rb(*args, env=SECRET_ENV)
        self.assertExit(res, 0)
        self.assertIn("recorded the run as %s: runbook test %s" % (self.rel, self.rel),
                      res.out.splitlines(), res)
        self.assertNotIn(API_KEY, res.all)
        self.assertNotIn(TOKEN, res.all)
        return res

    def assertMutations(self, acts):
        """The mutating actions of LIVE, in order: `seq` and `sh` are not on
        exec's list of known read-only commands, so they count as mutating."""
        self.assertEqual(len(acts), 5, acts)
        self.assertEqual(acts[0], "seq 1 2000")
        self.assertEqual(acts[1], "sh -c echo quiet | tr a-z A-Z")
        self.assertEqual(acts[2], "fs write %s (10 bytes)" % self.out_file)
        self.assertTrue(acts[3].startswith("POST %s/echo {" % self.srv.base), acts)
        self.assertIn('"mode":"blue"', acts[3])
        self.assertEqual(acts[4], 'notify slack 127.0.0.1:%d: "applied blue on %s"'
                         % (self.srv.port, os.uname().sysname))

    def assertNoSecretsWritten(self):
        files = self.all_bytes_under(self.scen)
        for name, data in files.items():
            self.assertNotIn(API_KEY.encode(), data, name)
            self.assertNotIn(TOKEN.encode(), data, name)
        return files

    def make_replay_hermetic(self):
        """Nothing the live run touched is there for the replay."""
        self.srv.stop()
        os.remove(self.conf)
        os.remove(self.big)
        if os.path.exists(self.out_file):
            os.remove(self.out_file)

    def test_live_recording_content(self):
        self.record_live("--yes")
        # the live run really happened
        self.assertEqual(self.read(self.out_file), "mode blue\n")
        self.assertEqual(len(self.srv.requests(path="/sequence/*")), 3)
        self.assertEqual(len(self.srv.requests(path="/slack", method="POST")), 1)

        doc = self.yaml_doc(self.path(self.rel))
        self.assertEqual(doc["runbook"], "../rb/live.lua")
        # the resolved params (the default too); the secret one only as a
        # placeholder that passes its declaration, so the recording replays
        want_params = dict(self.params, replicas=3, token="****")
        self.assertEqual({k: str(v) for k, v in doc["params"].items()},
                         {k: str(v) for k, v in want_params.items()})

        # fs seeds: what fs.read read; the large one in a file beside it
        self.assertEqual(set(doc["fs"]), {self.conf, self.big})
        self.assertEqual(doc["fs"][self.conf], "blue\n")
        big_seed = doc["fs"][self.big]
        self.assertIsInstance(big_seed, dict)
        self.assertRegex(big_seed["file"], r"^live\.\d+\.file$")
        self.assertEqual(self.read(os.path.join(self.scen, big_seed["file"])), self.big_text)

        # the health check polled three times: ONE mock, a sequence of three
        seq_url = "%s/sequence/%s/503,503,200" % (self.srv.base, self.seq)
        seq = self.mocks(doc, "http", url=seq_url)
        self.assertEqual(len(seq), 1, doc["mocks"])
        self.assertEqual(seq[0]["http"], {"method": "GET", "url": seq_url})
        resp = seq[0]["respond"]
        self.assertIsInstance(resp, list)
        self.assertEqual([r["status"] for r in resp], [503, 503, 200])
        self.assertEqual(resp[2]["body"], "sequence %s #3: 200" % self.seq)
        self.assertIn("text/plain", resp[0]["headers"]["content-type"])

        # real commands, with their output
        uname = self.mocks(doc, "exec", argv=["uname", "-s"])
        self.assertEqual(len(uname), 1, doc["mocks"])
        self.assertEqual(uname[0]["respond"], {"code": 0, "stdout": os.uname().sysname + "\n"})
        echo = self.mocks(doc, "exec", argv=["echo", "hello", "from", "runbook"])
        self.assertEqual(echo[0]["respond"], {"code": 0, "stdout": "hello from runbook\n"})
        seqcmd = self.mocks(doc, "exec", argv=["seq", "1", "2000"])
        self.assertEqual(len(seqcmd), 1, doc["mocks"])
        self.assertNotIn("stdout", seqcmd[0]["respond"])
        self.assertRegex(seqcmd[0]["respond"]["stdout_file"], r"^live\.\d+\.stdout$")
        self.assertEqual(self.read(os.path.join(self.scen, seqcmd[0]["respond"]["stdout_file"])),
                         "".join("%d\n" % i for i in range(1, 2001)))
        shm = self.mocks(doc, "sh", command="echo quiet | tr a-z A-Z")
        self.assertEqual(len(shm), 1, doc["mocks"])
        self.assertEqual(shm[0]["respond"]["stdout"], "QUIET\n")

        # /echo answers with the request: the secrets in its headers are redacted
        small = self.mocks(doc, "http", url=self.srv.base + "/echo", method="GET")
        self.assertEqual(len(small), 1, doc["mocks"])
        self.assertEqual(small[0]["respond"]["status"], 200)
        self.assertEqual(small[0]["respond"]["headers"], {"content-type": "application/json"})
        echoed = json.loads(small[0]["respond"]["body"])
        self.assertEqual(echoed["headers"]["authorization"], "Bearer ****")
        self.assertEqual(echoed["headers"]["x-token"], "****")
        # the large body went to STEM.N.body beside the scenario, redacted too
        large_url = self.srv.base + "/echo?pad=" + "x" * 5000
        large = self.mocks(doc, "http", url=large_url)
        self.assertEqual(len(large), 1, [m.get("http") for m in doc["mocks"]])
        self.assertNotIn("body", large[0]["respond"])
        bf = large[0]["respond"]["body_file"]
        self.assertRegex(bf, r"^live\.\d+\.body$")
        body = self.read(os.path.join(self.scen, bf))
        self.assertGreater(len(body), 4096)
        self.assertEqual(json.loads(body)["headers"]["authorization"], "Bearer ****")

        # the transport error, as the error it was
        dead = self.mocks(doc, "http", url=self.dead + "/ping")
        self.assertEqual(len(dead), 1, doc["mocks"])
        self.assertEqual(dead[0]["respond"], {"error": "connection refused"})

        # the mutations are mocked (the POST answers what it answered) ...
        post = self.mocks(doc, "http", url=self.srv.base + "/echo", method="POST")
        self.assertEqual(len(post), 1, doc["mocks"])
        self.assertEqual(post[0]["respond"]["status"], 200)
        self.assertEqual(json.loads(post[0]["respond"]["body"])["method"], "POST")
        self.assertEqual(len(self.mocks(doc, "notify", channel="slack")), 1, doc["mocks"])

        # ... and expected, in order, the file write included
        exp = doc["expect"]
        self.assertEqual(exp["outcome"], "success")
        self.assertNotIn("failed_step", exp)
        self.assertMutations(exp["actions"])
        self.assertEqual(exp["notifications"], [{"channel": "slack", "text": "applied blue on "
                                                 + os.uname().sysname}])

        # no byte of any file written holds a secret
        files = self.assertNoSecretsWritten()
        self.assertEqual(set(files), {"live.scenario.yaml", big_seed["file"],
                                      seqcmd[0]["respond"]["stdout_file"], bf})
        self.assertIn(b"****", files[bf])

    def test_live_recording_replays(self):
        self.record_live("--yes")
        self.assertChecks(self.rel)
        n = len(self.srv.requests())
        self.make_replay_hermetic()
        self.assertReplayPasses(self.rel, env=SECRET_ENV)
        self.assertEqual(len(self.srv.requests()), n, "the replay reached the server")
        self.assertFalse(os.path.exists(self.out_file), "the replay wrote the real file")
        # and the replay judges: the same scenario with another expectation fails
        text = self.read(self.rel)
        bad = text.replace("outcome: success", "outcome: failed")
        self.assertNotEqual(bad, text)
        self.write("scen/changed.scenario.yaml", bad, dedent=False)
        self.assertReplayFails("scen/changed.scenario.yaml",
                               r"outcome: expected failed, got success",
                               env=SECRET_ENV)

    def test_live_recording_replay_needs_its_sequence(self):
        # the poll loop really depends on the recorded 503, 503, 200
        self.record_live("--yes")
        self.make_replay_hermetic()
        text = self.read(self.rel)
        doc = self.yaml_doc(self.path(self.rel))
        seq_url = "%s/sequence/%s/503,503,200" % (self.srv.base, self.seq)
        self.assertEqual(len(self.mocks(doc, "http", url=seq_url)), 1)
        # every answer 503: the wait never ends within its 30 (virtual) seconds
        lines = text.splitlines()
        out, in_seq = [], False
        for l in lines:
            if l.strip().startswith("url: ") and seq_url in l:
                in_seq = True
            elif l.startswith("- "):
                in_seq = False
            if in_seq and l.strip() == "status: 200":
                l = l.replace("200", "503")
            out.append(l)
        self.write("scen/down.scenario.yaml", "\n".join(out) + "\n", dedent=False)
        self.assertReplayFails("scen/down.scenario.yaml",
                               r"outcome: expected success, got failed .*healthy not reached",
                               env=SECRET_ENV)

    def test_dry_run_recording(self):
        res = self.record_live("--dry-run")
        self.assertIn("would: ", res.out)
        # nothing changed for real
        self.assertFalse(os.path.exists(self.out_file))
        self.assertEqual(self.srv.requests(method="POST"), [])
        doc = self.yaml_doc(self.path(self.rel))
        # the reads ran for real and are mocks with their answers
        seq_url = "%s/sequence/%s/503,503,200" % (self.srv.base, self.seq)
        seq = self.mocks(doc, "http", url=seq_url)
        self.assertEqual(len(seq), 1)
        self.assertEqual([r["status"] for r in seq[0]["respond"]], [503, 503, 200])
        # the simulated mutations are still expected, in order
        exp = doc["expect"]
        self.assertEqual(exp["outcome"], "success")
        self.assertMutations(exp["actions"])
        self.assertEqual([n["channel"] for n in exp["notifications"]], ["slack"])
        # and mocked, so the replay can make them
        self.assertEqual(len(self.mocks(doc, "http", url=self.srv.base + "/echo", method="POST")), 1)
        self.assertEqual(len(self.mocks(doc, "notify", channel="slack")), 1)
        self.assertNoSecretsWritten()
        self.assertChecks(self.rel)
        self.make_replay_hermetic()
        self.assertReplayPasses(self.rel, env=SECRET_ENV)


class RecordFailure(Recorded):
    def test_failing_run_is_recorded_and_replays_the_failure(self):
        srv = self.httpd()
        rbfile = self.write("rb/failing.lua", FAILING)
        out_file = self.path("var", "migration.txt")
        os.makedirs(os.path.dirname(out_file))
        rel = "scen/failing.scenario.yaml"
        res = self.rb("run", rbfile, "--audit", self.audit, "--yes", "--record", rel,
                      "--param", "base=" + srv.base, "--param", "out=" + out_file)
        self.assertExit(res, 1)
        self.assertIn("recorded the run as %s: runbook test %s" % (rel, rel), res.out.splitlines(), res)
        self.assertEqual(self.read(out_file), "prepared\n")

        doc = self.yaml_doc(self.path(rel))
        self.assertEqual(doc["runbook"], "../rb/failing.lua")
        exp = doc["expect"]
        self.assertEqual(exp["outcome"], "failed")
        self.assertEqual(exp["failed_step"], "Migrate")
        # only what happened: the write of step 1; neither the second write nor the POST
        self.assertEqual(len(exp["actions"]), 1, exp)
        self.assertTrue(exp["actions"][0].startswith("fs write " + out_file), exp)
        cmd = self.mocks(doc, "exec", argv=["sh", "-c", "echo migrating; echo 'migration 42 failed' >&2; exit 3"])
        self.assertEqual(len(cmd), 1, doc["mocks"])
        self.assertEqual(cmd[0]["respond"]["code"], 3)
        self.assertEqual(cmd[0]["respond"]["stderr"], "migration 42 failed\n")
        self.assertEqual(cmd[0]["respond"]["stdout"], "migrating\n")
        self.assertEqual(self.mocks(doc, "http", method="POST"), [])

        self.assertChecks(rel)
        srv.stop()
        os.remove(out_file)
        # the replay fails the same way, which is what the scenario expects
        self.assertReplayPasses(rel)
        # the replay judges: another failed step is a failure
        text = self.read(rel)
        self.assertIn("failed_step: Migrate", text)
        self.write("scen/wrong-step.scenario.yaml", text.replace("failed_step: Migrate",
                                                                 "failed_step: Announce"), dedent=False)
        self.assertReplayFails("scen/wrong-step.scenario.yaml",
                               r"failed_step: expected Announce, got Migrate")


class RecordSecretsStayValid(Recorded):
    def test_a_secret_that_is_a_whole_value_keeps_the_scenario_valid(self):
        # A webhook URL kept as a secret is common.  Redacted, the mock's url
        # and the action are "****" -- as a bare YAML scalar that is an
        # alias (`*...`), so the recording must quote it to stay loadable.
        srv = self.httpd({"/hook": {"status": 200, "body": "ok", "methods": ["POST"]}})
        hook = srv.url("/hook")
        rbfile = self.write("rb/hook.lua", """
            runbook { name = "t/hook" }
            step("Tell", function()
              http.post(secret("RB_HOOK_URL"), { json = { text = "hi" } })
            end)
            """)
        rel = "scen/hook.scenario.yaml"
        res = self.rb("run", rbfile, "--audit", self.audit, "--yes", "--record", rel,
                      env={"RB_HOOK_URL": hook})
        self.assertExit(res, 0)
        self.assertEqual(len(srv.requests(path="/hook", method="POST")), 1)
        text = self.read(rel)
        self.assertNotIn(hook, text)
        doc = self.yaml_doc(self.path(rel))      # it loads
        self.assertEqual(doc["mocks"][0]["http"]["url"], "****")
        self.assertChecks(rel)
        srv.stop()
        self.assertReplayPasses(rel, env={"RB_HOOK_URL": hook})


# ---- runbook test --coverage -----------------------------------------------------

COV_RB = """
runbook { name = "t/coverage", params = { base = { default = "http://svc.test" } } }

step("Look", function()
  state.health = http.get(params.base .. "/health").status
end)

step("Restart when down", { when = function() return state.health ~= 200 end }, function()
  http.post(params.base .. "/restart")
end)

step("Mark healthy", { when = function() return state.health == 200 end }, function()
  fs.write("/var/tmp/healthy", "yes")
end)

step("Page nobody", { when = function() return false end }, function()
  -- exec{"not", "a", "call"} (a comment)
  notify.slack{ text = "never", webhook = "https://hooks.slack.test/x" }
end)
"""

COV_DOWN = """
runbook: coverage.lua
mocks:
  - http: { method: GET, url: "http://svc.test/health" }
    respond: { status: 503 }
  - http: { method: POST, url: "http://svc.test/restart" }
    respond: { status: 200 }
expect:
  actions: [ "POST http://svc.test/restart" ]
"""

COV_UP = """
runbook: coverage.lua
mocks:
  - http: { method: GET, url: "http://svc.test/health" }
    respond: { status: 200 }
expect:
  actions: [ "fs write /var/tmp/healthy" ]
  not_actions: [ "POST" ]
"""


class Coverage(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.write("cov/coverage.lua", COV_RB)
        self.write("cov/down.scenario.yaml", COV_DOWN)
        self.write("cov/up.scenario.yaml", COV_UP)
        src = self.read("cov/coverage.lua").splitlines()
        self.post_line = next(i for i, l in enumerate(src, 1) if "http.post" in l)
        self.write_line = next(i for i, l in enumerate(src, 1) if "fs.write" in l)
        self.slack_line = next(i for i, l in enumerate(src, 1) if "notify.slack" in l)

    def coverage(self, *args, passed):
        res = self.rb("test", "--coverage", *args)
        self.assertExit(res, 0)
        lines = res.out.splitlines()
        m = SUMMARY_RE.search(res.out)
        self.assertTrue(m, res)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (passed, 0), res)
        # coverage comes after the summary
        at = lines.index("coverage:") if "coverage:" in lines else -1
        self.assertGreater(at, [i for i, l in enumerate(lines) if SUMMARY_RE.match(l)][0], res)
        return lines[at:], res

    def test_both_branches_merge(self):
        cov, res = self.coverage("cov", passed=2)
        self.assertEqual(cov, [
            "coverage:",
            "  cov/coverage.lua: 3/4 steps ran in a scenario",
            '    steps never run: 4 "Page nobody"',
            "    calls that may change something, never exercised: line %d (notify.slack)"
            % self.slack_line,
        ], res)

    def test_only_the_healthy_branch(self):
        cov, res = self.coverage("--filter", "up.scenario", "cov", passed=1)
        self.assertEqual(cov, [
            "coverage:",
            "  cov/coverage.lua: 2/4 steps ran in a scenario",
            '    steps never run: 2 "Restart when down", 4 "Page nobody"',
            "    calls that may change something, never exercised: line %d (http.post), "
            "line %d (notify.slack)" % (self.post_line, self.slack_line),
        ], res)

    def test_only_the_restart_branch(self):
        cov, res = self.coverage("--filter", "down.scenario", "cov", passed=1)
        self.assertEqual(cov, [
            "coverage:",
            "  cov/coverage.lua: 2/4 steps ran in a scenario",
            '    steps never run: 3 "Mark healthy", 4 "Page nobody"',
            "    calls that may change something, never exercised: line %d (fs.write), "
            "line %d (notify.slack)" % (self.write_line, self.slack_line),
        ], res)

    def test_every_step_and_call_covered(self):
        # a third scenario reaches the last step: nothing left to report
        text = self.read("cov/coverage.lua").replace("return false end", "return true end")
        self.write("cov2/coverage.lua", text, dedent=False)
        self.write("cov2/up.scenario.yaml", COV_UP.replace(
            "expect:", "  - notify: { channel: slack }\nexpect:"))
        self.write("cov2/down.scenario.yaml", COV_DOWN.replace(
            "expect:", "  - notify: { channel: slack }\nexpect:"))
        cov, res = self.coverage("cov2", passed=2)
        self.assertEqual(cov, ["coverage:", "  cov2/coverage.lua: 4/4 steps ran in a scenario"], res)

    def test_require_coverage_fails_until_every_call_is_exercised(self):
        res = self.rb("test", "--require-coverage", "cov")
        self.assertExit(res, 1)
        self.assertIn("2 passed, 0 failed", res.out)
        self.assertIn("never exercised: line %d (notify.slack)" % self.slack_line, res.out)
        self.assertIn("coverage required: 1 runbook(s) with calls or steps no scenario "
                      "exercised", res.out)
        text = self.read("cov/coverage.lua").replace("return false end", "return true end")
        self.write("cov2/coverage.lua", text, dedent=False)
        for name, body in (("up", COV_UP), ("down", COV_DOWN)):
            self.write("cov2/%s.scenario.yaml" % name, body.replace(
                "expect:", "  - notify: { channel: slack }\nexpect:"))
        res = self.rb("test", "--require-coverage", "cov2")
        self.assertExit(res, 0)
        self.assertNotIn("coverage required", res.out)

    def test_a_call_through_a_library_module_counts_at_the_runbooks_line(self):
        # the action happens inside lib/restarter.lua; coverage marks the
        # runbook line that called it, not the module's line number
        self.write("libcov/lib/restarter.lua", """
            local M = {}
            -- padding so the module's own line numbers differ from the runbook's



            function M.restart(base) return http.post(base .. "/restart") end
            return M
            """)
        self.write("libcov/runbooks/t/mod.lua", """
            runbook { name = "t/mod" }
            local restarter = require "restarter"
            step("Restart", function()
              restarter.restart("http://svc.test")
              http.post("http://svc.test/again")
            end)
            """)
        self.write("libcov/runbooks/t/mod.scenario.yaml", """
            runbook: mod.lua
            mocks:
              - http: { method: POST, url: "http://svc.test/restart" }
              - http: { method: POST, url: "http://svc.test/again" }
            """)
        res = self.rb("test", "--coverage", "runbooks", cwd=self.path("libcov"))
        self.assertExit(res, 0)
        self.assertIn("runbooks/t/mod.lua: 1/1 steps ran", res.out, res)
        self.assertNotIn("never exercised", res.out, res)

    def test_calls_named_in_strings_and_comments_are_not_calls(self):
        self.write("strs/s.lua", """
            runbook { name = "t/strs", params = { x = { default = "see notify.slack in runbook.yaml",
              help = 'or fs.write(x)' } }, description = [[
              docker.restart("x") in a long string ]] }
            --[==[ kubectl.scale( in a block comment
            ]==]
            step("a", { when = false }, function()
              local s = "a \\"quoted notify.slack(\\" b" .. 'x' -- fs.remove( in a comment
              http.post("http://svc.test/a")
            end)
            """)
        self.write("strs/s.scenario.yaml", "runbook: s.lua\n")
        res = self.rb("test", "--coverage", "strs")
        self.assertExit(res, 0)
        self.assertIn("calls that may change something, never exercised: line 8 (http.post)\n",
                      res.out)

    def test_without_the_flag_no_coverage(self):
        res = self.rb("test", "cov")
        self.assertExit(res, 0)
        self.assertNotIn("coverage:", res.out)
        self.assertNotIn("steps ran in a scenario", res.out)


# ---- runbook check -----------------------------------------------------------------

CLEAN_RB = """
runbook { name = "t/clean", params = { n = { type = "number", default = 2 } } }
step("Fine", function()
  local r = exec{"echo", "hi"}
  state.out = r.stdout
  log.info("n=%d", params.n)
end)
"""

CLEAN_SCENARIO = """
description: the clean runbook, answered
runbook: clean.lua
params:
  n: 3
mocks:
  - exec: { argv: [echo, hi] }
    respond: { stdout: "hi\\n" }
expect:
  outcome: success
"""

# name -> (file, text, line, column or None, message regex)
BAD_RUNBOOKS = [
    ("lua syntax", "syntax.lua",
     'runbook { name = "t/s" }\nstep("x", function()\n  if then\nend)\n',
     3, None, r"near 'then'"),
    ("missing name", "noname.lua",
     '-- no name\nrunbook { params = { n = { type = "number" } } }\nstep("x", function() end)\n',
     2, 1, r"'name' is required"),
    ("default of the wrong type", "default.lua",
     'runbook { name = "t/d",\n  params = { n = { type = "number", default = "many" } } }\n',
     1, 1, r"param 'n' must be a number, got 'many'"),
    ("unknown param type", "ptype.lua",
     'runbook { name = "t/p",\n  params = { n = { type = "integer" } } }\n',
     1, 1, r"param 'n' has unknown type 'integer'"),
    ("undefined global", "global.lua",
     'runbook { name = "t/g" }\nstep("x", function()\n  log.info("%s", undefined_thing)\nend)\n',
     3, 18, r"undefined variable 'undefined_thing'"),
    ("unknown primitive", "htp.lua",
     'runbook { name = "t/h" }\nstep("x", function()\n  htp.get("http://127.0.0.1:9/")\nend)\n',
     3, 3, r"undefined variable 'htp'"),
    ("unknown docker function", "restrat.lua",
     'runbook { name = "t/r" }\nstep("x", function()\n\n  docker.restrat("web")\nend)\n',
     4, 3, r"undefined field 'restrat' of global 'docker'"),
    ("unknown fs function", "raed.lua",
     'runbook { name = "t/f" }\nstep("x", function()\n  local s = fs.raed("/etc/hostname")\n  return s\nend)\n',
     3, 13, r"undefined field 'raed' of global 'fs'"),
    ("run_runbook of a missing runbook", "missing.lua",
     'runbook { name = "t/m" }\nstep("x", function()\n  state.a = 1\n    run_runbook("no/such-runbook")\nend)\n',
     4, 5, r"run_runbook: no runbook named 'no/such-runbook'"),
]

BAD_SCENARIOS = [
    ("malformed yaml", "yaml.scenario.yaml",
     "runbook: clean.lua\nparams:\n  n: 3\nmocks:\n  - exec: { argv: [echo, hi]\n"
     "    respond: { stdout: \"hi\" }\n",
     6, r"did not find expected ',' or '}'"),
    ("unknown mock key", "key.scenario.yaml",
     "runbook: clean.lua\nmocks:\n  - exec: { argv: [echo, hi] }\n    respond: { stdout: \"hi\" }\n"
     "  - exec: { argv: [echo, bye] }\n    responds: { stdout: \"bye\" }\n",
     6, r"mocks\[2\]: unknown key 'responds'"),
    ("missing runbook", "norb.scenario.yaml",
     "description: names a runbook that is not there\nrunbook: no-such-runbook.lua\nmocks: []\n",
     2, r"no runbook named 'no-such-runbook\.lua'"),
    ("undeclared param", "param.scenario.yaml",
     "runbook: clean.lua\nparams:\n  n: 3\n  colour: blue\nmocks:\n  - exec: { argv: [echo, hi] }\n",
     4, r"params\.colour: .*declares no param 'colour'"),
]

PROBLEM_RE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.*)$",
                        re.M)


class Check(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.d = self.path("chk")
        self.write("chk/clean.lua", CLEAN_RB)

    def problems(self, res):
        return [m.groupdict() for m in PROBLEM_RE.finditer(res.out)]

    def check_one(self, fname, text):
        p = self.write(os.path.join("chk", fname), text, dedent=False)
        res = self.rb("check", os.path.join("chk", fname))
        self.assertExit(res, 1)
        self.assertRegex(res.out, r"(?m)^1 file checked: [1-9]\d* errors?, \d+ warnings?$")
        return p, res

    def test_clean_runbook_and_scenario(self):
        self.write("chk/clean.scenario.yaml", CLEAN_SCENARIO)
        res = self.rb("check", "chk")
        self.assertExit(res, 0)
        self.assertEqual(res.out.splitlines(), ["2 files checked: 0 errors, 0 warnings"], res)
        self.assertNotIn("luacheck is not installed", res.err)
        # and the scenario itself passes
        res = self.rb("test", "chk")
        self.assertExit(res, 0)

    def test_each_bad_runbook(self):
        for name, fname, text, line, col, pat in BAD_RUNBOOKS:
            with self.subTest(name):
                _, res = self.check_one(fname, text)
                probs = [p for p in self.problems(res) if p["file"] == "chk/" + fname]
                self.assertTrue(probs, res)
                first = probs[0]
                self.assertEqual(int(first["line"]), line, res)
                if col is not None:
                    self.assertEqual(int(first["col"]), col, res)
                self.assertEqual(first["sev"], "error", res)
                self.assertTrue(any(re.search(pat, p["msg"]) for p in probs), res)

    def test_each_bad_scenario(self):
        for name, fname, text, line, pat in BAD_SCENARIOS:
            with self.subTest(name):
                _, res = self.check_one(fname, text)
                probs = self.problems(res)
                self.assertEqual(len(probs), 1, res)
                self.assertEqual(probs[0]["file"], "chk/" + fname, res)
                self.assertEqual(int(probs[0]["line"]), line, res)
                self.assertEqual(probs[0]["sev"], "error", res)
                self.assertRegex(probs[0]["msg"], pat)

    def test_unknown_key_line_is_that_of_the_key(self):
        # `status` is a fine key for the http mock on line 4 and an unknown
        # one for the exec mock on line 6: the problem is on line 6
        _, res = self.check_one("status.scenario.yaml",
                                "runbook: clean.lua\nmocks:\n"
                                "  - http: { method: GET, url: \"http://x.test/\" }\n"
                                "    respond: { status: 200 }\n"
                                "  - exec: { argv: [echo, hi] }\n"
                                "    respond: { status: 0 }\n")
        probs = self.problems(res)
        self.assertEqual(len(probs), 1, res)
        self.assertRegex(probs[0]["msg"], r"mocks\[2\]\.respond\[1\]: unknown key 'status'")
        self.assertEqual(int(probs[0]["line"]), 6, res)

    def test_directory_with_every_problem(self):
        for _, fname, text, *_ in BAD_RUNBOOKS + BAD_SCENARIOS:
            self.write(os.path.join("chk", fname), text, dedent=False)
        self.write("chk/clean.scenario.yaml", CLEAN_SCENARIO)
        res = self.rb("check", "chk")
        self.assertExit(res, 1)
        bad_files = {p["file"] for p in self.problems(res)}
        self.assertEqual(bad_files, {"chk/" + f for _, f, *_ in BAD_RUNBOOKS + BAD_SCENARIOS}, res)
        n = len(BAD_RUNBOOKS) + len(BAD_SCENARIOS) + 2
        errors = sum(1 for p in self.problems(res) if p["sev"] == "error")
        self.assertIn("%d files checked: %d errors, 0 warnings" % (n, errors), res.out.splitlines(), res)

    def test_json(self):
        files = []
        for _, fname, text, *_ in BAD_RUNBOOKS + BAD_SCENARIOS:
            if fname == "yaml.scenario.yaml":
                continue  # (test_json_with_malformed_yaml)
            self.write(os.path.join("chk", fname), text, dedent=False)
            files.append(os.path.join("chk", fname))
        text_res = self.rb("check", *files)
        res = self.rb("check", "--json", *files)
        self.assertExit(res, 1)
        objs = [json.loads(l) for l in res.out.splitlines()]  # every line is one object
        self.assertEqual(len(objs), len(self.problems(text_res)), res)
        for o in objs:
            self.assertEqual(set(o), {"file", "line", "column", "code", "severity", "message"}, o)
            self.assertIsInstance(o["line"], int)
            self.assertIsInstance(o["column"], int)
            self.assertEqual(o["severity"], "error", o)
        # the same problems as the text form
        self.assertEqual(sorted((o["file"], o["line"], o["column"]) for o in objs),
                         sorted((p["file"], int(p["line"]), int(p["col"])) for p in self.problems(text_res)))
        by_file = {}
        for o in objs:
            by_file.setdefault(o["file"], []).append(o)
        for _, fname, text, line, *rest in BAD_RUNBOOKS + BAD_SCENARIOS:
            if fname == "yaml.scenario.yaml":
                continue
            with self.subTest(fname):
                self.assertIn("chk/" + fname, by_file, objs)
                self.assertEqual(by_file["chk/" + fname][0]["line"], line)
        self.assertEqual(by_file["chk/htp.lua"][0]["code"], "113")
        self.assertEqual(by_file["chk/param.scenario.yaml"][0]["code"], "scenario")
        self.assertEqual(by_file["chk/missing.lua"][0]["code"], "run_runbook")

    def test_json_with_malformed_yaml(self):
        _, fname, text, line, pat = BAD_SCENARIOS[0]
        self.write(os.path.join("chk", fname), text, dedent=False)
        res = self.rb("check", "--json", os.path.join("chk", fname))
        self.assertExit(res, 1)
        lines = [l for l in res.out.splitlines() if l.strip()]
        for l in lines:
            try:
                json.loads(l)
            except ValueError:
                self.fail("`check --json` printed a line that is not JSON: %r\n%r" % (l, res))
        self.assertEqual(len(lines), 1, res)
        o = json.loads(lines[0])
        self.assertEqual((o["file"], o["line"], o["severity"]), ("chk/" + fname, line, "error"))
        self.assertRegex(o["message"], pat)


if __name__ == "__main__":
    unittest.main(verbosity=2)
