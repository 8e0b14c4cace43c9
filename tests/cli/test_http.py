"""http.* (SPEC §3, §4, §5; docs/http-contract.md) against real servers on
loopback (tests/fixtures/httpd.py): every test asserts what reached the
server -- its request log -- as well as what the runbook saw."""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import sys
import textwrap
import time
import unittest

from rbtest import FIXTURES, RunbookTestCase, lua_str

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, FIXTURES)
import httpd as fixture  # noqa: E402  (large_body, chunk_body)

sys.path.remove(FIXTURES)


class HttpCase(RunbookTestCase):
    """self.srv: a fixture server; self.runbook(body, flags...) runs a runbook
    whose preamble defines B (the server's base URL) and out(x), which prints
    one JSON line that the test reads back as res.data[i]."""

    def setUp(self):
        super().setUp()
        self.srv = self.httpd()

    def head(self, base=None):
        return "local B = %s\n" % lua_str(base or self.srv.base)

    def runbook_file(self, body, name="t/http", base=None):
        self._file_n = getattr(self, "_file_n", 0) + 1
        return self.write("http-%d.lua" % self._file_n,
                          self.runbook_text(body, name, self.head(base)), dedent=False)

    def runbook(self, body, *flags, name="t/http", base=None, **kw):
        return self.run_body(body, *flags, name=name, head=self.head(base), **kw)

    def line_of(self, path, marker):
        """1-based line number of the line containing marker in path."""
        for i, l in enumerate(self.read(path).splitlines(), 1):
            if marker in l:
                return i
        self.fail("%r not in %s" % (marker, path))

    def http_actions(self):
        return self.actions(primitive="http")


# ---- methods, query, headers, bodies --------------------------------------------

