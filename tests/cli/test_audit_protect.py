"""The audit log protects itself and others (issue 15, item 4).

- A path that holds another application's SQLite database, or a file that is
  not SQLite at all, is refused with exit 2 before anything runs, and the
  file is left exactly as it was: same bytes, same mtime, no -wal, -shm or
  -journal beside it, no table added, journal mode unchanged.  The audit
  commands refuse it the same way.
- A new log is built in a temporary file and renamed into place: a kill -9
  at any syscall of the creation (strace injects the SIGKILL, syscall by
  syscall) or after a random delay leaves no log or one that `audit verify`
  and `audit list` accept; a temporary file a kill left behind is removed by
  the next run that creates the log.  Runs creating the log at once all end
  up in the same log.
- A log locked by another process (a real second process holding a write
  transaction) stops a run after --audit-wait / audit_wait with exit 1, a
  message naming the holder's pid and what SQLite says, and nothing done.
"""
import glob
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

from rbtest import BIN, RunbookTestCase, lua_str

APPLICATION_ID = 0x5242414C  # "RBAL", src/core/audit.h

# A process holding a lock on a database: BEGIN <mode>, then it writes its
# pid to `ready` and keeps the transaction open until `release` exists.
HOLDER = r"""
import os, sqlite3, sys, time
db, ready, release, mode = sys.argv[1:5]
c = sqlite3.connect(db, isolation_level=None, timeout=30)
c.execute("BEGIN " + mode)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while not os.path.exists(release):
    time.sleep(0.02)
c.execute("ROLLBACK")
c.close()
"""

# Another application that keeps its WAL database open (its schema still
# only in the WAL: nothing checkpointed) until `release` exists.
APP_IN_USE = r"""
import os, sqlite3, sys, time
db, ready, release = sys.argv[1:4]
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode = WAL")
c.execute("PRAGMA wal_autocheckpoint = 0")
c.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL)")
c.execute("INSERT INTO invoices(total) VALUES (12.5)")
open(ready, "w").close()
while not os.path.exists(release):
    time.sleep(0.02)
c.close()
"""


