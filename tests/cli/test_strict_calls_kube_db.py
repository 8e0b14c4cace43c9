"""Strict calls (issue 16 item 2) for kubectl, docker and db: a misspelled
option, a misplaced, missing or extra argument raises at the runbook's line
with the exact message, and nothing was done -- no request reached the fake
Kubernetes API server or the fake Docker engine, no Compose CLI or pg_dump
ran, no database file changed or appeared, and the audit has no action for
the call.  Live, in --dry-run (where reads run for real, so a kubectl.wait
on the wrong objects would still have reached the server) and in a scenario
run alike.  Each test also makes the call spelled right, so an empty request
log means the fixture was listening and the bad call never came."""
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import unittest

from rbtest import RunbookTestCase

sys.dont_write_bytecode = True

from test_docker import FakeDocker  # noqa: E402

KUBECTL = shutil.which("kubectl")
NS = "carbon-ingestion"  # where the fake's deployments and pods are
POD = "enrichment-service-7d9f-abcde"
MODES = ((), ("--dry-run",))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class StrictCase(RunbookTestCase):
    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/strict", **kw)

    def assertRaisedAt(self, res, line, message):
        """The run failed with message at line `line` of its file."""
        self.assertExit(res, 1)
        self.assertIn("%s:%d: %s" % (os.path.basename(res.file), line, message), res.all)

    @staticmethod
    def messages(res):
        """What the runbook out()ed: the errors, without their file:line."""
        return [m.split(": ", 1)[1] if isinstance(m, str) and m.split(": ", 1)[0].count(":") == 1
                else m for m in res.data]


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class Kubectl(StrictCase):
    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()

    def test_issue_example_prev_suggests_previous(self):
        # the issue's own words: `{ prev = true }` on kubectl.logs
        for flags in MODES:
            res = self.runbook("""
                step("logs", function()
                  kubectl.logs(%r, { namespace = %r, prev = true })
                end)
                """ % (POD, NS), *flags)
            self.assertRaisedAt(res, 4, "unknown option 'prev' for kubectl.logs "
                                        "(did you mean 'previous'?)")

    def test_misspelled_option_reaches_no_server(self):
        for flags in MODES:
            res = self.runbook("""
                step("logs", function()
                  kubectl.logs(%r, { namespace = %r, tial = 2 })
                end)
                """ % (POD, NS), *flags)
            self.assertRaisedAt(res, 4, "unknown option 'tial' for kubectl.logs "
                                        "(did you mean 'tail'?)")
            self.assertEqual(self.kube.requests(), [], flags)
            self.assertEqual(self.actions(primitive="kubectl"), [], flags)
        # spelled right, the same call reaches the fake
        res = self.runbook("""
            step("logs", function()
              out(kubectl.logs(%r, { namespace = %r, tail = 1, previous = true }))
            end)
            """ % (POD, NS))
        self.assertExit(res, 0)
        logs = [r for r in self.kube.requests() if r["path"].endswith("/log")]
        self.assertEqual(len(logs), 1, self.kube.requests())
        self.assertEqual((logs[0]["query"].get("tailLines"), logs[0]["query"].get("previous")),
                         ("1", "true"))

    def test_wait_without_a_name_waits_on_nothing(self):
        # the issue: `name` was nil, and kubectl waited on every pod of the
        # default namespace; a wait is a read, so dry-run would have run it too
        for flags in MODES:
            res = self.runbook("""
                step("wait", function()
                  local name -- a variable that was never set
                  kubectl.wait("pod", name, { namespace = %r, timeout = 5 })
                end)
                """ % NS, *flags)
            self.assertRaisedAt(res, 5, "kubectl.wait: which pod? give a name, "
                                        "{ selector = ... } or { all = true }; "
                                        "usage: kubectl.wait(kind [, name] [, opts])")
            self.assertEqual(self.kube.requests(), [], flags)
            self.assertEqual(self.actions(primitive="kubectl"), [], flags)
        # a name, a selector or all = true say what to wait on
        res = self.runbook("""
            step("wait", function()
              local w = {}
              for _, c in ipairs({
                { "deployment", "enrichment-service", { namespace = %r, ["for"] = "condition=available", timeout = 20 } },
                { "deployment", nil, { namespace = %r, selector = "app=enrichment-service", ["for"] = "condition=available", timeout = 20 } },
                { "deployment", nil, { namespace = %r, all = true, ["for"] = "condition=available", timeout = 20 } },
              }) do
                out(kubectl.wait(c[1], c[2], c[3]).code)
              end
            end)
            """ % (NS, NS, NS), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [0, 0, 0])
        words = [a["words"] for a in self.actions(primitive="kubectl")]
        self.assertEqual(words, [
            "kubectl wait deployment enrichment-service --for=condition=available "
            "--timeout=20s -n %s" % NS,
            "kubectl wait deployment -l app=enrichment-service --for=condition=available "
            "--timeout=20s -n %s" % NS,
            "kubectl wait deployment --all --for=condition=available --timeout=20s -n %s" % NS])

    def test_misplaced_missing_and_extra_arguments(self):
        body = """
            step("calls", function()
              for _, f in ipairs({
                function() kubectl.scale("deploy/enrichment-service", "5", { namespace = %r }) end,
                function() kubectl.scale("deploy/enrichment-service") end,
                function() kubectl.logs(%r, { namespace = %r }, "extra") end,
                function() kubectl.get({ namespace = %r }) end,
                function() kubectl.set_image("deploy/enrichment-service", { namespace = %r }, 3) end,
              }) do
                local ok, err = pcall(f)
                out(tostring(err))
              end
            end)
            """ % (NS, POD, NS, NS, NS)
        for flags in MODES:
            res = self.runbook(body, *flags)
            self.assertExit(res, 0)
            self.assertEqual(self.messages(res), [
                "kubectl.scale: argument 2 (replicas) must be an integer, got string; "
                "usage: kubectl.scale(target, replicas [, opts])",
                "kubectl.scale: missing argument 2 (replicas); "
                "usage: kubectl.scale(target, replicas [, opts])",
                "kubectl.logs: too many arguments (3); usage: kubectl.logs(pod [, opts])",
                "kubectl.get: argument 1 (kind) must be a string, got table; "
                "usage: kubectl.get(kind [, name] [, opts])",
                "kubectl.set_image: argument 3 (opts) must be an options table, got number; "
                "usage: kubectl.set_image(target, images [, opts])",
            ])
            # each error points at the runbook's line of the call
            self.assertTrue(all(m.startswith(res.file + ":") for m in res.data), res.data)
            self.assertEqual(self.kube.requests(), [], flags)
            self.assertEqual(self.actions(primitive="kubectl"), [], flags)

    def test_defaults_refuse_an_unknown_key(self):
        res = self.runbook("""
            step("d", function()
              kubectl.defaults{ namepsace = %r }
            end)
            """ % NS)
        self.assertRaisedAt(res, 4, "unknown option 'namepsace' for kubectl.defaults "
                                    "(did you mean 'namespace'?)")


