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
        self.wait_for(lambda: glob.glob(os.path.join(tmpdir, "runbook-scenario.*", "spinning")),
                      what="the spinning step", proc=p)
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            workers = [int(x) for x in f.read().split()]
        self.assertEqual(len(workers), 1, "one worker with -j 1: %r" % workers)
        os.kill(workers[0], signal.SIGKILL)
        p.wait(timeout=60)
        res = self.spawned_output(p)
        self.assertExit(res, 1)
        lines = res.out.splitlines()
        i = lines.index("✗ w/a-spin.scenario.yaml (0 ms)")
        self.assertEqual(lines[i + 1], "    the scenario runner crashed (status 9)", res)
        self.assertTrue(any(l.startswith("✓ w/b-check.scenario.yaml") for l in lines), res)
        self.assertTrue(any(l.startswith("✓ w/c-check.scenario.yaml") for l in lines), res)
        self.assertRegex(lines[-1], r"^2 passed, 1 failed \(", res)
        # nothing of the runner's own is left in TMPDIR: only the killed
        # scenario's scratch directory, as a killed process would leave it
        self.assertEqual([n for n in os.listdir(tmpdir) if not n.startswith("runbook-scenario.")],
                         [], "the runner's temporary files were left behind")

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


if __name__ == "__main__":
    unittest.main()
