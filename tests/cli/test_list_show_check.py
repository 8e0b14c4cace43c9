"""`runbook list`, `show` and `check` (SPEC §2, §7): they read metadata and
step names without running a single primitive, even when the file calls
primitives at its top level; `check` reports each problem as file:line."""
import json
import os
import re
import unittest

from rbtest import RunbookTestCase, lua_str


class Library(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.marker = self.path("marker-top-level")
        self.written = self.path("written-top-level")
        self.lib = self.path("library")
        self.write(os.path.join(self.lib, "ops", "restart.lua"), """
            runbook {
              name = "ops/restart",
              title = "Restart the API",
              description = "Restarts it.",
              tags = { "api", "P2" },
              params = {
                replicas = { type = "number", default = 3, help = "how many" },
                token = { secret = true, help = "API token" },
              },
            }
            -- top-level primitives: list/show/check must not run them
            exec{"touch", %s}
            fs.write(%s, "x")
            step("Drain traffic", { description = "Take it out of the pool." }, function() end)
            step("Restart pods", { undo = function() end }, function() end)
            step("Verify health", { when = function() return true end }, function() end)
            """ % (lua_str(self.marker), lua_str(self.written)))
        self.write(os.path.join(self.lib, "db", "backup.lua"), """
            runbook { name = "db/backup", title = "Back up the database", tags = { "db" } }
            step("Dump", function() end)
            """)
        self.env["RUNBOOK_PATH"] = self.lib

    def assertUntouched(self):
        self.assertFalse(os.path.exists(self.marker), "a top-level exec ran while listing")
        self.assertFalse(os.path.exists(self.written), "a top-level fs.write ran while listing")

    def test_list_runs_nothing(self):
        res = self.rb("list")
        self.assertUntouched()
        self.assertIn("db/backup", res.out)

    def test_list(self):
        res = self.rb("list")
        self.assertExit(res, 0)
        self.assertUntouched()
        self.assertRegex(res.out, r"ops/restart\s+Restart the API\s+api, P2")
        self.assertRegex(res.out, r"db/backup\s+Back up the database\s+db")

    def test_list_tag(self):
        res = self.rb("list", "--tag", "db")
        self.assertExit(res, 0)
        self.assertIn("db/backup", res.out)
        self.assertNotIn("ops/restart", res.out)
        res = self.rb("list", "--tag", "P2")
        self.assertExit(res, 0)
        self.assertIn("ops/restart", res.out)
        self.assertNotIn("db/backup", res.out)
        self.assertUntouched()

    def test_list_json(self):
        res = self.rb("list", "--json")
        self.assertExit(res, 0)
        rows = {r["name"]: r for r in (json.loads(l) for l in res.out.splitlines() if l.strip())}
        self.assertEqual(set(rows), {"ops/restart", "db/backup"})
        self.assertEqual(rows["ops/restart"]["tags"], ["api", "P2"])
        self.assertEqual(rows["ops/restart"]["steps"], 3)
        self.assertEqual(rows["db/backup"]["title"], "Back up the database")
        self.assertUntouched()

    def test_list_markdown(self):
        self.write(os.path.join(self.lib, "ops", "drain.lua"), """
            runbook { name = "ops/drain", title = "Drain | fail over", severity = "P1",
                      schedule = "on demand", source = "004_c5e4c638679021cc.txt › Gateway",
                      mutates = { "drains node A", "moves traffic to B" } }
            step("Drain", function() end)
            """)
        self.write(os.path.join(self.lib, "ops", "look.lua"), """
            runbook { name = "ops/look", title = "Look", mutates = {} }
            step("Look", function() end)
            """)
        res = self.rb("list", "--markdown", self.lib)
        self.assertExit(res, 0)
        self.assertUntouched()
        lines = res.out.splitlines()
        self.assertEqual(lines[0], "| Runbook | Title | Reference section | Severity | Mutates |")
        self.assertEqual(lines[1], "|---|---|---|---|---|")
        rows = {l.split("](")[0][3:]: l for l in lines[2:]}
        self.assertEqual(list(rows), ["db/backup", "ops/drain", "ops/look", "ops/restart"])
        self.assertEqual(rows["ops/drain"],
                         "| [ops/drain](ops/drain.lua) | Drain \\| fail over | "
                         "004_c5e4c638679021cc.txt › Gateway | P1, on demand | "
                         "drains node A; moves traffic to B |")
        self.assertIn("| nothing (reads only) |", rows["ops/look"])
        self.assertIn("| — | — | not declared |", rows["db/backup"])
        res = self.rb("list", "--markdown", "--json", self.lib)
        self.assertExit(res, 2)
        self.assertIn("exclusive", res.err)

    def test_mutates_must_be_strings(self):
        f = self.write("bad.lua", """
            runbook { name = "t/bad", mutates = { "x", 3 } }
            step("s", function() end)
            """)
        res = self.rb("run", f, "--no-audit")
        self.assertExit(res, 2)
        self.assertIn("bad.lua:1: runbook{}: 'mutates' must be strings (item 2 is a number)",
                      res.err)

    def test_show(self):
        res = self.rb("show", "ops/restart")
        self.assertExit(res, 0)
        self.assertUntouched()
        out = res.out
        self.assertIn("Restart the API", out)
        for s in ("Drain traffic", "Restart pods", "Verify health"):
            self.assertIn(s, out)
        self.assertLess(out.index("Drain traffic"), out.index("Restart pods"))
        self.assertLess(out.index("Restart pods"), out.index("Verify health"))
        self.assertRegex(out, r"replicas.*number.*3")
        self.assertRegex(out, r"token.*secret")
        self.assertIn("Take it out of the pool.", out)

    def test_show_json(self):
        res = self.rb("show", "ops/restart", "--json")
        self.assertExit(res, 0)
        self.assertUntouched()
        d = json.loads(res.out)
        self.assertEqual([s["name"] for s in d["steps"]],
                         ["Drain traffic", "Restart pods", "Verify health"])
        self.assertEqual(d["meta"]["name"], "ops/restart")
        self.assertIn("replicas", d["meta"]["params"])
        self.assertTrue(d["steps"][1]["undo"])
        self.assertTrue(d["steps"][2]["conditional"])

    def test_runbooks_dir_in_cwd(self):
        cwd = self.path("work")
        self.write(os.path.join(cwd, "runbooks", "local", "thing.lua"), """
            runbook { name = "local/thing", title = "A local thing", tags = { "here" } }
            step("Only step", function() end)
            exec{"touch", %s}
            """ % lua_str(self.marker))
        env = {"RUNBOOK_PATH": ""}
        res = self.rb("list", "--tag", "here", cwd=cwd, env=env)
        self.assertExit(res, 0)
        self.assertIn("local/thing", res.out)
        self.assertNotIn("ops/restart", res.out)
        res = self.rb("show", "local/thing", cwd=cwd, env=env)
        self.assertExit(res, 0)
        self.assertIn("Only step", res.out)
        # and `run NAME` finds it there too
        res = self.rb("run", "local/thing", "--dry-run", "--audit", self.audit, cwd=cwd, env=env)
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.marker))

    def test_show_unknown(self):
        res = self.rb("show", "no/such")
        self.assertExit(res, 2)
        self.assertIn("no/such", res.err)

    def test_check_does_not_run_top_level(self):
        self.rb("check", os.path.join(self.lib, "ops", "restart.lua"))
        self.assertUntouched()


