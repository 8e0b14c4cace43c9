"""db.backup, db.verify and db.restore through the real binary, for SQLite
(files checked with Python's sqlite3) and PostgreSQL.  The PostgreSQL tests
run against a real server on 127.0.0.1 that this module starts
(tests/fixtures/pg_cluster.py: scram password auth over TCP), with a database
of its own for every test, and the real pg_dump / pg_restore; content is
compared with psql queries and pg_dump over the private socket.  Every
PostgreSQL run also checks that the password never appears in stdout, stderr,
the audit database or the argv of a recorded command."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import unittest
import uuid

import rbtest
from rbtest import RunbookTestCase, lua_str

sys.dont_write_bytecode = True

PG = None
CREATED = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def flip_middle(path, n=64):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        mid = len(data) // 2
        for i in range(mid, mid + n):
            data[i] ^= 0xFF
        f.seek(0)
        f.write(data)


def truncated_copy(src, dest, manifest=True):
    with open(src, "rb") as f:
        data = f.read()
    with open(dest, "wb") as f:
        f.write(data[:len(data) // 2])
    if manifest:
        shutil.copy(src + ".manifest.json", dest + ".manifest.json")


class BackupCase(RunbookTestCase):
    SECRETS = ()

    def setUp(self):
        super().setUp()
        self.bak = self.path("backups", "app.bak")
        os.makedirs(os.path.dirname(self.bak))
        self.B = lua_str(self.bak)

    def runbook(self, body, *flags, **kw):
        res = self.run_body(body, *flags, name="t/db-backup", **kw)
        for s in self.SECRETS:
            self.assertNoSecret(res, s)
        return res

    def execs(self, prefix):
        """exec actions of the last run whose command line starts with prefix."""
        return [a for a in self.actions(primitive="exec") if a["words"].startswith(prefix)]

    def check_report_and_manifest(self, r, kind, tables, rows):
        self.assertEqual((r["kind"], r["path"], r["manifest"], r["verified"]),
                         (kind, self.bak, self.bak + ".manifest.json", True))
        self.assertEqual(r["size"], os.path.getsize(self.bak))
        self.assertEqual(r["sha256"], sha256(self.bak))
        self.assertEqual((r["tables"], r["rows"]), (tables, rows))
        self.assertIsInstance(r["duration"], float)
        with open(r["manifest"]) as f:
            m = json.load(f)
        self.assertRegex(m.pop("created"), CREATED)
        self.assertEqual(m, {"kind": kind, "file": "app.bak", "size": r["size"],
                             "sha256": r["sha256"], "tables": tables, "rows": rows})


# ---- SQLite ------------------------------------------------------------------


class SQLite(BackupCase):
    def setUp(self):
        super().setUp()
        self.file = self.path("app.db")
        self.url = "sqlite:" + self.file
        self.U = lua_str(self.url)
        con = sqlite3.connect(self.file)
        con.executescript("""
            CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL,
                                note TEXT, data BLOB);
            CREATE TABLE tags (k TEXT PRIMARY KEY, v INTEGER);
            CREATE TABLE empty (x);
            CREATE INDEX items_name ON items (name);
            INSERT INTO tags VALUES ('a', 1), ('b', NULL), ('ç', 3);""")
        con.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)",
                        [(i, "item-%d-%s" % (i, "é" * (i % 7)) * 4, i * 1.25,
                          None if i % 5 == 0 else "n%d" % i, bytes([i % 256]) * 8)
                         for i in range(1, 2001)])
        con.commit()
        con.close()
        self.tables = {"items": 2000, "tags": 3, "empty": 0}

    def sql(self, script):
        con = sqlite3.connect(self.file)
        con.executescript(script)
        con.commit()
        con.close()

    def dump(self, path=None):
        con = sqlite3.connect(path or self.file)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()

    def backup(self):
        res = self.runbook('step("backup", function() out(db.backup(%s, %s)) end)\n'
                           % (self.U, self.B))
        self.assertExit(res, 0)
        return res.data[0]

    def test_backup_then_restore_gives_identical_content(self):
        before = self.dump()
        r = self.backup()
        self.check_report_and_manifest(r, "sqlite", self.tables, 2003)
        self.assertEqual(self.dump(self.bak), before)
        self.assertFalse(os.path.exists(self.bak + ".partial"))
        self.sql("DROP TABLE items; DELETE FROM tags; INSERT INTO empty VALUES (1);")
        self.assertNotEqual(self.dump(), before)
        res = self.runbook('step("restore", function() out(db.restore(%s, %s)) end)\n'
                           % (self.B, self.U))
        self.assertExit(res, 0)
        rr = res.data[0]
        self.assertEqual((rr["ok"], rr["backup_verified"], rr["problems"], rr["tables"],
                          rr["rows"], rr["sha256"]),
                         (True, True, [], self.tables, 2003, r["sha256"]))
        self.assertEqual(self.dump(), before)
        copy = [a for a in self.actions(primitive="db") if a["verb"] == "backup"]
        self.assertEqual([(a["class"], a["target"]) for a in copy], [("mutate", self.file)])

    def test_corrupt_backup_is_detected_and_refused(self):
        self.backup()
        self.sql("INSERT INTO tags VALUES ('after', 9);")
        target = self.dump()
        trunc, bare = self.path("backups", "trunc.bak"), self.path("backups", "bare.bak")
        truncated_copy(self.bak, trunc)
        truncated_copy(self.bak, bare, manifest=False)
        good = sha256(self.bak)
        flip_middle(self.bak)
        res = self.runbook("""
