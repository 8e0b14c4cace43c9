"""notify.* (SPEC §3, §4, §5, §7; docs/http-contract.md) against real
receivers on loopback: Slack-, PagerDuty- and webhook-shaped routes of
tests/fixtures/httpd.py and the SMTP sink tests/fixtures/smtp_sink.py.
Every test asserts what reached the receiver (exact JSON payloads, the mail
as delivered) as well as what the runbook saw, printed and audited; dry-run
must deliver nothing, and webhook URLs, routing keys and SMTP passwords
must appear nowhere the program writes."""
import email
import email.policy
import email.utils
import glob
import json
import re
import socket
import textwrap
import unittest

from rbtest import RunbookTestCase, lua_str

SLACK_PATH = "/services/T0RB00001/B0RB00002/SLACKtok3nZq81xYw"
SLACK_TOKEN = "SLACKtok3nZq81xYw"
PD_KEY = "R0UTINGkey0123456789abcdef012345"
SMTP_PASS = "smtp-Pa55-wordQ7"
API_KEY = "hook-apikey-Vx90"
PD_OK = {"status": "success", "message": "Event processed", "dedup_key": "srv-dedup-1"}


class NotifyCase(RunbookTestCase):
    """self.srv: receivers; self.runbook(body, flags...) runs a runbook whose
    preamble defines B (the receivers' base URL), M (the SMTP sink's URL) and
    out(x), which prints one JSON line read back as res.data[i]."""

    PREAMBLE = ('runbook { name = "t/notify" }\n'
                'local B = %s\n'
                'local M = %s\n'
                'local function out(x) print("@@" .. json.encode(x)) end\n')

    ROUTES = {
        SLACK_PATH: {"status": 200, "body": "ok", "methods": ["POST"]},
        "/staging/slack": {"status": 200, "body": "ok"},
        "/slack-fail": {"status": 500, "body": "internal_error\nsecond line"},
        "/slack-404": {"status": 404, "body": "no_service"},
        "/v2/enqueue": {"status": 202, "json": PD_OK, "methods": ["POST"]},
        "/staging/pd": {"status": 202, "json": PD_OK},
        "/pd-bad": {"status": 400, "json": {"status": "invalid event",
                                             "message": "Event object is invalid",
                                             "errors": ["'severity' is invalid"]}},
        "/hook": {"status": 200, "json": {"received": True}},
        "/hook-201": {"status": 201, "body": "created"},
    }

    def setUp(self):
        super().setUp()
        self.srv = self.httpd(routes=self.ROUTES)
        self.mail = self.smtp()
        self._n = 0

    def runbook_file(self, body):
        self._n += 1
        text = self.PREAMBLE % (lua_str(self.srv.base), lua_str(self.mail.url()))
        text += textwrap.dedent(body).lstrip("\n")
        return self.write("notify-%d.lua" % self._n, text, dedent=False)

    def runbook(self, body, *flags, **kw):
        f = self.runbook_file(body)
        res = self.run_rb(f, *flags, **kw)
        res.file = f
        res.data = []
        for l in res.out.splitlines():
            if l.startswith("{"):  # --output json: print() is a log event
                l = json.loads(l).get("message") or ""
            if "@@" in l:
                res.data.append(json.loads(l[l.index("@@") + 2:]))
        return res

    def posted(self, path):
        """The JSON bodies POSTed to path, in order."""
        out = []
        for r in self.srv.requests(path=path):
            self.assertEqual(r["method"], "POST")
            out.append(json.loads(r["body"]))
        return out

    def db_bytes(self):
        data = b""
        for f in glob.glob(self.audit + "*"):
            with open(f, "rb") as fh:
                data += fh.read()
        return data

    def assertNoSecrets(self, text, where, secrets=(SLACK_TOKEN, PD_KEY, SMTP_PASS, API_KEY)):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for s in secrets:
            self.assertNotIn(s, text, "a secret leaked into " + where)


# ---- Slack ------------------------------------------------------------------------

