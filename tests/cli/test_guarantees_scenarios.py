"""Guarantees of `runbook test` that hold under attack: a scenario touches
nothing outside its scratch directory, reads only its own files (at most 16
MiB each), and a YAML file whose aliases explode is refused at once.  Each
test attacks the guarantee and asserts it held: the host's files compared by
hash, nothing created, the scenario failed with a clear message."""
import hashlib
import os
import unittest

from rbtest import RunbookTestCase, lua_str


class ScratchConfinement(RunbookTestCase):
    """fs in a scenario works inside its scratch directory, and a path that
    climbs out of it -- from the runbook or from an fs: seed key -- is
    refused and fails the scenario, even when the runbook catches the error:
    the host's files are unchanged (compared by hash), nothing is created."""

    def setUp(self):
        super().setUp()
        self.outside = self.path("outside")
        os.makedirs(self.outside)
        self.victim = self.write("outside/victim.txt", "keep me\n")
        self.before = self.hash(self.victim)
        self.up = "/.." * 40 + self.outside  # climbs past any scratch root

    @staticmethod
    def hash(p):
        with open(p, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def assertUntouched(self):
        self.assertEqual(self.hash(self.victim), self.before)
        self.assertEqual(sorted(os.listdir(self.outside)), ["victim.txt"])

    def test_a_runbook_cannot_write_or_remove_outside(self):
        self.write("esc.lua", """
            runbook { name = "t/escape" }
            step("s", function()
              pcall(fs.write, %s, "pwned")
              pcall(fs.remove, %s)
              pcall(fs.copy, "/etc/seeded", %s)
              pcall(fs.move, "/etc/seeded", %s)
              fs.write("/a/./b/../c.txt", "inside")
              state.inside = fs.read("/a/c.txt")
            end)
            """ % (lua_str(self.up + "/ESCAPED"), lua_str("../../../../../../../../../../" +
                   self.victim), lua_str(self.up + "/COPIED"), lua_str(self.up + "/MOVED")))
        self.write("esc.scenario.yaml", """
            runbook: esc.lua
            fs: { /etc/seeded: "x" }
            expect: { state: { inside: inside } }
            """)
        res = self.rb("test", "esc.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("the path leaves the scenario's scratch directory", res.out)
        self.assertUntouched()

    def test_a_seed_cannot_land_outside(self):
        self.write("seed.lua", 'runbook { name = "t/seed" }\nstep("s", function() end)\n')
        self.write("seed.scenario.yaml", """
            runbook: seed.lua
            fs: { "%s/ESCAPED": "pwned" }
            """ % (self.up,))
        res = self.rb("test", "seed.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("the path leaves the scenario's scratch directory", res.out)
        self.assertUntouched()

    def test_a_mock_reads_only_files_beside_it_and_not_too_large(self):
        self.write("outside/secret.txt", "the host's\n")
        os.makedirs(self.path("sc"))
        with open(self.path("sc", "huge.txt"), "wb") as f:
            f.truncate(16 * 1024 * 1024 + 1)  # sparse: a size, not a cost
        self.write("sc/m.lua", 'runbook { name = "t/m" }\nstep("s", function() exec{"true"} end)\n')
        for name, where, why in [
            ("../outside/secret.txt", "a file of the scenario must lie in its directory", ""),
            (self.path("outside", "secret.txt"), "is named relative to its directory", ""),
            ("huge.txt", "cannot read huge.txt: 16777217 bytes, more than the 16777216", ""),
        ]:
            with self.subTest(name):
                self.write("sc/m.scenario.yaml", """
                    runbook: m.lua
                    mocks:
                      - exec: { argv: ["true"] }
                        respond: { stdout_file: "%s" }
                    """ % name)
                res = self.rb("test", "sc/m.scenario.yaml", cwd=self.tmp)
                self.assertEqual(res.code, 1, res.all)
                self.assertIn(where, res.out)
                self.assertNotIn("the host's", res.all)

    def test_a_billion_laughs_is_refused_at_once(self):
        """Nine levels of ten aliases: a 1 KB file that means a billion nodes.
        It is refused while loading, naming the file, instead of growing
        until the machine runs out of memory (the timeout would fail this)."""
        levels = ['  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        for i in range(1, 9):
            levels.append("  - &a%d [%s]" % (i, ", ".join(["*a%d" % (i - 1)] * 10)))
        self.write("l.lua", 'runbook { name = "t/l" }\nstep("s", function() state.x = 1 end)\n')
        self.write("laughs.scenario.yaml", "runbook: l.lua\ndescription:\n%s\n"
                   "expect: { state: { x: *a8 } }\n" % "\n".join(levels), dedent=False)
        res = self.rb("test", "laughs.scenario.yaml", cwd=self.tmp, timeout=60)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("laughs.scenario.yaml:", res.out)
        self.assertIn("aliases expand to more than 1000000 nodes", res.out)

    def test_paths_inside_still_work(self):
        self.write("ok.lua", """
            runbook { name = "t/inside" }
            step("s", function()
              fs.mkdir("/var/app/../app/logs", { parents = true })
              fs.write("var/app/logs/x.log", "1")
              state.n = #fs.list("/var/app/logs")
            end)
            """)
        self.write("ok.scenario.yaml", "runbook: ok.lua\nexpect: { state: { n: 1 } }\n")
        res = self.rb("test", "ok.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)
        self.assertUntouched()


def landlock_abi():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    v = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION)
    return max(v, 0)


class KernelConfinement(RunbookTestCase):
    """The processes that run scenarios are confined by the kernel
    (Landlock: writes only below the scratch directory, no TCP, no signals
    outside); tests/unit/test_scenario_confine.c attacks that ruleset
    itself.  Here: the runbook of a scenario really runs in such a process,
    seen from inside it (no_new_privs, which confinement sets), for every
    scenario a worker runs."""

    def test_the_runbook_runs_confined_in_a_process_of_its_own(self):
        if landlock_abi() == 0:
            self.skipTest("no Landlock on this kernel")
        self.write("k.lua", """
            runbook { name = "t/k" }
            step("s", function()
              local f = assert(io.open("/proc/self/status", "r"))
              local status = f:read("a")
              f:close()
              state.nnp = status:match("NoNewPrivs:%s*(%d)")
            end)
            """)
        for n in range(2):
            self.write("k%d.scenario.yaml" % n, """
                runbook: k.lua
                expect: { state: { nnp: "1" } }
                """)
        res = self.rb("test", "--jobs", "1", "k0.scenario.yaml", "k1.scenario.yaml",
                      "--junit", self.path("k.xml"), cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)
        self.assertIn("2 passed, 0 failed", res.out)


if __name__ == "__main__":
    unittest.main()
