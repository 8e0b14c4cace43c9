"""Runbook features (SPEC §2, §4, §7): params precedence and types, state
with --resume, --from, --rollback, run_runbook, parallel, wait_until and
--output json."""
import json
import os
import re
import unittest

from rbtest import RunbookTestCase, kill_group, lua_str

PARAMS_RB = """
runbook {
  name = "t/params",
  params = {
    a = { default = "default" },
    b = { default = "default" },
    c = { default = "default" },
    d = { default = "default" },
    n = { type = "number", default = 1 },
    flag = { type = "boolean", default = true },
    hosts = { type = "list", default = { "h0" } },
  },
}
step("Show", function()
  print(string.format("P a=%s b=%s c=%s d=%s", params.a, params.b, params.c, params.d))
  print(string.format("N %s %s", math.type(params.n) or type(params.n), tostring(params.n)))
  print(string.format("FLAG %s %s", type(params.flag), tostring(params.flag)))
  check(type(params.hosts) == "table", "hosts is a %s", type(params.hosts))
  print("HOSTS " .. #params.hosts .. " " .. table.concat(params.hosts, "|"))
end)
"""


class Params(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.rbfile = self.write("params.lua", PARAMS_RB)

    def values(self, res):
        self.assertExit(res, 0)
        m = re.search(r"^P (.*)$", res.out, re.M)
        return dict(kv.split("=", 1) for kv in m.group(1).split())

    def test_precedence(self):
        self.write("runbook.yaml", """
            params:
              a: from-yaml
              b: from-yaml
              c: from-yaml
              undeclared: ignored
            environments:
              staging:
                params:
                  a: from-env
                  b: from-env
            """)
        v = self.values(self.run_rb(self.rbfile, "--env", "staging", "--param", "a=from-cli"))
        self.assertEqual(v, {"a": "from-cli", "b": "from-env", "c": "from-yaml", "d": "default"})
        v = self.values(self.run_rb(self.rbfile))
        self.assertEqual(v, {"a": "from-yaml", "b": "from-yaml", "c": "from-yaml", "d": "default"})
        # and the run record carries the resolved params
        self.assertEqual(self.run_record()["params"]["c"], "from-yaml")

    def test_audit_path_precedence(self):
        # SPEC §7: the --env environment's keys count as command line, so its
        # audit: beats RUNBOOK_AUDIT, which beats runbook.yaml's top level
        self.write("runbook.yaml", """
            audit: %s
            environments:
              prod:
                audit: %s
            """ % (self.path("top.db"), self.path("prod.db")))
        envvar = {"RUNBOOK_AUDIT": self.path("envvar.db")}
        self.assertExit(self.run_rb(self.rbfile, "--env", "prod", audit=False, env=envvar), 0)
        self.assertTrue(os.path.exists(self.path("prod.db")))
        self.assertFalse(os.path.exists(self.path("envvar.db")))
        self.assertExit(self.run_rb(self.rbfile, audit=False, env=envvar), 0)
        self.assertTrue(os.path.exists(self.path("envvar.db")))
        self.assertFalse(os.path.exists(self.path("top.db")))
        self.assertExit(self.run_rb(self.rbfile, audit=False), 0)
        self.assertTrue(os.path.exists(self.path("top.db")))
        self.assertExit(self.run_rb(self.rbfile, "--env", "prod", "--no-audit", audit=False), 0)
        self.assertEqual(len(self.run_ids(self.path("prod.db"))), 1)

    def test_config_flag_replaces_runbook_yaml(self):
        self.write("runbook.yaml", "params:\n  a: from-cwd-yaml\n")
        other = self.write("other.yaml", "params:\n  b: from-other\n")
        v = self.values(self.run_rb(self.rbfile, "--config", other))
        self.assertEqual(v, {"a": "default", "b": "from-other", "c": "default", "d": "default"})

    def test_types(self):
        res = self.run_rb(self.rbfile, "--param", "n=0.25", "--param", "flag=false",
                          "--param", "hosts=a,b,c")
        self.assertExit(res, 0)
        self.assertIn("N float 0.25", res.out)
        self.assertIn("FLAG boolean false", res.out)
        self.assertIn("HOSTS 3 a|b|c", res.out)
        res = self.run_rb(self.rbfile, "--param", "n=10", "--param", "flag=true")
        self.assertIn("N integer 10", res.out)
        self.assertIn("FLAG boolean true", res.out)
        self.assertIn("HOSTS 1 h0", res.out)
        params = self.run_record()["params"]
        self.assertEqual(params["n"], 10)
        self.assertIs(params["flag"], True)
        self.assertEqual(params["hosts"], ["h0"])

    def test_repeated_list_param(self):
        res = self.run_rb(self.rbfile, "--param", "hosts=x", "--param", "hosts=y,z")
        self.assertExit(res, 0)
        self.assertIn("HOSTS 3 x|y|z", res.out)

    def test_typed_values_from_yaml(self):
        self.write("runbook.yaml", "params:\n  n: 7\n  flag: false\n  hosts: [p, q]\n")
        res = self.run_rb(self.rbfile)
        self.assertExit(res, 0)
        self.assertIn("N integer 7", res.out)
        self.assertIn("FLAG boolean false", res.out)
        self.assertIn("HOSTS 2 p|q", res.out)

    def test_bad_boolean(self):
        res = self.run_rb(self.rbfile, "--param", "flag=maybe")
        self.assertExit(res, 2)
        self.assertIn("flag", res.err)


class StateAndResume(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.counter = self.path("counter")
        self.gate = self.path("gate")
        self.seen = self.path("seen")
        self.rbfile = self.write("resume.lua", """
            runbook { name = "t/resume" }
            step("One", function()
              sh("echo one >> " .. %(counter)s)
              state.a = 41
            end)
            step("Two", function()
              sh("echo two >> " .. %(counter)s)
              state.b = { name = "two", list = { 1, 2 } }
            end)
            step("Three", function()
              local r = exec({"test", "-e", %(gate)s}, { check = false })
              check(r.code == 0, "the gate is closed")
              sh(string.format("echo a=%%s b=%%s l=%%d >> %%s", state.a, state.b.name,
                               #state.b.list, %(seen)s))
            end)
            """ % dict(counter=lua_str(self.counter), gate=lua_str(self.gate),
                       seen=lua_str(self.seen)))

    def test_resume_skips_completed_steps_and_restores_state(self):
        res = self.run_rb(self.rbfile)
        self.assertExit(res, 1)
        self.assertIn("the gate is closed", res.all)
        first = self.last_run_id()
        self.assertEqual(self.lines(self.counter), ["one", "two"])
        final_state = self.run_record(first)["state"]
        self.assertEqual(final_state["a"], 41)
        self.assertEqual(final_state["b"]["name"], "two")

        with open(self.gate, "w"):
            pass
        res = self.run_rb(self.rbfile, "--resume", first)
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.counter), ["one", "two"], "steps 1-2 ran again")
        self.assertEqual(self.lines(self.seen), ["a=41 b=two l=2"])
        second = self.last_run_id()
        self.assertNotEqual(first, second)
        st = self.step_status(second)
        self.assertEqual(st, {"One": "skipped", "Two": "skipped", "Three": "ok"})
        self.assertEqual(self.run_record(second).get("resumed_from"), first)

    def test_resume_after_kill_9(self):
        pidf = self.path("blocker.pid")
        rb = self.write("killed.lua", """
            runbook { name = "t/killed" }
            step("One", function()
              sh("echo one >> " .. %(counter)s)
              state.a = 7
            end)
            step("Block", function()
              local r = exec({"test", "-e", %(gate)s}, { check = false })
              if r.code ~= 0 then
                exec{"sh", "-c", "echo $$ > " .. %(pidf)s .. "; exec sleep 60"}
              end
              sh(string.format("echo a=%%s >> %%s", state.a, %(seen)s))
            end)
            """ % dict(counter=lua_str(self.counter), gate=lua_str(self.gate),
                       seen=lua_str(self.seen), pidf=lua_str(pidf)))
        p = self.spawn("run", rb, "--audit", self.audit)
        pid = int(self.wait_file(pidf, proc=p).strip())
        self.addCleanup(kill_group, pid)
        p.kill()
        p.wait(timeout=30)
        kill_group(pid)
        first = self.last_run_id()
        with open(self.gate, "w"):
            pass
        res = self.run_rb(rb, "--resume", first)
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.counter), ["one"])
        self.assertEqual(self.lines(self.seen), ["a=7"])
        self.assertEqual(self.step_status(), {"One": "skipped", "Block": "ok"})

    def test_resume_by_prefix_without_file(self):
        self.assertExit(self.run_rb(self.rbfile), 1)
        first = self.last_run_id()
        with open(self.gate, "w"):
            pass
        res = self.rb("run", "--resume", first[:-1], "--audit", self.audit)
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.counter), ["one", "two"])
        self.assertEqual(self.lines(self.seen), ["a=41 b=two l=2"])

    def test_resume_of_another_runbook_is_refused(self):
        self.assertExit(self.run_rb(self.rbfile), 1)
        first = self.last_run_id()
        other = self.write("other.lua", 'runbook { name = "t/other" }\nstep("x", function() end)\n')
        res = self.run_rb(other, "--resume", first)
        self.assertExit(res, 2)
        self.assertIn("t/resume", res.err)