class Slack(NotifyCase):
    def test_exact_payload_words_and_audit(self):
        res = self.runbook("""
            step("tell", function()
              local r = notify.slack{
                webhook = B .. %s,
                text = "calendar-api restarted",
                channel = "#oncall",
                username = "runbook",
                icon_emoji = ":robot_face:",
                blocks = {
                  { type = "section", text = { type = "mrkdwn", text = "*calendar-api* restarted" } },
                  { type = "divider" },
                },
              }
              out({ status = r.status, ok = r.ok, body = r.body })
            end)
            """ % lua_str(SLACK_PATH))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"status": 200, "ok": True, "body": "ok"}])
        reqs = self.srv.requests(path=SLACK_PATH)
        self.assertEqual(len(reqs), 1)
        self.assertTrue(reqs[0]["headers"]["content-type"].startswith("application/json"))
        self.assertEqual(json.loads(reqs[0]["body"]), {
            "text": "calendar-api restarted",
            "channel": "#oncall",
            "username": "runbook",
            "icon_emoji": ":robot_face:",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*calendar-api* restarted"}},
                {"type": "divider"},
            ],
        })
        self.assertIn('notify slack #oncall: "calendar-api restarted" + (2 blocks)', res.out)
        acts = self.actions(primitive="notify")
        self.assertEqual(len(acts), 1)
        a = acts[0]
        self.assertEqual((a["verb"], a["target"], a["class"], a["simulated"], a["status"]),
                         ("slack", "#oncall", "mutate", False, "ok"))
        self.assertEqual(a.get("http_status"), 200)
        self.assertFalse(self.actions(primitive="http"), "the transfer is not a second action")
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")
        self.assertIn(b"****", self.db_bytes(), "the webhook argument is recorded, redacted")

    def test_text_only_target_is_the_host(self):
        res = self.runbook("""
            step("tell", function()
              notify.slack{ webhook = B .. %s, text = 'line one\\nline "two"' }
            end)
            """ % lua_str(SLACK_PATH))
        self.assertExit(res, 0)
        self.assertEqual(self.posted(SLACK_PATH), [{"text": 'line one\nline "two"'}])
        self.assertIn('notify slack 127.0.0.1:%d: "line one\\nline \\"two\\""' % self.srv.port,
                      res.out)

    def test_url_option_and_blocks_only(self):
        res = self.runbook("""
            step("tell", function()
              notify.slack{ url = B .. %s, blocks = { { type = "divider" } } }
            end)
            """ % lua_str(SLACK_PATH))
        self.assertExit(res, 0)
        self.assertEqual(self.posted(SLACK_PATH), [{"blocks": [{"type": "divider"}]}])
        self.assertIn("(1 block)", res.out)

    def test_misuse(self):
        res = self.runbook("""
            local function err(f, ...) local ok, e = pcall(f, ...); assert(not ok); return tostring(e) end
            step("misuse", function()
              out({
                err(notify.slack, { webhook = B .. "/x" }),
                err(notify.slack, { text = "no webhook anywhere" }),
                err(notify.slack, { webhook = B .. "/x", text = 5 }),
                err(notify.slack, "not a table"),
              })
            end)
            """)
        self.assertExit(res, 0)
        e = res.data[0]
        self.assertIn("notify.slack: nothing to send: give text (or blocks)", e[0])
        self.assertIn("notify.slack: no webhook", e[1])
        self.assertIn("webhook_secret", e[1])
        self.assertIn("'text' must be a string, got number", e[2])
        self.assertIn("notify.slack: argument 1 (message) must be an options table, got string",
                      e[3])
        self.assertEqual(self.srv.requests(), [], "misuse sends nothing")


# ---- PagerDuty --------------------------------------------------------------------

