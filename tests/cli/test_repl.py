"""`runbook repl` through a real pseudo-terminal (stdin, stdout and stderr all
on it, as an operator's shell has them): Lua as lua.c runs it, completion,
dot-commands, confirmation and dry-run of mutating actions, Ctrl-C, the
history file, the audit run; and the piped mode without a terminal."""
import json
import os
import re
import signal
import stat
import unittest

from rbtest import PtyRun, RunbookTestCase, lua_str, pid_alive

PROMPT = r"runbook(\[dry\])?> "
ENTER = "\r"


class Repl:
    """A REPL session on a pty: type keys, read what it shows."""

    def __init__(self, case, *args, env=None, audit=True):
        self.case = case
        argv = ["repl"] + (["--audit", case.audit] if audit else ["--no-audit"]) + list(args)
        self.t = PtyRun(case, *argv, env=env, all_tty=True)
        m = self.t.expect(r"runbook 0\.1\.0 REPL, run (\S+) \((audited|not audited)\)")
        self.run_id = m.group(1)
        self.t.expect(PROMPT)

    def keys(self, s):
        os.write(self.t.master, s.encode())

    def expect(self, pattern, timeout=30):
        return self.t.expect(pattern, timeout)

    def do(self, line, timeout=30):
        """Type line and Enter; what it showed up to the next prompt (the echo
        of the line left out), with "\\n" line ends."""
        start = self.t.pos
        self.keys(line + ENTER)
        m = self.expect(PROMPT, timeout)
        seg = self.t.buf[start:m.start()].replace("\r\n", "\n")
        return seg.split("\n", 1)[1] if "\n" in seg else ""

    def since(self, start):
        return self.t.buf[start:].replace("\r\n", "\n")

    def quit(self, key="\x04"):
        self.keys(key)
        res = self.t.finish()
        self.case.assertExit(res, 0, self.t.buf)
        return res


