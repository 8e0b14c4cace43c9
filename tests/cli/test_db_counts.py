"""Counts and values that mean what they say (issue 20, item 4), for SQLite
and a real PostgreSQL (tests/fixtures/pg_cluster.py):

- conn:exec returns the rows the statement changed itself, not what its
  triggers changed too: an UPDATE of 4 rows whose trigger updates 4 rows of
  another table returns 4 (the other table is checked, so the trigger really
  fired), live and in a SQLite dry-run's rehearsal; a PostgreSQL write in
  dry-run is not executed and returns 0, never the planner's estimate;
- the audit's args show values: a connection as its URL, password ****,
  db.null as null, never "<userdata>" (read back with `runbook audit export`);
- --record writes a query's rows as a YAML list, also for a query that was
  only simulated in a dry-run."""
import json
import re
import sqlite3
import sys
import unittest
import uuid

import rbtest
from rbtest import RunbookTestCase, lua_str

sys.dont_write_bytecode = True

PG = None


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


# Each step out()s what exec returned; the script is three statements: an
# UPDATE of 4 rows (its trigger updates 4 more), DDL, a DELETE of 1 row.
COUNTS = """
step("counts", function()
  local c = db.open(%(url)s)
  out({ update = c:exec("UPDATE t SET v = v || 'x'") })
  out({ insert = c:exec("INSERT INTO t (id, v) VALUES (5, 'e')") })
  out({ ddl = c:exec("CREATE TABLE z (a int)") })
  out({ script = c:exec("UPDATE t SET v = 'y' WHERE id <= 4; CREATE TABLE z2 (a int); DELETE FROM t WHERE id = 5") })
end)
"""


class Counts:
    """What both drivers must do; setUp makes t (4 rows) and log (4 rows)
    with an AFTER UPDATE trigger on t that bumps log.n for the row's id."""

    def log_n(self):
        raise NotImplementedError

    def test_exec_counts_the_statements_own_rows_not_the_triggers(self):
        res = self.runbook(COUNTS % {"url": self.U}, "--yes")
        self.assertExit(res, 0)
        # the trigger fired for every updated row: twice (UPDATE, script)
        self.assertEqual(self.log_n(), [2, 2, 2, 2])
        self.assertEqual(res.data, [{"update": 4}, {"insert": 1}, {"ddl": 0},
                                    {"script": 5}])
        ex = [a for a in self.actions(primitive="db") if a["verb"] == "exec"]
        self.assertEqual([a["status"] for a in ex], ["ok"] * 4)

    def test_audit_args_show_the_connection_and_null(self):
        res = self.runbook("""
step("args", function()
  local c = db.open(%s)
  c:exec(%s, db.null, 1)
end)
""" % (self.U, lua_str(self.NULL_UPDATE)), "--yes")
        self.assertExit(res, 0)
        exp = self.rb("audit", "export", "--audit", self.audit)
        self.assertExit(exp, 0)
        self.assertNotIn("<userdata>", exp.out)
        for secret in self.SECRETS:
            self.assertNotIn(secret, exp.out)
        recs = [json.loads(l) for l in exp.out.splitlines() if l.strip()]
        act = [r for r in recs if r["kind"] == "action" and r.get("verb") == "exec"]
        self.assertEqual(len(act), 1, act)
        self.assertEqual(act[0]["args"], ["db connection " + self.shown, self.NULL_UPDATE,
                                          None, 1])
        self.assertEqual(self.log_n(), [1, 0, 0, 0])

    def recorded_mocks(self, text):
        """{(verb, sql): the respond block's lines} of a recording."""
        out = {}
        for m in re.finditer(r"^- db:\n    sql: (.*)\n    verb: (\w+)\n  respond:\n((?:    .*\n)+)",
                             text, re.M):
            sql = m.group(1)
            if sql.startswith("'"):  # a single-quoted YAML scalar
                sql = sql[1:-1].replace("''", "'")
            out[(m.group(2), sql)] = m.group(3)
        return out


# ---- SQLite ------------------------------------------------------------------


