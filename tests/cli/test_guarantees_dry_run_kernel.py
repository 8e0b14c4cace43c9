"""Guarantee under attack: a dry-run is enforced by the kernel, not only by
classification.

In --dry-run every process the engine starts runs under a Landlock ruleset
with no file-system write rights but /dev/null (and a seccomp filter for the
metadata Landlock does not govern: times, modes, owners, attributes), and the
engine confines itself once it has opened its audit log.  So a command the
classifier lets through as a read but that writes anyway is refused by the
kernel: the file is unchanged, the run prints `blocked: <words> tried to
write <path> during a dry-run`, the audit records the action `blocked`, and
the runbook's error handling decides what follows.

Each attack is first shown to be real (run directly, the program changes its
file).  Where the kernel has no Landlock (faked here by tests/tools/
no_landlock, a seccomp filter that makes the Landlock system calls fail with
ENOSYS) the header says `dry-run not kernel-enforced (no Landlock)`, and
`--strict` refuses to start: exit 2, nothing run (no request reached the
test server, no file written, no run in the audit log).
"""
import ctypes
import hashlib
import os
import subprocess
import unittest

import rbtest
from rbtest import RunbookTestCase, lua_str


def landlock_abi():
    """The kernel's Landlock ABI version, 0 without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    v = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return v if v > 0 else 0


def no_landlock_tool():
    p = os.environ.get("RUNBOOK_NO_LANDLOCK")
    if p:
        return p
    return os.path.join(os.path.dirname(os.path.abspath(rbtest.BIN)), "tests", "no_landlock")


def state(path):
    """Everything a write could change about a file: None when absent."""
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return (digest, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid, st.st_gid)


def tree(path):
    """A directory's entries and each file's state."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            out[os.path.relpath(p, path)] = state(p) if os.path.isfile(p) else "dir"
    return out


# A "reader" the runbook's config trusts (readonly_commands) that writes
# anyway, one way per verb: what a compromised or buggy tool would do.
WRITER = r"""
target=$2
case "$1" in
  create)   echo pwned > "$target" ;;
  append)   echo pwned >> "$target" ;;
  truncate) : > "$target" ;;
  remove)   rm -f "$target" ;;
  rename)   mv "$target" "$target.moved" ;;
  link)     ln -s /etc/passwd "$target.link" ;;
  mkdir)    mkdir "$target.d" ;;
  touch)    touch "$target" ;;
  chmod)    chmod 600 "$target" ;;
  fifo)     mkfifo "$target.fifo" ;;
esac
"""
VERBS = ["create", "append", "truncate", "remove", "rename", "link", "mkdir", "touch", "chmod",
         "fifo"]


