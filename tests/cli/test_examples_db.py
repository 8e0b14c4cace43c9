"""The database examples against a real PostgreSQL on loopback (started by
the test, tests/fixtures/pg_cluster.py): the Forge MCP gateway's database
maintenance + verified backup + restore test, its restore-over-live
procedure, and the Calendar API's monthly full backup (without Docker:
compose_file empty).  Dry-run must leave the database and the disk as they
were; live runs must produce backups that restore to the same rows."""
import hashlib
import os
import sys
import unittest

from rbtest import RunbookTestCase, pg_cluster

sys.dont_write_bytecode = True

PG = None


def setUpModule():
    global PG
    PG = pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


def ex(name):
    return os.path.join(os.environ.get("RUNBOOK_SRC", "."), "examples", name)


class DbExample(RunbookTestCase):
    n = 0

    def setUp(self):
        super().setUp()
        DbExample.n += 1
        self.dbname = "forge%d" % DbExample.n
        PG.createdb(self.dbname)
        self.addCleanup(PG.dropdb, self.dbname)
        PG.psql("CREATE TABLE servers (id serial PRIMARY KEY, name text NOT NULL);"
                "INSERT INTO servers (name) SELECT 'srv-' || g FROM generate_series(1, 250) g;"
                "CREATE TABLE tools (id int, server_id int, spec jsonb);"
                "INSERT INTO tools SELECT g, g % 250 + 1, '{}' FROM generate_series(1, 40) g;",
                db=self.dbname)
        self.url = PG.url(self.dbname)
        self.backups = self.path("backups")

    def content(self):
        return PG.psql("SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM servers;"
                       "SELECT count(*) FROM tools", db=self.dbname)

    def dumps(self):
        if not os.path.isdir(self.backups):
            return []
        return sorted(f for f in os.listdir(self.backups) if f.endswith(".dump"))


class ForgeDatabase(DbExample):
    def test_dry_run_reads_for_real_and_changes_nothing(self):
        before = self.content()
        res = self.run_rb(ex("forge-mcp-gateway-database.lua"), "--dry-run",
                          "--param", "db_url=" + self.url, "--param", "backup_dir=" + self.backups)
        self.assertExit(res, 0)
        self.assertIn("accepting connections", res.out)          # pg_isready ran
        self.assertIn("would: db exec", res.out)
        self.assertIn("VACUUM ANALYZE", res.out)
        self.assertIn("would: pg_dump --format=custom", res.out)
        self.assertIn("would back up 290 rows", res.out)
        self.assertEqual(self.content(), before)
        self.assertFalse(os.path.exists(self.backups))
        self.assertNotIn(PG.password, res.all)

    def test_live_backup_is_verified_restored_into_scratch_and_pruned(self):
        os.makedirs(self.backups)
        for i in range(3):  # older backups for retention to consider
            p = os.path.join(self.backups, "%s-2020010%dT000000Z.dump" % (self.dbname, i + 1))
            with open(p, "w") as f:
                f.write("old")
            os.utime(p, (1577836800 + i, 1577836800 + i))
        res = self.run_rb(ex("forge-mcp-gateway-database.lua"),
                          "--param", "db_url=" + self.url, "--param", "backup_dir=" + self.backups,
                          "--param", "keep_last=2", "--param", "keep_days=1")
        self.assertExit(res, 0)
        self.assertIn("restored 290 rows; every table's count matches", res.out)
        self.assertIn("kept 2 backup(s), deleted 2", res.out)
        dumps = self.dumps()
        self.assertEqual(len(dumps), 2)
        new = [d for d in dumps if not d.startswith(self.dbname + "-2020")]
        self.assertEqual(len(new), 1)
        path = os.path.join(self.backups, new[0])
        with open(path, "rb") as f, open(path + ".manifest.json") as m:
            self.assertIn(hashlib.sha256(f.read()).hexdigest(), m.read())
        # the scratch database is gone
        self.assertEqual(PG.psql("SELECT count(*) FROM pg_database WHERE datname = '%s_restore_test'"
                                 % self.dbname).strip(), "0")
        kinds = {(a["words"].split()[0], a["class"]) for a in self.actions()}
        self.assertIn(("pg_dump", "mutate"), kinds)
        self.assertIn(("pg_restore", "read"), kinds)   # --list
        self.assertIn(("pg_isready", "read"), kinds)
        for suffix in ("", "-wal"):
            if os.path.exists(self.audit + suffix):
                with open(self.audit + suffix, "rb") as f:
                    self.assertNotIn(PG.password.encode(), f.read())


