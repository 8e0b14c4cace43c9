"""The team's shared audit log on PostgreSQL (issue 17 item 1, issue 20 items
1 and 2), against a real server on 127.0.0.1 that this module starts
(tests/fixtures/pg_cluster.py).  Each test has a database of its own.

What is attacked: concurrent writers from many processes (the chain stays one
valid chain, counts exact, run ids strictly increasing in the order runs
began), a row edited in the database (verify names run and seq), a database
that cannot be reached (nothing runs, nothing is created locally), the
fallback log and its upload, a schema from a newer runbook or another
program (refused, untouched), the password (in no output), and the role that
wrote a record (the database's session_user, which USER cannot change)."""
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import unittest
import uuid
from urllib.parse import quote

import rbtest
from rbtest import RunbookTestCase

sys.dont_write_bytecode = True

PG = None

HELLO = """\
runbook{ name = "hello", title = "Hello" }
step("one", function() exec{"true"} end)
step("two", function() exec{"sh", "-c", "echo ran >> %s"} end)
"""


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()
    # two operators, each with their own login role (issue 20 item 1)
    for role in ("alice", "bob"):
        PG.psql("CREATE ROLE %s LOGIN PASSWORD '%s-pw-1234'" % (role, role))


def tearDownModule():
    if PG:
        PG.stop()


