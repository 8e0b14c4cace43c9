"""Live vs dry-run (SPEC §3): in dry-run every mutating action is shown as
`would: ...`, recorded simulated, answered success-shaped, and nothing in the
world changes; reads run for real.  Live does the same actions for real."""
import os
import re
import unittest

from rbtest import RunbookTestCase, lua_str, pid_alive


class DryRunVsLive(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.touched = self.path("touched.txt")
        self.shelled = self.path("shelled.txt")
        self.written = self.path("written.txt")
        self.doomed = self.path("doomed.txt")
        with open(self.doomed, "w") as f:
            f.write("still here\n")
        self.rbfile = self.write("modes.lua", """
            runbook { name = "t/modes", params = { expect_dry = { type = "boolean", default = false } } }

            local function shaped(r, what)
              if params.expect_dry then
                check(type(r) == "table" and r.ok == true and r.dry_run == true,
                      "%%s: not success-shaped in dry-run", what)
              else
                check(not (type(r) == "table" and r.dry_run), "%%s: dry_run set in a live run", what)
              end
            end

            step("Touch", function()
              shaped(exec{"touch", %(touched)s}, "exec")
            end)
            step("Shell", function()
              shaped(sh("echo x > " .. %(shelled)s), "sh")
            end)
            step("Write", function()
              shaped(fs.write(%(written)s, "x"), "fs.write")
            end)
            step("Remove", function()
              shaped(fs.remove(%(doomed)s), "fs.remove")
            end)
            """ % dict(touched=lua_str(self.touched), shelled=lua_str(self.shelled),
                       written=lua_str(self.written), doomed=lua_str(self.doomed)))

    def mutations(self):
        return [a for a in self.actions() if a.get("primitive") in ("exec", "sh", "fs")]

    def test_dry_run_changes_nothing(self):
        res = self.run_rb(self.rbfile, "--dry-run", "--param", "expect_dry=true")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.touched), "exec touch ran in dry-run")
        self.assertFalse(os.path.exists(self.shelled), "sh ran in dry-run")
        self.assertFalse(os.path.exists(self.written), "fs.write wrote in dry-run")
        self.assertTrue(os.path.exists(self.doomed), "fs.remove removed in dry-run")
        self.assertEqual(self.read(self.doomed), "still here\n")
        self.assertRegex(res.out, r"would: touch \S*touched\.txt")
        self.assertRegex(res.out, r"would: sh -c .*shelled\.txt")
        self.assertRegex(res.out, r"would: .*written\.txt")
        self.assertRegex(res.out, r"would: .*doomed\.txt")

        acts = self.mutations()
        self.assertEqual(len(acts), 4, acts)
        for a in acts:
            self.assertEqual(a["class"], "mutate", a)
            self.assertIs(a["simulated"], True, a)
        self.assertEqual([a.get("primitive") for a in acts], ["exec", "sh", "fs", "fs"])
        run = self.run_record()
        self.assertEqual(run["mode"], "dry-run")
        self.assertEqual(run["outcome"], "success")
        self.assertEqual(set(self.step_status().values()), {"ok"})

    def test_live_changes_the_world(self):
        res = self.run_rb(self.rbfile)
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(self.touched))
        self.assertEqual(self.read(self.shelled), "x\n")
        self.assertEqual(self.read(self.written), "x")
        self.assertFalse(os.path.exists(self.doomed))
        self.assertNotIn("would:", res.out)
        acts = self.mutations()
        self.assertEqual(len(acts), 4, acts)
        for a in acts:
            self.assertEqual(a["class"], "mutate", a)
            self.assertIs(a["simulated"], False, a)
            self.assertEqual(a["status"], "ok", a)
        self.assertEqual(self.run_record()["mode"], "live")

    def test_dry_run_writes_only_the_audit_log(self):
        before = set(os.listdir(self.tmp))
        res = self.run_rb(self.rbfile, "--dry-run", "--param", "expect_dry=true")
        self.assertExit(res, 0)
        new = set(os.listdir(self.tmp)) - before
        self.assertTrue(new <= {"audit.db", "audit.db-wal", "audit.db-shm"}, new)