class FromAndRollback(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.log = self.path("order.log")
        self.rbfile = self.write("rb.lua", """
            runbook { name = "t/rollback", params = { fail = { type = "boolean", default = true } } }
            local function note(s) sh("echo " .. s .. " >> " .. %(log)s) end
            step("Drain node", { undo = function() note("undo1") end }, function() note("do1") end)
            step("No undo", function() note("do2") end)
            step("Scale down", { undo = function() note("undo3") end }, function() note("do3") end)
            step("Migrate", { undo = function() note("undo4") end }, function()
              note("do4")
              check(not params.fail, "migration failed")
            end)
            step("Finish", { undo = function() note("undo5") end }, function() note("do5") end)
            """ % dict(log=lua_str(self.log)))

    def test_rollback_undoes_completed_steps_in_reverse(self):
        res = self.run_rb(self.rbfile, "--rollback")
        self.assertExit(res, 1)
        self.assertEqual(self.lines(self.log), ["do1", "do2", "do3", "do4", "undo3", "undo1"])
        self.assertEqual(self.run_record()["outcome"], "failed")
        names = [s["name"] for s in self.steps()]
        self.assertTrue(any("undo" in n and "Scale down" in n for n in names), names)

    def test_no_rollback_without_the_flag(self):
        res = self.run_rb(self.rbfile)
        self.assertExit(res, 1)
        self.assertEqual(self.lines(self.log), ["do1", "do2", "do3", "do4"])

    def test_no_rollback_on_success(self):
        res = self.run_rb(self.rbfile, "--rollback", "--param", "fail=false")
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.log), ["do1", "do2", "do3", "do4", "do5"])

    def test_from_index(self):
        res = self.run_rb(self.rbfile, "--from", "3", "--param", "fail=false")
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.log), ["do3", "do4", "do5"])
        st = self.step_status()
        self.assertEqual(st["Drain node"], "skipped")
        self.assertEqual(st["No undo"], "skipped")
        self.assertEqual(st["Scale down"], "ok")

    def test_from_name(self):
        res = self.run_rb(self.rbfile, "--from", "Migrate", "--param", "fail=false")
        self.assertExit(res, 0)
        self.assertEqual(self.lines(self.log), ["do4", "do5"])
        st = self.step_status()
        self.assertEqual([st[n] for n in ("Drain node", "No undo", "Scale down")],
                         ["skipped"] * 3)


