"""Run locks (issue 17 item 2): runbook{ lock = ... } makes a live run hold
named locks in the audit log's database for its whole duration.  Against a
SQLite log and a real PostgreSQL (tests/fixtures/pg_cluster.py), with real
concurrent processes: what is attacked is the exclusion itself (the second
run's actions never run while the first holds the lock; its marker file
proves it), the holder named in the refusal, --wait-lock, a holder killed
with -9 (its lock is freed), dry-runs (never take locks) and two operators
with their own database roles."""
import json
import os
import signal
import sys
import unittest
import uuid
from urllib.parse import quote

import rbtest
from rbtest import RunbookTestCase

sys.dont_write_bytecode = True

PG = None

# step 1 holds the run until the file GO exists; step 2 writes the run's tag
HOLD = """\
runbook{ name = "calendar-api/restart", title = "Restart", lock = "calendar-api",
         params = { tag = { type = "string", default = "x" } } }
step("hold", function()
  exec{"sh", "-c", "echo started >> %(dir)s/started-" .. params.tag ..
        "; while [ ! -e %(dir)s/GO ]; do sleep 0.05; done"}
end)
step("Restart calendar-api", function()
  exec{"sh", "-c", "echo " .. params.tag .. " >> %(dir)s/restarted"}
end)
"""

BY_CLUSTER = """\
runbook{ name = "db/failover", lock = function(p) return { "db:" .. p.cluster, "pager" } end,
         params = { cluster = { type = "string" } } }
step("hold", function()
  exec{"sh", "-c", "echo " .. params.cluster .. " >> %(dir)s/started;"
        .. " while [ ! -e %(dir)s/GO ]; do sleep 0.05; done"}
end)
"""


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()
    for role in ("alice", "bob"):
        PG.psql("CREATE ROLE %s LOGIN PASSWORD '%s-pw-1234'" % (role, role))


def tearDownModule():
    if PG:
        PG.stop()


class LockCase(RunbookTestCase):
    """Run against the SQLite log; PgLocks runs the same against PostgreSQL."""

    def log(self):
        return self.audit

    def setUp(self):
        super().setUp()
        self.hold = self.write("hold.lua", HOLD % {"dir": self.tmp})

    def start_holder(self, *extra, tag="first"):
        p = self.spawn("run", self.hold, "--audit", self.log(), "--param", "tag=" + tag, *extra)
        self.wait_for(lambda: os.path.exists(self.path("started-" + tag)), proc=p,
                      what="the holder's first step")
        return p

    def go(self):
        with open(self.path("GO"), "w"):
            pass

    def finish(self, p):
        self.go()
        p.wait(timeout=60)
        return self.spawned_output(p)

    def test_second_run_stops_before_its_first_action_naming_the_holder(self):
        holder = self.start_holder()
        res = self.rb("run", self.hold, "--audit", self.log(), "--param", "tag=second")
        self.assertExit(res, 2)
        self.assertRegex(res.err, r"calendar-api is held by [^@ ]+@%s" % os.uname().nodename)
        first = json.loads(self.rb("locks", "--audit", self.log(), "--json").out)["holder"]
        self.assertIn("run %s, step 1/2 \"hold\", for " % first["run_id"], res.err)
        self.assertIn("nothing was run", res.err)
        # the second run did nothing: not its first step, not its second
        self.assertFalse(os.path.exists(self.path("started-second")))
        out = self.finish(holder)
        self.assertExit(out, 0)
        self.assertEqual(self.lines("restarted"), ["first"])
        # the refused run is in the log, failed, saying why
        runs = [json.loads(l) for l in self.rb("audit", "list", "--json", "--audit",
                                               self.log()).out.splitlines()]
        refused = [r for r in runs if r["run_id"] != first["run_id"]]
        self.assertEqual(len(refused), 1)
        self.assertIn("calendar-api is held by", refused[0].get("error", ""))
        # and once the holder ended, the lock is free
        self.assertIn("no run locks are held", self.rb("locks", "--audit", self.log()).out)
        self.assertExit(self.rb("run", self.hold, "--audit", self.log(), "--param", "tag=third"), 0)

    def test_locks_lists_the_holder(self):
        holder = self.start_holder()
        res = self.rb("locks", "--audit", self.log())
        self.assertExit(res, 0)
        self.assertIn("calendar-api", res.out)
        self.assertIn('step 1/2 "hold"', res.out)
        js = json.loads(self.rb("locks", "--audit", self.log(), "--json").out)
        self.assertEqual(js["name"], "calendar-api")
        self.assertEqual(js["holder"]["pid"], holder.pid)
        self.assertExit(self.finish(holder), 0)

    def test_wait_lock_proceeds_when_the_holder_ends(self):
        holder = self.start_holder()
        waiter = self.spawn("run", self.hold, "--audit", self.log(), "--param", "tag=second",
                            "--wait-lock", "60s")
        self.wait_for(lambda: "waiting for lock calendar-api" in self.spawned_output(waiter).err,
                      proc=waiter, what="the second run to wait")
        self.assertFalse(os.path.exists(self.path("started-second")))
        self.assertExit(self.finish(holder), 0)
        waiter.wait(timeout=60)
        self.assertExit(self.spawned_output(waiter), 0)
        # strictly one after the other
        self.assertEqual(self.lines("restarted"), ["first", "second"])

    def test_kill_9_of_the_holder_frees_the_lock(self):
        holder = self.start_holder()
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        self.go()
        # the dead holder's lock is not held; a bound, not a timing: without
        # the release this would wait the full minute and fail
        res = self.rb("run", self.hold, "--audit", self.log(), "--param", "tag=second",
                      "--wait-lock", "60s")
        self.assertExit(res, 0)
        self.assertEqual(self.lines("restarted"), ["second"])

    def test_dry_run_takes_no_lock(self):
        holder = self.start_holder()
        res = self.rb("run", "--dry-run", self.hold, "--audit", self.log(), "--param",
                      "tag=second")
        self.assertExit(res, 0)
        self.assertNotIn("held by", res.all)
        self.assertExit(self.finish(holder), 0)

    def test_lock_names_from_params(self):
        rbf = self.write("failover.lua", BY_CLUSTER % {"dir": self.tmp})
        a = self.spawn("run", rbf, "--audit", self.log(), "--param", "cluster=eu")
        self.wait_for(lambda: self.lines("started") == ["eu"], proc=a, what="eu to start")
        # another cluster, but the shared "pager" lock
        res = self.rb("run", rbf, "--audit", self.log(), "--param", "cluster=us")
        self.assertExit(res, 2)
        self.assertIn("pager is held by", res.err)
        # db:us was taken before pager was found held, and given back
        names = [json.loads(l)["name"] for l in
                 self.rb("locks", "--audit", self.log(), "--json").out.splitlines()]
        self.assertEqual(sorted(names), ["db:eu", "pager"])
        self.go()
        a.wait(timeout=60)
        self.assertExit(self.spawned_output(a), 0)