class Interactive(RunbookTestCase):
    def repl(self, *args, **kw):
        return Repl(self, *args, **kw)

    def test_expression_values_and_errors(self):
        r = self.repl()
        self.assertEqual(r.do("1+1"), "2\n")
        self.assertEqual(r.do("{1, 2, a = 'x'}"), '{ 1, 2, a = "x" }\n')
        self.assertEqual(r.do("g = 7"), "")
        self.assertEqual(r.do("local l = 5"), "")
        self.assertEqual(r.do("g * 6, l").split(), ["42", "nil"])  # globals persist, locals not
        out = r.do("error('boom')")
        self.assertRegex(out, r"stdin:\d+:1: boom")
        self.assertEqual(r.do("g"), "7\n")  # the session goes on
        r.quit()

    def test_multiline_function(self):
        r = self.repl()
        r.keys("function twice(a)" + ENTER)
        r.expect(r"\n>> ")
        r.keys("  return a * 2" + ENTER)
        r.expect(r"\n>> ")
        r.keys("end" + ENTER)
        r.expect(PROMPT)
        self.assertEqual(r.do("twice(21)"), "42\n")
        r.quit()

    def test_completion(self):
        r = self.repl("--yes")
        start = r.t.pos
        r.keys("docker.\t\t")
        r.expect(PROMPT + r"docker\.")  # the list, then the line again
        shown = r.since(start)
        for fn in ("compose", "inspect", "logs", "ps", "restart"):
            self.assertRegex(shown, r"docker\.%s\b" % fn)
        r.keys("\x15")  # kill the line
        # http.ge completes to http.get: the comparison is true only then
        self.assertEqual(r.do("http.ge\t == http.get"), "true\n")
        r.do('c = db.open("sqlite:x.db", {create = true})')
        start = r.t.pos
        r.keys("c:\t\t")
        r.expect(PROMPT + "c:")
        shown = r.since(start)
        for m in ("query", "exec", "transaction", "close"):
            self.assertIn("c:" + m, shown)
        r.keys("\x15")
        self.assertEqual(r.do("c:qu\t('select 41 + 1 as n')"), "{ { n = 42 } }\n")
        r.quit()

    def test_dry_run_does_not_write(self):
        target = self.path("dry.txt")
        r = self.repl()
        self.assertEqual(r.do(".dry on"), "dry-run is on\n")
        self.assertTrue(r.t.buf[:r.t.pos].endswith("runbook[dry]> "), r.t.buf)
        out = r.do("fs.write(%s, 'x')" % lua_str(target))
        self.assertIn("would: fs write %s (1 bytes)" % target, out)
        self.assertNotIn("[y/N]", out)
        r.quit()
        self.assertFalse(os.path.exists(target))
        acts = self.actions(primitive="fs")
        self.assertEqual([(a["verb"], a["target"], a["simulated"]) for a in acts],
                         [("write", target, True)])

    def test_confirm_yes_and_no(self):
        yes, no = self.path("yes.txt"), self.path("no.txt")
        r = self.repl()
        r.keys("fs.write(%s, 'yes')" % lua_str(yes) + ENTER)
        r.expect(r"\? fs write %s \(3 bytes\) \[y/N\] " % re.escape(yes))
        start = r.t.pos
        r.keys("y" + ENTER)
        r.expect(PROMPT)
        self.assertNotIn("declined", r.since(start))
        r.keys("fs.write(%s, 'no')" % lua_str(no) + ENTER)
        r.expect(r"\? fs write %s \(2 bytes\) \[y/N\] " % re.escape(no))
        r.keys("n" + ENTER)
        r.expect("declined by the operator")
        r.expect(PROMPT)
        self.assertEqual(r.do("1+1"), "2\n")
        r.quit()
        self.assertEqual(self.read(yes), "yes")
        self.assertFalse(os.path.exists(no))
        st = {a["target"]: a["status"] for a in self.actions(primitive="fs")}
        self.assertEqual(st, {yes: "ok", no: "declined"})

    def test_ctrl_c_interrupts_sleep(self):
        r = self.repl()
        r.keys("print('sleeping'); sleep(600)" + ENTER)
        r.expect(r"\nsleeping\r\n")
        start = r.t.pos
        r.keys("\x03")
        r.expect(PROMPT)
        self.assertIn("interrupted", r.since(start))
        self.assertEqual(r.do("1+1"), "2\n")
        r.quit()

    def test_ctrl_c_kills_exec_child(self):
        pidfile = self.path("child.pid")
        r = self.repl("--yes")
        r.keys('exec{"sh", "-c", "echo $$ > %s; exec sleep 600"}' % pidfile + ENTER)
        pid = int(self.wait_file(pidfile, proc=r.t.proc).strip())
        self.addCleanup(self._kill, pid)
        self.wait_for(lambda: "sleep" in self._cmdline(pid), what="the sleep child")
        start = r.t.pos
        r.keys("\x03")
        r.expect(PROMPT)
        self.assertIn("interrupted", r.since(start))
        self.wait_for(lambda: not pid_alive(pid), timeout=30, what="the child %d to be gone" % pid)
        self.assertEqual(r.do("1+1"), "2\n")
        r.quit()

    @staticmethod
    def _cmdline(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _kill(pid):
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def test_ctrl_c_at_the_prompt_clears_the_line(self):
        r = self.repl()
        r.keys("\x03")
        r.expect(r"\^C\r?\n" + PROMPT)
        r.keys("12345 +")
        r.expect(r"12345 \+")
        r.keys("\x03")
        r.expect(r"\^C\r?\n" + PROMPT)
        self.assertEqual(r.do("1+1"), "2\n")  # not "12345 +1+1"
        r.quit()

    def test_history_without_the_secret(self):
        secret = "s3cr3t-abc-123"
        r = self.repl(env={"MYTOK": secret})
        self.assertEqual(r.do('x = secret("MYTOK")'), "")
        out = r.do('print("token: " .. %s)' % lua_str(secret))
        self.assertEqual(out, "token: ****\n")
        hist = os.path.join(self.state_dir, "runbook", "history")
        # written after every line, before the session ends
        self.wait_for(lambda: os.path.exists(hist) and "token:" in self.read(hist),
                      what="the history file")
        text = self.read(hist)
        r.quit()
        text_after = self.read(hist)
        lines = text_after.splitlines()
        self.assertEqual(lines[0], "_HiStOrY_V2_")
        self.assertIn(r'x\040=\040secret("MYTOK")', lines)
        self.assertNotIn(secret, text)
        self.assertNotIn(secret, text_after)
        self.assertEqual(stat.S_IMODE(os.stat(hist).st_mode), 0o600)

    def test_audit_one_run_in_export(self):
        target = self.path("audited.txt")
        r = self.repl("--yes")
        r.do("fs.write(%s, 'x')" % lua_str(target))
        r.do('exec{"true"}')
        res = r.quit(".quit" + ENTER)
        self.assertIn("2 actions in this session, run %s" % r.run_id, res.tty)
        exp = self.rb("audit", "export", "--format", "jsonl", "--audit", self.audit)
        self.assertExit(exp, 0)
        recs = [json.loads(l) for l in exp.out.splitlines() if l.strip()]
        self.assertEqual({x["run_id"] for x in recs}, {r.run_id})
        runs = [x for x in recs if x["kind"] == "run"]
        self.assertTrue(runs)
        for run in runs:
            self.assertEqual((run["mode"], run["runbook"]), ("repl", "repl"))
            self.assertTrue(run["operator"])
        self.assertEqual(runs[-1]["outcome"], "success")
        acts = [(x["primitive"], x["verb"], x["target"]) for x in recs
                if x["kind"] == "action" and x["primitive"] in ("fs", "exec")]
        self.assertEqual(len(acts), 2, acts)
        self.assertEqual(acts[0], ("fs", "write", target))
        self.assertEqual(acts[1][0], "exec")

    def test_ctrl_d_ends_the_run_with_success(self):
        r = self.repl()
        r.do("error('a failed statement does not fail the session')")
        res = r.quit("\x04")
        self.assertIn("0 actions in this session, run %s" % r.run_id, res.tty)
        run = self.run_record(r.run_id)
        self.assertEqual(run["outcome"], "success")
        self.assertEqual(run["exit_code"], 0)
        self.assertEqual(run["mode"], "repl")
        self.assertEqual(self.run_ids(), [r.run_id])

    def test_save_writes_a_runbook_that_runs(self):
        report = self.path("out", "report-1.txt")
        os.makedirs(os.path.dirname(report))
        saved = self.path("saved.lua")
        r = self.repl("--yes")
        r.do("1 + 1")
        r.do("error('not saved')")
        r.do("fs.write(%s, 'hello')" % lua_str(report))
        self.assertEqual(self.read(report), "hello")
        self.assertIn("saved to saved.lua", r.do(".save saved.lua"))
        first = self.read(saved)
        self.assertRegex(r.do(".save saved.lua"), r"exists")  # never overwritten
        self.assertEqual(self.read(saved), first)
        r.quit()

        self.assertNotIn("not saved", first)
        self.assertNotIn("1 + 1", first)
        self.assertEqual(first.count("step("), 1, first)
        m = re.search(r"(\w+) = \{ default = %s \}" % re.escape(lua_str(report)), first)
        self.assertTrue(m, "the path is not a param with its value as default:\n" + first)
        param = m.group(1)
        self.assertNotIn(lua_str(report), first[first.index("step("):])

        self.assertExit(self.rb("check", saved), 0, first)
        os.remove(report)
        self.assertExit(self.rb("run", saved, "--yes", "--no-audit"), 0)
        self.assertEqual(self.read(report), "hello")
        other = self.path("out", "other-2.txt")
        self.assertExit(self.rb("run", saved, "--yes", "--no-audit", "--param",
                                "%s=%s" % (param, other)), 0)
        self.assertEqual(self.read(other), "hello")

    def test_save_keeps_definitions_at_the_top(self):
        report = self.path("greeting.txt")
        saved = self.path("saved.lua")
        r = self.repl("--yes")
        r.do('greeting = "hello"')
        r.do("function shout(s) return s:upper() end")
        r.do("fs.write(%s, shout(greeting))" % lua_str(report))
        self.assertEqual(self.read(report), "HELLO")
        self.assertIn("saved to", r.do(".save saved.lua"))
        r.quit()
        text = self.read(saved)
        self.assertEqual(text.count("step("), 1, text)
        self.assertLess(text.index("greeting"), text.index("step("), text)
        self.assertLess(text.index("function shout"), text.index("step("), text)
        self.assertExit(self.rb("check", saved), 0, text)
        os.remove(report)
        self.assertExit(self.rb("run", saved, "--yes", "--no-audit"), 0)
        self.assertEqual(self.read(report), "HELLO")

    def test_load_steps_and_step(self):
        target = self.path("from-step.txt")
        self.write("rb.lua", """
            runbook { name = "t/loadme", params = { target = { default = %s } } }
            step("Write it", function() fs.write(params.target, "hello") end)
            step("Second", { description = "Says two." }, function() print("two") end)
            """ % lua_str(target))
        r = self.repl()
        self.assertIn("loaded t/loadme (2 steps)", r.do(".load rb.lua"))
        out = r.do(".steps")
        self.assertRegex(out, r"1\. Write it\n")
        self.assertRegex(out, r"2\. Second\n\s+Says two\.")
        self.assertFalse(os.path.exists(target))  # loaded, not run
        r.keys(".step 1" + ENTER)
        r.expect(r"run step 1 \(Write it\) \[y/N\] ")
        start = r.t.pos
        r.keys("y" + ENTER)
        r.expect(PROMPT)
        self.assertNotIn("[y/N]", r.since(start))  # the step's actions do not ask again
        r.quit()
        self.assertEqual(self.read(target), "hello")
        self.assertEqual(self.step_status(), {"Write it": "ok"})
        self.assertEqual([a["target"] for a in self.actions(primitive="fs")], [target])


class Piped(RunbookTestCase):
    def test_expression(self):
        res = self.rb("repl", "--no-audit", stdin="print(1+1)\n")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "2\n")

    def test_multiline_function(self):
        res = self.rb("repl", "--no-audit",
                      stdin="function twice(a)\n  return a * 2\nend\nprint(twice(21))\n")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "42\n")

    def test_error_exits_1_and_goes_on(self):
        res = self.rb("repl", "--no-audit", stdin="error('boom')\nprint('after')\n")
        self.assertExit(res, 1)
        self.assertIn("boom", res.err)
        self.assertEqual(res.out, "after\n")

    def test_mutation_needs_yes(self):
        target = self.path("piped.txt")
        src = "fs.write(%s, 'x')\n" % lua_str(target)
        res = self.rb("repl", "--audit", self.audit, stdin=src)
        self.assertExit(res, 1)
        self.assertIn("--yes", res.err)
        self.assertFalse(os.path.exists(target))
        # the refusal is on the record
        recs = [json.loads(l) for l in
                self.rb("audit", "export", "--audit", self.audit).out.splitlines()]
        refused = [r for r in recs if r["kind"] == "action" and r.get("answer", "").startswith(
            "refused")]
        self.assertEqual(len(refused), 1, recs)
        self.assertIn("piped.txt", refused[0]["target"] + refused[0].get("words", ""))
        res = self.rb("repl", "--audit", self.audit, "--yes", stdin=src)
        self.assertExit(res, 0)
        self.assertEqual(self.read(target), "x")


if __name__ == "__main__":
    unittest.main(verbosity=2)
