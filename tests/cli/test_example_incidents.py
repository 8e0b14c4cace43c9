"""The incident examples of examples/ (issue 16) against real servers:

- examples/pg-replication-lag.lua against a real PostgreSQL primary and a
  streaming hot standby (tests/fixtures/pg_cluster.py, replica mode:
  pg_basebackup -R), with real lag made by the test: replay paused on the
  standby (pg_wal_replay_pause) while the primary writes, or replay held back
  by a query on the standby that holds a lock a TRUNCATE on the primary needs
  (max_standby_streaming_delay = -1, so replay waits for it for ever).  Live,
  the runbook must find that cause and clear it -- replay resumed, the query
  cancelled -- and the standby must then have replayed everything the
  primary had written; in --dry-run the servers must be as they were: replay
  still paused at the same LSN, the query still running, the same rows.
- examples/pod-crash-looping.lua through the real kubectl against the fake
  Kubernetes API (tests/fixtures/fake_kube.py), with a crash-looping pod of
  the deployment's newest revision: live it rolls the deployment back (the
  fake's deployment runs the previous image), in --dry-run the fake receives
  no write at all.

The scenarios of all three examples (examples/tests/) run from / , as CI
would run them from anywhere.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

from rbtest import BIN, SRC, RunbookTestCase, pg_cluster

sys.dont_write_bytecode = True

EXAMPLES = os.path.join(SRC, "examples")
LAG = os.path.join(EXAMPLES, "pg-replication-lag.lua")
CRASH = os.path.join(EXAMPLES, "pod-crash-looping.lua")
KUBECTL = shutil.which("kubectl")
PSQL = shutil.which("psql")

BLOCKER_SQL = "BEGIN; SELECT count(*) FROM orders; SELECT pg_sleep(600); COMMIT;"


class Scenarios(RunbookTestCase):
    def test_check_and_scenarios_from_any_directory(self):
        for cwd in ("/", self.tmp):
            res = self.rb("check", EXAMPLES, cwd=cwd)
            self.assertExit(res, 0)
            res = self.rb("test", EXAMPLES, "--require-coverage", cwd=cwd)
            self.assertExit(res, 0)
            for name in ("pod-crash-looping", "pg-replication-lag", "disk-pressure"):
                passed = [l for l in res.out.splitlines()
                          if l.startswith("✓") and "/examples/tests/%s-" % name in l]
                self.assertGreaterEqual(len(passed), 2, "%s: %r" % (name, res))
            self.assertIn(" 0 failed", res.out)


@unittest.skipUnless(PSQL, "psql is not installed")
class ReplicationLag(RunbookTestCase):
    """examples/pg-replication-lag.lua against a primary and its streaming
    replica."""

    @classmethod
    def setUpClass(cls):
        cls.pg = pg_cluster()
        try:
            # replay waits for a conflicting query on the standby for ever,
            # so a lag made by a query stays until the runbook ends it
            cls.replica = cls.pg.replica(server_opts="-c max_standby_streaming_delay=-1")
        except BaseException:
            cls.pg.stop()
            raise
        cls.pg.psql("CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL)")

    @classmethod
    def tearDownClass(cls):
        cls.replica.stop()
        cls.pg.stop()

    def setUp(self):
        super().setUp()
        self.end_blockers()
        if self.replica.psql("SELECT pg_is_wal_replay_paused()").strip() == "t":
            self.replica.psql("SELECT pg_wal_replay_resume()")
        self.replica.wait_replayed()
        # ... and the primary has heard so (the replica reports its replay
        # position in its status messages)
        self.wait_for(lambda: int(self.pg.psql(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
            "FROM pg_stat_replication").strip()) < 4096, what="the primary seeing no lag")

    # ---- the servers ------------------------------------------------------
    def end_blockers(self):
        self.replica.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE query = '%s'" % BLOCKER_SQL.replace("'", "''"))

    def lsn(self):
        return self.pg.psql("SELECT pg_current_wal_lsn()").strip()

    def replayed(self, lsn):
        """Has the replica replayed up to lsn?"""
        return self.replica.psql(
            "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn).strip() == "t"

    def write_on_primary(self, rows=5000):
        self.pg.psql("INSERT INTO orders (note) SELECT repeat('x', 200) "
                     "FROM generate_series(1, %d)" % rows)

    def received(self):
        """Until the replica has received all the primary wrote: the lag is in
        replay, not in transit."""
        target = self.lsn()
        self.wait_for(lambda: self.replica.psql(
            "SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % target).strip() == "t",
            what="the replica receiving up to " + target)

    def snapshot(self, replica_rows=True):
        """What a dry-run must not change, read from both servers (not the
        replica's rows while replay waits for a lock on them: the read would
        queue behind it)."""
        return {
            "pause": self.replica.psql("SELECT pg_get_wal_replay_pause_state()").strip(),
            "replay_lsn": self.replica.psql("SELECT pg_last_wal_replay_lsn()").strip(),
            "replica_rows": replica_rows and self.replica.psql(
                "SELECT count(*) FROM orders").strip(),
            "primary": self.pg.psql("SELECT count(*), md5(string_agg(id || note, ',' ORDER BY id))"
                                    " FROM orders").strip(),
            "backends": self.replica.psql(
                "SELECT string_agg(pid::text || ':' || query, ';' ORDER BY pid) "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()").strip(),
            "settings": self.replica.psql(
                "SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) "
                "FROM pg_settings").strip(),
        }

    def pause_replay_and_write(self):
        """Real lag: replay paused on the replica, then 5000 rows on the primary."""
        self.replica.psql("SELECT pg_wal_replay_pause()")
        self.wait_for(lambda: self.replica.psql(
            "SELECT pg_get_wal_replay_pause_state()").strip() == "paused", what="replay paused")
        self.write_on_primary()
        self.received()
        self.assertFalse(self.replayed(self.lsn()))

    def block_replay_with_a_query(self):
        """Real lag: a query on the replica holds a lock on orders; TRUNCATE on
        the primary needs it, so replay waits (max_standby_streaming_delay=-1)
        while the primary writes on."""
        p = subprocess.Popen([PSQL, "-X", "-h", self.replica.socket_dir, "-p",
                              str(self.replica.port), "-U", self.replica.superuser, "-d",
                              "postgres", "-c", BLOCKER_SQL],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
        self.addCleanup(self.reap, p)
        self.addCleanup(self.end_blockers)
        self.wait_for(lambda: self.replica.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").strip() == "1",
            what="the blocking query running on the replica")
        self.pg.psql("TRUNCATE orders")
        self.write_on_primary()
        self.received()
        self.wait_for(lambda: self.replica.psql(
            "SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'startup'"
        ).strip() == "Lock", what="replay waiting for the blocking query's lock")
        return p

    @staticmethod
    def reap(p):
        if p.poll() is None:
            p.kill()
        p.communicate()

    def run_lag(self, *flags):
        return self.run_rb(LAG, "--param", "primary=" + self.pg.url(),
                           "--param", "replica=" + self.replica.url(),
                           "--param", "max_lag_bytes=4096", "--param", "long_query_seconds=0",
                           "--param", "catch_up_timeout=60", *flags)

    def db_changes(self):
        return [a for a in self.actions(primitive="db") if a["class"] == "mutate"]

    # ---- the tests ----------------------------------------------------------
    def test_healthy_replica_is_left_alone(self):
        before = self.snapshot()
        res = self.run_lag()
        self.assertExit(res, 0)
        self.assertIn("replica1", res.out)
        self.assertIn("nothing to do", res.out)
        self.assertEqual(self.db_changes(), [])
        self.assertEqual(self.snapshot(), before)

    def test_live_resumes_a_paused_replay(self):
        self.pause_replay_and_write()
        target = self.lsn()
        res = self.run_lag("--yes")
        self.assertExit(res, 0)
        self.assertIn("replay is PAUSED", res.out)
        self.assertIn("cause: replay_paused", res.out)
        # the servers: replay running again, everything the primary had
        # written before the run replayed, the same rows on both
        self.assertEqual(self.replica.psql("SELECT pg_get_wal_replay_pause_state()").strip(),
                         "not paused")
        self.assertTrue(self.replayed(target))
        self.assertEqual(self.replica.psql("SELECT count(*) FROM orders"),
                         self.pg.psql("SELECT count(*) FROM orders"))
        # exactly one change, the resume, taken for real
        changes = self.db_changes()
        self.assertEqual([(a["verb"], a["simulated"]) for a in changes], [("query", False)])
        self.assertIn("SELECT pg_wal_replay_resume()", changes[0]["words"])
        self.assertNotIn(self.pg.password, res.all)

    def test_dry_run_leaves_a_paused_replay_paused(self):
        self.pause_replay_and_write()
        before = self.snapshot()
        res = self.run_lag("--dry-run", "--yes")
        self.assertExit(res, 0)
        self.assertIn("cause: replay_paused", res.out)
        self.assertIn("would: db query postgres://rb:****@127.0.0.1:%d/postgres: "
                      "SELECT pg_wal_replay_resume()" % self.replica.port, res.out)
        self.assertIn("Plan: 1 change", res.out)
        time.sleep(0.5)  # a resume would have let replay move on by now
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(before["pause"], "paused")
        changes = self.db_changes()
        self.assertEqual([a["simulated"] for a in changes], [True])

    def test_live_cancels_the_query_holding_replay_back(self):
        blocker = self.block_replay_with_a_query()
        target = self.lsn()
        res = self.run_lag("--yes", "--param", "cancel_queries=true")
        self.assertExit(res, 0)
        self.assertIn("startup (replay) process waits on: Lock relation", res.out)
        self.assertIn("cause: replica_queries", res.out)
        # the blocking query was cancelled (its client saw why) and replay went on
        _, err = blocker.communicate(timeout=30)
        self.assertEqual(blocker.returncode, 1)
        self.assertIn("canceling statement due to user request", err)
        self.assertTrue(self.replayed(target))
        self.assertEqual(self.replica.psql("SELECT count(*) FROM orders"),
                         self.pg.psql("SELECT count(*) FROM orders"))
        changes = self.db_changes()
        self.assertEqual(len(changes), 1, changes)
        self.assertIn("SELECT pg_cancel_backend($1)", changes[0]["words"])
        self.assertFalse(changes[0]["simulated"])

    def test_dry_run_cancels_nothing(self):
        blocker = self.block_replay_with_a_query()
        before = self.snapshot(replica_rows=False)
        res = self.run_lag("--dry-run", "--yes", "--param", "cancel_queries=true")
        self.assertExit(res, 0)
        self.assertIn("cause: replica_queries", res.out)
        self.assertIn("SELECT pg_cancel_backend($1)  (not executed", res.out)
        time.sleep(0.5)
        # no backend ended, replay still held back at the same place
        self.assertIsNone(blocker.poll())
        self.assertEqual(self.snapshot(replica_rows=False), before)
        self.assertIn(BLOCKER_SQL, before["backends"])
        self.assertEqual(self.replica.psql(
            "SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'startup'").strip(),
            "Lock")
        self.assertEqual([a["simulated"] for a in self.db_changes()], [True])


CRASH_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "enrichment-service-7d9f-crash1", "namespace": "carbon-ingestion",
                 "labels": {"app": "enrichment-service", "pod-template-hash": "7d9f"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "name": "enrichment-service-7d9f", "controller": True}]},
    "spec": {"containers": [{"name": "enrichment-service", "image": "enrich:1.4",
                             "resources": {"limits": {"memory": "256Mi"}}}]},
    "status": {"phase": "Running", "containerStatuses": [{
        "name": "enrichment-service", "ready": False, "restartCount": 6, "image": "enrich:1.4",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]},
}
DEPLOY = "/apis/apps/v1/namespaces/carbon-ingestion/deployments/enrichment-service"


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class PodCrashLooping(RunbookTestCase):
    """examples/pod-crash-looping.lua through kubectl against the fake API,
    with a crash-looping pod of the deployment's newest revision (2)."""

    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()
        req = urllib.request.Request(
            self.kube.url("/api/v1/namespaces/carbon-ingestion/pods"),
            data=json.dumps(CRASH_POD).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 201)
        self.setup_writes = len(self.kube_writes(self.kube))

    def image(self):
        with urllib.request.urlopen(self.kube.url(DEPLOY), timeout=10) as r:
            d = json.load(r)
        return d["spec"]["template"]["spec"]["containers"][0]["image"]

    def run_crash(self, *flags):
        return self.run_rb(CRASH, "--param", "namespace=carbon-ingestion",
                           "--param", "selector=app=enrichment-service",
                           "--param", "rollback=true", "--param", "rollout_timeout=30", *flags)

    def test_live_rolls_the_bad_revision_back(self):
        self.assertEqual(self.image(), "enrich:1.4")
        res = self.run_crash("--yes")
        self.assertExit(res, 0)
        self.assertIn("1 crash-looping container(s); looking at "
                      "enrichment-service-7d9f-crash1/enrichment-service", res.out)
        self.assertIn("the pod runs revision 2 of 2", res.out)
        self.assertIn("kubectl rollout undo deployment/enrichment-service -n carbon-ingestion",
                      res.out)
        # the fake's deployment runs revision 1's image now
        self.assertEqual(self.image(), "enrich:1.3")
        writes = self.kube_writes(self.kube)[self.setup_writes:]
        self.assertEqual([(w["method"], w["path"]) for w in writes], [("PATCH", DEPLOY)])
        kube = self.actions(primitive="kubectl")
        self.assertEqual([a["words"] for a in kube if a["class"] == "mutate"],
                         ["kubectl rollout undo deployment/enrichment-service -n carbon-ingestion"])

    def test_dry_run_writes_nothing(self):
        res = self.run_crash("--dry-run", "--yes")
        self.assertExit(res, 0)
        self.assertIn("would: kubectl rollout undo deployment/enrichment-service "
                      "-n carbon-ingestion", res.out)
        self.assertIn("Plan: 1 change", res.out)
        # the reads reached the fake, no write did
        self.assertTrue(self.kube.requests(
            "/api/v1/namespaces/carbon-ingestion/pods/enrichment-service-7d9f-crash1/log"))
        self.assertEqual(self.kube_writes(self.kube)[self.setup_writes:], [])
        self.assertEqual(self.image(), "enrich:1.4")

    def test_without_a_fix_it_fails_naming_the_cause(self):
        res = self.run_rb(CRASH, "--param", "namespace=carbon-ingestion",
                          "--param", "pod=enrichment-service-7d9f-crash1")
        self.assertExit(res, 1)
        self.assertIn("is crash looping (6 restarts, cause: unknown)", res.all)
        self.assertIn("rerun with --param rollback=true", res.all)
        self.assertEqual(self.kube_writes(self.kube)[self.setup_writes:], [])


if __name__ == "__main__":
    unittest.main()