class PagerDuty(NotifyCase):
    def test_trigger_acknowledge_resolve_exact_events(self):
        res = self.runbook("""
            step("page", function()
              local r = notify.pagerduty{
                url = B .. "/v2/enqueue",
                routing_key = %s,
                summary = "calendar-api 5xx ratio 23%%",
                severity = "critical",
                source = "calendar-api.prod",
                component = "calendar-api",
                group = "carbon",
                class = "http-5xx",
                custom_details = { ratio = 0.23, threshold = 0.1, pods = { "a", "b" } },
                dedup_key = "cal-5xx",
              }
              out({ status = r.status, ok = r.ok, dedup_key = r.dedup_key })
              local a = notify.pagerduty{ url = B .. "/v2/enqueue", routing_key = %s,
                                          action = "acknowledge", dedup_key = r.dedup_key }
              local z = notify.pagerduty{ url = B .. "/v2/enqueue", routing_key = %s,
                                          action = "resolve", dedup_key = "cal-5xx",
                                          summary = "ignored", severity = "info" }
              out({ a.status, z.status })
            end)
            """ % (lua_str(PD_KEY), lua_str(PD_KEY), lua_str(PD_KEY)))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"status": 202, "ok": True, "dedup_key": "srv-dedup-1"})
        self.assertEqual(res.data[1], [202, 202])
        self.assertEqual(self.posted("/v2/enqueue"), [
            {"routing_key": PD_KEY, "event_action": "trigger", "dedup_key": "cal-5xx",
             "payload": {"summary": "calendar-api 5xx ratio 23%", "source": "calendar-api.prod",
                         "severity": "critical", "component": "calendar-api", "group": "carbon",
                         "class": "http-5xx",
                         "custom_details": {"ratio": 0.23, "threshold": 0.1, "pods": ["a", "b"]}}},
            {"routing_key": PD_KEY, "event_action": "acknowledge", "dedup_key": "srv-dedup-1"},
            {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "cal-5xx"},
        ])
        self.assertIn('notify pagerduty trigger critical: "calendar-api 5xx ratio 23%"', res.out)
        self.assertIn("notify pagerduty acknowledge srv-dedup-1", res.out)
        self.assertIn("notify pagerduty resolve cal-5xx", res.out)
        acts = self.actions(primitive="notify")
        self.assertEqual([a["verb"] for a in acts], ["pagerduty"] * 3)
        self.assertEqual({a["target"] for a in acts}, {"127.0.0.1:%d" % self.srv.port})
        self.assertEqual([a.get("http_status") for a in acts], [202, 202, 202])
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_defaults_severity_error_source_hostname(self):
        res = self.runbook("""
            step("page", function()
              notify.pagerduty{ url = B .. "/v2/enqueue", routing_key = %s, summary = "disk 91%%" }
            end)
            """ % lua_str(PD_KEY))
        self.assertExit(res, 0)
        self.assertEqual(self.posted("/v2/enqueue"), [
            {"routing_key": PD_KEY, "event_action": "trigger",
             "payload": {"summary": "disk 91%", "severity": "error",
                         "source": socket.gethostname()}}])

    def test_long_summary_is_cut_at_1024_bytes_on_a_character(self):
        res = self.runbook("""
            step("page", function()
              notify.pagerduty{ url = B .. "/v2/enqueue", routing_key = %s,
                                summary = string.rep("x", 1023) .. "é and more", source = "s" }
            end)
            """ % lua_str(PD_KEY))
        self.assertExit(res, 0)
        summary = self.posted("/v2/enqueue")[0]["payload"]["summary"]
        self.assertEqual(summary, "x" * 1023)

    def test_validation(self):
        res = self.runbook("""
            local function err(t) local ok, e = pcall(notify.pagerduty, t); assert(not ok); return tostring(e) end
            step("misuse", function()
              local u, k = B .. "/v2/enqueue", %s
              out({
                err({ url = u, routing_key = k, summary = "s", severity = "page-me" }),
                err({ url = u, routing_key = k, action = "acknowledge" }),
                err({ url = u, routing_key = k, action = "snooze", dedup_key = "d" }),
                err({ url = u, routing_key = k }),
                err({ url = u, summary = "no key" }),
              })
            end)
            """ % lua_str(PD_KEY))
        self.assertExit(res, 0)
        e = res.data[0]
        self.assertIn("severity must be critical, error, warning or info, not 'page-me'", e[0])
        self.assertIn("acknowledge needs the dedup_key", e[1])
        self.assertIn("action must be trigger, acknowledge or resolve, not 'snooze'", e[2])
        self.assertIn("trigger needs a summary", e[3])
        self.assertIn("no routing_key", e[4])
        self.assertEqual(self.srv.requests(), [])

    def test_rejected_event_raises_with_status_and_body(self):
        res = self.runbook("""
            step("page", function()
              notify.pagerduty{ url = B .. "/pd-bad", routing_key = %s, summary = "x" }
            end)
            """ % lua_str(PD_KEY))
        self.assertExit(res, 1)
        self.assertIn('notify pagerduty: HTTP 400: {"status": "invalid event"', res.all)
        a = self.actions(primitive="notify")[0]
        self.assertEqual((a["status"], a.get("http_status")), ("error", 400))
        self.assertIn("HTTP 400", a["error"])
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")


