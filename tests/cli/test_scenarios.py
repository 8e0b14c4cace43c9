"""`runbook test` (SPEC §8): scenario files run hermetically against mocks
and are judged against their expectations.

The fixtures are real runbooks under tests/scenarios/, one folder per area
(http, exec, docker, kubectl, db, notify, fs, confirm, mocks, skip), each
with passing *.scenario.yaml files -- CI runs `runbook test` over the
repository, so every scenario there must pass.  The failing and malformed
scenarios are written at run time into each test's private copy of the
fixture tree, next to the runbooks they use, and every failure line the
runner prints for them is asserted.

Nothing here measures wall-clock time: the virtual clock is observed from
inside the runbooks (now() before and after a wait, kept in `state`)."""
import json
import os
import re
import shutil
import unittest
import xml.etree.ElementTree as ET

from rbtest import SRC, RunbookTestCase

FIXTURES = os.path.join(SRC, "tests", "scenarios")

# every passing scenario of the fixture tree, relative to tests/scenarios
PASSING = [
    "confirm/declined-by-index.scenario.yaml",
    "confirm/declined.scenario.yaml",
    "confirm/default-yes.scenario.yaml",
    "confirm/list.scenario.yaml",
    "confirm/map.scenario.yaml",
    "db/requeue.scenario.yaml",
    "docker/healthy.scenario.yaml",
    "docker/restart.scenario.yaml",
    "exec/prune.scenario.yaml",
    "fs/rotate.scenario.yaml",
    "http/wait-healthy.scenario.yaml",
    "kubectl/scale.scenario.yaml",
    "mocks/times.scenario.yaml",
    "notify/announce.scenario.yaml",
]
SKIPPED = {"skip/pending.scenario.yaml": "waiting for the staging API"}
AREAS = sorted({p.split("/")[0] for p in PASSING + list(SKIPPED)})

PASS_RE = re.compile(r"^✓ (\S+) \((\d+) ms\)$")
FAIL_RE = re.compile(r"^✗ (\S+) \((\d+) ms\)(?: (error|malformed))?$")
SKIP_RE = re.compile(r"^- (\S+) \(skipped: ")
SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) errors?)?(?:, (\d+) skipped)? "
                        r"\((\d+\.\d\d) s\)$")


def parse(out):
    """The runner's report: ({path: (mark, [failure lines])}, summary match).
    mark is "pass", "fail", "malformed", "error" or "skip"; failure lines lose
    their indentation."""
    blocks, cur, summary = {}, None, None
    for line in out.splitlines():
        m = PASS_RE.match(line)
        if m:
            blocks[m.group(1)] = ("pass", [])
            cur = None
            continue
        m = FAIL_RE.match(line)
        if m:
            cur = blocks[m.group(1)] = (m.group(3) or "fail", [])
            continue
        m = SKIP_RE.match(line)
        if m:
            blocks[m.group(1)] = ("skip", [])
            cur = None
            continue
        m = SUMMARY_RE.match(line)
        if m:
            summary = m
            cur = None
            continue
        if cur is not None and line.startswith("    "):
            cur[1].append(line[4:])
    return blocks, summary


class ScenarioCase(RunbookTestCase):
    """self.sc: a private copy of tests/scenarios (cwd-relative as "sc/")."""

    def setUp(self):
        super().setUp()
        self.sc = self.path("sc")
        for area in AREAS:  # only this file's fixtures, not other folders there
            shutil.copytree(os.path.join(FIXTURES, area), os.path.join(self.sc, area))

    def scenario(self, rel, text):
        """Write sc/REL (dedented) and return its cwd-relative path."""
        self.write(os.path.join(self.sc, rel), text)
        return os.path.join("sc", rel)

    def fixture_text(self, rel):
        with open(os.path.join(FIXTURES, rel)) as f:
            return f.read()

    def run_test(self, *args, **kw):
        res = self.rb("test", *args, **kw)
        res.blocks, res.summary = parse(res.out)
        return res

    def assertSummary(self, res, passed, failed, skipped=None, errors=0):
        """errors: malformed scenarios and ones that could not finish"""
        self.assertIsNotNone(res.summary, "no summary line: %r" % res)
        self.assertEqual(int(res.summary.group(1)), passed, res)
        self.assertEqual(int(res.summary.group(2)), failed, res)
        self.assertEqual(int(res.summary.group(3) or 0), errors, res)
        self.assertEqual(int(res.summary.group(4) or 0), skipped or 0, res)
        if not skipped:
            self.assertIsNone(res.summary.group(4), "no skipped count when none: %r" % res)

    def assertFails(self, path, *expected, exact=False, extra=None, mark="fail"):
        """`runbook test PATH` fails that scenario (exit 1, `✗ PATH`); every
        expected item is one failure line: a str is the whole line, a
        compiled regex fullmatches it.  exact: no other failure lines.
        mark "malformed": the scenario itself is wrong, counted as an error.
        Returns the failure lines."""
        res = self.run_test(path, *(extra or ()))
        self.assertExit(res, 1)
        self.assertIn(path, res.blocks, res)
        got, lines = res.blocks[path]
        self.assertEqual(got, mark, res)
        for e in expected:
            if isinstance(e, str):
                self.assertIn(e, lines, "failure line missing\n%r" % res)
            else:
                self.assertTrue(any(e.fullmatch(l) for l in lines),
                                "no failure line matches %r\n%r" % (e.pattern, res))
        if exact:
            self.assertEqual(len(lines), len(expected), res)
        if mark == "fail":
            self.assertSummary(res, 0, 1)
        else:
            self.assertSummary(res, 0, 0, errors=1)
        return lines

    def verdict(self, path):
        """`runbook test --one PATH`: the child's JSON verdict line."""
        res = self.rb("test", "--one", path)
        lines = [l for l in res.out.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, res)
        v = json.loads(lines[0])
        v["_code"] = res.code
        return v


# ---- the fixture tree passes ---------------------------------------------------

class FixturesPass(ScenarioCase):
    def test_every_fixture_scenario_passes(self):
        res = self.run_test("sc")
        self.assertExit(res, 0)
        for rel in PASSING:
            p = "sc/" + rel
            self.assertIn(p, res.blocks, "%s not run\n%r" % (p, res))
            self.assertEqual(res.blocks[p][0], "pass", res)
        for rel in SKIPPED:
            self.assertEqual(res.blocks.get("sc/" + rel, ("?",))[0], "skip", res)
        self.assertEqual(len(res.blocks), len(PASSING) + len(SKIPPED), res)
        self.assertSummary(res, len(PASSING), 0, len(SKIPPED))
        self.assertEqual(int(res.summary.group(4) or 0), len(SKIPPED), res)
        # lines come in path order whatever finished first
        order = [l.split()[1] for l in res.out.splitlines()
                 if PASS_RE.match(l) or FAIL_RE.match(l) or SKIP_RE.match(l)]
        self.assertEqual(order, sorted(order))

    def test_each_scenario_alone_passes_with_a_passed_verdict(self):
        for rel in PASSING:
            with self.subTest(rel):
                v = self.verdict("sc/" + rel)
                self.assertEqual(v["status"], "passed", v)
                self.assertEqual(v["failures"], [], v)
                self.assertEqual(v["exit_code"], 0 if "declined" not in rel else 1, v)
                self.assertEqual(v["scenario"], "sc/" + rel)
                self.assertEqual(v["_code"], 0)

    def test_skipped_scenario_line_and_count(self):
        res = self.run_test("sc/skip")
        self.assertExit(res, 0)
        self.assertIn("- sc/skip/pending.scenario.yaml (skipped: waiting for the staging API)",
                      res.out.splitlines(), res)
        self.assertSummary(res, 0, 0, 1)

    def test_runs_at_once_or_one_by_one_alike(self):
        one = self.run_test("-j", "1", "sc")
        many = self.run_test("sc", "--jobs", "8")
        self.assertExit(one, 0)
        self.assertExit(many, 0)
        strip = lambda r: [re.sub(r"\(\d+ ms\)", "", l) for l in r.out.splitlines()[:-1]]
        self.assertEqual(strip(one), strip(many))


