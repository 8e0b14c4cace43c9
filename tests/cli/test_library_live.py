"""Three runbooks of the library (runbooks/) run live and in dry-run against
real services on loopback, asserting what reached each service:

- carbon-ingestion/redis-cache-issues against a real redis-server (Debian's
  package): under memory pressure a live run raises maxmemory or flushes the
  cache; a dry-run reads the same state and Redis sees no write command
  (INFO commandstats).
- carbon-ingestion/clickhouse-write-failures against ClickHouse's HTTP
  interface: no ClickHouse server can be installed here, so
  tests/fixtures/clickhouse_http.py speaks its wire protocol (GET is
  read-only, FORMAT JSON with quoted 64-bit integers, Code: NNN errors) over a
  small model; a live run drops the oldest partition and optimizes the table,
  a dry-run sends only GETs.
- forge-gateway/weekly-database-maintenance against a real PostgreSQL
  (tests/fixtures/pg_cluster.py): a live run vacuums and analyzes, a dry-run
  leaves pg_stat_user_tables as it was.
"""
import json
import os
import sys
import unittest

from rbtest import FIXTURES, SRC, FixtureServer, RunbookTestCase, pg_cluster, redis_server


def runbook(name):
    return os.path.join(SRC, "runbooks", name + ".lua")


class LibraryCase(RunbookTestCase):
    def run_library(self, name, *flags):
        """Run a library runbook from the source tree (its lib/ on the path)."""
        return self.run_rb(runbook(name), "--yes", *flags, cwd=SRC)

    def mutations(self):
        """(words, simulated) of the mutating actions of the last run."""
        return [(a.get("words"), a.get("simulated")) for a in self.actions()
                if a.get("class") == "mutate"]