# ---- generic webhooks ---------------------------------------------------------------

class Webhook(NotifyCase):
    def test_json_string_method_headers(self):
        res = self.runbook("""
            step("hooks", function()
              local r = notify.webhook(B .. "/hook", { event = "restarted", service = "calendar-api",
                                                      n = 3, tags = { "p2" } })
              out({ status = r.status, received = r:json().received })
              local t = notify.webhook(B .. "/hook-201", "plain text body",
                                       { method = "put", headers = { ["X-Api-Key"] = %s,
                                                                     ["X-Trace"] = "t-1" } })
              out({ status = t.status, body = t.body })
              notify.webhook(B .. "/hook", { a = 1 },
                             { headers = { ["Content-Type"] = "application/vnd.x+json" } })
            end)
            """ % lua_str(API_KEY))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"status": 200, "received": True},
                                    {"status": 201, "body": "created"}])
        hook = self.srv.requests(path="/hook")
        self.assertEqual(json.loads(hook[0]["body"]),
                         {"event": "restarted", "service": "calendar-api", "n": 3, "tags": ["p2"]})
        self.assertEqual(hook[0]["headers"]["content-type"], "application/json")
        self.assertEqual(hook[1]["headers"]["content-type"], "application/vnd.x+json")
        put = self.srv.requests(path="/hook-201")[0]
        self.assertEqual(put["method"], "PUT")
        self.assertEqual(put["body"], "plain text body")
        self.assertEqual(put["headers"]["x-api-key"], API_KEY)
        self.assertEqual(put["headers"]["x-trace"], "t-1")
        self.assertTrue(put["headers"]["content-type"].startswith("text/plain"))
        self.assertIn('notify webhook 127.0.0.1:%d: {"event":"restarted"' % self.srv.port, res.out)
        self.assertIn("notify webhook 127.0.0.1:%d: PUT plain text body" % self.srv.port, res.out)
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_non_2xx_raises_first_line_only(self):
        res = self.runbook("""
            step("hook", function()
              local ok, e = pcall(notify.webhook, B .. "/slack-fail", { a = 1 })
              out({ ok, tostring(e) })
              notify.slack{ webhook = B .. "/slack-404", text = "x" }
            end)
            """)
        self.assertExit(res, 1)
        self.assertIn("notify webhook: HTTP 500: internal_error", res.data[0][1])
        self.assertNotIn("second line", res.data[0][1])
        self.assertIn("notify slack: HTTP 404: no_service", res.all)
        acts = self.actions(primitive="notify")
        self.assertEqual([a.get("http_status") for a in acts], [500, 404])
        self.assertEqual([a["status"] for a in acts], ["error", "error"])

    def test_transport_errors_name_the_notification_not_the_url(self):
        port = self.closed_port()
        res = self.runbook("""
            step("hook", function()
              notify.slack{ webhook = "http://127.0.0.1:%d/services/T/B/%s", text = "x" }
            end)
            """ % (port, SLACK_TOKEN))
        self.assertExit(res, 1)
        self.assertIn("notify slack: connection refused (127.0.0.1:%d)" % port, res.all)
        self.assertNoSecrets(res.all, "output")

    def test_redirects_are_not_followed_and_retries_are_opt_in(self):
        res = self.runbook("""
            step("hooks", function()
              local ok, e = pcall(notify.webhook, B .. "/redirect/1", { a = 1 })
              out({ ok, tostring(e) })
              ok, e = pcall(notify.slack, { webhook = B .. "/sequence/once/503,200", text = "x" })
              out({ ok, tostring(e) })
              local r = notify.pagerduty{ url = B .. "/sequence/pd/503,202", routing_key = %s,
                                          summary = "retried", source = "s", retries = 2,
                                          backoff = 0.01 }
              out({ r.status })
            end)
            """ % lua_str(PD_KEY))
        self.assertExit(res, 0)
        self.assertIn("notify webhook: HTTP 302", res.data[0][1])
        self.assertEqual([r["path"] for r in self.srv.requests(path="/redirect/*")],
                         ["/redirect/1"])
        self.assertIn("notify slack: HTTP 503", res.data[1][1])
        self.assertEqual(len(self.srv.requests(path="/sequence/once/503,200")), 1,
                         "no retry unless asked")
        self.assertEqual(res.data[2], [202])
        pd = self.posted("/sequence/pd/503,202")
        self.assertEqual(len(pd), 2)
        self.assertEqual(pd[0], pd[1], "the retry sends the same event")

    def test_timeout(self):
        res = self.runbook("""
            step("hook", function()
              notify.webhook(B .. "/delay/3000", { a = 1 }, { timeout = 0.3 })
            end)
            """)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"notify webhook: .*timed out")