class ReadsRunInDryRun(RunbookTestCase):
    def test_reads_run_for_real(self):
        data = self.write("data.txt", "hello-from-file\n")
        listed = self.path("listing")
        os.makedirs(listed)
        self.write("listing/needle-entry.txt", "")
        # the fake says how it was called on stderr: a dry-run's reads may
        # not write, not even a log file
        self.script("kubectl", """
            printf 'KUBECTL:%s\n' "$*" >&2
            echo "fake-pod-7 Running"
            """)
        rb = self.write("reads.lua", """
            runbook { name = "t/reads" }
            step("Read", function()
              local r = exec{"cat", %(data)s}
              check(r.stdout == "hello-from-file\\n", "cat gave %%q", r.stdout)
              check(not r.dry_run, "cat was simulated")
              print("CAT:" .. r.stdout)
              local l = exec{"ls", %(listed)s}
              check(l.stdout:find("needle-entry.txt", 1, true), "ls gave %%q", l.stdout)
              print("LS:" .. l.stdout)
              local k = exec{"kubectl", "get", "pods", "-n", "prod"}
              check(k.stdout:find("fake-pod-7", 1, true), "kubectl get gave %%q", k.stdout)
              io.write(k.stderr)
              local k2 = exec{"kubectl", "-n", "prod", "get", "deploy"}
              check(k2.stdout:find("fake-pod-7", 1, true), "kubectl -n get gave %%q", k2.stdout)
              io.write(k2.stderr)
              local s = exec{"kubectl", "scale", "deployment/api", "--replicas=5", "-n", "prod"}
              check(s.dry_run == true, "kubectl scale was not simulated")
              check(fs.read(%(data)s) == "hello-from-file\\n", "fs.read in dry-run")
              check(fs.exists(%(data)s), "fs.exists in dry-run")
            end)
            """ % dict(data=lua_str(data), listed=lua_str(listed)))
        res = self.run_rb(rb, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("CAT:hello-from-file", res.out)
        self.assertIn("LS:needle-entry.txt", res.out)
        self.assertEqual(re.findall(r"KUBECTL:(.*)", res.out),
                         ["get pods -n prod", "-n prod get deploy"])
        self.assertRegex(res.out, r"would: kubectl scale deployment/api --replicas=5 -n prod")
        acts = [a for a in self.actions() if a.get("primitive") == "exec"]
        self.assertEqual([(a["class"], a["simulated"]) for a in acts],
                         [("read", False)] * 4 + [("mutate", True)])
        self.assertIn("hello-from-file", acts[0].get("stdout", ""))
        fs_acts = self.actions(primitive="fs")
        self.assertEqual([(a["verb"], a["class"], a["simulated"]) for a in fs_acts],
                         [("read", "read", False), ("exists", "read", False)])

    def test_sh_readonly_runs_in_dry_run(self):
        rb = self.write("shro.lua", """
            runbook { name = "t/shro" }
            step("Shell read", function()
              local r = sh("echo from-sh-$((6*7))", { readonly = true })
              check(not r.dry_run, "readonly sh was simulated")
              check(r.stdout == "from-sh-42\\n", "sh gave %q", r.stdout)
              print("SH:" .. r.stdout)
              local w = sh("echo not-run")
              check(w.dry_run == true and w.stdout == "", "plain sh ran in dry-run")
            end)
            """)
        res = self.run_rb(rb, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("SH:from-sh-42", res.out)
        acts = self.actions(primitive="sh")
        self.assertEqual([(a["class"], a["simulated"]) for a in acts],
                         [("read", False), ("mutate", True)])

    def test_exec_readonly_false_is_simulated(self):
        # the override works both ways: a read command declared mutating is not run
        marker = self.path("cat-ran")
        self.script("catlike", "touch %s\n" % marker)
        rb = self.write("ro.lua", """
            runbook { name = "t/ro" }
            step("Override", function()
              local r = exec({"cat", "/dev/null"}, { readonly = false })
              check(r.dry_run == true, "readonly=false cat was not simulated")
              exec{"catlike"}
            end)
            """)
        res = self.run_rb(rb, "--dry-run")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(marker))
        acts = self.actions(primitive="exec")
        self.assertEqual([(a["class"], a["simulated"]) for a in acts],
                         [("mutate", True), ("mutate", True)])

    def test_readonly_commands_from_config(self):
        self.script("mytool", """
            printf 'MYTOOL:%s\\n' "$*" >&2
            echo tool-output
            """)
        self.write("runbook.yaml", """
            readonly_commands:
              - [mytool, status]
              - [mytool, --describe]
            """)
        rb = self.write("tool.lua", """
            runbook { name = "t/tool" }
            step("Tool", function()
              local a = exec{"mytool", "status", "web"}
              check(a.stdout == "tool-output\\n", "status not run")
              local b = exec{"mytool", "--describe", "x"}
              check(b.stdout == "tool-output\\n", "describe not run")
              io.write(a.stderr, b.stderr)
              check(exec{"mytool", "restart", "web"}.dry_run == true, "restart was run")
            end)
            """)
        res = self.run_rb(rb, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(re.findall(r"MYTOOL:(.*)", res.out), ["status web", "--describe x"])
        acts = self.actions(primitive="exec")
        self.assertEqual([a["class"] for a in acts], ["read", "read", "mutate"])

    def test_mutating_daemon_not_started_in_dry_run(self):
        pidfile = self.path("daemon.pid")
        self.script("mydaemon", """
            echo $$ > %s
            exec sleep 300
            """ % pidfile)
        rb = self.write("daemon.lua", """
            runbook { name = "t/daemon" }
            step("Start daemon", function()
              local r = exec{"mydaemon", "--foreground"}
              check(r.dry_run == true, "daemon start not simulated")
            end)
            """)
        self.addCleanup(self._kill_daemon, pidfile)
        res = self.run_rb(rb, "--dry-run", timeout=60)
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"would: mydaemon --foreground")
        self.assertFalse(os.path.exists(pidfile), "the mutating program was started in dry-run")

    def _kill_daemon(self, pidfile):
        # only a broken engine leaves one behind
        if os.path.exists(pidfile):
            pid = int(self.read(pidfile).strip() or 0)
            if pid and pid_alive(pid):
                os.kill(pid, 9)


if __name__ == "__main__":
    unittest.main(verbosity=2)
