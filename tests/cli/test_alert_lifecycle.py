"""The alert lifecycle (issue 16 item 4) against a real Prometheus and a real
Alertmanager (Debian's packages, started by tests/fixtures/prom_stack.py on
loopback): prometheus.query_range, targets, rules and alerts return what
Prometheus's own API says; the fixture's rule fires and reaches the
Alertmanager; a runbook silences it (the silence is in the Alertmanager's
API, the alert is suppressed) and expires it (state "expired"); the same
runbook in --dry-run completes and creates no silence; the calls are
audited with the classifier's verdicts (POST and DELETE are changes, GETs
reads).  Also: OpenMetrics exemplars, NaN/+Inf/-Inf as Prometheus prints
them, and unknown options named with a suggestion."""
import calendar
import json
import sys
import time
import unittest
import urllib.parse

from rbtest import FIXTURES, RunbookTestCase, lua_str

sys.dont_write_bytecode = True
sys.path.insert(0, FIXTURES)
import prom_stack  # noqa: E402

WHY_NOT = prom_stack.available()
if WHY_NOT:
    print("test_alert_lifecycle: skipped: " + WHY_NOT, file=sys.stderr)

ALERT = prom_stack.ALERT


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@unittest.skipIf(WHY_NOT, WHY_NOT or "")
class AlertLifecycle(RunbookTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = prom_stack.PromStack().start()
        cls.started = int(time.time())

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    # ---- helpers ----------------------------------------------------------------

    def head(self):
        return "local PROM = %s\nlocal AM = %s\n" % (lua_str(self.stack.prometheus),
                                                     lua_str(self.stack.alertmanager))

    def run_lua(self, body, *flags, **kw):
        res = self.run_body(body, *flags, head=self.head(), **kw)
        return res

    def am(self, path):
        return self.stack.get_json(self.stack.alertmanager + path)

    def silences_by_id(self):
        return {s["id"]: s for s in self.am("/api/v2/silences")}

    def wait_alert_in_alertmanager(self):
        """The fixture's rule fired in Prometheus and reached the Alertmanager."""
        def there():
            return [a for a in self.am("/api/v2/alerts")
                    if a["labels"].get("alertname") == ALERT]
        return self.wait_for(there, timeout=120, what=ALERT + " in the Alertmanager")

    def wait_prometheus_ready(self):
        """The self-scrape target is up and the alerting rule is firing."""
        def ready():
            targets = self.stack.prom_api("/api/v1/targets")["activeTargets"]
            alerts = self.stack.prom_api("/api/v1/alerts")["alerts"]
            return (targets and all(t["health"] == "up" for t in targets)
                    and any(a["state"] == "firing" for a in alerts))
        self.wait_for(ready, timeout=120, what="the target up and the rule firing")

    def http_actions(self):
        return [a for a in self.actions() if a.get("primitive") == "http"]

    # ---- Prometheus's API -----------------------------------------------------

    def test_query_range_matches_the_api(self):
        self.wait_prometheus_ready()
        start = self.started - 5
        stop = int(time.time()) + 1
        promql = '{__name__=~"up|rbtest:one"}'
        # start as RFC 3339, stop as unix seconds, step as a duration
        res = self.run_lua("""
            local prometheus = require "prometheus"
            local r = prometheus.query_range(PROM, %s, { start = %s, stop = %d, step = "1s" })
            local out_series = {}
            for i, s in ipairs(r) do
              local vals = {}
              for j, p in ipairs(s.values) do vals[j] = { p[1], prometheus.format_value(p[2]) } end
              out_series[i] = { metric = s.metric, values = vals }
            end
            out(out_series)
        """ % (lua_str(promql), lua_str(rfc3339(start)), stop))
        self.assertEqual(res.code, 0, res)
        (got,) = res.data
        want = self.stack.prom_api("/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": promql, "start": start, "end": stop, "step": 1}))
        self.assertEqual(want["resultType"], "matrix")
        self.assertTrue(want["result"], "Prometheus has data for the range")
        self.assertEqual([s["metric"] for s in got], [s["metric"] for s in want["result"]])
        for g, w in zip(got, want["result"]):
            self.assertEqual([(float(t), v) for t, v in g["values"]],
                             [(float(t), v) for t, v in w["values"]], g["metric"])
        # one audited read with the parameters Prometheus was given
        (act,) = self.http_actions()
        self.assertEqual((act["verb"], act["class"]), ("GET", "read"))
        q = urllib.parse.parse_qs(urllib.parse.urlparse(act["target"]).query)
        self.assertEqual(q["start"], [rfc3339(start)])
        self.assertEqual(q["end"], [str(stop)])
        self.assertEqual(q["step"], ["1"])

    def test_targets_rules_alerts_match_the_api(self):
        self.wait_prometheus_ready()
        res = self.run_lua("""
            local prometheus = require "prometheus"
            local t, dropped = prometheus.targets(PROM)
            local targets = {}
            for i, x in ipairs(t) do
              targets[i] = { job = x.job, instance = x.instance, health = x.health, up = x.up,
                             scrapeUrl = x.scrapeUrl, scrapePool = x.scrapePool }
            end
            local rules = {}
            for i, r in ipairs(prometheus.rules(PROM)) do
              rules[i] = { name = r.name, type = r.type, query = r.query, group = r.group,
                           file = r.file, labels = r.labels, state = r.state }
            end
            local only_alerting = #prometheus.rules(PROM, { type = "alert" })
            local alerts = {}
            for i, a in ipairs(prometheus.alerts(PROM)) do
              alerts[i] = { name = a.name, labels = a.labels, state = a.state,
                            activeAt = a.activeAt, value = prometheus.format_value(a.value) }
            end
            out({ targets = targets, dropped = #dropped, rules = rules,
                  only_alerting = only_alerting, alerts = alerts })
        """)
        self.assertEqual(res.code, 0, res)
        (got,) = res.data

        api_t = self.stack.prom_api("/api/v1/targets")
        self.assertEqual(got["targets"], [
            {"job": t["labels"]["job"], "instance": t["labels"]["instance"],
             "health": t["health"], "up": t["health"] == "up", "scrapeUrl": t["scrapeUrl"],
             "scrapePool": t["scrapePool"]} for t in api_t["activeTargets"]])
        self.assertEqual(got["targets"][0]["instance"],
                         self.stack.prometheus.replace("http://", ""))
        self.assertEqual(got["dropped"], len(api_t["droppedTargets"]))

        want_rules = []
        for g in self.stack.prom_api("/api/v1/rules")["groups"]:
            for r in g["rules"]:
                w = {"name": r["name"], "type": r["type"], "query": r["query"],
                     "group": g["name"], "file": g["file"]}
                if r.get("labels"):
                    w["labels"] = r["labels"]
                if "state" in r:
                    w["state"] = r["state"]
                want_rules.append(w)
        self.assertEqual(got["rules"], want_rules)
        self.assertEqual({r["name"] for r in got["rules"]}, {ALERT, prom_stack.RECORD})
        self.assertEqual(got["only_alerting"], 1)

        api_a = self.stack.prom_api("/api/v1/alerts")["alerts"]
        self.assertEqual(got["alerts"], [
            {"name": a["labels"]["alertname"], "labels": a["labels"], "state": a["state"],
             "activeAt": a["activeAt"], "value": "1"} for a in api_a])
        self.assertEqual([a["state"] for a in got["alerts"]], ["firing"])

        acts = self.http_actions()
        self.assertEqual([(a["verb"], a["class"], a["simulated"]) for a in acts],
                         [("GET", "read", False)] * 4)
        self.assertEqual([urllib.parse.urlparse(a["target"]).path for a in acts],
                         ["/api/v1/targets", "/api/v1/rules", "/api/v1/rules", "/api/v1/alerts"])

    def test_nan_and_infinities_from_the_api(self):
        res = self.run_lua("""
            local prometheus = require "prometheus"
            local v = {}
            for _, q in ipairs({ "0/0", "1/0", "-1/0", "vector(2.5)" }) do
              local x = prometheus.query_value(PROM, q)
              v[#v + 1] = prometheus.format_value(x)
              log.info("%s = %s (raw %s)", q, prometheus.format_value(x), tostring(x))
            end
            out(v)
        """)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data, [["NaN", "+Inf", "-Inf", "2.5"]])
        self.assertIn("0/0 = NaN", res.out)
        self.assertIn("-1/0 = -Inf", res.out)
        self.assertNotIn("-nan", res.out)

    # ---- Alertmanager: silences -----------------------------------------------

    LIFECYCLE = """
        local alertmanager = require "alertmanager"
        local id
        step("silence the alert", function()
          id = alertmanager.silence(AM, {
            matchers = { alertname = %(alert)s, 'severity=~"crit.*"' },
            duration = "30m", comment = %(comment)s, created_by = "rbtest" })
          out({ id = id })
        end)
        step("see the silence", function()
          local mine = alertmanager.silences(AM, { alertname = %(alert)s }, { state = "active" })
          local found = false
          for _, s in ipairs(mine) do
            if s.id == id then
              found = true
              out({ listed = s.comment, matchers = s.matchers, state = s.state })
            end
          end
          log.info("silence %%s listed: %%s", id, tostring(found))
        end)
        step("expire it", function()
          out({ expired = alertmanager.expire(AM, id) })
        end)
    """

    def lifecycle(self, comment):
        return self.LIFECYCLE % {"alert": lua_str(ALERT), "comment": lua_str(comment)}

    def test_silence_then_expire_live(self):
        self.wait_alert_in_alertmanager()
        comment = "rbtest lifecycle %f" % time.time()
        res = self.run_lua(self.lifecycle(comment))
        self.assertEqual(res.code, 0, res)
        sid = res.data[0]["id"]
        listed = res.data[1]
        self.assertEqual(sorted(listed.pop("matchers")),
                         [["alertname", "=", ALERT], ["severity", "=~", "crit.*"]])
        self.assertEqual(listed, {"listed": comment, "state": "active"})
        self.assertEqual(res.data[2], {"expired": True})
        s = self.silences_by_id()[sid]
        self.assertEqual(s["status"]["state"], "expired")
        self.assertEqual(s["comment"], comment)
        self.assertEqual(s["createdBy"], "rbtest")
        self.assertEqual(sorted((m["name"], m["value"], m["isRegex"], m.get("isEqual", True))
                                for m in s["matchers"]),
                         [("alertname", ALERT, False, True), ("severity", "crit.*", True, True)])
        acts = self.http_actions()
        self.assertEqual([(a["verb"], a["class"], a["simulated"]) for a in acts],
                         [("POST", "mutate", False), ("GET", "read", False),
                          ("DELETE", "mutate", False)])
        self.assertTrue(acts[2]["target"].endswith("/api/v2/silence/" + sid), acts[2])

    def test_silence_exists_and_suppresses(self):
        self.wait_alert_in_alertmanager()
        comment = "rbtest silence only %f" % time.time()
        res = self.run_lua("""
            local alertmanager = require "alertmanager"
            out(alertmanager.silence(AM, { matchers = '{alertname=%s,team!="nobody"}',
                                           duration = 600, comment = %s }))
        """ % (lua_str(ALERT), lua_str(comment)))
        self.assertEqual(res.code, 0, res)
        (sid,) = res.data
        try:
            s = self.silences_by_id()[sid]
            self.assertEqual(s["status"]["state"], "active")
            self.assertEqual(s["comment"], comment)
            self.assertTrue(s["createdBy"])
            self.assertIn(("team", "nobody", False, False),
                          [(m["name"], m["value"], m["isRegex"], m["isEqual"])
                           for m in s["matchers"]])
            # duration 600 s: endsAt - startsAt, as the Alertmanager stored it
            span = (calendar.timegm(time.strptime(s["endsAt"][:19], "%Y-%m-%dT%H:%M:%S"))
                    - calendar.timegm(time.strptime(s["startsAt"][:19], "%Y-%m-%dT%H:%M:%S")))
            self.assertIn(span, (599, 600, 601))

            # the alert is silenced by it
            def silenced():
                return [a for a in self.am("/api/v2/alerts?silenced=true")
                        if sid in a["status"]["silencedBy"]]
            self.wait_for(silenced, timeout=60, what="the alert silenced by " + sid)

            # and silences() lists it as the API does, firing() no longer has the alert
            res = self.run_lua("""
                local alertmanager = require "alertmanager"
                local ids = {}
                for _, s in ipairs(alertmanager.silences(AM)) do ids[#ids + 1] = s.id end
                local firing = alertmanager.firing(AM, { alertname = %s })
                out({ ids = ids, firing = #firing })
            """ % lua_str(ALERT))
            self.assertEqual(res.code, 0, res)
            self.assertEqual(sorted(res.data[0]["ids"]), sorted(self.silences_by_id()))
            self.assertEqual(res.data[0]["firing"], 0)
        finally:
            self.stack.request(self.stack.alertmanager + "/api/v2/silence/" + sid, "DELETE")

    def test_dry_run_completes_and_creates_nothing(self):
        self.wait_alert_in_alertmanager()
        before = self.silences_by_id()
        comment = "rbtest dry-run %f" % time.time()
        res = self.run_lua(self.lifecycle(comment), "--dry-run")
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data[0], {"id": "dry-run"})
        self.assertEqual(res.data[-1], {"expired": True})
        self.assertEqual(len(res.data), 2, "no silence was listed: none was made")
        self.assertIn("would: POST", res.out)
        self.assertIn("would: DELETE", res.out)
        after = self.silences_by_id()
        self.assertEqual(sorted(after), sorted(before), "a rehearsal created a silence")
        self.assertEqual({i: s["status"]["state"] for i, s in after.items()},
                         {i: s["status"]["state"] for i, s in before.items()},
                         "a rehearsal changed a silence")
        self.assertNotIn(comment, json.dumps(list(after.values())))
        acts = self.http_actions()
        self.assertEqual([(a["verb"], a["class"], a["simulated"]) for a in acts],
                         [("POST", "mutate", True), ("GET", "read", False),
                          ("DELETE", "mutate", True)])
        self.assertEqual(self.run_record()["mode"], "dry-run")

    # ---- options ---------------------------------------------------------------

    def test_unknown_options_are_named(self):
        cases = [
            ('prometheus.query_range(PROM, "up", { start = 1, stpe = "1s" })',
             "unknown option 'stpe' for prometheus.query_range (did you mean 'step'?)"),
            ('prometheus.query_range(PROM, "up", { start = 1, step = 1, ["end"] = 2 })',
             "unknown option 'end' for prometheus.query_range (it takes: start stop step "
             "eval_timeout timeout headers auth insecure cacert)"),
            ('prometheus.targets(PROM, { stat = "active" })',
             "unknown option 'stat' for prometheus.targets (did you mean 'state'?)"),
            ('prometheus.rules(PROM, { tpye = "alert" })',
             "unknown option 'tpye' for prometheus.rules (did you mean 'type'?)"),
            ('prometheus.alerts(PROM, { timout = 1 })',
             "unknown option 'timout' for prometheus.alerts (did you mean 'timeout'?)"),
            ('alertmanager.silence(AM, { matchers = { a = "b" }, duration = 60, '
             'comment = "x", createdby = "me" })',
             "unknown option 'createdby' for alertmanager.silence (did you mean 'created_by'?)"),
            ('alertmanager.silences(AM, nil, { sate = "active" })',
             "unknown option 'sate' for alertmanager.silences (did you mean 'state'?)"),
            ('alertmanager.expire(AM, "x", { zzz = 1 })',
             "unknown option 'zzz' for alertmanager.expire"),
            ('prometheus.query_range(PROM, "up", { step = "1s" })',
             "prometheus.query_range: missing option 'start'"),
            ('prometheus.query_range(PROM, "up", { start = "yesterday", step = "1s" })',
             'start must be an RFC 3339 time'),
            ('prometheus.query_range(PROM, "up", { start = 1, step = "5 mins" })',
             'bad duration "5 mins"'),
            ('alertmanager.silence(AM, { matchers = { a = "b" }, duration = "30x", comment = "c" })',
             'alertmanager.silence: duration: bad duration "30x"'),
            ('alertmanager.silence(AM, { matchers = { a = "b" }, duration = "30m" })',
             "alertmanager.silence: missing option 'comment'"),
        ]
        body = ['local prometheus = require "prometheus"',
                'local alertmanager = require "alertmanager"']
        for i, (call, _) in enumerate(cases):
            body.append("do local ok, e = pcall(function() return %s end)\n"
                        "  out({ %d, ok, tostring(e) }) end" % (call, i))
        res = self.run_lua("\n".join(body))
        self.assertEqual(res.code, 0, res)
        self.assertEqual(len(res.data), len(cases))
        for (i, ok, err), (call, want) in zip(res.data, cases):
            self.assertFalse(ok, call)
            self.assertIn(want, err, call)
            self.assertNotIn("stdlib/", err, "raised at the runbook's line: " + call)
        # nothing reached a server: every call was refused before its request
        self.assertEqual(self.http_actions(), [])


