"""db.* through the real binary, for SQLite (files checked with Python's
sqlite3) and PostgreSQL.  The PostgreSQL tests run against a real server on
127.0.0.1 that this module starts (tests/fixtures/pg_cluster.py: scram
password auth over TCP), with a database of its own for every test; the
server side is inspected with psql and pg_dump over the private socket.
Every PostgreSQL run also checks that the cluster password never appears in
stdout, stderr or the bytes of the audit database."""
import json
import os
import re
import sqlite3
import subprocess
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


class DbCase(RunbookTestCase):
    SECRETS = ()

    def runbook(self, body, *flags, **kw):
        res = self.run_body(body, *flags, name="t/db", **kw)
        for s in self.SECRETS:
            self.assertNoSecret(res, s)
        return res

    def db_actions(self, verb=None):
        return [a for a in self.actions(primitive="db") if verb is None or a["verb"] == verb]

    def action(self, sql_prefix):
        """The db action whose words end with ': ' + a statement starting sql_prefix."""
        found = [a for a in self.actions(primitive="db") if ": " + sql_prefix in a["words"]]
        self.assertEqual(len(found), 1, [a["words"] for a in self.actions()])
        return found[0]


class SQLiteCase(DbCase):
    def setUp(self):
        super().setUp()
        self.file = self.path("app.db")
        self.url = "sqlite:" + self.file
        self.U = lua_str(self.url)

    def sql(self, script):
        con = sqlite3.connect(self.file)
        con.executescript(script)
        con.commit()
        con.close()

    def dump(self):
        con = sqlite3.connect(self.file)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()


class PgCase(DbCase):
    def setUp(self):
        super().setUp()
        self.dbname = "t_" + uuid.uuid4().hex[:12]
        PG.createdb(self.dbname)
        self.addCleanup(PG.dropdb, self.dbname)
        self.url = PG.url(self.dbname)
        self.U = lua_str(self.url)
        self.shown = "postgres://rb:****@127.0.0.1:%d/%s" % (PG.port, self.dbname)
        self.SECRETS = (PG.password,)

    def sql(self, sql):
        return PG.psql(sql, self.dbname)

    def dump(self):
        """Schema, data and sequence positions, as pg_dump prints them."""
        out = subprocess.run(["pg_dump", "-h", PG.socket_dir, "-p", str(PG.port), "-U", "rb",
                               "-d", self.dbname], check=True, capture_output=True, text=True,
                              env=dict(os.environ, LC_ALL="C")).stdout
        # newer pg_dump wraps its output in \restrict KEY with a random key
        return "".join(l for l in out.splitlines(True) if not l.startswith(("\\restrict",
                                                                           "\\unrestrict")))


# ---- SQLite ------------------------------------------------------------------