class SharedLogCase(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.db = "audit_" + uuid.uuid4().hex[:10]
        PG.createdb(self.db)
        self.addCleanup(PG.dropdb, self.db)
        self.url = PG.url(self.db)
        self.marker = self.path("ran.txt")
        self.hello = self.write("hello.lua", HELLO % self.marker)

    def role_url(self, role):
        return "postgres://%s:%s@127.0.0.1:%d/%s" % (role, quote(role + "-pw-1234"), PG.port,
                                                      self.db)

    def grant(self, *roles):
        # what a team's DBA does once: operators read the log and append
        # through runbook.append(), which is SECURITY DEFINER
        for r in roles:
            PG.psql("GRANT CONNECT ON DATABASE %s TO %s" % (self.db, r))
            PG.psql("GRANT USAGE ON SCHEMA runbook TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA"
                    " runbook TO %s" % (r, r), db=self.db)

    def sql(self, q):
        return PG.psql(q, db=self.db).strip()

    def export(self, url=None):
        res = self.rb("audit", "export", "--audit", url or self.url)
        self.assertExit(res, 0)
        return [json.loads(l) for l in res.out.splitlines()]

    def assertNoPassword(self, res):
        self.assertNotIn(PG.password, res.all)
        self.assertNotIn(quote(PG.password), res.all)


class TestSharedLog(SharedLogCase):
    def test_runs_list_show_export_verify_on_postgres(self):
        for _ in range(2):
            res = self.rb("run", self.hello, "--audit", self.url)
            self.assertExit(res, 0)
            self.assertNoPassword(res)
        # nothing was written next to us: the URL is not a path
        self.assertFalse(os.path.exists(self.path("postgres:")))
        self.assertEqual(self.sql("SELECT count(*) FROM runbook.records WHERE kind = 'run'"), "4")
        for args in (("list",), ("verify",), ("export",), ("export", "--format", "csv")):
            res = self.rb("audit", *args, "--audit", self.url)
            self.assertExit(res, 0)
            self.assertNoPassword(res)
        recs = self.export()
        self.assertEqual(len(recs), 12)
        self.assertEqual({r["db_role"] for r in recs}, {PG.superuser})
        res = self.rb("audit", "verify", "--audit", self.url)
        self.assertIn("12 records verified, chain intact", res.out)
        run_id = recs[0]["run_id"]
        show = self.rb("audit", "show", run_id, "--audit", self.url)
        self.assertExit(show, 0)
        self.assertIn(run_id, show.out)

    def test_tampered_row_is_caught_with_run_and_seq(self):
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)
        victim = self.sql("SELECT run_id FROM runbook.records WHERE seq = 8")
        self.sql("UPDATE runbook.records SET data = replace(data, '\"live\"', '\"dry-run\"')"
                 " WHERE seq = 8")
        self.sql("UPDATE runbook.records SET data = replace(data, '\"ok\"', '\"failed\"')"
                 " WHERE seq = 8")
        res = self.rb("audit", "verify", "--audit", self.url)
        self.assertExit(res, 1)
        self.assertIn("run %s seq 8" % victim, res.all)

    def test_unreachable_log_runs_nothing_and_creates_nothing(self):
        with socket_closed_port() as port:
            url = "postgres://rb:%s@127.0.0.1:%d/x" % (quote(PG.password), port)
            res = self.rb("run", self.hello, "--audit", url)
        self.assertExit(res, 2)
        self.assertIn("nothing was run", res.err)
        self.assertIn("--audit-fallback", res.err)
        self.assertNoPassword(res)
        self.assertFalse(os.path.exists(self.marker), "a step ran without its audit log")
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted(["hello.lua", "state", "bin"]))

    def test_password_as_a_query_parameter_is_not_shown(self):
        url = "postgres://rb@127.0.0.1:%d/%s?password=%s" % (PG.port, self.db, quote(PG.password))
        res = self.rb("run", self.hello, "--audit", url)
        self.assertExit(res, 0)
        self.assertNoPassword(res)
        for args in (("list",), ("verify",), ("show", self.export()[0]["run_id"])):
            res = self.rb("audit", *args, "--audit", url)
            self.assertExit(res, 0)
            self.assertNoPassword(res)
        with socket_closed_port() as port:
            res = self.rb("run", self.hello, "--audit", url.replace(str(PG.port), str(port)))
        self.assertExit(res, 2)
        self.assertIn("password=****", res.err)
        self.assertNoPassword(res)

    def test_fallback_log_then_push(self):
        fb = self.path("fallback.db")
        with socket_closed_port() as port:
            url = "postgres://rb:%s@127.0.0.1:%d/x" % (quote(PG.password), port)
            for _ in range(2):
                res = self.rb("run", self.hello, "--audit", url, "--audit-fallback", fb)
                self.assertExit(res, 0)
                self.assertIn("fallback log", res.err)
                self.assertIn("runbook audit push", res.err)
                self.assertNoPassword(res)
        self.assertEqual(len(self.lines(self.marker)), 2)
        local = sqlite3.connect(fb)
        local_runs = [r[0] for r in local.execute(
            "SELECT DISTINCT run_id FROM records WHERE kind = 'run' ORDER BY seq")]
        local.close()
        self.assertEqual(len(local_runs), 2)
        # one run went to the shared log meanwhile
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)
        res = self.rb("audit", "push", fb, "--audit", self.url)
        self.assertExit(res, 0)
        self.assertIn("pushed 2 runs (12 records)", res.out)
        recs = self.export()
        pushed = [r for r in recs if "pushed_from" in r]
        self.assertEqual(len(pushed), 12)
        self.assertEqual({r["pushed_from"]["run_id"] for r in pushed}, set(local_runs))
        self.assertTrue(all(r["pushed_from"]["log"] == fb for r in pushed))
        # the pushed runs got new ids of the shared log, after the one there
        ids = [r["run_id"] for r in recs if r["kind"] == "run"]
        self.assertEqual(ids, sorted(ids))
        self.assertExit(self.rb("audit", "verify", "--audit", self.url), 0)
        # twice: nothing added
        res = self.rb("audit", "push", fb, "--audit", self.url)
        self.assertExit(res, 0)
        self.assertIn("pushed 0 runs", res.out)
        self.assertIn("2 already there", res.out)
        self.assertEqual(len(self.export()), len(recs))

    def test_push_refuses_a_broken_fallback_log(self):
        fb = self.path("fallback.db")
        self.assertExit(self.rb("run", self.hello, "--audit", fb), 0)
        local = sqlite3.connect(fb)
        local.execute("UPDATE records SET data = replace(data, 'hello', 'other') WHERE seq = 1")
        local.commit()
        local.close()
        res = self.rb("audit", "push", fb, "--audit", self.url)
        self.assertExit(res, 1)
        self.assertIn("nothing was pushed", res.err)
        self.assertEqual(self.sql("SELECT count(*) FROM runbook.records"), "0")

    def test_newer_schema_is_refused(self):
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)
        self.sql("UPDATE runbook.meta SET version = 99")
        before = self.sql("SELECT count(*) FROM runbook.records")
        res = self.rb("run", self.hello, "--audit", self.url)
        self.assertExit(res, 2)
        self.assertIn("newer", res.err)
        self.assertEqual(self.sql("SELECT count(*) FROM runbook.records"), before)
        self.assertEqual(len(self.lines(self.marker)), 1)

    def test_another_programs_runbook_schema_is_left_alone(self):
        self.sql("CREATE SCHEMA runbook; CREATE TABLE runbook.things (x int)")
        res = self.rb("run", self.hello, "--audit", self.url)
        self.assertExit(res, 2)
        self.assertIn("not a runbook audit log", res.err)
        self.assertEqual(self.sql("SELECT string_agg(tablename, ',') FROM pg_tables"
                                  " WHERE schemaname = 'runbook'"), "things")
        self.assertFalse(os.path.exists(self.marker))


