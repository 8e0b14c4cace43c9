"""`runbook test`'s workers: --jobs worker processes run scenario after
scenario, each in a fresh engine, and the scenarios must stay as isolated
from each other as when each ran in a process of its own.

With -j 1 every scenario runs in the one worker, in path order, so whatever
a scenario left behind would be seen by the ones after it."""
import glob
import os
import signal
import unittest

from rbtest import RunbookTestCase

LEAK = """
runbook { name = "workers/leak" }
step("leak", function()
  LEAKED = "from the first scenario"
  string.leaked = true
  package.loaded.leakmod = { x = 1 }
  os.getenv = function() return "patched" end
  setmetatable(_G, { __index = function() return "from _G's metatable" end })
  state.leaked = true
end)
"""

CHECK = """
runbook { name = "workers/check" }
step("check", function()
  state.global = tostring(rawget(_G, "LEAKED"))
  state.strlib = tostring(string.leaked)
  state.module = tostring(package.loaded.leakmod)
  state.meta = tostring(getmetatable(_G))
  state.undefined = tostring(NOT_DEFINED_ANYWHERE)
end)
"""

CHECK_EXPECT = """
runbook: check
expect:
  outcome: success
  state: { global: "nil", strlib: "nil", module: "nil", meta: "nil", undefined: "nil" }
"""

# a step that never ends, after leaving a mark where the test can see it
SPIN = """
runbook { name = "workers/spin" }
step("spin", function()
  fs.write("/spinning", "yes")
  while true do end
end)
"""


# one C call that does not return for ages (lstrlib backtracking): no Lua
# hook runs inside it, so only the kernel can end it
STUCK_IN_C = """
runbook { name = "workers/stuck" }
step("stuck", function()
  string.find(string.rep("a", 40), string.rep("a-", 40) .. "b")
end)
"""


class Workers(RunbookTestCase):
    def run_test(self, *args, **kw):
        return self.rb("test", *args, **kw)

    def test_what_a_scenario_changes_in_its_engine_the_next_one_does_not_see(self):
        self.write("w/leak.lua", LEAK)
        self.write("w/check.lua", CHECK)
        self.write("w/a-leak.scenario.yaml", """
            runbook: leak
            expect: { outcome: success, state: { leaked: true } }
            """)
        for name in ("b-check", "c-check"):
            self.write("w/%s.scenario.yaml" % name, CHECK_EXPECT)
        res = self.run_test("w", "-j", "1")
        self.assertExit(res, 0)
        self.assertEqual([l.split()[1] for l in res.out.splitlines() if l.startswith("✓")],
                         ["w/a-leak.scenario.yaml", "w/b-check.scenario.yaml",
                          "w/c-check.scenario.yaml"], res)
        self.assertRegex(res.out.splitlines()[-1], r"^3 passed, 0 failed \(", res)

    def test_a_worker_that_dies_fails_its_scenario_and_the_rest_still_run(self):
        tmpdir = self.path("tmpdir")
        os.makedirs(tmpdir)
        self.write("w/spin.lua", SPIN)
        self.write("w/check.lua", CHECK)
        self.write("w/a-spin.scenario.yaml", """
            runbook: spin
            expect: { outcome: success }
            """)
        for name in ("b-check", "c-check"):
            self.write("w/%s.scenario.yaml" % name, CHECK_EXPECT)
        p = self.spawn("test", "w", "-j", "1", env={"TMPDIR": tmpdir})
        # the spinning scenario's scratch directory has its mark: the worker
        # is in the endless step
        self.wait_for(lambda: glob.glob(os.path.join(tmpdir, "runbook-test.*", "scratch-*",
                                                     "spinning")),
                      what="the spinning step", proc=p)
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            workers = [int(x) for x in f.read().split()]
        self.assertEqual(len(workers), 1, "one worker with -j 1: %r" % workers)
        os.kill(workers[0], signal.SIGKILL)
        p.wait(timeout=60)
        res = self.spawned_output(p)
        self.assertExit(res, 1)
        lines = res.out.splitlines()
        i = lines.index("✗ w/a-spin.scenario.yaml (0 ms) error")
        self.assertEqual(lines[i + 1], "    the scenario runner crashed (status 9)", res)
        self.assertTrue(any(l.startswith("✓ w/b-check.scenario.yaml") for l in lines), res)
        self.assertTrue(any(l.startswith("✓ w/c-check.scenario.yaml") for l in lines), res)
        self.assertRegex(lines[-1], r"^2 passed, 0 failed, 1 error \(", res)
        # nothing is left in TMPDIR: the killed worker's scratch directory
        # and verdict file are the runner's, and it removes them
        self.assertEqual(os.listdir(tmpdir), [], "the runner's temporary files were left behind")

    def test_more_jobs_than_scenarios_and_one_job_judge_alike(self):
        self.write("w/check.lua", CHECK)
        for name in ("a", "b", "c", "d", "e"):
            self.write("w/%s.scenario.yaml" % name, CHECK_EXPECT)
        self.write("w/f-wrong.scenario.yaml", CHECK_EXPECT.replace('meta: "nil"', 'meta: "x"'))
        one = self.run_test("w", "-j", "1")
        many = self.run_test("w", "-j", "16")
        self.assertExit(one, 1)
        self.assertExit(many, 1)
        strip = lambda r: [l.split(" (")[0] for l in r.out.splitlines()[:-1]]
        self.assertEqual(strip(one), strip(many))
        self.assertIn("✗ w/f-wrong.scenario.yaml", strip(one))
        self.assertRegex(one.out.splitlines()[-1], r"^5 passed, 1 failed \(")

    def test_a_scenario_stuck_in_c_is_ended_and_the_rest_still_run(self):
        self.write("w/stuck.lua", STUCK_IN_C)
        self.write("w/check.lua", CHECK)
        self.write("w/a-stuck.scenario.yaml", "runbook: stuck\n")
        for name in ("b-check", "c-check"):
            self.write("w/%s.scenario.yaml" % name, CHECK_EXPECT)
        res = self.run_test("w", "-j", "1", "--scenario-timeout", "1s",
                            "--junit", self.path("j.xml"), timeout=120)
        self.assertExit(res, 1)
        self.assertIn("✗ w/a-stuck.scenario.yaml (0 ms) error", res.out)
        self.assertIn("stuck where the time limit could not stop it", res.out)
        self.assertIn("2 passed, 0 failed, 1 error", res.out)
        with open(self.path("j.xml")) as f:
            self.assertIn('errors="1"', f.read())

    def test_files_a_scenario_leaves_are_gone_for_the_next(self):
        # a worker's scenarios share its scratch directory, one at a time:
        # it is emptied between them
        self.write("w/leave.lua", """
            runbook { name = "workers/leave" }
            step("leave", function()
              fs.write("/left/behind.txt", "x")
              state.seen = fs.exists("/etc/seeded")
            end)
            """)
        self.write("w/look.lua", """
            runbook { name = "workers/look" }
            step("look", function()
              state.left = fs.exists("/left/behind.txt")
              state.seeded = fs.exists("/etc/seeded")
            end)
            """)
        self.write("w/a-leave.scenario.yaml", """
            runbook: leave
            fs: { /etc/seeded: "only mine" }
            expect: { state: { seen: true } }
            """)
        self.write("w/b-look.scenario.yaml", """
            runbook: look
            expect: { state: { left: false, seeded: false } }
            """)
        res = self.run_test("w", "-j", "1")
        self.assertExit(res, 0)
        self.assertIn("2 passed, 0 failed", res.out)


if __name__ == "__main__":
    unittest.main()
