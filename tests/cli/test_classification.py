"""One classifier, every mode: each call below is classified the same way
live, in --dry-run, in `runbook test`, by `--record` and by `--coverage`.

A row is (name, Lua call, class, mock).  Every row runs:
  live        the audit record of the action says its class
  dry-run     the same class; a mutation is simulated, a read is not
  record      a live run recorded with --record: a mutation is an expected
              action of the written scenario, a read only a mock; and the
              recording replays green
  test        a scenario of the call: a mutation must be among the actions
              taken, a read must not
  coverage    `runbook test --coverage-json`: the class of the action at the
              call's line
The world is real where it can be here: a PostgreSQL started by the test,
the real kubectl against tests/fixtures/fake_kube.py (no cluster runs here:
a fake of the Kubernetes API that the real CLI talks to), a loopback HTTP
server, and commands on the PATH that only record that they ran.
"""
import json
import os
import unittest

import yaml

import rbtest
from rbtest import lua_str

PG = None

# name, the call (Lua; `db` is an open PostgreSQL connection), class, the
# scenario mock that answers it
CASES = [
    ("exec read", 'exec{"systemctl", "status", "api"}', "read",
     {"exec": {"argv": ["systemctl", "status", "api"]}, "respond": {"stdout": "active"}}),
    ("exec change", 'exec{"systemctl", "restart", "api"}', "mutate",
     {"exec": {"argv": ["systemctl", "restart", "api"]}}),
    ("exec unknown", 'exec{"mytool", "--show"}', "mutate",
     {"exec": {"argv": ["mytool", "--show"]}}),
    ("exec readonly", 'exec({"mytool", "--show"}, { readonly = true })', "read",
     {"exec": {"argv": ["mytool", "--show"]}}),
    ("exec readonly false", 'exec({"systemctl", "status", "api"}, { readonly = false })', "mutate",
     {"exec": {"argv": ["systemctl", "status", "api"]}}),
    ("kubectl rollout status", 'kubectl.rollout_status("deployment/calendar-api")', "read",
     {"kubectl": {"verb": "rollout status", "kind": "deployment", "name": "calendar-api"},
      "respond": {"result": "deployment \"calendar-api\" successfully rolled out"}}),
    ("kubectl scale", 'kubectl.scale("deployment/calendar-api", 2)', "mutate",
     {"kubectl": {"verb": "scale", "kind": "deployment", "name": "calendar-api"}}),
    ("pg_terminate_backend", 'db:query("SELECT pg_terminate_backend($1)", 0)', "mutate",
     {"db": {"verb": "query", "sql": "SELECT pg_terminate_backend($1)"},
      "respond": {"rows": [{"pg_terminate_backend": False}]}}),
    ("pg_stat_activity", 'db:query("SELECT count(*) AS n FROM pg_stat_activity")', "read",
     {"db": {"verb": "query", "sql": "SELECT count(*) AS n FROM pg_stat_activity"},
      "respond": {"rows": [{"n": 1}]}}),
    # catalog views whose names contain an effectful function's: read as
    # tables they are reads (a function is effectful only as a call)
    ("pg_replication_origin_status", 'db:query("SELECT * FROM pg_replication_origin_status")', "read",
     {"db": {"verb": "query", "sql": "SELECT * FROM pg_replication_origin_status"},
      "respond": {"rows": []}}),
    ("pg_replication_slots", 'db:query("SELECT slot_name FROM pg_replication_slots")', "read",
     {"db": {"verb": "query", "sql": "SELECT slot_name FROM pg_replication_slots"},
      "respond": {"rows": []}}),
    ("pg_file_settings", 'db:query("SELECT name FROM pg_file_settings")', "read",
     {"db": {"verb": "query", "sql": "SELECT name FROM pg_file_settings"},
      "respond": {"rows": []}}),
    ("pg_locks", 'db:query("SELECT count(*) AS n FROM pg_locks")', "read",
     {"db": {"verb": "query", "sql": "SELECT count(*) AS n FROM pg_locks"},
      "respond": {"rows": [{"n": 1}]}}),
    ("http get", 'http.get(URL .. "/health")', "read",
     {"http": {"method": "GET", "url": "*/health"}, "respond": {"status": 200}}),
    ("http post", 'http.post(URL .. "/deploy", { json = { v = 1 } })', "mutate",
     {"http": {"method": "POST", "url": "*/deploy"}, "respond": {"status": 201}}),
]