class Requests(HttpCase):
    def test_get_with_query_and_headers(self):
        res = self.runbook("""
            step("get", function()
              local r = http.get(B .. "/echo", {
                query = { q = "up == 0", name = "a&b=c", utf = "é/ü", n = 5 },
                headers = { ["X-Trace"] = "abc-123", Accept = "application/json" },
              })
              local keys = {}
              for k in pairs(r.headers) do keys[#keys + 1] = k end
              table.sort(keys)
              out({ status = r.status, ok = r.ok, ctype = r.headers["content-type"],
                    time = r.time, url = r.url, method = r:json().method,
                    bodytype = type(r.body), hasjson = type(r.json), keys = keys })
              local slow = http.get(B .. "/delay/300")
              out({ time = slow.time })
            end)
            """)
        self.assertExit(res, 0)
        (req,) = self.srv.requests("/echo")
        self.assertEqual(req["method"], "GET")
        self.assertEqual(req["args"], {"q": "up == 0", "name": "a&b=c", "utf": "é/ü", "n": "5"})
        self.assertNotIn(" ", req["query"], "the query is not percent-encoded: " + req["query"])
        self.assertEqual(req["headers"]["x-trace"], "abc-123")
        self.assertEqual(req["headers"]["accept"], "application/json")
        self.assertRegex(req["headers"]["user-agent"], r"^runbook/")
        self.assertEqual(req["body_len"], 0)
        r, slow = res.data
        self.assertEqual(r["status"], 200)
        self.assertIs(r["ok"], True)
        for k in ("content-type", "content-length", "server", "date"):
            self.assertIn(k, r["keys"])
        self.assertEqual(r["keys"], [k.lower() for k in r["keys"]], "header names are lower-case")
        self.assertGreaterEqual(slow["time"], 0.28, "time is the request's duration in seconds")
        self.assertLess(slow["time"], 5)
        self.assertEqual(r["ctype"], "application/json")
        self.assertEqual(r["method"], "GET")
        self.assertIsInstance(r["time"], (int, float))
        self.assertGreaterEqual(r["time"], 0)
        self.assertLess(r["time"], 10)
        self.assertTrue(r["url"].startswith(self.srv.url("/echo?")), r["url"])
        self.assertEqual(r["hasjson"], "function")

    def test_every_method_and_body_form(self):
        res = self.runbook("""
            step("methods", function()
              local rs = {}
              rs.head = http.head(B .. "/json")
              rs.options = http.options(B .. "/echo")
              rs.delete = http.delete(B .. "/echo?id=7")
              rs.post_str = http.post(B .. "/echo", "raw body\\nline 2")
              rs.post_none = http.post(B .. "/echo")
              rs.put_opts = http.put(B .. "/echo", { body = "<a/>", headers = { ["Content-Type"] = "application/xml" } })
              rs.patch_json = http.patch(B .. "/echo", { json = { replicas = 3, name = "x", tags = { "a", "b" } } })
              rs.req = http.request{ method = "post", url = B .. "/echo", json = { deep = { k = true } },
                                     headers = { ["Content-Type"] = "application/merge-patch+json" } }
              rs.req_get = http.request{ url = B .. "/echo", query = { a = 1 } }
              rs.binary = http.put(B .. "/echo", "a\\0b\\255c")
              local o = {}
              for k, r in pairs(rs) do o[k] = { status = r.status, len = #r.body } end
              out(o)
            end)
            """)
        self.assertExit(res, 0)
        reqs = self.srv.requests()
        self.assertEqual([r["method"] for r in reqs],
                         ["HEAD", "OPTIONS", "DELETE", "POST", "POST", "PUT", "PATCH", "POST",
                          "GET", "PUT"])
        head, options, delete, post_str, post_none, put, patch, req, req_get, binary = reqs
        self.assertEqual(delete["args"], {"id": "7"})
        self.assertEqual(post_str["body"], "raw body\nline 2")
        self.assertEqual(post_none["body_len"], 0)
        self.assertEqual(put["body"], "<a/>")
        self.assertEqual(put["headers"]["content-type"], "application/xml")
        self.assertEqual(patch["headers"]["content-type"], "application/json")
        self.assertEqual(json.loads(patch["body"]), {"replicas": 3, "name": "x", "tags": ["a", "b"]})
        self.assertEqual(req["headers"]["content-type"], "application/merge-patch+json",
                         "an explicit Content-Type must win over json's default")
        self.assertEqual(json.loads(req["body"]), {"deep": {"k": True}})
        self.assertEqual(req_get["args"], {"a": "1"})
        self.assertEqual(binary["body_len"], 5, "a body with NUL/high bytes lost bytes")
        for r in reqs:
            self.assertNotIn("expect", r["headers"], "no Expect: 100-continue round trip")
        (o,) = res.data
        self.assertEqual(o["head"], {"status": 200, "len": 0}, "HEAD has no body")
        for k in ("options", "delete", "post_str", "post_none", "put_opts", "patch_json", "req",
                  "req_get", "binary"):
            self.assertEqual(o[k]["status"], 200, k)

    def test_response_json_and_bad_json(self):
        res = self.runbook("""
            step("json", function()
              local j = http.get(B .. "/json"):json()
              local ok, err = pcall(function() return http.get(B .. "/status/200"):json() end)
              out({ name = j.name, items = j.items, ok = j.ok, bad_ok = ok, bad_err = tostring(err) })
            end)
            """)
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertEqual((o["name"], o["items"], o["ok"]), ("runbook", [1, 2, 3], True))
        self.assertIs(o["bad_ok"], False, "r:json() on a non-JSON body must raise")

    def test_any_status_is_a_result(self):
        res = self.runbook("""
            step("statuses", function()
              local o = {}
              for _, c in ipairs({ 201, 204, 301, 404, 418, 500, 503 }) do
                local r = http.get(B .. "/status/" .. c, { redirects = 0 })
                o[#o + 1] = { status = r.status, ok = r.ok, body = r.body }
              end
              out(o)
              local d = http.delete(B .. "/delay/10/500")
              out({ status = d.status, ok = d.ok })
            end)
            """)
        self.assertExit(res, 0)
        o, d = res.data
        self.assertEqual([x["status"] for x in o], [201, 204, 301, 404, 418, 500, 503])
        self.assertEqual([x["ok"] for x in o], [True, True, True, False, False, False, False])
        self.assertEqual(o[3]["body"], "status 404")
        self.assertEqual(o[1]["body"], "")
        self.assertEqual(d, {"status": 500, "ok": False})
        self.assertEqual(len(self.srv.requests("/status/*")), 7, "retries=0 by default")
        self.assertEqual(set(self.step_status().values()), {"ok"})
        acts = self.http_actions()
        self.assertEqual(len(acts), 8)

    def test_large_and_chunked_bodies_arrive_intact(self):
        out_large, out_chunked = self.path("large.bin"), self.path("chunked.bin")
        res = self.runbook("""
            step("large", function()
              local r = http.get(B .. "/large/5000000")
              fs.write(%s, r.body)
              out({ len = #r.body, cl = r.headers["content-length"] })
              local c = http.get(B .. "/chunked/500?size=1000")
              fs.write(%s, c.body)
              out({ len = #c.body, te = c.headers["transfer-encoding"] })
              local big = string.rep("0123456789abcdef", 2 * 65536 + 3)  -- 2 MiB + 48
              local e = http.post(B .. "/echo", big)
              out({ echoed = e:json().body_len })
            end)
            """ % (lua_str(out_large), lua_str(out_chunked)))
        self.assertExit(res, 0)
        large, chunked, echoed = res.data
        self.assertEqual(large, {"len": 5000000, "cl": "5000000"})
        with open(out_large, "rb") as f:
            got = f.read()
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         hashlib.sha256(fixture.large_body(5000000)).hexdigest())
        want = b"".join(fixture.chunk_body(i, 1000) for i in range(500))
        self.assertEqual(chunked, {"len": len(want), "te": "chunked"})
        with open(out_chunked, "rb") as f:
            self.assertEqual(f.read(), want)
        self.assertEqual(echoed, {"echoed": 2 * 1024 * 1024 + 48})
        (post,) = self.srv.requests("/echo")
        self.assertEqual(post["body_len"], 2 * 1024 * 1024 + 48)

    def test_sequential_requests_reuse_one_connection(self):
        res = self.runbook("""
            step("one", function()
              for i = 1, 4 do http.get(B .. "/status/200?i=" .. i) end
              http.post(B .. "/echo", "x")
            end)
            step("two", function()
              http.get(B .. "/json")
              http.head(B .. "/json")
            end)
            """)
        self.assertExit(res, 0)
        reqs = self.srv.requests()
        self.assertEqual(len(reqs), 7)
        conns = {r["conn"] for r in reqs}
        self.assertEqual(len(conns), 1, "keep-alive: every request should reuse the first "
                         "connection, client ports %s" % [r["conn"] for r in reqs])


# ---- redirects, timeouts, transport errors, retries ----------------------------