class SQLite(SQLiteCase):
    def test_types_and_nulls_both_ways(self):
        res = self.runbook("""
step("types", function()
  local c = db.open(%s, { create = true })
  c:exec("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, flag, big, f, num, s)")
  c:exec("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
         1, nil, db.null, true, 9007199254740993, 2.5, "12.50", "it's")
  c:exec("INSERT INTO t (id, s) VALUES (?, ?)", 2, nil)
  local r = c:query("SELECT * FROM t ORDER BY id")
  local x = r[1]
  out(r)
  out({ a_null = x.a == db.null, b_null = x.b == db.null, same = db.null == json.null,
        s2_null = r[2].s == db.null, not_nil = x.a ~= nil,
        flag = math.type(x.flag), big = math.type(x.big), exact = x.big == 9007199254740993,
        f = math.type(x.f), num = type(x.num), s = type(x.s) })
  local m = c:query("SELECT ? + 1 AS v, typeof(?) AS ty", 9007199254740992, 1.0)[1]
  out({ v = m.v, vt = math.type(m.v), ty = m.ty })
end)
""" % self.U)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [
            {"id": 1, "a": None, "b": None, "flag": 1, "big": 9007199254740993, "f": 2.5,
             "num": "12.50", "s": "it's"},
            {"id": 2, "a": None, "b": None, "flag": None, "big": None, "f": None, "num": None,
             "s": None}])
        self.assertEqual(res.data[1], {
            "a_null": True, "b_null": True, "same": True, "s2_null": True, "not_nil": True,
            "flag": "integer", "big": "integer", "exact": True, "f": "float", "num": "string",
            "s": "string"})
        self.assertEqual(res.data[2], {"v": 9007199254740993, "vt": "integer", "ty": "real"})
        con = sqlite3.connect(self.file)
        self.assertEqual(con.execute("SELECT typeof(a), typeof(b), flag, big, typeof(f), "
                                     "typeof(num), num FROM t WHERE id = 1").fetchone(),
                         ("null", "null", 1, 9007199254740993, "real", "text", "12.50"))
        con.close()

    def test_parameters_are_bound_never_interpolated(self):
        self.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT);")
        evil = "x'); DROP TABLE t; --"
        res = self.runbook("""
step("bind", function()
  local c = db.open(%s)
  out({ n = c:exec("INSERT INTO t (id, s) VALUES (?, ?)", 1, %s) })
  out(c:query("SELECT s FROM t WHERE s = ?", %s))
  out(c:query("SELECT s FROM t WHERE s = ?", "' OR '1'='1"))
  local ok, e = pcall(c.exec, c, "INSERT INTO t (id, s) VALUES (?, ?)", {}, 2)
  out({ ok = ok, err = tostring(e) })
end)
""" % (self.U, lua_str(evil), lua_str(evil)))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"n": 1})
        self.assertEqual(res.data[1], [{"s": evil}])
        self.assertEqual(res.data[2], [])
        self.assertFalse(res.data[3]["ok"])
        self.assertIn("parameter 1: cannot bind a table", res.data[3]["err"])
        con = sqlite3.connect(self.file)
        self.assertEqual(con.execute("SELECT id, s FROM t").fetchall(), [(1, evil)])
        con.close()

    def test_transactions_commit_rollback_savepoint(self):
        self.sql("CREATE TABLE acct (id INTEGER PRIMARY KEY, v INTEGER);")
        res = self.runbook(TX_BODY % {"url": self.U, "ins": "INSERT INTO acct VALUES (?, ?)"})
        check_transactions(self, res, "UNIQUE constraint failed: acct.id")
        con = sqlite3.connect(self.file)
        self.assertEqual([r[0] for r in con.execute("SELECT id FROM acct ORDER BY id")],
                         [1, 2, 4, 6])
        con.close()

    def test_dry_run_rehearses_writes_and_leaves_file_unchanged(self):
        self.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                 "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');")
        before = self.dump()
        res = self.runbook("""
step("dry", function()
  local c = db.open(%s)
  out(c:query("SELECT id, v FROM t ORDER BY id"))
  out({ c:exec("INSERT INTO t (id, v) VALUES (?, ?)", 4, "d"),
        c:exec("UPDATE t SET v = 'z' WHERE id >= 2"),
        c:exec("DELETE FROM t"),
        c:exec("CREATE TABLE u (x)"),
        c:exec("DROP TABLE t") })
  out(c:query("SELECT count(*) AS n FROM t"))
  local ok, e = pcall(c.exec, c, "INSERT INTO t (id, v) VALUES (1, 'dup')")
  out({ ok = ok, err = tostring(e) })
end)
""" % self.U, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [{"id": 1, "v": "a"}, {"id": 2, "v": "b"},
                                       {"id": 3, "v": "c"}])
        self.assertEqual(res.data[1], [1, 2, 3, 0, 0])
        self.assertEqual(res.data[2], [{"n": 3}])
        self.assertEqual(res.data[3], {"ok": False, "err": "db exec %s: UNIQUE constraint "
                                       "failed: t.id" % self.url})
        self.assertEqual(self.dump(), before)
        for sql, n in (("INSERT INTO t (id, v) VALUES (?, ?)", "1 row"),
                       ("UPDATE t SET v = 'z' WHERE id >= 2", "2 rows"),
                       ("DELETE FROM t", "3 rows"), ("CREATE TABLE u (x)", "0 rows"),
                       ("DROP TABLE t", "0 rows")):
            ev = "%s would change; rehearsed and rolled back" % n
            self.assertIn("would: db exec %s: %s  (%s)\n" % (self.url, sql, ev), res.out)
            a = self.action(sql)
            self.assertEqual((a["class"], a["simulated"], a["status"], a["evidence"]),
                             ("mutate", True, "simulated", ev), a)
        q = self.action("SELECT id, v FROM t")
        self.assertEqual((q["class"], q["simulated"], q["status"]), ("read", False, "ok"))
        dup = self.action("INSERT INTO t (id, v) VALUES (1, 'dup')")
        self.assertEqual(dup["status"], "error")
        self.assertIn("UNIQUE constraint failed: t.id", dup["error"])

    def test_open_classification_and_errors(self):
        res = self.runbook("""
step("open", function()
  local ok, e = pcall(db.open, %(u)s)
  out({ ok = ok, err = tostring(e) })
  local c = db.open(%(u)s, { create = true })
  c:exec("CREATE TABLE t (id INTEGER PRIMARY KEY)")
  c:exec("INSERT INTO t VALUES (1)")
  out(c:query("SELECT id FROM t"))
  c:close()
  local ok2, e2 = pcall(c.query, c, "SELECT 1")
  out({ ok = ok2, err = tostring(e2) })
  local ro = db.open(%(ro)s)
  local ok3, e3 = pcall(ro.exec, ro, "INSERT INTO t VALUES (2)")
  out({ ok = ok3, err = tostring(e3) })
  local again = db.open(%(u)s)
  again:exec("INSERT INTO t VALUES (1)")
end)
""" % {"u": self.U, "ro": lua_str(self.url + "?mode=ro")})
        self.assertExit(res, 1)
        self.assertFalse(res.data[0]["ok"])
        self.assertIn("db open %s: " % self.url, res.data[0]["err"])
        self.assertEqual(res.data[1], [{"id": 1}])
        self.assertEqual(res.data[2], {"ok": False, "err": "db: %s is closed" % self.url})
        self.assertFalse(res.data[3]["ok"])
        self.assertIn("readonly", res.data[3]["err"])
        self.assertIn("db exec %s: UNIQUE constraint failed: t.id" % self.url, res.all)
        by_verb = [(a["verb"], a["class"], a["status"]) for a in self.db_actions()
                   if a["verb"] in ("open", "create")]
        self.assertEqual(by_verb, [("open", "read", "error"), ("create", "mutate", "ok"),
                                   ("open", "read", "ok"), ("open", "read", "ok")])
        self.assertEqual(self.action("SELECT id FROM t")["class"], "read")
        self.assertEqual(self.action("CREATE TABLE t")["class"], "mutate")
        self.assertEqual(self.action("INSERT INTO t VALUES (2)")["status"], "error")
        self.assertEqual(self.step_status(), {"open": "failed"})
        con = sqlite3.connect(self.file)
        self.assertEqual(con.execute("SELECT id FROM t").fetchall(), [(1,)])
        con.close()

    def test_dry_run_open_does_not_create(self):
        res = self.runbook("""
step("create", function()
  local c = db.open(%s, { create = true })
  out({ type = type(c) })
end)
""" % self.U, "--dry-run")
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.file))
        a = self.db_actions("create")
        self.assertEqual([(x["class"], x["simulated"]) for x in a], [("mutate", True)])