# ---- e-mail -------------------------------------------------------------------------

class Email(NotifyCase):
    def message(self, i=0):
        mails = self.mail.wait_requests(i + 1)
        self.assertGreater(len(mails), i, "no mail reached the sink")
        m = mails[i]
        return m, email.message_from_string(m["data"], policy=email.policy.default)

    def test_rfc5322_message(self):
        body = "Restarted calendar-api at 09:14.\n.a line starting with a dot\nÜmlauts: äöü ✓\n"
        res = self.runbook("""
            step("mail", function()
              local r = notify.email{
                smtp = M,
                from = "Runbook Bot <runbook@example.com>",
                to = { "oncall@example.com", "Lead <lead@example.com>" },
                cc = "audit@example.com",
                bcc = "hidden@example.com",
                subject = "calendar-api restarted — größer",
                body = %s,
              }
              out({ status = r.status, ok = r.ok })
            end)
            """ % lua_str(body))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"status": 250, "ok": True}])
        m, msg = self.message()
        self.assertEqual(m["from"], "runbook@example.com")
        self.assertEqual(m["to"], ["oncall@example.com", "lead@example.com", "audit@example.com",
                                   "hidden@example.com"])
        self.assertEqual(msg["From"], "Runbook Bot <runbook@example.com>")
        self.assertEqual(msg["To"], "oncall@example.com, Lead <lead@example.com>")
        self.assertEqual(msg["Cc"], "audit@example.com")
        self.assertIsNone(msg["Bcc"], "Bcc recipients are not in the headers")
        self.assertNotIn("hidden@example.com", m["data"])
        self.assertEqual(str(msg["Subject"]), "calendar-api restarted — größer")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(msg["Date"]))
        self.assertRegex(msg["Message-ID"], r"^<[^<>@\s]+@example\.com>$")
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertEqual(msg.get_content_charset(), "utf-8")
        self.assertEqual(msg.get_content().replace("\r\n", "\n"), body)
        for line in m["data"].split("\r\n"):
            self.assertLessEqual(len(line), 78, "a line over 78 characters: %r" % line)
        self.assertIn('notify email oncall@example.com, Lead <lead@example.com> (+1 cc): '
                      '"calendar-api restarted — größer"', res.out)
        a = self.actions(primitive="notify")[0]
        self.assertEqual((a["verb"], a["target"], a["class"]),
                         ("email", "oncall@example.com, Lead <lead@example.com>", "mutate"))

    def test_plain_ascii_is_7bit_with_crlf(self):
        res = self.runbook("""
            step("mail", function()
              notify.email{ smtp = M, from = "a@example.com", to = "b@example.com, c@example.com",
                            subject = "plain", body = "one\\ntwo\\r\\nthree" }
            end)
            """)
        self.assertExit(res, 0)
        m, msg = self.message()
        self.assertEqual(m["to"], ["b@example.com", "c@example.com"])
        self.assertEqual(msg["Content-Transfer-Encoding"], "7bit")
        self.assertTrue(m["data"].endswith("\r\n\r\none\r\ntwo\r\nthree\r\n"), m["data"])

    def test_auth_with_password_from_config_secret(self):
        self.mail = self.smtp(require_auth="rb-user:" + SMTP_PASS)
        self.write("runbook.yaml", """
            notify:
              email:
                smtp: %s
                from: runbook@example.com
                username: rb-user
                password_secret: SMTP_PASSWORD
            """ % self.mail.url())
        res = self.runbook("""
            step("mail", function()
              notify.email{ to = "oncall@example.com", subject = "auth", body = "hi" }
            end)
            """, env={"SMTP_PASSWORD": SMTP_PASS})
        self.assertExit(res, 0)
        m, _ = self.message()
        self.assertEqual(m["auth"]["user"], "rb-user")
        self.assertEqual(m["auth"]["password"], SMTP_PASS)
        self.assertEqual(m["from"], "runbook@example.com")
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_wrong_password_and_rejected_recipient_raise(self):
        self.mail = self.smtp(require_auth="rb-user:right")
        res = self.runbook("""
            step("wrong password", { continue_on_error = true }, function()
              notify.email{ smtp = M, from = "a@example.com", to = "b@example.com",
                            username = "rb-user", password = %s, subject = "s", body = "b" }
            end)
            step("rejected", function()
              notify.email{ smtp = M, from = "a@example.com", to = "reject-me@example.com",
                            username = "rb-user", password = "right", subject = "s", body = "b" }
            end)
            """ % lua_str(SMTP_PASS))
        self.assertExit(res, 1)
        errors = [a.get("error") or "" for a in self.actions(primitive="notify")]
        self.assertEqual(len(errors), 2)
        self.assertTrue(all(e.startswith("notify email: ") or "notify email: " in e
                            for e in errors), errors)
        self.assertEqual(self.mail.entries(), [])
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_starttls_required_with_cacert(self):
        self.mail = self.smtp(tls=True)
        ca = self.certs()["ca"]
        res = self.runbook("""
            step("mail", function()
              notify.email{ smtp = M, from = "a@example.com", to = "b@example.com",
                            subject = "over tls", body = "b", starttls = true, cacert = %s }
            end)
            """ % lua_str(ca))
        self.assertExit(res, 0)
        m, msg = self.message()
        self.assertTrue(m["tls"], "the message went over STARTTLS")
        self.assertEqual(str(msg["Subject"]), "over tls")

    def test_starttls_required_but_not_offered_fails(self):
        res = self.runbook("""
            step("mail", function()
              notify.email{ smtp = M, from = "a@example.com", to = "b@example.com",
                            subject = "s", body = "b", starttls = true }
            end)
            """)
        self.assertExit(res, 1)
        self.assertIn("notify email: ", res.all)
        self.assertEqual(self.mail.entries(), [])

    def test_misuse(self):
        res = self.runbook("""
            local function err(t) local ok, e = pcall(notify.email, t); assert(not ok); return tostring(e) end
            step("misuse", function()
              out({
                err({ smtp = M, to = "b@x.org", subject = "no from" }),
                err({ smtp = M, from = "a@x.org", subject = "no to" }),
                err({ smtp = "http://x", from = "a@x.org", to = "b@x.org" }),
                err({ smtp = M, from = "a@x.org\\r\\nBcc: evil@x.org", to = "b@x.org" }),
                err({ smtp = M, from = "a@x.org", to = "not an address" }),
                err({ from = "a@x.org", to = "b@x.org" }),
              })
            end)
            """)
        self.assertExit(res, 0)
        e = res.data[0]
        self.assertIn("no sender", e[0])
        self.assertIn("no recipient", e[1])
        self.assertIn("must be an smtp:// or smtps:// URL", e[2])
        self.assertIn("must be one line", e[3])
        self.assertIn("bad address in to", e[4])
        self.assertIn("no SMTP server", e[5])
        self.assertEqual(self.mail.entries(), [])


