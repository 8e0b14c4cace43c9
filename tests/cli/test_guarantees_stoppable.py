"""Lua is always stoppable (issue "Guarantees that hold under attack", 7):
--timeout, a step's timeout, SIGINT and SIGTERM end ANY runbook Lua -- loops
a runbook's pcall/xpcall would catch the stop in, looping error handlers,
coroutines, long C calls -- with the run recorded as timed out or
interrupted; no action is taken after the deadline; children's process
groups are gone.  Runbook Lua has a memory limit (--max-memory)."""
import datetime
import os
import signal
import subprocess
import unittest

from rbtest import RunbookTestCase, kill_group, live_in_group, lua_str

# wall-clock bounds are only how long a broken build may hang a test
LIMIT = 30


def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


class Timeout(RunbookTestCase):
    def run_spin(self, body, *flags, timeout="2s"):
        rb = self.write("spin.lua", """
            runbook { name = "t/spin" }
            step("Spin", function()
            %s
            end)
            step("After", function() exec{"touch", %s} end)
            """ % (body, lua_str(self.path("after"))))
        try:
            res = self.run_rb(rb, "--timeout", timeout, *flags, timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("--timeout %s did not stop: %s" % (timeout, body))
        self.assertExit(res, 1)
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertEqual(run["exit_code"], 1)
        self.assertIn("timed out", run["error"])
        self.assertEqual(self.step_status().get("Spin"), "failed")
        self.assertFalse(os.path.exists(self.path("after")), "the run went on")
        self.assertExit(self.verify(), 0)
        return res, run

    def test_pcall_wrapped_busy_loop(self):
        self.run_spin("while true do pcall(function() while true do end end) end")

    def test_nested_pcall_that_retries(self):
        self.run_spin("""
            while true do
              pcall(function()
                while true do pcall(function() local n = 0; while true do n = n + 1 end end) end
              end)
            end""")

    def test_xpcall_with_a_looping_error_handler(self):
        self.run_spin("""
            while true do
              xpcall(function() while true do end end, function(e) while true do end end)
            end""")

    def test_coroutine_wrap_busy_loop(self):
        self.run_spin("while true do pcall(coroutine.wrap(function() while true do end end)) end")

    def test_coroutine_resume_busy_loop(self):
        self.run_spin("""
            while true do
              coroutine.resume(coroutine.create(function() while true do end end))
            end""")

    def test_load_reader_that_loops(self):
        self.run_spin("while true do load(function() while true do end end) end")

    def test_string_rep_in_a_loop(self):
        # each call is one instruction that runs long in C: few count hooks
        self.run_spin("while true do pcall(string.rep, 'x', 1e8) end")

    def test_pcall_exec_in_a_loop_acts_no_more_after_the_deadline(self):
        res, run = self.run_spin("while true do pcall(exec, {'true'}) end")
        deadline = parse_ts(run["start"]) + datetime.timedelta(seconds=2)
        late = []
        for a in self.actions(primitive="exec"):
            started = parse_ts(a["ts"]) - datetime.timedelta(milliseconds=a.get("duration_ms", 0))
            if started > deadline:
                late.append(a)
        self.assertLessEqual(len(late), 3, "actions taken after the deadline: %d" % len(late))

    def test_a_looping_finalizer_cannot_be_declared(self):
        # Lua runs __gc with hooks off: nothing could stop it, so it is refused
        rb = self.write("gc.lua", """
            runbook { name = "t/gc" }
            step("Spin", function()
              setmetatable({}, { __gc = function() while true do end end })
              collectgarbage()
            end)
            """)
        res = self.run_rb(rb, "--timeout", "2s", timeout=LIMIT)
        self.assertExit(res, 1)
        self.assertIn("__gc is not available to runbooks", res.out + res.err)

    def test_step_timeout_stops_a_pcall_loop(self):
        rb = self.write("step.lua", """
            runbook { name = "t/steptimeout" }
            step("Spin", { timeout = 1 }, function()
              while true do pcall(function() while true do end end) end
            end)
            step("After", function() exec{"touch", %s} end)
            """ % lua_str(self.path("after")))
        res = self.run_rb(rb, timeout=LIMIT)
        self.assertExit(res, 1)
        self.assertIn("step timed out", self.run_record()["error"])
        self.assertFalse(os.path.exists(self.path("after")))

    def test_child_group_started_before_the_stop_is_gone(self):
        pgfile = self.path("group.pid")
        rb = self.write("child.lua", """
            runbook { name = "t/child" }
            step("Both", function()
              parallel({1, 2}, function(i)
                if i == 1 then
                  exec{"sh", "-c", "echo $$ > " .. %s .. "; sleep 60 & sleep 60"}
                else
                  while true do pcall(function() while true do end end) end
                end
              end)
            end)
            """ % lua_str(pgfile))
        p = self.spawn("run", rb, "--audit", self.audit, "--timeout", "2s")
        pgid = int(self.wait_file(pgfile, proc=p).strip())
        self.addCleanup(kill_group, pgid)
        p.wait(timeout=LIMIT)
        self.assertEqual(p.returncode, 1, self.spawned_output(p))
        self.assertEqual(live_in_group(pgid), [], "the child's group outlived the run")
        self.assertIn("timed out", self.run_record()["error"])


class Started(RunbookTestCase):
    """A run started in the background, its step past its first action and
    in BODY (a loop, a stuck C call) when start returns."""

    def start(self, body, step="Spin"):
        ready = self.path("ready")
        rb = self.write("spin.lua", """
            runbook { name = "t/spinsig" }
            step(%s, function()
              exec{"touch", %s}
              %s
            end)
            """ % (lua_str(step), lua_str(ready), body))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        # the step is in BODY once the runbook has recorded the touch
        self.wait_for(lambda: len(self.actions()) >= 1, proc=p, what="the touch recorded")
        return p

    def wait_ended(self, p, what):
        try:
            p.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail(what)
        return self.spawned_output(p)


class Signals(Started):
    def start_spin(self, body):
        return self.start(body)

    def assert_stopped(self, p, codes):
        self.wait_ended(p, "the signal did not stop the runbook's Lua")
        self.assertIn(p.returncode, codes, self.spawned_output(p))
        run = self.run_record()
        self.assertEqual(run["outcome"], "interrupted")
        self.assertExit(self.verify(), 0)

    def test_sigint_stops_a_pcall_loop(self):
        p = self.start_spin("while true do pcall(function() while true do end end) end")
        os.kill(p.pid, signal.SIGINT)
        self.assert_stopped(p, (130,))

    def test_sigterm_stops_an_xpcall_loop(self):
        p = self.start_spin("""
            while true do
              xpcall(function() while true do end end, function() while true do end end)
            end""")
        os.kill(p.pid, signal.SIGTERM)
        self.assert_stopped(p, (130, 143))

    def test_sigint_stops_a_coroutine_loop(self):
        p = self.start_spin(
            "while true do pcall(coroutine.wrap(function() while true do end end)) end")
        os.kill(p.pid, signal.SIGINT)
        self.assert_stopped(p, (130,))


class Memory(RunbookTestCase):
    GROW = """
        local t, i = {}, 0
        while true do i = i + 1; t[i] = string.rep("x", 1000) .. i end
        """

    def in_step(self, code):
        return 'step("Grow", function()\n%s\nend)\n' % code

    def test_growing_forever_fails_with_the_limit(self):
        res = self.run_body(self.in_step(self.GROW), "--max-memory", "64M", timeout=LIMIT)
        self.assertExit(res, 1)
        msg = "runbook Lua used more than the memory limit of 64 MiB (--max-memory)"
        self.assertIn(msg, res.out + res.err)
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertIn(msg, run["error"])
        self.assertExit(self.verify(), 0)

    def test_pcall_does_not_swallow_the_limit(self):
        code = "while true do pcall(function() %s end) end" % self.GROW
        res = self.run_body(self.in_step(code),
                            "--max-memory", "64M", timeout=LIMIT)
        self.assertExit(res, 1)
        self.assertIn("memory limit of 64 MiB", res.out + res.err)

    def test_a_normal_run_is_unaffected(self):
        res = self.run_body(self.in_step("""
            local t = {}
            for i = 1, 200000 do t[i] = ("row %d"):format(i) end
            local s = table.concat(t, "\\n")
            local ok, err = pcall(error, "caught")
            check(not ok and err:find("caught"), "pcall still catches ordinary errors")
            check(#s > 1000000, "built")
            exec{"true"}
            """), timeout=LIMIT)
        self.assertExit(res, 0)
        self.assertEqual(self.run_record()["outcome"], "success")

    def test_bad_size_is_a_usage_error(self):
        res = self.run_body("exec{'true'}", "--max-memory", "lots")
        self.assertExit(res, 2)
        self.assertIn("--max-memory", res.err)


class TopLevel(RunbookTestCase):
    """A runbook file's top-level code (what runs when the file is loaded,
    before any step) is under --timeout and the signals too: the run is
    recorded as timed out or interrupted, never left hanging."""

    def run_top(self, text, *flags):
        rb = self.write("top.lua", text)
        try:
            res = self.run_rb(rb, "--timeout", "2s", *flags, timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("--timeout did not stop the top level:\n" + text)
        self.assertExit(res, 1)
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertEqual(run["exit_code"], 1)
        self.assertIn("run timed out after 2 s (--timeout)", run["error"])
        self.assertIn("top-level code", run["error"])
        self.assertExit(self.verify(), 0)
        return res, run

    def test_busy_loop_before_runbook_declaration(self):
        _, run = self.run_top("while true do end\n")
        self.assertTrue(run["path"].endswith("top.lua"), run)

    def test_pcall_wrapped_loop_after_the_declaration(self):
        after = self.path("after")
        _, run = self.run_top("""
            runbook { name = "t/toplevel" }
            while true do pcall(function() while true do end end) end
            step("After", function() exec{"touch", %s} end)
            """ % lua_str(after))
        self.assertEqual(run["runbook"], "t/toplevel")
        self.assertFalse(os.path.exists(after), "a step ran after the top level timed out")

    def test_top_level_child_group_is_ended(self):
        pgfile = self.path("group.pid")
        rb = self.write("child.lua", """
            runbook { name = "t/topchild" }
            exec{"sh", "-c", "echo $$ > " .. %s .. "; sleep 60 & sleep 60"}
            """ % lua_str(pgfile))
        p = self.spawn("run", rb, "--audit", self.audit, "--timeout", "2s")
        pgid = int(self.wait_file(pgfile, proc=p).strip())
        self.addCleanup(kill_group, pgid)
        p.wait(timeout=LIMIT)
        self.assertEqual(p.returncode, 1, self.spawned_output(p))
        self.assertEqual(live_in_group(pgid), [], "the child's group outlived the run")
        self.assertIn("timed out", self.run_record()["error"])
        self.assertEqual([a["status"] for a in self.actions(primitive="exec")], ["error"])

    def test_run_runbook_top_level_is_under_the_step_timeout(self):
        self.write("runbooks/t/spinner.lua", """
            runbook { name = "t/spinner" }
            while true do pcall(function() while true do end end) end
            """)
        rb = self.write("parent.lua", """
            runbook { name = "t/parent" }
            step("Call", { timeout = 1 }, function()
              pcall(run_runbook, "t/spinner", {})
              while true do end
            end)
            """)
        res = self.run_rb(rb, timeout=LIMIT, cwd=self.tmp)
        self.assertExit(res, 1)
        self.assertIn("step timed out after 1 s", self.run_record()["error"])

    def start_top_spin(self):
        ready = self.path("ready")
        rb = self.write("spin.lua", """
            runbook { name = "t/topsig" }
            exec{"touch", %s}
            while true do pcall(function() while true do end end) end
            """ % lua_str(ready))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        self.wait_for(lambda: len(self.actions()) >= 1, proc=p, what="the touch recorded")
        return p

    def assert_interrupted(self, p):
        try:
            p.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("the signal did not stop the top level")
        self.assertIn(p.returncode, (130, 143), self.spawned_output(p))
        run = self.run_record()
        self.assertEqual(run["outcome"], "interrupted")
        self.assertEqual(run["runbook"], "t/topsig")
        self.assertExit(self.verify(), 0)

    def test_sigterm_stops_a_top_level_loop(self):
        p = self.start_top_spin()
        os.kill(p.pid, signal.SIGTERM)
        self.assert_interrupted(p)

    def test_sigint_stops_a_top_level_loop(self):
        p = self.start_top_spin()
        os.kill(p.pid, signal.SIGINT)
        self.assert_interrupted(p)

    def test_top_level_memory_growth_is_a_failed_run(self):
        rb = self.write("grow.lua", """
            runbook { name = "t/topgrow" }
            local t = {}
            while true do t[#t + 1] = string.rep("x", 1e6) .. #t end
            """)
        res = self.run_rb(rb, "--max-memory", "64M", timeout=LIMIT)
        self.assertExit(res, 1)
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertIn("memory limit of 64 MiB (--max-memory)", run["error"])


class ScenarioLimits(RunbookTestCase):
    """`runbook test` has the same memory limit (--max-memory) and a time
    limit per scenario (--scenario-timeout, default 30s, or the scenario's own
    `timeout:`): the scenario that exceeds it is an error (a memory hog fails),
    naming the limit, and the other scenarios still run and pass."""

    def scenarios(self, **bodies):
        for name, body in bodies.items():
            self.write("%s.lua" % name, 'runbook { name = "t/%s" }\n%s' % (name, body),
                       dedent=False)
            self.write("%s.scenario.yaml" % name, "runbook: %s.lua\n" % name)
        self.write("healthy.lua", """
            runbook { name = "t/healthy" }
            step("Fine", function() state.ok = true end)
            """)
        self.write("healthy.scenario.yaml", """
            runbook: healthy.lua
            expect: { state: { ok: true } }
            """)

    def run_test(self, *flags):
        try:
            return self.rb("test", ".", "-j", "2", "--junit", self.path("junit.xml"), *flags,
                           cwd=self.tmp, timeout=LIMIT * 2)
        except subprocess.TimeoutExpired:
            self.fail("runbook test did not stop the scenario")

    def test_max_memory_fails_the_scenario_that_grows(self):
        self.scenarios(grow="""
            step("Grow", function()
              local t = {} while true do t[#t+1] = string.rep("x", 1e6) end
            end)
            """)
        res = self.run_test("--max-memory", "64M")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("✗ ./grow.scenario.yaml", res.out)
        self.assertIn("runbook Lua used more than the memory limit of 64 MiB (--max-memory)",
                      res.out)
        self.assertIn("✓ ./healthy.scenario.yaml", res.out)
        self.assertIn("1 passed, 1 failed", res.out)

    def test_timeout_fails_the_scenario_that_loops(self):
        self.scenarios(
            spin="""
            step("Spin", function()
              while true do pcall(function() while true do end end) end
            end)
            """,
            topspin="while true do pcall(function() while true do end end) end\n")
        res = self.run_test("--scenario-timeout", "2s")
        self.assertEqual(res.code, 1, res.all)
        for name in ("spin", "topspin"):
            self.assertIn("✗ ./%s.scenario.yaml" % name, res.out)
        self.assertEqual(res.out.count("timed out after 2s (runbook test --scenario-timeout)"),
                         2, res.out)
        self.assertIn("✓ ./healthy.scenario.yaml", res.out)
        self.assertIn("1 passed, 0 failed, 2 errors", res.out)
        with open(self.path("junit.xml")) as f:
            junit = f.read()
        self.assertIn('errors="2"', junit)
        self.assertEqual(junit.count("<error message=\"timed out after 2s"), 2, junit)

    def test_a_timeout_fails_even_a_scenario_that_expects_failure(self):
        # stopping a runbook is not its failing: `outcome: failed` does not
        # make a scenario that had to be killed pass
        self.scenarios(expectfail="""
            step("Spin", function() while true do end end)
            """)
        self.write("expectfail.scenario.yaml", """
            runbook: expectfail.lua
            expect: { outcome: failed }
            """)
        res = self.run_test("--scenario-timeout", "2s")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("✗ ./expectfail.scenario.yaml", res.out)
        self.assertIn("timed out after 2s (runbook test --scenario-timeout)", res.out)
        self.assertIn("1 passed, 0 failed, 1 error", res.out)

    def test_a_scenario_sets_its_own_time_limit(self):
        # one looping scenario among three; its own `timeout:` stops it
        # although --scenario-timeout would allow far more
        self.scenarios(own="""
            step("Spin", function() while true do end end)
            """, other="""
            step("Fine", function() state.ok = true end)
            """)
        self.write("own.scenario.yaml", """
            runbook: own.lua
            timeout: 1s
            """)
        res = self.run_test("--scenario-timeout", "10m")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("✗ ./own.scenario.yaml", res.out)
        self.assertIn("timed out after 1s (timeout: of the scenario)", res.out)
        self.assertIn("2 passed, 0 failed, 1 error", res.out)
        self.write("bad.scenario.yaml", "runbook: own.lua\ntimeout: soon\n")
        res = self.rb("test", "bad.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("bad.scenario.yaml:2: timeout: got 'soon' (expected a duration such as 90s",
                      res.out)

    def test_bad_limits_are_usage_errors(self):
        self.scenarios()
        for flags in (("--max-memory", "lots"), ("--max-memory", "10K"),
                      ("--scenario-timeout", "soon")):
            res = self.rb("test", ".", *flags, cwd=self.tmp)
            self.assertEqual(res.code, 2, res.all)
            self.assertIn(flags[0], res.err)

    def test_help_documents_the_limits(self):
        res = self.rb("test", "--help")
        self.assertIn("--scenario-timeout DURATION", res.out)
        self.assertIn("default 30s", res.out)
        self.assertIn("--max-memory SIZE", res.out)


class StuckInC(Started):
    """One C call that never returns (string.find backtracking inside
    lstrlib: no count hook runs there) cannot be stopped by the hook; the
    watchdog thread (src/core/watchdog.c) sees a stop pending with no
    progress, ends the children's groups, records the end in the audit log
    as the normal path would and exits 1 or 130."""

    FIND = 'print(string.find(string.rep("a", 40), string.rep("a-", 40) .. "b"))'
    STUCK = "stopped inside a C function that did not return"

    def assert_recorded(self, outcome, code, why):
        run = self.run_record()
        self.assertEqual(run["outcome"], outcome)
        self.assertEqual(run["exit_code"], code)
        self.assertIn(why, run["error"])
        self.assertIn(self.STUCK, run["error"])
        self.assertIn('step 1 "Stuck"', run["error"])
        self.assertEqual(self.step_status().get("Stuck"),
                         "interrupted" if code == 130 else "failed")
        self.assertExit(self.verify(), 0)
        self.assertEqual(self.integrity(), "ok")

    def test_timeout_ends_a_backtracking_string_find(self):
        after = self.path("after")
        rb = self.write("bt.lua", """
            runbook { name = "t/bt" }
            step("Stuck", function() %s end)
            step("After", function() exec{"touch", %s} end)
            """ % (self.FIND, lua_str(after)))
        try:
            res = self.run_rb(rb, "--timeout", "2s", timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("--timeout did not stop a run stuck in string.find")
        self.assertExit(res, 1)
        self.assertIn(self.STUCK, res.err)
        self.assert_recorded("failed", 1, "run timed out after 2 s (--timeout)")
        self.assertFalse(os.path.exists(after), "the run went on")

    def test_step_timeout_ends_it_too(self):
        rb = self.write("bt.lua", """
            runbook { name = "t/btstep" }
            step("Stuck", { timeout = 1 }, function() %s end)
            """ % self.FIND)
        try:
            res = self.run_rb(rb, timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("a step's timeout did not stop a run stuck in string.find")
        self.assertExit(res, 1)
        self.assert_recorded("failed", 1, "step timed out after 1 s")

    def test_top_level_stuck_is_recorded(self):
        # before the run's start is journaled: the watchdog records it too
        rb = self.write("bt.lua", 'runbook { name = "t/bttop" }\n%s\n' % self.FIND,
                        dedent=False)
        try:
            res = self.run_rb(rb, "--timeout", "1s", timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("--timeout did not stop a top level stuck in string.find")
        self.assertExit(res, 1)
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        self.assertIn("top-level code: run timed out after 1 s (--timeout)", run["error"])
        self.assertIn(self.STUCK, run["error"])
        self.assertExit(self.verify(), 0)

    def test_without_audit_it_still_ends(self):
        rb = self.write("bt.lua", """
            runbook { name = "t/btnoaudit" }
            step("Stuck", function() %s end)
            """ % self.FIND)
        try:
            res = self.run_rb(rb, "--timeout", "1s", "--no-audit", audit=False, timeout=LIMIT)
        except subprocess.TimeoutExpired:
            self.fail("--timeout did not stop a run stuck in string.find (--no-audit)")
        self.assertExit(res, 1)
        self.assertIn(self.STUCK, res.err)
        self.assertIn("not audited", res.err)

    def start_stuck(self, pre=""):
        return self.start(pre + "\n" + self.FIND, step="Stuck")

    def wait_stopped(self, p):
        return self.wait_ended(p, "the signal did not stop a run stuck in string.find")

    def test_sigterm_ends_a_backtracking_string_find(self):
        p = self.start_stuck()
        os.kill(p.pid, signal.SIGTERM)
        res = self.wait_stopped(p)
        self.assertExit(res, 130)
        self.assertIn(self.STUCK, res.err)
        self.assert_recorded("interrupted", 130, "interrupted")

    def test_sigint_ends_it_and_the_children_groups(self):
        pgfile, ready = self.path("group.pid"), self.path("ready")
        rb = self.write("bt.lua", """
            runbook { name = "t/btchild" }
            step("Stuck", function()
              parallel({1, 2}, function(i)
                if i == 1 then
                  exec{"sh", "-c", "echo $$ > " .. %s .. "; sleep 60 & sleep 60"}
                else
                  sleep(1)
                  exec{"touch", %s}
                  %s
                end
              end)
            end)
            """ % (lua_str(pgfile), lua_str(ready), self.FIND))
        p = self.spawn("run", rb, "--audit", self.audit)
        pgid = int(self.wait_file(pgfile, proc=p).strip())
        self.addCleanup(kill_group, pgid)
        self.wait_file(ready, proc=p, nonempty=False)
        # the touch is recorded (the sh is not, until it ends): the find runs
        self.wait_for(lambda: len(self.actions()) >= 1, proc=p, what="the touch recorded")
        os.kill(p.pid, signal.SIGINT)
        res = self.wait_stopped(p)
        self.assertExit(res, 130)
        self.assertEqual(live_in_group(pgid), [], "the child's group outlived the run")
        self.assert_recorded("interrupted", 130, "interrupted")

    def test_a_stop_during_a_long_child_goes_the_normal_path(self):
        # waiting for a child is the event loop's poll, which answers the
        # stop itself: the watchdog must not step in
        ready = self.path("ready")
        rb = self.write("sl.lua", """
            runbook { name = "t/sleepy" }
            step("Wait", function()
              exec{"touch", %s}
              exec{"sleep", "60"}
            end)
            """ % lua_str(ready))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        self.wait_for(lambda: len(self.actions()) >= 1, proc=p, what="the touch recorded")
        os.kill(p.pid, signal.SIGTERM)
        res = self.wait_stopped(p)
        self.assertExit(res, 130)
        self.assertNotIn(self.STUCK, res.all)
        run = self.run_record()
        self.assertEqual(run["outcome"], "interrupted")
        self.assertNotIn(self.STUCK, run["error"])
        self.assertEqual([a["status"] for a in self.actions(primitive="exec")], ["ok", "error"])
        self.assertExit(self.verify(), 0)

    def test_timeout_during_sleep_goes_the_normal_path(self):
        res = self.run_body('step("Wait", function() sleep(60) end)', "--timeout", "1s",
                            timeout=LIMIT)
        self.assertExit(res, 1)
        self.assertNotIn(self.STUCK, res.all)
        run = self.run_record()
        self.assertIn("run timed out after 1 s (--timeout)", run["error"])
        self.assertNotIn(self.STUCK, run["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
