"""plan -> approve -> apply (issue 17 item 3) and provenance (item 4), against a
real HTTP server (tests/fixtures/httpd.py) whose answer the runbook reads and
then acts on.  Every test asserts what reached the server -- its request log
-- and what the audit log holds, not only what the binary printed.

The log is reached only through the binary (`runbook audit export`) and
runbook.yaml's `audit:`, so the same tests run against any log: PlanApply
uses a local SQLite file; a class for the shared PostgreSQL log overrides
audit_spec() (a postgres:// URL), other_operator() (a second operator:
another database role) and planner_identity() (the role instead of the OS
account), and inherits every test:

    class PlanApplyPostgres(PlanApply):
        def audit_spec(self):        # alice's role
            return PG.url("alice")
        def other_operator(self):    # bob's role, whatever USER says
            return [], {"USER": "alice"}, ["--audit", PG.url("bob")]
        def planner_identity(self):
            return "alice"
  On SQLite a second operator is a second OS
account, which only root can switch to (setpriv): the tests that need one
are skipped otherwise, and self-approval is refused either way.
"""
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import BIN, Result, RunbookTestCase, lua_str  # noqa: E402

SECRET = "tok-SECRET-93e1c7"

RUNBOOK = """\
runbook {
  name = "t/plan",
  params = {
    service = { default = "web" },
    token = { secret = true, default = %(secret)s },
  },
}
local B = %(base)s
step("read the config", function()
  state.cfg = http.get(B .. "/config"):json()
end)
step("scale", function()
  http.post(B .. "/scale", {
    json = { service = params.service, replicas = state.cfg.replicas },
    headers = { Authorization = "Bearer " .. params.token },
  })
  if state.cfg.extra then http.post(B .. "/extra", { json = { n = 1 } }) end
end)
step("announce", { when = function() return not state.cfg.quiet end }, function()
  http.post(B .. "/announce", { json = { text = "scaled " .. params.service } })
end)
"""