class Docker(StrictCase):
    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self)
        self.env["DOCKER_HOST"] = self.fake.host

    def test_misspelled_option_sends_nothing_to_the_engine(self):
        for flags in MODES:
            res = self.runbook("""
                step("restart", function()
                  docker.restart("calendar-api", { timout = 5 })
                end)
                """, *flags)
            self.assertRaisedAt(res, 4, "unknown option 'timout' for docker.restart "
                                        "(did you mean 'timeout'?)")
            # not even the version negotiation
            self.assertEqual(self.fake.requests(), [], flags)
            self.assertEqual(self.actions(primitive="docker"), [], flags)
        res = self.runbook("""
            step("restart", function() docker.restart("calendar-api", { timeout = 5 }) end)
            """)
        self.assertExit(res, 0)
        self.assertEqual([(r["path"], r["query"]) for r in self.fake.requests("POST")],
                         [("/v1.47/containers/calendar-api/restart", "t=5")])

    def test_reads_and_arguments(self):
        body = """
            step("calls", function()
              for _, f in ipairs({
                function() docker.ps{ al = true } end,
                function() docker.logs("calendar-api", { tail = 5, sinse = "1h" }) end,
                function() docker.update("calendar-api", { memroy = "2g" }) end,
                function() docker.inspect() end,
                function() docker.kill("calendar-api", "SIGHUP") end,
                function() docker.start("calendar-api", {}, true) end,
              }) do
                local ok, err = pcall(f)
                out(tostring(err))
              end
            end)
            """
        for flags in MODES:
            res = self.runbook(body, *flags)
            self.assertExit(res, 0)
            self.assertEqual(self.messages(res), [
                "unknown option 'al' for docker.ps (did you mean 'all'?)",
                "unknown option 'sinse' for docker.logs (did you mean 'since'?)",
                "unknown option 'memroy' for docker.update (did you mean 'memory'?)",
                "docker.inspect: missing argument 1 (name); usage: docker.inspect(name [, opts])",
                "docker.kill: argument 2 (opts) must be an options table, got string; "
                "usage: docker.kill(name [, opts])",
                "docker.start: too many arguments (3); usage: docker.start(name [, opts])",
            ])
            self.assertEqual(self.fake.requests(), [], flags)
            self.assertEqual(self.actions(primitive="docker"), [], flags)

    def test_compose_methods(self):
        f = self.write("deployment/docker-compose.yml", "services: {}\n")
        marker = self.path("compose-ran")
        # a Compose CLI that leaves a mark when it runs (live: it may write),
        # whichever the host would pick: the docker CLI's plugin or docker-compose
        for prog in ("docker", "docker-compose"):
            self.script(prog, 'touch %s\necho "$0:$@" >&2\n' % marker)
        body = """
            step("compose", function()
              local c = docker.compose(%s)
              for _, g in ipairs({
                function() c:up{ detatch = false } end,
                function() c:stop{ services = "api", stop_timout = 3 } end,
                function() c:logs("api", { tial = 5 }) end,
                function() c:down{ volume = true } end,
                function() c:pull{ service = "api" } end,
                function() c:restart("api", { timout = 1 }) end,
                function() c:ps{ servce = "api" } end,
                function() c:restart() end,
                function() docker.compose(%s, { projcet = "x" }) end,
              }) do
                local ok, err = pcall(g)
                out(tostring(err))
              end
            end)
            """ % (json.dumps(f), json.dumps(f))
        res = self.runbook(body)
        self.assertExit(res, 0)
        self.assertEqual(self.messages(res), [
            "unknown option 'detatch' for compose:up (did you mean 'detach'?)",
            "unknown option 'stop_timout' for compose:stop (did you mean 'stop_timeout'?)",
            "unknown option 'tial' for compose:logs (did you mean 'tail'?)",
            "unknown option 'volume' for compose:down (did you mean 'volumes'?)",
            "unknown option 'service' for compose:pull (did you mean 'services'?)",
            "unknown option 'timout' for compose:restart (did you mean 'timeout'?)",
            "unknown option 'servce' for compose:ps (did you mean 'service'?)",
            "compose:restart: missing argument 1 (service); "
            "usage: compose:restart(service [, opts])",
            "unknown option 'projcet' for docker.compose (did you mean 'project'?)",
        ])
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(self.fake.requests(), [])
        self.assertEqual(self.actions(primitive="docker"), [])
        # spelled right, the CLI runs
        res = self.runbook("""
            step("compose", function() docker.compose(%s):down{ volumes = true } end)
            """ % json.dumps(f))
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(marker))


