"""Guarantee under attack: a SQLite dry-run leaves the database byte-identical.

A write rehearsed in --dry-run must still fire constraints and triggers and
say how many rows it would change, but the file (its bytes, mtime and size),
its directory (no -journal, -wal or -shm appearing, vanishing or changing)
and its locks (another process can take the write lock while the rehearsing
connection stays open) must all be exactly as before.  Every test snapshots
the database's own directory before and after and compares everything."""
import hashlib
import os
import sqlite3
import subprocess
import sys
import unittest

import rbtest
from rbtest import RunbookTestCase, lua_str

sys.dont_write_bytecode = True

# A table with an index, a CHECK constraint, a logging trigger and a guarding
# trigger; enough rows (about 4 MB) that a DELETE of everything dirties more
# pages than SQLite's default 2 MB page cache holds, so a rehearsal that let
# the cache spill would write to the file mid-statement.
SCHEMA = """
CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, qty INTEGER CHECK (qty >= 0),
                pad TEXT);
CREATE INDEX t_v ON t (v);
CREATE TABLE log (tid INTEGER, what TEXT);
CREATE TRIGGER t_upd AFTER UPDATE ON t BEGIN INSERT INTO log VALUES (new.id, 'upd'); END;
CREATE TRIGGER t_guard BEFORE DELETE ON t WHEN old.v = 'keep'
  BEGIN SELECT RAISE(ABORT, 'row is protected'); END;
"""
ROWS = 20000
# In the -shm: two copies of the WAL-index header (0-95), the checkpoint's
# progress (96-99), then aReadMark[5] (100-119): what readers write.
READ_MARKS = (100, 120)


# The other application.  "reader": it stays open in a read transaction.
# "crashed": it wrote the rows itself without checkpointing and died without
# closing, so the -wal holds them and nobody has the database open: the
# dry-run's connection is the last to close, which in SQLite's default
# checkpoints the -wal into the file and deletes the -wal and -shm.
HOLDER = """
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN")
if sys.argv[2] == "crashed":
    c.execute("PRAGMA wal_autocheckpoint = 0")
    c.executemany("INSERT INTO t (v, qty, pad) VALUES (?, ?, ?)", ROWS)
    c.execute("COMMIT")
else:
    c.execute("SELECT count(*) FROM t").fetchall()
print("ready", flush=True)
sys.stdin.read()
if sys.argv[2] == "crashed":
    os._exit(0)
""".replace("ROWS", "((\"keep\" if i == 1 else \"v%%d\" %% i, i, \"x\" * 180) "
            "for i in range(1, %d))" % (ROWS + 1))


