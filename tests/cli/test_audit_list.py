"""`runbook audit list` on a log that grows: the 20 newest runs unless told
otherwise, newest first, then how many older runs were not shown; --limit,
--all, --since (a duration ago or an RFC 3339 time), --runbook, --operator;
--json one object per line.  Bad values exit 2 before printing anything.

One log of 30 real runs (10 each of svc/api, svc/web, db/backup, in that
rotation) is built once; every expectation is computed from the log itself
with sqlite3 (the order runs began, their first record's time), never from
the command under test.
"""
import json
import os
import pwd
import re
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import RunbookTestCase  # noqa: E402

RUNBOOKS = ["svc/api", "svc/web", "db/backup"]
N_RUNS = 30
ME = pwd.getpwuid(os.getuid()).pw_name
# a run id at the start of a table row
ROW = re.compile(r"^(\d{8}-\d{6}-\S+)\s")


class AuditList(RunbookTestCase):
    log_dir = None

    @classmethod
    def setUpClass(cls):
        cls.log_dir = os.path.realpath(tempfile.mkdtemp(prefix="rbtest-list-"))
        cls.log = os.path.join(cls.log_dir, "audit.db")
        cls.elevated = []  # run ids started with SUDO_USER=alice
        maker = cls("test_default_shows_20_newest")
        maker.setUp()
        try:
            files = {}
            for name in RUNBOOKS:
                files[name] = maker.write(name.replace("/", "-") + ".lua", """
                    runbook { name = "%s" }
                    step("noop", function() end)
                    """ % name)
            for i in range(N_RUNS):
                name = RUNBOOKS[i % len(RUNBOOKS)]
                env = {"SUDO_USER": "alice"} if i in (4, 17, 25) else None
                res = maker.run_rb(files[name], "--yes", audit=cls.log, env=env)
                maker.assertExit(res, 0)
                if env:
                    cls.elevated.append(maker.last_run_id(cls.log))
        finally:
            maker.doCleanups()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.log_dir, True)

    # ---- the truth, from the log itself -------------------------------------

    def runs(self, path=None):
        """Every run, newest first: (run_id, first record's ts, runbook)."""
        con = sqlite3.connect("file:%s?mode=ro" % (path or self.log), uri=True)
        try:
            rows = con.execute(
                "SELECT r.run_id, f.ts, json_extract(r.data, '$.runbook') FROM"
                " (SELECT run_id, min(seq) AS first, max(seq) AS last FROM records"
                "  WHERE kind = 'run' GROUP BY run_id) g"
                " JOIN records f ON f.seq = g.first JOIN records r ON r.seq = g.last"
                " ORDER BY g.first DESC").fetchall()
        finally:
            con.close()
        self.assertEqual(len(rows), N_RUNS if path is None else len(rows))
        return rows

    def copy_log(self, name):
        """A copy of the log to edit, with what is still in its -wal."""
        copy = self.path(name)
        src, dst = sqlite3.connect(self.log), sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return copy

    def ids(self, pred=lambda r: True, path=None):
        return [r[0] for r in self.runs(path) if pred(r)]

    # ---- running list -------------------------------------------------------

    def list(self, *args, path=None):
        return self.rb("audit", "list", "--audit", path or self.log, *args)

    def table(self, *args, path=None):
        """(run ids of the rows in order, the 'not shown' line or None)"""
        res = self.list(*args, path=path)
        self.assertExit(res, 0)
        lines = res.out.splitlines()
        self.assertTrue(lines, res)
        rows = [m.group(1) for m in map(ROW.match, lines) if m]
        older = [l for l in lines if "not shown" in l]
        self.assertLessEqual(len(older), 1, res)
        if older:
            self.assertEqual(lines[-1], older[0], "the count comes last:\n" + res.out)
        return rows, (older[0] if older else None)

    def json_lines(self, *args):
        res = self.list("--json", *args)
        self.assertExit(res, 0)
        objs = []
        for line in res.out.splitlines():
            objs.append(json.loads(line))  # every line on its own is JSON
        self.assertTrue(all(o["kind"] == "run" for o in objs), res.out)
        return objs, res

    # ---- the default and the limits -----------------------------------------

    def test_default_shows_20_newest(self):
        rows, older = self.table()
        self.assertEqual(rows, self.ids()[:20], "the 20 newest, newest first")
        self.assertEqual(older, "... 10 older runs not shown (--limit N, --all)")

    def test_limit(self):
        rows, older = self.table("--limit", "5")
        self.assertEqual(rows, self.ids()[:5])
        self.assertIn("25 older runs not shown", older)
        rows, older = self.table("--limit=29")
        self.assertEqual(rows, self.ids()[:29])
        self.assertIn(" 1 older run not shown", older)
        rows, older = self.table("--limit", "30")
        self.assertEqual(rows, self.ids())
        self.assertIsNone(older, "nothing is hidden: no count")
        rows, older = self.table("--limit", "1000")
        self.assertEqual(rows, self.ids())
        self.assertIsNone(older)

    def test_all(self):
        rows, older = self.table("--all")
        self.assertEqual(rows, self.ids())
        self.assertIsNone(older)

    # ---- filters: the limit and the count apply to what matches -------------

    def test_runbook(self):
        rows, older = self.table("--runbook", "svc/api")
        self.assertEqual(rows, self.ids(lambda r: r[2] == "svc/api"))
        self.assertEqual(len(rows), 10)
        self.assertIsNone(older)
        # a library directory: 20 runs of svc/*, exactly the default limit
        rows, older = self.table("--runbook", "svc/")
        self.assertEqual(rows, self.ids(lambda r: r[2].startswith("svc/")))
        self.assertIsNone(older)
        # the count of what is hidden counts matching runs only
        rows, older = self.table("--runbook", "svc", "--limit", "15")
        self.assertEqual(rows, self.ids(lambda r: r[2].startswith("svc/"))[:15])
        self.assertIn("... 5 older runs not shown", older)
        rows, older = self.table("--runbook", "svc/ap")  # a prefix of a name is no directory
        self.assertEqual(rows, [])

    def test_operator(self):
        rows, older = self.table("--operator", ME, "--all")
        self.assertEqual(rows, self.ids())
        rows, older = self.table("--operator", ME, "--limit", "3")
        self.assertEqual(rows, self.ids()[:3])
        self.assertIn("27 older runs not shown", older)
        res = self.list("--operator", "no-such-operator-here")
        self.assertExit(res, 0)
        self.assertIn("no runs recorded", res.out)
        self.assertIn("by operator no-such-operator-here", res.out)
        self.assertNotRegex(res.out, ROW)
        rows, _ = self.table("--operator", "alice", "--all")
        if os.getuid() == 0:
            # root's runs with SUDO_USER=alice: alice elevated them
            self.assertEqual(sorted(rows), sorted(self.elevated))
            self.assertEqual(len(rows), 3)
        else:
            # from anyone else SUDO_USER is just a variable: no run is alice's
            self.assertEqual(rows, [])

    def test_since_rfc3339(self):
        runs = self.runs()
        cut = runs[19][1]  # the first record of the 20th newest run
        self.assertRegex(cut, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        want = [r[0] for r in runs if r[1] >= cut]
        self.assertEqual(len(want), 20, "runs of one process each start at distinct ms")
        rows, older = self.table("--since", cut, "--all")
        self.assertEqual(rows, want, "at or after the time, inclusive")
        # the same instant with an offset, and with a lowercase t and z
        h = int(cut[11:13])
        local, zone = (h - 2, "-02:00") if h >= 2 else (h + 2, "+02:00")
        shifted = "%s%02d%s%s" % (cut[:11], local, cut[13:23], zone)
        rows, _ = self.table("--since", shifted, "--all")
        self.assertEqual(rows, want, shifted)
        rows, _ = self.table("--since", cut.replace("T", "t").replace("Z", "z"), "--all")
        self.assertEqual(rows, want)
        # one microsecond later excludes the run that started at cut
        rows, _ = self.table("--since", cut[:-1] + "001Z", "--all")
        self.assertEqual(rows, want[:-1])
        # the limit applies after --since; the count too
        rows, older = self.table("--since", cut, "--limit", "4")
        self.assertEqual(rows, want[:4])
        self.assertIn("16 older runs not shown", older)
        # a date: its midnight UTC, so today's runs are all there
        rows, _ = self.table("--since", runs[-1][1][:10], "--all")
        self.assertEqual(rows, self.ids())
        rows, _ = self.table("--since", "2999-01-01T00:00:00Z")
        self.assertEqual(rows, [])

    def test_since_duration_means_that_long_ago(self):
        rows, _ = self.table("--since", "1h", "--all")
        self.assertEqual(rows, self.ids())
        # move the 10 oldest runs two weeks back (on a copy: list does not
        # check the chain, verify would report it)
        copy = self.copy_log("old.db")
        con = sqlite3.connect(copy)
        oldest = self.ids()[20:]
        con.executemany("UPDATE records SET ts = '2020-01-01T00:00:00.000Z' WHERE run_id = ?",
                        [(i,) for i in oldest])
        con.commit()
        con.close()
        rows, older = self.table("--since", "7d", path=copy)
        self.assertEqual(rows, self.ids()[:20])
        self.assertIsNone(older, "the old runs are filtered out, not hidden by the limit")
        rows, older = self.table("--since", "7d", "--limit", "10", path=copy)
        self.assertIn("... 10 older runs not shown", older)
        rows, older = self.table(path=copy)
        self.assertIn("... 10 older runs not shown", older)

    # ---- JSON Lines ---------------------------------------------------------

    def test_json_lines(self):
        objs, res = self.json_lines()
        self.assertEqual([o["run_id"] for o in objs], self.ids()[:20])
        self.assertIn("10 older runs not shown", res.err, "said on stderr, stdout stays JSON")
        for o in objs:
            self.assertEqual(o["operator"], ME)
            self.assertEqual(o["outcome"], "success")
        objs, res = self.json_lines("--limit", "5")
        self.assertEqual([o["run_id"] for o in objs], self.ids()[:5])
        objs, res = self.json_lines("--all")
        self.assertEqual([o["run_id"] for o in objs], self.ids())
        self.assertNotIn("not shown", res.err)
        objs, res = self.json_lines("--runbook", "db/backup", "--limit", "4")
        self.assertEqual([o["run_id"] for o in objs],
                         self.ids(lambda r: r[2] == "db/backup")[:4])
        self.assertTrue(all(o["runbook"] == "db/backup" for o in objs))
        self.assertIn("6 older runs not shown", res.err)

    # ---- bad values: exit 2, nothing printed --------------------------------

    def test_bad_values_exit_2_and_print_nothing(self):
        cases = [
            (["--limit", "0"], "--limit"),
            (["--limit", "-3"], "--limit"),
            (["--limit", "x"], "--limit"),
            (["--limit", "1e3"], "--limit"),
            (["--limit", "5x"], "--limit"),
            (["--limit", " 5"], "--limit"),
            (["--limit", "99999999999999999999999"], "--limit"),
            (["--limit="], "--limit"),
            (["--limit"], "--limit"),
            (["--limit", "5", "--all"], "--all"),
            (["--all=yes"], "--all"),
            (["--since", "garbage"], "--since"),
            (["--since", "yesterday"], "--since"),
            (["--since", "2026-13-01"], "--since"),
            (["--since", "2026-02-30"], "--since"),
            (["--since", "2025-02-29T00:00:00Z"], "--since"),
            (["--since", "2026-12-01T25:00:00Z"], "--since"),
            (["--since", "2026-12-01T10:00:00"], "zone"),
            (["--since", "2026-12-01T10:00:00+1"], "--since"),
            (["--since", "2026-12-01T10:00:00Zjunk"], "--since"),
            (["--since", "-5m"], "--since"),
            (["--operator"], "--operator"),
            (["--operator="], "--operator"),
            (["--user", "x"], "--user"),
        ]
        for args, word in cases:
            for extra in ([], ["--json"]):
                res = self.list(*(args + extra))
                self.assertExit(res, 2, "%s" % args)
                self.assertEqual(res.out, "", "nothing printed for %s" % args)
                self.assertIn(word, res.err, args)

    # ---- the count past the limit is bounded --------------------------------

    def test_count_of_hidden_runs_is_bounded(self):
        """A log of years: list reads at most a bounded number of runs past
        the limit and says 'more than'."""
        copy = self.copy_log("big.db")
        con = sqlite3.connect(copy)
        (last,) = con.execute("SELECT max(seq) FROM records").fetchone()
        con.executemany(
            "INSERT INTO records(seq, run_id, kind, ts, data, prev_hash, hash)"
            " VALUES (?, ?, 'run', '2019-01-01T00:00:00.000Z', ?, '', '')",
            [(last + 1 + i, "20190101-000000-%06d" % i,
              json.dumps({"runbook": "old/run", "operator": ME, "outcome": "success"}))
             for i in range(1500)])
        con.commit()
        con.close()
        rows, older = self.table(path=copy)
        self.assertEqual(len(rows), 20)
        self.assertEqual(older, "... more than 1000 older runs not shown (--limit N, --all)")
        rows, older = self.table("--runbook", "old/run", "--limit", "600", path=copy)
        self.assertEqual(len(rows), 600)
        self.assertIn("... 900 older runs not shown", older)


if __name__ == "__main__":
    unittest.main(verbosity=2)