@unittest.skipUnless(landlock_abi() > 0, "the kernel has no Landlock")
class KernelEnforced(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.script("mywriter", WRITER)
        self.write("runbook.yaml", """
            readonly_commands:
              - [mywriter]
            """)
        self.victims = self.path("victims")
        os.makedirs(self.victims)

    def victim(self, name):
        p = os.path.join(self.victims, name)
        with open(p, "w") as f:
            f.write("precious\n")
        os.chmod(p, 0o644)
        os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
        return p

    def test_each_attack_is_real_when_run_directly(self):
        for verb in VERBS:
            p = self.victim("real-" + verb)
            before = tree(self.victims)
            subprocess.run([os.path.join(self.bindir, "mywriter"), verb, p], check=True)
            self.assertNotEqual(tree(self.victims), before, "%s changed nothing" % verb)

    def test_a_reader_that_writes_is_blocked_and_recorded(self):
        target = self.path("victims", "PWNED")
        res = self.run_body("""
            step("read", function()
              local ok, err = pcall(exec, { "mywriter", "create", %(t)s })
              out({ ok = ok, err = tostring(err) })
              local r = exec({ "mywriter", "create", %(t)s }, { check = false })
              out({ code = r.code, blocked = r.blocked })
            end)
            """ % dict(t=lua_str(target)), "--dry-run")
        self.assertExit(res, 0)  # the runbook handled the errors
        self.assertFalse(os.path.exists(target), "a dry-run's child wrote " + target)
        self.assertIn("blocked: exec mywriter create %s tried to write %s during a dry-run"
                      % (target, target), res.out)
        self.assertFalse(res.data[0]["ok"])
        self.assertIn("blocked: tried to write %s during a dry-run" % target, res.data[0]["err"])
        self.assertNotEqual(res.data[1]["code"], 0)
        self.assertEqual(res.data[1]["blocked"], target)
        acts = self.actions(primitive="exec")
        self.assertEqual([(a["class"], a["simulated"], a["status"]) for a in acts],
                         [("read", False, "blocked")] * 2)
        self.assertIn("Permission denied", acts[0].get("stderr", ""))

    def test_unhandled_the_step_fails_as_a_failed_command_would(self):
        target = self.path("victims", "PWNED")
        res = self.run_body("""
            step("read", function()
              exec({ "mywriter", "create", %s })
            end)
            step("after", function() out("after ran") end)
            """ % lua_str(target), "--dry-run")
        self.assertExit(res, 1)
        self.assertFalse(os.path.exists(target))
        self.assertEqual(res.data, [])
        self.assertEqual(self.step_status(), {"read": "failed"})
        self.assertEqual(self.run_record()["outcome"], "failed")

    def test_no_kind_of_write_gets_through(self):
        victims = {verb: self.victim(verb) for verb in VERBS}
        before = tree(self.victims)
        calls = "".join('  out(exec({ "mywriter", %s, %s }, { check = false }).code)\n'
                        % (lua_str(v), lua_str(p)) for v, p in victims.items())
        res = self.run_body('step("read", function()\n%send)\n' % calls, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(tree(self.victims), before)
        self.assertTrue(all(code != 0 for code in res.data), res.data)
        acts = self.actions(primitive="exec")
        self.assertEqual([a["status"] for a in acts], ["blocked"] * len(VERBS),
                         [(a["words"], a.get("stderr")) for a in acts])
        for verb in VERBS:
            self.assertRegex(res.out, r"blocked: exec mywriter %s \S+ tried to write \S*%s"
                             % (verb, verb))

    def test_the_same_reader_writes_in_a_live_run(self):
        target = self.path("victims", "LIVE")
        res = self.run_body('step("read", function() exec({ "mywriter", "create", %s }) end)'
                            % lua_str(target))
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(target))
        self.assertEqual([a["status"] for a in self.actions(primitive="exec")], ["ok"])

    def test_children_keep_their_pipes_and_dev_null(self):
        res = self.run_body("""
            step("read", function()
              local r = sh("echo to-stdout; echo to-stderr >&2; echo gone > /dev/null; cat",
                           { readonly = true, stdin = "from-stdin" })
              out({ r.code, r.stdout, r.stderr })
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[0, "to-stdout\nfrom-stdin", "to-stderr\n"]])

    def test_children_cannot_write_where_the_engine_may(self):
        # the engine keeps the right to write its audit log's directory;
        # its children do not: not a new file there, not the database
        audit_dir = os.path.dirname(self.audit)
        evil = os.path.join(audit_dir, "evil")
        before = state(self.audit)
        res = self.run_body("""
            step("read", function()
              out(exec({ "mywriter", "create", %s }, { check = false }).code)
              out(exec({ "mywriter", "truncate", %s }, { check = false }).code)
            end)
            """ % (lua_str(evil), lua_str(self.audit)), "--dry-run")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(evil))
        self.assertNotEqual(state(self.audit), before)  # the run itself was recorded ...
        self.assertEqual(self.verify().code, 0)  # ... and the chain is intact
        self.assertEqual([a["status"] for a in self.actions(primitive="exec")],
                         ["blocked", "blocked"])

    def test_the_engine_confines_itself(self):
        # Landlock shows nowhere in /proc; confining oneself without
        # privileges requires no_new_privs, which /proc does show, and which
        # runbook sets only to confine.  A child reads its parent's (the engine's).
        body = """
            step("read", function()
              out(sh("grep NoNewPrivs /proc/$PPID/status", { readonly = true }).stdout)
            end)
            """
        dry = self.run_body(body, "--dry-run")
        self.assertExit(dry, 0)
        self.assertEqual(dry.data, ["NoNewPrivs:\t1\n"])
        self.assertNotIn("not kernel-enforced", dry.out)
        live = self.run_body(body)
        self.assertExit(live, 0)
        self.assertEqual(live.data, ["NoNewPrivs:\t0\n"])

    def test_strict_runs_where_the_kernel_enforces(self):
        res = self.run_body('step("s", function() out(exec({ "cat", "runbook.yaml" }).code) end)',
                            "--dry-run", "--strict")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [0])


class WithoutLandlock(RunbookTestCase):
    """The fallback, on a kernel made to look like one without Landlock."""

    def setUp(self):
        super().setUp()
        self.tool = no_landlock_tool()
        self.assertTrue(os.access(self.tool, os.X_OK), "no test helper at " + self.tool)
        self.marker = self.path("MARKER")
        self.script("mywriter", WRITER)
        self.write("runbook.yaml", """
            readonly_commands:
              - [mywriter]
            """)

    def run_unconfined(self, file, *flags):
        args = [self.tool, rbtest.BIN, "run", file, "--audit", self.audit] + list(flags)
        p = subprocess.run(args, capture_output=True, text=True, cwd=self.tmp, env=self.env,
                           timeout=rbtest.DEFAULT_TIMEOUT, start_new_session=True)
        return rbtest.Result(args, p.returncode, p.stdout, p.stderr)

    def runbook_file(self, srv):
        # acts at the top level and in a step: a read that reaches the
        # server, and a "reader" that writes
        return self.write("case.lua", self.runbook_text("""
            http.get(%(url)s)
            step("s", function()
              http.get(%(url)s)
              exec({ "mywriter", "create", %(m)s })
            end)
            """ % dict(url=lua_str(srv.url("/read")), m=lua_str(self.marker))), dedent=False)

    def test_the_header_says_the_dry_run_is_not_kernel_enforced(self):
        srv = self.httpd()
        res = self.run_unconfined(self.runbook_file(srv), "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("dry-run not kernel-enforced (no Landlock)", res.out)
        self.assertEqual(len(srv.requests(path="/read")), 2)  # reads still run

    def test_strict_refuses_to_start(self):
        srv = self.httpd()
        res = self.run_unconfined(self.runbook_file(srv), "--dry-run", "--strict")
        self.assertExit(res, 2)
        self.assertIn("cannot be enforced by the kernel (no Landlock); nothing was run", res.err)
        self.assertEqual(srv.requests(), [], "a refused dry-run reached the server")
        self.assertFalse(os.path.exists(self.marker))
        self.assertFalse(os.path.exists(self.audit) and self.run_ids(),
                         "a refused dry-run was recorded as a run")

    def test_the_repl_refuses_a_strict_dry_run(self):
        args = [self.tool, rbtest.BIN, "repl", "--strict", "--no-audit"]
        run = lambda extra, stdin: subprocess.run(
            args + extra, input=stdin, capture_output=True, text=True, cwd=self.tmp,
            env=self.env, timeout=rbtest.DEFAULT_TIMEOUT, start_new_session=True)
        p = run(["--dry-run"], "print('ran')\n")
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("cannot be enforced by the kernel", p.stderr)
        self.assertNotIn("ran", p.stdout)
        p = run([], ".dry on\nprint('dry=' .. tostring(dry_run()))\n")
        self.assertIn(".dry stays off", p.stderr)
        self.assertIn("dry=false", p.stdout)

    def test_strict_needs_a_dry_run(self):
        srv = self.httpd()
        res = self.rb("run", self.runbook_file(srv), "--strict", "--audit", self.audit)
        self.assertExit(res, 2)
        self.assertIn("--strict applies to a --dry-run", res.err)
        self.assertEqual(srv.requests(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
