"""Step-confirm and confirm() through a real pseudo-terminal (SPEC §3): the
binary asks on its controlling terminal, the answers decide what happens in
the world and are recorded in the audit log; with no terminal, --confirm
fails before any step runs, and --yes approves everything."""
import os
import unittest

from rbtest import PtyRun, RunbookTestCase, lua_str

PROMPT = r"Run this step\? \[y\]es, \[s\]kip, \[a\]ll remaining, \[q\]uit: "


class StepConfirm(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.files = {n: self.path(n + ".done") for n in ("alpha", "bravo", "charlie")}
        self.rbfile = self.write("confirm.lua", """
            runbook { name = "t/confirm" }
            step("Alpha step", function() exec{"touch", %(alpha)s} end)
            step("Bravo step", { description = "Touches bravo." }, function()
              exec{"touch", %(bravo)s}
            end)
            step("Charlie step", function() exec{"touch", %(charlie)s} end)
            """ % {k: lua_str(v) for k, v in self.files.items()})

    def done(self):
        return {k for k, v in self.files.items() if os.path.exists(v)}

    def step_answers(self):
        return [(a["target"], a["answer"]) for a in self.actions(primitive="confirm")
                if a.get("verb") == "step"]

    def test_yes_to_each(self):
        t = PtyRun(self, "run", self.rbfile, "--confirm", "--audit", self.audit)
        for i, name in enumerate(["Alpha step", "Bravo step", "Charlie step"], 1):
            t.expect(r"\[%d/3\] %s" % (i, name))
            if i == 2:
                t.expect("Touches bravo.")
            t.expect(PROMPT)
            t.send("y")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertEqual(self.done(), {"alpha", "bravo", "charlie"})
        self.assertEqual(self.step_answers(), [("[1/3] Alpha step", "y"), ("[2/3] Bravo step", "y"),
                                               ("[3/3] Charlie step", "y")])
        for a in self.actions(primitive="confirm"):
            self.assertTrue(a.get("operator"), "confirm answer without the operator: %r" % a)
        self.assertEqual(self.run_record()["outcome"], "success")

    def test_skip_declines_the_step(self):
        t = PtyRun(self, "run", self.rbfile, "--confirm", "--audit", self.audit)
        t.expect(r"\[1/3\] Alpha step")
        t.expect(PROMPT)
        t.send("y")
        t.expect(r"\[2/3\] Bravo step")
        t.expect(PROMPT)
        t.send("s")
        t.expect(r"\[3/3\] Charlie step")
        t.expect(PROMPT)
        t.send("y")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertEqual(self.done(), {"alpha", "charlie"})
        st = self.step_status()
        self.assertEqual(st["Bravo step"], "declined")
        self.assertEqual(st["Alpha step"], "ok")
        self.assertEqual(st["Charlie step"], "ok")
        self.assertEqual([a for _, a in self.step_answers()], ["y", "s", "y"])
        touched = [a["target"] for a in self.actions(primitive="exec")]
        self.assertEqual(len(touched), 2, touched)

    def test_all_stops_asking(self):
        t = PtyRun(self, "run", self.rbfile, "--confirm", "--audit", self.audit)
        t.expect(r"\[1/3\] Alpha step")
        t.expect(PROMPT)
        t.send("a")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertEqual(self.done(), {"alpha", "bravo", "charlie"})
        self.assertEqual(t.buf.count("Run this step?"), 1, t.buf)
        self.assertEqual(self.step_answers(), [("[1/3] Alpha step", "a")])

    def test_quit_aborts_with_3(self):
        t = PtyRun(self, "run", self.rbfile, "--confirm", "--audit", self.audit)
        t.expect(r"\[1/3\] Alpha step")
        t.expect(PROMPT)
        t.send("y")
        t.expect(r"\[2/3\] Bravo step")
        t.expect(PROMPT)
        t.send("q")
        res = t.finish()
        self.assertExit(res, 3)
        self.assertEqual(self.done(), {"alpha"})
        run = self.run_record()
        self.assertEqual(run["outcome"], "aborted")
        self.assertEqual(run["exit_code"], 3)
        self.assertNotIn("Charlie step", self.step_status())
        self.assertEqual([a for _, a in self.step_answers()], ["y", "q"])

    def test_unknown_answer_asks_again(self):
        t = PtyRun(self, "run", self.rbfile, "--confirm", "--audit", self.audit)
        t.expect(r"\[1/3\] Alpha step")
        t.expect(PROMPT)
        t.send("maybe")
        t.expect("please answer")
        t.expect(PROMPT)
        t.send("q")
        res = t.finish()
        self.assertExit(res, 3)
        self.assertEqual(self.done(), set())

    def test_confirm_without_terminal_fails_up_front(self):
        res = self.run_rb(self.rbfile, "--confirm")
        self.assertExit(res, 2)
        self.assertRegex(res.err, r"(?i)terminal")
        self.assertEqual(self.done(), set())
        # nothing ran, so there is no run to record
        if os.path.exists(self.audit):
            self.assertEqual(self.run_ids(), [])

    def test_confirm_with_yes_needs_no_terminal(self):
        res = self.run_rb(self.rbfile, "--confirm", "--yes")
        self.assertExit(res, 0)
        self.assertEqual(self.done(), {"alpha", "bravo", "charlie"})


class ConfirmQuestion(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.yes = self.path("answered-yes")
        self.no = self.path("answered-no")
        self.rbfile = self.write("question.lua", """
            runbook { name = "t/question" }
            step("Ask", function()
              if confirm("Flush the cache of shard 7") then
                exec{"touch", %s}
              else
                exec{"touch", %s}
              end
            end)
            """ % (lua_str(self.yes), lua_str(self.no)))

    def confirm_actions(self):
        return [a for a in self.actions(primitive="confirm") if a.get("verb") == "confirm"]

    def test_answer_yes(self):
        t = PtyRun(self, "run", self.rbfile, "--audit", self.audit)
        t.expect(r"Flush the cache of shard 7.*\[y/N\]")
        t.send("y")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(self.yes))
        self.assertFalse(os.path.exists(self.no))
        acts = self.confirm_actions()
        self.assertEqual(len(acts), 1, acts)
        self.assertEqual(acts[0]["answer"], "y")
        self.assertIn("Flush the cache of shard 7", acts[0]["target"])
        self.assertEqual(acts[0]["step"], 1)

    def test_answer_no(self):
        t = PtyRun(self, "run", self.rbfile, "--audit", self.audit)
        t.expect(r"Flush the cache of shard 7.*\[y/N\]")
        t.send("n")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.yes))
        self.assertTrue(os.path.exists(self.no))
        self.assertEqual([a["answer"] for a in self.confirm_actions()], ["n"])

    def test_asked_in_dry_run_too(self):
        t = PtyRun(self, "run", self.rbfile, "--dry-run", "--audit", self.audit)
        t.expect(r"Flush the cache of shard 7.*\[y/N\]")
        t.send("y")
        res = t.finish()
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.yes))  # dry-run: the touch is simulated
        self.assertEqual([a["answer"] for a in self.confirm_actions()], ["y"])
        self.assertRegex(res.out, r"would: touch \S*answered-yes")

    def test_yes_flag_answers_without_terminal(self):
        res = self.run_rb(self.rbfile, "--yes")
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(self.yes))
        acts = self.confirm_actions()
        self.assertEqual(len(acts), 1)
        self.assertTrue(acts[0]["answer"].startswith("y"), acts[0])

    def test_no_terminal_no_yes_does_not_approve(self):
        res = self.run_rb(self.rbfile)
        self.assertNotEqual(res.code, 0, res)
        self.assertFalse(os.path.exists(self.yes), "confirm() approved without anyone asked")
        self.assertRegex(res.all, r"(?i)terminal")


if __name__ == "__main__":
    unittest.main(verbosity=2)