class TestIdentity(SharedLogCase):
    def test_role_is_the_database_login_not_USER(self):
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)  # creates the log
        self.grant("alice", "bob")
        res = self.rb("run", self.hello, "--audit", self.role_url("alice"),
                      env={"USER": "bob", "LOGNAME": "bob"})
        self.assertExit(res, 0)
        self.assertNotIn("alice-pw-1234", res.all)
        recs = self.export()
        mine = [r for r in recs if r["run_id"] == recs[-1]["run_id"]]
        self.assertTrue(mine and all(r["db_role"] == "alice" for r in mine), mine)
        self.assertTrue(all(r["operator"] != "bob" for r in mine if r["kind"] == "run"))

    def test_a_client_cannot_write_another_role(self):
        self.assertExit(self.rb("run", self.hello, "--audit", self.url), 0)
        self.grant("alice")
        forged = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.role_url("alice"), "-c",
             "SELECT runbook.append('x', 'run', '2026-01-01T00:00:00Z',"
             " '{\"db_role\":\"bob\"}')"], capture_output=True, text=True)
        self.assertNotEqual(forged.returncode, 0)
        self.assertIn("db_role is written by the log itself", forged.stderr)
        # and the table itself is not writable by an operator
        direct = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.role_url("alice"), "-c",
             "UPDATE runbook.records SET data = data"], capture_output=True, text=True)
        self.assertNotEqual(direct.returncode, 0)
        self.assertIn("permission denied", direct.stderr)
        self.assertExit(self.rb("audit", "verify", "--audit", self.url), 0)


class TestConcurrentWriters(SharedLogCase):
    """4 processes x 25 runs at once into one log (issue 17: many operators
    append at once; issue 20: run ids strictly increasing in start order)."""

    PROCS, RUNS = 4, 25

    def hammer(self, log):
        errors = []

        def worker():
            for _ in range(self.RUNS):
                res = self.rb("run", self.hello, "--audit", log)
                if res.code != 0:
                    errors.append(res)

        threads = [threading.Thread(target=worker) for _ in range(self.PROCS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def check(self, log, recs):
        n = self.PROCS * self.RUNS
        self.assertEqual(len(recs), n * 6)  # run start, 2 actions, 2 steps, run end
        self.assertEqual([r["seq"] for r in recs], list(range(1, n * 6 + 1)))
        firsts = []
        for r in recs:
            if r["kind"] == "run" and r["run_id"] not in firsts:
                firsts.append(r["run_id"])
        self.assertEqual(len(firsts), n)
        # in the order the runs began (their first records), ids increase
        self.assertEqual(firsts, sorted(firsts))
        self.assertEqual(len(set(firsts)), n)
        for rid in firsts:
            self.assertRegex(rid, r"^\d{8}-\d{6}-\d{6}$")
        res = self.rb("audit", "verify", "--audit", log)
        self.assertExit(res, 0)
        self.assertIn("%d records verified, chain intact" % (n * 6), res.out)
        self.assertEqual(len(self.lines(self.marker)), n)

    def test_postgres(self):
        self.hammer(self.url)
        self.check(self.url, self.export())

    def test_sqlite(self):
        log = self.path("team.db")
        self.hammer(log)
        self.check(log, self.export(log))


class socket_closed_port:
    """A loopback port nothing listens on (bound, never listening)."""

    def __enter__(self):
        import socket
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc):
        self.s.close()


if __name__ == "__main__":
    unittest.main()
