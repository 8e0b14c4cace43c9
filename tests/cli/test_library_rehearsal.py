"""Library runbooks (runbooks/carbon-ingestion) in a dry-run against the fake
Kubernetes API (tests/fixtures/fake_kube.py, the real kubectl talking to it):
a change the rehearsal only simulated is followed by the runbook's own
`kubectl rollout status` on the same deployment, and the engine answers that
wait as the rehearsal's world would -- the runbooks no longer skip it with
dry_run().  What the rehearsal cannot answer (the lag measured again, the
service's /health after the rollout, the latency after scaling) is still
skipped by the runbook.

Each test asserts: the run succeeds; the change's `would:` line; the rollout
wait was run and answered by the rehearsal (its audit action is simulated,
with the rehearsal's evidence, and the output says so); no write reached the
fake; and no request watched the deployment (kubectl rollout status lists the
deployments by metadata.name and watches them: none of either) -- while the
reads that are not about the simulated change still reached it.  One live run
of the same runbook shows those watch requests are what a real wait sends.
"""
import os
import sys
import unittest

from rbtest import SRC, RunbookTestCase

sys.dont_write_bytecode = True

NS = "carbon-ingestion"
DEPLOY = "enrichment-service"  # a deployment of the fake, at 3 replicas, image enrich:1.4
TARGET = "deployment/" + DEPLOY
DEPLOY_PATH = "/apis/apps/v1/namespaces/%s/deployments/%s" % (NS, DEPLOY)
REHEARSED = "changed only in this rehearsal"

# kafka-consumer-groups --describe --group enrichment-service: total lag 2620
GROUP_LAG = """
GROUP              TOPIC          PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG   CONSUMER-ID  HOST        CLIENT-ID
enrichment-service market-prices  0          1200            2700            1500  consumer-1   /10.0.1.12  consumer-1
enrichment-service market-prices  1          980             2100            1120  consumer-1   /10.0.1.12  consumer-1
"""

# kafka-consumer-groups --all-groups --describe: enrichment-service 4000
# behind on the topic (above 1000, below the 10,000 that escalates)
ALL_GROUPS_LAG = """
GROUP               TOPIC                       PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG   CONSUMER-ID  HOST         CLIENT-ID
enrichment-service  normalized.market.ticks.v1  0          5500000         5502500         2500  enr-1        /10.42.0.31  enr-1
enrichment-service  normalized.market.ticks.v1  1          5490000         5491500         1500  enr-2        /10.42.0.32  enr-2
"""

# kafka-topics --describe --topic normalized.market.ticks.v1: 3 partitions
TOPIC_3 = (
    "Topic: normalized.market.ticks.v1\tTopicId: 8zX1b4bnQ1yTq2nR7m0o4A\tPartitionCount: 3\t"
    "ReplicationFactor: 3\tConfigs: retention.ms=604800000\n"
    "\tTopic: normalized.market.ticks.v1\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n"
    "\tTopic: normalized.market.ticks.v1\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3,1\n"
    "\tTopic: normalized.market.ticks.v1\tPartition: 2\tLeader: 3\tReplicas: 3,1,2\tIsr: 3,1,2\n")


def runbook(name):
    return os.path.join(SRC, "runbooks", name + ".lua")