# ---- what the passing fixtures prove is not vacuous --------------------------------
# Each fixture's scenario, changed in one place, must fail for that reason.

class HttpAndVirtualClock(ScenarioCase):
    def test_unmatched_url_names_the_call_and_the_closest_mock(self):
        text = self.fixture_text("http/wait-healthy.scenario.yaml").replace(
            'url: "http://api.test/healthz"', 'url: "http://api.test/health"')
        p = self.scenario("http/wrong-url.scenario.yaml", text)
        lines = self.assertFails(
            p,
            "no mock answers `GET http://api.test/healthz`; closest: mocks[1] http "
            "{ method: GET, url: http://api.test/health }, which did not match: "
            "url: wanted http://api.test/health, got http://api.test/healthz",
            # every 30 s for 600 s of virtual time: 21 attempts, all refused
            re.compile(r"outcome: expected success, got failed \(.*wait_until: api healthy "
                       r"not reached after 600 s \(21 attempts; last: .*no mock answers .*"),
            re.compile(r"required mock never called: mocks\[1\] http \{ method: GET, "
                       r"url: http://api.test/health \}"))
        self.assertTrue(lines[0].startswith("no mock answers"), lines)

    def test_the_sequence_matters(self):
        # a sequence that never reaches 200 within the 600 s
        text = self.fixture_text("http/wait-healthy.scenario.yaml").replace(
            '- { status: 200, body: "ok" }', '- { status: 503, body: "still down" }')
        p = self.scenario("http/never-healthy.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"outcome: expected success, got failed \(.*wait_until: api healthy not reached "
            r"after 600 s \(21 attempts; last: returned false\)\)"))

    def mutated_deploy(self, name, old, new):
        text = self.fixture_text("http/wait-healthy.scenario.yaml")
        self.assertIn(old, text)
        return self.scenario("http/%s.scenario.yaml" % name, text.replace(old, new))

    JSON_OLD = 'json: { version: "2.4.1", env: prod }'
    HEADERS_OLD = 'headers: { authorization: "Bearer fixture-token" }'

    def test_post_matched_by_json_body_subset(self):
        p = self.mutated_deploy("wrong-body", self.JSON_OLD, 'json: { version: "2.4.1", env: staging }')
        self.assertFails(p, re.compile(r"no mock answers `POST http://api\.test/deploy "
                                       r"\{.*\}`; closest: mocks\[\d\] http .*"))

    def test_post_matched_by_headers(self):
        # (the fixture's own mock names the header in lower case, the runbook
        # sends "Authorization": matching is case-insensitive)
        p = self.mutated_deploy("wrong-header", self.HEADERS_OLD,
                                'headers: { Authorization: "Bearer other-token" }')
        self.assertFails(p, re.compile(r"no mock answers `POST http://api\.test/deploy "
                                       r"\{.*\}`; closest: mocks\[\d\] http .*"))

    def test_closest_mock_is_the_one_nearest_the_call(self):
        # mocks[4] is the POST to /deploy, differing from the call in one
        # field only; mocks[1] (GET /healthz) differs in method and URL
        for name, old, new, reason in [
            ("json", self.JSON_OLD, 'json: { version: "2.4.1", env: staging }',
             'json: wanted {"env":"staging","version":"2.4.1"}, '
             'got {"canary":false,"env":"prod","version":"2.4.1"}'),
            # the call's credentials are secrets (registered when the call is
            # described): masked in the report; the mock's own text is the
            # scenario file's, shown as written
            ("headers", self.HEADERS_OLD, 'headers: { Authorization: "Bearer other-token" }',
             'headers: wanted {"Authorization":"Bearer other-token"}, '
             'got {"authorization":"Bearer ****","x-request-id":"rb-1"}'),
        ]:
            with self.subTest(name):
                p = self.mutated_deploy("closest-" + name, old, new)
                lines = self.assertFails(p)
                self.assertRegex(lines[0], r"^no mock answers `POST http://api\.test/deploy \{.*\}`; "
                                           r"closest: mocks\[4\] http \{ .* \}, which did not match: "
                                 + re.escape(reason) + "$")
                self.assertNotIn("fixture-token", "\n".join(lines))

    def test_state_mismatch_is_reported_with_both_sides(self):
        text = self.fixture_text("http/wait-healthy.scenario.yaml").replace(
            "waited_intervals: 2", "waited_intervals: 20")
        p = self.scenario("http/wrong-wait.scenario.yaml", text)
        lines = self.assertFails(p, re.compile(r"state: expected \{.*\} to be part of \{.*\}"),
                                 exact=True)
        want, got = re.fullmatch(r"state: expected (\{.*\}) to be part of (\{.*\})", lines[0]).groups()
        self.assertEqual(json.loads(want)["waited_intervals"], 20)
        got = json.loads(got)
        self.assertEqual(got["waited_intervals"], 2)  # the virtual clock moved 2 x 30 s
        self.assertIs(got["waited_a_minute"], True)
        self.assertEqual(got["attempts"], 3)

    def test_transport_error_raises_like_http_does(self):
        # the mock's `error:` raises what the real http would:
        # `http GET URL: connection refused` (and check = false carries it)
        p = self.scenario("http/error-text.scenario.yaml", """
            runbook: service-health
            mocks:
              - http: { url: "http://api.test/healthz" }
              - http: { url: "http://api.test/metrics" }
                respond: { body_file: metrics.txt }
              - http: { url: "http://api.test/release" }
                respond: { json_file: release.json }
              - http: { method: POST, url: "http://api.test/deploy" }
                respond: { status: 202, json: { id: x } }
              - http: { url: "http://dep.test/ping" }
                respond: { error: "connection refused" }
            expect:
              state:
                dep_error: "http GET http://dep.test/ping: connection refused"
              output: [ "dependency down: http GET http://dep.test/ping: connection refused" ]
            """)
        res = self.run_test(p)
        self.assertExit(res, 0)


