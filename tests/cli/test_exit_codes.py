"""Exit codes (SPEC §7) and what the operator is told.  Invalid input is exit 2
before any step runs (a marker step at the top proves nothing ran), naming the
problem with file:line where there is one; a failing step is exit 1 with
file:line and the step's name."""
import os
import unittest

from rbtest import RunbookTestCase, lua_str, pid_alive


def rb_line(path, text):
    """1-based number of the first line of path containing text."""
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if text in line:
                return i
    raise AssertionError("%s not in %s" % (text, path))

GOOD_HEAD = """runbook {
  name = "t/codes",
  params = {
    threshold = { type = "number", default = 0.1 },
    api = { default = "http://127.0.0.1:9" },
  },
}
"""

# name, files {relpath: text}, argv (FILE = the runbook), stderr patterns
INVALID = [
    ("unknown flag", {}, ["run", "FILE", "--frobnicate"], [r"--frobnicate"]),
    ("flag needs a value", {}, ["run", "FILE", "--param"], [r"--param"]),
    ("bad --param syntax", {}, ["run", "FILE", "--param", "novalue"], [r"novalue"]),
    ("bad --output", {}, ["run", "FILE", "--output", "xml"], [r"xml"]),
    ("bad --timeout", {}, ["run", "FILE", "--timeout", "soon"], [r"soon"]),
    ("unknown command", {}, ["frobnicate"], [r"frobnicate"]),
    ("missing runbook file", {}, ["run", "no-such-runbook.lua"], [r"no-such-runbook"]),
    ("no runbook given", {}, ["run"], [r"runbook"]),
    ("lua syntax error", {"syntax.lua": 'runbook { name = "t/s" }\nstep("x", function()\n  local = 1\nend)\n'},
     ["run", "syntax.lua"], [r"syntax\.lua:3:"]),
    ("top-level runtime error", {"rt.lua": 'runbook { name = "t/rt" }\nlocal t = nil\nlocal x = t.field\n'},
     ["run", "rt.lua"], [r"rt\.lua:3:"]),
    ("no runbook{} declaration", {"nodecl.lua": 'local x = 1\n'},
     ["run", "nodecl.lua"], [r"nodecl\.lua", r"runbook\{"]),
    ("step before runbook{}", {"early.lua": 'step("x", function() end)\nrunbook { name = "t/e" }\n'},
     ["run", "early.lua"], [r"early\.lua:1:"]),
    ("runbook{} without name", {"noname.lua": 'runbook { title = "x" }\n'},
     ["run", "noname.lua"], [r"noname\.lua:1:", r"name"]),
    ("unknown runbook{} field", {"field.lua": 'runbook { name = "t/f", tittle = "x" }\n'},
     ["run", "field.lua"], [r"field\.lua:1:", r"tittle"]),
    ("malformed runbook.yaml", {"runbook.yaml": "audit: false\nparams: {api: [unclosed\n"},
     ["run", "FILE"], [r"runbook\.yaml:\d+"]),
    ("runbook.yaml key of the wrong shape", {"runbook.yaml": "# config\n\nparams: [1, 2]\n"},
     ["run", "FILE"], [r"runbook\.yaml:3", r"params"]),
    ("runbook.yaml readonly_commands of the wrong shape",
     {"runbook.yaml": "readonly_commands: cat\n"},
     ["run", "FILE"], [r"runbook\.yaml:1", r"readonly_commands"]),
    ("--config missing file", {}, ["run", "FILE", "--config", "missing.yaml"], [r"missing\.yaml"]),
    ("unknown --env", {"runbook.yaml": "environments:\n  prod:\n    params: {api: x}\n"},
     ["run", "FILE", "--env", "staging"], [r"staging"]),
    ("--env without config", {}, ["run", "FILE", "--env", "prod"], [r"prod"]),
    ("wrong param type", {}, ["run", "FILE", "--param", "threshold=abc"],
     [r"threshold", r"number"]),
    ("undeclared param", {}, ["run", "FILE", "--param", "treshold=1"], [r"treshold"]),
    ("wrong param type from runbook.yaml", {"runbook.yaml": "params:\n  threshold: high\n"},
     ["run", "FILE"], [r"threshold"]),
    ("unknown --from step", {}, ["run", "FILE", "--from", "No such step"], [r"No such step"]),
    ("--from out of range", {}, ["run", "FILE", "--from", "9"], [r"9"]),
    ("--resume unknown run", {}, ["run", "FILE", "--resume", "nosuchrun"], [r"nosuchrun"]),
    ("--resume with --no-audit", {}, ["run", "FILE", "--no-audit", "--resume", "x"],
     [r"--no-audit"]),
    ("runbook.yaml audit of the wrong shape", {"runbook.yaml": "audit: [1]\n"}, ["run", "FILE"],
     [r"runbook\.yaml:1", r"audit"]),
]