class Db(StrictCase):
    def setUp(self):
        super().setUp()
        self.dbfile = self.path("app.db")
        con = sqlite3.connect(self.dbfile)
        con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT)")
        con.execute("INSERT INTO jobs (state) VALUES ('stuck'), ('done')")
        con.commit()
        con.close()

    def test_statement_options(self):
        before = sha256(self.dbfile)
        body = """
            step("db", function()
              local c = db.open(%s)
              for _, f in ipairs({
                function() c:exec("UPDATE jobs SET state = ? WHERE state = ?", "queued", "stuck", { timout = 5 }) end,
                function() c:query("SELECT * FROM jobs WHERE state = ?", "stuck", { nubmers = true }) end,
                function() c:exec("DELETE FROM jobs", { readonyl = false }) end,
                function() c:query() end,
                function() c:query({ timeout = 1 }) end,
                function() c:transaction("not a function") end,
                function() c:backup_to(%s, { timout = 1 }) end,
                function() c:close(true) end,
              }) do
                local ok, err = pcall(f)
                out(tostring(err))
              end
              out(#c:query("SELECT * FROM jobs WHERE state = ?", "stuck", { numbers = true, timeout = 5 }))
            end)
            """ % (json.dumps("sqlite:" + self.dbfile), json.dumps(self.path("copy.db")))
        for flags in MODES:
            res = self.runbook(body, *flags)
            self.assertExit(res, 0)
            self.assertEqual(self.messages(res), [
                "unknown option 'timout' for db:exec (did you mean 'timeout'?)",
                "unknown option 'nubmers' for db:query (did you mean 'numbers'?)",
                "unknown option 'readonyl' for db:exec (did you mean 'readonly'?)",
                "db:query: missing argument 1 (sql); usage: db:query(sql, ...)",
                "db:query: argument 1 (sql) must be a string, got table; "
                "usage: db:query(sql, ...)",
                "db:transaction: argument 1 (fn) must be a function, got string; "
                "usage: db:transaction(fn)",
                "unknown option 'timout' for db:backup_to (did you mean 'timeout'?)",
                "db:close: too many arguments (1); usage: db:close()",
                1,
            ])
            self.assertEqual(sha256(self.dbfile), before, flags)
            self.assertFalse(os.path.exists(self.path("copy.db")), flags)
            # the open and the last query: no action for a refused call
            acts = self.actions(primitive="db")
            self.assertEqual([a["verb"] for a in acts], ["open", "query"], flags)

    def test_open_with_a_misspelled_option_creates_nothing(self):
        new = self.path("new.db")
        for flags in MODES:
            res = self.runbook("""
                step("open", function()
                  db.open(%s, { craete = true })
                end)
                """ % json.dumps("sqlite:" + new), *flags)
            self.assertRaisedAt(res, 4, "unknown option 'craete' for db.open "
                                        "(did you mean 'create'?)")
            self.assertFalse(os.path.exists(new))
            self.assertEqual(self.actions(primitive="db"), [])

    def test_backup_with_a_misspelled_option_writes_nothing(self):
        dest = self.path("backups", "app.db")
        os.makedirs(os.path.dirname(dest))
        marker = self.path("pg_dump-ran")
        self.script("pg_dump", "touch %s\n" % marker)
        before = sha256(self.dbfile)
        body = """
            step("backup", function()
              for _, f in ipairs({
                function() db.backup(%s, %s, { timout = 60 }) end,
                function() db.backup("postgres://app@127.0.0.1:1/app", %s, { pg_dupm = "pg_dump" }) end,
                function() db.backup(%s) end,
                function() db.verify(%s, { chekc = false }) end,
                function() db.restore(%s, %s, { manfest = "x" }) end,
              }) do
                local ok, err = pcall(f)
                out(tostring(err))
              end
            end)
            """ % (json.dumps("sqlite:" + self.dbfile), json.dumps(dest), json.dumps(dest),
                   json.dumps("sqlite:" + self.dbfile), json.dumps(self.dbfile), json.dumps(self.dbfile),
                   json.dumps("sqlite:" + self.path("restored.db")))
        for flags in MODES:
            res = self.runbook(body, *flags)
            self.assertExit(res, 0)
            self.assertEqual(self.messages(res), [
                "unknown option 'timout' for db.backup (did you mean 'timeout'?)",
                "unknown option 'pg_dupm' for db.backup (did you mean 'pg_dump'?)",
                "db.backup: missing argument 2 (dest); usage: db.backup(src, dest [, opts])",
                "unknown option 'chekc' for db.verify (did you mean 'check'?)",
                "unknown option 'manfest' for db.restore (did you mean 'manifest'?)",
            ])
            self.assertEqual(os.listdir(os.path.dirname(dest)), [], flags)
            self.assertFalse(os.path.exists(marker), flags)
            self.assertFalse(os.path.exists(self.path("restored.db")), flags)
            self.assertEqual(sha256(self.dbfile), before)
            self.assertEqual(self.actions(), [], flags)
        # spelled right, the backup is made
        res = self.runbook("""
            step("backup", function()
              out(db.backup(%s, %s, { timeout = 60 }).verified)
            end)
            """ % (json.dumps("sqlite:" + self.dbfile), json.dumps(dest)))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [True])
        self.assertTrue(os.path.exists(dest))


