"""Strict calls (issue 16, item 2) for the stdlib modules, the engine's own
globals (print, log.*, env, secret, sleep, check, confirm, parallel), time.*,
the codecs and the prelude (wait_until, run_runbook): a misspelled option or
a misplaced argument raises with the declared signature's message, at the
runbook's line, and NOTHING happened -- no request reached the HTTP server,
no process was spawned, no action was audited, wait_until did not wait and
parallel ran no item.  Also: the varargs functions (print, log.*, check)
still take anything, in a live run, in --dry-run and in a scenario."""
import json
import os
import textwrap
import unittest

from rbtest import RunbookTestCase, lua_str

PROM_MATRIX = {"status": "success",
               "data": {"resultType": "matrix",
                        "result": [{"metric": {"job": "api"}, "values": [[1700000000, "1"]]}]}}


class StdlibStrict(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.httpd(routes={
            "/api/v1/query_range": {"status": 200, "json": PROM_MATRIX},
            "/api/v2/silences": {"status": 200, "json": {"silenceID": "s-1"}},
            "/healthz": {"status": 200, "body": "ok"},
        })
        self.marker = self.path("spawned")
        # redis-cli and kafka-consumer-groups that leave a trace when run
        for tool in ("redis-cli", "kafka-consumer-groups"):
            self.script(tool, 'echo "$0 $*" >> %s\necho PONG\n' % self.marker)

    def body(self, code, *flags, **kw):
        head = "local B = %s\n" % lua_str(self.srv.base)
        return self.run_body(code, *flags, head=head, **kw)

    def assertNothingHappened(self, res):
        self.assertEqual(self.srv.requests(), [], "a request reached the server")
        self.assertFalse(os.path.exists(self.marker), "a process was spawned")
        if os.path.exists(self.audit):
            self.assertEqual(self.actions(), [], "an action was audited")

    # ---- uncaught: the run fails at the runbook's line -----------------------

    def test_query_range_misspelled_step_sends_nothing(self):
        for flags in ((), ("--dry-run",)):
            with self.subTest(flags=flags):
                res = self.body("""
                    local prometheus = require "prometheus"
                    step("range", function()
                      prometheus.query_range(B, "up", { start = 1, stpe = 30 })
                    end)
                    """, *flags)
                self.assertEqual(res.code, 1, res)
                self.assertIn("%s:6: unknown option 'stpe' for prometheus.query_range "
                              "(did you mean 'step'?)" % os.path.basename(res.file), res.all)
                self.assertNothingHappened(res)

    def test_good_query_range_does_reach_the_server(self):
        """The control: the same call spelled right is one GET."""
        res = self.body("""
            local prometheus = require "prometheus"
            step("range", function()
              local r = prometheus.query_range(B, "up", { start = 1, stop = 2, step = 30 })
              out(#r)
            end)
            """)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data, [1])
        self.assertEqual([r["path"] for r in self.srv.requests()], ["/api/v1/query_range"])
        self.assertEqual(self.srv.requests()[0]["args"]["step"], "30")

    def test_silence_misspelled_creates_nothing(self):
        res = self.body("""
            local alertmanager = require "alertmanager"
            step("silence", function()
              alertmanager.silence(B, { matchers = { alertname = "DiskFull" }, duration = "30m",
                                        comnent = "INC-42" })
            end)
            """)
        self.assertEqual(res.code, 1, res)
        self.assertIn("%s:6: unknown option 'comnent' for alertmanager.silence "
                      "(did you mean 'comment'?)" % os.path.basename(res.file), res.all)
        self.assertNothingHappened(res)

    def test_wait_until_misspelled_timeout_does_not_wait(self):
        """{ timout = 1 } would have waited the default 60 s, calling fn
        every 2 s: it raises before fn is called once."""
        res = self.body("""
            local calls = 0
            step("wait", function()
              local ok, e = pcall(wait_until, function() calls = calls + 1; return false end,
                                  { timout = 1, every = 0.01 })
              out({ ok, e, calls })
              wait_until(function() calls = calls + 1; return false end, { timout = 1 })
            end)
            """)
        self.assertEqual(res.code, 1, res)
        self.assertEqual(res.data, [[False, "unknown option 'timout' for wait_until "
                                            "(did you mean 'timeout'?)", 0]])
        self.assertIn("%s:9: unknown option 'timout' for wait_until" % os.path.basename(res.file),
                      res.all)

    def test_misplaced_and_missing_arguments(self):
        res = self.body("""
            local prometheus = require "prometheus"
            local alertmanager = require "alertmanager"
            local function err(f, ...)
              local ok, e = pcall(f, ...)
              return ok and "no error" or tostring(e)
            end
            step("args", function()
              out(err(time.parse, { "2024-05-01T09:00:00Z" }))
              out(err(time.parse))
              out(err(time.format, 1, 2))
              out(err(prometheus.query_range, B, { start = 1, step = 30 }))
              out(err(alertmanager.expire, B))
              out(err(wait_until, { timeout = 1 }))
              out(err(run_runbook, { name = "x" }))
              out(err(sleep, "soon"))
              out(err(json.decode))
              out(err(regex.match, "a"))
              out(err(secret, { "X" }))
              out(err(confirm))
            end)
            """)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data, [
            "time.parse: argument 1 (text) must be a string, got table; usage: time.parse(text)",
            "time.parse: missing argument 1 (text); usage: time.parse(text)",
            "time.format: too many arguments (2); usage: time.format([t])",
            "prometheus.query_range: argument 2 (promql) must be a string, got table; "
            "usage: prometheus.query_range(base, promql [, opts])",
            "alertmanager.expire: missing argument 2 (id); usage: alertmanager.expire(base, id "
            "[, opts])",
            "wait_until: argument 1 (fn) must be a function, got table; "
            "usage: wait_until(fn [, opts])",
            "run_runbook: argument 1 (name) must be a string, got table; "
            "usage: run_runbook(name [, params])",
            "sleep: argument 1 (seconds) must be a number, got string; usage: sleep(seconds)",
            "json.decode: missing argument 1 (text); usage: json.decode(text)",
            "regex.match: missing argument 2 (s); usage: regex.match(pattern, s)",
            "secret: argument 1 (name) must be a string, got table; usage: secret(name)",
            "confirm: missing argument 1 (question); usage: confirm(question)",
        ])
        self.assertNothingHappened(res)

    def test_secret_called_through_its_table_names_the_line(self):
        res = self.body("""
            step("s", function()
              secret({ "X" })
            end)
            """)
        self.assertEqual(res.code, 1, res)
        self.assertIn("%s:5: secret: argument 1 (name) must be a string, got table"
                      % os.path.basename(res.file), res.all)

    # ---- caught, several at once: nothing reached anything --------------------

    def test_misspelled_options_everywhere_do_nothing(self):
        res = self.body("""
            local prometheus = require "prometheus"
            local alertmanager = require "alertmanager"
            local health = require "health"
            local redis = require "redis"
            local kafka = require "kafka"
            local clickhouse = require "clickhouse"
            local compose = require "compose"
            local backup = require "backup"
            local escalation = require "escalation"
            local ran = 0
            local function err(f, ...)
              local ok, e = pcall(f, ...)
              return ok and "no error" or tostring(e)
            end
            step("options", function()
              local r = redis.client{ host = "127.0.0.1" }
              local ch = clickhouse.client(B)
              out(err(health.check, { B .. "/healthz" }, { timout = 1 }))
              out(err(health.check, { B .. "/healthz" }, { max_latncy_ms = 5 }))
              out(err(prometheus.targets, B, { stat = "active" }))
              out(err(prometheus.query, B, "up", { tiem = 1 }))
              out(err(alertmanager.firing, B, { severity = "critical" }, { recevier = "x" }))
              out(err(alertmanager.silences, B, nil, { sate = "active" }))
              out(err(redis.client, { hots = "x" }))
              out(err(r.scan, r, "session:*", { limt = 10 }))
              out(err(r.flushdb, r, { asnyc = true }))
              out(err(r.get, "k"))
              out(err(kafka.consumer_lag, { bootstrap_server = "k:9092", gruop = "g" }))
              out(err(ch.optimize, ch, "events", { finl = true }))
              out(err(clickhouse.client, B, { passwrod = "x" }))
              out(err(compose.restart, "/srv/app.yml", "api", { wait_ulr = B .. "/healthz" }))
              out(err(backup.prune, "/nonexistent/*.dump", { keep_lst = 3 }))
              out(err(escalation.notify, { level = "P1" }, { summary = "x", channles = {} }))
              out(err(parallel, { 1, 2, 3 }, function() ran = ran + 1 end, { concurency = 2 }))
              out(err(json.encode, { a = 1 }, { prety = true }))
              out(ran)
            end)
            """)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data, [
            "unknown option 'timout' for health.check (did you mean 'timeout'?)",
            "unknown option 'max_latncy_ms' for health.check (did you mean 'max_latency_ms'?)",
            "unknown option 'stat' for prometheus.targets (did you mean 'state'?)",
            "unknown option 'tiem' for prometheus.query (did you mean 'time'?)",
            "unknown option 'recevier' for alertmanager.firing (did you mean 'receiver'?)",
            "unknown option 'sate' for alertmanager.silences (did you mean 'state'?)",
            "unknown option 'hots' for redis.client (did you mean 'host'?)",
            "unknown option 'limt' for redis:scan (did you mean 'limit'?)",
            "unknown option 'asnyc' for redis:flushdb (did you mean 'async'?)",
            "redis:get: missing argument 1 (key); usage: redis:get(key)",
            "unknown option 'gruop' for kafka.consumer_lag (did you mean 'group'?)",
            "unknown option 'finl' for clickhouse:optimize (did you mean 'final'?)",
            "unknown option 'passwrod' for clickhouse.client (did you mean 'password'?)",
            "unknown option 'wait_ulr' for compose.restart (did you mean 'wait_url'?)",
            "unknown option 'keep_lst' for backup.prune (did you mean 'keep_last'?)",
            "unknown option 'channles' for escalation.notify (did you mean 'channels'?)",
            "unknown option 'concurency' for parallel (did you mean 'concurrency'?)",
            "unknown option 'prety' for json.encode (did you mean 'pretty'?)",
            0,
        ])
        self.assertNothingHappened(res)

    # ---- what must keep working --------------------------------------------------

    def test_varargs_and_data_arguments_still_work(self):
        """print and log take anything; check's format and arguments; a table
        given as data (json.encode's value, prometheus.match's labels) is not
        taken for an options table."""
        res = self.body("""
            local prometheus = require "prometheus"
            local redis = require "redis"
            step("v", function()
              print("a", 1, nil, { x = 1 }, true, json.null)
              print()
              log.info("n=%d s=%s", 3, "x")
              log.warn({ not_an_option = 1 })
              log.debug()
              check(true, "fine %s", { x = 1 })
              check(1)
              out(json.encode({ big = 1, list = { 1, 2 } }, { pretty = false }))
              out(json.encode(nil))
              out(yaml.encode({ timout = 1 }))
              out(prometheus.match({ job = "api", code = "500" }, '{code=~"5.."}'))
              out(prometheus.format_value(0 / 0))
              out(env("RUNBOOK_STRICT_UNSET", { fallback = true }))
              out(time.format(0))
              out(#parallel({ 1, 2 }, function(i) return i end, { concurrency = 1, check = true }))
              out(redis.parse_info("a:1\\r\\nb:x\\r\\n"))
              local ok, e = pcall(check, false, "wanted %d, got %s", 2, "x")
              out(e)
            end)
            """)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data, ['{"big":1,"list":[1,2]}', "null", "timout: 1\n", True, "NaN",
                                    {"fallback": True}, "1970-01-01T00:00:00.000Z", 2,
                                    {"a": 1, "b": "x"}, "wanted 2, got x"])
        self.assertIn("a\t1\tnil\ttable: ", res.out)
        self.assertIn("n=3 s=x", res.all)

    # ---- without running: runbook check ------------------------------------------------

    def test_check_finds_stdlib_and_global_keys_statically(self):
        f = self.write("static.lua", """
            runbook { name = "t/static-stdlib" }
            local health = require "health"
            local redis = require "redis"
            step("s", function()
              health.check({ "http://127.0.0.1:1/" }, { timout = 1 })
              json.encode({ a = 1 }, { prety = true })
              parallel({ 1 }, function() end, { concurency = 1 })
              local r = redis.client{ hots = "x" }
              json.encode({ timout = 1 })
            end)
            """)
        res = self.rb("check", f)
        self.assertEqual(res.code, 1, res)
        self.assertEqual([l for l in res.out.splitlines() if "unknown option" in l], [
            f + ":5:45: error: unknown option 'timout' for health.check (did you mean 'timeout'?)",
            f + ":6:28: error: unknown option 'prety' for json.encode (did you mean 'pretty'?)",
            f + ":7:37: error: unknown option 'concurency' for parallel "
                "(did you mean 'concurrency'?)",
            f + ":8:27: error: unknown option 'hots' for redis.client (did you mean 'host'?)",
        ])

    # ---- in a scenario ---------------------------------------------------------------

    def test_scenario_reports_the_message_and_takes_no_action(self):
        rb = self.write("strict.lua", """
            runbook { name = "t/strict-scenario" }
            local alertmanager = require "alertmanager"
            step("Silence", function()
              alertmanager.silence("http://am:9093", { matchers = { alertname = "X" },
                                                        duration = "30m", commnet = "why" })
            end)
            """)
        self.write("tests/strict.scenario.yaml", """
            description: a misspelled option fails the step before any request
            runbook: ../strict.lua
            mocks:
              - http: { method: POST, url: "http://am:9093/api/v2/silences" }
                respond: { status: 200, json: { silenceID: "s-1" } }
            expect:
              outcome: failed
              failed_step: Silence
              not_actions: [ "POST" ]
              output: [ "unknown option 'commnet' for alertmanager.silence (did you mean 'comment'?)" ]
            """)
        res = self.rb("test", "-v", self.path("tests"))
        self.assertEqual(res.code, 0, res)
        self.assertIn("1 passed, 0 failed", res.all)
        self.assertIn("strict.lua:4: unknown option 'commnet' for alertmanager.silence", res.all)
        self.assertTrue(os.path.exists(rb))


if __name__ == "__main__":
    unittest.main()
