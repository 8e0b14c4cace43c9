"""ssh.* (SPEC §4) through OpenSSH's real client against a real sshd on
loopback (tests/fixtures/sshd.py): the "remote" host is this machine, so a
remote write is a file the test can look at.  Tests assert what happened on
the host (files, hashes, sshd's own log of authenticated connections,
processes), that dry-run runs remote reads and never remote writes, and that
every call is one audited action in the primitive's own words."""
import glob
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import unittest

from rbtest import FIXTURES, RunbookTestCase, lua_str

sys.dont_write_bytecode = True
sys.path.insert(0, FIXTURES)
import sshd as sshd_fixture  # noqa: E402

WHY_NOT = sshd_fixture.available()
if WHY_NOT:
    print("test_ssh: skipped: " + WHY_NOT, file=sys.stderr)


def ssh_clients(marker):
    """pids of local `ssh` client processes whose command line holds marker."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ssh" and any(marker.encode() in a
                                                                 for a in argv):
            out.append(int(d[6:]))
    return out


def processes_with(marker):
    """pids of any process whose command line holds marker."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(d[6:]))
        except OSError:
            pass
    return out


@unittest.skipIf(WHY_NOT, WHY_NOT or "")
class SSHCase(RunbookTestCase):
    HOSTS = 3

    def setUp(self):
        super().setUp()
        self.srv = sshd_fixture.SSHD(self.path("sshd"), hosts=self.HOSTS)
        # the control sockets: a short private directory (a unix socket path
        # holds 107 bytes), as XDG_RUNTIME_DIR is on a desktop
        self.xdg = tempfile.mkdtemp(prefix="rbssh-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.xdg, True)
        self.control = os.path.join(self.xdg, "runbook")
        self.addCleanup(self.srv.stop, self.control)  # runs before the dirs go
        self.srv.start()
        self.env["XDG_RUNTIME_DIR"] = self.xdg
        self.remote = self.path("remote")  # what the "remote" host writes
        os.makedirs(self.remote)
        self.write_config()

    def write_config(self, extra=""):
        hosts = ", ".join(self.srv.hosts)
        self.write("runbook.yaml", """
            ssh:
              config: %s
              inventory:
                web: [%s]
                db: [web1]
            """ % (self.srv.config, hosts) + extra)

    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/ssh", **kw)

    def sockets(self):
        return sorted(glob.glob(os.path.join(self.control, "ssh-*")))


class Live(SSHCase):
    def test_reads_and_writes_on_the_host(self):
        self.write("remote/motd", "hello from the host\n")
        made = os.path.join(self.remote, "made by ssh")
        res = self.runbook("""
step("ops", function()
  local r = ssh.run("web1", { "cat", %s })
  out({ code = r.code, ok = r.ok, stdout = r.stdout, stderr = r.stderr,
        timed = type(r.time) == "number" })
  local w = ssh.run("web2", { "touch", %s })
  out({ code = w.code, ok = w.ok })
end)
""" % (lua_str(self.path("remote/motd")), lua_str(made)))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"code": 0, "ok": True, "stdout": "hello from the host\n",
                                       "stderr": "", "timed": True})
        self.assertEqual(res.data[1], {"code": 0, "ok": True})
        self.assertTrue(os.path.exists(made), "the remote write did not happen")
        acts = self.actions(primitive="ssh")
        self.assertEqual([(a["verb"], a["target"], a["class"], a["status"], a.get("exit_code"))
                          for a in acts],
                         [("run", "web1", "read", "ok", 0), ("run", "web2", "mutate", "ok", 0)])
        self.assertEqual(acts[0]["words"], "ssh web1 cat " + self.path("remote/motd"))
        self.assertEqual(acts[1]["words"], "ssh web2 touch '%s'" % made)
        self.assertEqual(acts[0]["stdout"], "hello from the host\n")
        # the session ran as the configured user, through the fixture's sshd
        self.assertGreaterEqual(self.srv.accepted(), 2)

    def test_remote_words_are_quoted_for_the_remote_shell(self):
        pwned = os.path.join(self.remote, "pwned")
        words = ["two words", "it's", "$HOME", "`touch %s`" % pwned, "; touch %s" % pwned,
                 "a\nb", "*", "$(touch %s)" % pwned, "", "-n", "\\"]
        res = self.runbook("""
step("echo", function()
  local argv = { "printf", "[%%s]\\n" }
  for _, w in ipairs(%s) do argv[#argv + 1] = w end
  out(ssh.run("web1", argv).stdout)
end)
""" % ("{" + ", ".join(lua_str(w) for w in words) + "}"))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], "".join("[%s]\n" % w for w in words))
        self.assertFalse(os.path.exists(pwned), "a remote word was run as shell syntax")

    def test_stdin_check_false_and_number_arguments(self):
        res = self.runbook("""
step("s", function()
  out(ssh.run("web1", { "cat" }, { stdin = "through stdin\\n" }).stdout)
  local f = ssh.run("web1", { "sh", "-c", "echo oops >&2; exit 3" }, { check = false })
  out({ code = f.code, ok = f.ok, stderr = f.stderr })
  out(ssh.run("web1", { "expr", 2, "+", 40 }).stdout)
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data, ["through stdin\n", {"code": 3, "ok": False,
                                                        "stderr": "oops\n"}, "42\n"])

    def test_failed_command_raises_with_host_and_last_stderr_line(self):
        res = self.runbook("""
step("s", function()
  local ok, err = pcall(ssh.run, "web2", { "sh", "-c", "echo first >&2; echo last words >&2; exit 4" })
  out(tostring(err))
  ssh.run("web2", { "ls", "/nonexistent-dir" })
end)
""")
        self.assertExit(res, 1)
        self.assertRegex(res.data[0], r"ssh web2 sh -c 'echo first >&2; echo last words >&2; "
                                      r"exit 4': exit code 4: last words$")
        self.assertIn("ssh web2 ls /nonexistent-dir: exit code 2: ls: cannot access", res.all)
        acts = self.actions(primitive="ssh")
        self.assertEqual([(a["status"], a.get("exit_code")) for a in acts],
                         [("error", 4), ("error", 2)])
        self.assertIn("last words", acts[0]["stderr"])

    def test_unreachable_host_names_host_and_cause(self):
        res = self.runbook("""
step("s", function()
  ssh.run("down", { "uptime" })
end)
""")
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"ssh down uptime: exit code 255: ssh: connect to host "
                                  r"127\.0\.0\.1 port %d: Connection refused" % self.srv.down_port)
        act = self.actions(primitive="ssh")[0]
        self.assertEqual((act["target"], act["status"], act.get("exit_code")), ("down", "error", 255))

    def test_misuse_is_named(self):
        res = self.runbook("""
step("s", function()
  for _, f in ipairs({
    function() ssh.run("web1", {}) end,
    function() ssh.run("-oProxyCommand=touch x", { "true" }) end,
    function() ssh.run(nil, { "true" }) end,
    function() ssh.run("web1", "uptime") end,
    function() ssh.copy("", "web1", "/tmp/x") end,
    function() ssh.hosts("nope") end,
  }) do
    local ok, err = pcall(f)
    out(tostring(err))
  end
end)
""")
        self.assertExit(res, 0)
        want = ["ssh.run: argv must have at least the program name",
                "ssh.run: not a host name: '-oProxyCommand=touch x'",
                "ssh.run: argument 1 (host) must be a string, got nil; "
                "usage: ssh.run(host, argv [, opts])",
                "ssh.run: argument 2 (argv) must be a table, got string; "
                "usage: ssh.run(host, argv [, opts])",
                "ssh.copy: src must be a path, got an empty string",
                "ssh.hosts: no group 'nope' in runbook.yaml ssh.inventory (groups: "]
        for got, w in zip(res.data, want):
            self.assertIn(w, got)
        self.assertEqual(self.actions(primitive="ssh"), [])

    def test_copy_copies_the_file(self):
        data = os.urandom(300 * 1024) + b"\n'quotes' $HOME `x`\n"
        with open(self.path("artifact.bin"), "wb") as f:
            f.write(data)
        dest = os.path.join(self.remote, "a dir", "artifact copy.bin")
        os.makedirs(os.path.dirname(dest))
        res = self.runbook("""
step("copy", function()
  local r = ssh.copy("artifact.bin", "web3", %s)
  out({ code = r.code, ok = r.ok })
  out(ssh.run("web3", { "sha256sum", %s }).stdout:match("^%%x+"))
end)
""" % (lua_str(dest), lua_str(dest)))
        self.assertExit(res, 0)
        want = hashlib.sha256(data).hexdigest()
        with open(dest, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), want)
        self.assertEqual(res.data, [{"code": 0, "ok": True}, want])
        act = self.actions(primitive="ssh")[0]
        self.assertEqual((act["verb"], act["target"], act["class"], act["words"]),
                         ("copy", "web3", "mutate", "scp artifact.bin web3:" + dest))

    def test_copy_failure_names_the_file(self):
        res = self.runbook("""
step("copy", function() ssh.copy("missing.txt", "web1", "/tmp/x") end)
""")
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"scp missing\.txt web1:/tmp/x: exit code \d+: .*missing\.txt"
                                  r".*No such file or directory")


class Inventory(SSHCase):
    def test_hosts_from_runbook_yaml_and_each_in_order(self):
        res = self.runbook("""
step("s", function()
  out(ssh.hosts("web"))
  out(ssh.hosts("db"))
  out(ssh.each("web", function(h) return ssh.run(h, { "echo", h }).stdout end))
  out(ssh.each({ "web3", "web1" }, function(h, i) return i .. ":" .. h end))
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [["web1", "web2", "web3"], ["web1"],
                                    ["web1\n", "web2\n", "web3\n"], ["1:web3", "2:web1"]])

    def test_environment_inventory_first(self):
        self.write_config("""
            environments:
              staging:
                ssh:
                  inventory:
                    web: [web2]
            """)
        res = self.runbook("""
step("s", function() out(ssh.hosts("web")) end)
""", "--env", "staging")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [["web2"]])

    def test_each_failure_names_the_host(self):
        res = self.runbook("""
step("s", function()
  local rs = ssh.each({ "web1", "down", "web2" }, function(h) return ssh.run(h, { "true" }).code end,
                      { check = false })
  out({ rs[1], type(rs[2]) == "table" and rs[2].error or rs[2], rs[3] })
  ssh.each({ "web1", "down" }, function(h) return ssh.run(h, { "true" }) end)
end)
""")
        self.assertExit(res, 1)
        self.assertEqual(res.data[0][0], 0)
        self.assertIn("ssh down true: exit code 255", res.data[0][1])
        self.assertEqual(res.data[0][2], 0)
        self.assertRegex(res.all, r"1 of 2 items failed; item 2: .*ssh down true: exit code 255")