class Exemplars(RunbookTestCase):
    """No server: the OpenMetrics parser and value printing."""

    def test_exemplar_line_parses(self):
        res = self.run_body("""
            local prometheus = require "prometheus"
            local s = prometheus.parse([[
            # TYPE foo histogram
            foo_bucket{le="0.1"} 5 # {trace_id="abc"} 0.05 1234
            foo_bucket{le="+Inf"} 7 1700000000 # {trace_id="def",span_id="1"} 3
            foo_count 7
            # EOF
            ]])
            out({ n = #s, v1 = s[1].value, le = s[1].labels.le, ex1 = s[1].exemplar,
                  v2 = s[2].value, ts2 = s[2].timestamp, ex2 = s[2].exemplar,
                  none = s[3].exemplar == nil })
            local ok, e = pcall(prometheus.parse, 'foo 1 # {trace_id="abc" 0.05')
            out(tostring(e))
            log.info("values: %s %s %s", prometheus.format_value(prometheus.parse_value("NaN")),
                     prometheus.format_value(prometheus.parse_value("+Inf")),
                     prometheus.format_value(prometheus.parse_value("-Inf")))
            log.info("raw NaN: %s", tostring(prometheus.parse("a NaN")[1].value))
        """, audit=False)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(res.data[0], {
            "n": 3, "v1": 5, "le": "0.1",
            "ex1": {"labels": {"trace_id": "abc"}, "value": 0.05, "timestamp": 1234},
            "v2": 7, "ts2": 1700000000,
            "ex2": {"labels": {"trace_id": "def", "span_id": "1"}, "value": 3},
            "none": True})
        self.assertIn("line 1: exemplar:", res.data[1])
        self.assertIn("values: NaN +Inf -Inf", res.out)
        # a NaN the parser hands out never prints as "-nan" (format_value prints "NaN")
        self.assertNotIn("-nan", res.out)

    def test_log_and_print_write_nan_and_infinities_as_prometheus_does(self):
        res = self.run_body("""
            step("x", function()
              print(0/0, 1/0, -1/0, 1.5, "nanoseconds")
              log.info(0/0)
              log.info("v=%s w=%.2f x=%g nanny %d", 0/0, 1/0, -1/0, 3)
              log.info("left alone: %s", "inf nan -nan")
            end)
        """, audit=False)
        self.assertEqual(res.code, 0, res)
        self.assertIn("NaN\t+Inf\t-Inf\t1.5\tnanoseconds", res.out)
        self.assertIn("info NaN\n", res.out)
        self.assertIn("v=NaN w=+Inf x=-Inf nanny 3", res.out)
        self.assertIn("left alone: inf nan -nan", res.out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
