"""Three runbooks of the library (runbooks/) end to end against the fakes,
run from the source tree (their lib/ modules are required from there):

- calendar-api/service-wont-start (the Calendar API's "Service Won't
  Start") against tests/fixtures/fake_docker.py with a compose project
  whose calendar-api container was OOM-killed;
- carbon-ingestion/high-consumer-lag (254Carbon's "Issue 2: High Consumer
  Lag"): a fake `kafka-consumer-groups` on PATH and the real kubectl against
  tests/fixtures/fake_kube.py;
- calendar-api/monthly-full-backup (the Calendar API's "Monthly Maintenance
  › 1. Full System Backup") against fake_docker.py for the compose services
  and a fake `docker` CLI on PATH for `docker compose stop / up -d` and the
  volume's `docker run ... tar`.

Dry-run prints the `would:` lines and no write reaches a fake; a live run
sends exactly the writes.  (These replace the tests of the examples the
library runbooks grew out of: examples/calendar-api-service-wont-start.lua,
examples/carbon-high-consumer-lag.lua, examples/calendar-api-monthly-backup.lua.)
"""
import hashlib
import json
import os
import shutil
import sys
import unittest

from rbtest import SRC, RunbookTestCase
from test_docker import FakeDocker

sys.dont_write_bytecode = True


def runbook(name):
    return os.path.join(SRC, "runbooks", name + ".lua")


CALENDAR = runbook("calendar-api/service-wont-start")
CARBON = runbook("carbon-ingestion/high-consumer-lag")
MONTHLY = runbook("calendar-api/monthly-full-backup")
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


class LibraryCase(RunbookTestCase):
    def run_library(self, file, *flags, **kw):
        """`runbook run FILE` from the source tree (cwd: require finds runbooks/lib)."""
        return self.run_rb(file, *flags, cwd=SRC, **kw)


class CheckRunbooks(RunbookTestCase):
    def test_runbook_check_is_clean(self):
        res = self.rb("check", CALENDAR, CARBON, MONTHLY, os.path.join(SRC, "examples"), cwd=SRC)
        self.assertExit(res, 0)


