"""The two reference procedures as example runbooks, end to end against the
fakes: examples/calendar-api-service-wont-start.lua (the Calendar API's
"Service Won't Start", against tests/fixtures/fake_docker.py with a compose
project) and examples/carbon-high-consumer-lag.lua (254Carbon's "High
Consumer Lag", a fake `kafka-consumer-groups` on PATH and the real kubectl
against tests/fixtures/fake_kube.py).  Dry-run prints the `would:` lines and
no write reaches a fake; a live run sends exactly the writes."""
import json
import os
import shutil
import sys
import unittest

from rbtest import SRC, RunbookTestCase
from test_docker import FakeDocker

sys.dont_write_bytecode = True

EXAMPLES = os.path.join(SRC, "examples")
CALENDAR = os.path.join(EXAMPLES, "calendar-api-service-wont-start.lua")
CARBON = os.path.join(EXAMPLES, "carbon-high-consumer-lag.lua")
KUBECTL = shutil.which("kubectl")

# what `kafka-consumer-groups --describe` prints (Kafka 3.x), total lag 2620
LAG_HIGH = """
GROUP              TOPIC          PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG   CONSUMER-ID                                     HOST          CLIENT-ID
enrichment-service market-prices  0          1200            2700            1500  consumer-1-6f1c2a44-0d2e-4d1e-9a43-1c0f5b7e2a10  /10.0.1.12    consumer-1
enrichment-service market-prices  1          980             2100            1120  consumer-1-6f1c2a44-0d2e-4d1e-9a43-1c0f5b7e2a10  /10.0.1.12    consumer-1
enrichment-service market-prices  2          3000            3000            0     consumer-2-0b8d8d7e-3c55-4a8e-8f7e-5d3f2c1b0a99  /10.0.1.13    consumer-2
enrichment-service weather-obs    0          -               40              -     -                                               -             -
"""
LAG_LOW = """
GROUP              TOPIC          PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG   CONSUMER-ID  HOST        CLIENT-ID
enrichment-service market-prices  0          2690            2700            10    consumer-1   /10.0.1.12  consumer-1
"""


class CheckExamples(RunbookTestCase):
    def test_runbook_check_examples_is_clean(self):
        res = self.rb("check", EXAMPLES)
        self.assertExit(res, 0)


class Calendar(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self, compose_project="deployment")
        self.env["DOCKER_HOST"] = self.fake.host

    def test_dry_run_diagnoses_and_would_restart(self):
        res = self.run_rb(CALENDAR, "--dry-run", "--param", "memory_limit=2g")
        self.assertExit(res, 0)
        self.assertIn("not running: calendar-api", res.out)
        self.assertIn("MemoryError: cannot allocate 512 MiB", res.out)
        self.assertIn("calendar-api: looks like a resource constraints -> Increase limits", res.out)
        self.assertIn("exit code 137, OOMKilled true", res.out)
        self.assertIn("would: docker update deployment-calendar-api-1 --memory 2g", res.out)
        self.assertIn("would: docker compose restart calendar-api", res.out)
        self.assertIn("Wait until the API is healthy (skipped: when)", res.out)
        self.assertEqual(self.fake.requests("POST"), [])
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["words"], a["simulated"]) for a in acts], [
            ("docker compose ps --all", False),
            ("docker logs deployment-calendar-api-1 --tail 50", False),
            ("docker inspect deployment-calendar-api-1", False),
            ("docker update deployment-calendar-api-1 --memory 2g", True),
            ("docker compose restart calendar-api", True),
        ])

    def test_live_restarts_the_service_and_waits_for_healthz(self):
        srv = self.httpd({"/healthz": {"status": 200, "json": {"status": "ok"}}})
        res = self.run_rb(CALENDAR, "--param", "memory_limit=2g",
                          "--param", "health_url=" + srv.url("/healthz"))
        self.assertExit(res, 0)
        posts = [(r["path"], r["body"]) for r in self.fake.requests("POST")]
        self.assertEqual([p[0] for p in posts], [
            "/v1.47/containers/deployment-calendar-api-1/update",
            "/v1.47/containers/deployment-calendar-api-1/restart",
        ])
        self.assertEqual(json.loads(posts[0][1]), {"Memory": 2 * 2 ** 30})
        self.assertGreaterEqual(len(srv.requests("/healthz")), 1)
        self.assertIn("the Calendar API is healthy and every service of deployment is running",
                      res.out)

    def test_nothing_to_do_when_everything_runs(self):
        res = self.run_rb(CALENDAR, "--param", "service=postgres")
        self.assertExit(res, 0)
        self.assertIn("every service of project deployment is running", res.out)
        self.assertEqual(self.fake.requests("POST"), [])


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class Carbon(RunbookTestCase):
    NS = "carbon-ingestion"

    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()
        self.kafka_log = self.path("kafka-calls")
        self.fake_kafka(LAG_HIGH)

    def fake_kafka(self, output):
        self.write("kafka-out.txt", output, dedent=False)
        self.script("kafka-consumer-groups", 'echo "$@" >> %s\ncat %s\n'
                    % (self.kafka_log, self.path("kafka-out.txt")))

    def writes(self):
        return self.kube_writes(self.kube)

    def test_dry_run_would_scale_and_writes_nothing(self):
        res = self.run_rb(CARBON, "--dry-run", "--param", "parallelism=8")
        self.assertExit(res, 0)
        self.assertIn("total lag 2620 over 4 partition(s), 1 without a committed offset "
                      "(threshold 1000)", res.out)
        self.assertIn("would: kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", res.out)
        self.assertIn("would: kubectl set env deployment/enrichment-service PARALLELISM=8 "
                      "-n carbon-ingestion", res.out)
        self.assertEqual(self.writes(), [])
        self.assertEqual(self.lines(self.kafka_log)[0],
                         "--bootstrap-server kafka:9092 --describe --group enrichment-service")
        acts = self.actions(primitive="exec")
        self.assertEqual((acts[0]["class"], acts[0]["simulated"]), ("read", False))

    def test_low_lag_changes_nothing(self):
        self.fake_kafka(LAG_LOW)
        res = self.run_rb(CARBON, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("total lag 10 over 1 partition(s) (threshold 1000)", res.out)
        self.assertNotIn("would:", res.out)
        self.assertIn("Scale up the service (skipped: when)", res.out)
        self.assertEqual(self.writes(), [])

    def test_live_scales_and_waits_for_the_rollout(self):
        res = self.run_rb(CARBON, "--param", "rollout_timeout=30")
        self.assertExit(res, 0)
        w = self.writes()
        self.assertEqual(len(w), 1, w)
        self.assertEqual(w[0]["path"], "/apis/apps/v1/namespaces/carbon-ingestion/deployments/"
                                       "enrichment-service/scale")
        self.assertEqual(w[0]["body"], {"spec": {"replicas": 5}})
        words = [a.get("words") for a in self.actions(primitive="kubectl")]
        self.assertIn("kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", words)
        self.assertTrue(any(x and x.startswith("kubectl rollout status "
                                               "deployment/enrichment-service") for x in words),
                        words)
        self.assertEqual(len(self.lines(self.kafka_log)), 2)  # before and after


if __name__ == "__main__":
    unittest.main()