SCENARIO_RUNBOOK = """\
runbook { name = "strict/scenario" }

-- each call is refused before a mock could answer it: what it raised is kept
local function try(f)
  local ok, err = pcall(f)
  state.errors[#state.errors + 1] = (tostring(err):gsub("^[^:]+:%d+: ", ""))
end

step("calls", function()
  state.errors = {}
  try(function() kubectl.logs("api-1", { namespace = "prod", prev = true }) end)
  try(function() kubectl.wait("pod", nil, { namespace = "prod" }) end)
  try(function() kubectl.scale("deployment/api", "5", { namespace = "prod" }) end)
  try(function() docker.restart("api", { timout = 5 }) end)
  try(function() db.open("postgres://app@db.test/app"):exec("DELETE FROM jobs", { timout = 5 }) end)
  state.n = #state.errors
end)
"""

SCENARIO = """\
runbook: ../strict.lua
mocks:
  - kubectl: { verb: logs }
    respond: { result: "line\\n" }
  - kubectl: { verb: wait }
  - kubectl: { verb: scale }
  - docker: { verb: restart, name: api }
  - db: { verb: exec }
    respond: { affected: 3 }
expect:
  outcome: success
  not_actions: [ "kubectl scale", "docker restart", "db exec" ]
  state:
    n: 5
    errors:
      - "unknown option 'prev' for kubectl.logs (did you mean 'previous'?)"
      - "kubectl.wait: which pod? give a name, { selector = ... } or { all = true }; usage: kubectl.wait(kind [, name] [, opts])"
      - "kubectl.scale: argument 2 (replicas) must be an integer, got string; usage: kubectl.scale(target, replicas [, opts])"
      - "unknown option 'timout' for docker.restart (did you mean 'timeout'?)"
      - "unknown option 'timout' for db:exec (did you mean 'timeout'?)"
"""


