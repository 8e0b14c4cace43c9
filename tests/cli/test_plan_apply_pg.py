"""plan -> approve -> apply on the team's shared log on PostgreSQL (issue 17
item 3, issue 20 item 1): every test of test_plan_apply.PlanApply, run with
runbook.yaml's `audit:` a postgres:// URL of a real server
(tests/fixtures/pg_cluster.py) and two operators who are two database roles,
alice (the planner) and bob.  Who is who is decided by the role the database
authenticated, never by USER or LOGNAME: alice with USER=bob is still alice
and cannot approve her own plan; bob's role can, whatever USER says."""
import os
import sys
import unittest
import uuid

import rbtest
import test_plan_apply as base

sys.dont_write_bytecode = True

PG = None
PASSWORDS = {"alice": "alice-pw-1234", "bob": "bob-pw-1234"}


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()
    for role, pw in PASSWORDS.items():
        PG.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, pw))


def tearDownModule():
    if PG:
        PG.stop()


def as_role(role, **more):
    env = {"PGUSER": role, "PGPASSWORD": PASSWORDS[role]}
    env.update(more)
    return env


class PlanApplyPostgres(base.PlanApply):
    def setUp(self):
        self.db = "plans_" + uuid.uuid4().hex[:10]
        PG.createdb(self.db)
        self.addCleanup(PG.dropdb, self.db)
        super().setUp()
        # the log exists, made by the DBA's role (the cluster's superuser);
        # the operators are granted reading it, and append through
        # runbook.append(), which is SECURITY DEFINER
        # (without a run of its own, which the tests would count: `audit push`
        # opens -- and so creates -- the log before it finds nothing to push)
        res = self.rb("audit", "push", self.path("nothing.db"), "--audit", PG.url(self.db))
        self.assertIn("no audit log at", res.err)
        for role in PASSWORDS:
            PG.psql("GRANT USAGE ON SCHEMA runbook TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA"
                    " runbook TO %s" % (role, role), db=self.db)
        self.env.update(as_role("alice"))  # every command: alice, unless told

    def audit_spec(self):
        # one URL for the team, no user in it: each operator is who libpq
        # logs in as (PGUSER and PGPASSWORD here, ~/.pgpass in real life)
        return "postgres://127.0.0.1:%d/%s" % (PG.port, self.db)

    def other_operator(self):
        return [], as_role("bob", USER="alice", LOGNAME="alice"), []

    def planner_identity(self):
        return "alice"

    def test_USER_does_not_make_alice_bob(self):
        """alice's role with USER=bob cannot approve alice's plan."""
        plan = self.plan("--env", "production")
        res = self.rb("approve", plan, env=as_role("alice", USER="bob", LOGNAME="bob"))
        self.assertExit(res, 2)
        self.assertEqual(self.log("approval"), [])
        # and the records say alice, as the database vouched
        plans = self.log("plan")
        self.assertEqual([p["db_role"] for p in plans], ["alice"])
        # bob's role can, with USER=alice
        prefix, env, more = self.other_operator()
        res = self.rb("approve", plan, *more, env=env)
        self.assertExit(res, 0)
        self.assertEqual([a["db_role"] for a in self.log("approval")], ["bob"])


if __name__ == "__main__":
    unittest.main()