# the same transaction runbook for both drivers (%(ins)s takes id, v)
TX_BODY = """
step("tx", function()
  local c = db.open(%(url)s)
  local function ids()
    local t = {}
    for _, r in ipairs(c:query("SELECT id FROM acct ORDER BY id")) do t[#t + 1] = r.id end
    return t
  end
  local a, b = c:transaction(function(tx)
    tx:exec("%(ins)s", 1, 10)
    tx:exec("%(ins)s", 2, 20)
    return "done", 2
  end)
  out({ a = a, b = b, ids = ids() })
  local ok, e = pcall(c.transaction, c, function(tx)
    tx:exec("%(ins)s", 3, 30)
    error("boom in tx")
  end)
  out({ ok = ok, err = tostring(e), ids = ids() })
  local ok2, e2 = pcall(c.transaction, c, function(tx)
    tx:exec("%(ins)s", 3, 30)
    tx:exec("%(ins)s", 1, 0)
  end)
  out({ ok = ok2, err = tostring(e2), ids = ids() })
  c:transaction(function(tx)
    tx:exec("%(ins)s", 4, 40)
    local ok3, e3 = pcall(tx.transaction, tx, function(t2)
      t2:exec("%(ins)s", 5, 50)
      t2:exec("%(ins)s", 4, 0)
    end)
    out({ inner_ok = ok3, inner_err = tostring(e3) })
    tx:exec("%(ins)s", 6, 60)
  end)
  out({ ids = ids() })
end)
step("fails", function()
  local c = db.open(%(url)s)
  c:transaction(function(tx)
    tx:exec("%(ins)s", 7, 70)
    error("fatal in tx")
  end)
end)
"""


