"""The Forge MCP gateway's database runbooks of the library (runbooks/
forge-gateway/) against a real PostgreSQL on loopback (started by the test,
tests/fixtures/pg_cluster.py), run from the source tree:

- weekly-database-maintenance: pg_isready, statistics, VACUUM ANALYZE;
- backup: a verified pg_dump with its manifest, and retention (the data
  volume is left out: include_data=false);
- disaster-recovery-test: the newest backup restored into the scratch
  database <db>_dr_test, compared table by table, then dropped;
- restore: over the live database after a safety backup (no Docker:
  stop_services empty).

Dry-run must leave the database and the disk as they were; live runs must
produce backups that restore to the same rows; the password never shows.
(These replace the tests of examples/forge-mcp-gateway-database.lua and
examples/forge-mcp-gateway-restore.lua.)
"""
import hashlib
import os
import sys
import unittest

from rbtest import SRC, RunbookTestCase, pg_cluster

sys.dont_write_bytecode = True

PG = None


def setUpModule():
    global PG
    PG = pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


def runbook(name):
    return os.path.join(SRC, "runbooks", "forge-gateway", name + ".lua")


MAINTENANCE = runbook("weekly-database-maintenance")
BACKUP = runbook("backup")
DR_TEST = runbook("disaster-recovery-test")
RESTORE = runbook("restore")


class DbCase(RunbookTestCase):
    n = 0

    def setUp(self):
        super().setUp()
        DbCase.n += 1
        self.dbname = "forge%d" % DbCase.n
        PG.createdb(self.dbname)
        self.addCleanup(PG.dropdb, self.dbname)
        PG.psql("CREATE TABLE servers (id serial PRIMARY KEY, name text NOT NULL);"
                "INSERT INTO servers (name) SELECT 'srv-' || g FROM generate_series(1, 250) g;"
                "CREATE TABLE tools (id int, server_id int, spec jsonb);"
                "INSERT INTO tools SELECT g, g % 250 + 1, '{}' FROM generate_series(1, 40) g;",
                db=self.dbname)
        self.url = PG.url(self.dbname)
        self.backups = self.path("backups")

    def run_library(self, file, *flags):
        """`runbook run FILE --param database_url=... FLAGS` from the source tree
        (cwd: require finds runbooks/lib); nothing is written under it."""
        return self.run_rb(file, "--param", "database_url=" + self.url, *flags, cwd=SRC)

    def run_backup(self, *flags):
        return self.run_library(BACKUP, "--param", "backup_dir=" + self.backups,
                                "--param", "include_data=false", *flags)

    def content(self):
        return PG.psql("SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM servers;"
                       "SELECT count(*) FROM tools", db=self.dbname)

    def dumps(self):
        if not os.path.isdir(self.backups):
            return []
        return sorted(f for f in os.listdir(self.backups) if f.endswith(".dump"))

    def assertPasswordNowhere(self, *results):
        for res in results:
            self.assertNotIn(PG.password, res.all)
        for suffix in ("", "-wal"):
            if os.path.exists(self.audit + suffix):
                with open(self.audit + suffix, "rb") as f:
                    self.assertNotIn(PG.password.encode(), f.read())


