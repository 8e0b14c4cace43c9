"""stdlib/health.lua, prometheus.lua and alertmanager.lua against real
servers on loopback (tests/fixtures/httpd.py): the daily health check of the
reference procedures (service /healthz, Prometheus, Grafana, Alertmanager),
the SPEC §2 error-ratio example, Prometheus instant queries and Alertmanager
filtering.  Each test asserts what reached the server as well as what the
runbook computed; the modules only compose primitives, so every request is
an audited http action.

stdlib/compose.lua in a rehearsal (--dry-run) against
tests/fixtures/fake_docker.py: a restart, start or up that would wait for
readiness looks once and goes on (scenarios run live-shaped, so this side of
the module is tested here; tests/scenarios/stdlib/compose has the waits)."""
import json
import textwrap
import time
import unittest

from rbtest import RunbookTestCase, lua_str
from test_docker import FakeDocker

METRICS = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 700
http_requests_total{method="POST",code="200"} 175
http_requests_total{method="GET",code="500"} 100
http_requests_total{method="POST",code="503"} 25
# TYPE component_latency_seconds histogram
component_latency_seconds_bucket{component="parser",le="0.1"} 90
component_latency_seconds_bucket{component="parser",le="+Inf"} 100
component_latency_seconds_sum{component="parser"} 4.5
component_latency_seconds_count{component="parser"} 100
"""

PROM_VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [
        {"metric": {"job": "api", "instance": "api-1:8000"}, "value": [1700000000.123, "1"]},
        {"metric": {"job": "api", "instance": "api-2:8000"}, "value": [1700000000.123, "0"]},
        {"metric": {"job": "api", "instance": "api-3:8000"}, "value": [1700000000.123, "NaN"]},
        {"metric": {"job": "api", "instance": "api-4:8000"}, "value": [1700000000.123, "+Inf"]},
    ]},
}

ALERTS = [
    {"labels": {"alertname": "HighErrorRate", "severity": "critical", "service": "calendar-api"},
     "annotations": {"summary": "5xx above 10%"}, "startsAt": "2024-05-01T09:00:00Z",
     "endsAt": "2024-05-01T10:00:00Z", "fingerprint": "f1", "receivers": [{"name": "oncall"}],
     "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
    {"labels": {"alertname": "DiskFilling", "severity": "warning", "service": "postgres"},
     "annotations": {"summary": "disk 85%"}, "startsAt": "2024-05-01T08:00:00Z",
     "fingerprint": "f2", "receivers": [{"name": "ops"}],
     "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
    {"labels": {"alertname": "KafkaLag", "severity": "critical", "service": "kafka"},
     "annotations": {}, "fingerprint": "f3", "receivers": [{"name": "oncall"}],
     "status": {"state": "suppressed", "silencedBy": ["s-1"], "inhibitedBy": []}},
    {"labels": {"alertname": "PodRestarts", "severity": "critical", "service": "calendar-api"},
     "annotations": {}, "fingerprint": "f4", "receivers": [{"name": "oncall"}],
     "status": {"state": "suppressed", "silencedBy": [], "inhibitedBy": ["f1"]}},
    {"labels": {"alertname": "Watchdog", "severity": "none"},
     "annotations": {}, "fingerprint": "f5", "receivers": [{"name": "null"}],
     "status": {"state": "unprocessed", "silencedBy": [], "inhibitedBy": []}},
]


class StdlibCase(RunbookTestCase):
    PREAMBLE = ('runbook { name = "t/stdlib" }\n'
                'local B = %s\n'
                'local function out(x) print("@@" .. json.encode(x)) end\n')

    ROUTES = {
        "/healthz": {"status": 200, "body": "ok"},
        "/api/health": {"status": 200, "json": {"database": "ok", "version": "10.4.0"}},
        "/-/healthy": {"status": 200, "body": "Prometheus Server is Healthy.\n"},
        "/broken/api/health": {"status": 200, "json": {"database": "failing"}},
        "/metrics": {"status": 200, "body": METRICS,
                     "headers": {"Content-Type": "text/plain; version=0.0.4"}},
        "/api/v1/query": {"status": 200, "json": PROM_VECTOR},
        "/scalar/api/v1/query": {"status": 200, "json": {
            "status": "success", "data": {"resultType": "scalar",
                                          "result": [1700000000, "0.125"]}}},
        "/bad/api/v1/query": {"status": 400, "json": {
            "status": "error", "errorType": "bad_data",
            "error": "1:5: parse error: unexpected end of input"}},
        "/html/api/v1/query": {"status": 502, "body": "<html>bad gateway</html>\n"},
        "/api/v2/alerts": {"status": 200, "json": ALERTS},
        "/v1only/api/v1/alerts": {"status": 200, "json": {"status": "success", "data": ALERTS}},
        "/am500/api/v2/alerts": {"status": 500, "body": "boom\nmore"},
    }

    def setUp(self):
        super().setUp()
        self.srv = self.httpd(routes=self.ROUTES)
        self._n = 0

    def runbook(self, body, *flags, **kw):
        self._n += 1
        text = self.PREAMBLE % lua_str(self.srv.base) + textwrap.dedent(body).lstrip("\n")
        f = self.write("stdlib-%d.lua" % self._n, text, dedent=False)
        res = self.run_rb(f, *flags, **kw)
        res.file = f
        res.data = [json.loads(l[l.index("@@") + 2:]) for l in res.out.splitlines()
                    if l.startswith("@@")]
        return res


# ---- health ---------------------------------------------------------------------

class Health(StdlibCase):
    CHECK = """
        local health = require "health"
        step("check", function()
          local t0 = now()
          local r = health.check({
            { name = "api", url = B .. "/healthz" },
            { name = "grafana", url = B .. "/api/health", contains = '"database": "ok"' },
            B .. "/-/healthy",
            { name = "slow", url = B .. "/delay/1000" },
            { name = "slow2", url = B .. "/delay/1000/204" },
            { name = "broken", url = B .. "/status/500" },
            { name = "refused", url = "http://127.0.0.1:%(closed)d/healthz" },
            { name = "hung", url = B .. "/hang?ms=5000", timeout = 1 },
            { name = "grafana-db", url = B .. "/broken/api/health", contains = '"database": "ok"' },
            { name = "no-content", url = B .. "/status/204", expect = { 200, 204 } },
            { name = "strict", url = B .. "/status/204", expect = 200 },
          }, { timeout = 5 })
          local elapsed = now() - t0
          local text = health.report(r)
          out({ ok = r.ok, up = r.up, down = r.down, results = r.results, elapsed = elapsed,
                text = text })
        end)
        """

    def test_mixed_endpoints(self):
        closed = self.closed_port()
        res = self.runbook(self.CHECK % {"closed": closed})
        self.assertExit(res, 0)
        d = res.data[0]
        self.assertFalse(d["ok"])
        host = "127.0.0.1:%d" % self.srv.port
        self.assertEqual(d["up"], ["api", "grafana", host + "/-/healthy", "slow", "slow2",
                                   "no-content"])
        self.assertEqual(d["down"], ["broken", "refused", "hung", "grafana-db", "strict"])
        by = {r["name"]: r for r in d["results"]}
        self.assertEqual(by["api"]["status"], 200)
        self.assertTrue(by["api"]["ok"])
        self.assertLess(by["api"]["latency_ms"], 1000)
        self.assertGreaterEqual(by["slow"]["latency_ms"], 1000)
        self.assertLess(by["slow"]["latency_ms"], 5000)
        self.assertEqual(by["slow2"]["status"], 204)
        self.assertEqual(by["broken"]["status"], 500)
        self.assertEqual(by["broken"]["error"], "HTTP 500, expected 2xx")
        self.assertEqual(by["refused"]["error"], "connection refused")
        self.assertNotIn("status", by["refused"])
        self.assertIn("timed out", by["hung"]["error"])
        self.assertEqual(by["grafana-db"]["error"], 'body does not contain "\\"database\\": \\"ok\\""')
        self.assertEqual(by["strict"]["error"], "HTTP 204, expected 200")
        self.assertEqual(by["no-content"]["status"], 204)
        self.assertEqual(by["refused"]["url"], "http://127.0.0.1:%d/healthz" % closed)
        # concurrently: both 1 s endpoints were asked before either could have
        # answered (one after the other, the second request would come >= 1 s later)
        slow = [r["ts"] for r in self.srv.requests() if r["path"].startswith("/delay/1000")]
        self.assertEqual(len(slow), 2)
        self.assertLess(abs(slow[0] - slow[1]), 1.0, "the checks did not run concurrently")
        # the report: a summary line and one line per endpoint, logged as a warning
        lines = d["text"].split("\n")
        self.assertEqual(lines[0], "6/11 up; down: broken (HTTP 500, expected 2xx), refused "
                                   "(connection refused), hung (%s), grafana-db (%s), strict "
                                   "(HTTP 204, expected 200)" % (by["hung"]["error"],
                                                                 by["grafana-db"]["error"]))
        self.assertEqual(len(lines), 12)
        self.assertRegex(lines[1], r"^  ✓ api\s+200\s+\d+ ms$")
        self.assertRegex(lines[7], r"^  ✗ refused\s+connection refused$")
        self.assertIn("warn 6/11 up; down: broken", res.out)
        # what reached the server: one GET per reachable endpoint, each audited
        paths = sorted(r["path"] for r in self.srv.requests())
        self.assertEqual(paths, sorted(["/healthz", "/api/health", "/-/healthy", "/delay/1000",
                                        "/delay/1000/204",
                                        "/status/500", "/hang", "/broken/api/health",
                                        "/status/204", "/status/204"]))
        acts = self.actions(primitive="http")
        self.assertEqual(len(acts), 11)
        self.assertTrue(all(a["class"] == "read" for a in acts))

    def test_all_up_logs_info_and_runs_in_dry_run(self):
        res = self.runbook("""
            local health = require "health"
            step("check", function()
              local r = health.check({ B .. "/healthz", { name = "prom", url = B .. "/-/healthy" } })
              health.report(r)
              out({ ok = r.ok, up = r.up, down = r.down })
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"ok": True, "up": ["127.0.0.1:%d/healthz" % self.srv.port,
                                                          "prom"], "down": []})
        self.assertIn("info 2/2 up", res.out)
        self.assertEqual(len(self.srv.requests()), 2, "reads run for real in dry-run")

    def test_max_latency_and_errors(self):
        res = self.runbook("""
            local health = require "health"
            step("check", function()
              local r = health.check({ { name = "slow", url = B .. "/delay/1500" },
                                       { name = "fast", url = B .. "/healthz" } },
                                     { max_latency_ms = 1000 })
              out({ up = r.up, down = r.down, err = r.results[1].error, fast = r.results[2] })
              local ok, e = pcall(health.check, { { name = "x" } })
              out({ ok, tostring(e) })
              ok, e = pcall(health.check, "http://x")
              out({ ok, tostring(e) })
              local empty = health.check({})
              out({ empty.ok, #empty.results, health.report(empty, { log = false }) })
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0]["up"], ["fast"], res.data[0]["fast"])
        self.assertEqual(res.data[0]["down"], ["slow"])
        self.assertRegex(res.data[0]["err"], r"^slow: \d+ ms > 1000 ms$")
        self.assertIn("endpoint 1 has no url", res.data[1][1])
        self.assertIn("health.check: argument 1 (endpoints) must be a table, got string",
                      res.data[2][1])
        self.assertEqual(res.data[3], [True, 0, "0/0 up"])


# ---- prometheus -------------------------------------------------------------------

class Prometheus(StdlibCase):
    def test_spec_ratio_example_over_served_metrics(self):
        res = self.runbook("""
            local prometheus = require "prometheus"
            step("Measure error ratio", function()
              local r = http.get(B .. "/metrics")
              state.ratio = prometheus.ratio(r.body, 'http_requests_total{code=~"5.."}',
                                             "http_requests_total")
              log.info("5xx ratio %.1f%%", state.ratio * 100)
              out({ ratio = state.ratio,
                    post5xx = prometheus.sum(r.body, 'http_requests_total{code=~"5..",method!="GET"}'),
                    p_under_100ms = prometheus.value(r, 'component_latency_seconds_bucket{le="0.1"}')
                                    / prometheus.value(r, "component_latency_seconds_count") })
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"ratio": 0.125, "post5xx": 25, "p_under_100ms": 0.9})
        self.assertIn("5xx ratio 12.5%", res.out)
        self.assertEqual(self.run_record()["state"]["ratio"], 0.125)
        self.assertEqual([r["path"] for r in self.srv.requests()], ["/metrics"])

    def test_instant_query(self):
        promql = 'sum by (instance) (up{job="api"} == 1) or vector(0)'
        res = self.runbook("""
            local prometheus = require "prometheus"
            step("query", function()
              local r = prometheus.query(B .. "/", %s, { time = 1700000000 })
              local items = {}
              for i, s in ipairs(r) do
                local v = s.value
                items[i] = { instance = s.metric.instance, value = v ~= v and "NaN"
                             or v == math.huge and "+Inf" or v, ts = s.timestamp }
              end
              out(items)
              out({ prometheus.query_value(B .. "/scalar", "scalar(x)") })
            end)
            """ % lua_str(promql))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [
            {"instance": "api-1:8000", "value": 1, "ts": 1700000000.123},
            {"instance": "api-2:8000", "value": 0, "ts": 1700000000.123},
            {"instance": "api-3:8000", "value": "NaN", "ts": 1700000000.123},
            {"instance": "api-4:8000", "value": "+Inf", "ts": 1700000000.123},
        ])
        self.assertEqual(res.data[1], [0.125])
        reqs = self.srv.requests(path="/api/v1/query")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["method"], "GET")
        self.assertEqual(reqs[0]["args"], {"query": promql, "time": "1700000000"})
        self.assertEqual(self.srv.requests(path="/scalar/api/v1/query")[0]["args"],
                         {"query": "scalar(x)"})
        acts = self.actions(primitive="http")
        self.assertEqual([a["class"] for a in acts], ["read", "read"])

    def test_query_errors(self):
        res = self.runbook("""
            local prometheus = require "prometheus"
            local function err(...) local ok, e = pcall(prometheus.query, ...); assert(not ok); return tostring(e) end
            step("errors", function()
              out({ err(B .. "/bad", "sum(") , err(B .. "/html", "up"), err(nil, "up"),
                    err("http://127.0.0.1:%d", "up") })
              local ok, e = pcall(prometheus.query_value, B, "up")
              out({ ok, tostring(e) })
            end)
            """ % self.closed_port())
        self.assertExit(res, 0)
        e = res.data[0]
        self.assertEqual(e[0], "prometheus query sum(: bad_data: 1:5: parse error: unexpected "
                               "end of input")
        self.assertIn("prometheus query up: HTTP 502 from %s/html/api/v1/query: "
                      "<html>bad gateway</html>" % self.srv.base, e[1])
        self.assertIn("prometheus.query: argument 1 (base) must be a string, got nil", e[2])
        self.assertIn("connection refused", e[3])
        self.assertIn("prometheus.query_value: 4 series for up", res.data[1][1])