class Transport(HttpCase):
    def test_redirects_followed_and_bounded(self):
        res = self.runbook("""
            step("follow", function()
              local r = http.get(B .. "/redirect/3")
              out({ status = r.status, body = r.body, url = r.url })
              local n = http.get(B .. "/redirect/2", { redirects = 0 })
              out({ status = n.status, location = n.headers.location, url = n.url })
              local ok, err = pcall(http.get, B .. "/redirect/5", { redirects = 2 })
              out({ ok = ok, err = tostring(err) })
            end)
            """)
        self.assertExit(res, 0)
        follow, none, bounded = res.data
        self.assertEqual(follow["status"], 200)
        self.assertEqual(follow["body"], "done")
        self.assertEqual(follow["url"], self.srv.url("/redirect/0"), "url is the effective URL")
        self.assertEqual(none, {"status": 302, "location": "/redirect/1",
                                "url": self.srv.url("/redirect/2")})
        self.assertIs(bounded["ok"], False, "redirects = 2 must stop a chain of 5")
        self.assertIn("http GET %s" % self.srv.url("/redirect/5"), bounded["err"])
        self.assertIn("redirect", bounded["err"])
        paths = [r["path"] for r in self.srv.requests()]
        self.assertEqual(paths[:4], ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"])
        self.assertEqual(paths[4:5], ["/redirect/2"])
        self.assertEqual(paths[5:], ["/redirect/5", "/redirect/4", "/redirect/3"],
                         "the first request and 2 redirects, then stop")

    def test_post_redirect_does_not_send_a_bodiless_post(self):
        srv = self.httpd(routes={"/r307": {"status": 307, "headers": {"Location": "/echo"}},
                                 "/r303": {"status": 303, "headers": {"Location": "/echo"}}})
        res = self.runbook("""
            step("post and follow", function()
              local a = http.post(B .. "/redirect/1", "payload-302")
              local b = http.post(B .. "/r307", "payload-307")
              local c = http.post(B .. "/r303", { json = { k = 303 } })
              out({ a.status, b.status, c.status })
            end)
            """, base=srv.base)
        self.assertExit(res, 0)
        self.assertEqual(res.data, [[200, 200, 200]])
        reqs = srv.requests()
        self.assertEqual([(r["method"], r["path"]) for r in reqs[::2]],
                         [("POST", "/redirect/1"), ("POST", "/r307"), ("POST", "/r303")])
        after302, after307, after303 = reqs[1], reqs[3], reqs[5]
        # a 302 is followed as browsers and curl do (GET, no body) or as a 307
        # (the same POST again, body and all); never a POST without its body
        self.assertIn((after302["method"], after302["body"]),
                      [("GET", ""), ("POST", "payload-302")],
                      "302 after POST: %s %s with body %r" % (
                          after302["method"], after302["path"], after302["body"]))
        self.assertEqual((after307["method"], after307["body"]), ("POST", "payload-307"),
                         "307 keeps the method and the body")
        self.assertEqual((after303["method"], after303["body_len"]), ("GET", 0),
                         "303 See Other is a GET")

    def test_step_timeout_cancels_a_request_in_flight(self):
        res = self.runbook("""
            step("stuck", { timeout = 1 }, function()
              http.get(B .. "/hang?step=1", { timeout = 60 })
            end)
            """)
        self.assertExit(res, 1)
        self.assertEqual(len(self.srv.requests("/hang")), 1)
        self.assertIn("http GET %s" % self.srv.url("/hang?step=1"), res.all)
        self.assertIn("timed out after 1 s", res.all)
        self.assertEqual(self.step_status(), {"stuck": "failed"})
        self.assertEqual(self.run_record()["outcome"], "failed")

    def test_sigint_stops_a_request_in_flight(self):
        f = self.runbook_file("""
            step("stuck", function()
              http.get(B .. "/hang?sig=1", { timeout = 60 })
            end)
            """)
        p = self.spawn("run", f, "--audit", self.audit)
        self.wait_for(lambda: self.srv.requests("/hang"), 20, "the request to arrive", proc=p)
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        try:
            p.wait(10)
        except Exception:
            self.fail("SIGINT did not stop a runbook waiting on an HTTP response")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(p.returncode, 130, self.spawned_output(p))
        self.assertEqual(self.run_record()["outcome"], "interrupted")

    def test_failing_request_inside_parallel_fails_the_step(self):
        url = "http://127.0.0.1:%d/down" % self.closed_port()
        res = self.runbook("""
            step("fan", function()
              parallel({ B .. "/json", %s, B .. "/status/500" }, function(u)
                return http.get(u)  -- FAILS-HERE
              end)
            end)
            """ % lua_str(url))
        self.assertExit(res, 1)
        line = self.line_of(res.file, "FAILS-HERE")
        self.assertRegex(res.all, r"item 2: \S*%s:%d: http GET %s: connection refused" % (
            re.escape(os.path.basename(res.file)), line, re.escape(url)))
        self.assertEqual(len(self.srv.requests()), 2, "the other items still ran")
        self.assertEqual(self.step_status(), {"fan": "failed"})

    def test_timeout_against_a_hanging_server(self):
        res = self.runbook("""
            step("hang", function()
              local t0 = now()
              local ok, err = pcall(http.get, B .. "/hang", { timeout = 1 })
              out({ ok = ok, err = tostring(err), took = now() - t0 })
            end)
            step("hang fails the step", function()
              http.get(B .. "/hang?again=1", { timeout = 0.5 })  -- FAILS-HERE
            end)
            """)
        self.assertExit(res, 1)
        (o,) = res.data
        self.assertIs(o["ok"], False)
        self.assertIn("http GET %s: timed out after 1" % self.srv.url("/hang"), o["err"])
        self.assertRegex(o["err"], r"timed out after 1(\.0)? s")
        self.assertGreaterEqual(o["took"], 0.9)
        self.assertLess(o["took"], 5)
        self.assertEqual(len(self.srv.requests("/hang")), 2, "the request reached the server")
        line = self.line_of(res.file, "FAILS-HERE")
        self.assertIn("%s:%d: http GET %s: timed out after 0.5 s" % (
            os.path.basename(res.file), line, self.srv.url("/hang?again=1")), res.all)
        self.assertEqual(self.step_status(),
                         {"hang": "ok", "hang fails the step": "failed"})

    def test_connect_timeout(self):
        # a listening socket whose accept queue is full: the SYN is dropped,
        # so connect() hangs until the client's connect timeout
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        self.addCleanup(lst.close)
        port = lst.getsockname()[1]
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self.addCleanup(c.close)
        url = "http://127.0.0.1:%d/x" % port
        res = self.runbook("""
            step("connect", function()
              local t0 = now()
              local ok, err = pcall(http.get, %s, { connect_timeout = 1, timeout = 20 })
              out({ ok = ok, err = tostring(err), took = now() - t0 })
            end)
            """ % lua_str(url))
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertIs(o["ok"], False)
        self.assertLess(o["took"], 5, "connect_timeout = 1 was not honoured")
        self.assertGreaterEqual(o["took"], 0.9)
        self.assertIn("http GET %s: " % url, o["err"])
        self.assertIn("timed out", o["err"])
        self.assertIn("1.0 s", o["err"], "the message should name the limit that fired "
                      "(connect_timeout 1 s), not the total timeout")

    def test_connection_refused_names_method_url_and_line(self):
        port = self.closed_port()
        url = "http://127.0.0.1:%d/healthz" % port
        res = self.runbook("""
            step("caught", function()
              local ok, err = pcall(http.post, %(url)s, { json = { a = 1 } })
              out({ ok = ok, err = tostring(err) })
              ok, err = pcall(http.get, "http://no-such-host.invalid/x", { connect_timeout = 2 })
              out({ ok = ok, err = tostring(err) })
            end)
            step("refused", function()
              log.info("before")
              http.get(%(url)s)  -- FAILS-HERE
              log.info("never")
            end)
            step("not reached", function() end)
            """ % dict(url=lua_str(url)))
        self.assertExit(res, 1)
        post, dns = res.data
        self.assertIs(post["ok"], False)
        self.assertIn("http POST %s: connection refused" % url, post["err"])
        self.assertIs(dns["ok"], False)
        self.assertIn("http GET http://no-such-host.invalid/x: could not resolve host", dns["err"])
        line = self.line_of(res.file, "FAILS-HERE")
        self.assertIn("%s:%d: http GET %s: connection refused" % (
            os.path.basename(res.file), line, url), res.all)
        self.assertNotIn("never", res.all)
        self.assertEqual(self.step_status(), {"caught": "ok", "refused": "failed"})
        run = self.run_record()
        self.assertEqual(run["outcome"], "failed")
        failed = [a for a in self.http_actions() if a.get("target") == url]
        self.assertTrue(failed, self.http_actions())
        self.assertEqual(failed[-1].get("verb"), "GET")

    def test_check_false_returns_the_failure(self):
        # SPEC §4: "pcall or { check = false } opt out" of raising
        url = "http://127.0.0.1:%d/x" % self.closed_port()
        res = self.runbook("""
            step("unchecked", function()
              local ok, r = pcall(http.get, %s, { check = false })
              out({ raised = not ok, err = not ok and tostring(r) or nil,
                    ok = ok and r.ok, error = ok and r.error or nil })
            end)
            """ % lua_str(url))
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertIs(o["raised"], False, "check = false must not raise: %s" % o.get("err"))
        self.assertIs(o["ok"], False)
        self.assertIn("connection refused", o["error"])

    def test_retries_with_backoff_on_5xx(self):
        res = self.runbook("""
            step("retry", function()
              local r = http.get(B .. "/sequence/g/503,503,200", { retries = 2, backoff = 0.2 })
              out({ status = r.status, body = r.body })
              local r1 = http.get(B .. "/sequence/g1/503,502,200", { retries = 1, backoff = 0.05 })
              out({ status = r1.status })
              local d = http.delete(B .. "/sequence/d/429,200", { retries = 1, backoff = 0.05 })
              out({ status = d.status })
              local p = http.put(B .. "/sequence/put/504,200", { body = "x", retries = 1, backoff = 0.05 })
              out({ status = p.status })
            end)
            """)
        self.assertExit(res, 0)
        g, g1, d, p = res.data
        self.assertEqual(g["status"], 200)
        self.assertEqual(g["body"], "sequence g #3: 200")
        seq = self.srv.requests("/sequence/g/*")
        self.assertEqual(len(seq), 3, "two retries: three requests reached the server")
        gaps = [b["ts"] - a["ts"] for a, b in zip(seq, seq[1:])]
        self.assertGreaterEqual(gaps[0], 0.18, "backoff 0.2 s before the first retry: %s" % gaps)
        self.assertGreaterEqual(gaps[1], 0.38, "exponential: 0.4 s before the second: %s" % gaps)
        self.assertEqual(g1["status"], 502, "retries exhausted: the last answer is the result")
        self.assertEqual(len(self.srv.requests("/sequence/g1/*")), 2)
        self.assertEqual(d["status"], 200)
        self.assertEqual(len(self.srv.requests("/sequence/d/*")), 2, "DELETE is retried")
        self.assertEqual(p["status"], 200)
        put = self.srv.requests("/sequence/put/*")
        self.assertEqual(len(put), 2, "PUT is retried")
        self.assertEqual([x["body"] for x in put], ["x", "x"], "the retry resends the body")
        acts = [a for a in self.http_actions() if "/sequence/g/" in a.get("target", "")]
        self.assertEqual(len(acts), 1, "a retried request is one action")

    def test_post_is_not_retried_unless_retry_unsafe(self):
        res = self.runbook("""
            step("post", function()
              local p = http.post(B .. "/sequence/p/503,200", { body = "once", retries = 3, backoff = 0.05 })
              out({ status = p.status })
              local q = http.patch(B .. "/sequence/q/503,200", { body = "once", retries = 3, backoff = 0.05 })
              out({ status = q.status })
              local u = http.post(B .. "/sequence/u/503,503,200", { body = "again", retries = 3,
                                  backoff = 0.05, retry_unsafe = true })
              out({ status = u.status })
            end)
            """)
        self.assertExit(res, 0)
        p, q, u = res.data
        self.assertEqual(p["status"], 503)
        self.assertEqual(len(self.srv.requests("/sequence/p/*")), 1, "POST must not be retried")
        self.assertEqual(q["status"], 503)
        self.assertEqual(len(self.srv.requests("/sequence/q/*")), 1, "PATCH must not be retried")
        self.assertEqual(u["status"], 200)
        us = self.srv.requests("/sequence/u/*")
        self.assertEqual(len(us), 3, "retry_unsafe = true retries a POST")
        self.assertEqual({x["body"] for x in us}, {"again"})

    def test_retries_on_transport_errors(self):
        port = self.closed_port()
        url = "http://127.0.0.1:%d/x" % port
        res = self.runbook("""
            step("refused", function()
              local t0 = now()
              local ok, err = pcall(http.get, %s, { retries = 2, backoff = 0.2 })
              out({ ok = ok, err = tostring(err), took = now() - t0 })
            end)
            """ % lua_str(url))
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertIs(o["ok"], False)
        self.assertIn("http GET %s: connection refused" % url, o["err"])
        self.assertGreaterEqual(o["took"], 0.55, "two retries, 0.2 + 0.4 s of backoff")


# ---- TLS ------------------------------------------------------------------------

class Tls(HttpCase):
    def setUp(self):
        super().setUp()
        self.tls = self.httpd(tls=True)
        self.ca = self.certs()["ca"]

    def test_self_signed_rejected_by_default(self):
        url = self.tls.url("/json")
        res = self.runbook("""
            step("verify", function()
              local ok, err = pcall(http.get, B .. "/json")
              out({ ok = ok, err = tostring(err) })
              http.get(B .. "/json")  -- FAILS-HERE
            end)
            """, base=self.tls.base)
        self.assertExit(res, 1)
        (o,) = res.data
        self.assertIs(o["ok"], False)
        self.assertIn("http GET %s: certificate verify failed" % url, o["err"])
        self.assertEqual(self.tls.requests(), [], "no request may be sent over an unverified "
                         "connection")
        self.assertIn("%s:%d: http GET %s: certificate verify failed" % (
            os.path.basename(res.file), self.line_of(res.file, "FAILS-HERE"), url), res.all)

    def test_cacert_and_insecure_accept_it(self):
        localhost = "https://localhost:%d" % self.tls.port
        res = self.runbook("""
            step("trusted", function()
              local a = http.get(B .. "/json", { cacert = %(ca)s })
              local b = http.get(%(lh)s .. "/json", { cacert = %(ca)s })
              local c = http.post(B .. "/echo", { insecure = true, json = { x = 1 } })
              local d = http.request{ url = B .. "/status/201", insecure = true }
              out({ a = a.status, b = b.status, c = c.status, d = d.status, name = a:json().name })
            end)
            """ % dict(ca=lua_str(self.ca), lh=lua_str(localhost)), base=self.tls.base)
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertEqual(o, {"a": 200, "b": 200, "c": 200, "d": 201, "name": "runbook"})
        self.assertEqual([r["path"] for r in self.tls.requests()],
                         ["/json", "/json", "/echo", "/status/201"])
        self.assertEqual(json.loads(self.tls.requests("/echo")[0]["body"]), {"x": 1})


# ---- concurrency ------------------------------------------------------------------

class Concurrency(HttpCase):
    def test_parallel_gets_overlap(self):
        res = self.runbook("""
            step("fan out", function()
              local items = {}
              for i = 1, 10 do items[i] = i end
              local t0 = now()
              local rs = parallel(items, function(i) return http.get(B .. "/delay/2000?i=" .. i) end)
              local st = {}
              for i, r in ipairs(rs) do st[i] = r.status end
              out({ statuses = st, took = now() - t0 })
            end)
            """)
        self.assertExit(res, 0)
        (o,) = res.data
        self.assertEqual(o["statuses"], [200] * 10)
        reqs = self.srv.requests("/delay/2000")
        self.assertEqual(sorted(int(r["args"]["i"]) for r in reqs), list(range(1, 11)))
        ts = [r["ts"] for r in reqs]
        # one after the other they would arrive 2 s apart (each answer waits
        # 2 s): all ten arrived before the first answer could have been sent.
        # The delay is long so a loaded CI machine cannot blur the causality.
        self.assertLess(max(ts) - min(ts), 2.0, "all 10 requests should be in flight before "
                        "the first answer (2 s): arrivals spread over %.3f s" % (max(ts) - min(ts)))

    def test_get_all_order_errors_and_concurrency_bound(self):
        refused = "http://127.0.0.1:%d/nothing" % self.closed_port()
        res = self.runbook("""
            step("get_all", function()
              local rs = http.get_all({
                B .. "/delay/300/200?i=1",
                B .. "/status/201?i=2",
                %(refused)s,
                { url = B .. "/delay/50/202?i=4" },
                { method = "HEAD", url = B .. "/json?i=5" },
                B .. "/status/404?i=6",
              }, { concurrency = 4 })
              local o = {}
              for i, r in ipairs(rs) do o[i] = { status = r.status, err = r.error } end
              out({ n = #rs, r = o })
              local bounded = {}
              for i = 1, 6 do bounded[i] = B .. "/delay/300?b=" .. i end
              local t0 = now()
              local rb = http.get_all(bounded, { concurrency = 2 })
              out({ n = #rb, took = now() - t0 })
            end)
            """ % dict(refused=lua_str(refused)))
        self.assertExit(res, 0)
        first, bounded = res.data
        self.assertEqual(first["n"], 6)
        r = first["r"]
        self.assertEqual([x.get("status") for x in r], [200, 201, None, 202, 200, 404])
        self.assertIn("connection refused", r[2]["err"])
        self.assertIn(refused, r[2]["err"])
        for i in (0, 1, 3, 4, 5):
            self.assertNotIn("err", r[i])
        first_reqs = [x for x in self.srv.requests() if "i" in x["args"]]
        self.assertEqual(sorted(x["args"]["i"] for x in first_reqs), ["1", "2", "4", "5", "6"])
        # concurrency = 2 over six 300 ms requests: they arrive in three waves
        reqs = sorted(self.srv.requests("/delay/300"), key=lambda x: x["ts"])
        reqs = [x for x in reqs if "b" in x["args"]]
        self.assertEqual(len(reqs), 6)
        ts = [x["ts"] for x in reqs]
        self.assertGreaterEqual(ts[2] - ts[0], 0.25, "a third request started before the first "
                                "two finished: arrivals %s" % [round(t - ts[0], 3) for t in ts])
        self.assertGreaterEqual(ts[4] - ts[0], 0.5)
        self.assertGreaterEqual(bounded["took"], 0.85)

    def test_slow_endpoint_does_not_block_the_others(self):
        res = self.runbook("""
            step("mixed", function()
              local t0 = now()
              local done = {}
              parallel({ "slow", "a", "b", "c" }, function(name)
                if name == "slow" then
                  http.get(B .. "/delay/3000?slow=1")
                else
                  for k = 1, 3 do http.get(B .. "/delay/20?" .. name .. "=" .. k) end
                end
                done[name] = now() - t0
              end)
              out(done)
            end)
            """)
        self.assertExit(res, 0)
        (done,) = res.data
        (slow,) = [x for x in self.srv.requests("/delay/3000")]
        fast = self.srv.requests("/delay/20")
        self.assertEqual(len(fast), 9)
        for x in fast:  # every fast request was sent before the slow one answered
            self.assertLess(x["ts"], slow["ts"] + 3.0, "a fast request waited for the slow one")
        for name in "abc":
            self.assertLess(done[name], done["slow"], "the fast items finished at %s" % done)
        self.assertGreaterEqual(done["slow"], 2.9)

    def test_http_and_exec_overlap_in_parallel(self):
        marks = self.path("marks.txt")
        res = self.runbook("""
            step("both", function()
              parallel({ "exec", "h1", "h2" }, function(what)
                if what == "exec" then
                  exec{ "sh", "-c", "date +%%s.%%N >> " .. %(marks)s .. "; sleep 1; date +%%s.%%N >> " .. %(marks)s }
                else
                  http.get(B .. "/delay/200?w=" .. what)
                  http.get(B .. "/delay/200?w=" .. what .. "2")
                end
              end)
            end)
            """ % dict(marks=lua_str(marks)))
        self.assertExit(res, 0)
        start, end = [float(x) for x in self.lines(marks)]
        reqs = self.srv.requests("/delay/200")
        self.assertEqual(len(reqs), 4)
        for x in reqs:
            self.assertGreater(x["ts"], start - 0.05)
            self.assertLess(x["ts"], end, "http waited for the child process: request at "
                            "%+.3f s, sleep 1 ended at %+.3f s" % (x["ts"] - start, end - start))


# ---- modes, classification, audit --------------------------------------------------

class DryRun(HttpCase):
    BODY = """
        step("reads and writes", function()
          local g = http.get(B .. "/json")
          local h = http.head(B .. "/json?head=1")
          local o = http.options(B .. "/echo?opt=1")
          local p = http.post(B .. "/echo?m=post", { json = { replicas = 5 } })
          local u = http.put(B .. "/echo?m=put", "put-body-text")
          local pa = http.patch(B .. "/echo?m=patch", { body = string.rep("x", 300) })
          local d = http.delete(B .. "/echo?m=delete")
          local rq = http.request{ method = "POST", url = B .. "/echo?m=request", body = "req-body" }
          local ro = http.post(B .. "/echo?m=readonly", { readonly = true, body = "query-ish" })
          local rr = http.request{ method = "POST", url = B .. "/echo?m=readonly2", readonly = true, json = { q = 1 } }
          out({ g = g.status, gname = g:json().name, post = { ok = p.ok, dry = p.dry_run,
                status = p.status, body = p.body, json = p:json() },
                ro = { status = ro.status, dry = ro.dry_run or false, m = ro:json().method },
                rr = rr.status })
        end)
        """

    def test_dry_run_sends_no_mutating_request(self):
        res = self.runbook(self.BODY, "--dry-run")
        self.assertExit(res, 0)
        got = self.srv.requests()
        self.assertEqual([(r["method"], r["path"], r["query"]) for r in got],
                         [("GET", "/json", ""), ("HEAD", "/json", "head=1"),
                          ("OPTIONS", "/echo", "opt=1"), ("POST", "/echo", "m=readonly"),
                          ("POST", "/echo", "m=readonly2")],
                         "in dry-run only reads (and readonly = true) reach the server")
        u = self.srv.url
        self.assertIn('would: POST %s {"replicas":5}' % u("/echo?m=post"), res.out)
        self.assertIn("would: PUT %s put-body-text" % u("/echo?m=put"), res.out)
        self.assertIn("would: PATCH %s %s" % (u("/echo?m=patch"), "x" * 100), res.out)
        self.assertNotIn("x" * 301, res.out, "a long body preview is cut")
        self.assertIn("would: DELETE %s" % u("/echo?m=delete"), res.out)
        self.assertIn("would: POST %s req-body" % u("/echo?m=request"), res.out)
        self.assertNotIn("would: GET", res.out)
        self.assertNotIn("m=readonly", "\n".join(l for l in res.out.splitlines() if "would:" in l))
        (o,) = res.data
        self.assertEqual(o["g"], 200)
        self.assertEqual(o["gname"], "runbook")
        self.assertEqual(o["post"], {"ok": True, "dry": True, "status": 200, "body": ""})
        self.assertEqual(o["ro"], {"status": 200, "dry": False, "m": "POST"})
        self.assertEqual(o["rr"], 200)

        acts = self.http_actions()
        by = {(a["verb"], a["target"].split("?")[-1] if "?" in a["target"] else ""): a
              for a in acts}
        self.assertEqual(len(acts), 10, acts)
        for key, cls, sim in [(("GET", ""), "read", False), (("HEAD", "head=1"), "read", False),
                              (("OPTIONS", "opt=1"), "read", False),
                              (("POST", "m=post"), "mutate", True),
                              (("PUT", "m=put"), "mutate", True),
                              (("PATCH", "m=patch"), "mutate", True),
                              (("DELETE", "m=delete"), "mutate", True),
                              (("POST", "m=request"), "mutate", True),
                              (("POST", "m=readonly"), "read", False),
                              (("POST", "m=readonly2"), "read", False)]:
            self.assertIn(key, by, sorted(by))
            self.assertEqual(by[key]["class"], cls, key)
            self.assertIs(by[key]["simulated"], sim, key)
        self.assertEqual(self.run_record()["mode"], "dry-run")

    def test_get_all_in_dry_run(self):
        res = self.runbook("""
            step("batch", function()
              local rs = http.get_all({
                { method = "POST", url = B .. "/echo?m=post", json = { n = 1 } },
                B .. "/json",
                { method = "DELETE", url = B .. "/echo?m=delete" },
                { method = "POST", url = B .. "/echo?m=ro", readonly = true, body = "q" },
              })
              local o = {}
              for i, r in ipairs(rs) do o[i] = { status = r.status, dry = r.dry_run or false } end
              out(o)
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        # concurrent requests: the server sees them in any order
        self.assertEqual(sorted((r["method"], r["path"], r["query"]) for r in self.srv.requests()),
                         [("GET", "/json", ""), ("POST", "/echo", "m=ro")])
        (o,) = res.data
        self.assertEqual(o, [{"status": 200, "dry": True}, {"status": 200, "dry": False},
                             {"status": 200, "dry": True}, {"status": 200, "dry": False}])
        self.assertIn("would: POST %s" % self.srv.url("/echo?m=post"), res.out)
        self.assertIn("would: DELETE %s" % self.srv.url("/echo?m=delete"), res.out)

    def test_live_sends_everything_and_records_it(self):
        res = self.runbook(self.BODY)
        self.assertExit(res, 0)
        self.assertNotIn("would:", res.out)
        methods = [(r["method"], r["query"]) for r in self.srv.requests()]
        self.assertEqual(len(methods), 10, methods)
        self.assertIn(("PATCH", "m=patch"), methods)
        self.assertIn(("DELETE", "m=delete"), methods)
        self.assertEqual(json.loads(self.srv.requests()[3]["body"]), {"replicas": 5})
        acts = self.http_actions()
        self.assertEqual(len(acts), 10)
        for a in acts:
            self.assertIs(a["simulated"], False, a)
            self.assertEqual(a["primitive"], "http")
        cls = [a["class"] for a in acts]
        self.assertEqual(cls, ["read"] * 3 + ["mutate"] * 5 + ["read"] * 2)
        self.assertEqual({a.get("status") for a in acts}, {"ok"}, acts)


# ---- secrets ------------------------------------------------------------------------

TOKEN = "tok-HTTP-9931-bearer-Qz7"
PASSWORD = "pw-HTTP-4412-basic-Lm2"
PARAM_PW = "pw-HTTP-param-7781-Vx9"


class Secrets(HttpCase):
    def setUp(self):
        super().setUp()
        self.env["API_TOKEN"] = TOKEN
        self.rbfile = self.runbook_file("""
            runbook { name = "t/http-secrets", params = { pw = { secret = true } } }
            step("authenticate", function()
              local tok = secret("API_TOKEN")
              local b = http.get(B .. "/auth/bearer/" .. tok, { auth = { bearer = tok } })
              check(b.status == 200, "bearer rejected: %%d", b.status)
              local e = http.post(B .. "/echo", { auth = { bearer = tok }, json = { token = tok } })
              print("echo says: " .. e.body)
              local u = http.get(B .. "/echo?who=basic", { auth = { user = "ops", password = %(pw)s } })
              print("basic echo: " .. u.body)
              local p = http.get(B .. "/auth/basic/ops/" .. params.pw, { auth = { user = "ops", password = params.pw } })
              check(p.status == 200, "basic rejected: %%d", p.status)
              log.info("used %%s and %%s", tok, params.pw)
              local h = http.get(B .. "/echo?hdr=1", { headers = { Authorization = "Bearer " .. tok } })
              print(h.body)
            end)
            step("fail with it", function()
              http.get(%(refused)s .. "/x?token=" .. secret("API_TOKEN"), { auth = { bearer = secret("API_TOKEN") } })
            end)
            """ % dict(pw=lua_str(PASSWORD), refused=lua_str(
            "http://127.0.0.1:%d" % self.closed_port())), name="ignored")
        # the preamble declared a runbook already: keep only the second declaration
        text = self.read(self.rbfile).split("\n", 1)[1]
        self.write(self.rbfile, text, dedent=False)

    def assertClean(self, text, where):
        for s in (TOKEN, PASSWORD, PARAM_PW):
            self.assertNotIn(s, text, "a secret leaked into " + where)

    def check_server_got_them(self):
        bearer = self.srv.requests("/auth/bearer/*")
        self.assertEqual(len(bearer), 1)
        self.assertEqual(bearer[0]["headers"]["authorization"], "Bearer " + TOKEN)
        basic = self.srv.requests("/echo")
        auths = [r["headers"].get("authorization") for r in basic]
        self.assertIn("Basic " + base64.b64encode(("ops:" + PASSWORD).encode()).decode(), auths)
        (pb,) = self.srv.requests("/auth/basic/*")
        self.assertEqual(pb["headers"]["authorization"],
                         "Basic " + base64.b64encode(("ops:" + PARAM_PW).encode()).decode())

    def audit_bytes(self):
        import glob
        data = b""
        for f in glob.glob(self.audit + "*"):
            with open(f, "rb") as fh:
                data += fh.read()
        return data.decode("latin-1")

    def test_never_in_output_or_audit(self):
        res = self.run_rb(self.rbfile, "--param", "pw=" + PARAM_PW)
        self.assertExit(res, 1)
        self.assertIn("connection refused", res.all)
        self.assertIn("****", res.all)
        self.check_server_got_them()
        self.assertClean(res.out, "stdout")
        self.assertClean(res.err, "stderr")
        self.assertClean(self.audit_bytes(), "the audit database")
        exp = self.rb("audit", "export", "--format", "jsonl", "--audit", self.audit)
        self.assertExit(exp, 0)
        self.assertClean(exp.out, "audit export")
        self.assertIn("/auth/bearer/****", exp.out)

    def test_never_in_json_output(self):
        res = self.run_rb(self.rbfile, "--param", "pw=" + PARAM_PW, "--output", "json")
        self.assertExit(res, 1)
        self.check_server_got_them()
        self.assertClean(res.out, "--output json stdout")
        self.assertClean(res.err, "--output json stderr")
        self.assertClean(self.audit_bytes(), "the audit database")


    def test_never_in_dry_run_previews(self):
        res = self.runbook("""
            step("would send", function()
              local tok = secret("API_TOKEN")
              http.post(B .. "/echo", { json = { token = tok, user = "ops" } })
              http.put(B .. "/echo?k=" .. tok, "body with " .. tok)
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(self.srv.requests(), [])
        self.assertIn('would: POST %s {"token":"****","user":"ops"}' % self.srv.url("/echo"),
                      res.out.replace('"user":"ops","token":"****"', '"token":"****","user":"ops"'))
        self.assertIn("would: PUT %s body with ****" % self.srv.url("/echo?k=****"), res.out)
        self.assertClean(res.all, "dry-run output")
        self.assertClean(self.audit_bytes(), "the audit database")

    def test_credential_headers_never_in_clear_in_the_record(self):
        # literal credentials, not secret(): the header names make them
        # secrets, and the action's fields hold **** for them -- in dry-run
        # too, where the request is never built but the call is recorded
        tok, key, cookie = "lit-AUTH-5531-Kq", "lit-APIKEY-7702-Zt", "lit-COOKIE-9113-Wm"
        body = """
            step("call", function()
              local h = { Authorization = "Bearer %s", ["X-Api-Key"] = "%s",
                          Cookie = "session=%s", ["X-Trace"] = "t-1" }
              http.get(B .. "/echo?m=get", { headers = h })
              http.post(B .. "/echo?m=post", { headers = h, json = { n = 1 } })
              http.request{ method = "PUT", url = B .. "/echo?m=put", headers = h, body = "x" }
            end)
            """ % (tok, key, cookie)
        for flags, sent in (((), ["m=get", "m=post", "m=put"]), (("--dry-run",), ["m=get"])):
            before = len(self.srv.requests())
            res = self.runbook(body, "--output", "json", *flags)
            self.assertExit(res, 0)
            got = self.srv.requests()[before:]
            self.assertEqual([r["query"] for r in got], sent, flags)
            for r in got:  # the server got them in clear
                self.assertEqual(r["headers"]["authorization"], "Bearer " + tok)
                self.assertEqual(r["headers"]["x-api-key"], key)
                self.assertEqual(r["headers"]["cookie"], "session=" + cookie)
            for where, text in (("output", res.all), ("the audit database", self.audit_bytes())):
                for s in (tok, key, cookie):
                    self.assertNotIn(s, text, "%s leaked into %s %s" % (s, where, flags))
            self.assertIn("t-1", self.audit_bytes(), "other headers are recorded as they are")

    def test_url_encoded_secret_is_redacted_too(self):
        # real tokens are often base64: + / = are percent-encoded in a query
        token = "tok+HTTP/5521=Rw=="
        encoded = "tok%2BHTTP%2F5521%3DRw%3D%3D"
        self.env["API_TOKEN"] = token
        url = "http://127.0.0.1:%d/x" % self.closed_port()
        res = self.runbook("""
            step("query", function()
              local r = http.get(B .. "/echo", { query = { token = secret("API_TOKEN") } })
              print("effective url: " .. r.url)
            end)
            step("fail", function()
              http.get(%s, { query = { token = secret("API_TOKEN") } })
            end)
            """ % lua_str(url))
        self.assertExit(res, 1)
        (req,) = self.srv.requests("/echo")
        self.assertEqual(req["args"], {"token": token}, "the server got the real token")
        self.assertIn("connection refused", res.all)
        for where, text in (("output", res.all), ("the audit database", self.audit_bytes())):
            self.assertNotIn(token, text, "the secret leaked into " + where)
            self.assertNotIn(encoded, text, "the percent-encoded secret leaked into " + where)


if __name__ == "__main__":
    unittest.main()