class ExecAndSh(ScenarioCase):
    def test_not_action_taken(self):
        p = self.scenario("exec/no-restart.scenario.yaml",
                          self.fixture_text("exec/prune.scenario.yaml").replace(
                              'not_actions: [ "systemctl stop", "rm -rf /" ]',
                              'not_actions: [ "systemctl stop", "systemctl restart" ]'))
        self.assertFails(p, "not_actions: `systemctl restart nginx` was taken", exact=True)

    def test_not_action_as_glob(self):
        p = self.scenario("exec/no-rm.scenario.yaml",
                          self.fixture_text("exec/prune.scenario.yaml").replace(
                              'not_actions: [ "systemctl stop", "rm -rf /" ]',
                              'not_actions: [ "sh -c rm *" ]'))
        self.assertFails(p, "not_actions: `sh -c rm -rf /var/cache/app/*` was taken", exact=True)

    def test_a_prefix_must_end_at_a_word_boundary(self):
        p = self.scenario("exec/half-word.scenario.yaml",
                          self.fixture_text("exec/prune.scenario.yaml").replace(
                              '    - "systemctl restart nginx"', '    - "systemctl restart ngi"'))
        self.assertFails(p, re.compile(
            r"actions: expected `systemctl restart ngi` after the ones before it; mutating "
            r"actions taken: find .*; systemctl restart nginx"), exact=True)

    def test_wrong_params_change_the_call(self):
        text = self.fixture_text("exec/prune.scenario.yaml").replace(
            "params: { service: nginx, days: 14 }", "params: { service: apache2, days: 14 }")
        p = self.scenario("exec/apache.scenario.yaml", text)
        self.assertFails(p, re.compile(r"no mock answers `systemctl restart apache2`; closest: "
                                       r"mocks\[\d\] exec \{ .* \}, which did not match: .*"))

    def test_the_closest_mock_says_what_the_call_had(self):
        # "which did not match: <field>: wanted X, got Y" for every field
        self.write(os.path.join(self.sc, "exec", "one-call.lua"), """
            runbook { name = "t/one-call" }
            step("s", function()
              exec{ "systemctl", "restart", "apache2" }
            end)
            """)
        self.write(os.path.join(self.sc, "exec", "one-sh.lua"), """
            runbook { name = "t/one-sh" }
            step("s", function() sh("systemctl restart apache2") end)
            """)
        cases = {
            "argv": ("one-call", "exec: { argv: [ systemctl, restart, nginx ] }",
                     'argv: wanted ["systemctl","restart","nginx"], got ["systemctl","restart","apache2"]'),
            "command": ("one-call", 'exec: { command: "systemctl restart ng*" }',
                        "command: wanted systemctl restart ng*, got systemctl restart apache2"),
            "sh": ("one-sh", 'sh: { command: "systemctl restart ng*" }',
                   "command: wanted systemctl restart ng*, got systemctl restart apache2"),
        }
        for name, (runbook, mock, reason) in cases.items():
            with self.subTest(name):
                p = self.scenario("exec/closest-%s.scenario.yaml" % name, """
                    runbook: %s
                    mocks:
                      - %s
                    """ % (runbook, mock))
                lines = self.assertFails(p)
                self.assertTrue(lines and lines[0].startswith("no mock answers `"), lines)
                self.assertTrue(lines[0].endswith("which did not match: " + reason),
                                "%r\ndoes not end with %r" % (lines[0], reason))

    def test_non_zero_exit_raises_like_exec_does(self):
        # exec raises `exec ARGV: exit code N: <last line of stderr>`
        self.write(os.path.join(self.sc, "exec", "fails.lua"), """
            runbook { name = "t/fails" }
            step("s", function()
              local ok, err = pcall(exec, { "false" })
              state.exec_error = err
              local r = exec({ "false" }, { check = false })
              state.code = r.code
            end)
            """)
        p = self.scenario("exec/fails.scenario.yaml", """
            runbook: fails
            mocks:
              - exec: { argv: [ "false" ] }
                respond: { code: 1, stderr: "first\\nboom\\n" }
            expect:
              state: { exec_error: "exec false: exit code 1: boom", code: 1 }
            """)
        res = self.run_test(p)
        self.assertExit(res, 0)

    def test_non_zero_exit_fails_the_step(self):
        text = self.fixture_text("exec/prune.scenario.yaml").replace(
            "  - exec: { argv: [systemctl, restart, nginx] }",
            "  - exec: { argv: [systemctl, restart, nginx] }\n"
            "    respond: { code: 5, stderr: \"Job for nginx.service failed\\n\" }")
        p = self.scenario("exec/restart-fails.scenario.yaml", text)
        lines = self.assertFails(p, re.compile(
            r"outcome: expected success, got failed \(.*clean-logs\.lua:\d+: .*systemctl restart "
            r"nginx: exit code 5: Job for nginx\.service failed\)"),
            re.compile(r"actions: expected `systemctl restart nginx` after the ones before it; .*"))
        self.assertFalse([l for l in lines if l.startswith("no mock answers")], lines)