class Scenario(StrictCase):
    def test_a_scenario_run_raises_the_same(self):
        d = self.path("strict")
        self.write(os.path.join(d, "strict.lua"), SCENARIO_RUNBOOK, dedent=False)
        self.write(os.path.join(d, "tests", "strict.scenario.yaml"), SCENARIO, dedent=False)
        res = self.rb("test", "-v", d)
        self.assertExit(res, 0)
        self.assertIn("1 passed, 0 failed", res.out)


class Check(StrictCase):
    def test_check_finds_the_misspellings_without_running(self):
        # nothing runs: no fixture is needed to know nothing was sent
        f = self.write("static.lua", """\
            runbook { name = "strict/static" }
            step("a", function()
              kubectl.logs("api-1", { namespace = "prod", tial = 20 })
              kubectl.wait("pod", "api-1", { namespace = "prod", timout = 5 })
              docker.restart("api", { timout = 5 })
              db.open("sqlite:app.db", { craete = true })
              db.backup("sqlite:app.db", "app.bak", { timout = 60 })
            end)
            """)
        res = self.rb("check", f)
        self.assertExit(res, 1)
        errors = [l.split(": error: ", 1) for l in res.out.splitlines() if ": error: " in l]
        self.assertEqual([(int(where.split(":")[1]), what) for where, what in errors], [
            (3, "unknown option 'tial' for kubectl.logs (did you mean 'tail'?)"),
            (4, "unknown option 'timout' for kubectl.wait (did you mean 'timeout'?)"),
            (5, "unknown option 'timout' for docker.restart (did you mean 'timeout'?)"),
            (6, "unknown option 'craete' for db.open (did you mean 'create'?)"),
            (7, "unknown option 'timout' for db.backup (did you mean 'timeout'?)"),
        ])
        self.assertFalse(os.path.exists(self.path("app.db")))


if __name__ == "__main__":
    unittest.main()
