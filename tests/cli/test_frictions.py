"""The small frictions (issue 16, item 10): a misspelled runbook name, param,
command or flag is answered with the one meant and runs nothing; a value
outside a param's choices lists them; `list` fits the terminal and `-l`
adds the paths; `show` tells all (and `--json` too); db.null prints as
null; `runbook check` says that stdlib modules are required, not globals."""
import hashlib
import json
import os
import re
import unittest

from rbtest import PtyRun, RunbookTestCase, lua_str

LONG_TITLE = ("Restart the calendar API pods one at a time, waiting for each to be ready "
              "before the next")


class Frictions(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.marker = self.path("ran")
        self.lib = self.path("library")
        self.write(os.path.join(self.lib, "calendar-api", "restart.lua"), """
            runbook {
              name = "calendar-api/restart",
              title = %s,
              tags = { "calendar-api", "P2" },
              severity = "P2",
              source = "ops-guide.md › Restarts",
              schedule = "on demand",
              mutates = { "restarts the API pods" },
              lock = "calendar-api",
              owner = "team-calendar",
              params = {
                service = { default = "api", help = "which service" },
                level = { choices = { "low", "medium", "high" }, default = "low",
                          example = "high" },
              },
            }
            step("Restart", function() fs.write(%s, params.service .. " " .. params.level) end)
            """ % (lua_str(LONG_TITLE), lua_str(self.marker)))
        self.write(os.path.join(self.lib, "db", "backup.lua"), """
            runbook { name = "db/backup", title = "Back up", tags = { "db" },
                      lock = function(p) return "db" end }
            step("Dump", function() end)
            """)
        self.env["RUNBOOK_PATH"] = self.lib

    def assertRefused(self, res, message):
        """exit 2, exactly this message, and the step did not run"""
        self.assertExit(res, 2)
        self.assertEqual(res.err.strip(), "runbook: " + message, res)
        self.assertFalse(os.path.exists(self.marker), "the runbook ran")

    def run_restart(self, *args):
        return self.rb("run", "calendar-api/restart", "--audit", self.audit, *args)

    # ---- did you mean -----------------------------------------------------

    def test_the_control_runs(self):
        res = self.run_restart("--param", "service=web", "--param", "level=high")
        self.assertExit(res, 0)
        self.assertEqual(self.read(self.marker), "web high")

    def test_misspelled_runbook_name(self):
        res = self.rb("run", "calendar-api/restrat", "--audit", self.audit)
        self.assertRefused(res, "no runbook named 'calendar-api/restrat' (did you mean "
                                "'calendar-api/restart'?)")
        self.assertFalse(os.path.exists(self.audit) and self.run_ids())

    def test_misspelled_runbook_name_in_show(self):
        res = self.rb("show", "calendar-api/restrat")
        self.assertRefused(res, "no runbook named 'calendar-api/restrat' (did you mean "
                                "'calendar-api/restart'?)")
        # the folder forgotten: the runbook of that name in another folder
        res = self.rb("show", "restart")
        self.assertRefused(res, "no runbook named 'restart' (did you mean "
                                "'calendar-api/restart'?)")
        # nothing close: no guess
        res = self.rb("show", "ops/frobnicate")
        self.assertRefused(res, "no runbook named 'ops/frobnicate' (see runbook list)")

    def test_misspelled_param(self):
        res = self.run_restart("--param", "servce=web")
        self.assertExit(res, 2)
        self.assertIn("--param servce: the runbook declares no such param; did you mean "
                      "'service'? (declared: level, service)", res.err)
        self.assertFalse(os.path.exists(self.marker))
        res = self.run_restart("--param", "zzz=1")
        self.assertExit(res, 2)
        self.assertIn("--param zzz: the runbook declares no such param (declared: level, "
                      "service)", res.err)
        self.assertFalse(os.path.exists(self.marker))

    def test_choices_are_listed(self):
        res = self.run_restart("--param", "level=hgh")
        self.assertExit(res, 2)
        path = os.path.join(self.lib, "calendar-api", "restart.lua")
        self.assertEqual(res.err.strip(), "runbook: %s:1: param 'level': 'hgh' is not one of "
                         "low, medium, high (did you mean 'high'?)" % path)
        self.assertFalse(os.path.exists(self.marker))
        res = self.run_restart("--param", "level=extreme")
        self.assertExit(res, 2)
        self.assertEqual(res.err.strip(), "runbook: %s:1: param 'level': 'extreme' is not one "
                         "of low, medium, high" % path)
        self.assertFalse(os.path.exists(self.marker))

    def test_secret_choices_are_listed_without_a_hint(self):
        f = self.write("s.lua", """
            runbook { name = "t/s", params = { c = { secret = true, choices = { "alpha", "beta" } } } }
            step("s", function() end)
            """)
        res = self.rb("run", f, "--no-audit", "--param", "c=alpah")
        self.assertExit(res, 2)
        self.assertEqual(res.err.strip(), "runbook: %s:1: param 'c' (secret): the value given "
                         "is not one of alpha, beta" % f)
        self.assertNotIn("alpah", res.all)

    def test_misspelled_command(self):
        res = self.rb("rnu", "calendar-api/restart")
        self.assertRefused(res, "unknown command 'rnu' (did you mean 'run'?)")
        res = self.rb("lsit")
        self.assertRefused(res, "unknown command 'lsit' (did you mean 'list'?)")
        res = self.rb("help", "shwo")
        self.assertRefused(res, "help: unknown command 'shwo' (did you mean 'show'?)")
        res = self.rb("frobnicate")
        self.assertRefused(res, "unknown command 'frobnicate' (see runbook help)")

    def test_misspelled_flag(self):
        for args, msg in [
            (("--dry-rn",), "run: unknown option '--dry-rn' (did you mean '--dry-run'?)"),
            (("--parma", "service=x"), "run: unknown option '--parma' (did you mean '--param'?)"),
            (("--timout=5",), "run: unknown option '--timout=5' (did you mean '--timeout'?)"),
            (("--frobnicate",), "run: unknown option '--frobnicate' (see runbook run --help)"),
        ]:
            with self.subTest(args=args):
                # before the name and after it
                self.assertRefused(self.rb("run", *args, "calendar-api/restart", "--audit",
                                           self.audit), msg)
                self.assertRefused(self.run_restart(*args), msg)
        # a misspelled --dry-run must not become a live run
        self.assertFalse(os.path.exists(self.marker))

    def test_misspelled_flag_of_list_and_show(self):
        self.assertRefused(self.rb("list", "--lnog"),
                           "list: unknown option '--lnog' (did you mean '--long'?)")
        self.assertRefused(self.rb("show", "calendar-api/restart", "--jsno"),
                           "show: unknown option '--jsno' (did you mean '--json'?)")

    def test_misspelled_flag_of_the_other_commands(self):
        for args, msg in [
            (("test", "--junti", "x.xml"), "test: unknown option '--junti' (did you mean "
                                           "'--junit'?)"),
            (("locks", "--jsno"), "locks: unknown option '--jsno' (did you mean '--json'?)"),
            (("check", "--josn"), "check: unknown option '--josn' (did you mean '--json'?)"),
            (("repl", "--dry-rnu"), "repl: unknown option '--dry-rnu' (did you mean "
                                    "'--dry-run'?)"),
        ]:
            with self.subTest(args=args):
                self.assertRefused(self.rb(*args), msg)

    def test_misspelled_flag_of_init_schedule_plan_approve_apply(self):
        for args, msg in [
            (("init", "team-lib", "--tem", "ops"),
             "init: unknown option '--tem' (did you mean '--team'?)"),
            (("schedule", "calendar-api/restart", "--emti", "systemd"),
             "schedule: unknown option '--emti' (did you mean '--emit'?)"),
            (("schedule", "--list", "--jsno"),
             "schedule: unknown option '--jsno' (did you mean '--json'?)"),
            (("plan", "calendar-api/restart", "--parma", "level=high"),
             "plan: unknown option '--parma' (did you mean '--param'?)"),
            (("plan", "calendar-api/restart", "--ot", "x.plan"),
             "plan: unknown option '--ot' (did you mean '--out'?)"),
            (("approve", "change.plan", "--audti", self.audit),
             "approve: unknown option '--audti' (did you mean '--audit'?)"),
            (("apply", "change.plan", "--outptu", "json"),
             "apply: unknown option '--outptu' (did you mean '--output'?)"),
            (("apply", "change.plan", "--wait-lokc=5s"),
             "apply: unknown option '--wait-lokc=5s' (did you mean '--wait-lock'?)"),
            # never a flag the command would then refuse: plan has --out, not
            # --output; approve has no --yes
            (("plan", "calendar-api/restart", "--outptu", "json"),
             "plan: unknown option '--outptu' (see runbook plan --help)"),
            (("approve", "change.plan", "--yse"),
             "approve: unknown option '--yse' (see runbook approve --help)"),
        ]:
            with self.subTest(args=args):
                self.assertRefused(self.rb(*args), msg)

    def test_misspelled_flag_and_command_of_audit(self):
        for args, msg in [
            (("list", "--jsno"), "unknown option '--jsno' for 'list' (did you mean '--json'?)"),
            (("list", "--limt=5"), "unknown option '--limt' for 'list' (did you mean '--limit'?)"),
            (("show", "20261207", "--jsno"),
             "unknown option '--jsno' for 'show' (did you mean '--json'?)"),
            (("export", "--fromat", "csv"),
             "unknown option '--fromat' for 'export' (did you mean '--format'?)"),
            (("verify", "--confgi", "runbook.yaml"),
             "unknown option '--confgi' for 'verify' (did you mean '--config'?)"),
            (("push", "fallback.db", "--audti", self.audit),
             "unknown option '--audti' for 'push' (did you mean '--audit'?)"),
            # show has no --limit: no suggestion of it
            (("show", "20261207", "--limt", "3"),
             "unknown option '--limt' for 'show' (see runbook audit show --help)"),
            (("lsit",), "unknown command 'lsit' (did you mean 'list'?)"),
            (("pshu", "fallback.db"), "unknown command 'pshu' (did you mean 'push'?)"),
            (("frobnicate",), "unknown command 'frobnicate' (list, show, export, verify, push)"),
        ]:
            with self.subTest(args=args):
                res = self.rb("audit", *args)
                self.assertExit(res, 2)
                self.assertEqual(res.err.strip(), "runbook audit: " + msg, res)
                self.assertFalse(os.path.exists(self.audit), "the audit log was opened")

    def log_state(self):
        """The audit log's bytes: the database and its WAL (where a commit
        lands first), so that any write, even one not yet checkpointed,
        shows; and its records."""
        h = hashlib.sha256()
        for p in (self.audit, self.audit + "-wal"):
            h.update(p.encode() + b"\0")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    h.update(f.read())
        return h.hexdigest(), len(self.records())

    def test_a_misspelled_flag_leaves_the_audit_log_alone(self):
        # a log with a run and a plan; a fallback log with a run to push
        self.assertExit(self.run_restart(), 0)
        os.remove(self.marker)
        fallback = self.path("fallback.db")
        self.assertExit(self.rb("run", "db/backup", "--audit", fallback), 0)
        plan = self.path("change.plan")
        self.assertExit(self.rb("plan", "calendar-api/restart", "-o", plan, "--audit",
                                self.audit), 0)
        before = self.log_state()
        for args in [
            ("approve", plan, "--audit", self.audit, "--audit-wiat", "5s"),
            ("apply", plan, "--audit", self.audit, "--yes", "--wait-lokc", "5s"),
            ("apply", plan, "--audit", self.audit, "--yse"),
            ("audit", "push", fallback, "--audit", self.audit, "--confgi", "runbook.yaml"),
            ("plan", "calendar-api/restart", "-o", "other.plan", "--audit", self.audit,
             "--parma", "level=high"),
        ]:
            with self.subTest(args=args):
                res = self.rb(*args)
                self.assertExit(res, 2)
                self.assertIn("(did you mean '--", res.err)
                self.assertEqual(self.log_state(), before)
                self.assertFalse(os.path.exists(self.marker), "the plan was applied")
        self.assertFalse(os.path.exists(self.path("other.plan")), "a plan was written")
        # the control: spelled right, apply and push do write to the log
        self.assertExit(self.rb("apply", plan, "--audit", self.audit, "--yes"), 0)
        self.assertEqual(self.read(self.marker), "api low")
        applied = self.log_state()
        self.assertNotEqual(applied, before)
        self.assertExit(self.rb("audit", "push", fallback, "--audit", self.audit), 0)
        self.assertNotEqual(self.log_state(), applied)

    def test_a_misspelled_flag_writes_no_files(self):
        empty = self.path("empty")
        os.makedirs(empty)
        res = self.rb("init", "team-lib", "--tem", "ops", cwd=empty)
        self.assertRefused(res, "init: unknown option '--tem' (did you mean '--team'?)")
        self.assertEqual(os.listdir(empty), [])
        self.write(os.path.join(self.lib, "db", "vacuum.lua"), """
            runbook { name = "db/vacuum", title = "Vacuum", schedule = "daily" }
            step("Vacuum", function() end)
            """)
        units = self.path("units")
        os.makedirs(units)
        res = self.rb("schedule", "db/vacuum", "--emit", "systemd", "--out", units, "--nmae", "v")
        self.assertRefused(res, "schedule: unknown option '--nmae' (did you mean '--name'?)")
        self.assertEqual(os.listdir(units), [])
        # the controls: spelled right, both write
        self.assertExit(self.rb("init", "team-lib", "--team", "ops", cwd=empty), 0)
        self.assertEqual(os.listdir(empty), ["team-lib"])
        self.assertExit(self.rb("schedule", "db/vacuum", "--emit", "systemd", "--out", units,
                                "--name", "v"), 0)
        self.assertTrue(os.listdir(units))

    # ---- list -------------------------------------------------------------

    def tty_list(self, *args, columns="60"):
        p = PtyRun(self, "list", *args, env={"COLUMNS": columns}, all_tty=True)
        res = p.finish()
        self.assertExit(res, 0)
        return [l.rstrip("\r") for l in res.tty.split("\n") if l.strip()]

    def test_list_fits_the_terminal(self):
        lines = self.tty_list()
        self.assertTrue(lines[0].startswith("NAME"), lines)
        for l in lines:
            self.assertLessEqual(len(l), 60, "wider than COLUMNS=60: %r" % l)
        row = next(l for l in lines if l.startswith("calendar-api/restart"))
        self.assertIn("…", row)
        title = row[len("calendar-api/restart"):].strip().split("…")[0]
        self.assertTrue(LONG_TITLE.startswith(title), row)
        self.assertGreater(len(title), 3)
        # the tags keep their own column: the title's cut leaves them room
        tags_at = lines[0].index("TAGS")
        self.assertEqual(row[tags_at - 2:tags_at], "  ", row)
        self.assertTrue(row[tags_at:].startswith("calendar-api, P2")
                        or "…" in row[tags_at:], row)

    def test_list_in_a_pipe_is_not_cut(self):
        res = self.rb("list")
        self.assertExit(res, 0)
        self.assertNotIn("…", res.out)
        self.assertRegex(res.out, r"calendar-api/restart +%s +calendar-api, P2\n"
                         % re.escape(LONG_TITLE))
        # columns line up: every row's title starts where TITLE does
        lines = res.out.splitlines()
        col = lines[0].index("TITLE")
        self.assertEqual(lines[1][col:col + 20], LONG_TITLE[:20])
        self.assertEqual(lines[2][col:].split("  ")[0], "Back up")

    def test_list_long_adds_paths(self):
        res = self.rb("list", "-l")
        self.assertExit(res, 0)
        lines = res.out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "TITLE", "TAGS", "PATH"])
        paths = [l.split()[-1] for l in lines[1:]]
        self.assertEqual(paths, [os.path.join(self.lib, "calendar-api", "restart.lua"),
                                 os.path.join(self.lib, "db", "backup.lua")])
        for p in paths:
            self.assertTrue(os.path.isfile(p), p)
        # on a narrow terminal the path stays whole
        lines = self.tty_list("--long", columns="70")
        self.assertTrue(any(l.endswith(os.path.join(self.lib, "calendar-api", "restart.lua"))
                            for l in lines), lines)

    # ---- show -------------------------------------------------------------

    def test_show_tells_all(self):
        res = self.rb("show", "calendar-api/restart")
        self.assertExit(res, 0)
        for line in ("  severity: P2", "  source: ops-guide.md › Restarts",
                     "  schedule: on demand", "  mutates: restarts the API pods",
                     "  lock: calendar-api", "  owner: team-calendar",
                     "      choices: low, medium, high", '      example: "high"'):
            self.assertIn(line + "\n", res.out)
        self.assertFalse(os.path.exists(self.marker))
        res = self.rb("show", "db/backup")
        self.assertIn("  lock: computed from the params when a run takes it\n", res.out)

    def test_show_json(self):
        res = self.rb("show", "calendar-api/restart", "--json")
        self.assertExit(res, 0)
        d = json.loads(res.out)
        m = d["meta"]
        self.assertEqual(d["path"], os.path.join(self.lib, "calendar-api", "restart.lua"))
        self.assertEqual(m["severity"], "P2")
        self.assertEqual(m["source"], "ops-guide.md › Restarts")
        self.assertEqual(m["schedule"], "on demand")
        self.assertEqual(m["mutates"], ["restarts the API pods"])
        self.assertEqual(m["lock"], "calendar-api")
        self.assertEqual(m["params"]["level"]["choices"], ["low", "medium", "high"])
        self.assertEqual(m["params"]["service"]["default"], "api")
        self.assertEqual([s["name"] for s in d["steps"]], ["Restart"])
        self.assertFalse(os.path.exists(self.marker))

    # ---- db.null ----------------------------------------------------------

    def test_null_prints_as_null(self):
        res = self.run_body("""
            step("s", function()
              print(db.null, json.null, tostring(db.null))
              log.info("row: %s", db.null)
              log.warn(db.null)
              out({ s = string.format("%s|%s", db.null, tostring(json.decode("null"))),
                    same = db.null == json.null, mt = getmetatable(db.null) })
            end)
            """, "--no-audit", audit=False)
        self.assertExit(res, 0)
        self.assertIn("null\tnull\tnull", res.out)
        self.assertIn("row: null", res.out)
        self.assertNotIn("userdata", res.out)
        self.assertEqual(res.data, [{"s": "null|nil", "same": True, "mt": False}])

    # ---- check: stdlib modules are required --------------------------------

    def test_check_says_require(self):
        f = self.write("g.lua", """
            runbook { name = "t/g" }
            step("s", function()
              local r = prometheus.ratio("x", "a", "b")
              return healthh
            end)
            """)
        res = self.rb("check", f)
        self.assertExit(res, 1)
        self.assertIn("%s:3:13: error: 'prometheus' is a stdlib module: local prometheus = "
                      "require \"prometheus\"\n" % f, res.out)
        # any other undefined global keeps luacheck's message
        self.assertIn("%s:4:10: error: accessing undefined variable 'healthh'" % f, res.out)
        ok = self.write("ok.lua", """
            runbook { name = "t/ok" }
            local prometheus = require "prometheus"
            step("s", function() return prometheus.ratio end)
            """)
        res = self.rb("check", ok)
        self.assertExit(res, 0)


if __name__ == "__main__":
    unittest.main()
