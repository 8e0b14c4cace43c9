"""An audit log anyone can query with SQL (issue 16 item 8): the views runs
(one row per run, its final outcome), steps and actions, in the SQLite log
(read with Python's sqlite3, as an outside tool would) and in the PostgreSQL
log (read with psql); a run killed with -9 is marked interrupted in the
database itself by the next run on the same host, so that SQL says what
`audit list` says."""
import os
import signal
import sqlite3
import sys
import unittest
import uuid

import rbtest
from rbtest import RunbookTestCase

sys.dont_write_bytecode = True

PG = None

TWO_STEPS = """\
runbook{ name = "t/two" }
step("one", function() exec{"true"} end)
step("two", function() exec{"sh", "-c", "exit 3"} end)
"""

SLOW = """\
runbook{ name = "t/slow" }
step("wait", function()
  exec{"sh", "-c", "echo $$ > %s; sleep 60"}
end)
"""


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


class Views(RunbookTestCase):
    def log(self):
        return self.audit

    def query(self, sql):
        db = sqlite3.connect(self.audit)
        try:
            return [tuple(r) for r in db.execute(sql)]
        finally:
            db.close()

    def kill_a_run(self):
        pidfile = self.path("child.pid")
        rb = self.write("slow.lua", SLOW % pidfile)
        p = self.spawn("run", rb, "--audit", self.log())
        child = int(self.wait_file(pidfile, proc=p).strip())
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        try:
            os.killpg(child, signal.SIGKILL)  # its own group: -9 of runbook cannot end it
        except OSError:
            pass

    def wait_file(self, path, proc):
        self.wait_for(lambda: os.path.exists(path) and self.read(path).strip(), proc=proc,
                      what=path)
        return self.read(path)

    def test_one_row_per_run_and_the_columns_of_steps_and_actions(self):
        rb = self.write("two.lua", TWO_STEPS)
        self.assertExit(self.rb("run", rb, "--audit", self.log()), 1)
        self.assertExit(self.rb("run", rb, "--audit", self.log()), 1)
        runs = self.query("SELECT runbook, mode, outcome, exit_code FROM runs")
        self.assertEqual(runs, [("t/two", "live", "failed", 1)] * 2)
        self.assertEqual(self.query("SELECT count(*) FROM records WHERE kind = 'run'"), [(4,)])
        steps = self.query("SELECT step, name, status FROM steps ORDER BY seq LIMIT 2")
        self.assertEqual(steps, [(1, "one", "ok"), (2, "two", "failed")])
        acts = self.query("SELECT primitive, verb, status, exit_code FROM actions"
                          " ORDER BY seq LIMIT 2")
        self.assertEqual(acts, [("exec", "run", "ok", 0), ("exec", "run", "error", 3)])

    def test_a_killed_run_is_marked_interrupted_in_the_database(self):
        self.kill_a_run()
        self.assertEqual(self.query("SELECT outcome FROM runs"), [("running",)])
        self.assertIn("interrupted", self.rb("audit", "list", "--audit", self.log()).out)
        self.assertExit(self.rb("run", self.write("two.lua", TWO_STEPS), "--audit", self.log()), 1)
        self.assertEqual(self.query("SELECT runbook, outcome FROM runs ORDER BY started"),
                         [("t/slow", "interrupted"), ("t/two", "failed")])
        self.assertExit(self.rb("audit", "verify", "--audit", self.log()), 0)


class PgViews(Views):
    def setUp(self):
        super().setUp()
        self.db = "views_" + uuid.uuid4().hex[:10]
        PG.createdb(self.db)
        self.addCleanup(PG.dropdb, self.db)

    def log(self):
        return PG.url(self.db)

    def query(self, sql):
        out = PG.psql(sql.replace("FROM runs", "FROM runbook.runs")
                      .replace("FROM steps", "FROM runbook.steps")
                      .replace("FROM actions", "FROM runbook.actions")
                      .replace("FROM records", "FROM runbook.records"), db=self.db)
        rows = []
        for line in out.strip().splitlines():
            cells = line.split("|")
            rows.append(tuple(int(c) if c.lstrip("-").isdigit() else c for c in cells))
        return rows


if __name__ == "__main__":
    unittest.main()
