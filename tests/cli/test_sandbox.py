"""The sandbox (SPEC §9), checked from outside: each escape attempt raises an
error that says "sandbox" / "not available", and the world (files, processes)
is exactly as before.  tests/lua/sandbox.lua covers the same ground from
inside; this one also uses a real compiled chunk and a module under ./lib."""
import os
import re
import shutil
import subprocess
import unittest

from rbtest import RunbookTestCase, lua_str

ATTEMPTS = [
    # name, Lua expression run under pcall
    ("os.execute", 'os.execute("touch " .. M("os_execute"))'),
    ("io.popen", 'io.popen("touch " .. M("io_popen")):close()'),
    ("io.popen-w", 'io.popen("sh -c \'cat > " .. M("io_popen_w") .. "\'", "w"):write("x")'),
    ("os.exit", "os.exit(0)"),
    ("os.remove", "os.remove(VICTIM)"),
    ("os.rename", 'os.rename(VICTIM, VICTIM .. ".moved")'),
    ("io.open-w", 'io.open(M("io_open_w"), "w"):write("x")'),
    ("io.open-a", 'io.open(VICTIM, "a"):write("appended")'),
    ("io.open-r+", 'io.open(VICTIM, "r+"):write("XX")'),
    ("io.output", 'io.output(M("io_output")); io.write("x")'),
    ("package.loadlib", 'package.loadlib(LFS, "luaopen_lfs")'),
    ("string.dump", "string.dump(function() end)"),
    ("load-b", 'load(CHUNK, "=c", "b")'),
    ("dofile", "dofile(VICTIM)"),
    ("loadfile", "loadfile(VICTIM)"),
]


class Sandbox(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.victim = self.write("victim.txt", "precious\n")
        self.marks = self.path("marks")
        os.makedirs(self.marks)
        lfs = "/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so"
        lines = []
        for name, expr in ATTEMPTS:
            lines.append("  attempt(%s, function() %s end)" % (lua_str(name), expr))
        self.rbfile = self.write("escape.lua", """
            runbook { name = "t/escape" }
            local VICTIM, LFS = %s, %s
            local function M(n) return %s .. "/" .. n end
            local CHUNK = "\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n\\4\\8\\8"
            local function attempt(name, f)
              local ok, err = pcall(f)
              if ok then print("ALLOWED " .. name)
              else print("REFUSED " .. name .. ": " .. tostring(err):gsub("\\n", " ")) end
            end
            step("Escape", function()
            %s
            end)
            """ % (lua_str(self.victim), lua_str(lfs), lua_str(self.marks), "\n".join(lines)))

    def test_every_escape_is_refused_and_nothing_changes(self):
        res = self.run_rb(self.rbfile)
        self.assertExit(res, 0)
        outcomes = dict(re.findall(r"^(?:ALLOWED|REFUSED) ([^\s:]+)(.*)$", res.out, re.M))
        for name, _ in ATTEMPTS:
            self.assertIn(name, outcomes, "attempt %s did not report (process ended?)\n%r"
                          % (name, res))
            line = re.search(r"^(ALLOWED|REFUSED) %s(: .*)?$" % re.escape(name), res.out, re.M)
            self.assertEqual(line.group(1), "REFUSED", "%s was allowed" % name)
            self.assertRegex(line.group(2) or "", r"sandbox|not available",
                             "%s: unclear refusal" % name)
        self.assertEqual(os.listdir(self.marks), [], "an escape created files")
        self.assertEqual(self.read(self.victim), "precious\n")
        self.assertFalse(os.path.exists(self.victim + ".moved"))
        # no action was recorded for any of them: they never reached the world
        self.assertEqual(self.actions(), [])

    def test_real_binary_chunk_is_refused(self):
        luac = shutil.which("luac5.4") or shutil.which("luac")
        if not luac:
            self.skipTest("luac not installed")
        src = self.write("payload.lua", 'return "escaped"\n')
        out = self.path("payload.luac")
        subprocess.run([luac, "-o", out, src], check=True)
        os.makedirs(self.path("lib"))
        shutil.copy(out, self.path("lib", "evilmod.lua"))
        rb = self.write("chunk.lua", """
            runbook { name = "t/chunk" }
            step("Load", function()
              local f = assert(io.open(%s, "rb"))
              local bytes = f:read("a")
              f:close()
              check(bytes:sub(1, 4) == "\\27Lua", "not a binary chunk")
              local fn, err = load(bytes)
              check(fn == nil, "load accepted a binary chunk")
              print("LOAD: " .. tostring(err))
              local ok, e2 = pcall(load, bytes, "=x", "b")
              check(not ok, "load mode b accepted a binary chunk")
              print("LOADB: " .. tostring(e2))
              local ok3, e3 = pcall(require, "evilmod")
              check(not ok3, "require loaded a binary chunk from lib/")
              print("REQUIRE: " .. tostring(e3):gsub("\\n", " "))
            end)
            """ % lua_str(out))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"LOAD: .*binary")
        self.assertRegex(res.out, r"LOADB: .*sandbox")
        self.assertRegex(res.out, r"REQUIRE: .*binary")
        self.assertNotIn("escaped", re.sub(r"(LOAD|LOADB|REQUIRE): .*", "", res.out))

    def test_lib_module_gets_the_same_sandbox(self):
        marker = self.path("from-module")
        self.write("lib/helper.lua", """
            local M = {}
            function M.escape(p) return os.execute("touch " .. p) end
            function M.remove(p) return os.remove(p) end
            return M
            """)
        rb = self.write("mod.lua", """
            runbook { name = "t/mod" }
            local helper = require("helper")
            step("Use module", function()
              local ok, err = pcall(helper.escape, %s)
              check(not ok, "a module ran os.execute")
              print("MOD: " .. tostring(err))
              ok = pcall(helper.remove, %s)
              check(not ok, "a module ran os.remove")
            end)
            """ % (lua_str(marker), lua_str(self.victim)))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"MOD: .*(sandbox|not available)")
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.read(self.victim), "precious\n")

    def test_c_module_does_not_load(self):
        rb = self.write("cmod.lua", """
            runbook { name = "t/cmod" }
            step("C modules", function()
              package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so"
              for _, name in ipairs{ "lfs", "socket.core", "cjson" } do
                local ok, err = pcall(require, name)
                check(not ok, "require %s loaded a C module", name)
                print("CMOD " .. name .. ": " .. tostring(err):gsub("\\n", " "))
              end
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertEqual(len(re.findall(r"^CMOD ", res.out, re.M)), 3, res)

    def test_sandbox_lua_in_tree(self):
        """tests/lua/sandbox.lua, run the way ctest runs it."""
        d = os.path.join(os.environ.get("RUNBOOK_SRC", os.path.join(
            os.path.dirname(__file__), "..", "..")), "tests", "lua")
        res = self.rb("run", "sandbox.lua", "--no-audit", "--yes", cwd=d)
        self.assertExit(res, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
