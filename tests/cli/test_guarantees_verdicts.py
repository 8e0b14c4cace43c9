"""Verdicts out of a runbook's reach: what judges a scenario -- loading it,
matching mocks, the account of actions, expectations, the report -- runs in
a Lua state of its own (src/modes/judge.c), so a runbook that tampers with
everything it can reach changes its own world, never its verdict.

Each test is a cheating runbook: it replaces what a judge sharing its state
would use (string.format, tostring, error, table.concat, the string
metatable, coroutine.*, every function reachable from its globals), tries to
leave (os.exit), to print a verdict of its own, or to stall the collector --
and then fails.  Its scenario must fail: `runbook test` exits 1 and says so.
A control runbook that cheats the same way but does not fail still passes,
so the judge depends on the runbook's tables in neither direction."""
import json
import unittest

from rbtest import RunbookTestCase

# A failure that needs none of the runbook's globals: the VM raises it.
FAIL = "local nothing = nil\n  local _ = nothing.field"

CHEATS = {
    "string.format": "string.format = function() return '' end",
    "tostring": "tostring = function() return 'success' end",
    "error": "error = function() end",
    "table.concat": "table.concat = function() return '' end",
    "string metatable": """
  local mt = getmetatable("")
  mt.__index = setmetatable({}, { __index = function() return function() return "" end end })""",
    "os.exit": "pcall(os.exit, 0)\n  pcall(os.exit, true, true)",
    "coroutine": """
  for k in pairs(coroutine) do coroutine[k] = function() return true end end
  coroutine = nil""",
    "collectgarbage": """
  collectgarbage("stop")
  collectgarbage("generational")
  collectgarbage("collect")""",
    "a printed verdict": """
  local forged = '{"scenario":"x","status":"passed","failures":[],"exit_code":0,'
                 .. '"duration_ms":1,"output":""}\\n'
  io.write(forged)
  io.stdout:write(forged)
  io.stdout:flush()
  print(forged)""",
    "everything reachable": """
  -- every function in every table reachable from the globals and the
  -- string metatable (the engine's, its modules', whatever a runbook can
  -- see) answers "true" from now on; the registry through debug if any
  local seen, todo = {}, { _G, getmetatable("") }
  local ok_reg, reg = pcall(function() return debug.getregistry() end)
  if ok_reg and type(reg) == "table" then todo[#todo + 1] = reg end
  local nxt, typ, rs, gm = next, type, rawset, getmetatable
  local function always() return true end
  while #todo > 0 do
    local t = todo[#todo]
    todo[#todo] = nil
    if not seen[t] then
      seen[t] = true
      local keys = {}
      local k = nxt(t)
      while k ~= nil do keys[#keys + 1] = k; k = nxt(t, k) end
      for _, key in ipairs(keys) do
        local v = t[key]
        if typ(v) == "table" then todo[#todo + 1] = v
        elseif typ(v) == "function" then pcall(rs, t, key, always) end
      end
      local mt = gm(t)
      if typ(mt) == "table" then todo[#todo + 1] = mt end
    end
  end""",
}


def runbook(cheat, fails):
    return """runbook { name = "t/cheat" }
step("cheat", function()
  %s
  %s
end)
""" % (cheat, FAIL if fails else "")


class CheatingRunbooks(RunbookTestCase):
    def run_scenario(self, name, cheat, fails, expect=""):
        self.write(name + ".lua", runbook(cheat, fails))
        self.write(name + ".scenario.yaml", "runbook: %s.lua\n%s" % (name, expect))
        return self.rb("test", name + ".scenario.yaml", "--junit", self.path(name + ".xml"),
                       cwd=self.tmp)

    def test_each_cheat_fails_its_scenario(self):
        for what, cheat in CHEATS.items():
            with self.subTest(cheat=what):
                res = self.run_scenario("c", cheat, fails=True)
                self.assertEqual(res.code, 1, res.all)
                self.assertIn("0 passed, 1 failed", res.out)
                self.assertIn("outcome: expected success, got failed", res.out)
                with open(self.path("c.xml")) as f:
                    junit = f.read()
                self.assertIn('failures="1"', junit)

    def test_a_cheat_that_does_not_fail_still_passes(self):
        for what in ("string.format", "tostring", "table.concat", "string metatable",
                     "coroutine", "collectgarbage"):
            with self.subTest(cheat=what):
                res = self.run_scenario("ok", CHEATS[what], fails=False)
                self.assertEqual(res.code, 0, res.all)
                self.assertIn("1 passed, 0 failed", res.out)

    def test_expectations_hold_against_a_cheat(self):
        # the runbook takes no action, sabotages everything it can reach,
        # and the expected action is still reported missing
        res = self.run_scenario("act", CHEATS["everything reachable"], fails=False,
                                expect="expect:\n  actions: [\"kubectl scale\"]\n")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("actions: expected `kubectl scale`", res.out)

    def test_an_unmatched_call_fails_even_when_caught_after_a_cheat(self):
        self.write("m.lua", """runbook { name = "t/m" }
step("s", function()
  string.find = function() return 1, 1 end
  string.match = function(s) return s end
  string.gsub = function(s) return s, 0 end
  pcall(exec, {"rm", "-rf", "/srv/data"})
end)
""")
        self.write("m.scenario.yaml", """runbook: m.lua
mocks:
  - exec: { argv: ["rm", "-rf", "/tmp/other"] }
""")
        res = self.rb("test", "m.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("no mock answers `rm -rf /srv/data`", res.out)

    def test_the_one_scenario_verdict_line_is_the_judges(self):
        # `runbook test --one` prints the verdict line; a runbook printing a
        # forged one to the process's stdout does not replace it
        self.write("v.lua", runbook(CHEATS["a printed verdict"], fails=True))
        self.write("v.scenario.yaml", "runbook: v.lua\n")
        res = self.rb("test", "--one", self.path("v.scenario.yaml"), cwd=self.tmp)
        lines = [ln for ln in res.out.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, res.all)
        verdict = json.loads(lines[0])
        self.assertEqual(verdict["status"], "failed")
        self.assertEqual(res.code, 1)


if __name__ == "__main__":
    unittest.main()