class SubRunbook(RunbookTestCase):
    def test_run_runbook(self):
        marker = self.path("child-7")
        child = self.write("child.lua", """
            runbook { name = "t/child", params = { p = { type = "number", default = 0 } } }
            step("Child one", function()
              exec{"touch", %s .. "-" .. (params.p + 6)}
              state.child = "was here"
            end)
            step("Child two", function() exec{"echo", "child", params.p} end)
            """ % lua_str(self.path("child")))
        parent = self.write("parent.lua", """
            runbook { name = "t/parent" }
            step("Before", function() exec{"echo", "parent"} end)
            step("Call child", function()
              local st = run_runbook(%s, { p = 1 })
              check(type(st) == "table" and st.child == "was here", "child state not returned")
            end)
            """ % lua_str(child))
        res = self.run_rb(parent)
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(marker), os.listdir(self.tmp))
        self.assertEqual(len(self.run_ids()), 1, "the sub-runbook got a run of its own")
        acts = self.actions()
        words = [a.get("words") for a in acts]
        self.assertIn("touch %s" % marker, words)
        self.assertIn("echo child 1", words)
        touch = [a for a in acts if a.get("words") == "touch %s" % marker][0]
        self.assertEqual(touch["step"], 2)
        names = " ".join(s["name"] for s in self.steps())
        self.assertIn("Child one", names)
        self.assertIn("Child two", names)

    def test_run_runbook_dry_run(self):
        child = self.write("child.lua", """
            runbook { name = "t/child" }
            step("Child", function() exec{"touch", %s} end)
            """ % lua_str(self.path("child-marker")))
        parent = self.write("parent.lua", """
            runbook { name = "t/parent" }
            step("Call", function() run_runbook(%s, {}) end)
            """ % lua_str(child))
        res = self.run_rb(parent, "--dry-run")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.path("child-marker")))
        self.assertRegex(res.out, r"would: touch \S*child-marker")