step("verify", function()
  out(db.verify(%(b)s, { check = false }))
  out(db.verify(%(t)s, { check = false }))
  out(db.verify(%(bare)s, { check = false }))
  local ok, e = pcall(db.verify, %(b)s)
  out({ ok = ok, err = tostring(e) })
  local ok2, e2 = pcall(db.restore, %(t)s, %(u)s)
  out({ ok = ok2, err = tostring(e2) })
end)
step("restore", function() db.restore(%(b)s, %(u)s) end)
""" % {"b": self.B, "t": lua_str(trunc), "bare": lua_str(bare), "u": self.U})
        self.assertExit(res, 1)
        flip, tr, br, raised, refused = res.data
        self.assertFalse(flip["ok"])
        self.assertIn("sha256 %s differs from the manifest's %s" % (sha256(self.bak), good),
                      flip["problems"])
        self.assertFalse(tr["ok"])
        self.assertTrue(tr["problems"][0].startswith("sha256 "), tr)
        self.assertIn("size %d bytes differs from the manifest's" % os.path.getsize(trunc),
                      tr["problems"][1])
        self.assertFalse(br["ok"])
        self.assertEqual(len(br["problems"]), 1, br)
        self.assertIn("integrity_check", br["problems"][0])
        self.assertFalse(raised["ok"])
        self.assertTrue(raised["err"].startswith("db.verify %s: sha256 " % self.bak), raised)
        self.assertFalse(refused["ok"])
        self.assertIn("db.verify %s: sha256 " % trunc, refused["err"])
        self.assertIn("db.verify %s: sha256 " % self.bak, res.all)
        self.assertEqual(self.step_status(), {"verify": "ok", "restore": "failed"})
        self.assertEqual([a for a in self.actions(primitive="db") if a["verb"] == "backup"], [])
        self.assertEqual(self.dump(), target)

    def test_dry_run_writes_no_backup_and_restores_nothing(self):
        self.backup()
        self.sql("DELETE FROM tags;")
        target = self.dump()
        bak2 = self.path("backups", "new.bak")
        res = self.runbook("""