class Rehearsal(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()

    def run_library(self, name, *flags):
        """`runbook run` of a library runbook from the source tree (runbooks/lib
        on its path); --yes answers its confirm()s."""
        return self.run_rb(runbook(name), "--yes", *flags, cwd=SRC)

    def fake_cli(self, name, output):
        """A fake `name` on PATH that says its arguments on stderr (a
        dry-run's reads may not write, not even a log file) and prints output."""
        out = self.write(name + ".out", output, dedent=False)
        self.script(name, 'echo "CALL:%s $*" >&2\ncat %s\n' % (name, out))

    def cli_calls(self):
        """The fakes' calls in the last run, from their stderr in the audit."""
        return [l[5:] for a in self.actions() for l in (a.get("stderr") or "").splitlines()
                if l.startswith("CALL:")]

    def watches(self):
        """The requests of a `kubectl rollout status` / `kubectl wait` on the
        deployment: the deployments listed by its name, or watched."""
        return [r for r in self.kube.requests(path="/apis/apps/v1/namespaces/%s/deployments*" % NS)
                if "metadata.name=" + DEPLOY in (r.get("query") or {}).get("fieldSelector", "")
                or (r.get("query") or {}).get("watch") in ("true", "1")]

    def assertRolloutAnsweredByTheRehearsal(self, res, change):
        """change: the `would:` words of the simulated change before the wait."""
        self.assertExit(res, 0)
        self.assertIn("would: " + change, res.out)
        acts = self.actions(primitive="kubectl")
        words = [a.get("words") or "" for a in acts]
        i = words.index(change)
        self.assertTrue(acts[i]["simulated"], acts[i])
        waits = [a for a in acts[i + 1:]
                 if (a.get("words") or "").startswith("kubectl rollout status " + TARGET)]
        self.assertTrue(waits, "the runbook skipped the rollout wait: %r" % words)
        for w in waits:
            self.assertEqual(w.get("class"), "read", w)
            self.assertTrue(w.get("simulated"), "the rollout wait reached the cluster: %r" % w)
            self.assertIn(REHEARSED, w.get("evidence") or "", w)
        self.assertIn(REHEARSED, res.out)
        self.assertEqual(self.kube_writes(self.kube), [], "a dry-run wrote to the cluster")
        self.assertEqual(self.watches(), [], "the dry-run watched a deployment it never changed")
        # the reads before the change still reached the cluster
        self.assertTrue(self.kube.requests(path=DEPLOY_PATH, method="GET"))

    def test_high_consumer_lag_scales_in_the_rehearsal_and_does_not_watch(self):
        self.fake_cli("kafka-consumer-groups", GROUP_LAG)
        res = self.run_library("carbon-ingestion/high-consumer-lag", "--dry-run")
        self.assertRolloutAnsweredByTheRehearsal(
            res, "kubectl scale %s --replicas=5 -n %s" % (TARGET, NS))
        self.assertIn("would: kubectl set env %s PARALLELISM=8 -n %s" % (TARGET, NS), res.out)
        # still skipped: the lag measured again would be today's
        self.assertIn("Re-check consumer lag (skipped: when)", res.out)
        self.assertEqual(self.cli_calls(), [
            "kafka-consumer-groups --bootstrap-server kafka:9092 --describe --group " + DEPLOY])

        # live, the same runbook changes the deployment and watches its rollout
        res = self.run_library("carbon-ingestion/high-consumer-lag", "--param", "rollout_timeout=30",
                               "--param", "recheck_after=0", "--param", "parallelism=0")
        self.assertExit(res, 0)
        self.assertEqual([w["path"] for w in self.kube_writes(self.kube)], [DEPLOY_PATH + "/scale"])
        self.assertTrue(self.watches(), "a live rollout status sent no watch: the assertion above "
                                        "would prove nothing")
        live = [a for a in self.actions(primitive="kubectl")
                if (a.get("words") or "").startswith("kubectl rollout status " + TARGET)]
        self.assertEqual([a.get("simulated") for a in live], [False])

    def test_kafka_topic_lag_scales_in_the_rehearsal_and_does_not_watch(self):
        self.fake_cli("kafka-consumer-groups", ALL_GROUPS_LAG)
        self.fake_cli("kafka-topics", TOPIC_3)
        res = self.run_library("carbon-ingestion/kafka-topic-lag", "--dry-run",
                               "--param", "deployment=" + DEPLOY)
        self.assertRolloutAnsweredByTheRehearsal(
            res, "kubectl scale %s --replicas=5 -n %s" % (TARGET, NS))
        self.assertIn("would: kafka-topics --bootstrap-server kafka:9092 --alter --topic "
                      "normalized.market.ticks.v1 --partitions 10", res.out)
        self.assertIn("Re-check lag (skipped: when)", res.out)
        # only reads ran: no --alter, and the lag was read once
        self.assertEqual(self.cli_calls(), [
            "kafka-consumer-groups --bootstrap-server kafka:9092 --all-groups --describe",
            "kafka-topics --bootstrap-server kafka:9092 --describe --topic normalized.market.ticks.v1"])

    def test_alert_response_high_latency_scales_in_the_rehearsal_and_does_not_watch(self):
        # the fake's pods have no limits: --yes answers "scale?"; the question
        # about the latency after scaling is not asked in a rehearsal
        res = self.run_library("carbon-ingestion/alert-response", "--dry-run",
                               "--param", "alert=HighLatency", "--param", "service=enrichment")
        self.assertRolloutAnsweredByTheRehearsal(
            res, "kubectl scale %s --replicas=5 -n %s" % (TARGET, NS))
        self.assertNotIn("p95 latency back under 10 s", res.out)
        self.assertIn("Escalate (skipped: when)", res.out)

    def test_rolling_update_sets_the_image_in_the_rehearsal_and_does_not_watch(self):
        health = self.httpd({"/health": {"status": 200, "json": {"status": "ok"}}})
        res = self.run_library("carbon-ingestion/rolling-update", "--dry-run",
                               "--param", "deployment=" + DEPLOY, "--param", "container=" + DEPLOY,
                               "--param", "image=enrich:1.5", "--param", "health_url=" + health.url("/health"))
        self.assertRolloutAnsweredByTheRehearsal(
            res, "kubectl set image %s %s=enrich:1.5 -n %s" % (TARGET, DEPLOY, NS))
        # the rollout "completed", so nothing is rolled back
        self.assertNotIn("rollout undo", res.out)
        # still skipped: /health would answer for the old version -- the one
        # probe is the check before the update
        self.assertIn("dry-run: no new version was rolled out", res.out)
        self.assertEqual(len(health.requests(path="/health")), 1)


if __name__ == "__main__":
    unittest.main()