class Parallel(RunbookTestCase):
    def test_items_overlap(self):
        d = self.path("times")
        os.makedirs(d)
        rb = self.write("par.lua", """
            runbook { name = "t/par" }
            step("Fan out", function()
              local res = parallel({ 1, 2, 3, 4 }, function(i)
                local dir = %s
                sh(string.format("date +%%%%s.%%%%N > %%s/start-%%d; sleep 1; date +%%%%s.%%%%N > %%s/end-%%d",
                                 dir, i, dir, i))
              end)
              check(#res == 4, "%%d results", #res)
            end)
            """ % lua_str(d))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        starts = [float(self.read(os.path.join(d, "start-%d" % i))) for i in range(1, 5)]
        ends = [float(self.read(os.path.join(d, "end-%d" % i))) for i in range(1, 5)]
        # every item started before any item finished: they ran at the same time
        self.assertLess(max(starts), min(ends), (starts, ends))
        self.assertEqual(len(self.actions(primitive="sh")), 4)

    def test_results_in_input_order(self):
        rb = self.write("order.lua", """
            runbook { name = "t/order" }
            step("Fan out", function()
              -- the first item finishes last
              local res = parallel({ "a", "b", "c" }, function(s)
                sleep(s == "a" and 0.6 or 0.1)
                return s .. "!"
              end)
              print("RESULTS " .. table.concat(res, ","))
              local t = parallel({ 1, 2 }, function(i) return { square = i * i } end)
              check(type(t[2]) == "table" and t[2].square == 4, "table results lost")
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertIn("RESULTS a!,b!,c!", res.out)

    def test_exec_sleeps_run_concurrently(self):
        rb = self.write("par2.lua", """
            runbook { name = "t/par2" }
            step("Sleep four", function()
              parallel({ 1, 2, 3, 4 }, function() exec{"sleep", "0.5"} end)
            end)
            """)
        res = self.run_rb(rb, timeout=60)
        self.assertExit(res, 0)
        acts = self.actions(primitive="exec")
        self.assertEqual(len(acts), 4)
        # sanity bound only: four serial sleeps would take 2 s
        total = self.run_record()["duration_ms"]
        self.assertLess(total, 60000)

    def test_failing_item_fails_the_step(self):
        rb = self.write("par3.lua", """
            runbook { name = "t/par3" }
            step("Fan out", function()
              parallel({ 1, 2, 3 }, function(i) if i == 2 then error("item two broke") end end)
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertIn("item two broke", res.all)


class Modules(RunbookTestCase):
    """SPEC §7: Lua modules by require from each library's lib/."""

    def test_require_from_a_library_lib_dir(self):
        lib = self.path("team-library")
        self.write(os.path.join(lib, "lib", "thresholds.lua"), """
            local M = {}
            function M.over(v, limit) return v > limit end
            return M
            """)
        self.write(os.path.join(lib, "svc", "check.lua"), """
            runbook { name = "svc/check" }
            local thresholds = require "thresholds"
            step("compare", function()
              print("OVER", thresholds.over(0.2, 0.1))
            end)
            """)
        res = self.rb("run", "svc/check", "--no-audit", env={"RUNBOOK_PATH": lib})
        self.assertExit(res, 0)
        self.assertIn("OVER\ttrue", res.out)
        # without the library on the path the module is not found, by name
        rb = self.write("alone.lua", """
            runbook { name = "alone" }
            local thresholds = require "thresholds"
            """)
        res = self.rb("run", rb, "--no-audit")
        self.assertExit(res, 2)
        self.assertIn("module 'thresholds' not found", res.err)


class WaitUntil(RunbookTestCase):
    def test_succeeds_when_the_file_appears(self):
        f = self.path("appears")
        rb = self.write("wait.lua", """
            runbook { name = "t/wait" }
            step("Wait", function()
              sh("(sleep 1; touch " .. %s .. ") >/dev/null 2>&1 &")
              local tries = 0
              wait_until(function()
                tries = tries + 1
                return exec({"test", "-e", %s}, { check = false }).code == 0
              end, { timeout = 30, every = 0.2, what = "the file" })
              state.tries = tries
            end)
            """ % (lua_str(f), lua_str(f)))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(f))
        self.assertGreater(self.run_record()["state"]["tries"], 1)

    def test_times_out_with_its_message(self):
        rb = self.write("never.lua", """
            runbook { name = "t/never" }
            step("Wait", function()
              wait_until(function() return false end, { timeout = 1, every = 0.2, what = "the moon" })
            end)
            """)
        res = self.run_rb(rb)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"the moon not reached")
        self.assertRegex(res.all, r"never\.lua:3:")


