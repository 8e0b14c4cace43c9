"""Who the audit log says ran a runbook (issue 20, item 1, the OS part).

The operator is the account of the process's real uid, from the passwd
database: never USER or LOGNAME, which anyone sets.  A uid without a passwd
entry is recorded as "uid N", not as whatever USER says.  Elevated runs
(real uid 0) record who elevated them (SUDO_USER; PKEXEC_UID resolved to a
name); from any other uid those variables are ignored.  operator_name in
runbook.yaml is recorded as operator_claim, apart, and decides nothing: not
the operator, not `audit list --operator`.  `audit show` prints both, the
claim marked as one.
"""
import json
import os
import pwd
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import BIN, Result, RunbookTestCase  # noqa: E402

ME = pwd.getpwuid(os.getuid()).pw_name
ROOT = os.getuid() == 0


def unused_uid():
    """A uid no passwd entry has."""
    for uid in range(54321, 60000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise unittest.SkipTest("no free uid")


class Identity(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.rbfile = self.write("who.lua", """
            runbook { name = "t/who" }
            step("Ask", function() confirm("Go on") end)
            """)

    def run_who(self, env=None, **kw):
        res = self.run_rb(self.rbfile, "--yes", env=env, **kw)
        self.assertExit(res, 0)
        return self.last_run_id()

    def run_records(self, run_id):
        recs = self.records(run_id, "run")
        self.assertEqual(len(recs), 2, "a start and an end record")
        return recs

    def show(self, run_id, path=None):
        res = self.rb("audit", "show", run_id, "--audit", path or self.audit)
        self.assertExit(res, 0)
        return res.out

    def listed(self, *args, path=None):
        res = self.rb("audit", "list", "--json", "--all", "--audit", path or self.audit, *args)
        self.assertExit(res, 0)
        return [json.loads(l)["run_id"] for l in res.out.splitlines()]

    # ---- USER and LOGNAME name nobody ---------------------------------------

    def test_user_and_logname_do_not_name_the_operator(self):
        rid = self.run_who(env={"USER": "bob", "LOGNAME": "bob"})
        for rec in self.run_records(rid):
            self.assertEqual(rec["operator"], ME, rec)
            self.assertNotIn("operator_claim", rec)
            for key in ("sudo_user", "elevated_by"):
                self.assertNotIn(key, rec, "nothing elevated this run")
        answers = self.actions(rid, primitive="confirm")
        self.assertEqual([a["operator"] for a in answers], [ME], "the answer is ME's too")
        out = self.show(rid)
        self.assertRegex(out, r"(?m)^operator +%s$" % ME)
        self.assertNotIn("bob", out)
        self.assertNotIn("claims", out)
        self.assertNotIn("db role", out, "a SQLite log has no database role")
        self.assertEqual(self.listed("--operator", "bob"), [])
        self.assertEqual(self.listed("--operator", ME), [rid])

    # ---- operator_name is a claim -------------------------------------------

    def test_operator_name_is_recorded_as_a_claim_only(self):
        # a claim that is an account name, and USER agreeing with it: still a claim
        self.write("runbook.yaml", "operator_name: alice\n")
        rid = self.run_who(env={"USER": "alice", "LOGNAME": "alice"})
        for rec in self.run_records(rid):
            self.assertEqual(rec["operator"], ME)
            self.assertEqual(rec["operator_claim"], "alice")
            self.assertNotIn("elevated_by", rec)
        out = self.show(rid)
        self.assertRegex(out, r"(?m)^operator +%s$" % ME)
        self.assertRegex(out, r'(?m)^ +claims to be "alice" \(operator_name in runbook.yaml,'
                              r' not verified\)$')
        listing = self.rb("audit", "list", "--audit", self.audit)
        self.assertExit(listing, 0)
        row = [l for l in listing.out.splitlines() if l.startswith(rid)]
        self.assertEqual(len(row), 1, listing)
        self.assertNotIn("alice", row[0], "the list shows who the system vouches for")
        self.assertEqual(self.listed("--operator", "alice"), [], "a claim selects nothing")

    def test_operator_name_with_a_display_name(self):
        self.write("runbook.yaml", 'operator_name: "Alice Liddell (on call)"\n')
        rid = self.run_who()
        self.assertEqual(self.run_record(rid)["operator_claim"], "Alice Liddell (on call)")
        self.assertEqual(self.run_record(rid)["operator"], ME)
        self.assertIn('claims to be "Alice Liddell (on call)"', self.show(rid))

    def test_bad_operator_name_stops_before_anything_runs(self):
        for text in ("operator_name: [alice]\n", 'operator_name: ""\n', "operator_name: 42\n",
                     'operator_name: "alice\\nroot"\n', "operator_name: %s\n" % ("x" * 201)):
            self.write("runbook.yaml", text)
            res = self.run_rb(self.rbfile, "--yes")
            self.assertExit(res, 2, text)
            self.assertIn("runbook.yaml:1", res.err, text)
            self.assertIn("operator_name", res.err, text)
            self.assertFalse(os.path.exists(self.audit) and self.run_ids(), text)

    # ---- elevation -----------------------------------------------------------

    def test_elevation_is_recorded_only_for_root(self):
        rid = self.run_who(env={"SUDO_USER": "alice", "USER": "bob"})
        rec = self.run_record(rid)
        self.assertEqual(rec["operator"], ME)
        if not ROOT:
            # from anyone but root SUDO_USER and PKEXEC_UID are just variables
            for key in ("sudo_user", "elevated_by", "elevated_via"):
                self.assertNotIn(key, rec)
            rid = self.run_who(env={"PKEXEC_UID": "0"})
            self.assertNotIn("elevated_by", self.run_record(rid))
            self.assertEqual(self.listed("--operator", "alice"), [])
            return
        self.assertEqual((rec["sudo_user"], rec["elevated_by"], rec["elevated_via"]),
                         ("alice", "alice", "sudo"))
        self.assertRegex(self.show(rid), r"(?m)^operator +root \(sudo from alice\)$")
        self.assertEqual(self.listed("--operator", "alice"), [rid])
        # pkexec: the caller's uid, by name
        name1 = pwd.getpwuid(1).pw_name
        rid = self.run_who(env={"PKEXEC_UID": "1"})
        rec = self.run_record(rid)
        self.assertEqual((rec["operator"], rec["elevated_by"], rec["elevated_via"]),
                         ("root", name1, "pkexec"))
        self.assertNotIn("sudo_user", rec)
        self.assertRegex(self.show(rid), r"(?m)^operator +root \(pkexec from %s\)$" % name1)
        uid = unused_uid()
        rid = self.run_who(env={"PKEXEC_UID": str(uid)})
        self.assertEqual(self.run_record(rid)["elevated_by"], "uid %d" % uid)
        # not a uid: nothing is made of it
        rid = self.run_who(env={"PKEXEC_UID": "1; alice"})
        self.assertNotIn("elevated_by", self.run_record(rid))

    # ---- other accounts (needs root to become them) --------------------------

    def run_as(self, uid, gid, env):
        """`runbook run` as uid:gid in a world-writable corner of self.tmp."""
        box = self.path("box")
        os.makedirs(box, exist_ok=True)
        os.chmod(self.tmp, 0o755)
        os.chmod(box, 0o777)
        rbfile = self.write(os.path.join(box, "who.lua"), self.read(self.rbfile))
        log = os.path.join(box, "audit-%d.db" % uid)
        full = self.child_env(dict(env, HOME=box, XDG_STATE_HOME=box))

        def become():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        argv = [BIN, "run", rbfile, "--yes", "--audit", log]
        p = subprocess.run(argv, capture_output=True, text=True, cwd=box, env=full,
                           preexec_fn=become, timeout=60, stdin=subprocess.DEVNULL)
        res = Result(argv, p.returncode, p.stdout, p.stderr)
        self.assertExit(res, 0)
        return self.run_record(path=log), log

    @unittest.skipUnless(ROOT, "becoming another account needs root")
    def test_a_uid_without_a_passwd_entry_is_its_number(self):
        uid = unused_uid()
        rec, log = self.run_as(uid, uid, {"USER": "bob", "LOGNAME": "bob"})
        self.assertEqual(rec["operator"], "uid %d" % uid, "not USER")
        self.assertRegex(self.show(rec["run_id"], log), r"(?m)^operator +uid %d$" % uid)

    @unittest.skipUnless(ROOT, "becoming another account needs root")
    def test_sudo_user_from_a_non_root_account_is_ignored(self):
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no nobody account")
        rec, _ = self.run_as(nobody.pw_uid, nobody.pw_gid,
                             {"SUDO_USER": "alice", "PKEXEC_UID": "0", "USER": "root"})
        self.assertEqual(rec["operator"], "nobody")
        for key in ("sudo_user", "elevated_by", "elevated_via"):
            self.assertNotIn(key, rec)


if __name__ == "__main__":
    unittest.main(verbosity=2)