def snapshot(path):
    """What must not change: bytes and mtime of path and of every file
    beside it whose name starts with its name (-wal, -shm, -journal)."""
    d, base = os.path.split(path)
    out = {}
    for name in sorted(os.listdir(d)):
        if name.startswith(base):
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[name] = (hashlib.sha256(f.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def header(path):
    with open(path, "rb") as f:
        return f.read(100)


def temps(d):
    return sorted(n for n in os.listdir(d) if re.match(r"^\.audit\.db\.\d+\.[0-9a-f]{8}\.tmp", n))


class Base(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.marker = self.path("marker")
        self.rb_file = self.write("act.lua", """
            runbook { name = "t/act" }
            step("Act", function() exec{"touch", %s} end)
            """ % lua_str(self.marker))

    def assertUntouched(self, path, before, res, why):
        self.assertExit(res, 2)
        self.assertIn(os.path.basename(path), res.err)  # as given, or as configured
        self.assertIn("not a runbook audit log", res.err)
        self.assertIn(why, res.err)
        self.assertNotIn("Traceback", res.err)
        self.assertEqual(snapshot(path), before, "the file (or a file beside it) was changed")
        self.assertFalse(os.path.exists(self.marker), "an action ran")

    def assertLog(self, path):
        """path is a complete runbook audit log."""
        for cmd in (("audit", "verify"), ("audit", "list")):
            res = self.rb(*cmd, "--audit", path)
            self.assertExit(res, 0, "%s rejects %s" % (" ".join(cmd), path))
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertEqual(con.execute("PRAGMA application_id").fetchone()[0], APPLICATION_ID)
            self.assertEqual(con.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        finally:
            con.close()


class ForeignDatabase(Base):
    def foreign(self, name, wal=False, app_id=0):
        p = self.path(name)
        con = sqlite3.connect(p)
        if wal:
            con.execute("PRAGMA journal_mode = WAL")
        if app_id:
            con.execute("PRAGMA application_id = %d" % app_id)
        con.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO users(name) VALUES ('ada'), ('grace')")
        con.commit()
        con.close()
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(name)), [name])
        return p

    def check_refused(self, p, why):
        before, head = snapshot(p), header(p)
        time.sleep(0.01)  # a write would show in mtime_ns
        res = self.run_rb(self.rb_file, audit=p)
        self.assertUntouched(p, before, res, why)
        self.assertEqual(header(p), head)  # journal mode (bytes 18-19) and application_id
        for cmd in (("audit", "list"), ("audit", "verify"), ("audit", "export"),
                    ("audit", "show", "20260101")):
            res = self.rb(*cmd, "--audit", p)
            self.assertUntouched(p, before, res, why)
        if why != "not an SQLite database":
            con = sqlite3.connect(p)
            self.assertEqual([r[0] for r in con.execute("SELECT name FROM sqlite_master")],
                             ["users"])
            con.close()

    def test_rollback_journal_database_is_refused(self):
        p = self.foreign("app.db")
        self.check_refused(p, "tables: users")
        self.assertEqual(header(p)[18:20], b"\x01\x01", "switched to WAL")

    def test_wal_database_is_refused(self):
        p = self.foreign("app.db", wal=True)
        self.check_refused(p, "tables: users")

    def test_other_application_id_is_refused(self):
        p = self.foreign("app.db", app_id=0x12345678)
        self.check_refused(p, "application_id 0x12345678")

    def test_text_file_is_refused(self):
        p = self.write("notes.db", "not a database\n" * 40)
        self.check_refused(p, "not an SQLite database")

    def test_configured_path_is_refused_too(self):
        p = self.foreign("app.db", wal=True)
        self.write("runbook.yaml", "audit: app.db\n")
        before = snapshot(p)
        res = self.rb("run", self.rb_file)
        self.assertUntouched(p, before, res, "tables: users")
        res = self.rb("audit", "list")
        self.assertUntouched(p, before, res, "tables: users")

    def test_database_in_use_by_its_application(self):
        """Its schema is only in the WAL the application keeps open: read
        through it, refused, and neither the database nor its WAL written."""
        p, ready, release = self.path("app.db"), self.path("ready"), self.path("release")
        app = subprocess.Popen([sys.executable, "-c", APP_IN_USE, p, ready, release])
        self.addCleanup(app.wait, 30)
        self.addCleanup(lambda: open(release, "w").close())
        self.wait_file(ready, nonempty=False)
        before = snapshot(p)
        self.assertIn("app.db-wal", before)
        main_before = before["app.db"]
        wal_before = before["app.db-wal"]
        res = self.run_rb(self.rb_file, audit=p)
        self.assertExit(res, 2)
        self.assertIn("tables: invoices", res.err)
        self.assertFalse(os.path.exists(self.marker))
        after = snapshot(p)
        self.assertEqual(after["app.db"], main_before)
        self.assertEqual(after["app.db-wal"], wal_before)
        open(release, "w").close()
        app.wait(30)
        con = sqlite3.connect(p)
        self.assertEqual(con.execute("SELECT total FROM invoices").fetchall(), [(12.5,)])
        self.assertEqual([r[0] for r in con.execute("SELECT name FROM sqlite_master")],
                         ["invoices"])
        con.close()

    def test_empty_file_becomes_a_log(self):
        """Decided: a 0-byte file (or SQLite with no schema at all) holds
        nothing of anyone's, so it becomes the log, in one transaction."""
        p = self.path("empty.db")
        open(p, "w").close()
        self.assertExit(self.run_rb(self.rb_file, audit=p), 0)
        self.assertTrue(os.path.exists(self.marker))
        self.assertLog(p)
        q = self.path("noschema.db")
        con = sqlite3.connect(q)
        con.execute("PRAGMA journal_mode = WAL")  # a header, no table
        con.close()
        self.assertExit(self.run_rb(self.rb_file, audit=q), 0)
        self.assertLog(q)

    def test_log_without_application_id_is_still_ours(self):
        """A log written before the application_id existed (its schema still
        in the WAL of a process that keeps it open) is accepted and marked."""
        p, ready, release = self.path("old.db"), self.path("ready"), self.path("release")
        old = r"""
import os, sqlite3, sys, time
db, ready, release = sys.argv[1:4]
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode = WAL")
c.execute("PRAGMA wal_autocheckpoint = 0")
c.executescript('''BEGIN; CREATE TABLE records(seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
  kind TEXT NOT NULL, ts TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
  CREATE INDEX records_runs ON records(run_id, seq) WHERE kind = 'run';
  PRAGMA user_version = 1; COMMIT;''')
open(ready, "w").close()
while not os.path.exists(release):
    time.sleep(0.02)
c.close()
"""
        proc = subprocess.Popen([sys.executable, "-c", old, p, ready, release])
        self.addCleanup(proc.wait, 30)
        self.addCleanup(lambda: open(release, "w").close())
        self.wait_file(ready, nonempty=False)
        self.assertExit(self.run_rb(self.rb_file, audit=p), 0)
        open(release, "w").close()
        proc.wait(30)
        self.assertLog(p)
        self.assertEqual(len(self.run_ids(p)), 1)


STRACE = shutil.which("strace")


class AtomicCreation(Base):
    def fresh(self, n):
        d = self.path("logs", str(n))
        os.makedirs(d)
        return d, os.path.join(d, "audit.db")

    def after_kill(self, d, log):
        """Whatever a kill left: no log, or a valid one; then the next run
        works, and leaves no temporary file."""
        left_log = os.path.exists(log)
        left_temp = bool(temps(d))
        if left_log:
            self.assertLog(log)
        res = self.run_rb(self.rb_file, audit=log)
        self.assertExit(res, 0)
        self.assertLog(log)
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)  # who did what: private
        self.assertEqual(temps(d), [], "a temporary file survived the next run")
        return left_log, left_temp

    def traced_env(self):
        """The environment of a run under strace: LeakSanitizer cannot work
        under ptrace and fails the run (the ASan build of CI's stage 2)."""
        env = self.child_env()
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        return env

    def creation_syscalls(self):
        """The syscalls of a run's main thread from the temporary file's
        creation to a little past its rename into place, each as (name, n):
        the n-th call of that syscall, which strace's when=n counts."""
        d, log = self.fresh("trace")
        out = self.path("trace.txt")
        subprocess.run([STRACE, "-o", out, BIN, "run", self.rb_file, "--audit", log],
                       env=self.traced_env(), check=True, capture_output=True, timeout=60)
        calls = [l for l in self.read(out).splitlines()
                 if not l.startswith(("---", "+++")) and "(" in l]
        start = next(i for i, l in enumerate(calls) if "O_EXCL" in l and ".tmp" in l)
        rename = next(i for i, l in enumerate(calls) if l.startswith(("renameat2(", "link(")))
        self.assertLess(start, rename)
        seen, out = {}, []
        for i, l in enumerate(calls[:rename + 12]):
            name = l[:l.index("(")]
            seen[name] = seen.get(name, 0) + 1
            if i >= start - 1:
                out.append((name, seen[name]))
        return out

    @unittest.skipUnless(STRACE, "strace is not installed")
    def test_kill_9_at_every_syscall_of_the_creation(self):
        outcomes = set()
        for i, (name, n) in enumerate(self.creation_syscalls()):
            d, log = self.fresh(i)
            p = subprocess.run(
                [STRACE, "-o", os.devnull, "-e", "inject=%s:signal=KILL:when=%d" % (name, n),
                 BIN, "run", self.rb_file, "--audit", log],
                env=self.traced_env(), capture_output=True, timeout=60)
            self.assertNotEqual(p.returncode, 0, "%s #%d: not killed" % (name, n))
            outcomes.add(self.after_kill(d, log))
        # the sweep did hit the creation: some kills left only a temporary
        # file, some a complete log
        self.assertIn((False, True), outcomes)
        self.assertTrue(any(left_log for left_log, _ in outcomes), outcomes)

    def test_kill_9_after_random_delays(self):
        rnd = random.Random(15)
        for n in range(25):
            d, log = self.fresh(n)
            p = subprocess.Popen([BIN, "run", self.rb_file, "--audit", log],
                                 env=self.child_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, 0.02))
            p.send_signal(signal.SIGKILL)
            p.wait(30)
            self.after_kill(d, log)

    def test_runs_creating_the_log_at_once_share_it(self):
        for round_ in range(3):
            d, log = self.fresh("race-%d" % round_)
            procs = [self.spawn("run", self.rb_file, "--audit", log) for _ in range(6)]
            for p in procs:
                p.wait(60)
                self.assertExit(self.spawned_output(p), 0)
            self.assertLog(log)
            self.assertEqual(len(self.run_ids(log)), 6, "a run's records are not in the log")
            self.assertEqual(temps(d), [])

    def test_stray_temporary_files_do_not_disturb(self):
        """A temporary file of a dead process is removed by the next run
        that creates the log; one of a live process is left alone; neither
        is ever taken for the log."""
        d, log = self.fresh("stray")
        dead = subprocess.Popen(["true"])
        dead.wait()
        junk = os.path.join(d, ".audit.db.%d.0badc0de.tmp" % dead.pid)
        live = os.path.join(d, ".audit.db.%d.0badc0de.tmp" % os.getpid())
        for p in (junk, junk + "-wal", live):
            with open(p, "w") as f:
                f.write("half a log")
        self.assertExit(self.run_rb(self.rb_file, audit=log), 0)
        self.assertLog(log)
        self.assertFalse(os.path.exists(junk))
        self.assertFalse(os.path.exists(junk + "-wal"))
        self.assertTrue(os.path.exists(live))