class DryRun(SSHCase):
    def test_reads_run_changes_do_not(self):
        self.write("remote/state", "current\n")
        made = os.path.join(self.remote, "restarted")
        copied = os.path.join(self.remote, "copied")
        self.write("local.txt", "payload\n")
        res = self.runbook("""
step("s", function()
  local r = ssh.run("web1", { "cat", %(state)s })
  out({ stdout = r.stdout, dry = r.dry_run or false })
  local w = ssh.run("web2", { "touch", %(made)s })
  out({ code = w.code, ok = w.ok, dry = w.dry_run })
  local c = ssh.copy("local.txt", "web3", %(copied)s)
  out({ ok = c.ok, dry = c.dry_run })
  local f = ssh.run("web1", { "sh", "-c", "touch " .. %(forced)s }, { readonly = true })
  out(f.code)
end)
""" % dict(state=lua_str(self.path("remote/state")), made=lua_str(made),
           copied=lua_str(copied), forced=lua_str(self.path("remote/forced"))), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"stdout": "current\n", "dry": False},
                                    {"code": 0, "ok": True, "dry": True},
                                    {"ok": True, "dry": True}, 0])
        self.assertFalse(os.path.exists(made), "dry-run ran a remote write")
        self.assertFalse(os.path.exists(copied), "dry-run copied a file")
        # readonly = true is the runbook's word: it runs
        self.assertTrue(os.path.exists(self.path("remote/forced")))
        self.assertIn("would: ssh web2 touch " + made, res.out)
        self.assertIn("would: scp local.txt web3:" + copied, res.out)
        acts = self.actions(primitive="ssh")
        self.assertEqual([(a["target"], a["class"], a["simulated"], a["status"]) for a in acts],
                         [("web1", "read", False, "ok"), ("web2", "mutate", True, "simulated"),
                          ("web3", "mutate", True, "simulated"), ("web1", "read", False, "ok")])
        # only the two reads reached the host, each on its own connection: a
        # dry-run's confined client may not create a ControlMaster socket
        self.assertEqual(self.srv.accepted(), 2)

    def test_dry_run_reuses_a_live_runs_master(self):
        # a live read leaves web1's master up (ControlPersist); the dry-run's
        # client, which may not create one, still uses it: no new connection
        self.write("remote/state", "current\n")
        rb = """
step("s", function()
  out(ssh.run("web1", { "cat", %s }).stdout)
end)
""" % lua_str(self.path("remote/state"))
        live = self.runbook(rb)
        self.assertExit(live, 0)
        before = self.srv.accepted()
        dry = self.runbook(rb, "--dry-run")
        self.assertExit(dry, 0)
        self.assertEqual(dry.data, ["current\n"])
        self.assertEqual(self.srv.accepted(), before, "the dry-run opened a connection of its own")

    def test_remote_commands_are_classified_like_exec(self):
        # a program that leaves a trace when it runs: the allowlist's words
        # (systemctl status vs restart) and readonly_commands decide
        trace = os.path.join(self.remote, "trace")
        tool = self.script("systemctl", 'echo "$@" >> %s\n' % trace)
        mytool = self.script("mytool", 'echo "mytool $@" >> %s\n' % trace)
        self.write_config("""
            readonly_commands:
              - [mytool, show]
            """)
        res = self.runbook("""
step("s", function()
  ssh.run("web1", { %(tool)s, "status", "nginx" })
  ssh.run("web1", { %(tool)s, "--no-pager", "is-active", "nginx" })
  ssh.run("web1", { %(tool)s, "restart", "nginx" })
  ssh.run("web1", { %(mytool)s, "show", "x" })
  ssh.run("web1", { %(mytool)s, "delete", "x" })
end)
""" % dict(tool=lua_str(tool), mytool=lua_str(mytool)), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(self.lines(trace), ["status nginx", "--no-pager is-active nginx",
                                             "mytool show x"])
        self.assertEqual([a["class"] for a in self.actions(primitive="ssh")],
                         ["read", "read", "mutate", "read", "mutate"])
        self.assertIn("would: ssh web1 %s restart nginx" % tool, res.out)


class ConnectionReuse(SSHCase):
    HOSTS = 20

    def test_one_master_per_host(self):
        res = self.runbook("""
step("fan out", function()
  local rs = ssh.each(ssh.hosts("web"), function(h)
    local a = ssh.run(h, { "echo", h }).stdout
    local b = ssh.run(h, { "true" }).code
    local c = ssh.run(h, { "uname" }).code
    return a .. b .. c
  end, { concurrency = 20 })
  out(rs)
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], ["%s\n00" % h for h in self.srv.hosts])
        self.assertEqual(len(self.actions(primitive="ssh")), 60)
        # 60 commands, 20 authenticated connections: one master per host
        self.assertEqual(self.srv.accepted(), 20, self.srv.log_text()[-3000:])
        self.assertEqual(len(self.sockets()), 20)
        # a second run reuses the masters (ControlPersist): no new connection
        res = self.runbook("""
step("again", function()
  ssh.each("web", function(h) return ssh.run(h, { "true" }) end, { concurrency = 20 })
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(self.srv.accepted(), 20)


class Cancel(SSHCase):
    def long_body(self, marker):
        return """
step("long", function()
  ssh.run("web1", { "sh", "-c", "sleep 60; echo %s" }, %%s)
end)
""" % marker

    def cleanup_remote(self, marker):
        # the remote command is a process of this machine too: end it by id
        for pid in processes_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def test_timeout_kills_the_ssh_client(self):
        marker = "rb-ssh-timeout-%d" % os.getpid()
        self.addCleanup(self.cleanup_remote, marker)
        res = self.runbook(self.long_body(marker) % "{ timeout = 1 }")
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"ssh web1 sh -c 'sleep 60; echo %s': timed out after 1\.0 s"
                         % marker)
        self.assertEqual(ssh_clients(marker), [], "the ssh client outlived its timeout")
        act = self.actions(primitive="ssh")[0]
        self.assertEqual(act["status"], "error")

    def test_ctrl_c_kills_the_ssh_client(self):
        marker = "rb-ssh-sigint-%d" % os.getpid()
        self.addCleanup(self.cleanup_remote, marker)
        f = self.write("long.lua", self.runbook_text(self.long_body(marker) % "nil"),
                       dedent=False)
        p = self.spawn("run", f, "--audit", self.audit)
        clients = self.wait_for(lambda: ssh_clients(marker), what="the ssh client", proc=p)
        # and the remote command is running
        self.wait_for(lambda: [x for x in processes_with(marker) if x not in clients],
                      what="the remote command", proc=p)
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=30)
        self.assertEqual(p.returncode, 130, self.spawned_output(p))
        self.assertEqual(ssh_clients(marker), [], "the ssh client outlived Ctrl-C")
        self.assertEqual(self.run_record()["outcome"], "interrupted")


class Scenarios(SSHCase):
    """Mocks answer ssh like any primitive, from its row: nothing connects."""

    RUNBOOK = """
runbook { name = "t/ssh-scenario" }
step("restart", function()
  local st = ssh.run("web1", { "systemctl", "is-active", "app" }, { check = false })
  if st.stdout ~= "active\\n" then
    ssh.run("web1", { "systemctl", "restart", "app" })
  end
  ssh.copy("app.conf", "web1", "/etc/app.conf")
  local ok, err = pcall(ssh.run, "web2", { "uptime" })
  state.err = tostring(err):match("ssh web2 .*")
end)
"""

    def test_mocks_answer_without_connecting(self):
        self.write("rb/restart.lua", self.RUNBOOK)
        self.write("rb/app.conf", "x\n")
        self.write("rb/tests/down.scenario.yaml", """
            runbook: ../restart.lua
            mocks:
              - ssh: { host: web1, argv: [systemctl, is-active, app] }
                respond: { code: 3, stdout: "inactive\\n" }
              - ssh: { host: web1, command: "systemctl restart *" }
              - ssh: { host: web1, dest: /etc/app.conf }
              - ssh: { host: web2, argv: [uptime] }
                respond: { code: 1, stderr: "load too high\\n" }
            expect:
              actions:
                - "ssh web1 systemctl restart app"
                - "scp app.conf web1:/etc/app.conf"
              state: { err: "ssh web2 uptime: exit code 1: load too high" }
            """)
        res = self.rb("test", "rb/tests/down.scenario.yaml")
        self.assertExit(res, 0)
        self.assertEqual(self.srv.accepted(), 0, "a scenario connected to a host")

    def test_record_then_replay(self):
        rb = self.write("rb/rec.lua", """
            runbook { name = "t/ssh-rec" }
            step("s", function()
              local r = ssh.run("web1", { "echo", "recorded" })
              ssh.run("web2", { "touch", %s })
              state.out = r.stdout
            end)
            """ % lua_str(os.path.join(self.remote, "rec")))
        os.makedirs(self.path("scen"))
        res = self.rb("run", rb, "--no-audit", "--yes", "--record", "scen/rec.scenario.yaml")
        self.assertExit(res, 0)
        text = self.read("scen/rec.scenario.yaml")
        self.assertIn("ssh:", text)
        self.assertIn("web1", text)
        self.assertRegex(text, r"recorded\\n|recorded\n")
        before = self.srv.accepted()
        res = self.rb("test", "scen/rec.scenario.yaml")
        self.assertExit(res, 0)
        self.assertEqual(self.srv.accepted(), before, "the replay connected to a host")


if __name__ == "__main__":
    unittest.main(verbosity=2)