class ForgeDatabase(DbCase):
    def test_dry_run_reads_for_real_and_changes_nothing(self):
        before = self.content()
        maint = self.run_library(MAINTENANCE, "--dry-run")
        self.assertExit(maint, 0)
        self.assertIn("accepting connections", maint.out)          # pg_isready ran
        self.assertIn("would: db exec", maint.out)
        self.assertIn("VACUUM ANALYZE", maint.out)
        bk = self.run_backup("--dry-run")
        self.assertExit(bk, 0)
        self.assertIn("would: pg_dump --format=custom", bk.out)
        self.assertIn("would back up 290 rows", bk.out)
        self.assertEqual(self.content(), before)
        self.assertFalse(os.path.exists(self.backups))
        self.assertPasswordNowhere(maint, bk)

    def test_live_backup_is_verified_restored_into_scratch_and_pruned(self):
        os.makedirs(self.backups)
        for i in range(3):  # older backups for retention to consider
            p = os.path.join(self.backups, "%s-2020010%dT000000Z.dump" % (self.dbname, i + 1))
            with open(p, "w") as f:
                f.write("old")
            os.utime(p, (1577836800 + i, 1577836800 + i))
        maint = self.run_library(MAINTENANCE)
        self.assertExit(maint, 0)
        maint_id = self.last_run_id()
        bk = self.run_backup("--param", "keep_last=2", "--param", "keep_days=1")
        self.assertExit(bk, 0)
        backup_id = self.last_run_id()
        self.assertIn("verified: sha256 matches, every table's data is in the archive", bk.out)
        self.assertIn("kept 2 backup(s), deleted 2", bk.out)
        dumps = self.dumps()
        self.assertEqual(len(dumps), 2)
        new = [d for d in dumps if not d.startswith(self.dbname + "-2020")]
        self.assertEqual(len(new), 1)
        path = os.path.join(self.backups, new[0])
        with open(path, "rb") as f, open(path + ".manifest.json") as m:
            self.assertIn(hashlib.sha256(f.read()).hexdigest(), m.read())
        # the newest backup restores into a scratch database with the same rows
        dr = self.run_library(DR_TEST, "--yes", "--param", "backup_dir=" + self.backups,
                              "--param", "logs_dir=" + self.path("logs"))
        self.assertExit(dr, 0)
        self.assertIn("restored 290 rows in", dr.out)
        self.assertIn("every table matches the manifest", dr.out)
        self.assertIn(path, dr.out)
        # the scratch database is gone
        self.assertEqual(PG.psql("SELECT count(*) FROM pg_database WHERE datname = '%s_dr_test'"
                                 % self.dbname).strip(), "0")
        kinds = set()
        for rid in (maint_id, backup_id):
            kinds |= {(a["words"].split()[0], a["class"]) for a in self.actions(rid)
                      if a.get("words")}
        self.assertIn(("pg_dump", "mutate"), kinds)
        self.assertIn(("pg_restore", "read"), kinds)   # --list
        self.assertIn(("pg_isready", "read"), kinds)
        self.assertPasswordNowhere(maint, bk, dr)


class ForgeRestore(DbCase):
    def restore(self, *flags):
        return self.run_library(RESTORE, "--yes", "--param", "backup_dir=" + self.backups,
                                "--param", "stop_services=", *flags)

    def test_restore_over_live_database_with_safety_backup(self):
        res = self.run_backup()
        self.assertExit(res, 0)
        before = self.content()
        PG.psql("DELETE FROM servers WHERE id > 10; DROP TABLE tools", db=self.dbname)
        # dry-run: nothing restored
        res = self.restore("--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: pg_restore --clean", res.out)
        self.assertEqual(PG.psql("SELECT count(*) FROM servers", db=self.dbname).strip(), "10")
        res = self.restore()
        self.assertExit(res, 0)
        self.assertEqual(self.content(), before)
        self.assertTrue(any("pre-restore" in d for d in self.dumps()), self.dumps())
        self.assertPasswordNowhere(res)

    def test_corrupt_backup_is_refused_before_anything_is_touched(self):
        res = self.run_backup()
        self.assertExit(res, 0)
        path = os.path.join(self.backups, self.dumps()[0])
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(b"\0corrupt\0")
        PG.psql("DELETE FROM servers WHERE id > 100", db=self.dbname)
        res = self.restore("--param", "backup=" + path)
        self.assertExit(res, 1)
        self.assertIn("differs from the manifest", res.all)
        self.assertEqual(PG.psql("SELECT count(*) FROM servers", db=self.dbname).strip(), "100")
        self.assertEqual([d for d in self.dumps() if "pre-restore" in d], [])


if __name__ == "__main__":
    unittest.main()