class RedisCacheIssues(LibraryCase):
    def setUp(self):
        super().setUp()
        self.redis = redis_server(self.path("redis"))
        self.addCleanup(self.redis.stop)
        # about 3 MB of cache entries, and a limit just above them: memory pressure
        self.redis.cli("EVAL", "for i = 1, 3000 do redis.call('SET', 'ohlc:' .. i, "
                       "string.rep('x', 1000)) end return 1", "0")
        used = self.info("memory")["used_memory"]
        self.limit = int(used / 0.95)
        self.redis.cli("CONFIG", "SET", "maxmemory", str(self.limit))
        self.redis.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.redis.cli("CONFIG", "RESETSTAT")

    def info(self, section):
        out = {}
        for line in self.redis.cli("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = int(v) if v.isdigit() else v
        return out

    def writes_seen(self):
        """The write commands Redis executed since the last RESETSTAT."""
        stats = self.info("commandstats")
        return sorted(k[len("cmdstat_"):] for k in stats
                      if k in ("cmdstat_config|set", "cmdstat_flushdb", "cmdstat_del"))

    def run_cache(self, *flags):
        return self.run_library("carbon-ingestion/redis-cache-issues",
                                "--param", "host=127.0.0.1",
                                "--param", "port=%d" % self.redis.port,
                                "--param", "cache_stats_url=", *flags)

    def test_dry_run_reads_and_changes_nothing_then_live_raises_maxmemory(self):
        res = self.run_cache("--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: redis-cli -h 127.0.0.1 -p %d CONFIG SET maxmemory 2gb"
                      % self.redis.port, res.out)
        self.assertEqual(self.writes_seen(), [], "a dry-run wrote to Redis")
        self.assertEqual(int(self.redis.cli("CONFIG", "GET", "maxmemory").split()[1]), self.limit)
        self.assertEqual(self.mutations(), [
            ("redis-cli -h 127.0.0.1 -p %d CONFIG SET maxmemory 2gb" % self.redis.port, True)])

        res = self.run_cache()
        self.assertExit(res, 0)
        self.assertEqual(self.writes_seen(), ["config|set"])
        self.assertEqual(self.redis.cli("CONFIG", "GET", "maxmemory").split()[1],
                         str(2 * 1024 ** 3))
        self.assertEqual(int(self.redis.cli("DBSIZE")), 3000, "the cache was not to be flushed")
        self.assertEqual([s for _, s in self.mutations()], [False])

    def test_at_the_limit_already_the_cache_is_flushed_live_only(self):
        # maxmemory is already what the runbook would raise it to: FLUSHDB,
        # after a confirm (--yes answers it)
        limit = "%db" % self.limit
        res = self.run_cache("--param", "maxmemory=" + limit, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: redis-cli -h 127.0.0.1 -p %d FLUSHDB" % self.redis.port, res.out)
        self.assertEqual(self.writes_seen(), [])
        self.assertEqual(int(self.redis.cli("DBSIZE")), 3000)

        res = self.run_cache("--param", "maxmemory=" + limit)
        self.assertExit(res, 0)
        self.assertEqual(self.writes_seen(), ["flushdb"])
        self.assertEqual(int(self.redis.cli("DBSIZE")), 0)

    def test_a_healthy_empty_redis_is_only_read(self):
        self.redis.cli("FLUSHALL")
        self.redis.cli("CONFIG", "SET", "maxmemory", "0")
        self.redis.cli("CONFIG", "RESETSTAT")
        res = self.run_cache()
        self.assertExit(res, 0)
        self.assertEqual(self.mutations(), [])
        self.assertEqual(self.writes_seen(), [])


GB = 1024 ** 3


class ClickHouseWriteFailures(LibraryCase):
    def setUp(self):
        super().setUp()
        self.state = self.path("clickhouse-state.json")
        with open(self.state, "w") as f:
            json.dump({
                "disks": [{"name": "default", "path": "/var/lib/clickhouse/",
                           "free_space": 5 * GB, "total_space": 100 * GB}],
                "parts": [
                    {"database": "carbon_ingestion", "table": "gold_ohlc_bars",
                     "partition": "2024-01-01", "partition_id": "20240101", "parts": 12,
                     "rows": 1200000, "bytes": 20 * GB},
                    {"database": "carbon_ingestion", "table": "gold_ohlc_bars",
                     "partition": "2024-01-02", "partition_id": "20240102", "parts": 9,
                     "rows": 900000, "bytes": 15 * GB},
                    {"database": "carbon_ingestion", "table": "silver_ticks",
                     "partition": "2024-01-02", "partition_id": "20240102", "parts": 4,
                     "rows": 5000000, "bytes": 30 * GB},
                ],
                "inserts": {"ok": 40, "failed": 3, "p95_ms": 6200.0,
                            "last_error": "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, "
                                          "not enough space. (NOT_ENOUGH_SPACE)"},
                "metrics": {"TCPConnection": 12, "HTTPConnection": 3},
                "max_connections": 4096,
                "users": {"default": ""},
            }, f)
        self.log = self.path("clickhouse.jsonl")
        self.ch = self._fixture(FixtureServer(
            self, [sys.executable, os.path.join(FIXTURES, "clickhouse_http.py"),
                   "--state", self.state, "--log", self.log], self.log, "http", 0))

    def model(self):
        with open(self.state) as f:
            return json.load(f)

    def requests(self):
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def run_ch(self, *flags):
        return self.run_library("carbon-ingestion/clickhouse-write-failures",
                                "--param", "clickhouse=" + self.ch.base, *flags)

    def test_dry_run_sends_only_reads_then_live_drops_and_optimizes(self):
        before = self.model()
        res = self.run_ch("--dry-run")
        self.assertExit(res, 0)
        reqs = self.requests()
        self.assertTrue(reqs)
        self.assertEqual({r["method"] for r in reqs}, {"GET"}, "a dry-run POSTed to ClickHouse")
        self.assertEqual(self.model(), before)
        self.assertIn("would: POST %s/ ALTER TABLE carbon_ingestion.gold_ohlc_bars DROP PARTITION "
                      "'2024-01-01'" % self.ch.base, res.out)
        self.assertIn("would: POST %s/ OPTIMIZE TABLE carbon_ingestion.gold_ohlc_bars FINAL"
                      % self.ch.base, res.out)

        open(self.log, "w").close()
        res = self.run_ch()
        self.assertExit(res, 0)
        posts = [r["body"] for r in self.requests() if r["method"] == "POST"]
        self.assertEqual(posts, [
            "ALTER TABLE carbon_ingestion.gold_ohlc_bars DROP PARTITION '2024-01-01'",
            "OPTIMIZE TABLE carbon_ingestion.gold_ohlc_bars FINAL",
        ])
        after = self.model()
        self.assertEqual(after["dropped"], ["carbon_ingestion.gold_ohlc_bars 2024-01-01"])
        self.assertEqual(after["optimized"], ["carbon_ingestion.gold_ohlc_bars"])
        self.assertEqual(after["disks"][0]["free_space"], 25 * GB)
        self.assertEqual([s for _, s in self.mutations()], [False, False])

    def test_a_declined_drop_changes_nothing_live(self):
        # without --yes the confirm() has no terminal to ask: the run refuses
        # rather than dropping data unasked
        res = self.run_rb(runbook("carbon-ingestion/clickhouse-write-failures"),
                          "--param", "clickhouse=" + self.ch.base, cwd=SRC)
        self.assertNotEqual(res.code, 0, res.all)
        self.assertEqual([r for r in self.requests() if r["method"] == "POST"], [])
        self.assertNotIn("dropped", self.model())


class WeeklyDatabaseMaintenance(LibraryCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pg_cluster()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def setUp(self):
        super().setUp()
        self.dbname = "forge_mcp_%s" % self.id().rsplit(".", 1)[-1][:20].lower()
        self.pg.createdb(self.dbname)
        self.addCleanup(self.pg.dropdb, self.dbname)
        # a table with dead rows that only this runbook may vacuum
        self.pg.psql("CREATE TABLE tool_calls (id serial PRIMARY KEY, body text) "
                     "WITH (autovacuum_enabled = false); "
                     "INSERT INTO tool_calls (body) SELECT repeat('x', 200) FROM "
                     "generate_series(1, 5000); DELETE FROM tool_calls WHERE id % 2 = 0", self.dbname)

    def vacuumed(self):
        """(last_vacuum is set, last_analyze is set) for the table."""
        out = self.pg.psql("SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL "
                           "FROM pg_stat_user_tables WHERE relname = 'tool_calls'", self.dbname)
        return tuple(v == "t" for v in out.strip().split("|"))

    def run_weekly(self, *flags):
        return self.run_library("forge-gateway/weekly-database-maintenance",
                                "--param", "database_url=" + self.pg.url(self.dbname), *flags)

    def test_dry_run_reads_the_statistics_and_vacuums_nothing_then_live_does(self):
        res = self.run_weekly("--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: db exec", res.out)
        self.assertIn("VACUUM ANALYZE", res.out)
        self.assertIn("tool_calls", res.out, "the statistics were not read for real")
        self.assertEqual(self.vacuumed(), (False, False), "a dry-run vacuumed the database")
        self.assertTrue(all(s for _, s in self.mutations()), self.mutations())
        self.assertNoSecret(res, self.pg.password)

        res = self.run_weekly()
        self.assertExit(res, 0)
        self.assertTrue(self.mutations())
        self.assertFalse(any(s for _, s in self.mutations()), self.mutations())
        # the server's own statistics say the vacuum and analyze happened
        self.wait_for(lambda: self.vacuumed() == (True, True), timeout=30,
                      what="pg_stat_user_tables to show the VACUUM ANALYZE")
        self.assertNoSecret(res, self.pg.password)

    def test_unreachable_database_fails_with_the_reason(self):
        res = self.run_library("forge-gateway/weekly-database-maintenance", "--param",
                               "database_url=" + self.pg.url(self.dbname).replace(
                                   ":%d/" % self.pg.port, ":%d/" % self.closed_port()))
        self.assertExit(res, 1)
        self.assertIn("database not ready", res.all)
        self.assertEqual(self.vacuumed(), (False, False))


if __name__ == "__main__":
    unittest.main(verbosity=2)
