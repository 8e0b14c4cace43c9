"""Guarantee: --dry-run changes nothing, however a command dresses a write
as a read.  The one classifier (src/core/classify.c) used to match only a
program's file name, so each attack below ran for real in a dry-run:

  a look-alike      ./script/test counted as `test`
  git               -c diff.external=..., GIT_EXTERNAL_DIFF in opts.env,
                    diff --output=FILE
  reader options    find -delete, sed -i, sort -o, file -C
  wrappers          timeout 5 touch F, env X=1 touch F

Each attack is first shown to be real: the same argv, run directly, creates
or changes its file.  Then, in --dry-run, the file is the same (absent, or
the same bytes by hash), the output says `would:` for the command and the
audit records the action as a simulated change.  And the reads operators
run in every incident (du, find -name, journalctl --disk-usage, sudo -n
cat) still run for real in --dry-run, their output the real one.
"""
import hashlib
import os
import shutil
import subprocess
import unittest

import rbtest
from rbtest import lua_str


def lua_list(words):
    return "{ " + ", ".join(lua_str(w) for w in words) + " }"


def lua_env(env):
    return "{ " + ", ".join("[%s] = %s" % (lua_str(k), lua_str(v)) for k, v in env.items()) + " }"


def state(path):
    """A file's state: None when absent, else the hash of its bytes."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def landlock_abi():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return max(libc.syscall(444, None, 0, 1), 0)


class ClassifierAttacks(rbtest.RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.work = self.path("work")
        os.makedirs(self.work)

    # ---- the world each attack needs ------------------------------------

    def git_repo(self):
        """A real repository with a committed file changed in the work tree."""
        repo = self.path("work", "repo")
        os.makedirs(repo)
        env = self.child_env({"GIT_CONFIG_NOSYSTEM": "1"})

        def git(*a):
            subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                            "-c", "init.defaultBranch=main"] + list(a),
                           cwd=repo, env=env, check=True, capture_output=True)
        git("init", "-q")
        with open(os.path.join(repo, "app.conf"), "w") as f:
            f.write("workers = 2\n")
        git("add", "app.conf")
        git("commit", "-q", "-m", "first")
        with open(os.path.join(repo, "app.conf"), "w") as f:
            f.write("workers = 8\n")
        return repo

    def victim(self, name, text):
        p = os.path.join(self.work, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    # ---- the check -------------------------------------------------------

    def attack(self, argv, target, cwd, env=None, shown=None):
        """argv would create or change target: prove it directly, then
        assert a dry-run leaves target as it is, says `would:` and audits
        a simulated change."""
        before = state(target)
        # the attack is real: run directly, it changes target
        backup = target + ".orig"
        if before is not None:
            shutil.copy2(target, backup)
        subprocess.run(argv, cwd=cwd, env=self.child_env(env), capture_output=True, timeout=60)
        self.assertNotEqual(state(target), before, "the attack itself is not real: %s" % argv)
        if before is None:
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
        else:
            shutil.copy2(backup, target)
            os.remove(backup)
        self.assertEqual(state(target), before)

        opts = {"cwd": lua_str(cwd)}
        if env:
            opts["env"] = lua_env(env)
        call = "exec(%s, { %s })" % (lua_list(argv), ", ".join("%s = %s" % kv for kv in opts.items()))
        res = self.run_body('step("attack", function() out(%s.code) end)\n' % call, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(state(target), before, "dry-run changed %s: %s\n%r" % (target, argv, res))
        self.assertIn("would: " + (shown or argv[0]), res.out, res)
        acts = self.actions(primitive="exec")
        self.assertEqual(len(acts), 1, acts)
        self.assertEqual(acts[0]["class"], "mutate", acts[0])
        self.assertTrue(acts[0]["simulated"], acts[0])

    # ---- the attacks ---------------------------------------------------

    def test_look_alike_named_test(self):
        pwn = os.path.join(self.work, "PWNED")
        os.makedirs(os.path.join(self.work, "script"))
        p = os.path.join(self.work, "script", "test")
        with open(p, "w") as f:
            f.write("#!/bin/sh\ntouch %s\n" % pwn)
        os.chmod(p, 0o755)
        self.attack(["./script/test"], pwn, self.work, shown="./script/test")

    def test_look_alike_cat_by_absolute_path(self):
        pwn = os.path.join(self.work, "PWNED")
        os.makedirs(os.path.join(self.work, "x"))
        p = os.path.join(self.work, "x", "cat")
        with open(p, "w") as f:
            f.write("#!/bin/sh\ntouch %s\n" % pwn)
        os.chmod(p, 0o755)
        self.attack([p, "/etc/hostname"], pwn, self.work, shown=p)

    @unittest.skipUnless(shutil.which("git"), "git not installed")
    def test_git_config_diff_external(self):
        repo = self.git_repo()
        pwn = os.path.join(self.work, "PWNED")
        self.attack(["git", "-c", "diff.external=touch %s; true" % pwn, "diff"], pwn, repo,
                    shown="git -c")

    @unittest.skipUnless(shutil.which("git"), "git not installed")
    def test_git_external_diff_in_env(self):
        repo = self.git_repo()
        pwn = os.path.join(self.work, "PWNED")
        self.attack(["git", "diff"], pwn, repo, env={"GIT_EXTERNAL_DIFF": "touch %s; true" % pwn},
                    shown="git diff")

    @unittest.skipUnless(shutil.which("git"), "git not installed")
    def test_git_diff_output(self):
        repo = self.git_repo()
        out = os.path.join(self.work, "diff.out")
        self.attack(["git", "diff", "--output=" + out], out, repo, shown="git diff --output")

    def test_find_delete(self):
        v = self.victim("old.log", "keep me\n")
        self.attack(["find", ".", "-name", "*.log", "-delete"], v, self.work, shown="find")

    def test_sed_in_place(self):
        v = self.victim("app.conf", "workers = 2\n")
        self.attack(["sed", "-i", "s/2/8/", v], v, self.work, shown="sed -i")

    def test_sort_output(self):
        v = self.victim("hosts.txt", "b\na\n")
        self.attack(["sort", "-o", v, v], v, self.work, shown="sort -o")

    @unittest.skipUnless(shutil.which("file"), "file not installed")
    def test_file_compile(self):
        self.victim("magic", "0\tstring\tRBTEST\trbtest data\n")
        mgc = os.path.join(self.work, "magic.mgc")
        self.attack(["file", "-C", "-m", "magic"], mgc, self.work, shown="file -C")

    def test_timeout_touch(self):
        f = os.path.join(self.work, "F")
        self.attack(["timeout", "5", "touch", f], f, self.work, shown="timeout 5 touch")

    def test_env_assignment_touch(self):
        f = os.path.join(self.work, "F")
        self.attack(["env", "X=1", "touch", f], f, self.work, shown="env X=1 touch")


class ReadsStillRun(rbtest.RunbookTestCase):
    """Reads run for real in --dry-run: their output is the command's own."""

    def read(self, argv, want, cwd=None):
        call = "exec(%s, { cwd = %s })" % (lua_list(argv), lua_str(cwd or self.tmp))
        res = self.run_body('step("read", function() out(%s.stdout) end)\n' % call, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(len(res.data), 1, res)
        self.assertIn(want, res.data[0], res)
        self.assertNotIn("would: " + argv[0], res.out, res)
        acts = self.actions(primitive="exec")
        self.assertEqual(len(acts), 1, acts)
        self.assertEqual(acts[0]["class"], "read", acts[0])
        self.assertFalse(acts[0]["simulated"], acts[0])
        return res

    def test_du(self):
        os.makedirs(self.path("logs"))
        self.write("logs/app.log", "x" * 10000)
        self.read(["du", "-s", "logs"], "logs")

    def test_find_name(self):
        os.makedirs(self.path("d"))
        self.write("d/x", "")
        self.read(["find", ".", "-name", "x"], "./d/x")

    def test_timeout_cat(self):
        self.write("motd", "hello from the real file\n")
        self.read(["timeout", "-s", "KILL", "5", "cat", "motd"], "hello from the real file")

    @unittest.skipUnless(shutil.which("journalctl"), "journalctl not installed")
    def test_journalctl_disk_usage(self):
        call = 'exec({ "journalctl", "--disk-usage" }, { check = false })'
        res = self.run_body('step("read", function() out(%s.code) end)\n' % call, "--dry-run")
        self.assertExit(res, 0)
        self.assertNotIn("would: journalctl", res.out, res)
        acts = self.actions(primitive="exec")
        self.assertEqual((acts[0]["class"], acts[0]["simulated"]), ("read", False), acts[0])
        # it ran: its exit code is journalctl's, not a dry-run's stand-in 0
        real = subprocess.run(["journalctl", "--disk-usage"], capture_output=True, timeout=60)
        self.assertEqual(res.data, [real.returncode], res)

    @unittest.skipUnless(shutil.which("sudo"), "sudo not installed")
    def test_sudo_cat(self):
        self.write("motd", "read through sudo\n")
        probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=60)
        if probe.returncode != 0:
            self.skipTest("sudo -n needs a password here")
        if os.geteuid() != 0 and landlock_abi() > 0:
            # a kernel-enforced dry-run runs with no_new_privs, which turns
            # sudo's setuid bit off: as root sudo is not needed to be root
            self.skipTest("sudo in an enforced dry-run works only as root (docs/dry-run.md)")
        self.read(["sudo", "-n", "cat", self.path("motd")], "read through sudo")


if __name__ == "__main__":
    unittest.main()
