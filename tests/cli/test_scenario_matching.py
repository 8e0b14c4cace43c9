"""How a scenario's expect.actions / not_actions patterns meet actions
(runbook-scenario(5)): compared from the action's first word -- its
primitive ("db exec URL: SQL"), HTTP method or program -- by word prefix, or
as a glob over the whole words.  `runbook check` warns about a pattern that
can never match (a not_actions that passes whatever the runbook does), and
`runbook test --audit PATH` records the scenario runs there, off by default."""
import os
import sqlite3

from rbtest import RunbookTestCase

TUNE = """
runbook { name = "tune" }
step("tune", function()
  local c = db.open("postgres://app@db.test/app")
  c:exec("ALTER SYSTEM SET work_mem = '64MB'")
  exec{"systemctl", "reload", "postgresql"}
end)
"""

MOCKS = """
runbook: tune
mocks:
  - db: { verb: exec, sql: "ALTER SYSTEM*" }
    respond: { affected: 0 }
  - exec: { argv: [systemctl, reload, postgresql] }
    respond: { stdout: "" }
"""

ALTER = "db exec postgres://app@db.test/app: ALTER SYSTEM SET work_mem = '64MB'"


class Matching(RunbookTestCase):
    def scenario(self, name, expect):
        self.write("rb/%s.scenario.yaml" % name, MOCKS + "expect:\n" + expect)

    def setUp(self):
        super().setUp()
        self.write("rb/tune.lua", TUNE)

    def warnings(self, res):
        return [l for l in res.out.splitlines() if ": warning: " in l and "can never match" in l]

    def test_check_warns_about_a_pattern_that_starts_inside_an_action(self):
        self.scenario("a", """
  not_actions:
    - "ALTER SYSTEM"
    - "*ALTER SYSTEM*"
    - "db exec*"
    - "db exec postgres://app@db.test/app: ALTER"
    - "systemctl restart"
    - "POST http://example.test/*"
  actions: [ "DROP TABLE" ]
""")
        res = self.rb("check", "rb")
        self.assertExit(res, 0)  # a warning, not an error
        got = self.warnings(res)
        self.assertEqual(len(got), 2, res)
        self.assertIn(
            "rb/a.scenario.yaml:10:1: warning: not_actions pattern 'ALTER SYSTEM' can never "
            "match", got[0] if "not_actions" in got[0] else got[1])
        self.assertTrue(any("did you mean '*ALTER SYSTEM*'?" in l for l in got), got)
        self.assertTrue(any("actions pattern 'DROP TABLE'" in l and "a.scenario.yaml:16:" in l
                            for l in got), got)
        self.assertRegex(res.out, r"0 errors, 2 warnings")

    def test_no_warning_for_patterns_that_can_match(self):
        self.scenario("a", """
  actions: [ "db exec postgres://app@db.test/app: ALTER SYSTEM", "systemctl reload" ]
  not_actions: [ "*DROP*", "db exec *DELETE*", "kubectl delete", "GET http://x/" ]
""")
        res = self.rb("check", "rb")
        self.assertExit(res, 0)
        self.assertEqual(self.warnings(res), [], res)

    def test_programs_run_through_the_library_or_another_runbook_are_known(self):
        # a lib module's exec{} and a sibling run by run_runbook begin actions too
        self.write("runbook.yaml", "{}\n")
        self.write("lib/pgctl.lua", 'local M = {}\nfunction M.promote() exec{"pg_ctl", "promote"} end\nreturn M\n')
        self.write("runbooks/fail.lua", 'runbook { name = "fail" }\nlocal pg = require "pgctl"\n'
                   'step("s", function() pg.promote(); run_runbook("other") end)\n')
        self.write("runbooks/other.lua", 'runbook { name = "other" }\nstep("s", function() '
                   'local tool = { "./scripts/" .. "swap.sh" }; exec(tool) end)\n')
        self.write("runbooks/tests/f.scenario.yaml", """
runbook: fail
mocks:
  - exec: { argv: [ pg_ctl, promote ] }
    respond: { stdout: "" }
  - exec: { argv: [ ./scripts/swap.sh ] }
    respond: { stdout: "" }
expect:
  actions: [ "pg_ctl promote", "./scripts/swap.sh" ]
  not_actions: [ "pg_ctl stop", "FLUSHDB", "zzq-tool flush" ]
""")
        res = self.rb("check", "runbooks/tests/f.scenario.yaml")
        self.assertExit(res, 0)
        got = self.warnings(res)
        self.assertEqual(len(got), 2, res)
        self.assertIn("pattern 'FLUSHDB' can never match", got[0])
        self.assertIn("pattern 'zzq-tool flush' can never match", got[1])
        self.assertExit(self.rb("test", "runbooks/tests/f.scenario.yaml"), 0)

    def test_check_json_carries_the_warning(self):
        self.scenario("a", '  not_actions: [ "ALTER SYSTEM*" ]\n')
        res = self.rb("check", "--json", "rb")
        self.assertExit(res, 0)
        import json
        probs = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        mine = [p for p in probs if "can never match" in p["message"]]
        self.assertEqual(len(mine), 1, res)
        self.assertEqual(mine[0]["severity"], "warning")
        self.assertTrue(mine[0]["message"].endswith("did you mean '*ALTER SYSTEM*'?"), mine)

    def test_a_glob_not_action_fails_the_scenario_that_issues_the_statement(self):
        self.scenario("a", '  not_actions: [ "*ALTER SYSTEM*" ]\n')
        res = self.rb("test", "rb")
        self.assertExit(res, 1)
        self.assertIn("not_actions: `%s` was taken" % ALTER, res.out)

    def test_the_bare_statement_never_matches_which_is_why_check_warns(self):
        # compared from the first word: "ALTER SYSTEM" is not where the action begins
        self.scenario("a", '  not_actions: [ "ALTER SYSTEM" ]\n  actions: [ "db exec", "systemctl reload postgresql" ]\n')
        res = self.rb("test", "rb")
        self.assertExit(res, 0)
        self.scenario("a", '  actions: [ "ALTER SYSTEM SET work_mem" ]\n')
        res = self.rb("test", "rb")
        self.assertExit(res, 1)
        self.assertIn("actions: expected `ALTER SYSTEM SET work_mem`", res.out)

    def test_audit_records_every_scenario_run_with_mode_scenario(self):
        n = 6
        for i in range(n):
            self.scenario("s%d" % i, '  actions: [ "*ALTER SYSTEM*" ]\n')
        log = self.path("scen.db")
        res = self.rb("test", "rb", "--audit", log, "-j", "3")
        self.assertExit(res, 0)
        ls = self.rb("audit", "list", "--audit", log)
        self.assertExit(ls, 0)
        rows = [l for l in ls.out.splitlines()[1:] if l.strip()]
        self.assertEqual(len(rows), n, ls)
        self.assertTrue(all(" scenario " in l and " tune " in l for l in rows), ls)
        ver = self.rb("audit", "verify", "--audit", log)
        self.assertExit(ver, 0)
        db = sqlite3.connect(log)
        try:
            runs = db.execute("SELECT DISTINCT run_id FROM records").fetchall()
            self.assertEqual(len(runs), n)
            acts = [r[0] for r in db.execute(
                "SELECT data FROM records WHERE kind = 'action' ORDER BY seq")]
        finally:
            db.close()
        # each run's mocked actions, marked as mocked
        self.assertEqual(sum(1 for a in acts if '"words":"%s"' % ALTER.replace("'", "'") in a), n)
        self.assertTrue(acts and all(a.startswith('{"mocked":true,') for a in acts), acts[:2])

    def test_without_audit_nothing_is_recorded(self):
        self.scenario("a", '  actions: [ "*ALTER SYSTEM*" ]\n')
        res = self.rb("test", "rb")
        self.assertExit(res, 0)
        made = []
        for root, _, files in os.walk(self.tmp):
            made += [os.path.join(root, f) for f in files if ".db" in f]
        self.assertEqual(made, [])
        self.assertFalse(os.path.exists(self.audit))
