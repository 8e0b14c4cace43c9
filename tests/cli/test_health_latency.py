"""health.check's latency is each endpoint's own answer time (issue 16, item
9), by libcurl's timing of that transfer, not inflated by what the one loop
thread did for another endpoint of the same batch.

The stall is made real and large: the slow TLS endpoint's `cacert` is a FIFO
that hands over the CA only STALL_MS after it is opened, so libcurl blocks
the loop thread that long while setting up that handshake -- what loading
the system CA bundle does for some 30 ms with OpenSSL 3 -- and the TLS
endpoint also answers DELAY_MS late.  Ten plain endpoints answer at once.
Their transfers' totals (what health reported as latency before: r.time)
include the stall, which the test checks, so it attacks the measurement and
cannot pass by a quiet machine alone."""
import json
import os
import threading
import time
import unittest

from rbtest import RunbookTestCase, lua_str

STALL_MS = 400  # the client-side stall (the CA handed over late)
DELAY_MS = 600  # the TLS endpoint's own answer time
LIMIT_MS = 100  # max_latency_ms: far below both


class HealthLatency(RunbookTestCase):
    def feed_fifo(self, fifo, ca, opened):
        """Hand ca's bytes to whoever opens fifo, STALL_MS after they do
        (opening a FIFO for writing waits for its reader)."""
        with open(ca, "rb") as f:
            pem = f.read()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self._stop_feed.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.002)
                continue
            opened.append(time.monotonic())
            time.sleep(STALL_MS / 1000)
            os.set_blocking(fd, True)
            try:
                os.write(fd, pem)
            except BrokenPipeError:
                pass
            os.close(fd)
            self._stop_feed.wait(0.2)  # the reader's EOF: not a new open

    def test_fast_plain_endpoints_stay_fast_beside_a_stalling_tls_one(self):
        plain = self.httpd()
        tls = self.httpd(tls=True)
        fifo = self.path("ca.fifo")
        os.mkfifo(fifo)
        opened = []
        self._stop_feed = threading.Event()
        feeder = threading.Thread(target=self.feed_fifo,
                                  args=(fifo, self.certs()["ca"], opened), daemon=True)
        feeder.start()
        self.addCleanup(feeder.join, 5)
        self.addCleanup(self._stop_feed.set)
        # the TLS endpoint last in the list: health must not depend on it
        res = self.run_body("""
            local health = require "health"
            step("check", function()
              local eps = {}
              for i = 1, 10 do
                eps[i] = { name = "fast" .. i, url = %(plain)s .. "/json?i=" .. i }
              end
              eps[11] = { name = "tls", url = %(tls)s .. "/delay/%(delay)d", cacert = %(fifo)s }
              local r = health.check(eps, { max_latency_ms = %(limit)d })
              health.report(r)
              for _, x in ipairs(r.results) do
                out({ name = x.name, ok = x.ok, error = x.error or "", status = x.status,
                      latency = x.latency_ms, total = x.total_ms })
              end
            end)
            """ % dict(plain=lua_str(plain.base), tls=lua_str(tls.base), delay=DELAY_MS,
                       fifo=lua_str(fifo), limit=LIMIT_MS))
        self.assertExit(res, 0)
        self.assertTrue(opened, "libcurl read the CA through the FIFO")
        by = {o["name"]: o for o in res.data}
        self.assertEqual(sorted(by), sorted(["tls"] + ["fast%d" % i for i in range(1, 11)]))
        # every request reached its server
        self.assertEqual(sorted(r["args"]["i"] for r in plain.requests("/json")),
                         sorted(str(i) for i in range(1, 11)))
        self.assertEqual([r["path"] for r in tls.requests()], ["/delay/%d" % DELAY_MS])

        slow = by["tls"]
        self.assertEqual(slow["status"], 200)
        self.assertIs(slow["ok"], False)
        self.assertGreaterEqual(slow["latency"], DELAY_MS)
        self.assertIn("slow: %d ms > %d ms" % (slow["latency"], LIMIT_MS), slow["error"])
        for i in range(1, 11):
            o = by["fast%d" % i]
            # the stall did overlap this transfer: its total, health's latency
            # before the fix, is at least the stall
            self.assertGreaterEqual(o["total"], STALL_MS, o)
            self.assertLess(o["latency"], STALL_MS / 3, o)
            self.assertLess(o["latency"], slow["latency"] / 3, o)
            self.assertEqual((o["status"], o["ok"], o["error"]), (200, True, ""), o)
        self.assertIn("10/11 up; down: tls (slow:", res.all)


if __name__ == "__main__":
    unittest.main()