# ---- config defaults, --env, dry-run, secrets -----------------------------------------

class ConfigAndModes(NotifyCase):
    def write_config(self):
        self.write("secrets.yaml", "PD_KEY: %s\n" % PD_KEY)
        self.write("runbook.yaml", """
            secrets_file: secrets.yaml
            notify:
              slack: { webhook_secret: SLACK_WEBHOOK, channel: "#ops" }
              pagerduty: { url: "%(b)s/v2/enqueue", routing_key_secret: PD_KEY, source: "rb-host" }
              email: { smtp: "%(m)s", from: "runbook@example.com", username: rb,
                       password_secret: SMTP_PASSWORD }
            environments:
              staging:
                notify:
                  slack: { webhook: "%(b)s/staging/slack" }
                  pagerduty: { url: "%(b)s/staging/pd" }
            """ % {"b": self.srv.base, "m": self.mail.url()})

    ALL_FOUR = """
        step("notify", function()
          local s = notify.slack{ text = "deploy done" }
          local p = notify.pagerduty{ summary = "api down", severity = "critical", dedup_key = "k1" }
          local e = notify.email{ to = "oncall@example.com", subject = "deploy done", body = "ok" }
          local w = notify.webhook(B .. "/hook", { event = "deploy" },
                                   { headers = { Authorization = "Bearer " .. %s } })
          out({ s.status, p.status, e.status, w.status, s.dry_run or false, p.dry_run or false,
                e.dry_run or false, w.dry_run or false, p.dedup_key })
        end)
        """ % lua_str(API_KEY)

    def notify_env(self):
        return {"SLACK_WEBHOOK": self.srv.base + SLACK_PATH, "SMTP_PASSWORD": SMTP_PASS}

    def test_defaults_from_runbook_yaml(self):
        self.write_config()
        res = self.runbook(self.ALL_FOUR, env=self.notify_env())
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[200, 202, 250, 200, False, False, False, False,
                                     "srv-dedup-1"]])
        self.assertEqual(self.posted(SLACK_PATH), [{"text": "deploy done", "channel": "#ops"}])
        self.assertEqual(self.posted("/v2/enqueue"), [
            {"routing_key": PD_KEY, "event_action": "trigger", "dedup_key": "k1",
             "payload": {"summary": "api down", "severity": "critical", "source": "rb-host"}}])
        mails = self.mail.wait_requests(1)
        self.assertEqual(mails[0]["from"], "runbook@example.com")
        self.assertEqual(mails[0]["auth"]["password"], SMTP_PASS)
        self.assertIn('notify slack #ops: "deploy done"', res.out)
        self.assertNoSecrets(res.all, "output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_env_section_overrides_key_by_key(self):
        self.write_config()
        res = self.runbook(self.ALL_FOUR, "--env", "staging", env=self.notify_env())
        self.assertExit(res, 0)
        self.assertEqual(self.srv.requests(path=SLACK_PATH), [])
        self.assertEqual(self.posted("/staging/slack"), [{"text": "deploy done",
                                                          "channel": "#ops"}])
        self.assertEqual(self.srv.requests(path="/v2/enqueue"), [])
        pd = self.posted("/staging/pd")
        self.assertEqual(pd[0]["routing_key"], PD_KEY, "the routing key still comes from the top")
        self.assertEqual(len(self.mail.wait_requests(1)), 1)

    def test_call_arguments_beat_config(self):
        self.write_config()
        res = self.runbook("""
            step("notify", function()
              notify.slack{ webhook = B .. "/staging/slack", channel = "#direct", text = "x" }
            end)
            """, env=self.notify_env())
        self.assertExit(res, 0)
        self.assertEqual(self.posted("/staging/slack"), [{"text": "x", "channel": "#direct"}])

    def test_missing_secret_is_named(self):
        self.write_config()
        res = self.runbook("""
            step("notify", function() notify.slack{ text = "x" } end)
            """, drop_env=("SLACK_WEBHOOK",))
        self.assertExit(res, 1)
        self.assertIn("SLACK_WEBHOOK", res.all)
        self.assertEqual(self.srv.requests(), [])

    def test_bad_config_shape(self):
        self.write("runbook.yaml", "notify:\n  slack: \"http://x\"\n")
        res = self.runbook("""
            step("notify", function() notify.slack{ text = "x" } end)
            """)
        self.assertExit(res, 2)  # refused as the config loads, with its line
        self.assertIn("runbook.yaml:2: notify.slack must be a mapping, got string", res.all)

    def test_missing_endpoints_dry_run_warns_and_live_fails_sending_nothing(self):
        # the receivers exist (the PagerDuty URL and the SMTP server are set),
        # but the routing key, the Slack webhook and the sender are not: a
        # dry-run goes on with stand-ins and says a live run would fail; a
        # live run fails, and no stand-in ever reaches a receiver
        self.write("runbook.yaml", """
            notify:
              slack: { channel: "#ops" }
              pagerduty: { url: "%s/v2/enqueue" }
              email: { smtp: "%s" }
            """ % (self.srv.base, self.mail.url()))
        calls = {
            "slack": ('notify.slack{ text = "disk full" }',
                      "notify.slack: no webhook configured (notify.slack.webhook_secret in "
                      "runbook.yaml)", "notify.slack: no webhook: pass webhook = URL"),
            "pagerduty": ('notify.pagerduty{ summary = "disk full" }',
                          "notify.pagerduty: no routing key configured",
                          "notify.pagerduty: no routing_key"),
            "email": ('notify.email{ to = "oncall@example.com", subject = "disk full" }',
                      "notify.email: no sender configured (notify.email.from)",
                      "notify.email: no sender"),
        }
        res = self.runbook('step("page", function()\n%s\nend)\n'
                           % "\n".join(c[0] for c in calls.values()), "--dry-run")
        self.assertExit(res, 0)
        warned = [l for l in res.all.splitlines() if l.endswith(": a live run would fail here")]
        for _, warning, _ in calls.values():
            self.assertTrue(any(warning in l for l in warned), (warning, warned))
        self.assertEqual(len(warned), 3, warned)
        self.assertIn('would: notify slack #ops: "disk full"', res.out)
        self.assertEqual(len(self.actions(primitive="notify")), 3)
        for name, (call, _, error) in calls.items():
            res = self.runbook('step("page", function() %s end)' % call)
            self.assertExit(res, 1, name)
            self.assertIn(error, res.all)
            self.assertNotIn("a live run would fail here", res.all)
        self.assertEqual(self.srv.requests(), [], "a stand-in reached the receivers")
        self.assertEqual(self.mail.entries(), [], "a stand-in sent mail")

    def test_env_section_of_the_wrong_shape_is_named(self):
        self.write("runbook.yaml", """
            environments:
              staging:
                notify:
                  slack: "http://x"
            """)
        res = self.runbook('step("n", function() notify.slack{ text = "x" } end)',
                           "--env", "staging")
        self.assertExit(res, 2)
        self.assertIn("runbook.yaml:4: environments.staging.notify.slack must be a mapping, got "
                      "string", res.all)

    def test_dry_run_delivers_nothing_and_shows_the_messages(self):
        self.write_config()
        res = self.runbook(self.ALL_FOUR, "--dry-run", env=self.notify_env())
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[200, 202, 250, 200, True, True, True, True, "k1"]])
        self.assertEqual(self.srv.requests(), [], "dry-run reached the HTTP receivers")
        self.assertEqual(self.mail.entries(), [], "dry-run sent mail")
        for words in ('would: notify slack #ops: "deploy done"',
                      'would: notify pagerduty trigger critical: "api down"',
                      'would: notify email oncall@example.com: "deploy done"',
                      'would: notify webhook 127.0.0.1:%d: {"event":"deploy"}' % self.srv.port):
            self.assertIn(words, res.out)
        acts = self.actions(primitive="notify")
        self.assertEqual(len(acts), 4)
        self.assertTrue(all(a["simulated"] and a["class"] == "mutate" for a in acts))
        self.assertNoSecrets(res.all, "dry-run output")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_dry_run_with_literal_secrets_and_readonly_refused(self):
        # readonly = true cannot make a notification run in a rehearsal: it
        # is no option of notify's, so it raises (strict calls) and sends nothing
        res = self.runbook("""
            step("notify", function()
              local ok, e = pcall(notify.slack, { webhook = B .. %s, text = "x", readonly = true })
              out(tostring(e))
              notify.slack{ webhook = B .. %s, text = "x" }
              notify.pagerduty{ url = B .. "/v2/enqueue", routing_key = %s, summary = "y" }
            end)
            """ % (lua_str(SLACK_PATH), lua_str(SLACK_PATH), lua_str(PD_KEY)),
            "--dry-run", "--output", "json")
        self.assertExit(res, 0)
        self.assertIn("unknown option 'readonly' for notify.slack", res.data[0])
        self.assertEqual(self.srv.requests(), [])
        events = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        acts = [e for e in events if e.get("event") == "action" and e.get("primitive") == "notify"]
        self.assertEqual(len(acts), 2)
        self.assertTrue(all(a["simulated"] for a in acts))
        self.assertIn("****", json.dumps(acts[0]["args"]))
        self.assertNoSecrets(res.all, "--output json")
        self.assertNoSecrets(self.db_bytes(), "the audit db")

    def test_json_output_and_export_live(self):
        self.write_config()
        res = self.runbook(self.ALL_FOUR, "--output", "json", env=self.notify_env())
        self.assertExit(res, 0)
        self.assertNoSecrets(res.all, "--output json")
        exp = self.rb("audit", "export", "--format", "jsonl", "--audit", self.audit)
        self.assertExit(exp, 0)
        self.assertNoSecrets(exp.out, "audit export")
        notif = [json.loads(l) for l in exp.out.splitlines()
                 if json.loads(l).get("primitive") == "notify"]
        self.assertEqual([n["verb"] for n in notif], ["slack", "pagerduty", "email", "webhook"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