def check_transactions(case, res, dup):
    case.assertExit(res, 1)
    d = res.data
    case.assertEqual(d[0], {"a": "done", "b": 2, "ids": [1, 2]})
    case.assertFalse(d[1]["ok"])
    case.assertIn("boom in tx", d[1]["err"])
    case.assertEqual(d[1]["ids"], [1, 2])
    case.assertFalse(d[2]["ok"])
    case.assertIn(dup, d[2]["err"])
    case.assertEqual(d[2]["ids"], [1, 2])
    case.assertFalse(d[3]["inner_ok"])
    case.assertIn(dup, d[3]["inner_err"])
    case.assertEqual(d[4], {"ids": [1, 2, 4, 6]})
    case.assertIn("fatal in tx", res.all)
    case.assertEqual(case.step_status(), {"tx": "ok", "fails": "failed"})


# ---- PostgreSQL ----------------------------------------------------------------


class Postgres(PgCase):
    def test_types_and_nulls_both_ways(self):
        self.sql("CREATE TABLE t (id int PRIMARY KEY, small int2, big int8, f4 float4, "
                 "f8 float8, b bool, n numeric(10,2), s text, ts timestamptz, j jsonb, o oid)")
        res = self.runbook("""
step("types", function()
  local c = db.open(%s)
  c:exec("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
         1, 7, 9007199254740993, 0.5, 1.25, true, "12.50", "it's",
         "2024-01-02 03:04:05+00", '{"k": [1, 2]}', 42)
  c:exec("INSERT INTO t (id, b, n, s) VALUES ($1, $2, $3, $4)", 2, false, db.null, nil)
  c:exec("SET TIME ZONE 'UTC'")
  local r = c:query("SELECT * FROM t ORDER BY id")
  out(r)
  local x, y = r[1], r[2]
  local function ty(v) return math.type(v) or type(v) end
  out({ small = ty(x.small), big = ty(x.big), exact = x.big == 9007199254740993,
        f4 = ty(x.f4), f8 = ty(x.f8), b = ty(x.b), n = ty(x.n), s = ty(x.s), ts = ty(x.ts),
        j = ty(x.j), o = ty(x.o), null_is_dbnull = y.s == db.null and y.n == db.null,
        not_nil = y.s ~= nil, b2 = y.b })
  local n = c:query("SELECT n FROM t WHERE id = 1", { numbers = true })[1].n
  out({ n = n, nt = ty(n) })
  local m = c:query("SELECT $1::int8 + 1 AS v, $2::text IS NULL AS isnull", 9007199254740992, nil)[1]
  out({ v = m.v, vt = ty(m.v), isnull = m.isnull })
end)
""" % self.U)
        self.assertExit(res, 0)
        rows = res.data[0]
        self.assertEqual(rows[0], {"id": 1, "small": 7, "big": 9007199254740993, "f4": 0.5,
                                   "f8": 1.25, "b": True, "n": "12.50", "s": "it's",
                                   "ts": "2024-01-02 03:04:05+00", "j": '{"k": [1, 2]}',
                                   "o": 42})
        self.assertEqual(rows[1], {"id": 2, "small": None, "big": None, "f4": None, "f8": None,
                                   "b": False, "n": None, "s": None, "ts": None, "j": None,
                                   "o": None})
        self.assertEqual(res.data[1], {
            "small": "integer", "big": "integer", "exact": True, "f4": "float", "f8": "float",
            "b": "boolean", "n": "string", "s": "string", "ts": "string", "j": "string",
            "o": "integer", "null_is_dbnull": True, "not_nil": True, "b2": False})
        self.assertEqual(res.data[2], {"n": 12.5, "nt": "float"})
        self.assertEqual(res.data[3], {"v": 9007199254740993, "vt": "integer", "isnull": True})
        self.assertEqual(self.sql("SELECT big, n, b, s, n IS NULL FROM t ORDER BY id"),
                         "9007199254740993|12.50|t|it's|f\n||f||t\n")

    def test_parameters_are_bound_never_interpolated(self):
        self.sql("CREATE TABLE t (id int PRIMARY KEY, s text)")
        evil = "x'); DROP TABLE t; --"
        res = self.runbook("""
step("bind", function()
  local c = db.open(%s)
  out({ n = c:exec("INSERT INTO t (id, s) VALUES ($1, $2)", 1, %s) })
  out(c:query("SELECT s FROM t WHERE s = $1", %s))
  out(c:query("SELECT s FROM t WHERE s = $1", "' OR '1'='1"))
  local ok, e = pcall(c.exec, c, "INSERT INTO t (id, s) VALUES ($1, $2)", {}, 2)
  out({ ok = ok, err = tostring(e) })
end)
""" % (self.U, lua_str(evil), lua_str(evil)))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"n": 1})
        self.assertEqual(res.data[1], [{"s": evil}])
        self.assertEqual(res.data[2], [])
        self.assertFalse(res.data[3]["ok"])
        self.assertIn("parameter 1: cannot bind a table", res.data[3]["err"])
        self.assertEqual(self.sql("SELECT id, s FROM t"), "1|%s\n" % evil)

    def test_transactions_commit_rollback_savepoint(self):
        self.sql("CREATE TABLE acct (id int PRIMARY KEY, v int)")
        res = self.runbook(TX_BODY % {"url": self.U, "ins": "INSERT INTO acct VALUES ($1, $2)"})
        check_transactions(self, res, "(SQLSTATE 23505)")
        self.assertEqual(self.sql("SELECT id FROM acct ORDER BY id").split(), ["1", "2", "4", "6"])

    def test_dry_run_executes_reads_only(self):
        self.sql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE SEQUENCE seq;"
                 "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'); ANALYZE t")
        before = self.dump()
        res = self.runbook("""
step("dry", function()
  local c = db.open(%s)
  out(c:query("SELECT id, v FROM t ORDER BY id"))
  out({ c:exec("INSERT INTO t (id, v) VALUES ($1, $2)", 4, "d"),
        c:exec("UPDATE t SET v = 'z'"),
        c:exec("DELETE FROM t"),
        c:exec("CREATE TABLE u (x int)"),
        c:exec("DROP TABLE t"),
        c:exec("VACUUM t") })
  c:query("SELECT nextval('seq') AS v")
  out(c:query("SELECT count(*) AS n FROM t"))
end)
""" % self.U, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [{"id": 1, "v": "a"}, {"id": 2, "v": "b"},
                                       {"id": 3, "v": "c"}])
        self.assertEqual(res.data[1], [0, 0, 0, 0, 0, 0])  # not executed: no count
        self.assertEqual(res.data[2], [{"n": 3}])
        self.assertEqual(self.dump(), before)
        refused = "refused by a read-only transaction, not executed; "
        for verb, sql, ev in (
                ("exec", "INSERT INTO t (id, v) VALUES ($1, $2)", refused + "the planner estimates 1 row"),
                ("exec", "UPDATE t SET v = 'z'", refused + "the planner estimates 3 rows"),
                ("exec", "DELETE FROM t", refused + "the planner estimates 3 rows"),
                ("exec", "CREATE TABLE u (x int)", refused + "no estimate for this kind of statement"),
                ("exec", "DROP TABLE t", refused + "no estimate for this kind of statement"),
                ("exec", "VACUUM t", "not tried, could not be proved read-only: "
                 "VACUUM cannot run inside a transaction block"),
                ("query", "SELECT nextval('seq') AS v", refused + "the planner estimates 1 row")):
            self.assertIn("would: db %s %s: %s  (%s)\n" % (verb, self.shown, sql, ev), res.out)
            a = self.action(sql)
            self.assertEqual((a["class"], a["simulated"], a["status"], a["evidence"]),
                             ("mutate", True, "simulated", ev), a)
        for sql in ("SELECT id, v FROM t", "SELECT count(*)"):
            a = self.action(sql)
            self.assertEqual((a["class"], a["simulated"], a["status"]), ("read", False, "ok"))

    def test_dry_run_never_calls_functions_a_read_only_transaction_allows(self):
        # pg_terminate_backend runs fine in a READ ONLY transaction: the
        # probe must not be what ends another session
        victim = subprocess.Popen(["psql", "-X", "-q", "-h", PG.socket_dir, "-p", str(PG.port),
                                   "-U", "rb", "-d", self.dbname, "-c", "SELECT pg_sleep(60)"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(victim.kill)
        self.wait_for(lambda: self.sql("SELECT count(*) FROM pg_stat_activity WHERE query "
                                       "LIKE 'SELECT pg_sleep%%' AND datname = '%s'"
                                       % self.dbname).strip() == "1", what="the victim session")
        pid = int(self.sql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"
                           " AND datname = '%s'" % self.dbname))
        body = """
step("kill", function()
  local c = db.open(%s)
  out(c:query("SELECT pg_terminate_backend($1) AS t", %d))
  out(c:query("SELECT 1 AS one", { readonly = false }))  -- the runbook's word: a write
end)
""" % (self.U, pid)
        res = self.runbook(body, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [])
        self.assertIn("not executed: it calls a function a read-only transaction does not stop",
                      res.out)
        self.assertEqual(res.data[1], [])
        self.assertIn("SELECT 1 AS one  (not executed: marked readonly = false", res.out)
        self.assertIsNone(victim.poll(), "dry-run ended the other session")
        self.assertEqual(self.action("SELECT pg_terminate_backend")["class"], "mutate")
        res = self.runbook(body)  # live, it does what it says
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[{"t": True}], [{"one": 1}]])
        victim.wait(timeout=30)

    def test_classification_in_the_audit(self):
        self.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE SEQUENCE seq")
        res = self.runbook("""
step("classes", function()
  local c = db.open(%s)
  c:exec("INSERT INTO t VALUES (1), (2), (3)")
  out(c:query("SELECT id FROM t ORDER BY id"))
  out(c:query("SELECT nextval('seq') AS v"))
  out(c:query("WITH d AS (DELETE FROM t WHERE id = 3 RETURNING id) SELECT id FROM d"))
  c:exec("SET statement_timeout = '5s'")
  out(c:query("SHOW statement_timeout"))
  c:exec("BEGIN")
  c:exec("INSERT INTO t VALUES (9)")
  c:exec("ROLLBACK")
end)
""" % self.U)
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[{"id": 1}, {"id": 2}, {"id": 3}], [{"v": 1}], [{"id": 3}],
                                    [{"statement_timeout": "5s"}]])
        want = {"INSERT INTO t VALUES (1)": "mutate", "SELECT id FROM t": "read",
                "SELECT nextval('seq')": "mutate", "WITH d AS (DELETE": "mutate",
                "SET statement_timeout": "read", "SHOW statement_timeout": "read",
                "BEGIN": "read", "INSERT INTO t VALUES (9)": "mutate", "ROLLBACK": "read"}
        for sql, cls in want.items():
            a = self.action(sql)
            self.assertEqual((a["class"], a["status"], a["simulated"]), (cls, "ok", False), a)
        opened = self.db_actions("open")
        self.assertEqual([(a["class"], a["target"]) for a in opened], [("read", self.shown)])
        self.assertEqual(self.sql("SELECT id FROM t ORDER BY id").split(), ["1", "2"])
        self.assertEqual(self.sql("SELECT last_value FROM seq").strip(), "1")

    def test_sql_error_carries_sqlstate_and_fails_the_step(self):
        self.sql("CREATE TABLE t (id int PRIMARY KEY)")
        res = self.runbook("""
step("errors", function()
  local c = db.open(%s)
  local ok, e = pcall(c.query, c, "SELEC 1")
  out({ ok = ok, err = tostring(e) })
  c:exec("INSERT INTO t VALUES (1)")
  c:close()
  local ok2, e2 = pcall(c.exec, c, "SELECT 1")
  out({ ok = ok2, err = tostring(e2) })
  c = db.open(%s)
  c:exec("INSERT INTO t VALUES ($1)", 1)
end)
""" % (self.U, self.U))
        self.assertExit(res, 1)
        self.assertFalse(res.data[0]["ok"])
        self.assertRegex(res.data[0]["err"], r"^db query %s: syntax error at or near "
                         r"\"SELEC\".*\(SQLSTATE 42601\)$" % re.escape(self.shown))
        self.assertEqual(res.data[1], {"ok": False, "err": "db: %s is closed" % self.shown})
        msg = ('db exec %s: duplicate key value violates unique constraint "t_pkey": '
               'Key (id)=(1) already exists. (SQLSTATE 23505)' % self.shown)
        self.assertIn(msg, res.all)
        a = self.action("INSERT INTO t VALUES ($1)")
        self.assertEqual(a["status"], "error")
        self.assertIn("(SQLSTATE 23505)", a["error"])
        self.assertEqual(self.step_status(), {"errors": "failed"})
        self.assertEqual(self.sql("SELECT count(*) FROM t").strip(), "1")

    def test_connection_errors_name_host_and_cause_never_the_password(self):
        wrong = "Wr0ng-pa55-zq7"
        port = self.closed_port()
        closed = PG.url(self.dbname).replace(":%d/" % PG.port, ":%d/" % port)
        badpw = PG.url(self.dbname).replace(PG.password, wrong)
        self.assertNotEqual(badpw, self.url)
        res = self.runbook("""
step("closed", function()
  local ok, e = pcall(db.open, %s, { timeout = 10 })
  out({ ok = ok, err = tostring(e) })
end)
step("badpw", function()
  db.open(%s)
end)
""" % (lua_str(closed), lua_str(badpw)))
        self.assertExit(res, 1)
        self.assertNoSecret(res, wrong)
        self.assertFalse(res.data[0]["ok"])
        self.assertTrue(res.data[0]["err"].startswith(
            'db open postgres://rb:****@127.0.0.1:%d/%s: connection to server at "127.0.0.1", '
            'port %d failed: Connection refused' % (port, self.dbname, port)), res.data[0])
        self.assertRegex(res.all, r'db open %s: connection to server at "127\.0\.0\.1", port %d '
                         r'failed: .*password authentication failed for user "rb"'
                         % (re.escape(self.shown), PG.port))
        opens = self.db_actions("open")
        self.assertEqual([(a["status"], a["class"]) for a in opens], [("error", "read")] * 2)
        self.assertIn("Connection refused", opens[0]["error"])
        self.assertIn("password authentication failed", opens[1]["error"])
        self.assertEqual(self.step_status(), {"closed": "ok", "badpw": "failed"})

    def test_pg_environment_fills_in_the_url(self):
        # PGHOST (the unix socket dir), PGPORT, PGUSER, PGPASSWORD as libpq reads them
        for k, v in PG.env().items():
            self.env[k] = v
        self.env["PGPASSWORD"] = PG.password
        res = self.runbook("""
step("env", function()
  local c = db.open("postgresql:///%s")
  out(c:query("SELECT current_database() AS db, current_user AS u"))
end)
""" % self.dbname)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [{"db": self.dbname, "u": "rb"}])
        self.assertNoSecret(res, PG.password)

    def test_parallel_tasks_each_with_their_own_connection(self):
        self.sql("CREATE TABLE seen (task int PRIMARY KEY, pid int)")
        res = self.runbook("""
step("par", function()
  local got = {}
  parallel({ 1, 2 }, function(i)
    local c = db.open(%s)
    c:exec("INSERT INTO seen VALUES ($1, pg_backend_pid())", i)
    -- a barrier: neither task can finish unless the other runs meanwhile
    local n = 0
    for _ = 1, 200 do
      n = c:query("SELECT count(*) AS n FROM seen")[1].n
      if n == 2 then break end
      sleep(0.05)
    end
    got[i] = n
    c:close()
  end)
  out(got)
end)
""" % self.U)
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[2, 2]])
        pids = self.sql("SELECT pid FROM seen ORDER BY task").split()
        self.assertEqual(len(set(pids)), 2, pids)


if __name__ == "__main__":
    unittest.main()
