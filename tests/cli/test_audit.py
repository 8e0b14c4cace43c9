"""The audit log end to end (SPEC §6): durability under kill -9, tamper
evidence (hash chain), concurrent writers, and the export / list / show
interfaces."""
import csv
import io
import json
import os
import re
import signal
import sqlite3
import unittest

from rbtest import RunbookTestCase, kill_group, lua_str

EXPORT_BASE = {"kind", "run_id", "seq", "ts", "hash", "prev_hash"}
RUN_FIELDS = {"runbook", "path", "sha256", "mode", "operator", "host", "params", "outcome"}
STEP_FIELDS = {"index", "name", "status"}
ACTION_FIELDS = {"step", "primitive", "verb", "target", "class", "simulated", "status",
                 "duration_ms"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class KillNine(RunbookTestCase):
    def test_kill_9_leaves_a_consistent_log(self):
        ready = self.path("ready")
        sleeper = self.path("sleeper.pid")
        rb = self.write("long.lua", """
            runbook { name = "t/long" }
            step("Warm up", function()
              for i = 1, 5 do exec{"true"} end
            end)
            step("Sleep", function()
              exec{"touch", %(ready)s}
              exec{"sh", "-c", "echo $$ > " .. %(sleeper)s .. "; exec sleep 30"}
            end)
            """ % dict(ready=lua_str(ready), sleeper=lua_str(sleeper)))
        p = self.spawn("run", rb, "--audit", self.audit)
        pid_text = self.wait_file(sleeper, proc=p)
        self.addCleanup(kill_group, int(pid_text))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        self.assertEqual(p.returncode, -signal.SIGKILL)

        self.assertEqual(self.integrity(), "ok")
        res = self.verify()
        self.assertExit(res, 0)
        run_id = self.last_run_id()
        # everything before the sleep was committed
        acts = self.actions(run_id)
        self.assertGreaterEqual(len([a for a in acts if a.get("target") == "true"]), 5)
        self.assertTrue(any(a.get("target") == "touch" for a in acts), acts)
        self.assertEqual(self.step_status(run_id).get("Warm up"), "ok")
        # the run could not write its end: recorded running, reported interrupted
        self.assertEqual(self.run_record(run_id)["outcome"], "running")
        res = self.rb("audit", "list", "--audit", self.audit, "--json")
        self.assertExit(res, 0)
        rows = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        mine = [r for r in rows if r.get("run_id") == run_id]
        self.assertEqual(len(mine), 1, rows)
        self.assertEqual(mine[0]["outcome"], "interrupted")
        res = self.rb("audit", "list", "--audit", self.audit)
        self.assertExit(res, 0)
        self.assertRegex(res.out, re.escape(run_id) + r".*interrupted")
        res = self.rb("audit", "show", run_id[:-1], "--audit", self.audit)
        self.assertExit(res, 0)
        self.assertIn("interrupted", res.out)
        self.assertIn("Warm up", res.out)
        # and the log accepts new runs afterwards
        ok = self.write("ok.lua", 'runbook { name = "t/ok" }\nstep("one", function() exec{"true"} end)\n')
        self.assertExit(self.run_rb(ok), 0)
        self.assertExit(self.verify(), 0)


class StillRunning(RunbookTestCase):
    def test_a_live_run_is_reported_running(self):
        ready = self.path("ready")
        sleeper = self.path("sleeper.pid")
        rb = self.write("alive.lua", """
            runbook { name = "t/alive" }
            step("Grow and wait", function()
              -- the process changes (memory) after its run record was written
              local big = {}
              for i = 1, 3000000 do big[i] = i end
              state.n = #big
              exec{"sh", "-c", "echo $$ > " .. %(sleeper)s .. "; exec sleep 30"}
            end)
            """ % dict(sleeper=lua_str(sleeper)))
        p = self.spawn("run", rb, "--audit", self.audit)
        pid_text = self.wait_file(sleeper, proc=p)
        self.addCleanup(kill_group, int(pid_text))
        run_id = self.last_run_id()
        res = self.rb("audit", "list", "--audit", self.audit, "--json")
        self.assertExit(res, 0)
        rows = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertEqual([r["outcome"] for r in rows if r["run_id"] == run_id], ["running"],
                         "a run whose process is alive is not reported as running")
        res = self.rb("audit", "show", run_id, "--audit", self.audit)
        self.assertNotIn("interrupted", res.out)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 130)