class InvalidInput(RunbookTestCase):
    def marker_runbook(self, head=GOOD_HEAD, extra=""):
        self.marker = self.path("marker")
        return self.write("main.lua", head + extra + """
step("Marker", function() exec{"touch", %s} end)
step("Second", function() exec{"true"} end)
""" % lua_str(self.marker), dedent=False)

    def test_invalid_input_is_exit_2(self):
        for name, files, argv, patterns in INVALID:
            with self.subTest(name):
                for f in os.listdir(self.tmp):
                    if f.endswith((".lua", ".yaml")):
                        os.remove(self.path(f))
                main = self.marker_runbook()
                for rel, text in files.items():
                    self.write(rel, text, dedent=False)
                args = [main if a == "FILE" else a for a in argv]
                if args[:1] == ["run"] and len(args) > 1:
                    args[1:1] = ["--audit", self.audit]
                res = self.rb(*args)
                self.assertExit(res, 2)
                for pat in patterns:
                    self.assertRegex(res.err, pat)
                self.assertNotIn("Traceback", res.err)
                self.assertFalse(os.path.exists(self.marker), "a step ran despite invalid input")

    def test_missing_required_param(self):
        head = GOOD_HEAD.replace('api = {', 'cluster = { required = true, help = "which cluster" },\n    api = {')
        rb = self.marker_runbook(head)
        res = self.run_rb(rb)
        self.assertExit(res, 2)
        self.assertRegex(res.err, r"cluster")
        self.assertFalse(os.path.exists(self.marker))
        # given, it runs
        self.assertExit(self.run_rb(rb, "--param", "cluster=eu-1"), 0)
        self.assertTrue(os.path.exists(self.marker))

    def test_unknown_step_option(self):
        rb = self.write("opt.lua", GOOD_HEAD + """
step("Marker", function() exec{"touch", %s} end)
step("Typo", { continue_on_eror = true }, function() end)
""" % lua_str(self.path("marker")), dedent=False)
        line = rb_line(rb, "Typo")
        res = self.run_rb(rb)
        self.assertExit(res, 2)
        self.assertRegex(res.err, r"opt\.lua:%d:" % line)
        self.assertIn("continue_on_eror", res.err)
        self.assertFalse(os.path.exists(self.path("marker")))

    def test_bad_param_declaration(self):
        for decl, pat in [('n = { type = "integer" }', "integer"),
                          ('n = { type = "number", default = "lots" }', "lots|n"),
                          ('n = { typ = "number" }', "typ")]:
            with self.subTest(decl):
                rb = self.write("decl.lua", 'runbook { name = "t/d", params = { %s } }\n'
                                'step("Marker", function() exec{"touch", %s} end)\n'
                                % (decl, lua_str(self.path("marker"))), dedent=False)
                res = self.run_rb(rb)
                self.assertExit(res, 2)
                self.assertRegex(res.err, r"decl\.lua:1:")
                self.assertRegex(res.err, pat)
                self.assertFalse(os.path.exists(self.path("marker")))

    def test_help_is_exit_0(self):
        res = self.rb("run", "--help")
        self.assertExit(res, 0)
        for flag in ("--dry-run", "--confirm", "--yes", "--param", "--env", "--config",
                     "--audit", "--no-audit", "--output", "--from", "--resume", "--rollback",
                     "--timeout"):
            self.assertIn(flag, res.out)
        self.assertExit(self.rb("help"), 0)
        self.assertExit(self.rb("version"), 0)