class Guarantee(RunbookTestCase):
    WAL = None

    def setUp(self):
        super().setUp()
        # its own directory: the audit database lives in self.tmp
        self.dir = self.path("data")
        os.makedirs(self.dir)
        self.file = os.path.join(self.dir, "app.db")
        self.url = "sqlite:" + self.file
        self.U = lua_str(self.url)
        con = sqlite3.connect(self.file)
        if self.WAL:
            con.execute("PRAGMA journal_mode=WAL")
        con.executescript(SCHEMA)
        if self.WAL == "crashed":
            con.close()  # else closing last, it would checkpoint the -wal
        if self.WAL:
            # An application in a process of its own (closing any descriptor
            # of a file drops every POSIX lock this process holds on it, so
            # the snapshots below would make SQLite think nobody has the -shm
            # open) keeps the database open: the -wal keeps the frames
            # written below and the -shm stays, as on a busy server.
            self.holder = subprocess.Popen(
                [sys.executable, "-c", HOLDER, self.file, self.WAL], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
            self.addCleanup(self.holder.wait)
            self.addCleanup(self.holder.stdin.close)
            self.assertEqual(self.holder.stdout.readline(), "ready\n")
            if self.WAL == "crashed":
                self.holder.stdin.close()
                self.assertEqual(self.holder.wait(), 0)
        if self.WAL != "crashed":
            con.executemany("INSERT INTO t (v, qty, pad) VALUES (?, ?, ?)",
                            (("keep" if i == 1 else "v%d" % i, i, "x" * 180)
                             for i in range(1, ROWS + 1)))
            con.commit()
            con.close()

    def snapshot(self):
        """The directory's mtime and every file in it: name -> (sha256, mtime_ns, size)."""
        files = {}
        for name in sorted(os.listdir(self.dir)):
            p = os.path.join(self.dir, name)
            with open(p, "rb") as f:
                data = f.read()
            st = os.stat(p)
            if name.endswith("-shm") and self.WAL == "crashed":
                # the first to open it after a crash rebuilds it from the -wal
                files[name] = "present"
                continue
            if name.endswith("-shm"):
                # Shared memory, written through mmap by every reader: a
                # reader (a plain SELECT too) claims one of the read marks,
                # so those bytes and the mtime are left out; the WAL-index
                # header and the checkpoint state must not change.
                data = data[:READ_MARKS[0]] + data[READ_MARKS[1]:]
                files[name] = (hashlib.sha256(data).hexdigest(), st.st_size)
                continue
            files[name] = (hashlib.sha256(data).hexdigest(), st.st_mtime_ns, st.st_size)
        return os.stat(self.dir).st_mtime_ns, files

    def run_dry(self, body, *flags):
        res = self.run_body(body % {"u": self.U}, "--dry-run", *flags, name="t/guarantee")
        return res

    def assertUntouched(self, before):
        self.assertEqual(self.snapshot(), before)

    def count(self, sql):
        con = sqlite3.connect(self.file)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()

    def test_rehearsed_writes_leave_the_directory_byte_identical(self):
        before = self.snapshot()
        expect = set(before[1])
        if self.WAL:
            self.assertEqual(expect, {"app.db", "app.db-wal", "app.db-shm"})
        else:
            self.assertEqual(expect, {"app.db"})
        res = self.run_dry("""
step("rehearse", function()
  local c = db.open(%(u)s)
  out({ c:exec("DELETE FROM t WHERE v <> 'keep'"),
        c:exec("UPDATE t SET qty = qty + 1 WHERE id <= 10"),
        c:exec("INSERT INTO t (v, qty) VALUES ('new', 1)"),
        c:exec("CREATE TABLE u (x)"),
        c:exec("DROP TABLE log"),
        c:exec("UPDATE t SET pad = 'y'") })
  out(c:query("SELECT count(*) AS n FROM t"))
  out(c:query("SELECT count(*) AS n FROM log"))
  local ok, e = pcall(c.exec, c, "UPDATE t SET qty = -1 WHERE id = 2")
  out({ ok = ok, err = tostring(e) })
  local ok2, e2 = pcall(c.exec, c, "DELETE FROM t WHERE v = 'keep'")
  out({ ok = ok2, err = tostring(e2) })
  c:close() -- closing last must not checkpoint the -wal into the file
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [ROWS - 1, 10, 1, 0, 0, ROWS])
        self.assertEqual(res.data[1], [{"n": ROWS}])
        self.assertEqual(res.data[2], [{"n": 0}])
        self.assertEqual(res.data[3], {"ok": False, "err": "db exec %s: CHECK constraint "
                                       "failed: qty >= 0" % self.url})
        self.assertEqual(res.data[4], {"ok": False, "err": "db exec %s: row is protected"
                                       % self.url})
        # exec's count is the statement's own rows; the evidence adds the trigger's
        for sql, n in (("DELETE FROM t WHERE v <> 'keep'", "%d rows would change" % (ROWS - 1)),
                       ("UPDATE t SET qty = qty + 1 WHERE id <= 10",
                        "10 rows would change (and 10 by triggers)"),
                       ("INSERT INTO t (v, qty) VALUES ('new', 1)", "1 row would change"),
                       ("CREATE TABLE u (x)", "0 rows would change"),
                       ("DROP TABLE log", "0 rows would change")):
            self.assertIn("would: db exec %s: %s  (%s; rehearsed and rolled back)\n"
                          % (self.url, sql, n), res.out)
        self.assertUntouched(before)

    def test_writes_in_the_runbooks_own_transaction_leave_it_identical(self):
        """The runbook's BEGIN and COMMIT run for real: the COMMIT must find
        nothing to write, so its writes are rehearsed off to the side."""
        before = self.snapshot()
        res = self.run_dry("""
step("tx", function()
  local c = db.open(%(u)s)
  out(c:transaction(function(tx)
    local n = tx:query("SELECT count(*) AS n FROM t")[1].n
    return { n, tx:exec("DELETE FROM t WHERE v <> 'keep'"),
             tx:exec("UPDATE t SET qty = qty + 1 WHERE id <= 3"),
             tx:transaction(function(inner) return inner:exec("INSERT INTO log VALUES (1, 'x')") end) }
  end))
  local ok, e = pcall(c.transaction, c, function(tx) tx:exec("UPDATE t SET qty = -1") end)
  out({ ok = ok, err = tostring(e) })
  c:close()
end)
""")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [ROWS, ROWS - 1, 3, 1])
        self.assertFalse(res.data[1]["ok"])
        self.assertIn("CHECK constraint failed: qty >= 0", res.data[1]["err"])
        self.assertIn("DELETE FROM t WHERE v <> 'keep'  (%d rows would change; rehearsed and "
                      "rolled back)\n" % (ROWS - 1), res.out)
        self.assertUntouched(before)

    def test_a_broken_constraint_fails_the_dry_run_and_touches_nothing(self):
        before = self.snapshot()
        res = self.run_dry("""
step("break", function()
  local c = db.open(%(u)s)
  c:exec("UPDATE t SET qty = qty - 5 WHERE id <= 10")
  out("unreachable")
end)
""")
        self.assertExit(res, 1)
        self.assertIn("db exec %s: CHECK constraint failed: qty >= 0" % self.url, res.all)
        self.assertEqual(res.data, [])
        self.assertUntouched(before)

    def test_no_lock_is_held_after_a_rehearsed_statement(self):
        before = self.snapshot()
        go = self.path("go")
        rb = self.write("hold.lua", self.runbook_text("""
step("hold", function()
  local c = db.open(%s)
  c:exec("DELETE FROM t WHERE id > 1")
  print("@@rehearsed")
  while not fs.exists(%s) do sleep(0.05) end
  out(c:query("SELECT count(*) AS n FROM t"))
end)
""" % (self.U, lua_str(go)), name="t/hold"), dedent=False)
        p = self.spawn("run", rb, "--audit", self.audit, "--dry-run")
        self.wait_for(lambda: "@@rehearsed" in self.spawned_output(p).out, what="the rehearsal",
                      proc=p)
        other = sqlite3.connect(self.file, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if one is held
            other.execute("ROLLBACK")
        finally:
            other.close()
        open(go, "w").close()
        self.assertEqual(p.wait(timeout=60), 0, self.spawned_output(p))
        self.assertIn('@@[{"n":%d}]' % ROWS, self.spawned_output(p).out)
        self.assertUntouched(before)

    def test_the_live_run_still_writes(self):
        """The control: the same statements without --dry-run do change the file."""
        before = self.snapshot()
        res = self.run_body("""
step("live", function()
  local c = db.open(%s)
  out(c:exec("DELETE FROM t WHERE v <> 'keep'"))
end)
""" % self.U, name="t/guarantee")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [ROWS - 1])
        self.assertEqual(self.count("SELECT count(*) FROM t"), 1)
        self.assertNotEqual(self.snapshot(), before)


class GuaranteeWALReader(Guarantee):
    WAL = "reader"


class GuaranteeWALCrashed(Guarantee):
    WAL = "crashed"


if __name__ == "__main__":
    unittest.main()
