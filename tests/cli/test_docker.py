"""docker.* (SPEC §3, §4) against tests/fixtures/fake_docker.py: a fake of the
Docker Engine API wire protocol on a unix socket, precise enough that the real
docker CLI works against it.  The real engine (test_docker_engine.py, Debian's
dockerd) is the judge of behaviour; this fake stays for what that engine
cannot be made to do on demand: API version negotiation (Debian's 20.10
speaks only 1.41, the fake 1.47 and 1.41 with raw-stream logs), a TCP
DOCKER_HOST, compose-labelled containers without compose, and recording
against a daemon whose answers are fixed, and the failures a real engine
cannot be made to produce on demand (class EngineFaults: a 500, a dropped
connection, an engine that never answers).  The engine's refusals (404,
409) are tested against the real one.  The tests
compare docker.ps()/stats() with what `docker ... --format json` prints
against the same fake, assert the exact API requests the writes sent, and
check that in dry-run reads reach the fake while writes never do."""
import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
import unittest

from rbtest import FIXTURES, RunbookTestCase

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"


class FakeDocker:
    def __init__(self, case, api=None, tcp=False, compose_project=None, faults=()):
        if not hasattr(case, "_fakes"):
            case._fakes = []
        n = len(case._fakes)
        case._fakes.append(self)
        self.sock = case.path("docker-%d.sock" % n)
        self.log = case.path("docker-%d.jsonl" % n)
        argv = [sys.executable, os.path.join(FIXTURES, "fake_docker.py"), "--log", self.log]
        argv += ["--tcp"] if tcp else ["--socket", self.sock]
        if api:
            argv += ["--api-version", api]
        if compose_project:
            argv += ["--compose-project", compose_project]
        for f in faults:
            argv += ["--fault", f]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        case.addCleanup(self.stop)
        line = b""
        deadline = time.monotonic() + 20
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                c = os.read(self.proc.stdout.fileno(), 256)
                if not c:
                    break
                line += c
        parts = line.decode().split()
        if len(parts) != 2 or parts[0] != "READY":
            raise RuntimeError("fake_docker.py did not start: %r" % line)
        self.host = parts[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def requests(self, method=None):
        out = []
        if os.path.exists(self.log):
            with open(self.log) as f:
                for l in f:
                    if l.strip():
                        e = json.loads(l)
                        if method is None or e["method"] == method:
                            out.append(e)
        return out

    def clear(self):
        open(self.log, "w").close()


class DockerCase(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.fake = FakeDocker(self)
        self.env["DOCKER_HOST"] = self.fake.host

    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/docker", **kw)

    def cli(self, *args, host=None):
        env = self.child_env({"DOCKER_HOST": host or self.fake.host})
        p = subprocess.run([DOCKER_CLI] + list(args), capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(p.returncode, 0, "docker %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def cli_json(self, *args):
        return [json.loads(l) for l in self.cli(*args).splitlines() if l.strip()]


@unittest.skipUnless(os.access(DOCKER_CLI, os.X_OK), "no docker CLI")
class AgainstTheCli(DockerCase):
    def test_ps_matches_docker_ps_format_json(self):
        res = self.runbook("""
            step("ps", function()
              local function pick(list)
                local t = {}
                for _, c in ipairs(list) do
                  local labels = {}
                  for k, v in pairs(c.Labels) do labels[#labels + 1] = k .. "=" .. v end
                  table.sort(labels)
                  t[#t + 1] = { id = c.Id:sub(1, 12), name = c.name, image = c.Image,
                                state = c.State, status = c.Status, labels = labels,
                                command = c.Command }
                end
                return t
              end
              out(pick(docker.ps()))
              out(pick(docker.ps{ all = true }))
              out(pick(docker.ps{ all = true, filters = { label = "com.docker.compose.project=calendar" } }))
              out(pick(docker.ps{ all = true, filters = { status = "exited" } }))
            end)
            """)
        self.assertExit(res, 0)

        def cli_rows(*extra):
            rows = []
            for c in self.cli_json("ps", "--format", "json", "--no-trunc", *extra):
                rows.append({"id": c["ID"][:12], "name": c["Names"], "image": c["Image"],
                             "state": c["State"], "status": c["Status"],
                             "labels": sorted(c["Labels"].split(",")) if c["Labels"] else [],
                             "command": json.loads(c["Command"])})
            return rows

        self.assertEqual(res.data[0], cli_rows())
        self.assertEqual(len(res.data[0]), 2)
        self.assertEqual(res.data[1], cli_rows("-a"))
        self.assertEqual(len(res.data[1]), 3)
        self.assertEqual(res.data[2], cli_rows("-a", "--filter",
                                                "label=com.docker.compose.project=calendar"))
        self.assertEqual(res.data[3], cli_rows("-a", "--filter", "status=exited"))
        self.assertEqual([r["name"] for r in res.data[3]], ["old-worker"])

    def test_stats_match_docker_stats_no_stream(self):
        res = self.runbook("""
            step("stats", function()
              local s = docker.stats("calendar-api")
              out({ cpu = string.format("%.2f%%", s.cpu_percent),
                    mem = string.format("%.2f%%", s.memory_percent),
                    usage = s.memory_usage, limit = s.memory_limit, pids = s.pids })
            end)
            """)
        self.assertExit(res, 0)
        cli = self.cli_json("stats", "--no-stream", "--format", "json", "calendar-api")[0]
        d = res.data[0]
        self.assertEqual(d["cpu"], cli["CPUPerc"])
        self.assertEqual(d["mem"], cli["MemPerc"])
        self.assertEqual(d["cpu"], "120.00%")
        self.assertEqual((d["usage"], d["limit"], d["pids"]), (192 * 2 ** 20, 2 * 2 ** 30, 12))
        self.assertEqual(cli["MemUsage"], "192MiB / 2GiB")

    def test_update_sends_what_the_cli_sends(self):
        res = self.runbook("""
            step("update", function()
              docker.update("calendar-api", { memory = "2g", cpus = 1.0 })
            end)
            """)
        self.assertExit(res, 0)
        ours = json.loads(self.fake.requests("POST")[-1]["body"])
        self.fake.clear()
        self.cli("update", "--memory", "2g", "--cpus", "1", "calendar-api")
        theirs = json.loads(self.fake.requests("POST")[-1]["body"])
        for k in ours:
            self.assertEqual(ours[k], theirs[k], k)


class Reads(DockerCase):
    def test_inspect_logs_version_info_images(self):
        res = self.runbook("""
            step("reads", function()
              local i = docker.inspect("calendar-api")
              out({ status = i.State.Status, name = i.name, image = i.Config.Image,
                    project = i.Config.Labels["com.docker.compose.project"] })
              local l = docker.logs("calendar-api", { tail = 3 })
              out({ stdout = l.stdout, stderr = l.stderr })
              local all = docker.logs("calendar-api")
              out({ stdout = all.stdout, stderr = all.stderr })
              local ts = docker.logs("calendar-db", { timestamps = true, since = "1h" })
              out({ stdout = ts.stdout })
              local v = docker.version()
              out({ version = v.Version, api = v.ApiVersion })
              local info = docker.info()
              out({ name = info.Name, running = info.ContainersRunning })
              local imgs = docker.images()
              out({ n = #imgs, tag = imgs[1].RepoTags[1] })
              local ps = docker.ps{ filters = { label = { ["com.docker.compose.service"] = "db" } } }
              out({ n = #ps, name = ps[1].name, project = ps[1].project, service = ps[1].service })
            end)
            """)
        self.assertExit(res, 0)
        d = res.data
        self.assertEqual(d[0], {"status": "running", "name": "calendar-api",
                                "image": "registry.example.com/calendar-api:1.4.2",
                                "project": "calendar"})
        self.assertEqual(d[1], {"stdout": "GET /healthz 200\nGET /events 200\n",
                                "stderr": "warning: slow query 2.3s\n"})
        self.assertEqual(d[2], {"stdout": "listening on :8080\nGET /healthz 200\nGET /events 200\n",
                                "stderr": "warning: slow query 2.3s\n"})
        self.assertRegex(d[3]["stdout"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.0+Z database system is ready")
        self.assertEqual(d[4], {"version": "27.3.1", "api": "1.47"})
        self.assertEqual(d[5], {"name": "fake-docker", "running": 2})
        self.assertEqual(d[6], {"n": 2, "tag": "postgres:16"})
        self.assertEqual(d[7], {"n": 1, "name": "calendar-db", "project": "calendar",
                                "service": "db"})
        gets = self.fake.requests("GET")
        self.assertEqual(gets[0]["path"], "/_ping")
        self.assertEqual(sum(1 for g in gets if g["path"] == "/_ping"), 1, "negotiated once")
        logs = [g for g in gets if g["path"].endswith("/logs")]
        self.assertEqual(logs[0]["path"], "/v1.47/containers/calendar-api/logs")
        self.assertEqual(logs[0]["args"], {"stdout": "1", "stderr": "1", "tail": "3"})
        self.assertIn("since", logs[2]["args"])
        self.assertLess(abs(int(logs[2]["args"]["since"]) - (time.time() - 3600)), 120)
        acts = self.actions(primitive="docker")
        self.assertTrue(all(a["class"] == "read" for a in acts))
        self.assertEqual(acts[0]["words"], "docker inspect calendar-api")
        self.assertEqual(acts[1]["words"], "docker logs calendar-api --tail 3")

    def test_older_api_is_negotiated_and_raw_stream_demultiplexed(self):
        fake = FakeDocker(self, api="1.41")
        res = self.runbook("""
            step("old", function()
              local l = docker.logs("calendar-api", { tail = 2 })
              out({ stdout = l.stdout, stderr = l.stderr, api = docker.version().negotiated_api })
            end)
            """, env={"DOCKER_HOST": fake.host})
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"stdout": "GET /healthz 200\nGET /events 200\n",
                                       "stderr": "", "api": "1.41"})
        paths = [r["path"] for r in fake.requests()]
        self.assertEqual(paths, ["/_ping", "/v1.41/containers/calendar-api/logs", "/v1.41/version"])

    def test_tcp_docker_host(self):
        fake = FakeDocker(self, tcp=True)
        self.assertTrue(fake.host.startswith("tcp://127.0.0.1:"))
        res = self.runbook("""
            step("ps", function() out(#docker.ps{ all = true }) end)
            """, env={"DOCKER_HOST": fake.host})
        self.assertExit(res, 0)
        self.assertEqual(res.data, [3])
        self.assertEqual(fake.requests()[-1]["path"], "/v1.47/containers/json")


    def test_host_from_runbook_yaml_and_docker_host_wins(self):
        other = FakeDocker(self)
        self.write("runbook.yaml", """
            docker:
              host: %s
            """ % other.host)
        body = """
            step("ps", function() out(#docker.ps()) end)
            """
        res = self.runbook(body, drop_env=("DOCKER_HOST",))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [2])
        self.assertEqual(len(other.requests()), 2)
        self.assertEqual(self.fake.requests(), [])
        res = self.runbook(body)  # DOCKER_HOST beats runbook.yaml
        self.assertExit(res, 0)
        self.assertEqual(len(other.requests()), 2)
        self.assertEqual(len(self.fake.requests()), 2)


class Writes(DockerCase):
    def test_exact_requests_and_audit(self):
        res = self.runbook("""
            step("fix", function()
              out(docker.restart("calendar-api"))
              out(docker.restart("calendar-api", { timeout = 10 }))
              out(docker.update("calendar-api", { memory = "2g", cpus = 1 }))
              out(docker.stop("calendar-db", { timeout = 3 }))
              out(docker.stop("calendar-db"))
              out(docker.start("calendar-db"))
              out(docker.kill("calendar-db", { signal = "SIGKILL" }))
              out(docker.prune{ containers = true })
              out(#docker.ps{ all = true })
            end)
            """)
        self.assertExit(res, 0)
        posts = [(r["path"], r["query"], r["body"]) for r in self.fake.requests("POST")]
        self.assertEqual(posts, [
            ("/v1.47/containers/calendar-api/restart", "", ""),
            ("/v1.47/containers/calendar-api/restart", "t=10", ""),
            ("/v1.47/containers/calendar-api/update", "", posts[2][2]),
            ("/v1.47/containers/calendar-db/stop", "t=3", ""),
            ("/v1.47/containers/calendar-db/stop", "", ""),
            ("/v1.47/containers/calendar-db/start", "", ""),
            ("/v1.47/containers/calendar-db/kill", "signal=SIGKILL", ""),
            ("/v1.47/containers/prune", "", ""),
        ])
        self.assertEqual(json.loads(posts[2][2]), {"Memory": 2147483648, "NanoCpus": 1000000000})
        upd = self.fake.requests("POST")[2]
        self.assertEqual(upd["headers"]["content-type"], "application/json")
        d = res.data
        self.assertEqual(d[0], {"ok": True, "name": "calendar-api", "status": 204,
                                "changed": True})
        self.assertEqual(d[2], {"ok": True, "name": "calendar-api", "status": 200,
                                "warnings": []})
        self.assertEqual(d[4]["status"], 304)
        self.assertFalse(d[4]["changed"])
        self.assertEqual(d[7]["containers"]["ContainersDeleted"],
                         ["b2" * 32, "c3" * 32])
        self.assertEqual(d[8], 1)
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["target"], a["class"], a["words"]) for a in acts[:4]], [
            ("restart", "calendar-api", "mutate", "docker restart calendar-api"),
            ("restart", "calendar-api", "mutate", "docker restart calendar-api --time 10"),
            ("update", "calendar-api", "mutate",
             "docker update calendar-api --memory 2g --cpus 1"),
            ("stop", "calendar-db", "mutate", "docker stop calendar-db --time 3"),
        ])
        self.assertTrue(all(a["status"] == "ok" and not a["simulated"] for a in acts[:-1]))
        self.assertEqual(acts[-1]["class"], "read")
        self.assertIn("docker restart calendar-api", res.out)

    def test_dry_run_reads_reach_the_fake_writes_never(self):
        res = self.runbook("""
            step("fix", function()
              out(#docker.ps{ all = true })
              local r = docker.restart("calendar-api")
              out({ ok = r.ok, dry_run = r.dry_run })
              docker.update("calendar-api", { memory = "2g", cpus = 1 })
              docker.stop("calendar-db")
              docker.prune{ containers = true, images = true, volumes = true }
              out(docker.inspect("calendar-db").State.Status)
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [3, {"ok": True, "dry_run": True}, "running"])
        self.assertIn("would: docker restart calendar-api", res.out)
        self.assertIn("would: docker update calendar-api --memory 2g --cpus 1", res.out)
        self.assertIn("would: docker stop calendar-db", res.out)
        self.assertIn("would: docker prune containers images volumes", res.out)
        self.assertEqual(self.fake.requests("POST"), [])
        self.assertEqual([r["path"] for r in self.fake.requests()],
                         ["/_ping", "/v1.47/containers/json", "/v1.47/containers/calendar-db/json"])
        acts = self.actions(primitive="docker")
        self.assertEqual([a["simulated"] for a in acts], [False, True, True, True, True, False])


    def test_readonly_override_is_honoured_in_dry_run(self):
        res = self.runbook("""
            step("fix", function()
              out(docker.start("calendar-db", { readonly = true }))
            end)
            """, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"ok": True, "name": "calendar-db", "status": 304,
                                     "changed": False}])
        self.assertEqual([r["path"] for r in self.fake.requests("POST")],
                         ["/v1.47/containers/calendar-db/start"])
        a = self.actions(primitive="docker")[0]
        self.assertEqual((a["class"], a["simulated"]), ("read", False))


class Errors(DockerCase):
    def test_no_such_container_names_it(self):
        res = self.runbook("""
            step("fix", function() docker.restart("calendar-apj") end)
            """)
        self.assertExit(res, 1)
        self.assertIn("docker restart calendar-apj: no such container: calendar-apj", res.all)
        a = self.actions(primitive="docker")[0]
        self.assertEqual(a["status"], "error")
        self.assertIn("no such container: calendar-apj", a["error"])
        self.assertEqual(a.get("http_status"), 404)

    def test_missing_daemon_is_one_clear_line(self):
        sock = self.path("nothing-here.sock")
        res = self.runbook("""
            step("look", function() docker.ps() end)
            """, env={"DOCKER_HOST": "unix://" + sock})
        self.assertExit(res, 1)
        line = "cannot reach Docker at unix://%s: " % sock
        self.assertIn(line, res.all)
        self.assertEqual(self.actions(primitive="docker")[0]["error"].count("\n"), 0)
        self.assertNotIn("http GET", res.all)
        self.assertNotIn("stack traceback", res.all)

    def test_misuse(self):
        res = self.runbook("""
            step("a", function() docker.prune{} end)
            """)
        self.assertExit(res, 1)
        self.assertIn("say what to prune", res.all)
        res = self.runbook("""
            step("a", function() docker.update("calendar-api", { memory = "lots" }) end)
            """)
        self.assertExit(res, 1)
        self.assertIn("cannot read a size from \"lots\"", res.all)
        self.assertEqual(self.fake.requests("POST"), [])


class EngineFaults(RunbookTestCase):
    """What a real engine cannot be made to do on demand, from the fake."""

    def runbook_with(self, faults, body, *flags):
        fake = FakeDocker(self, faults=faults)
        self.env["DOCKER_HOST"] = fake.host
        return fake, self.run_body(body, *flags, name="t/docker")

    def test_a_500_names_the_action_and_quotes_the_engine(self):
        fake, res = self.runbook_with(["POST:/containers/[^/]+/restart:500"], """
            step("restart", function() docker.restart("calendar-api") end)
            """)
        self.assertExit(res, 1)
        self.assertIn("docker restart calendar-api: fault injected: POST "
                      "/containers/calendar-api/restart", res.all)
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["status"]) for a in acts], [("restart", "error")])

    def test_a_dropped_connection_is_one_clear_line(self):
        fake, res = self.runbook_with(["GET:/containers/json:drop"], """
            step("ps", function() docker.ps() end)
            """)
        self.assertExit(res, 1)
        self.assertRegex(res.all, r"cannot reach Docker at %s: \S" % fake.host)
        self.assertNotIn("stack traceback", res.all)

    def test_an_engine_that_never_answers_cannot_hang_the_run(self):
        fake, res = self.runbook_with(["POST:/containers/[^/]+/stop:hang"], """
            step("stop", function() docker.stop("calendar-api", { timeout = 1 }) end)
            """, "--timeout", "2s")
        self.assertNotEqual(res.code, 0)
        self.assertIn("timed out", res.all)
        self.assertEqual(len(fake.requests("POST")), 1)   # it was asked, once
        run = self.records(kind="run")[-1]
        self.assertEqual(run["outcome"], "failed")
        self.assertIn("timed out", run["error"])


class Compose(DockerCase):
    """docker.compose(file): ps/restart through the Engine API by the compose
    labels; pull/up/down/logs through `docker compose` by the funnelled exec."""

    def compose_file(self, project_dir="calendar"):
        return self.write(os.path.join(project_dir, "docker-compose.yml"),
                          "services:\n  api:\n    image: calendar-api\n")

    def test_ps_lists_the_projects_containers(self):
        f = self.compose_file()
        res = self.runbook("""
            step("ps", function()
              local c = docker.compose(%s)
              local t = {}
              for _, x in ipairs(c:ps()) do t[#t + 1] = { x.name, x.service, x.state } end
              out({ project = c.project, ps = t })
              out(#docker.compose(%s, { project = "nothing" }):ps())
            end)
            """ % (json.dumps(f), json.dumps(f)))
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"project": "calendar",
                                     "ps": [["calendar-api", "api", "running"],
                                            ["calendar-db", "db", "running"]]}, 0])
        gets = [r for r in self.fake.requests("GET") if r["path"].endswith("/containers/json")]
        self.assertEqual(json.loads(gets[0]["args"]["filters"]),
                         {"label": ["com.docker.compose.project=calendar"]})
        self.assertEqual(gets[0]["args"]["all"], "1")
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["class"], a["words"]) for a in acts],
                         [("compose ps", "read", "docker compose ps --all")] * 2)

    def test_project_defaults_to_the_directory_and_can_be_given(self):
        fake = FakeDocker(self, compose_project="deployment")
        f = self.write("deployment/docker-compose.prod.yml", "services: {}\n")
        self.write("other/docker-compose.yml", "name: Deployment\nservices: {}\n")
        res = self.runbook("""
            step("ps", function()
              local names = {}
              for _, x in ipairs(docker.compose("deployment/docker-compose.prod.yml"):ps()) do
                names[#names + 1] = x.name
              end
              out(names)
              out(docker.compose("other/docker-compose.yml").project)
              out(docker.compose("x/docker-compose.yml", { project = "deployment" }).project)
              out(docker.compose("/nowhere/My_Proj.d/compose.yml").project)
            end)
            """, env={"DOCKER_HOST": fake.host})
        self.assertExit(res, 0)
        self.assertTrue(os.path.exists(f))
        self.assertEqual(res.data[0], ["deployment-calendar-api-1", "deployment-postgres-1",
                                       "deployment-redis-1"])
        self.assertEqual(res.data[1:], ["deployment", "deployment", "my_projd"])

    def test_restart_posts_for_exactly_that_services_containers(self):
        fake = FakeDocker(self, compose_project="deployment")
        self.write("deployment/docker-compose.prod.yml", "services: {}\n")
        res = self.runbook("""
            step("fix", function()
              local c = docker.compose("deployment/docker-compose.prod.yml")
              out(c:restart("calendar-api"))
              out(c:restart("calendar-api", { timeout = 10 }))
              out(docker.inspect("deployment-calendar-api-1").State.Status)
            end)
            """, env={"DOCKER_HOST": fake.host})
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"ok": True, "project": "deployment",
                                       "service": "calendar-api",
                                       "containers": ["deployment-calendar-api-1"]})
        self.assertEqual(res.data[2], "running")
        posts = [(r["path"], r["query"]) for r in fake.requests("POST")]
        self.assertEqual(posts, [
            ("/v1.47/containers/deployment-calendar-api-1/restart", ""),
            ("/v1.47/containers/deployment-calendar-api-1/restart", "t=10"),
        ])
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["target"], a["class"], a["words"]) for a in acts[:2]], [
            ("compose restart", "calendar-api", "mutate", "docker compose restart calendar-api"),
            ("compose restart", "calendar-api", "mutate",
             "docker compose restart --timeout 10 calendar-api"),
        ])
        self.assertIn("docker compose restart calendar-api", res.out)

    def test_restart_of_an_unknown_service_names_it(self):
        f = self.compose_file()
        res = self.runbook("""
            step("fix", function() docker.compose(%s):restart("worker") end)
            """ % json.dumps(f))
        self.assertExit(res, 1)
        self.assertIn('docker compose restart worker: no container of service "worker" in '
                      'compose project "calendar"', res.all)
        self.assertRegex(res.all, r"case-\d+\.lua:3: docker compose restart worker")
        self.assertEqual(self.fake.requests("POST"), [])

    def test_dry_run_restart_sends_nothing(self):
        f = self.compose_file()
        res = self.runbook("""
            step("fix", function()
              local c = docker.compose(%s)
              out(#c:ps())
              local r = c:restart("api")
              out({ ok = r.ok, dry_run = r.dry_run })
            end)
            """ % json.dumps(f), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [2, {"ok": True, "dry_run": True}])
        self.assertIn("would: docker compose restart api", res.out)
        self.assertEqual(self.fake.requests("POST"), [])
        acts = self.actions(primitive="docker")
        self.assertEqual([a["simulated"] for a in acts], [False, True])

    def test_cli_verbs_are_docker_actions_run_by_the_compose_the_host_has(self):
        f = self.compose_file()
        # a `docker` first on PATH, with a compose plugin where the docker CLI
        # looks for one: a dry-run must never run it for a write.  It says how
        # it was called on stderr: a dry-run's reads may not write, not even a
        # log file
        self.script("docker", 'echo "DOCKER:$@" >&2\necho "api-1  | line"\n')
        self.script("docker-compose", 'echo "V1:$@" >&2\n')
        plugin = self.write(".docker/cli-plugins/docker-compose", "#!/bin/sh\nexit 1\n", mode=0o755)
        body = """
            step("cli", function()
              local c = docker.compose(%s)
              out(c:up{}.dry_run)
              c:up{ services = { "api" }, no_deps = true }
              c:pull()
              c:stop{ services = "api", stop_timeout = 3 }
              c:down()
              docker.compose(%s, { project = "cal" }):up{ detach = false }
              local l = c:logs("api", { tail = 5 })
              out(l.stdout)
              out(l.stderr)
            end)
            """ % (json.dumps(f), json.dumps(f))
        res = self.runbook(body, "--dry-run")
        self.assertExit(res, 0)
        self.assertIn("would: docker compose -f %s up -d\n" % f, res.out)
        self.assertIn("would: docker compose -f %s up -d --no-deps api" % f, res.out)
        self.assertIn("would: docker compose -f %s pull" % f, res.out)
        self.assertIn("would: docker compose -f %s stop --timeout 3 api" % f, res.out)
        self.assertIn("would: docker compose -f %s down" % f, res.out)
        self.assertIn("would: docker compose -f %s -p cal up\n" % f, res.out)
        # only the read (logs) ran, through the plugin
        self.assertEqual(res.data, [True, "api-1  | line\n",
                                    "DOCKER:compose -f %s logs --no-color --tail 5 api\n" % f])
        self.assertEqual(res.out.count("DOCKER:") + res.out.count("V1:"), 1)
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["class"], a["simulated"]) for a in acts],
                         [("compose up", "mutate", True)] * 2 +
                         [("compose pull", "mutate", True), ("compose stop", "mutate", True),
                          ("compose down", "mutate", True), ("compose up", "mutate", True),
                          ("compose logs", "read", False)])
        self.assertEqual(acts[3]["target"], "calendar")  # the project
        self.assertEqual(self.actions(primitive="exec"), [])
        self.assertEqual(self.fake.requests(), [])

        # no plugin: docker-compose (Debian's 1.29, or v2 standalone), the
        # same words and the same arguments after the program
        os.unlink(plugin)
        res = self.runbook(body, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[2], "V1:-f %s logs --no-color --tail 5 api\n" % f)
        self.assertIn("would: docker compose -f %s up -d --no-deps api" % f, res.out)

        # neither: the call says what to install; nothing else is tried
        os.unlink(os.path.join(self.bindir, "docker-compose"))
        res = self.runbook("""
            step("cli", function() docker.compose(%s):logs() end)
            """ % json.dumps(f), "--dry-run", env={"PATH": self.bindir})
        self.assertExit(res, 1)
        self.assertIn("docker compose -f %s logs --no-color: Compose is not installed: neither "
                      "the docker CLI's compose plugin nor docker-compose on PATH (on Debian: "
                      "apt install docker-compose)" % f, res.all)


class RecordAndReplay(DockerCase):
    """--record writes each docker call's answer with the row's recorded hook
    and `runbook test` answers it with the row's answer hook: a recorded run
    replays to the same results as the live run against the fake."""

    def test_a_recorded_run_replays_with_the_same_results(self):
        self.write("calendar/docker-compose.yml", "services:\n  api:\n    image: calendar-api\n")
        rec = self.path("drill.scenario.yaml")
        res = self.runbook("""
            step("drill", function()
              local ps = docker.ps{ all = true }
              local i = docker.inspect("calendar-api")
              local l = docker.logs("calendar-api", { tail = 2 })
              local st = docker.stats("calendar-api")
              local r = docker.restart("calendar-api", { timeout = 5 })
              local k = docker.kill("calendar-db", { signal = "HUP" })
              local u = docker.update("calendar-api", { memory = "512m", cpus = 1.5 })
              local p = docker.prune{ containers = true }
              local ok, err = pcall(docker.restart, "nope", { timeout = 3 })
              local c = docker.compose("calendar/docker-compose.yml")
              local names = {}
              for _, x in ipairs(c:ps()) do names[#names + 1] = x.name .. "/" .. x.state end
              local s = { nps = #ps, name = i.name, health = i.State.Status, logs = l,
                          cpu = st.cpu_percent, mem = st.memory_usage, restart = r, kill = k,
                          update = u, space = p.space_reclaimed, ok = ok,
                          err = tostring(err):gsub("^[^:]*:%d+: ", ""), compose = names,
                          crestart = c:restart("api") }
              state.s = s
              out(s)
            end)
            """, "--record", rec)
        self.assertExit(res, 0)
        live = res.data[0]
        self.assertEqual(live["err"], "docker restart nope: no such container: nope")
        self.assertEqual(live["restart"], {"ok": True, "name": "calendar-api", "status": 204,
                                           "changed": True})
        text = self.read(rec)
        self.assertIn("error: 'no such container: nope'", text)
        self.assertIn("verb: compose restart", text)
        # the scenario must reach the very results the live run had
        with open(rec, "w") as f:
            f.write(text.replace("expect:\n", "expect:\n  state: { s: %s }\n" % json.dumps(live), 1))
        before = len(self.fake.requests())
        t = self.rb("test", rec)
        self.assertEqual(t.code, 0, t.all)
        self.assertIn("1 passed, 0 failed", t.out)
        self.assertEqual(len(self.fake.requests()), before)


class Mocks(RunbookTestCase):
    """Scenario mocks match docker calls by their fields (verb, name, signal,
    memory, cpus, prune's kinds, compose's project and service) and answer
    in the shape of the live result."""

    def test_fields_match_and_answers_have_the_live_shape(self):
        self.write("d.lua", """
            runbook { name = "t/docker-mocks" }
            step("s", function()
              local s = {}
              s.restart = docker.restart("calendar-api", { timeout = 10 })
              s.hup = docker.kill("worker-1", { signal = "HUP" }).ok
              local ok, err = pcall(docker.kill, "worker-1", { signal = "TERM" })
              s.term = { ok, (tostring(err):gsub("^[^:]*:%d+: ", "")) }
              s.logs = docker.logs("calendar-api", { tail = 5 })
              local st = docker.stats("calendar-api")
              s.stats = { st.cpu_percent, st.memory_percent, st.name }
              s.update = docker.update("calendar-api", { memory = "2g", cpus = 1.5 })
              s.prune = docker.prune{ images = true }
              local c = docker.compose("/srv/app/docker-compose.yml", { project = "app" })
              s.compose = c:restart("api")
              s.ps = #c:ps()
              state.s = s
            end)
            """)
        self.write("d.scenario.yaml", """
            runbook: d.lua
            mocks:
              - docker: { verb: restart, name: "calendar-*" }
                required: true
              - docker: { verb: kill, name: worker-1, signal: HUP }
                required: true
              - docker: { verb: kill, signal: TERM }
                respond: { error: "container worker-1 is not running" }
                required: true
              - docker: { verb: logs, name: calendar-api }
                respond: { result: "a\nb\n" }
              - docker: { verb: stats }
                respond: { cpu_percent: 97.5 }
              - docker: { verb: update, memory: 2g, cpus: 1.5 }
                required: true
              - docker: { verb: update }
                respond: { error: "the memory or the cpus did not match" }
              - docker: { verb: prune, images: true, containers: false }
                respond: { space_reclaimed: 1024 }
              - docker: { verb: compose restart, name: api, project: app, service: api }
                required: true
              - docker: { verb: compose ps, project: app }
                respond: { json: [ { Names: [ /app-api-1 ] } ] }
            expect:
              actions: [ "docker restart calendar-api --time 10", "docker kill worker-1 --signal HUP",
                         "docker update calendar-api --memory 2g --cpus 1.5",
                         "docker prune images", "docker compose restart api" ]
              state:
                s:
                  restart: { ok: true, name: calendar-api, status: 204, changed: true }
                  hup: true
                  term: [ false, "docker kill worker-1: container worker-1 is not running" ]
                  logs: { stdout: "a\nb\n", stderr: "", name: calendar-api }
                  stats: [ 97.5, 0, calendar-api ]
                  update: { ok: true, name: calendar-api, status: 200 }
                  prune: { ok: true, space_reclaimed: 1024 }
                  compose: { ok: true, project: app, service: api }
                  ps: 1
            """)
        res = self.rb("test", "d.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 0, res.all)

    def test_a_mock_for_another_container_or_signal_does_not_answer(self):
        self.write("d.lua", """
            runbook { name = "t/docker-other" }
            step("s", function() docker.kill("worker-1", { signal = "TERM" }) end)
            """)
        self.write("d.scenario.yaml", """
            runbook: d.lua
            mocks:
              - docker: { verb: kill, name: worker-2 }
              - docker: { verb: kill, name: worker-1, signal: HUP }
            expect: { outcome: failed }
            """)
        res = self.rb("test", "d.scenario.yaml", cwd=self.tmp)
        self.assertEqual(res.code, 1, res.all)
        self.assertIn("no mock answers `docker kill worker-1 --signal TERM`; closest: mocks[2] "
                      "docker { name: worker-1, signal: HUP, verb: kill }, which did not match: "
                      "signal: wanted HUP, got TERM", res.out)

if __name__ == "__main__":
    unittest.main()