class Failures(RunbookTestCase):
    def test_failing_step_is_exit_1_with_file_line_and_step(self):
        after = self.path("after")
        rb = self.write("fail.lua", """
            runbook { name = "t/fail" }
            step("Fine", function() exec{"true"} end)
            step("Restart the widget", function()
              local x = nil
              return x.field
            end)
            step("Never", function() exec{"touch", %s} end)
            """ % lua_str(after))
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"fail\.lua:5:")
        self.assertIn("Restart the widget", res.all)
        self.assertFalse(os.path.exists(after))
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertEqual(run["exit_code"], 1)
        st = self.step_status()
        self.assertEqual(st, {"Fine": "ok", "Restart the widget": "failed"})
        failed = [s for s in self.steps() if s["status"] == "failed"][0]
        self.assertRegex(failed["error"], r"fail\.lua:5:")

    def test_failing_primitive_names_the_call_site(self):
        rb = self.write("prim.lua", """
            runbook { name = "t/prim" }
            step("Run false", function()
              exec{"false"}
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"prim\.lua:3:")
        self.assertRegex(res.all, r"exit code 1")
        acts = self.actions(primitive="exec")
        self.assertEqual(acts[0]["status"], "error")
        # the audit keeps what the command said, not only that it failed
        self.assertEqual(acts[0].get("exit_code"), 1, "a failed command's exit code is not "
                         "in its audit record: %r" % acts[0])

    def test_check_message(self):
        rb = self.write("chk.lua", """
            runbook { name = "t/chk" }
            step("Ratio", function()
              check(false, "ratio %d too high", 5)
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertIn("ratio 5 too high", res.all)
        self.assertRegex(res.all, r"chk\.lua:3:")
        self.assertIn("ratio 5 too high", [s for s in self.steps()][0]["error"])

    def test_run_timeout(self):
        pidf = self.path("sleep.pid")
        after = self.path("after")
        rb = self.write("slow.lua", """
            runbook { name = "t/slow" }
            step("Slow", function()
              exec{"sh", "-c", "echo $$ > " .. %s .. "; exec sleep 60"}
            end)
            step("After", function() exec{"touch", %s} end)
            """ % (lua_str(pidf), lua_str(after)))
        res = self.run_rb(rb, "--timeout", "2")
        self.assertExit(res, 1)
        self.assertIn("timed out", res.all)
        self.assertFalse(os.path.exists(after))
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertEqual(run["exit_code"], 1)
        pid = int(self.read(pidf).strip())
        self.assertFalse(pid_alive(pid), "the timed-out command is still running")

    def test_run_timeout_in_pure_lua(self):
        rb = self.write("spin.lua", """
            runbook { name = "t/spin" }
            step("Spin", function() while true do end end)
            """)
        res = self.run_rb(rb, "--timeout", "1")
        self.assertExit(res, 1)
        self.assertIn("timed out", res.all)

    def test_step_timeout(self):
        after = self.path("after")
        rb = self.write("steptime.lua", """
            runbook { name = "t/steptime" }
            step("Slow step", { timeout = 1 }, function() exec{"sleep", "60"} end)
            step("After", function() exec{"touch", %s} end)
            """ % lua_str(after))
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertIn("timed out", res.all)
        self.assertIn("Slow step", res.all)
        self.assertFalse(os.path.exists(after))
        self.assertEqual(self.step_status()["Slow step"], "failed")

    def test_step_timeout_in_sleep_names_the_line(self):
        rb = self.write("sleepy.lua", """
            runbook { name = "t/sleepy" }
            step("Nap", { timeout = 1 }, function()
              sleep(30)
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertIn("timed out", res.all)
        self.assertRegex(res.all, r"sleepy\.lua:3:", "the summary does not say where it failed")

    def test_exec_timeout_option(self):
        rb = self.write("exectime.lua", """
            runbook { name = "t/exectime" }
            step("Slow call", function()
              local ok, err = pcall(exec, {"sleep", "60"}, { timeout = 1 })
              check(not ok and tostring(err):find("timed out"), "no timeout: %s", tostring(err))
              print("CAUGHT " .. tostring(err))
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"CAUGHT .*sleep.*timed out")

    def test_continue_on_error(self):
        after = self.path("after")
        rb = self.write("coe.lua", """
            runbook { name = "t/coe" }
            step("Flaky", { continue_on_error = true }, function() error("flaked") end)
            step("After", function() exec{"touch", %s} end)
            """ % lua_str(after))
        res = self.run_rb(rb)
        self.assertTrue(os.path.exists(after), "continue_on_error did not continue: %r" % res)
        self.assertEqual(self.step_status(), {"Flaky": "failed", "After": "ok"})
        self.assertIn("flaked", res.all)
        # the run went on and finished: it succeeded, with the failure on record
        self.assertExit(res, 0)

    def test_when_false_skips(self):
        a, b, c = self.path("a"), self.path("b"), self.path("c")
        rb = self.write("when.lua", """
            runbook { name = "t/when" }
            step("Set", function() state.go = false end)
            step("Bool", { when = false }, function() exec{"touch", %s} end)
            step("Func", { when = function() return state.go end }, function() exec{"touch", %s} end)
            step("Yes", { when = function() return not state.go end }, function() exec{"touch", %s} end)
            """ % (lua_str(a), lua_str(b), lua_str(c)))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(a))
        self.assertFalse(os.path.exists(b))
        self.assertTrue(os.path.exists(c))
        self.assertEqual(self.step_status(), {"Set": "ok", "Bool": "skipped", "Func": "skipped",
                                              "Yes": "ok"})
        self.assertEqual(self.run_record()["outcome"], "success")

    def test_error_in_when_fails_the_step(self):
        rb = self.write("whenerr.lua", """
            runbook { name = "t/whenerr" }
            step("Bad when", { when = function() error("cannot decide") end }, function() end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertIn("cannot decide", res.all)


if __name__ == "__main__":
    unittest.main(verbosity=2)