class PlanApply(RunbookTestCase):
    # ---- what a class for another log overrides ------------------------------

    def audit_spec(self):
        """runbook.yaml's `audit:` for this test: the log every command uses."""
        return self.audit

    def other_operator(self):
        """(argv prefix, env, extra args) that run the binary as a second
        operator, or skipTest.  SQLite: another OS account (root only, with
        setpriv)."""
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("a second operator on a SQLite log is a second OS account: "
                          "needs root and setpriv (the PostgreSQL class uses a second role)")
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.tmp, 0o777)
        for name in os.listdir(self.tmp):
            p = self.path(name)
            os.chmod(p, 0o777 if os.path.isdir(p) else 0o666)
        prefix = ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                  "--clear-groups"]
        return prefix, {}, []

    def planner_identity(self):
        """Who the log says made a plan: the OS account on SQLite."""
        return pwd.getpwuid(os.getuid()).pw_name

    # ---- set-up -----------------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.config_json = self.path("config.json")
        self.answer({"replicas": 3})
        self.srv = self.httpd(routes={
            "/config": {"body_file": self.config_json,
                        "headers": {"Content-Type": "application/json"}},
            "/scale": {"json": {"ok": True}, "methods": ["POST"]},
            "/extra": {"json": {"ok": True}, "methods": ["POST"]},
            "/announce": {"json": {"ok": True}, "methods": ["POST"]},
        })
        self.rbfile = self.write("scale.lua", RUNBOOK % {
            "secret": lua_str(SECRET), "base": lua_str(self.srv.base)}, dedent=False)
        self.write("runbook.yaml", """
            audit: %s
            environments:
              staging: {}
              production:
                require_plan: true
                approvals: 1
            """ % json.dumps(self.audit_spec()))

    def answer(self, cfg):
        """What the server's /config answers from now on."""
        with open(self.config_json, "w") as f:
            json.dump(cfg, f)

    def requests(self):
        return [(r["method"], r["path"]) for r in self.srv.requests()]

    def writes(self, since=0):
        return [r for r in self.srv.requests()[since:] if r["method"] != "GET"]

    def log(self, kind=None, run_id=None):
        res = self.rb("audit", "export")
        self.assertExit(res, 0)
        recs = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        return [r for r in recs if (kind is None or r["kind"] == kind)
                and (run_id is None or r["run_id"] == run_id)]

    def plan(self, *args, out="change.plan"):
        res = self.rb("plan", self.rbfile, "-o", out, *args)
        self.assertExit(res, 0)
        return self.path(out)

    def plan_id(self, path):
        """The id the plan's definition gives: sha256 of its canonical JSON."""
        with open(path) as f:
            doc = json.load(f)
        canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()

    def as_other(self, *args):
        prefix, extra, more = self.other_operator()
        argv = prefix + [BIN] + [str(a) for a in args] + list(more)
        p = subprocess.run(argv, capture_output=True, text=True, cwd=self.tmp,
                           env=self.child_env(extra), timeout=60, start_new_session=True)
        return Result(argv, p.returncode, p.stdout, p.stderr)

    # ---- the plan ---------------------------------------------------------------

    def test_plan_holds_the_changes_and_is_recorded_without_secrets(self):
        path = self.plan()
        self.assertEqual(self.writes(), [], "the plan's dry-run changed the server")
        with open(path) as f:
            text = f.read()
        self.assertNotIn(SECRET, text)
        doc = json.loads(text)
        self.assertEqual(doc["format"], "runbook-plan/1")
        with open(self.rbfile, "rb") as f:
            self.assertEqual(doc["runbook"]["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertEqual(doc["params"], {"service": "web", "token": "****"})
        self.assertEqual(doc["secret_params"], ["token"])
        self.assertEqual([(c["step"], c["primitive"], c["verb"], c["target"])
                          for c in doc["changes"]],
                         [(2, "http", "POST", self.srv.url("/scale")),
                          (3, "http", "POST", self.srv.url("/announce"))])
        self.assertEqual(doc["changes"][0]["fields"]["json"], {"replicas": 3, "service": "web"})
        self.assertEqual(doc["changes"][0]["fields"]["headers"],
                         {"authorization": "Bearer ****"})
        (read,) = doc["reads"]
        self.assertEqual((read["step"], read["verb"]), (1, "GET"))
        self.assertRegex(read["digest"], r"^[0-9a-f]{64}$")
        # the log has the plan, with its id and who made it
        (rec,) = self.log("plan")
        self.assertEqual(rec["plan"], self.plan_id(path))
        self.assertEqual(rec["planner"], pwd.getpwuid(os.getuid()).pw_name)
        self.assertEqual(rec["run_id"], doc["planned"]["run"])
        for r in self.log():
            self.assertNotIn(SECRET, json.dumps(r))

    def test_failed_dry_run_writes_no_plan(self):
        self.answer({"replicas": 3, "broken": True})
        self.write("scale.lua", self.read(self.rbfile).replace(
            'step("scale"', 'step("check", function() check(not state.cfg.broken, "broken") end)\n'
            'step("scale"'), dedent=False)
        res = self.rb("plan", self.rbfile, "-o", "change.plan")
        self.assertExit(res, 1)
        self.assertIn("no plan written", res.err)
        self.assertFalse(os.path.exists(self.path("change.plan")))
        self.assertEqual(self.log("plan"), [])

    # ---- apply ------------------------------------------------------------------

    def test_apply_makes_exactly_the_planned_changes(self):
        path = self.plan()
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 0)
        got = self.srv.requests()[before:]
        self.assertEqual([(r["method"], r["path"]) for r in got],
                         [("GET", "/config"), ("POST", "/scale"), ("POST", "/announce")])
        self.assertEqual(json.loads(got[1]["body"]), {"service": "web", "replicas": 3})
        self.assertEqual(got[1]["headers"]["authorization"], "Bearer " + SECRET)
        pid = self.plan_id(path)
        runs = [r for r in self.log("run") if r.get("mode") == "live"]
        self.assertTrue(runs)
        self.assertTrue(all(r["plan"] == pid for r in runs), runs)
        (ap,) = self.log("apply")
        self.assertEqual((ap["outcome"], ap["changes_made"], ap["changes_planned"]),
                         ("complete", 2, 2))

    def test_changed_read_stops_before_the_divergent_change(self):
        path = self.plan()
        self.answer({"replicas": 7})
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 1)
        # nothing but the read reached the server: not the divergent write,
        # not the steps after it
        self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests()[before:]],
                         [("GET", "/config")])
        # planned and actual side by side, the differing line marked
        self.assertIn("stopped before change 1 of 2", res.out)
        self.assertRegex(res.out, r"planned +actual")
        line = [l for l in res.out.splitlines() if l.startswith("! fields.json")]
        self.assertEqual(len(line), 1, res.out)
        self.assertRegex(line[0], r'\{"replicas":3,"service":"web"\} +\{"replicas":7,"service":"web"\}')
        self.assertRegex(res.out, r"read 1 \(step 1: http GET \S+/config\) answered differently")
        self.assertNotIn(SECRET, res.all)
        run_id = [r for r in self.log("run") if r.get("mode") == "live"][-1]["run_id"]
        acts = [a for a in self.log("action", run_id) if a.get("verb") == "POST"]
        self.assertEqual([(a["target"], a["status"]) for a in acts],
                         [(self.srv.url("/scale"), "declined")])
        (ap,) = self.log("apply")
        self.assertEqual((ap["outcome"], ap["changes_made"], ap["stopped_before"]),
                         ("stopped", 0, 1))

    def test_an_extra_change_is_refused_before_it_is_made(self):
        path = self.plan()
        self.answer({"replicas": 3, "extra": True})
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 1)
        self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests()[before:]],
                         [("GET", "/config"), ("POST", "/scale")])
        self.assertIn("stopped before change 2 of 2", res.out)
        self.assertRegex(res.out, r"(?m)^! target +\S+/announce +\S+/extra$")

    def test_planned_changes_left_undone_are_reported(self):
        path = self.plan()
        self.answer({"replicas": 3, "quiet": True})
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 1)
        self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests()[before:]],
                         [("GET", "/config"), ("POST", "/scale")])
        self.assertIn("1 of the 2 planned changes was not made", res.out)
        self.assertRegex(res.out, r'2\. step 3 "announce": POST \S+/announce')
        (ap,) = self.log("apply")
        self.assertEqual(ap["outcome"], "incomplete")

    def test_a_caught_refusal_cannot_go_on_changing(self):
        self.write("scale.lua", self.read(self.rbfile).replace(
            '  http.post(B .. "/scale", {',
            '  local ok = pcall(http.post, B .. "/scale", {').replace(
            '  })\n  if state.cfg.extra',
            '  })\n  if not ok then http.post(B .. "/extra", { json = { n = 2 } }) end\n'
            '  if state.cfg.extra'), dedent=False)
        path = self.plan()
        self.answer({"replicas": 7})
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 1)
        self.assertEqual(self.writes(before), [], "a change was made off the plan")
        self.assertIn("apply: refused", res.out)

    def test_a_change_its_fields_do_not_show_is_caught_by_its_words(self):
        # fs.write's fields hold its path only; its words hold the size
        target = self.path("motd")
        self.write("scale.lua", self.read(self.rbfile).replace(
            'step("announce"',
            'step("motd", function() fs.write(%s, state.cfg.motd or "hello") end)\n'
            'step("announce"' % lua_str(target)), dedent=False)
        path = self.plan()
        self.answer({"replicas": 3, "motd": "hello, this is much longer"})
        res = self.rb("apply", path)
        self.assertExit(res, 1)
        self.assertFalse(os.path.exists(target), "the unplanned content was written")
        self.assertRegex(res.out, r"(?m)^! planned: .*motd \(5 bytes\)")

    def test_changed_runbook_is_refused_before_anything_runs(self):
        path = self.plan()
        with open(self.rbfile, "a") as f:
            f.write("-- a comment is a change too\n")
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 2)
        self.assertIn("changed since the plan was made", res.err)
        self.assertEqual(len(self.srv.requests()), before, "the runbook ran")

    def test_changed_params_are_refused_before_any_step(self):
        path = self.plan()
        before = len(self.srv.requests())
        res = self.rb("apply", path, "--param", "service=api")
        self.assertExit(res, 2)
        self.assertRegex(res.err, r'param service: "web" in the plan, "api" now')
        self.assertEqual(self.writes(before), [])
        self.assertEqual([r for r in self.log("run") if r.get("mode") == "live"], [])

    def test_an_edited_plan_is_another_plan(self):
        path = self.plan()
        with open(path) as f:
            doc = json.load(f)
        doc["changes"][0]["fields"]["json"]["replicas"] = 9  # a reviewer saw 9
        with open(path, "w") as f:
            json.dump(doc, f)
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 1)  # the live change (3) is not the edited one (9)
        self.assertEqual(self.writes(before), [])

    def test_json_output_stays_json(self):
        path = self.plan()
        self.answer({"replicas": 7})
        res = self.rb("apply", path, "--output", "json")
        self.assertExit(res, 1)
        for l in res.out.splitlines():
            json.loads(l)
        self.assertIn("! fields.json", res.err)

    # ---- the policy of an environment -----------------------------------------

    def test_plain_live_run_in_production_is_refused_naming_the_plan_commands(self):
        res = self.rb("run", self.rbfile, "--env", "production")
        self.assertExit(res, 2)
        for cmd in ("runbook plan", "runbook approve", "runbook apply"):
            self.assertIn(cmd, res.err)
        self.assertEqual(self.requests(), [], "the runbook ran")
        self.assertExit(self.rb("run", self.rbfile, "--env", "production", "--confirm", "--yes"),
                        2)
        self.assertEqual(self.requests(), [])
        # a dry-run is not a change, and another environment has no policy
        self.assertExit(self.rb("run", self.rbfile, "--env", "production", "--dry-run"), 0)
        self.assertEqual(self.writes(), [])
        self.assertExit(self.rb("run", self.rbfile, "--env", "staging"), 0)
        self.assertEqual(len(self.writes()), 2)

    def test_unapproved_plan_is_refused(self):
        path = self.plan("--env", "production")
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 2)
        self.assertIn("0 of the 1 approval", res.err)
        self.assertEqual(len(self.srv.requests()), before, "something reached the server")

    def test_apply_under_policy_counts_approvals_of_the_configured_log_only(self):
        path = self.plan("--env", "production")
        before = len(self.srv.requests())
        for args, env in ((["--audit", self.path("mine.db")], None),
                          ([], {"RUNBOOK_AUDIT": self.path("mine.db")})):
            res = self.rb("apply", path, *args, env=env)
            self.assertExit(res, 2)
            self.assertIn("cannot choose another", res.err)
        self.assertEqual(len(self.srv.requests()), before)

    def test_self_approval_is_refused(self):
        path = self.plan("--env", "production")
        res = self.rb("approve", path)
        self.assertExit(res, 2)
        self.assertRegex(res.err, r"you \(%s\) made plan" % re.escape(self.planner_identity()))
        self.assertEqual(self.log("approval"), [])
        before = len(self.srv.requests())
        self.assertExit(self.rb("apply", path), 2)
        self.assertEqual(len(self.srv.requests()), before)

    def test_another_operator_approves_then_apply_runs(self):
        path = self.plan("--env", "production")
        res = self.as_other("approve", path)
        self.assertExit(res, 0)
        (ap,) = self.log("approval")
        self.assertEqual(ap["plan"], self.plan_id(path))
        self.assertNotEqual(ap.get("approver_role") or ap["approver"], self.planner_identity())
        self.assertExit(self.as_other("approve", path), 0)  # again: no second approval
        self.assertEqual(len(self.log("approval")), 1)
        before = len(self.srv.requests())
        res = self.rb("apply", path)
        self.assertExit(res, 0)
        self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests()[before:]],
                         [("GET", "/config"), ("POST", "/scale"), ("POST", "/announce")])

    def test_an_approval_is_of_one_plan(self):
        first = self.plan("--env", "production", out="first.plan")
        self.assertExit(self.as_other("approve", first), 0)
        second = self.plan("--env", "production", out="second.plan")
        self.assertNotEqual(self.plan_id(first), self.plan_id(second))
        before = len(self.srv.requests())
        self.assertExit(self.rb("apply", second), 2)
        self.assertEqual(len(self.srv.requests()), before)

    # ---- provenance -------------------------------------------------------------

    def test_provenance_git_commit_and_dirty_flag(self):
        if not shutil.which("git"):
            self.skipTest("git is not installed")
        lib = self.path("lib")
        os.makedirs(lib)
        shutil.copy(self.rbfile, os.path.join(lib, "scale.lua"))
        genv = dict(self.env, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
        for cmd in (["init", "-q"], ["add", "scale.lua"], ["commit", "-qm", "lib"]):
            subprocess.run(["git", "-C", lib] + cmd, check=True, env=genv)
        head = subprocess.run(["git", "-C", lib, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        # outside git: no provenance, and nothing asked of git
        self.assertExit(self.rb("run", self.rbfile, "--dry-run"), 0)
        self.assertNotIn("git_commit", self.log("run")[-1])
        self.assertExit(self.rb("run", os.path.join(lib, "scale.lua"), "--dry-run"), 0)
        rec = self.log("run")[-1]
        self.assertEqual((rec["git_commit"], rec["git_dirty"]), (head, False))
        show = self.rb("audit", "show", rec["run_id"])
        self.assertRegex(show.out, r"(?m)^library +git %s$" % head)
        with open(os.path.join(lib, "scale.lua"), "a") as f:
            f.write("-- uncommitted\n")
        self.assertExit(self.rb("run", os.path.join(lib, "scale.lua")), 0)
        rec = self.log("run")[-1]
        self.assertEqual((rec["git_commit"], rec["git_dirty"]), (head, True))
        self.assertRegex(self.rb("audit", "show", rec["run_id"]).out,
                         r"(?m)^library +git %s \(dirty" % head)
        res = self.rb("plan", os.path.join(lib, "scale.lua"), "-o", "lib.plan")
        self.assertExit(res, 0)
        with open(self.path("lib.plan")) as f:
            self.assertEqual(json.load(f)["library"], {"commit": head, "dirty": True})


if __name__ == "__main__":
    unittest.main()
