"""SIGINT (SPEC §7): exit 130, children (and their children) killed, the
interruption recorded in the audit log, and a second Ctrl-C does not corrupt
it."""
import os
import signal
import time
import unittest

from rbtest import PtyRun, RunbookTestCase, kill_group, live_in_group, lua_str


class Interrupt(RunbookTestCase):
    def start_long(self):
        pgfile = self.path("group.pid")
        after = self.path("after-interrupt")
        rb = self.write("long.lua", """
            runbook { name = "t/interrupt" }
            step("Before", function() exec{"echo", "warm"} end)
            step("Long", function()
              exec{"sh", "-c", "echo $$ > " .. %(pg)s .. "; sleep 60 & sleep 60"}
            end)
            step("After", function() exec{"touch", %(after)s} end)
            """ % dict(pg=lua_str(pgfile), after=lua_str(after)))
        p = self.spawn("run", rb, "--audit", self.audit)
        pgid = int(self.wait_file(pgfile, proc=p).strip())
        self.addCleanup(kill_group, pgid)
        # both sleeps are running in the child's group before we interrupt
        self.wait_for(lambda: len(live_in_group(pgid)) >= 3, what="sh and two sleeps", proc=p)
        return p, pgid, after

    def assert_interrupted(self, p, pgid, after):
        res = self.spawned_output(p)
        self.assertEqual(p.returncode, 130, res)
        self.assertFalse(os.path.exists(after), "the run went on after the interrupt")
        left = live_in_group(pgid)
        self.assertEqual(left, [], "processes of the step's group outlived the run")
        run = self.run_record()
        self.assertEqual(run["outcome"], "interrupted")
        self.assertEqual(run["exit_code"], 130)
        st = self.step_status()
        self.assertEqual(st.get("Before"), "ok")
        self.assertIn(st.get("Long"), ("interrupted", "failed"))
        self.assertNotIn("After", st)
        self.assertEqual(self.integrity(), "ok")
        self.assertExit(self.verify(), 0)

    def test_sigint_kills_the_step_tree(self):
        p, pgid, after = self.start_long()
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=60)
        self.assert_interrupted(p, pgid, after)

    def test_second_sigint_does_not_corrupt_the_log(self):
        p, pgid, after = self.start_long()
        os.kill(p.pid, signal.SIGINT)
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=60)
        self.assert_interrupted(p, pgid, after)

    def test_sigint_during_a_busy_lua_loop(self):
        ready = self.path("ready")
        after = self.path("after")
        rb = self.write("busy.lua", """
            runbook { name = "t/busy" }
            step("Spin", function()
              exec{"touch", %s}
              local n = 0
              while true do n = n + 1 end
            end)
            step("After", function() exec{"touch", %s} end)
            """ % (lua_str(ready), lua_str(after)))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        time.sleep(0.2)
        os.kill(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=30)
        except Exception:
            p.kill()
            p.wait()
            self.fail("SIGINT did not stop a busy Lua loop")
        self.assertEqual(p.returncode, 130, self.spawned_output(p))
        self.assertFalse(os.path.exists(after))
        self.assertEqual(self.run_record()["outcome"], "interrupted")
        self.assertExit(self.verify(), 0)

    def test_sigint_during_wait_until_and_sleep(self):
        ready = self.path("ready")
        rb = self.write("sleepy.lua", """
            runbook { name = "t/sleepy" }
            step("Wait", function()
              exec{"touch", %s}
              wait_until(function() return false end, { timeout = 120, every = 1, what = "never" })
            end)
            """ % lua_str(ready))
        p = self.spawn("run", rb, "--audit", self.audit)
        self.wait_file(ready, proc=p, nonempty=False)
        time.sleep(0.3)
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=30)
        self.assertEqual(p.returncode, 130, self.spawned_output(p))
        self.assertEqual(self.run_record()["outcome"], "interrupted")

    def test_ctrl_c_on_the_terminal(self):
        """A real ^C: the terminal sends SIGINT to its foreground group, which
        holds runbook but not the step's children (they have groups of their
        own), so the engine itself must stop them."""
        pgfile = self.path("group.pid")
        after = self.path("after-interrupt")
        rb = self.write("tty.lua", """
            runbook { name = "t/tty" }
            step("Before", function() exec{"echo", "warm"} end)
            step("Long", function()
              exec{"sh", "-c", "echo $$ > " .. %(pg)s .. "; sleep 60 & sleep 60"}
            end)
            step("After", function() exec{"touch", %(after)s} end)
            """ % dict(pg=lua_str(pgfile), after=lua_str(after)))
        t = PtyRun(self, "run", rb, "--audit", self.audit)
        pgid = int(self.wait_file(pgfile, proc=t.proc).strip())
        self.addCleanup(kill_group, pgid)
        self.wait_for(lambda: len(live_in_group(pgid)) >= 3, what="sh and two sleeps", proc=t.proc)
        os.write(t.master, b"\x03")
        res = t.finish()
        self.assert_interrupted(t.proc, pgid, after)

    def test_ctrl_c_at_a_prompt(self):
        marker = self.path("marker")
        rb = self.write("prompt.lua", """
            runbook { name = "t/prompt" }
            step("Ask", function()
              if confirm("Go ahead") then exec{"touch", %s} end
            end)
            """ % lua_str(marker))
        t = PtyRun(self, "run", rb, "--audit", self.audit)
        t.expect(r"Go ahead.*\[y/N\]")
        os.write(t.master, b"\x03")
        res = t.finish()
        self.assertExit(res, 130)
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.run_record()["outcome"], "interrupted")

    def test_sigterm_stops_the_run_too(self):
        p, pgid, after = self.start_long()
        os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=60)
        self.assertIn(p.returncode, (130, 143), self.spawned_output(p))
        self.assertEqual(live_in_group(pgid), [])
        self.assertEqual(self.run_record()["outcome"], "interrupted")
        self.assertExit(self.verify(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
