"""Strict calls (issue 16, item 2), the parts that hold for every function:
every function a runbook can reach declares its signature (`runbook
reference --missing` finds none without), docs/reference.md is exactly what
the engine checks, `runbook check` finds unknown option keys in literal
tables without running anything, and a library's own Lua module declares
its functions the same way and gets the same errors.  The per-primitive
attacks (nothing reached the server, the file is unchanged) are in
test_strict_calls_net.py, test_strict_calls_kube_db.py and
test_strict_calls_stdlib.py."""
import hashlib
import json
import os
import unittest

from rbtest import RunbookTestCase, lua_str

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EveryFunctionDeclared(RunbookTestCase):
    def test_nothing_reachable_is_undeclared(self):
        res = self.rb("reference", "--missing")
        self.assertEqual(res.out, "", "functions without a signature:\n" + res.out)
        self.assertEqual(res.code, 0, res.all)

    def test_reference_page_is_the_engines(self):
        res = self.rb("reference")
        self.assertEqual(res.code, 0, res.all)
        with open(os.path.join(SRC, "docs", "reference.md"), encoding="utf-8") as f:
            self.assertEqual(f.read(), res.out,
                             "docs/reference.md is stale: runbook reference > docs/reference.md")

    def test_reference_json_agrees_with_the_page(self):
        page = self.rb("reference").out
        rows = [json.loads(l) for l in self.rb("reference", "--json").out.splitlines()]
        self.assertGreater(len(rows), 100)
        for r in rows:
            self.assertIn("`%s`" % r["usage"], page)
            for k in r["options"].split():
                self.assertIn("`%s`" % k, page)
        names = {r["name"] for r in rows}
        for want in ("exec", "http.get", "kubectl.logs", "prometheus.query_range", "wait_until",
                     "time.parse", "db:query", "alertmanager.silence"):
            self.assertIn(want, names)

    def test_bad_flag(self):
        res = self.rb("reference", "--mising")
        self.assertEqual(res.code, 2)
        self.assertIn("reference: unknown option '--mising' (did you mean '--missing'?)", res.err)


class StaticCheck(RunbookTestCase):
    BODY = """\
runbook { name = "t/static" }
local prom = require "prometheus"
local http_alias = http
step("s", function()
  exec({ "true" }, { chekc = false })
  http.get("http://127.0.0.1:1/", { timout = 1, headers = {} })
  prom.query_range("http://127.0.0.1:1", "up", { stpe = 30 })
  exec{ "df", "-h" }
  local t = { timout = 1 }
  http.get("http://127.0.0.1:1/", t)
  local fs = { write = function(a, b, c) end }
  fs.write("x", "y", { mdoe = "0600" })
  kubectl.get("pods", { namespace = "x", selecter = "app=y" })
  wait_until(function() return true end, { timout = 5 })
end)
"""

    def test_unknown_keys_found_without_running(self):
        marker = self.path("never")
        f = self.write("static.lua", self.BODY.replace('"-h"', '"-h", %s' % lua_str(marker)),
                       dedent=False)
        before = hashlib.sha256(open(f, "rb").read()).hexdigest()
        res = self.rb("check", f)
        self.assertEqual(res.code, 1, res.all)
        lines = [l for l in res.out.splitlines() if "unknown option" in l]
        src = open(f).read().splitlines()

        def at(line, key):  # FILE:LINE:COL of the key in the source
            return "%s:%d:%d" % (f, line, src[line - 1].index(key) + 1)
        self.assertEqual(lines, [
            at(5, "chekc") + ": error: unknown option 'chekc' for exec (did you mean 'check'?)",
            at(6, "timout") + ": error: unknown option 'timout' for http.get "
                              "(did you mean 'timeout'?)",
            at(7, "stpe") + ": error: unknown option 'stpe' for prometheus.query_range "
                            "(did you mean 'step'?)",
            at(13, "selecter") + ": error: unknown option 'selecter' for kubectl.get "
                                 "(did you mean 'selector'?)",
            at(14, "timout") + ": error: unknown option 'timout' for wait_until "
                               "(did you mean 'timeout'?)",
        ])
        # the local fs shadows the primitive: not reported; a table in a
        # variable is left to run time
        self.assertNotIn("mdoe", res.out)
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(before, hashlib.sha256(open(f, "rb").read()).hexdigest())

    def test_json_output_names_the_code(self):
        f = self.write("static.lua", self.BODY, dedent=False)
        res = self.rb("check", "--json", f)
        found = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        opts = [p for p in found if p["code"] == "option"]
        self.assertEqual(len(opts), 5, res.out)
        self.assertTrue(all(p["severity"] == "error" for p in opts))

    def test_library_is_clean(self):
        res = self.rb("check", os.path.join(SRC, "runbooks"), os.path.join(SRC, "examples"))
        self.assertNotIn("unknown option", res.out)


class LibraryModules(RunbookTestCase):
    """A team's lib/ module declares its own functions with require
    "signature" and gets the engine's checks."""

    def setUp(self):
        super().setUp()
        self.lib = self.path("library")
        self.write(os.path.join(self.lib, "runbook.yaml"), "audit: %s\n" % self.audit)
        self.write(os.path.join(self.lib, "runbooks", "lib", "calendar.lua"), """
            local signature = require "signature"
            local M = {}
            M.restart = signature.wrap("calendar.restart", "service:str opts?:opts",
                                       "timeout wait", function(service, opts)
              fs.write(%s, service)
              return true
            end)
            return M
        """ % lua_str(self.path("restarted")))

    def run_lib(self, call, *flags):
        f = self.write(os.path.join(self.lib, "runbooks", "t.lua"), """
            runbook { name = "t" }
            local calendar = require "calendar"
            step("restart", function()
              %s
            end)
        """ % call)
        return self.rb("run", f, "--audit", self.audit, *flags), f

    def test_misspelled_option_raises_at_the_runbooks_line(self):
        for flags in ((), ("--dry-run",)):
            res, f = self.run_lib('calendar.restart("api", { wiat = true })', *flags)
            self.assertEqual(res.code, 1, res.all)
            self.assertIn("t.lua:4: unknown option 'wiat' for calendar.restart "
                          "(did you mean 'wait'?)", res.all)
            self.assertFalse(os.path.exists(self.path("restarted")))

    def test_misplaced_argument(self):
        res, f = self.run_lib('calendar.restart({ timeout = 5 })')
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("calendar.restart: argument 1 (service) must be a string, got table; "
                      "usage: calendar.restart(service [, opts])", res.all)
        self.assertFalse(os.path.exists(self.path("restarted")))

    def test_check_finds_the_misspelling_without_running(self):
        f = self.write(os.path.join(self.lib, "runbooks", "t.lua"), """
            runbook { name = "t" }
            local calendar = require "calendar"
            step("restart", function()
              calendar.restart("api", { wiat = true })
            end)
        """)
        res = self.rb("check", f)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn(f + ":4:29: error: unknown option 'wiat' for calendar.restart "
                      "(did you mean 'wait'?)", res.out)
        self.assertFalse(os.path.exists(self.path("restarted")))

    def test_good_call_runs(self):
        res, f = self.run_lib('calendar.restart("api", { timeout = 5 })')
        self.assertEqual(res.code, 0, res.all)
        self.assertEqual(self.read(self.path("restarted")), "api")


if __name__ == "__main__":
    unittest.main()