class SQLite(Counts, RunbookTestCase):
    SECRETS = ()
    NULL_UPDATE = "UPDATE t SET v = ? WHERE id = ?"

    def setUp(self):
        super().setUp()
        self.file = self.path("app.db")
        self.url = "sqlite:" + self.file
        self.U = lua_str(self.url)
        self.shown = self.url
        con = sqlite3.connect(self.file)
        con.executescript("""
            CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
            CREATE TABLE log (id INTEGER PRIMARY KEY, n INTEGER);
            INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
            INSERT INTO log VALUES (1, 0), (2, 0), (3, 0), (4, 0);
            CREATE TRIGGER bump AFTER UPDATE ON t
              BEGIN UPDATE log SET n = n + 1 WHERE id = NEW.id; END;
        """)
        con.commit()
        con.close()

    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/db", **kw)

    def log_n(self):
        con = sqlite3.connect(self.file)
        try:
            return [r[0] for r in con.execute("SELECT n FROM log ORDER BY id")]
        finally:
            con.close()

    def file_bytes(self):
        with open(self.file, "rb") as f:
            return f.read()

    def test_dry_run_rehearsal_returns_the_same_count(self):
        before = self.file_bytes()
        res = self.runbook("""
step("dry", function()
  local c = db.open(%s)
  out({ update = c:exec("UPDATE t SET v = v || 'x'") })
  out({ ddl = c:exec("CREATE TABLE z (a int)") })
end)
""" % self.U, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"update": 4}, {"ddl": 0}])
        self.assertEqual(self.file_bytes(), before)
        up = [a for a in self.actions(primitive="db") if a["verb"] == "exec"][0]
        self.assertEqual((up["simulated"], up["evidence"]),
                         (True, "4 rows would change (and 4 by triggers); rehearsed and "
                          "rolled back"))

    def test_record_of_a_dry_run_writes_rows_as_a_list(self):
        rec = self.path("rec.scenario.yaml")
        res = self.runbook("""
step("rec", function()
  local c = db.open(%s)
  out(#c:query("UPDATE t SET v = 'q' WHERE id > 100 RETURNING id"))
  out(#c:query("SELECT id FROM t WHERE id > 100"))
  out(c:query("SELECT id FROM t WHERE id = 2"))
end)
""" % self.U, "--dry-run", "--record", rec)
        self.assertExit(res, 0)
        self.assertEqual(res.data, [0, 0, [{"id": 2}]])
        sim = [a for a in self.actions(primitive="db") if "RETURNING" in a["words"]]
        self.assertEqual([a["simulated"] for a in sim], [True])
        text = self.read(rec)
        self.assertNotIn("{}", text)
        mocks = self.recorded_mocks(text)
        # simulated (rehearsed), no rows: an empty list, not an empty mapping
        self.assertEqual(mocks[("query", "UPDATE t SET v = 'q' WHERE id > 100 RETURNING id")],
                         "    rows: []\n", text)
        self.assertEqual(mocks[("query", "SELECT id FROM t WHERE id > 100")],
                         "    rows: []\n", text)
        self.assertEqual(mocks[("query", "SELECT id FROM t WHERE id = 2")],
                         "    rows:\n    - id: 2\n", text)
        replay = self.rb("test", rec)
        self.assertExit(replay, 0, replay.all)


# ---- PostgreSQL --------------------------------------------------------------


class Postgres(Counts, RunbookTestCase):
    NULL_UPDATE = "UPDATE t SET v = $1 WHERE id = $2"

    def setUp(self):
        super().setUp()
        self.dbname = "t_" + uuid.uuid4().hex[:12]
        PG.createdb(self.dbname)
        self.addCleanup(PG.dropdb, self.dbname)
        self.url = PG.url(self.dbname)
        self.U = lua_str(self.url)
        self.shown = "postgres://rb:****@127.0.0.1:%d/%s" % (PG.port, self.dbname)
        self.SECRETS = (PG.password,)
        self.sql("""
            CREATE TABLE t (id int PRIMARY KEY, v text);
            CREATE TABLE log (id int PRIMARY KEY, n int);
            INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
            INSERT INTO log VALUES (1, 0), (2, 0), (3, 0), (4, 0);
            CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS
              $$ BEGIN UPDATE log SET n = n + 1 WHERE id = NEW.id; RETURN NEW; END $$;
            CREATE TRIGGER bump AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION bump();
            ANALYZE t;
        """)

    def sql(self, sql):
        return PG.psql(sql, self.dbname)

    def runbook(self, body, *flags, **kw):
        res = self.run_body(body, *flags, name="t/db", **kw)
        for s in self.SECRETS:
            self.assertNoSecret(res, s)
        return res

    def log_n(self):
        return [int(x) for x in self.sql("SELECT n FROM log ORDER BY id").split()]

    def test_dry_run_write_returns_zero_not_the_estimate(self):
        before = self.log_n()
        res = self.runbook("""
step("dry", function()
  local c = db.open(%s)
  out({ update = c:exec("UPDATE t SET v = v || 'x'") })
end)
""" % self.U, "--dry-run")
        self.assertExit(res, 0)
        # nothing ran, so there is no count: 0, the estimate is evidence only
        self.assertEqual(res.data, [{"update": 0}])
        self.assertEqual(self.log_n(), before)
        self.assertEqual(self.sql("SELECT string_agg(v, ',' ORDER BY id) FROM t").strip(),
                         "a,b,c,d")
        up = [a for a in self.actions(primitive="db") if a["verb"] == "exec"][0]
        self.assertTrue(up["simulated"])
        self.assertIn("the planner estimates 4 rows", up["evidence"])

    def test_record_of_a_dry_run_writes_rows_as_a_list(self):
        rec = self.path("rec.scenario.yaml")
        res = self.runbook("""
step("rec", function()
  local c = db.open(%s)
  out(#c:query("UPDATE t SET v = 'q' WHERE id = 1 RETURNING id"))
  out(c:query("SELECT id FROM t WHERE id = 2"))
end)
""" % self.U, "--dry-run", "--record", rec)
        self.assertExit(res, 0)
        self.assertEqual(res.data, [0, [{"id": 2}]])
        sim = [a for a in self.actions(primitive="db") if "RETURNING" in a["words"]]
        self.assertEqual([a["simulated"] for a in sim], [True])
        text = self.read(rec)
        self.assertNotIn("{}", text)
        mocks = self.recorded_mocks(text)
        self.assertEqual(mocks[("query", "UPDATE t SET v = 'q' WHERE id = 1 RETURNING id")],
                         "    rows: []\n", text)
        self.assertEqual(mocks[("query", "SELECT id FROM t WHERE id = 2")],
                         "    rows:\n    - id: 2\n", text)
        self.assertEqual(self.log_n(), [0, 0, 0, 0])


if __name__ == "__main__":
    unittest.main()