class Locked(Base):
    def setUp(self):
        super().setUp()
        self.assertExit(self.run_rb(self.rb_file), 0)  # the log exists
        os.unlink(self.marker)
        self.count = len(self.records())

    def hold(self, mode="IMMEDIATE"):
        ready, release = self.path("ready-" + mode), self.path("release-" + mode)
        h = subprocess.Popen([sys.executable, "-c", HOLDER, self.audit, ready, release, mode])
        self.addCleanup(h.wait, 30)
        self.addCleanup(lambda: open(release, "w").close())
        pid = int(self.wait_file(ready))
        self.assertEqual(pid, h.pid)
        return h, release

    def assertLockedOut(self, res, pid):
        self.assertExit(res, 1)
        self.assertRegex(res.err, r"the audit log (%s|audit\.db) is locked by another process"
                         % re.escape(self.audit))
        self.assertIn("pid %d (%s" % (pid, sys.executable), res.err)
        self.assertIn("holds its write lock", res.err)
        self.assertIn("database is locked", res.err)  # what SQLite says
        self.assertIn("journal mode wal", res.err)
        self.assertIn("kill %d" % pid, res.err)  # what to do
        self.assertIn("--audit-wait", res.err)
        self.assertIn("nothing was run", res.err)
        self.assertFalse(os.path.exists(self.marker), "an action ran without its record")

    def released(self, h, release):
        open(release, "w").close()
        h.wait(30)
        self.assertEqual(len(self.records()), self.count, "something was recorded")
        self.assertExit(self.verify(), 0)

    def test_locked_log_stops_the_run_after_the_wait(self):
        for mode in ("IMMEDIATE", "EXCLUSIVE"):
            h, release = self.hold(mode)
            res = self.run_rb(self.rb_file, "--audit-wait", "0.3s")
            self.assertLockedOut(res, h.pid)
            self.assertIn("after waiting 0.3 s", res.err)
            self.released(h, release)

    def test_wait_from_runbook_yaml(self):
        self.write("runbook.yaml", """
            audit: audit.db
            audit_wait: 1s
            environments:
              prod:
                audit_wait: 0.2
            """)
        h, release = self.hold()
        res = self.rb("run", self.rb_file)
        self.assertLockedOut(res, h.pid)
        self.assertIn("after waiting 1 s", res.err)
        res = self.rb("run", self.rb_file, "--env", "prod")
        self.assertLockedOut(res, h.pid)
        self.assertIn("after waiting 0.2 s", res.err)
        res = self.rb("run", self.rb_file, "--env", "prod", "--audit-wait", "0")
        self.assertLockedOut(res, h.pid)
        self.assertIn("after waiting 0 s", res.err)
        self.released(h, release)

    def test_repl_is_locked_out_too(self):
        h, release = self.hold()
        res = self.rb("repl", "--audit", self.audit, "--audit-wait", "0.2", stdin="exec{'touch', %s}\n"
                      % lua_str(self.marker))
        self.assertLockedOut(res, h.pid)
        self.released(h, release)

    def test_a_lock_released_within_the_wait_is_waited_for(self):
        h, release = self.hold()
        p = self.spawn("run", self.rb_file, "--audit", self.audit, "--audit-wait", "60s")
        time.sleep(0.3)
        self.assertIsNone(p.poll(), "the run did not wait for the lock")
        self.assertFalse(os.path.exists(self.marker))
        open(release, "w").close()
        h.wait(30)
        p.wait(60)
        self.assertExit(self.spawned_output(p), 0)
        self.assertTrue(os.path.exists(self.marker))
        self.assertExit(self.verify(), 0)

    def test_bad_waits_are_usage_errors(self):
        for bad in ("soon", "-1", "nan", "inf", "2d", "1e9"):
            res = self.run_rb(self.rb_file, "--audit-wait", bad)
            self.assertExit(res, 2)
            self.assertIn("--audit-wait %s" % bad, res.err)
        for bad in ("soon", "-5", "[1]", "25h"):
            self.write("runbook.yaml", "audit_wait: %s\n" % bad)
            res = self.rb("run", self.rb_file)
            self.assertExit(res, 2)
            self.assertIn("runbook.yaml:1: audit_wait must be a duration", res.err)
        self.assertFalse(os.path.exists(self.marker))


if __name__ == "__main__":
    unittest.main()