step("dry", function()
  out(db.backup(%s, %s))
  out(db.restore(%s, %s))
end)
""" % (self.U, lua_str(bak2), self.B, self.U), "--dry-run")
        self.assertExit(res, 0)
        r, rr = res.data
        self.assertEqual((r["dry_run"], r["kind"], r["tables"], r["rows"]),
                         (True, "sqlite", dict(self.tables, tags=0), 2000))
        self.assertNotIn("sha256", r)
        for p in (bak2, bak2 + ".partial", bak2 + ".manifest.json"):
            self.assertFalse(os.path.exists(p), p)
        self.assertEqual((rr["dry_run"], rr["backup_verified"]), (True, True))
        self.assertIn("would: db backup %s -> %s.partial\n" % (self.url, bak2), res.out)
        self.assertIn("would: db backup sqlite:%s -> %s\n" % (self.bak, self.file), res.out)
        self.assertEqual(self.dump(), target)
        copies = [a for a in self.actions(primitive="db") if a["verb"] == "backup"]
        self.assertEqual([(a["class"], a["simulated"]) for a in copies], [("mutate", True)] * 2)


# ---- PostgreSQL ----------------------------------------------------------------


class Postgres(BackupCase):
    def setUp(self):
        super().setUp()
        self.dbname = "t_" + uuid.uuid4().hex[:12]
        PG.createdb(self.dbname)
        self.addCleanup(PG.dropdb, self.dbname)
        self.url = PG.url(self.dbname)
        self.U = lua_str(self.url)
        self.SECRETS = (PG.password,)
        self.sql("""
            CREATE SCHEMA ops;
            CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                                note text, created timestamptz DEFAULT '2024-01-01 00:00Z');
            CREATE TABLE ops.events (id bigint PRIMARY KEY, kind text, payload jsonb);
            CREATE TABLE empty (x int);
            INSERT INTO items (name, price, note)
              SELECT 'item-' || g || repeat('é', g % 7), g * 1.25,
                     CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END
              FROM generate_series(1, 2000) g;
            INSERT INTO ops.events
              SELECT g * 9007199254740, 'k' || (g % 3), jsonb_build_object('g', g)
              FROM generate_series(1, 30) g;""")
        self.tables = {"public.items": 2000, "ops.events": 30, "public.empty": 0}

    def sql(self, sql):
        return PG.psql(sql, self.dbname)

    def content(self):
        return self.sql("SELECT * FROM items ORDER BY id") + \
            self.sql("SELECT * FROM ops.events ORDER BY id") + \
            self.sql("SELECT * FROM empty ORDER BY x") + \
            self.sql("SELECT last_value, is_called FROM items_id_seq")

    def dump(self):
        """Schema, data and sequence positions, as pg_dump prints them."""
        out = subprocess.run(["pg_dump", "-h", PG.socket_dir, "-p", str(PG.port), "-U", "rb",
                              "-d", self.dbname], check=True, capture_output=True, text=True,
                             env=dict(os.environ, LC_ALL="C")).stdout
        # newer pg_dump wraps its output in \restrict KEY with a random key
        return "".join(l for l in out.splitlines(True)
                       if not l.startswith(("\\restrict", "\\unrestrict")))

    def backup(self):
        res = self.runbook('step("backup", function() out(db.backup(%s, %s)) end)\n'
                           % (self.U, self.B))
        self.assertExit(res, 0)
        return res.data[0]

    def check_tool_action(self, a, cls, simulated=False):
        """A recorded pg_dump / pg_restore run: its class, and the password
        passed as PGPASSWORD (redacted), never on the command line."""
        self.assertEqual((a["class"], a["simulated"]), (cls, simulated), a)
        argv, opts = a["args"][0], a["args"][1]
        self.assertEqual(opts["env"], {"PGPASSWORD": "****"})
        conn = ["-h", "127.0.0.1", "-p", str(PG.port), "-U", "rb", "-d", self.dbname]
        self.assertEqual(argv[-9:-1] if argv[0] == "pg_restore" else argv[-8:], conn)
        for arg in argv:
            self.assertNotIn(PG.password, arg)
            self.assertNotIn("PGPASSWORD", arg)
            self.assertNotIn("password", arg.lower())

    def test_backup_then_restore_gives_identical_content(self):
        before, before_dump = self.content(), self.dump()
        r = self.backup()
        self.check_report_and_manifest(r, "postgres", self.tables, 2030)
        with open(self.bak, "rb") as f:
            self.assertEqual(f.read(5), b"PGDMP")
        self.assertFalse(os.path.exists(self.bak + ".partial"))
        dump, = self.execs("pg_dump ")
        self.check_tool_action(dump, "mutate")
        self.assertEqual(dump["status"], "ok")
        self.assertIn("--format=custom", dump["args"][0])
        self.assertTrue(any(a.startswith("--snapshot=") for a in dump["args"][0]))
        listing, = self.execs("pg_restore --list ")
        self.assertEqual((listing["class"], listing["words"]),
                         ("read", "pg_restore --list " + self.bak))

        self.sql("DROP TABLE items; DELETE FROM ops.events; INSERT INTO empty VALUES (1)")
        self.assertNotEqual(self.dump(), before_dump)
        res = self.runbook('step("restore", function() out(db.restore(%s, %s)) end)\n'
                           % (self.B, self.U))
        self.assertExit(res, 0)
        rr = res.data[0]
        self.assertEqual((rr["ok"], rr["backup_verified"], rr["problems"], rr["tables"],
                          rr["rows"], rr["sha256"]),
                         (True, True, [], self.tables, 2030, r["sha256"]))
        self.assertEqual(self.content(), before)
        self.assertEqual(self.dump(), before_dump)
        restore, = self.execs("pg_restore --clean ")
        self.check_tool_action(restore, "mutate")
        self.assertEqual(restore["args"][0][:6], ["pg_restore", "--clean", "--if-exists",
                                                  "--no-owner", "--single-transaction",
                                                  "--exit-on-error"])
        self.assertEqual(restore["args"][0][-1], self.bak)
        self.assertEqual([a["class"] for a in self.execs("pg_restore --list ")], ["read"])

    def test_corrupt_backup_is_detected_and_refused(self):
        self.backup()
        self.sql("INSERT INTO ops.events VALUES (1, 'after', '{}')")
        target = self.dump()
        trunc = self.path("backups", "trunc.bak")
        truncated_copy(self.bak, trunc)
        good = sha256(self.bak)
        flip_middle(self.bak)
        res = self.runbook("""