class ForgeRestore(DbExample):
    def test_restore_over_live_database_with_safety_backup(self):
        res = self.run_rb(ex("forge-mcp-gateway-database.lua"), "--param", "db_url=" + self.url,
                          "--param", "backup_dir=" + self.backups, "--param", "restore_test=false")
        self.assertExit(res, 0)
        before = self.content()
        PG.psql("DELETE FROM servers WHERE id > 10; DROP TABLE tools", db=self.dbname)
        # dry-run: nothing restored
        res = self.run_rb(ex("forge-mcp-gateway-restore.lua"), "--dry-run", "--yes",
                          "--param", "db_url=" + self.url, "--param", "backup_dir=" + self.backups)
        self.assertExit(res, 0)
        self.assertIn("would: pg_restore --clean", res.out)
        self.assertEqual(PG.psql("SELECT count(*) FROM servers", db=self.dbname).strip(), "10")
        res = self.run_rb(ex("forge-mcp-gateway-restore.lua"), "--yes",
                          "--param", "db_url=" + self.url, "--param", "backup_dir=" + self.backups)
        self.assertExit(res, 0)
        self.assertEqual(self.content(), before)
        self.assertTrue(any("pre-restore" in d for d in self.dumps()), self.dumps())

    def test_corrupt_backup_is_refused_before_anything_is_touched(self):
        res = self.run_rb(ex("forge-mcp-gateway-database.lua"), "--param", "db_url=" + self.url,
                          "--param", "backup_dir=" + self.backups, "--param", "restore_test=false")
        self.assertExit(res, 0)
        path = os.path.join(self.backups, self.dumps()[0])
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(b"\0corrupt\0")
        PG.psql("DELETE FROM servers WHERE id > 100", db=self.dbname)
        res = self.run_rb(ex("forge-mcp-gateway-restore.lua"), "--yes",
                          "--param", "db_url=" + self.url, "--param", "backup=" + path)
        self.assertExit(res, 1)
        self.assertIn("differs from the manifest", res.all)
        self.assertEqual(PG.psql("SELECT count(*) FROM servers", db=self.dbname).strip(), "100")
        self.assertEqual([d for d in self.dumps() if "pre-restore" in d], [])


class CalendarMonthly(DbExample):
    def setUp(self):
        super().setUp()
        self.root = self.path("calendar-api")
        for d, f in (("logs", "api.log"), ("cache", "c.bin"), ("deployment", "docker-compose.prod.yml")):
            os.makedirs(os.path.join(self.root, d))
            with open(os.path.join(self.root, d, f), "w") as fh:
                fh.write(d + "\n")

    def run_monthly(self, *flags):
        return self.run_rb(ex("calendar-api-monthly-backup.lua"), *flags,
                           "--param", "root=" + self.root, "--param", "compose_file=",
                           "--param", "db_url=" + self.url)

    def test_dry_run_writes_nothing(self):
        res = self.run_monthly("--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: tar -czf", res.out)
        self.assertIn("would: pg_dump", res.out)
        self.assertFalse(os.path.exists(os.path.join(self.root, "backups")))

    def test_live_archives_dump_and_checksums(self):
        res = self.run_monthly()
        self.assertExit(res, 0)
        out = os.path.join(self.root, "backups")
        files = sorted(os.listdir(out))
        self.assertTrue(any(f.startswith("full-backup-") and f.endswith(".tar.gz") for f in files), files)
        self.assertTrue(any(f.startswith("calendar-db-") and f.endswith(".dump") for f in files), files)
        self.assertIn("monitoring: not found, skipped", res.out)
        with open(os.path.join(out, "SHA256SUMS")) as f:
            sums = f.read().split("\n")
        for line in filter(None, sums):
            hexd, name = line.split("  ")
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hexd, name)
        # a failed database backup does not stop the rest, but fails the run
        res = self.run_rb(ex("calendar-api-monthly-backup.lua"), "--param", "root=" + self.root,
                          "--param", "compose_file=",
                          "--param", "db_url=" + PG.url("no_such_db"))
        self.assertExit(res, 1)
        self.assertIn("1 backup(s) failed: database backup", res.all)
        self.assertIn('database "no_such_db" does not exist', res.all)


if __name__ == "__main__":
    unittest.main()