# ---- alertmanager -------------------------------------------------------------------

class Alertmanager(StdlibCase):
    def names(self, res, i):
        return [a["name"] for a in res.data[i]]

    def test_filtering(self):
        res = self.runbook("""
            local alertmanager = require "alertmanager"
            local function slim(list)
              local out = {}
              for i, a in ipairs(list) do
                out[i] = { name = a.name, state = a.state, silenced = a.silenced,
                           inhibited = a.inhibited, severity = a.labels.severity,
                           summary = a.annotations.summary, startsAt = a.startsAt,
                           receivers = a.receivers }
              end
              return out
            end
            step("alerts", function()
              out(slim(alertmanager.alerts(B)))
              out(slim(alertmanager.firing(B .. "/", { severity = "critical" })))
              out(slim(alertmanager.alerts(B, { active = true, silenced = false,
                                                filter = { severity = "critical" } })))
              out(slim(alertmanager.firing(B, { severity = { "critical", "warning" } })))
              out(slim(alertmanager.firing(B, { 'service=~"calendar.*|postgres"', 'severity!="warning"' })))
              out(slim(alertmanager.alerts(B, { filter = '{severity="critical",service!="kafka"}' })))
              out(slim(alertmanager.alerts(B, { filter = "HighErrorRate" })))
              out(slim(alertmanager.alerts(B, { filter = { team = "" } })))
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(self.names(res, 0), ["HighErrorRate", "DiskFilling", "KafkaLag",
                                              "PodRestarts", "Watchdog"])
        self.assertEqual(res.data[0][0], {
            "name": "HighErrorRate", "state": "active", "silenced": False, "inhibited": False,
            "severity": "critical", "summary": "5xx above 10%", "startsAt": "2024-05-01T09:00:00Z",
            "receivers": ["oncall"]})
        self.assertTrue(res.data[0][2]["silenced"])
        self.assertTrue(res.data[0][3]["inhibited"])
        self.assertEqual(self.names(res, 1), ["HighErrorRate"])
        self.assertEqual(self.names(res, 2), ["HighErrorRate", "PodRestarts"])
        self.assertEqual(self.names(res, 3), ["HighErrorRate", "DiskFilling"])
        self.assertEqual(self.names(res, 4), ["HighErrorRate"])
        self.assertEqual(self.names(res, 5), ["HighErrorRate", "PodRestarts"])
        self.assertEqual(self.names(res, 6), ["HighErrorRate"])
        self.assertEqual(len(res.data[7]), 5, "a missing label equals \"\"")
        # what reached the server: the API's own parameters and matchers
        reqs = self.srv.requests(path="/api/v2/alerts")
        self.assertEqual(len(reqs), 8)
        self.assertEqual(reqs[0]["query"], "")
        self.assertEqual(reqs[1]["args"], {"active": "true", "silenced": "false",
                                           "inhibited": "false", "unprocessed": "false",
                                           "filter": 'severity="critical"'})
        self.assertEqual(reqs[2]["args"], {"active": "true", "silenced": "false",
                                           "filter": 'severity="critical"'})
        self.assertEqual(reqs[3]["args"]["filter"], 'severity=~"critical|warning"')
        self.assertEqual(reqs[4]["args"]["filter"], ['service=~"calendar.*|postgres"',
                                                     'severity!="warning"'])
        self.assertEqual(reqs[6]["args"]["filter"], 'alertname="HighErrorRate"')
        acts = self.actions(primitive="http")
        self.assertEqual(len(acts), 8)
        self.assertTrue(all(a["class"] == "read" for a in acts))

    def test_v1_fallback_and_errors(self):
        res = self.runbook("""
            local alertmanager = require "alertmanager"
            step("alerts", function()
              local a = alertmanager.firing(B .. "/v1only", { severity = "critical" })
              out({ #a, a[1] and a[1].name })
              local ok, e = pcall(alertmanager.alerts, B .. "/am500")
              out({ ok, tostring(e) })
              ok, e = pcall(alertmanager.alerts, B, { filter = 'severity=~"(?i)crit"' })
              out({ ok, tostring(e) })
              ok, e = pcall(alertmanager.alerts, nil)
              out({ ok, tostring(e) })
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [1, "HighErrorRate"])
        self.assertEqual([r["path"] for r in self.srv.requests()][:2],
                         ["/v1only/api/v2/alerts", "/v1only/api/v1/alerts"])
        self.assertIn("alertmanager GET %s/am500/api/v2/alerts: HTTP 500: boom"
                      % self.srv.base, res.data[1][1])
        self.assertNotIn("more", res.data[1][1])
        self.assertIn("bad filter", res.data[2][1])
        self.assertIn("not supported", res.data[2][1])
        self.assertIn("alertmanager.alerts: argument 1 (base) must be a string, got nil",
                      res.data[3][1])


# ---- compose in a rehearsal ---------------------------------------------------

class ComposeRehearsal(StdlibCase):
    """The fake's compose project "deployment" has calendar-api exited
    (OOM-killed), postgres and redis running.  Every wait below would fail
    live: calendar-api stays down and /status/503 never answers 200."""

    RECOVER = """
        local compose = require "compose"
        local F, P = "/srv/app/docker-compose.yml", "deployment"
        step("recover", function()
          out(compose.restart(F, "calendar-api", { project = P, wait_running = true,
                                                   wait_url = B .. "/status/503", timeout = %(t)s, every = 1 }))
          out(compose.start(F, { "postgres", "redis" }, { project = P, wait_url = B .. "/healthz",
                                                         wait_timeout = %(t)s, every = 1 }))
          out(compose.up(F, { project = P, services = { "calendar-api" }, no_deps = true,
                              wait_running = true, wait_timeout = %(t)s, every = 1, check = false }))
          out({ dry_run = dry_run() })
        end)
        """

    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self, compose_project="deployment")
        self.env["DOCKER_HOST"] = self.fake.host

    def test_dry_run_does_not_wait_and_says_what_is_so_now(self):
        # a wait of an hour: a rehearsal that waited would outlive the test's own timeout
        res = self.runbook(self.RECOVER % {"t": 3600}, "--dry-run")
        self.assertExit(res, 0)
        restart, start, up, mode = res.data
        self.assertEqual(mode, {"dry_run": True})
        self.assertEqual(restart, {"ok": True, "service": "calendar-api", "dry_run": True, "waited": False,
                                   "ready": True, "last": "not running: calendar-api; HTTP 503"})
        self.assertEqual(start, {"ok": True, "services": ["postgres", "redis"], "dry_run": True,
                                 "waited": False, "ready": True, "last": "HTTP 200"})
        self.assertEqual(up, {"ok": True, "services": ["calendar-api"], "dry_run": True, "waited": False,
                              "ready": True, "last": "not running: calendar-api"})
        self.assertIn("would: docker compose restart calendar-api", res.out)
        self.assertIn("would: docker compose -f /srv/app/docker-compose.yml -p deployment up -d postgres redis",
                      res.out)
        self.assertIn("would: docker compose -f /srv/app/docker-compose.yml -p deployment up -d --no-deps "
                      "calendar-api", res.out)
        self.assertIn("compose.restart calendar-api (rehearsal): not restarted, so no wait for calendar-api "
                      "running and %s/status/503 answering 200 (live: up to 3600 s); now: not running: "
                      "calendar-api; HTTP 503" % self.srv.base, res.out)
        self.assertIn("compose.start postgres, redis (rehearsal): not started", res.out)
        self.assertIn("compose.up calendar-api (rehearsal): not brought up", res.out)
        # one look each, nothing changed: no write reached Docker, each URL asked once,
        # the containers read once for each wait_running
        self.assertEqual(self.fake.requests("POST"), [])
        lists = [r for r in self.fake.requests("GET") if r["path"].endswith("/containers/json")]
        self.assertEqual(len(lists), 2)
        self.assertEqual([r["path"] for r in self.srv.requests()], ["/status/503", "/healthz"])
        acts = self.actions()
        self.assertEqual([(a["words"], a["simulated"]) for a in acts if a["class"] == "mutate"], [
            ("docker compose restart calendar-api", True),
            ("docker compose -f /srv/app/docker-compose.yml -p deployment up -d postgres redis", True),
            ("docker compose -f /srv/app/docker-compose.yml -p deployment up -d --no-deps calendar-api", True),
        ])

    def test_live_the_same_wait_fails(self):
        # the contrast: live, the restart happens and the wait for /status/503 runs out
        res = self.runbook(self.RECOVER % {"t": 1})
        self.assertExit(res, 1)
        # the fake restarts the container, so what is left is the URL
        self.assertIn("compose.restart calendar-api: restarted, but not calendar-api running and "
                      "%s/status/503 answering 200 within 1 s (last: running; HTTP 503)" % self.srv.base,
                      res.all)
        self.assertEqual([r["path"] for r in self.fake.requests("POST")],
                         ["/v1.47/containers/deployment-calendar-api-1/restart"])
        self.assertTrue(self.srv.requests("/status/503"))
        self.assertEqual(self.srv.requests("/healthz"), [])   # the run stopped at the restart


if __name__ == "__main__":
    unittest.main(verbosity=2)