class Calendar(LibraryCase):
    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self, compose_project="deployment")
        self.env["DOCKER_HOST"] = self.fake.host

    def test_dry_run_diagnoses_and_would_restart(self):
        srv = self.httpd({"/healthz": {"status": 200, "json": {"status": "ok"}}})
        res = self.run_library(CALENDAR, "--dry-run", "--param", "memory_limit=2g",
                               "--param", "api=" + srv.base)
        self.assertExit(res, 0)
        self.assertIn("deployment-calendar-api-1 calendar-api     exited", res.out)
        self.assertIn("MemoryError: cannot allocate 512 MiB", res.out)
        # exit code and OOMKilled from docker inspect, matched to the document's common issue
        self.assertIn("calendar-api: exit code 137, OOMKilled -> resource constraints: "
                      "Increase limits", res.out)
        self.assertIn("would: docker update deployment-calendar-api-1 --memory 2g", res.out)
        self.assertIn("would: docker compose restart calendar-api", res.out)
        self.assertIn("Verify (skipped: when)", res.out)
        self.assertEqual(self.fake.requests("POST"), [])
        # a dry-run does not wait for /healthz: it asks once and says what it found
        self.assertEqual(len(srv.requests("/healthz")), 1)
        self.assertIn("compose.restart calendar-api (rehearsal): not restarted, so no wait for", res.out)
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
        res = self.run_library(CALENDAR, "--param", "memory_limit=2g", "--param", "api=" + srv.base)
        self.assertExit(res, 0)
        posts = [(r["path"], r["body"]) for r in self.fake.requests("POST")]
        self.assertEqual([p[0] for p in posts], [
            "/v1.47/containers/deployment-calendar-api-1/update",
            "/v1.47/containers/deployment-calendar-api-1/restart",
        ])
        self.assertEqual(json.loads(posts[0][1]), {"Memory": 2 * 2 ** 30})
        self.assertGreaterEqual(len(srv.requests("/healthz")), 1)
        self.assertIn("every service is running", res.out)
        self.assertEqual(self.step_status()["Verify"], "ok")

    def test_nothing_to_do_when_everything_runs(self):
        res = self.run_library(CALENDAR, "--param", "service=postgres")
        self.assertExit(res, 0)
        self.assertIn("postgres is running: nothing to fix", res.out)
        self.assertEqual(self.fake.requests("POST"), [])


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class Carbon(LibraryCase):
    NS = "carbon-ingestion"

    def setUp(self):
        super().setUp()
        self.kube = self.fake_kube()
        self.fake_kafka(LAG_HIGH)

    def fake_kafka(self, output):
        # it says its arguments on stderr: a dry-run's reads may not write,
        # not even a log file
        self.write("kafka-out.txt", output, dedent=False)
        self.script("kafka-consumer-groups", 'echo "CALL:$@" >&2\ncat %s\n'
                    % self.path("kafka-out.txt"))

    def kafka_calls(self):
        """The fake's calls in the last run, from its stderr in the audit."""
        return [l[5:] for a in self.actions() for l in (a.get("stderr") or "").splitlines()
                if l.startswith("CALL:")]

    def writes(self):
        return self.kube_writes(self.kube)

    def test_dry_run_would_scale_and_writes_nothing(self):
        res = self.run_library(CARBON, "--dry-run", "--yes", "--param", "parallelism=8")
        self.assertExit(res, 0)
        self.assertIn("total lag 2620 over 4 partition(s), 1 without a committed offset "
                      "(threshold 1000)", res.out)
        self.assertIn("would: kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", res.out)
        self.assertIn("would: kubectl set env deployment/enrichment-service PARALLELISM=8 "
                      "-n carbon-ingestion", res.out)
        self.assertEqual(self.writes(), [])
        self.assertEqual(self.kafka_calls(),
                         ["--bootstrap-server kafka:9092 --describe --group enrichment-service"])
        acts = self.actions(primitive="exec")
        self.assertEqual((acts[0]["class"], acts[0]["simulated"]), ("read", False))

    def test_low_lag_changes_nothing(self):
        self.fake_kafka(LAG_LOW)
        res = self.run_library(CARBON, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("total lag 10 over 1 partition(s) (threshold 1000)", res.out)
        self.assertNotIn("would:", res.out)
        self.assertIn("Scale up service (skipped: when)", res.out)
        self.assertEqual(self.writes(), [])

    def live(self, *flags):
        return self.run_library(CARBON, "--yes", "--param", "rollout_timeout=30",
                                "--param", "recheck_after=0", *flags)

    def test_live_scales_and_waits_for_the_rollout(self):
        # parallelism=0 leaves PARALLELISM alone: the scale is the only write
        res = self.live("--param", "parallelism=0")
        self.assertExit(res, 0)
        w = self.writes()
        self.assertEqual(len(w), 1, w)
        self.assertEqual(w[0]["path"], "/apis/apps/v1/namespaces/carbon-ingestion/deployments/"
                                       "enrichment-service/scale")
        self.assertEqual(w[0]["body"], {"spec": {"replicas": 5}})
        words = [a.get("words") for a in self.actions(primitive="kubectl")]
        self.assertIn("kubectl scale deployment/enrichment-service --replicas=5 "
                      "-n carbon-ingestion", words)
        self.assertFalse(any(x and x.startswith("kubectl set env") for x in words), words)
        self.assertTrue(any(x and x.startswith("kubectl rollout status "
                                               "deployment/enrichment-service") for x in words),
                        words)
        self.assertEqual(len(self.kafka_calls()), 2)  # before and after
        self.assertIn("lag 2620 (was 2620)", res.out)

    def test_live_with_the_documents_parallelism_also_sets_it(self):
        res = self.live()
        self.assertExit(res, 0)
        w = self.writes()
        self.assertEqual(len(w), 2, w)
        self.assertEqual((w[0]["path"], w[0]["body"]),
                         ("/apis/apps/v1/namespaces/carbon-ingestion/deployments/"
                          "enrichment-service/scale", {"spec": {"replicas": 5}}))
        self.assertEqual(w[1]["path"], "/apis/apps/v1/namespaces/carbon-ingestion/deployments/"
                                       "enrichment-service")
        self.assertIn("PARALLELISM", json.dumps(w[1]["body"]))
        self.assertIn('"8"', json.dumps(w[1]["body"]))


class CalendarMonthly(LibraryCase):
    """No database here: the library runbook archives the data directories and
    the Docker volumes only, as the document's procedure does."""

    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self, compose_project="deployment")
        self.env["DOCKER_HOST"] = self.fake.host
        self.root = self.path("calendar-api")
        for d, f in (("logs", "api.log"), ("cache", "c.bin"),
                     ("deployment", "docker-compose.prod.yml")):
            os.makedirs(os.path.join(self.root, d))
            with open(os.path.join(self.root, d, f), "w") as fh:
                fh.write(d + "\n")
        self.out = os.path.join(self.root, "backups")
        self.docker_log = self.path("docker-calls")
        self.fake_docker_cli()

    def fake_docker_cli(self, run_fails=False):
        """`docker` on PATH: logs its arguments; `docker run ... -v DIR:/backup
        alpine tar czf /backup/NAME /data` writes a real tarball DIR/NAME
        (or fails with exit 125 when run_fails).  A compose plugin where the
        docker CLI looks for one (never run: the docker CLI runs it) makes
        docker.compose's verbs `docker compose ...` calls of this script."""
        self.write(".docker/cli-plugins/docker-compose", "#!/bin/sh\nexit 1\n", mode=0o755)
        self.script("docker", """\
            echo "$@" >> %s
            [ "$1" = run ] || exit 0
            %s
            dir= ; out=
            for a in "$@"; do
              case "$a" in
                *:/backup) dir=${a%%:/backup} ;;
                /backup/*) out=${a#/backup/} ;;
              esac
            done
            mkdir -p %s/vol && echo metrics > %s/vol/prometheus.db
            tar czf "$dir/$out" -C %s vol
            """ % (self.docker_log,
                   'echo "Unable to find image alpine:latest" >&2; exit 125' if run_fails else ":",
                   self.tmp, self.tmp, self.tmp))

    def run_monthly(self, *flags):
        return self.run_library(MONTHLY, "--param", "root=" + self.root, *flags)

    def test_dry_run_writes_nothing(self):
        res = self.run_monthly("--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: docker compose -f %s/deployment/docker-compose.prod.yml stop "
                      "postgres redis" % self.root, res.out)
        self.assertIn("would: tar -czf %s/full-backup-" % self.out, res.out)
        self.assertIn("would: docker run --rm -v prometheus_data:/data", res.out)
        self.assertIn("would: docker compose -f %s/deployment/docker-compose.prod.yml up -d "
                      "postgres redis" % self.root, res.out)
        self.assertFalse(os.path.exists(self.out))
        self.assertEqual(self.lines(self.docker_log), [])
        self.assertEqual(self.fake.requests("POST"), [])

    def test_live_stops_archives_checksums_and_starts_again(self):
        res = self.run_monthly()
        self.assertExit(res, 0)
        files = sorted(os.listdir(self.out))
        self.assertTrue(any(f.startswith("full-backup-") and f.endswith(".tar.gz")
                            for f in files), files)
        self.assertTrue(any(f.startswith("prometheus-") and f.endswith(".tar.gz")
                            for f in files), files)
        self.assertIn("monitoring: not found, skipped", res.out)
        with open(os.path.join(self.out, "SHA256SUMS")) as f:
            sums = [l for l in f.read().split("\n") if l]
        self.assertEqual(len(sums), 2, sums)
        for line in sums:
            hexd, name = line.split("  ")
            with open(os.path.join(self.out, name), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hexd, name)
        calls = self.lines(self.docker_log)
        compose = "compose -f %s/deployment/docker-compose.prod.yml " % self.root
        self.assertEqual(calls[0], compose + "stop postgres redis")
        self.assertTrue(calls[1].startswith("run --rm -v prometheus_data:/data -v %s:/backup "
                                            % self.out), calls)
        self.assertEqual(calls[2], compose + "up -d postgres redis")
        self.assertEqual(len(calls), 3, calls)

    def test_a_failed_backup_does_not_stop_the_rest_but_fails_the_run(self):
        self.fake_docker_cli(run_fails=True)
        res = self.run_monthly()
        self.assertExit(res, 1)
        self.assertIn("backup failed: prometheus_data (services were started again)", res.all)
        self.assertIn("Unable to find image alpine:latest", res.all)
        # the data archive was still made and checksummed, and the services started again
        files = sorted(os.listdir(self.out))
        self.assertTrue(any(f.startswith("full-backup-") for f in files), files)
        with open(os.path.join(self.out, "SHA256SUMS")) as f:
            self.assertIn("full-backup-", f.read())
        calls = self.lines(self.docker_log)
        self.assertEqual(calls[-1], "compose -f %s/deployment/docker-compose.prod.yml up -d "
                                    "postgres redis" % self.root)


if __name__ == "__main__":
    unittest.main()