EVENTS = {"run_start", "step_start", "action", "log", "step_end", "run_end"}
# a dry-run ends with its plan, after run_end (and --diff adds "diff" events)
DRY_RUN_EVENTS = EVENTS | {"plan"}


class JsonOutput(RunbookTestCase):
    def test_every_line_is_an_event(self):
        rb = self.write("json.lua", """
            runbook { name = "t/json", params = { n = { type = "number", default = 3 } } }
            step("Look", function() log.info("looking %%d", params.n); exec{"echo", "hi"} end)
            step("Change", function() exec{"touch", %s} end)
            step("Skip", { when = false }, function() end)
            """ % lua_str(self.path("changed")))
        res = self.run_rb(rb, "--output", "json", "--dry-run")
        self.assertExit(res, 0)
        events = []
        for line in res.out.splitlines():
            if not line.strip():
                continue
            ev = json.loads(line)
            self.assertIn(ev.get("event"), DRY_RUN_EVENTS, line)
            events.append(ev)
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "run_start")
        self.assertEqual(kinds[-2:], ["run_end", "plan"])
        self.assertEqual([c["words"] for c in events[-1]["changes"]],
                         ["touch " + self.path("changed")])
        events.pop()
        for k in EVENTS:
            self.assertIn(k, kinds)
        start, end = events[0], events[-1]
        for f in ("run_id", "ts", "runbook", "path", "sha256", "mode", "operator", "host",
                  "params", "outcome"):
            self.assertIn(f, start)
            self.assertIn(f, end)
        self.assertEqual(start["outcome"], "running")
        self.assertEqual(end["outcome"], "success")
        self.assertEqual(end["exit_code"], 0)
        self.assertEqual(start["mode"], "dry-run")
        self.assertEqual(start["params"], {"n": 3})
        self.assertEqual({e["run_id"] for e in events}, {self.last_run_id()})
        acts = [e for e in events if e["event"] == "action"]
        for a in acts:
            for f in ("primitive", "verb", "target", "class", "simulated", "status",
                      "duration_ms"):
                self.assertIn(f, a)
        self.assertEqual([(a["target"], a["simulated"]) for a in acts],
                         [("echo", False), ("touch", True)])
        logs = [e for e in events if e["event"] == "log"]
        self.assertIn("looking 3", logs[0]["message"])
        ends = [e for e in events if e["event"] == "step_end"]
        self.assertEqual([(e["name"], e["status"]) for e in ends],
                         [("Look", "ok"), ("Change", "ok"), ("Skip", "skipped")])
        # no human view mixed in
        self.assertNotIn("would:", res.out)
        # the same records reached the audit log
        self.assertEqual(len(self.actions()), 2)

    def test_failure_in_json_mode(self):
        rb = self.write("jf.lua", 'runbook { name = "t/jf" }\nstep("Bad", function() error("nope") end)\n')
        res = self.run_rb(rb, "--output", "json")
        self.assertExit(res, 1)
        events = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertEqual(events[-1]["event"], "run_end")
        self.assertEqual(events[-1]["outcome"], "failed")
        self.assertEqual(events[-1]["exit_code"], 1)
        step = [e for e in events if e["event"] == "step_end"][0]
        self.assertEqual(step["status"], "failed")
        self.assertRegex(step["error"], r"jf\.lua:2:.*nope")


if __name__ == "__main__":
    unittest.main(verbosity=2)
