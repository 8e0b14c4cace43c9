"""A library works from any working directory (issue 16 item 1): require of
its lib/ modules, run_runbook and runbook names are found from where the
runbook (or the scenario) is -- the nearest ancestor holding runbook.yaml or
a runbooks/ directory -- not from the working directory.  Attacked from /, a
temp dir and a subdirectory of the library, with the real library of this
repository (every scenario must pass) and a small library of our own."""
import os
import re
import sys
import unittest

from rbtest import SRC, RunbookTestCase

sys.dont_write_bytecode = True

SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")


class LibraryRoots(RunbookTestCase):
    def make_library(self):
        lib = self.path("team-lib")
        self.write(os.path.join(lib, "runbook.yaml"), "audit: false\n")
        self.write(os.path.join(lib, "runbooks/lib/common.lua"), """
            return { greeting = function(who) return "hello " .. who end }
            """)
        self.write(os.path.join(lib, "runbooks/svc/child.lua"), """
            runbook{ name = "svc/child", params = { out = { type = "string" } } }
            step("write", function() fs.write(params.out, "child ran") end)
            """)
        self.write(os.path.join(lib, "runbooks/svc/parent.lua"), """
            runbook{ name = "svc/parent", params = { out = { type = "string" } } }
            local common = require("common")
            step("call", function()
              log.info(common.greeting("parent"))
              run_runbook("svc/child", { out = params.out })
            end)
            """)
        return lib

    def test_require_and_run_runbook_from_anywhere(self):
        lib = self.make_library()
        elsewhere = self.path("elsewhere")
        os.makedirs(elsewhere)
        for n, cwd in enumerate(["/", elsewhere, os.path.join(lib, "runbooks", "svc")]):
            out = self.path("out-%d" % n)
            res = self.rb("run", os.path.join(lib, "runbooks/svc/parent.lua"), "--no-audit",
                          "--param", "out=" + out, cwd=cwd)
            self.assertExit(res, 0, "from " + cwd)
            self.assertIn("hello parent", res.out)
            self.assertEqual(self.read(out), "child ran")

    def test_a_name_is_found_from_inside_the_library(self):
        lib = self.make_library()
        out = self.path("out")
        res = self.rb("run", "svc/child", "--no-audit", "--param", "out=" + out,
                      cwd=os.path.join(lib, "runbooks", "svc"))
        self.assertExit(res, 0)
        self.assertEqual(self.read(out), "child ran")

    def test_the_whole_library_passes_from_anywhere(self):
        counts = {}
        for cwd in ("/", self.tmp, os.path.join(SRC, "runbooks", "skafu")):
            res = self.rb("test", os.path.join(SRC, "runbooks"), cwd=cwd, timeout=600)
            self.assertExit(res, 0, "runbook test from " + cwd)
            m = SUMMARY.search(res.out)
            self.assertIsNotNone(m, res.out[-500:])
            self.assertEqual(m.group(2), "0")
            counts[cwd] = int(m.group(1))
        self.assertEqual(len(set(counts.values())), 1, counts)
        self.assertGreater(list(counts.values())[0], 200)


if __name__ == "__main__":
    unittest.main()