class DockerKubectl(ScenarioCase):
    def test_missing_action(self):
        text = self.fixture_text("docker/restart.scenario.yaml").replace(
            'actions: [ "docker restart calendar-api" ]', 'actions: [ "docker restart db" ]')
        p = self.scenario("docker/missing.scenario.yaml", text)
        self.assertFails(p, "actions: expected `docker restart db`; mutating actions taken: "
                            "docker restart calendar-api --time 10", exact=True)

    def test_missing_action_when_none_taken(self):
        text = self.fixture_text("docker/healthy.scenario.yaml").replace(
            'not_actions: [ "docker restart" ]', 'actions: [ "docker restart calendar-api" ]')
        p = self.scenario("docker/none.scenario.yaml", text)
        self.assertFails(p, "actions: expected `docker restart calendar-api`; mutating actions "
                            "taken: none", exact=True)

    def test_docker_name_glob(self):
        text = self.fixture_text("docker/restart.scenario.yaml").replace(
            'name: "calendar-*"', 'name: "db-*"')
        p = self.scenario("docker/other-name.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"no mock answers `docker restart calendar-api --time 10`; closest: mocks\[\d\] docker "
            r"\{ .* \}, which did not match: .*"),
            "required mock never called: mocks[2] docker { name: db-*, verb: restart }")

    def test_actions_out_of_order(self):
        text = self.fixture_text("kubectl/scale.scenario.yaml").replace(
            '    - "kubectl scale deployment/enrichment-service --replicas=5 -n carbon-ingestion"\n'
            '    - "kubectl rollout restart deployment/enrichment-service"\n',
            '    - "kubectl rollout restart deployment/enrichment-service"\n'
            '    - "kubectl scale deployment/enrichment-service --replicas=5 -n carbon-ingestion"\n')
        p = self.scenario("kubectl/order.scenario.yaml", text)
        self.assertFails(
            p, "actions: expected `kubectl scale deployment/enrichment-service --replicas=5 -n "
               "carbon-ingestion` after the ones before it; mutating actions taken: kubectl scale "
               "deployment/enrichment-service --replicas=5 -n carbon-ingestion; kubectl rollout "
               "restart deployment/enrichment-service -n carbon-ingestion", exact=True)

    def test_kubectl_namespace_must_match(self):
        text = self.fixture_text("kubectl/scale.scenario.yaml").replace(
            "params: { namespace: carbon-ingestion,", "params: { namespace: default,")
        p = self.scenario("kubectl/other-ns.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"no mock answers `kubectl get deployment enrichment-service -n default`; closest: "
            r"mocks\[1\] kubectl \{ kind: deployment, name: enrichment-service, namespace: "
            r"carbon-ingestion, verb: get \}, which did not match: namespace: wanted "
            r"carbon-ingestion.*"))

    def test_kubectl_args_must_appear(self):
        text = self.fixture_text("kubectl/scale.scenario.yaml").replace(
            'args: [ "--replicas=5" ]', 'args: [ "--replicas=6" ]')
        p = self.scenario("kubectl/other-args.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"no mock answers `kubectl scale deployment/enrichment-service --replicas=5 -n "
            r"carbon-ingestion`; closest: mocks\[\d\] kubectl \{ .* \}, which did not match: .*"))


class DbNotify(ScenarioCase):
    def test_db_sql_glob_must_match(self):
        text = self.fixture_text("db/requeue.scenario.yaml").replace(
            "UPDATE jobs SET state = 'queued'*", "UPDATE jobs SET state = 'failed'*")
        p = self.scenario("db/other-sql.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"no mock answers `db exec postgres://app@db\.test/jobs: UPDATE jobs SET state = "
            r"'queued' .*`; closest: mocks\[\d\] db \{ .* \}, which did not match: .*"))

    def test_db_rows_and_affected_reach_the_runbook(self):
        text = self.fixture_text("db/requeue.scenario.yaml").replace(
            "requeued: 3", "requeued: 4")
        p = self.scenario("db/wrong-count.scenario.yaml", text)
        lines = self.assertFails(p, re.compile(r"state: expected .*"), exact=True)
        got = json.loads(re.fullmatch(r"state: expected \{.*\} to be part of (\{.*\})", lines[0]).group(1))
        self.assertEqual(got["requeued"], 3)
        self.assertEqual(got["stuck"], [11, 12, 15])
        self.assertEqual(got["queued_now"], 40)

    def test_notification_missing(self):
        text = self.fixture_text("notify/announce.scenario.yaml").replace(
            '    - { text: "Restarting*(runbook)" }\n',
            '    - { text: "Restarting*(runbook)" }\n'
            '    - { channel: pagerduty, text: "database down" }\n'
            '    - { channel: email }\n')
        p = self.scenario("notify/missing.scenario.yaml", text)
        self.assertFails(p, "notifications: none on pagerduty matching 'database down'",
                         "notifications: none on email matching ''", exact=True)

    def test_notification_text_is_not_the_other_channels(self):
        text = self.fixture_text("notify/announce.scenario.yaml").replace(
            '{ channel: slack, text: "Restarting calendar-api" }',
            '{ channel: slack, text: "calendar-api is down" }')
        p = self.scenario("notify/crossed.scenario.yaml", text)
        self.assertFails(p, "notifications: none on slack matching 'calendar-api is down'",
                         exact=True)

    def test_notify_without_a_mock(self):
        text = self.fixture_text("notify/announce.scenario.yaml").replace(
            "  - notify: { channel: webhook }\n", "")
        p = self.scenario("notify/no-webhook-mock.scenario.yaml", text)
        self.assertFails(p, re.compile(
            r"no mock answers `notify webhook status\.example\.test: .*`; closest: mocks\[\d\] "
            r"notify \{ channel: \w+ \}, which did not match: channel: wanted \w+, got webhook"))

    def test_notify_endpoint_from_runbook_yaml(self):
        # a runbook that takes its Slack webhook from runbook.yaml, as the
        # README recommends, is answered by a notify mock like any other
        self.write("runbook.yaml", """
            notify:
              slack: { webhook: "https://hooks.slack.test/services/T0/B0/fromconfig" }
            """)
        self.write("announce.lua", """
            runbook { name = "t/announce-config" }
            step("s", function() notify.slack{ text = "deploy started" } end)
            """)
        self.write("announce.scenario.yaml", """
            runbook: announce
            mocks:
              - notify: { channel: slack }
            expect:
              notifications: [ { channel: slack, text: "deploy started" } ]
            """)
        res = self.run_test("announce.scenario.yaml")
        self.assertExit(res, 0)


class FsConfirm(ScenarioCase):
    def test_seeded_files_are_what_the_runbook_reads(self):
        text = self.fixture_text("fs/rotate.scenario.yaml").replace(
            '/etc/motd: "welcome\\n"', '/etc/motd: "goodbye\\n"')
        p = self.scenario("fs/other-motd.scenario.yaml", text)
        lines = self.assertFails(p, re.compile(r"state: expected .*"), exact=True)
        got = json.loads(re.fullmatch(r"state: expected \{.*\} to be part of (\{.*\})", lines[0]).group(1))
        self.assertEqual(got["motd"], "goodbye\n")
        self.assertEqual(got["files"], ["app.yaml"])
        self.assertEqual(got["glob"], ["/etc/calendar-api/app.yaml.bak"])

    def test_unseeded_file_fails_the_read(self):
        text = self.fixture_text("fs/rotate.scenario.yaml").replace(
            '  /etc/motd: "welcome\\n"\n', "")
        p = self.scenario("fs/no-motd.scenario.yaml", text)
        self.assertFails(p, re.compile(r"outcome: expected success, got failed \(.*/etc/motd.*\)"))

    def test_seed_file_missing_is_reported(self):
        text = self.fixture_text("fs/rotate.scenario.yaml").replace(
            "{ file: app.yaml }", "{ file: nothere.yaml }")
        p = self.scenario("fs/missing-seed.scenario.yaml", text)
        # the line of the seed's file, as the schema's other complaints
        self.assertFails(p, "%s:4: fs[/etc/calendar-api/app.yaml].file: cannot read nothere.yaml: "
                            "No such file or directory" % p, exact=True, mark="malformed")
        # a scenario naming a file that is not there is malformed, like a
        # missing body_file (test_missing_response_file)
        self.assertEqual(self.verdict(p)["status"], "malformed")

    def test_writes_stay_in_the_scratch_directory(self):
        real = self.path("real-target")
        tmpdir = self.path("tmpdir")
        os.makedirs(tmpdir)
        self.write("writer.lua", """
            runbook { name = "t/writer" }
            step("s", function()
              fs.mkdir(%r, { parents = true })
              fs.write(%r .. "/out.txt", "written\\n")
              state.back = fs.read(%r .. "/out.txt")
              state.runbook_visible = fs.exists(%r)
              exec{ "touch", %r .. "/touched" }
            end)
            """ % (real, real, real, self.path("writer.lua"), real))
        self.write("writer.scenario.yaml", """
            runbook: writer
            mocks:
              - exec: { command: "touch *" }
            expect:
              actions: [ "fs mkdir -p %s", "fs write %s/out.txt", "touch %s/touched" ]
              state: { back: "written\\n", runbook_visible: false }
            """ % (real, real, real))
        res = self.run_test("writer.scenario.yaml", env={"TMPDIR": tmpdir})
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(real), "the scenario wrote outside its scratch directory")
        self.assertEqual(os.listdir(tmpdir), [], "scratch directories left behind")

    def test_confirm_declined_wrong_failed_step(self):
        text = self.fixture_text("confirm/declined.scenario.yaml").replace(
            "failed_step: Ask", "failed_step: Restart")
        p = self.scenario("confirm/wrong-step.scenario.yaml", text)
        self.assertFails(p, "failed_step: expected Restart, got Ask", exact=True)

    def test_confirm_answers_change_the_run(self):
        # the list scenario's answers, reversed: no to Proceed? fails the run
        text = self.fixture_text("confirm/list.scenario.yaml").replace(
            'confirm: [ "yes", "no" ]', 'confirm: [ "no", "yes" ]')
        p = self.scenario("confirm/reversed.scenario.yaml", text)
        self.assertFails(
            p, re.compile(r"outcome: expected success, got failed \(.*guarded-restart\.lua:\d+: "
                          r"declined\)"),
            "actions: expected `systemctl restart calendar-api`; mutating actions taken: none")

    def test_confirm_map_by_question(self):
        text = self.fixture_text("confirm/map.scenario.yaml").replace(
            '"purge the cache": "no"', '"purge the cache": "yes"')
        p = self.scenario("confirm/map-yes-unmocked.scenario.yaml", text)
        self.assertFails(p, "no mock answers `sh -c rm -rf /var/cache/calendar-api/*`; there is no "
                            "sh mock")
        text = text.replace("mocks:\n", "mocks:\n  - sh: { command: \"rm *\" }\n")
        p = self.scenario("confirm/map-yes.scenario.yaml", text)
        self.assertFails(p, "not_actions: `sh -c rm -rf /var/cache/calendar-api/*` was taken",
                         'state: expected {"proceed":true,"purged":false} to be part of '
                         '{"proceed":true,"purged":true}', exact=True)

    def test_wrong_outcome_of_a_successful_run(self):
        text = self.fixture_text("confirm/default-yes.scenario.yaml").replace(
            "expect:\n", "expect:\n  outcome: failed\n")
        p = self.scenario("confirm/not-failed.scenario.yaml", text)
        self.assertFails(p, "outcome: expected failed, got success", exact=True)

    def test_output_pattern_missing(self):
        text = self.fixture_text("confirm/declined.scenario.yaml").replace(
            'output: [ "declined" ]', 'output: [ "declined", "cache purged", "*Restart*skipped*" ]')
        p = self.scenario("confirm/output.scenario.yaml", text)
        self.assertFails(p, "output: no 'cache purged' in the output",
                         "output: no '*Restart*skipped*' in the output", exact=True)


class MocksTimesRequired(ScenarioCase):
    def test_required_mock_never_called(self):
        text = self.fixture_text("confirm/list.scenario.yaml").replace(
            "mocks:\n", "mocks:\n  - sh: { command: \"rm -rf *\" }\n    required: true\n")
        p = self.scenario("confirm/required.scenario.yaml", text)
        self.assertFails(p, "required mock never called: mocks[1] sh { command: rm -rf * }",
                         exact=True)

    def test_times_exhausted(self):
        p = self.scenario("mocks/exhausted.scenario.yaml", """
            runbook: flaky-probe
            params: { probes: 2 }
            mocks:
              - http: { method: GET, url: "http://svc.test/ready" }
                respond: { status: 200 }
                times: 1
              - exec: { argv: [ vault, token, lookup ] }
            """)
        self.assertFails(
            p, "no mock answers `GET http://svc.test/ready`; closest: mocks[1] http { method: GET, "
               "url: http://svc.test/ready }, which did not match: already answered 1 time (times: 1)",
            re.compile(r"outcome: expected success, got failed \(.*flaky-probe\.lua:\d+: no mock "
                       r"answers `GET http://svc\.test/ready`.*\)"), exact=True)

    def test_sequence_positions(self):
        text = self.fixture_text("mocks/times.scenario.yaml").replace(
            "seen: [ 500, 503, 200, 200 ]", "seen: [ 500, 200, 200, 200 ]")
        p = self.scenario("mocks/order.scenario.yaml", text)
        lines = self.assertFails(p, exact=False)
        self.assertEqual(len(lines), 1, lines)
        got = json.loads(re.fullmatch(r"state: expected \{.*\} to be part of (\{.*\})", lines[0]).group(1))
        self.assertEqual(got["seen"], [500, 503, 200, 200])
        self.assertEqual(got["tokens"], ["t1", "t2", "fallback"])

    def test_unmatched_call_fails_even_when_the_runbook_caught_it(self):
        self.write(os.path.join(self.sc, "mocks", "catches.lua"), """
            runbook { name = "t/catches" }
            step("s", function()
              state.caught = not pcall(exec, { "pg_isready" })
              local urls = { "http://svc.test/old-ready", "http://svc.test/ready" }
              local n = 0
              wait_until(function()
                n = n + 1
                return http.get(urls[n]).status == 200
              end, { timeout = 600, every = 30 })
              state.attempts = n
            end)
            """)
        p = self.scenario("mocks/catches.scenario.yaml", """
            runbook: catches
            mocks:
              - http: { url: "http://svc.test/ready" }
            expect:
              state: { caught: true, attempts: 2 }
            """)
        self.assertFails(
            p, "no mock answers `pg_isready`; there is no exec mock", exact=True)
        # the caught http call, alone
        p2 = self.scenario("mocks/catches-http.scenario.yaml", """
            runbook: catches
            mocks:
              - exec: { argv: [ pg_isready ] }
                respond: { code: 2 }
              - http: { url: "http://svc.test/ready" }
            expect:
              state: { caught: true, attempts: 2 }
            """)
        self.assertFails(
            p2, "no mock answers `GET http://svc.test/old-ready`; closest: mocks[2] http "
                "{ url: http://svc.test/ready }, which did not match: url: wanted "
                "http://svc.test/ready, got http://svc.test/old-ready", exact=True)


# ---- malformed scenarios ------------------------------------------------------------

class Malformed(ScenarioCase):
    def assertMalformed(self, path, line):
        lines = self.assertFails(path, line, exact=True, mark="malformed")
        v = self.verdict(path)
        self.assertEqual(v["status"], "malformed", v)
        self.assertEqual(v["failures"], lines)
        self.assertEqual(v["_code"], 2)

    def test_yaml_syntax_error_names_file_and_line(self):
        p = self.scenario("docker/broken.scenario.yaml", """
            runbook: restart-unhealthy
            mocks:
              - docker: { verb: inspect, name: calendar-api
                respond: { json: {} }
            """)
        lines = self.assertFails(p, re.compile(re.escape(p) + r":4: .*"), exact=True,
                                 mark="malformed")
        self.assertIn("did not find expected", lines[0])
        self.assertEqual(self.verdict(p)["status"], "malformed")

    def test_yaml_bad_indentation(self):
        p = self.scenario("docker/indent.scenario.yaml",
                          "runbook: restart-unhealthy\nmocks:\n  - docker: { verb: ps }\n"
                          "   respond: { json: [] }\nexpect: {}\n")
        self.assertFails(p, re.compile(re.escape(p) + r":\d+: .+"), exact=True, mark="malformed")

    def test_unknown_key_in_a_mock(self):
        p = self.scenario("docker/reply.scenario.yaml", """
            runbook: restart-unhealthy
            mocks:
              - docker: { verb: inspect, name: calendar-api }
                reply: { json: {} }
            """)
        # the schema's complaint points at the key's line
        # the primitives a mock may answer come from their rows, sorted
        self.assertMalformed(p, "%s:4: mocks[1]: unknown key 'reply' (a mock is one of db, docker, "
                                "exec, http, kubectl, notify, sh, ssh, with respond, times, required)" % p)

    def test_unknown_key_in_a_mocks_match(self):
        p = self.scenario("docker/container.scenario.yaml", """
            runbook: restart-unhealthy
            mocks:
              - docker: { verb: inspect, name: calendar-api }
              - docker: { verb: restart, container: calendar-api }
            """)
        # the fields docker's rows let a mock match on
        self.assertMalformed(p, "%s:4: mocks[2].docker: unknown key 'container' (expected one of: "
                                "containers, cpus, file, force, images, memory, name, project, service, "
                                "services, signal, verb, volumes, words)" % p)

    def test_unknown_keys_elsewhere(self):
        for name, text, msg in [
            ("top", "runbook: restart-unhealthy\nmock: []\n",
             ":2: scenario: unknown key 'mock' (expected one of: confirm, description, env, expect, "
             "fs, mocks, name, now, params, rollback, runbook, skip, timeout)"),
            ("expect", "runbook: restart-unhealthy\nexpect: { outcome: success, actoins: [] }\n",
             ":2: expect: unknown key 'actoins' (expected one of: actions, failed_step, not_actions, "
             "notifications, outcome, output, state)"),
            ("two", "runbook: restart-unhealthy\nmocks:\n  - { docker: { verb: ps }, exec: { argv: [x] } }\n",
             ":3: mocks[1]: one primitive per mock (docker and exec)"),
            ("none", "runbook: restart-unhealthy\nmocks:\n  - { respond: {} }\n",
             ":3: mocks[1]: which primitive does it answer? (db, docker, exec, http, kubectl, notify, sh, ssh)"),
            ("times", "runbook: restart-unhealthy\nmocks:\n  - { docker: { verb: ps }, times: 0 }\n",
             ":3: mocks[1].times: got 0 (expected a whole number >= 1)"),
            ("no-runbook", "mocks: []\n",
             ":1: runbook: missing (expected the runbook to test: a name or a path; it is required)"),
        ]:
            with self.subTest(name):
                p = self.scenario("docker/bad-%s.scenario.yaml" % name, text)
                if isinstance(msg, str):
                    self.assertMalformed(p, ("%s%s" if msg.startswith(":") else "%s: %s") % (p, msg))
                else:
                    self.assertFails(p, re.compile(re.escape(p) + ": " + msg.pattern), exact=True)

    def test_unknown_runbook(self):
        p = self.scenario("docker/nobody.scenario.yaml", """
            runbook: nope/missing
            """)
        self.assertMalformed(p, "%s:1: runbook: no runbook named 'nope/missing'" % p)

    def test_missing_response_file(self):
        p = self.scenario("http/no-body.scenario.yaml", """
            runbook: service-health
            mocks:
              - http: { url: "http://api.test/metrics" }
                respond: { body_file: not-there.txt }
            """)
        self.assertMalformed(p, "%s:4: mocks[1].respond[1].body_file: cannot read not-there.txt: "
                                "No such file or directory" % p)

    def test_malformed_and_failing_scenarios_do_not_stop_the_others(self):
        bad = self.scenario("docker/zz-broken.scenario.yaml", "runbook: [unclosed\n")
        failing = self.scenario("docker/zz-failing.scenario.yaml",
                                self.fixture_text("docker/healthy.scenario.yaml").replace(
                                    "state: { health: healthy }", "state: { health: sick }"))
        res = self.run_test("sc/docker", "sc/kubectl")
        self.assertExit(res, 1)
        self.assertEqual(res.blocks["sc/docker/healthy.scenario.yaml"][0], "pass")
        self.assertEqual(res.blocks["sc/docker/restart.scenario.yaml"][0], "pass")
        self.assertEqual(res.blocks["sc/kubectl/scale.scenario.yaml"][0], "pass")
        self.assertEqual(res.blocks[bad][0], "malformed")
        self.assertRegex(res.blocks[bad][1][0], "^" + re.escape(bad) + r":\d+: ")
        self.assertEqual(res.blocks[failing][0], "fail")
        self.assertSummary(res, 3, 1, errors=1)


# ---- the command: discovery, --filter, --junit, exit codes -------------------------------

class Command(ScenarioCase):
    def test_default_paths_are_runbooks_and_tests(self):
        d = self.path("repo")
        self.write("repo/runbooks/svc/restart.lua", """
            runbook { name = "svc/restart" }
            step("restart", function() docker.restart("web") end)
            """)
        scen = """
            runbook: %s
            mocks:
              - docker: { verb: restart, name: web }
            expect:
              actions: [ "docker restart web" ]
            """
        self.write("repo/runbooks/svc/tests/restart.scenario.yaml", scen % "../restart")
        self.write("repo/tests/smoke/by-name.scenario.yaml", scen % "svc/restart")  # library name
        self.write("repo/elsewhere/ignored.scenario.yaml", scen % "svc/restart")
        self.write("repo/tests/smoke/draft.scenario.yaml.in", "runbook: nothing\n")
        self.write("repo/tests/smoke/notes.yaml", "runbook: nothing\n")
        res = self.run_test(cwd=d)
        self.assertExit(res, 0)
        self.assertEqual(sorted(res.blocks), ["runbooks/svc/tests/restart.scenario.yaml",
                                              "tests/smoke/by-name.scenario.yaml"], res)
        self.assertTrue(all(b[0] == "pass" for b in res.blocks.values()), res)
        self.assertSummary(res, 2, 0)
        # and a failing one among them makes the exit code 1
        self.write("repo/runbooks/svc/tests/wrong.scenario.yaml", scen.replace(
            "docker restart web", "docker restart db") % "../restart")
        res = self.run_test(cwd=d)
        self.assertExit(res, 1)
        self.assertSummary(res, 2, 1)

    def test_no_scenarios(self):
        os.makedirs(self.path("empty", "tests"))
        res = self.run_test(cwd=self.path("empty"))
        self.assertExit(res, 0)
        self.assertIn("no scenarios", res.out)

    def test_filter_substring_and_glob(self):
        res = self.run_test("sc", "--filter", "confirm/")
        self.assertExit(res, 0)
        self.assertEqual(sorted(res.blocks), sorted("sc/" + r for r in PASSING if r.startswith("confirm/")))
        res = self.run_test("sc", "--filter", "*/d*/re*.scenario.yaml")
        self.assertExit(res, 0)
        self.assertEqual(sorted(res.blocks), ["sc/db/requeue.scenario.yaml",
                                              "sc/docker/restart.scenario.yaml"])
        # a failing scenario outside the filter does not count
        self.scenario("kubectl/zz-bad.scenario.yaml", "runbook: nope/missing\n")
        res = self.run_test("sc", "--filter", "docker")
        self.assertExit(res, 0)
        self.assertSummary(res, 2, 0)
        res = self.run_test("sc", "--filter", "no-such-scenario")
        self.assertExit(res, 0)
        self.assertIn("no scenarios (*.scenario.yaml) found matching the filter", res.out)

    def test_exit_codes(self):
        self.assertExit(self.run_test("sc/docker"), 0)
        self.scenario("docker/zz-fail.scenario.yaml",
                      self.fixture_text("docker/healthy.scenario.yaml").replace(
                          "state: { health: healthy }", "state: { health: sick }"))
        self.assertExit(self.run_test("sc/docker"), 1)
        self.assertExit(self.run_test("sc/docker/healthy.scenario.yaml"), 0)
        self.assertExit(self.run_test("sc/docker/zz-fail.scenario.yaml"), 1)
        for bad in (["-j", "0"], ["--jobs", "x"], ["--frobnicate"], ["sc/no-such-dir"], ["--junit"]):
            with self.subTest(bad):
                res = self.run_test(*bad)
                self.assertExit(res, 2)
                self.assertTrue(res.err.strip(), res)
        res = self.rb("test", "--help")
        self.assertExit(res, 0)
        self.assertIn("--junit FILE", res.out)

    def test_junit(self):
        # more in test_junit.py (schemas, junitparser, system-out, secrets)
        self.scenario("docker/zz-fail.scenario.yaml",
                      self.fixture_text("docker/healthy.scenario.yaml").replace(
                          "state: { health: healthy }", "state: { health: sick }"))
        self.scenario("docker/zz-malformed.scenario.yaml", "runbook: nope/missing\n")
        xml = self.path("report.xml")
        res = self.run_test("sc/docker", "sc/skip", "--junit", xml)
        self.assertExit(res, 1)
        self.assertSummary(res, 2, 1, 1, errors=1)
        root = ET.parse(xml).getroot()
        self.assertEqual(root.tag, "testsuites")
        self.assertEqual((root.get("tests"), root.get("failures"), root.get("errors")),
                         ("5", "1", "1"))
        # a suite per runbook, named as the runbook is; one the scenario
        # cannot find, as the scenario names it
        suites = {s.get("name"): s for s in root.findall("testsuite")}
        self.assertEqual(sorted(suites), ["nope/missing", "scenarios/docker-restart-unhealthy",
                                          "scenarios/mocks-flaky-probe"])
        docker = suites["scenarios/docker-restart-unhealthy"]
        self.assertEqual((docker.get("tests"), docker.get("failures"), docker.get("errors")),
                         ("3", "1", "0"))
        self.assertEqual(suites["scenarios/mocks-flaky-probe"].get("skipped"), "1")
        cases = {c.get("name"): c for c in root.iter("testcase")}
        self.assertEqual(sorted(cases), ["healthy", "pending", "restart", "zz-fail", "zz-malformed"])
        for name, suite in suites.items():
            for c in suite.findall("testcase"):
                self.assertEqual(c.get("classname"), name)
        for ok in ("healthy", "restart"):
            self.assertEqual([e.tag for e in cases[ok]], ["system-out"], ok)
            self.assertIn("▶ scenarios/docker-restart-unhealthy", cases[ok].find("system-out").text)
            self.assertGreaterEqual(float(cases[ok].get("time")), 0)
        fail = cases["zz-fail"].findall("failure")
        self.assertEqual(len(fail), 1)
        self.assertTrue(fail[0].get("message").startswith(
            'state: expected {"health":"sick"} to be part of {'), fail[0].get("message"))
        self.assertIn('"health":"healthy"', fail[0].text)
        self.assertIn("sc/docker/zz-fail.scenario.yaml", fail[0].text)
        mal = cases["zz-malformed"].findall("error")
        self.assertEqual(len(mal), 1)
        self.assertEqual(mal[0].get("type"), "malformed")
        self.assertEqual(mal[0].get("message"), "sc/docker/zz-malformed.scenario.yaml:1: runbook: "
                                                "no runbook named 'nope/missing'")
        skipped = cases["pending"].findall("skipped")
        self.assertEqual(len(skipped), 1)
        self.assertEqual(skipped[0].get("message"), "waiting for the staging API")

    def test_junit_all_passing(self):
        xml = self.path("ok.xml")
        res = self.run_test("sc/kubectl", "sc/db", "--junit", xml)
        self.assertExit(res, 0)
        root = ET.parse(xml).getroot()
        self.assertEqual((root.get("tests"), root.get("failures"), root.get("errors")),
                         ("2", "0", "0"))
        self.assertEqual(len(root.findall("testsuite")), 2)  # two runbooks
        self.assertEqual(root.findall(".//failure") + root.findall(".//error"), [])

    def test_one_prints_a_json_verdict(self):
        v = self.verdict("sc/kubectl/scale.scenario.yaml")
        self.assertEqual(v["status"], "passed")
        self.assertIsInstance(v["duration_ms"], int)
        self.assertIn("→ kubectl scale deployment/enrichment-service --replicas=5 -n carbon-ingestion",
                      v["output"])
        p = self.scenario("kubectl/zz-fail.scenario.yaml",
                          self.fixture_text("kubectl/scale.scenario.yaml").replace(
                              "state: { before: 2, pods: 3 }", "state: { before: 2, pods: 4 }"))
        v = self.verdict(p)
        self.assertEqual(v["status"], "failed")
        self.assertEqual(v["_code"], 1)
        self.assertEqual(len(v["failures"]), 1)
        self.assertTrue(v["failures"][0].startswith('state: expected {"before":2,"pods":4}'), v)
        v = self.verdict("sc/skip/pending.scenario.yaml")
        self.assertEqual(v["status"], "skipped")



class Secrets(RunbookTestCase):
    def test_secret_without_its_variable_gets_a_stand_in(self):
        # CI runs scenarios without the real secrets; live, the same call fails
        self.write("s.lua", """
            runbook { name = "t/secret" }
            step("s", function()
              local tok = secret("RB_SCENARIO_TOKEN")
              state.tok = tok
              http.post("http://api.test/x", { headers = { Authorization = "Bearer " .. tok } })
            end)
        """)
        self.write("s.scenario.yaml", """
            runbook: s.lua
            mocks:
              - http: { method: POST, url: "http://api.test/x", headers: { Authorization: "Bearer scenario-secret-RB_SCENARIO_TOKEN" } }
            expect:
              actions: [ "POST http://api.test/x" ]
              state: { tok: scenario-secret-RB_SCENARIO_TOKEN }
        """)
        res = self.rb("test", "s.scenario.yaml", cwd=self.tmp, drop_env=("RB_SCENARIO_TOKEN",))
        self.assertEqual(res.code, 0, res.all)
        res = self.rb("run", self.path("s.lua"), "--no-audit", drop_env=("RB_SCENARIO_TOKEN",))
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("secret 'RB_SCENARIO_TOKEN' is not set", res.all)

    def test_notify_without_endpoints_gets_stand_ins(self):
        # no runbook.yaml: the team's webhook, routing key and SMTP server are
        # configured nowhere in CI; the mocks answer, nothing is sent
        self.write("n.lua", """
            runbook { name = "t/notify" }
            step("page", function()
              notify.slack{ text = "disk full" }
              notify.pagerduty{ summary = "disk full", severity = "critical" }
              notify.email{ subject = "disk full", body = "on db-1" }
            end)
        """)
        self.write("n.scenario.yaml", """
            runbook: n.lua
            mocks:
              - notify: { channel: slack }
              - notify: { channel: pagerduty }
              - notify: { channel: email }
            expect:
              notifications:
                - { channel: slack, text: "disk full" }
                - { channel: pagerduty }
                - { channel: email }
        """)
        res = self.rb("test", "n.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)
        res = self.rb("run", self.path("n.lua"), "--no-audit")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("notify.slack: no webhook", res.all)
        # a dry-run sends nothing either: it goes on, and says live would fail
        res = self.rb("run", self.path("n.lua"), "--no-audit", "--dry-run")
        self.assertEqual(res.code, 0, res.all)
        self.assertIn("notify.slack: no webhook configured (notify.slack.webhook_secret in "
                      "runbook.yaml): a live run would fail here", res.all)
        self.assertIn('would: notify slack slack-webhook.not-configured.invalid: "disk full"', res.all)
        self.assertIn("notify.pagerduty: no routing key configured", res.all)
        self.assertIn("notify.email: no SMTP server configured", res.all)
        self.assertIn('would: notify email oncall@not-configured.invalid: "disk full"', res.all)


class Rollback(RunbookTestCase):
    RB = """
        runbook { name = "t/rollback" }
        step("Switch traffic", { undo = function() http.post("http://lb.test/switch/blue") end },
        function() http.post("http://lb.test/switch/green") end)
        step("Verify", function() check(http.get("http://green.test/healthz").status == 200, "green unhealthy") end)
    """

    def scenario(self, rollback):
        self.write("r.lua", self.RB)
        self.write("r.scenario.yaml", """
            runbook: r.lua
            %s
            mocks:
              - http: { method: POST, url: "http://lb.test/switch/*" }
              - http: { method: GET, url: "http://green.test/healthz" }
                respond: { status: 503 }
            expect:
              outcome: failed
              failed_step: Verify
              actions: [ "POST http://lb.test/switch/green", "POST http://lb.test/switch/blue" ]
        """ % rollback)
        return self.rb("test", "r.scenario.yaml", "--coverage", cwd=self.tmp)

    def test_rollback_runs_the_undo_of_completed_steps(self):
        res = self.scenario("rollback: true")
        self.assertEqual(res.code, 0, res.all)
        self.assertNotIn("never exercised", res.out)

    def test_without_rollback_no_undo(self):
        res = self.scenario("")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("POST http://lb.test/switch/blue", res.out)

    def test_rollback_must_be_a_boolean(self):
        res = self.scenario("rollback: sometimes")
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("r.scenario.yaml:2: rollback: got 'sometimes' (expected true or false", res.out)


class SeedsAndExecErrors(RunbookTestCase):
    def test_seed_ages_order_backups(self):
        self.write("s.lua", """
            runbook { name = "t/seed" }
            local backup = require "backup"
            step("list", function()
              state.names = {}
              for _, b in ipairs(backup.list("/backups/*.tar.gz")) do
                state.names[#state.names + 1] = b.name .. ":" .. math.floor(b.age_days + 0.5)
              end
              local plan = backup.plan(backup.list("/backups/*.tar.gz"), { keep_days = 7 })
              state.delete = {}
              for _, b in ipairs(plan.delete) do state.delete[#state.delete + 1] = b.name end
            end)
        """)
        self.write("s.scenario.yaml", """
            runbook: s.lua
            fs:
              /backups/a.tar.gz: { text: "x", age_days: 1 }
              /backups/b.tar.gz: { text: "x", age_days: 10 }
              /backups/c.tar.gz: "plain"
            expect:
              state: { names: [ "c.tar.gz:0", "a.tar.gz:1", "b.tar.gz:10" ], delete: [ b.tar.gz ] }
        """)
        res = self.rb("test", "s.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)

    def test_seed_keys_are_checked(self):
        self.write("s.lua", 'runbook { name = "t/seed" }\nstep("s", function() end)\n')
        self.write("s.scenario.yaml", """
            runbook: s.lua
            fs:
              /backups/a.tar.gz: { text: "x", age: 1 }
        """)
        res = self.rb("test", "s.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("s.scenario.yaml:3: fs[/backups/a.tar.gz]: unknown key 'age' (expected one of: "
                      "age_days, file, text)", res.out)

    def test_os_date_and_time_follow_the_virtual_clock(self):
        # os.date takes now()'s fractional seconds; without a time, os.date
        # and os.time read the engine's clock, which a scenario's sleep moves
        self.write("d.lua", """
            runbook { name = "t/dates" }
            step("d", function()
              local t0 = os.time()
              state.yesterday_ok = os.date("!%Y-%m-%d", now() - 86400) == os.date("!%Y-%m-%d", t0 - 86400)
              sleep(2 * 86400)
              state.advanced = os.time() - t0
              state.explicit = os.time{ year = 2024, month = 1, day = 1, hour = 12 } > 0
              state.epoch_year = os.date("!*t", 0).year
            end)
        """)
        self.write("d.scenario.yaml", """
            runbook: d.lua
            expect:
              state: { yesterday_ok: true, advanced: 172800, explicit: true, epoch_year: 1970 }
        """)
        res = self.rb("test", "d.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)

    def test_kubectl_result_file_and_check_false(self):
        self.write("k.lua", """
            runbook { name = "t/kubectl" }
            step("s", function()
              state.logs = kubectl.logs("api-0", { namespace = "prod", tail = 5 })
              local r = kubectl.get("deployment", "gone", { namespace = "prod", check = false })
              state.ok, state.err = r.ok, r.error
              state.raised = not pcall(kubectl.get, "deployment", "gone", { namespace = "prod" })
            end)
        """)
        self.write("api-0.log", "line one\nERROR boom\n")
        self.write("k.scenario.yaml", """
            runbook: k.lua
            mocks:
              - kubectl: { verb: logs, name: api-0 }
                respond: { result_file: api-0.log }
              - kubectl: { verb: get, kind: deployment, name: gone }
                respond: { error: 'deployments.apps "gone" not found' }
            expect:
              state: { logs: "line one\\nERROR boom\\n", ok: false,
                       err: 'deployments.apps "gone" not found', raised: true }
        """)
        res = self.rb("test", "k.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)

    def test_exec_mock_error_raises_like_a_timeout(self):
        self.write("e.lua", """
            runbook { name = "t/exec-error" }
            step("s", function()
              local ok, err = pcall(exec, { "pg_dump", "app" }, { timeout = 5 })
              state.ok, state.err = ok, tostring(err)
            end)
        """)
        self.write("e.scenario.yaml", """
            runbook: e.lua
            mocks:
              - exec: { command: "pg_dump app" }
                respond: { error: "timed out after 5 s" }
            expect:
              state: { ok: false, err: "exec pg_dump app: timed out after 5 s" }
        """)
        res = self.rb("test", "e.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)


if __name__ == "__main__":
    unittest.main()
