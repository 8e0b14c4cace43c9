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


class Signals(RunbookTestCase):
    def start_spin(self, body):
        ready = self.path("ready")
        rb = self.write("spin.lua", """
            runbook { name = "t/spinsig" }
            step("Spin", function()
              exec{"touch", %s}
              %s
            end)
            """ % (lua_str(ready), body))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        # the step is in its loop once the runbook has recorded the touch
        self.wait_for(lambda: len(self.actions()) >= 1, proc=p, what="the touch recorded")
        return p

    def assert_stopped(self, p, codes):
        try:
            p.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("the signal did not stop the runbook's Lua")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