step("verify", function()
  out(db.verify(%(b)s, { check = false }))
  out(db.verify(%(t)s, { check = false }))
  local ok, e = pcall(db.verify, %(b)s)
  out({ ok = ok, err = tostring(e) })
  local ok2, e2 = pcall(db.restore, %(t)s, %(u)s)
  out({ ok = ok2, err = tostring(e2) })
end)
step("restore", function() db.restore(%(b)s, %(u)s) end)
""" % {"b": self.B, "t": lua_str(trunc), "u": self.U})
        self.assertExit(res, 1)
        flip, tr, raised, refused = res.data
        self.assertFalse(flip["ok"])
        self.assertIn("sha256 %s differs from the manifest's %s" % (sha256(self.bak), good),
                      flip["problems"])
        self.assertFalse(tr["ok"])
        self.assertTrue(tr["problems"][0].startswith("sha256 "), tr)
        self.assertIn("size %d bytes differs from the manifest's" % os.path.getsize(trunc),
                      tr["problems"][1])
        self.assertFalse(raised["ok"])
        self.assertTrue(raised["err"].startswith("db.verify %s: sha256 " % self.bak), raised)
        self.assertFalse(refused["ok"])
        self.assertIn("db.verify %s: sha256 " % trunc, refused["err"])
        self.assertIn("db.verify %s: sha256 " % self.bak, res.all)
        self.assertEqual(self.step_status(), {"verify": "ok", "restore": "failed"})
        self.assertEqual(self.execs("pg_restore --clean"), [])
        self.assertTrue(all(a["class"] == "read" for a in self.execs("pg_restore --list ")))
        self.assertEqual(self.dump(), target)

    def test_truncated_archive_without_manifest(self):
        """No manifest to compare with: the archive itself must show the damage."""
        self.backup()
        self.sql("INSERT INTO ops.events VALUES (1, 'after', '{}')")
        target = self.dump()
        bare = self.path("backups", "bare.bak")
        truncated_copy(self.bak, bare, manifest=False)
        res = self.runbook("""
step("verify", function()
  out(db.verify(%(bare)s, { check = false }))
  local ok, e = pcall(db.restore, %(bare)s, %(u)s)
  out({ ok = ok, err = tostring(e) })
end)
""" % {"bare": lua_str(bare), "u": self.U})
        self.assertExit(res, 0)
        br, refused = res.data
        self.assertFalse(refused["ok"])
        self.assertEqual(self.dump(), target)
        self.assertEqual(br["kind"], "postgres")
        self.assertFalse(br["ok"], br)
        self.assertEqual(len(br["problems"]), 1, br)
        self.assertIn("pg_restore", br["problems"][0])
        self.assertIn("end of file", br["problems"][0])

    def test_dry_run_writes_no_backup_and_restores_nothing(self):
        self.backup()
        self.sql("DELETE FROM ops.events WHERE id < 9007199254740 * 11")
        target = self.dump()
        bak2 = self.path("backups", "new.bak")
        res = self.runbook("""
step("dry", function()
  out(db.backup(%s, %s))
  out(db.restore(%s, %s))
end)
""" % (self.U, lua_str(bak2), self.B, self.U), "--dry-run")
        self.assertExit(res, 0)
        r, rr = res.data
        self.assertEqual((r["dry_run"], r["kind"], r["tables"], r["rows"]),
                         (True, "postgres", dict(self.tables, **{"ops.events": 20}), 2020))
        self.assertNotIn("sha256", r)
        for p in (bak2, bak2 + ".partial", bak2 + ".manifest.json"):
            self.assertFalse(os.path.exists(p), p)
        self.assertEqual((rr["dry_run"], rr["backup_verified"]), (True, True))
        self.assertRegex(res.out, r"would: pg_dump --format=custom --snapshot=\S+ --file=%s"
                         r"\.partial -h 127\.0\.0\.1 -p %d -U rb -d %s\n"
                         % (bak2, PG.port, self.dbname))
        self.assertIn("would: pg_restore --clean --if-exists --no-owner --single-transaction "
                      "--exit-on-error -h 127.0.0.1 -p %d -U rb -d %s %s\n"
                      % (PG.port, self.dbname, self.bak), res.out)
        self.assertEqual(self.dump(), target)
        dump, = self.execs("pg_dump ")
        self.check_tool_action(dump, "mutate", simulated=True)
        restore, = self.execs("pg_restore --clean ")
        self.check_tool_action(restore, "mutate", simulated=True)
        listing, = self.execs("pg_restore --list ")
        self.assertEqual((listing["class"], listing["simulated"], listing["status"]),
                         ("read", False, "ok"))


if __name__ == "__main__":
    unittest.main()
