"""Time (issue 16, item 5): the global `time` -- time.parse(rfc3339),
time.duration("5m"), time.since(t), time.format(t) -- and a scenario's
`now:`, where the run's clock starts for now(), os.time, os.date, time.*
and sleep().

The oracle for every timestamp is Python's datetime, never the code under
test.  Nothing measures wall-clock time: in scenarios the pinned clock is
observed from inside the runbook, at minute granularity where real time
(the milliseconds a run takes) could show."""
import datetime
import json
import os
import unittest

from rbtest import RunbookTestCase

UTC = datetime.timezone.utc


def unix(text):
    """text (RFC 3339) as Unix seconds, by Python's reading of it."""
    return datetime.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00")
                                           .replace("t", "T")).timestamp()


def rfc3339_ms(t):
    """Unix seconds as time.format must write them: UTC, milliseconds."""
    ms = round(t * 1000)
    d = datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(milliseconds=ms)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (d.year, d.month, d.day, d.hour, d.minute,
                                                    d.second, d.microsecond // 1000)


VALID = [
    "2024-05-01T09:00:00Z",
    "2024-05-01T11:00:00.250+02:00",
    "2024-05-01T03:30:00-05:30",
    "2024-02-29T23:59:59.999Z",     # a leap day
    "2000-02-29T00:00:00Z",         # divisible by 400: a leap year
    "1969-12-31T23:59:58.5Z",       # before the epoch: negative seconds
    "1900-03-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00Z",
    "2024-05-01t09:00:00z",         # RFC 3339 5.6 allows lower case
    "2024-05-01T09:00:00.123456789Z",  # Kubernetes' nanoseconds
    "2024-05-01T09:00:00-00:00",    # "unknown local offset": UTC
]

# (input, what the error must say after the quoted input)
INVALID = [
    ("2024-13-01T00:00:00Z", "month 13 out of range"),
    ("2023-02-29T00:00:00Z", "day 29 out of range for 2023-02"),
    ("1900-02-29T00:00:00Z", "day 29 out of range for 1900-02"),
    ("2024-05-01T09:00:00", "no time zone"),
    ("2024-05-01T24:00:00Z", "time 24:00:00 out of range"),
    ("2024-05-01T09:60:00Z", "time 09:60:00 out of range"),
    ("2024-05-01T09:00:00+2:00", "expected an offset such as +02:00"),
    ("2024-05-01T09:00:00+24:00", "offset 24:00 out of range"),
    ("2024-05-01T09:00:00Zjunk", "unexpected text after the time zone"),
    ("2024-05-01T09:00:00.Z", "expected digits after the decimal point"),
    ("2024-05-01", "expected T and the time after the date"),
    ("yesterday", "expected a date YYYY-MM-DD first"),
    ("", "expected a date YYYY-MM-DD first"),
    ("1714554000", "expected a date YYYY-MM-DD first"),
]

DURATIONS = [("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800),
             ("90", 90), ("1.5h", 5400), ("1w", 604800), ("1y", 31536000), (" 10m ", 600),
             ("1h0m30s", 3630), ("0", 0), ("2.5", 2.5)]
BAD_DURATIONS = ["5x", "", "1h30", "-5m", "inf", "nan", "1e3", ".", "m", "1..5s", "0x10",
                 "5 m", "10 minutes"]


class TimeFunctions(RunbookTestCase):
    def run_ok(self, body, *flags, **kw):
        res = self.run_body(body, *flags, audit=False, **kw)
        self.assertEqual(res.code, 0, res)
        return res

    def test_parse_agrees_with_python(self):
        """Every valid form gives Python's Unix seconds, fractions kept, and
        a float even for whole seconds (as now() is)."""
        res = self.run_ok("step('p', function()\n" + "".join(
            "  out({ %s, time.parse(%s), math.type(time.parse(%s)) })\n" % (json.dumps(s),
                                                                          json.dumps(s),
                                                                          json.dumps(s))
            for s in VALID) + "end)\n")
        self.assertEqual(len(res.data), len(VALID))
        for text, got, kind in res.data:
            with self.subTest(text=text):
                self.assertAlmostEqual(got, unix(text), places=5)  # Python keeps microseconds
                self.assertEqual(kind, "float")

    def test_parse_ignores_the_time_zone_setting(self):
        """TZ changes neither parse nor format: the arithmetic is UTC's."""
        body = ("step('p', function() out({ time.parse('2024-05-01T11:00:00+02:00'), "
                "time.format(1714554000.5) }) end)\n")
        for tz in ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"):
            with self.subTest(tz=tz):
                res = self.run_ok(body, env={"TZ": tz})
                self.assertEqual(res.data, [[1714554000, "2024-05-01T09:00:00.500Z"]])

    def test_parse_raises_quoting_the_input_at_the_runbooks_line(self):
        """A bad time raises at the line that called time.parse, with the
        input quoted, why it is not RFC 3339 and an example."""
        for text, why in INVALID:
            with self.subTest(text=text):
                res = self.run_body("step('p', function()\n  time.parse(%s)\nend)\n"
                                    % json.dumps(text), audit=False)
                self.assertEqual(res.code, 1, res)
                want = ('%s:4: time.parse: "%s" is not an RFC 3339 time: %s'
                        % (os.path.basename(res.file), text, why))
                self.assertIn(want, res.all)
                self.assertIn('(expected e.g. "2024-05-01T09:00:00Z"', res.all)

    def test_parse_refuses_what_is_not_text(self):
        res = self.run_ok("""
            step('p', function()
              for _, v in ipairs({ 1714554000, true, {} }) do
                local ok, err = pcall(time.parse, v)
                out({ ok, err })
              end
              out({ pcall(time.parse, "2024-05-01T09:00:00Z", "extra") })
            end)
            """)
        # a number passes the signature (text may be a number in Lua) but is no time
        self.assertEqual(res.data[0], [False, 'time.parse: expected an RFC 3339 time such as '
                                              '"2024-05-01T09:00:00Z", got number'])
        for (ok, err), kind in zip(res.data[1:3], ("boolean", "table")):
            self.assertFalse(ok)
            self.assertEqual(err, "time.parse: argument 1 (text) must be a string, got %s; "
                                  "usage: time.parse(text)" % kind)
        self.assertEqual(res.data[3], [False, "time.parse: too many arguments (2); "
                                              "usage: time.parse(text)"])

    def test_duration(self):
        res = self.run_ok("step('d', function()\n" + "".join(
            "  out({ %s, time.duration(%s) })\n" % (json.dumps(t), json.dumps(t))
            for t, _ in DURATIONS) + "  out({ 42, time.duration(42) })\nend)\n")
        self.assertEqual([tuple(x) for x in res.data], DURATIONS + [(42, 42)])

    def test_bad_durations_raise_quoting_the_input(self):
        res = self.run_ok("step('d', function()\n" + "".join(
            "  out({ pcall(time.duration, %s) })\n" % json.dumps(t) for t in BAD_DURATIONS) +
            "  out({ pcall(time.duration, -1) })\n"
            "  out({ pcall(time.duration, 0/0) })\n"
            "  out({ pcall(time.duration, {}) })\nend)\n")
        for text, (ok, err) in zip(BAD_DURATIONS, res.data):
            with self.subTest(text=text):
                self.assertFalse(ok)
                self.assertEqual(err, 'time.duration: bad duration "%s" (expected e.g. "90s", '
                                      '"5m", "1h30m", "500ms", "2d" or seconds)' % text)
        self.assertEqual(res.data[-3][1][:34], "time.duration: bad duration -1 (ex")
        self.assertFalse(res.data[-2][0])
        self.assertIn("bad duration", res.data[-2][1])
        self.assertEqual(res.data[-1], [False, "time.duration: argument 1 (d) must be a string "
                                               "or a number, got table; usage: time.duration(d)"])

    def test_format_round_trips_with_parse(self):
        """format(parse(x)) is x in UTC to the millisecond (rounded, not
        truncated: .123 is 0.12299... as a double); numbers as Python
        writes them."""
        numbers = [0, 1714554000, 1714554000.5, 1714554000.0006, -1.5, -0.0004, 253402300799.999]
        res = self.run_ok("step('f', function()\n" + "".join(
            "  out({ %s, time.format(%s) })\n" % (json.dumps(s), json.dumps(s)) for s in VALID) +
            "".join("  out({ %r, time.format(%r) })\n" % (n, n) for n in numbers) + "end)\n")
        for (given, got) in res.data:
            with self.subTest(given=given):
                t = unix(given) if isinstance(given, str) else given
                self.assertEqual(got, rfc3339_ms(t))
        self.assertIn(["2024-05-01T11:00:00.250+02:00", "2024-05-01T09:00:00.250Z"], res.data)

    def test_format_refuses_what_it_cannot_write(self):
        res = self.run_ok("""
            step('f', function()
              out({ pcall(time.format, 1e300) })
              out({ pcall(time.format, -1e13) })
              out({ pcall(time.format, 1/0) })
              out({ pcall(time.format, "soon") })
              out({ pcall(time.format, false) })
            end)
            """)
        self.assertIn("is out of range (years 0000 to 9999)", res.data[0][1])
        self.assertIn("is out of range (years 0000 to 9999)", res.data[1][1])
        self.assertEqual(res.data[2][1], "time.format: expected unix seconds or an RFC 3339 "
                                         "time, got infinity")
        self.assertIn('time.format: "soon" is not an RFC 3339 time', res.data[3][1])
        self.assertIn("got boolean", res.data[4][1])
        for ok, _ in res.data:
            self.assertFalse(ok)

    def test_since_takes_seconds_or_text_and_reads_now(self):
        """since(t) is now() - t, for t as seconds or RFC 3339 (a time ahead
        is negative); time is pure: no action, in any mode."""
        body = """
            step('s', function()
              local t = "2024-05-01T09:00:00Z"
              local a = time.since(t)
              local n = now()
              local b = time.since(t)
              out({ a <= n - time.parse(t), n - time.parse(t) <= b,
                    time.since(time.parse(t)) >= a, time.since(now() + 3600) < -3599 })
            end)
            """
        for flags in ((), ("--dry-run",)):
            with self.subTest(flags=flags):
                res = self.run_ok(body, *flags)
                self.assertEqual(res.data, [[True, True, True, True]])
                self.assertIn("0 actions", res.all)

    def test_time_is_a_global_that_check_knows(self):
        """`time` is the engine's (no require); `runbook check` (luacheck
        with the engine's globals) accepts its functions and flags a typo."""
        self.write("ok.lua", """
            runbook { name = "t/ok" }
            step("a", function() log.info("%s", time.format(time.parse("2024-05-01T09:00:00Z"))) end)
            """)
        res = self.rb("check", "ok.lua")
        self.assertEqual(res.code, 0, res)
        self.write("typo.lua", """
            runbook { name = "t/typo" }
            step("a", function() log.info("%s", time.prase("2024-05-01T09:00:00Z")) end)
            """)
        res = self.rb("check", "typo.lua")
        self.assertNotEqual(res.code, 0, res)
        self.assertIn("prase", res.all)


ESCALATE = """
runbook {
  name = "t/escalate",
  params = { alert_started = { default = "2024-05-01T09:00:00Z" } },
}

-- escalate once the alert has been open ten minutes
local function escalate_if_due(when)
  if time.since(params.alert_started) >= time.duration("10m") then
    notify.slack{ text = "escalating " .. when .. ": open since " .. params.alert_started }
    return true
  end
  return false
end

step("look, wait ten minutes, look again", function()
  state.hhmm_start = os.date("!%H:%M")
  state.day_start = os.date("!%Y-%m-%d")
  state.minutes_open = math.floor(time.since(params.alert_started) / 60)
  state.os_time_minute = os.time() // 60
  state.formatted = time.format():sub(1, 16)
  state.escalated_first = escalate_if_due("at first")
  local before = now()
  sleep(600)
  state.slept = math.floor(now() - before)
  state.hhmm_after = os.date("!%H:%M")
  state.minutes_after = math.floor(time.since(params.alert_started) / 60)
  state.escalated_after = escalate_if_due("after waiting")
end)
"""


class ScenarioNow(RunbookTestCase):
    def scenario(self, now_line, expect, name="s.scenario.yaml", mocks=True):
        self.write("esc.lua", ESCALATE)
        self.write(name, "runbook: esc.lua\n" + now_line +
                   ("mocks:\n  - notify: { channel: slack }\n" if mocks else "") +
                   "expect:\n" + expect)
        return self.rb("test", "--one", name)

    def verdict(self, res):
        line = [l for l in res.out.splitlines() if l.startswith("{")]
        self.assertTrue(line, res)
        return json.loads(line[-1])

    def test_now_pins_the_clock_and_sleep_moves_it(self):
        """With now: 09:05Z and an alert open since 09:00Z, the runbook sees
        09:05, five minutes open, no escalation; sleep(600) is ten minutes
        at once (no real wait), after which it sees 09:15 and escalates."""
        expect = """\
  state:
    hhmm_start: "09:05"
    day_start: "2024-05-01"
    minutes_open: 5
    os_time_minute: %d
    formatted: "2024-05-01T09:05"
    escalated_first: false
    slept: 600
    hhmm_after: "09:15"
    minutes_after: 15
    escalated_after: true
  notifications:
    - { channel: slack, text: "escalating after waiting: open since 2024-05-01T09:00:00Z" }
""" % (int(unix("2024-05-01T09:05:00Z")) // 60)
        for now in ("2024-05-01T09:05:00Z", '"2024-05-01T11:05:00+02:00"',
                    "2024-05-01T04:05:00.000-05:00"):
            with self.subTest(now=now):
                res = self.scenario("now: %s\n" % now, expect)
                self.assertEqual(res.code, 0, res)
                v = self.verdict(res)
                self.assertEqual(v["status"], "passed", v)
                self.assertEqual(v["failures"], [])

    def test_the_pinned_clock_decides_the_escalation(self):
        """The same runbook escalates at once when the scenario starts
        twenty minutes in, and the judge sees the first notification."""
        res = self.scenario("now: 2024-05-01T09:20:00Z\n", """\
  state: { escalated_first: true, minutes_open: 20, hhmm_after: "09:30" }
  notifications:
    - { text: "escalating at first*" }
""")
        self.assertEqual(res.code, 0, res)
        self.assertEqual(self.verdict(res)["status"], "passed")

    def test_without_now_the_clock_is_real(self):
        """No now: the run's clock is the machine's (the alert of 2024 has
        been open for more than a year), as before."""
        res = self.scenario("", "  state: { escalated_first: true }\n")
        self.assertEqual(res.code, 0, res)
        self.assertEqual(self.verdict(res)["status"], "passed")

    def test_fs_seed_ages_count_back_from_now(self):
        """age_days counts from the scenario's now, so retention rules see
        the dates the scenario names."""
        self.write("age.lua", """
            runbook { name = "t/age" }
            step("a", function()
              state.mtime_day = os.date("!%Y-%m-%d", fs.stat("/var/backups/old.dump").mtime)
            end)
            """)
        self.write("age.scenario.yaml", """
            runbook: age.lua
            now: 2024-05-10T12:00:00Z
            fs:
              /var/backups/old.dump: { text: "x", age_days: 3 }
            expect:
              state: { mtime_day: "2024-05-07" }
            """)
        res = self.rb("test", "--one", "age.scenario.yaml")
        self.assertEqual(res.code, 0, res)
        self.assertEqual(self.verdict(res)["status"], "passed")

    def test_bad_now_is_a_malformed_scenario_at_its_line(self):
        """A now: that is not RFC 3339 with a time zone is the scenario
        malformed (exit 2 with --one), FILE:LINE, the value and why; and
        `runbook check` says the same."""
        cases = [
            ("2024-05-01T09:05:00", "no time zone"),
            ("yesterday", "expected a date YYYY-MM-DD first"),
            ("2024-02-30T09:05:00Z", "day 30 out of range for 2024-02"),
            ("1714554000", "expected a string"),
            ("[ 2024 ]", "expected a string"),
        ]
        for value, why in cases:
            with self.subTest(value=value):
                res = self.scenario("now: %s\n" % value, "  outcome: success\n")
                self.assertEqual(res.code, 2, res)
                v = self.verdict(res)
                self.assertEqual(v["status"], "malformed", v)
                self.assertEqual(len(v["failures"]), 1, v)
                self.assertTrue(v["failures"][0].startswith("s.scenario.yaml:2: now: got "), v)
                self.assertIn(why, v["failures"][0])
                self.assertIn("expected an RFC 3339 time", v["failures"][0])
                self.assertEqual(v["output"], "", "the runbook must not have run")
                chk = self.rb("check", "s.scenario.yaml")
                self.assertEqual(chk.code, 1, chk)
                self.assertIn("s.scenario.yaml:2:", chk.all)
                self.assertIn(why, chk.all)

    def test_now_is_a_known_key(self):
        """The unknown-key message lists now among the top-level keys."""
        res = self.scenario("nwo: 2024-05-01T09:05:00Z\n", "  outcome: success\n")
        self.assertEqual(res.code, 2, res)
        failure = self.verdict(res)["failures"][0]
        self.assertIn("unknown key 'nwo'", failure)
        self.assertRegex(failure, r"expected one of: [^)]*\bnow\b")


if __name__ == "__main__":
    unittest.main()