class Tampering(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.good_rb = self.write("good.lua", """
            runbook { name = "t/good" }
            step("First", function() exec{"echo", "one"} exec{"echo", "two"} end)
            step("Second", function() exec{"echo", "three"} end)
            """)
        self.bad_rb = self.write("bad.lua", """
            runbook { name = "t/bad" }
            step("Works", function() exec{"echo", "ok"} end)
            step("Breaks", function() error("boom") end)
            """)
        self.assertExit(self.run_rb(self.good_rb), 0)
        self.assertExit(self.run_rb(self.bad_rb), 1)
        self.assertExit(self.run_rb(self.good_rb), 0)
        self.assertExit(self.verify(), 0)
        self.all = self.records()

    def tampered_copy(self, sql, args=()):
        p = self.path("copy-%d.db" % len(os.listdir(self.tmp)))
        src = sqlite3.connect(self.audit)
        dst = sqlite3.connect(p)
        src.backup(dst)
        src.close()
        dst.execute(sql, args)
        dst.commit()
        self.assertEqual(dst.total_changes, 1)
        dst.close()
        return p

    def assertBrokenAt(self, db, seq, run_id):
        res = self.verify(db)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"\bseq %d\b" % seq)
        self.assertIn(run_id, res.all)

    def pick(self, kind, pred=lambda r: True):
        for r in self.all:
            if r["kind"] == kind and pred(r) and r["seq"] not in (1, len(self.all)):
                return r
        self.fail("no %s record to tamper with" % kind)

    def test_edit_action_data(self):
        a = self.pick("action", lambda r: r.get("target") == "echo")
        db = self.tampered_copy(
            "UPDATE records SET data = json_set(data, '$.words', 'echo innocent') WHERE seq = ?",
            (a["seq"],))
        self.assertBrokenAt(db, a["seq"], a["run_id"])

    def test_edit_step_status(self):
        s = self.pick("step", lambda r: r.get("status") == "failed")
        db = self.tampered_copy(
            "UPDATE records SET data = json_set(data, '$.status', 'ok') WHERE seq = ?",
            (s["seq"],))
        self.assertBrokenAt(db, s["seq"], s["run_id"])

    def test_edit_run_outcome(self):
        r = self.pick("run", lambda r: r.get("outcome") == "failed")
        db = self.tampered_copy(
            "UPDATE records SET data = json_set(data, '$.outcome', 'success', '$.exit_code', 0)"
            " WHERE seq = ?", (r["seq"],))
        self.assertBrokenAt(db, r["seq"], r["run_id"])

    def test_edit_timestamp(self):
        a = self.pick("action")
        db = self.tampered_copy("UPDATE records SET ts = '2001-01-01T00:00:00Z' WHERE seq = ?",
                                (a["seq"],))
        self.assertBrokenAt(db, a["seq"], a["run_id"])

    def test_rehash_one_record_is_still_caught(self):
        # recomputing the edited record's own hash breaks the next record's prev_hash
        a = self.pick("action")
        db = self.tampered_copy("UPDATE records SET hash = ? WHERE seq = ?", ("0" * 64, a["seq"]))
        res = self.verify(db)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"\bseq (%d|%d)\b" % (a["seq"], a["seq"] + 1))

    def test_delete_middle_row(self):
        mid = self.all[len(self.all) // 2]
        nxt = self.all[len(self.all) // 2 + 1]
        db = self.tampered_copy("DELETE FROM records WHERE seq = ?", (mid["seq"],))
        res = self.verify(db)
        self.assertExit(res, 1)
        # the first broken record is the one after the gap (or the gap itself)
        m = re.search(r"\bseq (\d+)\b", res.all)
        self.assertTrue(m, res)
        self.assertIn(int(m.group(1)), (mid["seq"], nxt["seq"]), res)
        self.assertTrue(mid["run_id"] in res.all or nxt["run_id"] in res.all, res)

    def test_untouched_log_verifies(self):
        # the control: the same log, unedited, verifies and counts every record
        res = self.verify()
        self.assertExit(res, 0)
        self.assertIn(str(len(self.all)), res.out)


class Concurrency(RunbookTestCase):
    def test_four_runs_at_once(self):
        rb = self.write("busy.lua", """
            runbook { name = "t/busy", params = { who = { default = "?" } } }
            step("First half", function()
              for i = 1, 25 do exec{"echo", params.who, i} end
            end)
            step("Second half", function()
              for i = 26, 50 do exec{"echo", params.who, i} end
            end)
            """)
        procs = [self.spawn("run", rb, "--audit", self.audit, "--param", "who=w%d" % i)
                 for i in range(4)]
        for p in procs:
            p.wait(timeout=240)
        for p in procs:
            self.assertEqual(p.returncode, 0, self.spawned_output(p))
        self.assertEqual(self.integrity(), "ok")
        self.assertExit(self.verify(), 0)
        ids = self.run_ids()
        self.assertEqual(len(ids), 4)
        seqs = [r["seq"] for r in self.records()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        whos = set()
        for rid in ids:
            runs = self.records(rid, "run")
            self.assertEqual([r["outcome"] for r in runs], ["running", "success"])
            self.assertEqual(self.step_status(rid), {"First half": "ok", "Second half": "ok"})
            acts = self.actions(rid)
            self.assertEqual(len(acts), 50)
            who = {a["args"][0][1] for a in acts}
            self.assertEqual(len(who), 1, who)
            whos |= who
            recs = self.records(rid)
            self.assertEqual(recs[0]["kind"], "run")
            self.assertEqual(recs[-1]["kind"], "run")
        self.assertEqual(whos, {"w0", "w1", "w2", "w3"})


class ExportListShow(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.rbfile = self.write("exp.lua", """
            runbook { name = "t/export", title = "Export me", params = { n = { type = "number", default = 2 } } }
            step("Look", function() exec{"echo", "looked"} end)
            step("Change", function() exec{"touch", %s} end)
            step("Ask", function() confirm("Proceed with the thing") end)
            """ % lua_str(self.path("changed")))
        self.assertExit(self.run_rb(self.rbfile, "--yes"), 0)
        self.assertExit(self.run_rb(self.rbfile, "--dry-run", "--yes", "--param", "n=3"), 0)
        self.ids = self.run_ids()

    def test_export_jsonl(self):
        res = self.rb("audit", "export", "--format", "jsonl", "--audit", self.audit)
        self.assertExit(res, 0)
        objs = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertEqual(len(objs), len(self.records()))
        self.assertEqual([o["seq"] for o in objs], list(range(1, len(objs) + 1)))
        prev = "0" * 64
        for o in objs:
            self.assertTrue(EXPORT_BASE <= set(o), o)
            self.assertIn(o["kind"], ("run", "step", "action"))
            self.assertRegex(o["ts"], RFC3339_UTC)
            self.assertEqual(o["prev_hash"], prev)
            prev = o["hash"]
            want = {"run": RUN_FIELDS, "step": STEP_FIELDS, "action": ACTION_FIELDS}[o["kind"]]
            self.assertTrue(want <= set(o), "%s lacks %s" % (o, want - set(o)))
        runs = [o for o in objs if o["kind"] == "run"]
        final = {o["run_id"]: o for o in runs}
        self.assertEqual({r["mode"] for r in final.values()}, {"live", "dry-run"})
        for r in final.values():
            self.assertEqual(r["outcome"], "success")
            self.assertEqual(r["exit_code"], 0)
            self.assertEqual(r["runbook"], "t/export")
            self.assertEqual(len(r["sha256"]), 64)
            self.assertIsInstance(r["params"], dict)
        self.assertEqual(sorted(r["params"]["n"] for r in final.values()), [2, 3])
        acts = [o for o in objs if o["kind"] == "action"]
        for a in acts:
            self.assertIn(a["class"], ("read", "mutate"))
            self.assertIsInstance(a["simulated"], bool)
            if a["primitive"] != "confirm":  # an answer may have no duration
                self.assertIsInstance(a["duration_ms"], int)
        answers = [a for a in acts if a["primitive"] == "confirm"]
        self.assertEqual(len(answers), 2)
        self.assertTrue(all(a.get("answer") for a in answers))
        touch = [a for a in acts if a["target"] == "touch"]
        self.assertEqual([a["simulated"] for a in touch], [False, True])
        # --run restricts to one run
        res = self.rb("audit", "export", "--run", self.ids[0], "--audit", self.audit)
        self.assertExit(res, 0)
        one = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertTrue(one)
        self.assertEqual({o["run_id"] for o in one}, {self.ids[0]})

    def test_export_since(self):
        res = self.rb("audit", "export", "--since", "1h", "--audit", self.audit)
        self.assertExit(res, 0)
        self.assertEqual(len([l for l in res.out.splitlines() if l.strip()]), len(self.records()))
        bad = self.rb("audit", "export", "--since", "yesterday", "--audit", self.audit)
        self.assertExit(bad, 2)
        bad = self.rb("audit", "export", "--format", "xml", "--audit", self.audit)
        self.assertExit(bad, 2)

    def test_export_csv(self):
        res = self.rb("audit", "export", "--format", "csv", "--audit", self.audit)
        self.assertExit(res, 0)
        rows = list(csv.DictReader(io.StringIO(res.out, newline="")))
        self.assertEqual(len(rows), len(self.records()))
        for col in EXPORT_BASE | {"runbook", "mode", "outcome", "index", "name", "status",
                                  "primitive", "verb", "target", "class", "simulated", "answer"}:
            self.assertIn(col, rows[0], "csv lacks column " + col)
        self.assertEqual([int(r["seq"]) for r in rows], list(range(1, len(rows) + 1)))
        self.assertEqual({r["kind"] for r in rows}, {"run", "step", "action"})
        steps = [r for r in rows if r["kind"] == "step"]
        self.assertIn("Look", {r["name"] for r in steps})
        db_hashes = [r["hash"] for r in self.records()]
        self.assertEqual([r["hash"] for r in rows], db_hashes)

    def test_show_and_prefix(self):
        rid = self.ids[0]
        res = self.rb("audit", "show", rid, "--audit", self.audit)
        self.assertExit(res, 0)
        for text in ("t/export", "Look", "Change", "Ask", "touch", "Proceed with the thing",
                     "success"):
            self.assertIn(text, res.out)
        prefix = rid[:-2]
        self.assertFalse(self.ids[1].startswith(prefix))
        res2 = self.rb("audit", "show", prefix, "--audit", self.audit)
        self.assertExit(res2, 0)
        self.assertIn(rid, res2.out)
        self.assertNotIn(self.ids[1], res2.out)
        # ambiguous and unknown prefixes are input errors
        amb = self.rb("audit", "show", "2", "--audit", self.audit)
        self.assertExit(amb, 2)
        self.assertIn("ambiguous", amb.err)
        none = self.rb("audit", "show", "nosuchrun", "--audit", self.audit)
        self.assertExit(none, 2)
        self.assertIn("nosuchrun", none.err)

    def test_list(self):
        res = self.rb("audit", "list", "--audit", self.audit, "--json")
        self.assertExit(res, 0)
        rows = [json.loads(l) for l in res.out.splitlines() if l.strip()]
        self.assertEqual({r["run_id"] for r in rows}, set(self.ids))
        self.assertEqual(rows[0]["run_id"], self.ids[1], "newest first")
        for r in rows:
            self.assertEqual(r["outcome"], "success")
        res = self.rb("audit", "list", "--audit", self.audit, "--runbook", "t/other", "--json")
        self.assertExit(res, 0)
        self.assertEqual(res.out.strip(), "")
        res = self.rb("audit", "list", "--audit", self.audit)
        self.assertExit(res, 0)
        for rid in self.ids:
            self.assertIn(rid, res.out)

    def test_audit_commands_never_create_a_log(self):
        missing = self.path("nope", "audit.db")
        res = self.rb("audit", "list", "--audit", missing)
        self.assertNotEqual(res.code, 0)
        self.assertFalse(os.path.exists(missing))


class DefaultLocation(RunbookTestCase):
    def test_default_audit_path_is_under_xdg_state_home(self):
        rb = self.write("d.lua", 'runbook { name = "t/d" }\nstep("s", function() exec{"true"} end)\n')
        res = self.rb("run", rb)
        self.assertExit(res, 0)
        db = os.path.join(self.state_dir, "runbook", "audit.db")
        self.assertTrue(os.path.exists(db), os.listdir(self.state_dir))
        self.assertEqual(len(self.run_ids(db)), 1)

    def test_runbook_audit_env_and_no_audit(self):
        rb = self.write("d.lua", 'runbook { name = "t/d" }\nstep("s", function() exec{"true"} end)\n')
        envdb = self.path("env.db")
        self.assertExit(self.rb("run", rb, env={"RUNBOOK_AUDIT": envdb}), 0)
        self.assertEqual(len(self.run_ids(envdb)), 1)
        self.assertExit(self.rb("run", rb, "--no-audit", env={"RUNBOOK_AUDIT": envdb}), 0)
        self.assertEqual(len(self.run_ids(envdb)), 1)
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "runbook", "audit.db")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