CALL_LINE = 9  # the line of the call in the runbook below


def setUpModule():
    global PG
    PG = rbtest.pg_cluster()


def tearDownModule():
    if PG:
        PG.stop()


class OneClassifier(rbtest.RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()
        self.http = self.httpd()
        # commands that only say they ran: the world they would change is not here
        for name in ("systemctl", "mytool"):
            self.script(name, 'echo "$0 $*" >> "%s"\necho active\n' % self.path("ran.log"))
        self.url = PG.url()

    def runbook(self, call):
        text = (
            'runbook { name = "t/classify", params = { db = { default = "" }, url = { default = "" } } }\n'
            "\n"
            "step(\"the call\", function()\n"
            "  local URL = params.url\n"
            "  local db = db.open(params.db)\n"
            "  -- the call under test is on line %d\n"
            "  local ok, err = pcall(function()\n"
            "    local _ = 0\n"
            "    return %s\n"
            "  end)\n"
            "  log.info(\"ok=%%s\", tostring(ok))\n"
            "end)\n" % (CALL_LINE, call))
        assert text.splitlines()[CALL_LINE - 1].strip() == "return " + call, text
        return self.write("classify.lua", text, dedent=False)

    def the_action(self, acts, name):
        """The case's own action among a run's (db.open is not it)."""
        mine = [a for a in acts if not a["words"].startswith("db open")]
        self.assertEqual(len(mine), 1, "%s: %r" % (name, [a["words"] for a in acts]))
        return mine[0]

    def test_every_mode_agrees(self):
        for name, call, want, mock in CASES:
            with self.subTest(case=name):
                self.check_case(name, call, want, mock)

    def check_case(self, name, call, want, mock):
        f = self.runbook(call)
        params = ["--param", "db=" + self.url, "--param", "url=" + self.http.url().rstrip("/")]

        # live
        res = self.run_rb(f, "--yes", *params)
        self.assertExit(res, 0, name)
        live = self.the_action(self.actions(), name)
        self.assertEqual(live["class"], want, "live: " + name)

        # dry-run
        res = self.run_rb(f, "--dry-run", *params)
        self.assertExit(res, 0, name)
        dry = self.the_action(self.actions(), name)
        self.assertEqual(dry["class"], want, "dry-run: " + name)
        self.assertEqual(dry["simulated"], want == "mutate", "dry-run simulates changes only: " + name)

        # record: a live run written as a scenario, then replayed
        rec = self.path("rec-%d.scenario.yaml" % abs(hash(name)))
        res = self.run_rb(f, "--yes", "--record", rec, *params)
        self.assertExit(res, 0, name)
        with open(rec) as fh:
            doc = yaml.safe_load(fh)
        expected = doc.get("expect", {}).get("actions", [])
        words = live["words"]
        self.assertEqual(words in expected, want == "mutate",
                         "record: %s: %r in %r" % (name, words, expected))
        replay = self.rb("test", rec)
        self.assertExit(replay, 0, "the recording of %s replays: %s" % (name, replay.all))

        # runbook test, and its coverage: a scenario that answers the call
        scen = self.write("classify.scenario.yaml", yaml.safe_dump({
            "runbook": "classify.lua",
            "params": {"db": "postgres://u@db.test/app", "url": "http://api.test"},
            "mocks": [mock],
            "expect": {"actions" if want == "mutate" else "not_actions": [words_for_scenario(words)],
                       "output": ["ok=true"]},
        }), dedent=False)
        cov = self.path("cov.json")
        res = self.rb("test", scen, "--coverage-json", cov)
        self.assertExit(res, 0, "runbook test: %s: %s" % (name, res.all))
        with open(cov) as fh:
            data = json.load(fh)
        (runbook,) = data.values()
        at_line = {a["class"] for a in runbook["actions"] if a["line"] == CALL_LINE}
        self.assertEqual(at_line, {want}, "coverage: %s: %r" % (name, runbook["actions"]))


def words_for_scenario(words):
    """The scenario's URL and database differ from the live run's: match the
    rest of the words."""
    if words.startswith(("GET ", "POST ")):
        method, url = words.split(" ", 2)[:2]
        return "%s *%s*" % (method, url[url.index("/", 8):])
    if words.startswith("db "):
        return "db * " + words.split(": ", 1)[1]
    return words


if __name__ == "__main__":
    unittest.main()