CLEAN = """
runbook { name = "t/clean", params = { n = { type = "number", default = 2 } } }
step("Fine", function()
  local r = exec{"echo", "hi"}
  state.out = r.stdout
  log.info("n=%d", params.n)
end)
"""

# name, source, (line, pattern)
BAD = [
    ("syntax", 'runbook { name = "t/s" }\nstep("x", function()\n  if then\nend)\n', 3, r""),
    ("undefined global", 'runbook { name = "t/g" }\nstep("x", function()\n  htp.get("http://127.0.0.1:9/")\nend)\n',
     3, r"htp"),
    ("unknown primitive field", 'runbook { name = "t/f" }\nstep("x", function()\n  local s = fs.raed("/etc/hostname")\nend)\n',
     3, r"raed"),
    ("bad param type", 'runbook { name = "t/p",\n  params = { n = { type = "integer" } } }\n', 1, r"integer"),
    ("bad param default", 'runbook { name = "t/d",\n  params = { n = { type = "number", default = "many" } } }\n',
     1, r"n"),
    ("unknown runbook field", 'runbook { name = "t/u", owner = "x", tittle = "y" }\n', 1, r"tittle"),
    ("unknown step option", 'runbook { name = "t/o" }\n\nstep("x", { tiemout = 5 }, function() end)\n', 3,
     r"tiemout"),
]


class Check(RunbookTestCase):
    def test_clean_file(self):
        p = self.write("clean.lua", CLEAN)
        res = self.rb("check", p)
        self.assertExit(res, 0)

    def test_each_bad_file(self):
        for name, src, line, pat in BAD:
            with self.subTest(name):
                fname = "bad_%s.lua" % re.sub(r"\W", "_", name)
                p = self.write(fname, src, dedent=False)
                res = self.rb("check", p)
                self.assertExit(res, 1)
                m = re.search(re.escape(fname) + r":(\d+)(:\d+)?:(.*)$", res.out + res.err, re.M)
                self.assertTrue(m, res)
                self.assertEqual(int(m.group(1)), line, res)
                if pat:
                    self.assertRegex(m.group(3), pat)

    def test_directory(self):
        d = self.path("lib2")
        self.write(os.path.join(d, "ok.lua"), CLEAN)
        self.write(os.path.join(d, "sub", "bad.lua"), BAD[1][1], dedent=False)
        res = self.rb("check", d)
        self.assertExit(res, 1)
        self.assertIn("bad.lua:3", res.out + res.err)
        self.assertNotIn("ok.lua:", res.out + res.err)

    def test_json(self):
        p = self.write("g.lua", BAD[1][1], dedent=False)
        res = self.rb("check", "--json", p)
        self.assertExit(res, 1)
        probs = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertTrue(any(x["line"] == 3 and "htp" in x["message"] for x in probs), probs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
