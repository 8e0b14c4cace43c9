"""Dry-run as a plan (issue 16, item 3): a read skipped because the
classifier takes it for a change says so on its line; the run ends with the
plan -- every change, numbered, in order, with its step -- in the human view
and as the last JSON event; --diff shows fs.write/fs.append as a unified
diff against the file's current content, which stays as it was."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import unittest

from rbtest import RunbookTestCase, lua_str

HINT = "(classified as a change; mark it readonly = true if it only reads)"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def events(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def apply_unified(old, diff):
    """old patched with the hunks of a unified diff: what a reader of the
    diff takes the new content to be (checked strictly: context and removed
    lines must match old where the hunk header says)."""
    a = old.splitlines(keepends=True)
    out, pos = [], 0
    lines = diff.splitlines(keepends=True)
    i = 0
    while i < len(lines) and not lines[i].startswith("@@"):
        i += 1
    while i < len(lines):
        m = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", lines[i])
        assert m, lines[i]
        start, count = int(m.group(1)), int(m.group(2) or 1)
        at = start - 1 if count else start
        out += a[pos:at]
        pos = at
        i += 1
        while i < len(lines) and not lines[i].startswith("@@"):
            l = lines[i]
            nonl = i + 1 < len(lines) and lines[i + 1].startswith("\\ No newline")
            text = l[1:]
            if nonl:
                text = text[:-1]
            if l[0] == " ":
                assert a[pos] == text, (a[pos], text)
                out.append(text)
                pos += 1
            elif l[0] == "-":
                assert a[pos] == text, (a[pos], text)
                pos += 1
            elif l[0] == "+":
                out.append(text)
            i += 2 if nonl else 1
    out += a[pos:]
    return "".join(out)


class ClassifiedAsChange(RunbookTestCase):
    def test_a_read_taken_for_a_change_says_so_and_touches_nothing(self):
        src = self.write("in.txt", "b\na\n")
        sorted_out = self.write("sorted.txt", "before\n")
        before = sha256(sorted_out)
        marked = self.path("marked.txt")
        f = self.write("rb.lua", """
            runbook { name = "t/classified" }
            step("Look", function()
              local r = exec({ "sort", "-o", %(out)s, %(src)s })
              check(r.stdout == "", "a skipped read answers an empty stdout")
              sh("du -sh " .. %(src)s)
              exec({ "cat", %(src)s })
            end)
            step("Change", function()
              exec({ "touch", %(marked)s }, { readonly = false })
              fs.write(%(marked)s, "x")
            end)
            """ % dict(out=lua_str(sorted_out), src=lua_str(src), marked=lua_str(marked)))
        res = self.run_rb(f, "--dry-run")
        self.assertExit(res, 0)
        lines = res.out.splitlines()
        sort_line = [l for l in lines if "would: sort -o" in l]
        self.assertEqual(len(sort_line), 1, res)
        self.assertTrue(sort_line[0].endswith(HINT), sort_line)
        sh_line = [l for l in lines if "would: sh -c du -sh" in l]
        self.assertEqual(len(sh_line), 1, res)
        self.assertTrue(sh_line[0].endswith(HINT), sh_line)
        # a change the runbook declared, and one that is a change by its
        # nature, carry no such hint; the read that is known runs
        for l in lines:
            if "would: touch" in l or "would: fs write" in l:
                self.assertNotIn("classified", l)
        self.assertFalse(any("cat " in l and "would:" in l for l in lines), res)
        # the file the skipped command would have written is untouched
        self.assertEqual(sha256(sorted_out), before)
        self.assertFalse(os.path.exists(marked))


class Plan(RunbookTestCase):
    def runbook(self, fail_at_end=False):
        self.target = self.write("target.txt", "old\n")
        self.flag = self.path("flag")
        return self.write("plan.lua", """
            runbook { name = "t/plan" }
            step("Inspect", function()
              exec({ "cat", %(target)s })
            end)
            step("Drain", function()
              exec({ "touch", %(flag)s })
              fs.write(%(target)s, "new\\n")
            end)
            step("Skipped", { when = function() return false end }, function()
              sh("echo never")
            end)
            step("Restart", function()
              sh("systemctl restart nothing-such")
              %(fail)s
            end)
            """ % dict(target=lua_str(self.target), flag=lua_str(self.flag),
                       fail='error("broken")' if fail_at_end else ""))

    def expected(self):
        return [
            (2, "Drain", "exec", "touch " + self.flag),
            (2, "Drain", "fs", "fs write %s (4 bytes)" % self.target),
            (4, "Restart", "sh", "sh -c systemctl restart nothing-such"),
        ]

    def plan_lines(self, out):
        lines = out.splitlines()
        at = [i for i, l in enumerate(lines) if l.startswith("Plan:")]
        self.assertEqual(len(at), 1, out)
        return lines[at[0] - 1], lines[at[0]], lines[at[0] + 1:]

    def test_the_text_view_ends_with_every_change_numbered_with_its_step(self):
        f = self.runbook()
        res = self.run_rb(f, "--dry-run")
        self.assertExit(res, 0)
        summary, head, items = self.plan_lines(res.out)
        self.assertRegex(summary, r"^success — \d+ actions")
        self.assertEqual(head, "Plan: 3 changes")
        want = ["  %d. [%d/4 %s] %s" % (n, step, name, words)
                for n, (step, name, _, words) in enumerate(self.expected(), 1)]
        self.assertEqual(items, want)
        # exactly the changes the audit recorded as simulated, in order
        simulated = [a["words"] for a in self.actions() if a.get("simulated")]
        self.assertEqual(simulated, [w for *_, w in self.expected()])
        self.assertEqual(self.read(self.target), "old\n")
        self.assertFalse(os.path.exists(self.flag))

    def test_the_json_plan_is_the_last_event_and_equals_the_text_plan(self):
        f = self.runbook()
        text = self.run_rb(f, "--dry-run")
        res = self.run_rb(f, "--dry-run", "--output", "json")
        self.assertExit(res, 0)
        evs = events(res.out)
        self.assertEqual(evs[-1]["event"], "plan", evs[-1])
        self.assertEqual(evs[-2]["event"], "run_end")
        self.assertEqual([e for e in evs if e["event"] == "plan"], [evs[-1]])
        plan = evs[-1]
        self.assertTrue(plan["complete"])
        self.assertEqual(plan["run_id"], evs[-2]["run_id"])
        got = [(c["n"], c["step"], c["step_name"], c["primitive"], c["words"])
               for c in plan["changes"]]
        self.assertEqual(got, [(n, s, name, p, w)
                               for n, (s, name, p, w) in enumerate(self.expected(), 1)])
        for c in plan["changes"]:
            self.assertEqual(c["total"], 4)
            self.assertIn("verb", c)
        _, _, items = self.plan_lines(text.out)
        self.assertEqual([re.sub(r"^  \d+\. \[[^]]*\] ", "", l) for l in items],
                         [c["words"] for c in plan["changes"]])
        # the actions' events say the same, in the same order
        acts = [e["words"] for e in evs if e["event"] == "action" and e.get("simulated")]
        self.assertEqual(acts, [c["words"] for c in plan["changes"]])

    def test_a_failed_rehearsal_shows_the_plan_so_far(self):
        f = self.runbook(fail_at_end=True)
        res = self.run_rb(f, "--dry-run")
        self.assertExit(res, 1)
        _, head, items = self.plan_lines(res.out)
        self.assertEqual(head, "Plan: 3 changes (so far: the rehearsal did not finish)")
        self.assertEqual(len(items), 3)
        js = self.run_rb(f, "--dry-run", "--output", "json")
        plan = events(js.out)[-1]
        self.assertEqual(plan["event"], "plan")
        self.assertFalse(plan["complete"])

    def test_no_changes_and_live_runs_have_no_plan(self):
        f = self.write("ro.lua", """
            runbook { name = "t/ro" }
            step("Look", function() exec({ "true" }) end)
            """)
        res = self.run_rb(f, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.out.splitlines()[-1], "Plan: no changes")
        live = self.run_rb(f)
        self.assertExit(live, 0)
        self.assertNotIn("Plan:", live.out)

    def test_record_still_records_with_the_plan_collected(self):
        f = self.runbook()
        rec = self.path("plan.scenario.yaml")
        res = self.run_rb(f, "--dry-run", "--record", rec)
        self.assertExit(res, 0)
        _, head, _ = self.plan_lines(res.out)
        self.assertEqual(head, "Plan: 3 changes")
        text = self.read(rec)
        self.assertIn("systemctl restart nothing-such", text)
        self.assertIn("touch", text)

    def test_secrets_are_redacted_in_the_plan(self):
        f = self.write("sec.lua", """
            runbook { name = "t/sec", params = { token = { secret = true } } }
            step("Use", function() exec({ "curl", "-H", "X-Token: " .. params.token, "http://x" }) end)
            """)
        res = self.run_rb(f, "--dry-run", "--param", "token=SECRETxyz123")
        self.assertExit(res, 0)
        self.assertNotIn("SECRETxyz123", res.out)
        js = self.run_rb(f, "--dry-run", "--param", "token=SECRETxyz123", "--output", "json")
        self.assertNotIn("SECRETxyz123", js.out)
        self.assertIn("****", events(js.out)[-1]["changes"][0]["words"])


class Diff(RunbookTestCase):
    OLD = "".join("line%d\n" % i for i in range(1, 21))
    NEW = OLD.replace("line3\n", "LINE3\n").replace("line17\n", "") + "line21\n"

    def diff_block(self, out, path):
        """The lines under the `would: fs write PATH` line, unindented."""
        lines = out.splitlines()
        at = [i for i, l in enumerate(lines) if l.startswith("  would: fs ") and path in l]
        self.assertEqual(len(at), 1, out)
        block = []
        for l in lines[at[0] + 1:]:
            if not l.startswith("    "):
                break
            block.append(l[4:])
        return block

    def test_fs_write_is_shown_as_a_unified_diff_and_the_file_is_unchanged(self):
        conf = self.write("app.conf", self.OLD)
        before = sha256(conf)
        f = self.write("w.lua", """
            runbook { name = "t/diff" }
            step("Configure", function()
              fs.write(%s, %s)
            end)
            """ % (lua_str(conf), lua_str(self.NEW)))
        res = self.run_rb(f, "--dry-run", "--diff")
        self.assertExit(res, 0)
        self.assertEqual(sha256(conf), before)
        block = self.diff_block(res.out, conf)
        self.assertEqual(block[0], "--- " + conf)
        self.assertTrue(block[1].startswith("+++ " + conf), block)
        self.assertEqual(block[2:], [
            "@@ -1,6 +1,6 @@", " line1", " line2", "-line3", "+LINE3", " line4", " line5",
            " line6",
            "@@ -14,7 +14,7 @@", " line14", " line15", " line16", "-line17", " line18",
            " line19", " line20", "+line21"])
        diff = "\n".join(block) + "\n"
        self.assertEqual(apply_unified(self.OLD, diff), self.NEW)
        # the same hunks as diff -u
        if shutil.which("diff"):
            new = self.write("new.conf", self.NEW)
            ref = subprocess.run(["diff", "-u", conf, new], capture_output=True, text=True).stdout
            self.assertEqual(ref.splitlines()[2:], block[2:])
        # JSON: one diff event after the action, the same text
        js = self.run_rb(f, "--dry-run", "--diff", "--output", "json")
        evs = events(js.out)
        d = [e for e in evs if e["event"] == "diff"]
        self.assertEqual(len(d), 1)
        self.assertEqual(d[0]["path"], conf)
        self.assertEqual(d[0]["diff"].splitlines()[2:], block[2:])
        self.assertEqual(sha256(conf), before)

    def test_new_file_append_no_newline_and_no_change(self):
        same = self.write("same.txt", "same\n")
        log = self.write("app.log", "one\ntwo")
        new = self.path("new.txt")
        f = self.write("w.lua", """
            runbook { name = "t/diff2" }
            step("Files", function()
              fs.write(%(new)s, "hello\\n")
              fs.append(%(log)s, "\\nthree\\n")
              fs.write(%(same)s, "same\\n")
            end)
            """ % dict(new=lua_str(new), log=lua_str(log), same=lua_str(same)))
        hashes = (sha256(same), sha256(log))
        res = self.run_rb(f, "--dry-run", "--diff")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(new))
        self.assertEqual((sha256(same), sha256(log)), hashes)
        block = self.diff_block(res.out, new)
        self.assertEqual(block[0], "--- /dev/null")
        self.assertEqual(block[2:], ["@@ -0,0 +1 @@", "+hello"])
        block = self.diff_block(res.out, log)
        self.assertEqual(block[2:], ["@@ -1,2 +1,3 @@", " one", "-two",
                                     "\\ No newline at end of file", "+two", "+three"])
        self.assertEqual(apply_unified("one\ntwo", "\n".join(block) + "\n"), "one\ntwo\nthree\n")
        self.assertEqual(self.diff_block(res.out, same),
                         ["(no change: the file already has this content)"])

    def test_secrets_in_the_diff_are_redacted(self):
        conf = self.write("db.conf", "password=old\n")
        f = self.write("w.lua", """
            runbook { name = "t/diffsec", params = { pw = { secret = true } } }
            step("Write", function() fs.write(%s, "password=" .. params.pw .. "\\n") end)
            """ % lua_str(conf))
        res = self.run_rb(f, "--dry-run", "--diff", "--param", "pw=HUNTER2xyz")
        self.assertExit(res, 0)
        self.assertIn("+password=****", res.out)
        self.assertNotIn("HUNTER2xyz", res.out)
        js = self.run_rb(f, "--dry-run", "--diff", "--param", "pw=HUNTER2xyz", "--output", "json")
        self.assertNotIn("HUNTER2xyz", js.out)

    def test_without_dry_run_diff_is_refused_and_nothing_runs(self):
        conf = self.write("app.conf", self.OLD)
        before = sha256(conf)
        f = self.write("w.lua", """
            runbook { name = "t/diff3" }
            step("Configure", function() fs.write(%s, "x") end)
            """ % lua_str(conf))
        res = self.run_rb(f, "--diff")
        self.assertExit(res, 2)
        self.assertIn("--dry-run", res.err)
        self.assertEqual(sha256(conf), before)
        self.assertFalse(os.path.exists(self.audit) and self.run_ids(), "a run was recorded")
        # after the runbook's name too
        res = self.rb("run", "--audit", self.audit, f, "--diff")
        self.assertExit(res, 2)
        self.assertEqual(sha256(conf), before)


if __name__ == "__main__":
    unittest.main()