class SqliteLocks(LockCase):
    def test_no_audit_log_no_locked_run(self):
        res = self.rb("run", self.hold, "--no-audit")
        self.assertExit(res, 2)
        self.assertIn("kept in the audit log", res.err)
        self.assertFalse(os.path.exists(self.path("started-x")))


class PgLocks(LockCase):
    def setUp(self):
        super().setUp()
        self.db = "locks_" + uuid.uuid4().hex[:10]
        PG.createdb(self.db)
        self.addCleanup(PG.dropdb, self.db)

    def log(self):
        return PG.url(self.db)

    def role_url(self, role):
        return "postgres://%s:%s@127.0.0.1:%d/%s" % (role, quote(role + "-pw-1234"), PG.port,
                                                      self.db)

    def test_two_operators_with_their_own_roles(self):
        # the log exists and the DBA granted both operators
        self.assertExit(self.rb("locks", "--audit", self.log()), 0)
        self.assertExit(self.rb("run", self.write("noop.lua", 'runbook{ name = "noop" }\n'),
                                "--audit", self.log()), 0)
        for r in ("alice", "bob"):
            PG.psql("GRANT CONNECT ON DATABASE %s TO %s" % (self.db, r))
            PG.psql("GRANT USAGE ON SCHEMA runbook TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA"
                    " runbook TO %s" % (r, r), db=self.db)
        a = self.spawn("run", self.hold, "--audit", self.role_url("alice"), "--param",
                       "tag=first", env={"USER": "bob"})
        self.wait_for(lambda: os.path.exists(self.path("started-first")), proc=a,
                      what="alice's run")
        res = self.rb("run", self.hold, "--audit", self.role_url("bob"), "--param", "tag=second")
        self.assertExit(res, 2)
        self.assertIn("(db role alice)", res.err)
        self.assertNotIn("alice-pw-1234", res.all)
        self.assertFalse(os.path.exists(self.path("started-second")))
        self.assertExit(self.finish(a), 0)


del LockCase

if __name__ == "__main__":
    unittest.main()
