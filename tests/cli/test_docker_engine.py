"""docker.* (SPEC §3, §4) against a real Docker Engine: Debian's dockerd
started by tests/fixtures/dockerd.py (one engine for this module, busybox
image from busybox-static, no registry, no network).  What the primitive
returns is compared with what Debian's CLI (/usr/bin/docker, never whatever
`docker` PATH finds) says about the same engine; what it changed is read back
through that CLI; what reached the engine is read from dockerd's debug log.
Dry-run is proven to change nothing: the inspect JSON (State, StartedAt,
HostConfig) is the same before and after, and no POST reached the engine.

Skips (with the reason) when not root or dockerd/busybox are missing; fails
instead under CI=true.  The fake engine (test_docker.py) keeps what a real
engine cannot be made to do."""
import json
import os
import re
import sys
import unittest

from rbtest import FIXTURES, RunbookTestCase, lua_str

sys.path.insert(0, FIXTURES)
_dont, sys.dont_write_bytecode = sys.dont_write_bytecode, True
import dockerd  # noqa: E402  (tests/fixtures/dockerd.py)

sys.path.remove(FIXTURES)
sys.dont_write_bytecode = _dont

ENGINE = None


def setUpModule():
    global ENGINE
    dockerd.skip_or_fail_if_unavailable()
    ENGINE = dockerd.Dockerd().start()
    # CI's extra time for the engine, in the test log
    sys.stderr.write("dockerd fixture: API %s, engine and image ready in %.2fs\n" % (
        ENGINE.api, ENGINE.start_seconds))


def tearDownModule():
    if ENGINE is not None:
        ENGINE.stop()


def ns(ts):
    """An engine timestamp ("2026-12-07T16:52:12.598077091Z") in ns since
    the epoch, keeping the nanoseconds Python's datetime would drop."""
    import calendar
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$", ts)
    assert m, ts
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = (m.group(7) or "0").ljust(9, "0")[:9]
    return calendar.timegm((y, mo, d, h, mi, s)) * 10 ** 9 + int(frac)


class EngineCase(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.env["DOCKER_HOST"] = ENGINE.host
        # a name prefix of this test's own, so containers never collide
        self.prefix = "rb-%s-" % self._testMethodName.replace("test_", "")[:20].replace("_", "-")

    def runbook(self, body, *flags, **kw):
        return self.run_body(body, *flags, name="t/docker", **kw)

    def container(self, name, script, init=True, args=(), wait_for=None):
        """A detached busybox container running `sh -c script`; with init,
        docker-init is PID 1 so SIGTERM stops it at once."""
        name = self.prefix + name
        argv = ["run", "-d", "--name", name, "--label", "rbtest=" + self.prefix]
        if init:
            argv.append("--init")
        ENGINE.cli(*(argv + list(args) + [dockerd.IMAGE, "sh", "-c", script]))
        self.addCleanup(ENGINE.run, "rm", "-f", name, check=False)
        for w in ([wait_for] if isinstance(wait_for, str) else wait_for or []):
            self.wait_for(lambda: w in "".join(self.cli_logs(name)),
                          what="%r in the logs of %s" % (w, name))
        return name

    def inspect(self, name):
        return json.loads(ENGINE.cli("inspect", name))[0]

    def cli_logs(self, name, *args):
        r = ENGINE.run("logs", *(list(args) + [name]))
        return r.stdout, r.stderr

    def wait_state(self, name, status):
        self.wait_for(lambda: self.inspect(name)["State"]["Status"] == status,
                      what="%s %s" % (name, status))


class Reads(EngineCase):
    def test_ps_all_and_filters_match_the_cli(self):
        up = self.container("up", "sleep 3600")
        done = self.container("done", "exit 3")
        self.wait_state(done, "exited")
        label = "rbtest=" + self.prefix
        res = self.runbook("""
            step("ps", function()
              local function names(list)
                local t = {}
                for _, c in ipairs(list) do t[#t + 1] = c.name end
                table.sort(t)
                return t
              end
              local mine = { label = %s }
              out(names(docker.ps()))
              out(names(docker.ps{ all = true }))
              out(names(docker.ps{ all = true, filters = mine }))
              out(names(docker.ps{ all = true, filters = { label = %s, status = "exited" } }))
              local c = docker.ps{ filters = { name = %s } }[1]
              out({ id = c.Id, image = c.Image, state = c.State })
            end)
            """ % (lua_str(label), lua_str(label), lua_str(up)))
        self.assertExit(res, 0)

        def cli(*args):
            return sorted(ENGINE.cli("ps", "--format", "{{.Names}}", *args).split())

        self.assertEqual(res.data[0], cli())
        self.assertEqual(res.data[1], cli("-a"))
        self.assertEqual(res.data[2], cli("-a", "--filter", "label=" + label))
        self.assertEqual(res.data[2], sorted([up, done]))
        self.assertEqual(res.data[3], [done])
        self.assertEqual(res.data[3], cli("-a", "--filter", "label=" + label,
                                          "--filter", "status=exited"))
        self.assertIn(up, res.data[0])
        self.assertNotIn(done, res.data[0])
        self.assertEqual(res.data[4], {"id": self.inspect(up)["Id"], "image": dockerd.IMAGE,
                                       "state": "running"})

    def test_inspect_is_the_engines_json(self):
        name = self.container("insp", "sleep 3600", args=("--memory", "64m"))
        res = self.runbook("""
            step("inspect", function()
              local d = docker.inspect(%s)
              out({ id = d.id, name = d.name, state = d.State, host = d.HostConfig,
                    cmd = d.Config.Cmd })
            end)
            """ % lua_str(name))
        self.assertExit(res, 0)
        cli = self.inspect(name)
        d = res.data[0]
        self.assertEqual((d["id"], d["name"]), (cli["Id"], name))
        self.assertEqual(d["state"], cli["State"])
        self.assertEqual(d["host"]["Memory"], 64 * 2 ** 20)
        for k in ("Memory", "NanoCpus", "Init", "RestartPolicy", "NetworkMode"):
            self.assertEqual(d["host"][k], cli["HostConfig"][k], k)
        self.assertEqual(d["cmd"], ["sh", "-c", "sleep 3600"])

    def test_logs_tail_since_and_both_streams_as_the_cli_splits_them(self):
        name = self.container("logs", "echo e1 >&2; echo o1; echo o2; echo e2 >&2; echo o3; "
                              "echo DONE; sleep 3600", wait_for=["DONE", "e2"])
        tty = self.container("tty", "echo t1; echo t2 >&2; echo DONE; sleep 3600",
                             args=("-t",), wait_for="DONE")
        res = self.runbook("""
            step("logs", function()
              local function o(l) return { stdout = l.stdout, stderr = l.stderr } end
              out(o(docker.logs(%(n)s)))
              out(o(docker.logs(%(n)s, { tail = 2 })))
              out(o(docker.logs(%(n)s, { since = "1h" })))
              out(o(docker.logs(%(n)s, { since = os.time() + 3600 })))
              out(o(docker.logs(%(t)s)))
            end)
            """ % {"n": lua_str(name), "t": lua_str(tty)})
        self.assertExit(res, 0)
        def pair(d):
            return d["stdout"], d["stderr"]

        all_out, all_err = "o1\no2\no3\nDONE\n", "e1\ne2\n"
        self.assertEqual(res.data[0], {"stdout": all_out, "stderr": all_err})
        self.assertEqual(pair(res.data[0]), self.cli_logs(name))
        # the two streams reach the log through two pipes, so which lines are
        # the last two overall varies: the CLI, reading the same log, agrees
        self.assertEqual(pair(res.data[1]), self.cli_logs(name, "--tail", "2"))
        self.assertEqual("".join(pair(res.data[1])).count("\n"), 2)
        self.assertEqual(res.data[2], res.data[0])
        self.assertEqual(res.data[3], {"stdout": "", "stderr": ""})
        # a TTY has one stream: everything is stdout, with the terminal's CRLF
        self.assertEqual(res.data[4], {"stdout": "t1\r\nt2\r\nDONE\r\n", "stderr": ""})
        # (the CLI's output is read in text mode, which folds CRLF to LF)
        self.assertEqual((res.data[4]["stdout"].replace("\r\n", "\n"), ""), self.cli_logs(tty))

    def test_stats_match_the_cli(self):
        name = self.container("stats", "sleep 3600", args=("--memory", "64m"))
        res = self.runbook("""
            step("stats", function()
              local s = docker.stats(%s)
              out({ name = s.name, id = s.id, limit = s.memory_limit, pids = s.pids,
                    cpu = s.cpu_percent >= 0, usage = s.memory_usage > 0 })
            end)
            """ % lua_str(name))
        self.assertExit(res, 0)
        cli = json.loads(ENGINE.cli("stats", "--no-stream", "--format", "{{json .}}", name))
        d = res.data[0]
        self.assertEqual((d["name"], d["id"]), (name, self.inspect(name)["Id"]))
        self.assertEqual(d["limit"], 64 * 2 ** 20)
        self.assertTrue(cli["MemUsage"].endswith("/ 64MiB"), cli["MemUsage"])
        self.assertEqual(str(d["pids"]), cli["PIDs"])  # docker-init and sleep
        self.assertEqual(d["pids"], 2)
        self.assertTrue(d["cpu"] and d["usage"])


class Writes(EngineCase):
    def test_stop_start_restart_kill_change_the_engine(self):
        name = self.container("life", "trap 'echo got-usr1' USR1; echo READY; "
                              "while :; do sleep 1; done", init=False, wait_for="READY")
        fast = self.container("fast", "sleep 3600")
        t0 = self.inspect(fast)["State"]["StartedAt"]
        mark = ENGINE.log_size()
        res = self.runbook("""
            step("life", function()
              out(docker.kill(%(n)s, { signal = "SIGUSR1" }))
              out(docker.stop(%(f)s, { timeout = 1 }))
              out(docker.stop(%(f)s))
              out(docker.start(%(f)s))
              out(docker.restart(%(f)s))
              out(docker.kill(%(f)s, { signal = "SIGKILL" }))
            end)
            """ % {"n": lua_str(name), "f": lua_str(fast)})
        self.assertExit(res, 0)
        d = res.data
        self.assertEqual(d[0], {"ok": True, "name": name, "status": 204, "changed": True})
        self.assertEqual(d[2]["status"], 304)  # already stopped: the engine says so
        self.assertFalse(d[2]["changed"])
        posts = [p for m, p in ENGINE.requests(mark) if m == "POST"]
        api = "/v" + ENGINE.api
        self.assertEqual(posts, [
            api + "/containers/%s/kill?signal=SIGUSR1" % name,
            api + "/containers/%s/stop?t=1" % fast,
            api + "/containers/%s/stop" % fast,
            api + "/containers/%s/start" % fast,
            api + "/containers/%s/restart" % fast,
            api + "/containers/%s/kill?signal=SIGKILL" % fast,
        ])
        # USR1 reached the shell, which handled it and kept running
        self.wait_for(lambda: "got-usr1" in self.cli_logs(name)[0], what="got-usr1")
        self.assertEqual(self.inspect(name)["State"]["Status"], "running")
        st = self.inspect(fast)["State"]
        self.assertEqual((st["Status"], st["ExitCode"]), ("exited", 137))
        self.assertGreater(ns(st["StartedAt"]), ns(t0))  # start and restart started it anew
        acts = self.actions(primitive="docker")
        self.assertEqual([a["words"] for a in acts][:2], [
            "docker kill %s --signal SIGUSR1" % name, "docker stop %s --time 1" % fast])
        self.assertTrue(all(a["status"] == "ok" and not a["simulated"] for a in acts))

    def test_restart_timeout_is_honoured(self):
        # PID 1 ignores SIGTERM: the engine waits exactly the timeout, then SIGKILLs
        name = self.container("stubborn", "trap '' TERM; echo READY; while :; do sleep 1; done",
                              init=False, wait_for="READY")
        before = self.inspect(name)["State"]
        mark = ENGINE.log_size()
        res = self.runbook("""
            step("restart", function() out(docker.restart(%s, { timeout = 2 })) end)
            """ % lua_str(name))
        self.assertExit(res, 0)
        self.assertTrue(res.data[0]["ok"])
        api = "/v" + ENGINE.api
        self.assertIn(("POST", api + "/containers/%s/restart?t=2" % name), ENGINE.requests(mark))
        after = self.inspect(name)["State"]
        self.assertEqual(after["Status"], "running")
        self.assertGreater(ns(after["StartedAt"]), ns(before["StartedAt"]))
        # the engine's own events: SIGTERM, then SIGKILL no sooner than t=2 later
        ev = [json.loads(l) for l in ENGINE.cli(
            "events", "--format", "{{json .}}", "--filter", "container=" + name,
            "--since", str(ns(before["StartedAt"]) // 10 ** 9),
            "--until", str(ns(after["StartedAt"]) // 10 ** 9 + 1)).splitlines() if l.strip()]
        kills = [(e["Actor"]["Attributes"]["signal"], e["timeNano"])
                 for e in ev if e["Action"] == "kill"]
        self.assertEqual([s for s, _ in kills], ["15", "9"], ev)
        self.assertGreaterEqual(kills[1][1] - kills[0][1], 2 * 10 ** 9)
        self.assertGreaterEqual(ns(after["StartedAt"]) - kills[0][1], 2 * 10 ** 9)
        self.assertEqual(self.actions(primitive="docker")[0]["words"],
                         "docker restart %s --time 2" % name)

    def test_update_memory_swap_and_cpus(self):
        name = self.container("upd", "sleep 3600")
        res = self.runbook("""
            step("update", function()
              out(docker.update(%s, { memory = "64m", memory_swap = "128m", cpus = 0.5 }))
            end)
            """ % lua_str(name))
        if res.code != 0 and re.search(r"cgroup|swap limit|kernel does not support", res.all):
            self.skipTest("the engine refuses memory/cpu limits here: %s" % res.err.strip())
        self.assertExit(res, 0)
        self.assertEqual(res.data[0]["status"], 200)
        h = self.inspect(name)["HostConfig"]
        self.assertEqual((h["Memory"], h["MemorySwap"], h["NanoCpus"]),
                         (64 * 2 ** 20, 128 * 2 ** 20, 500000000))
        stats = json.loads(ENGINE.cli("stats", "--no-stream", "--format", "{{json .}}", name))
        self.assertTrue(stats["MemUsage"].endswith("/ 64MiB"), stats["MemUsage"])

    def test_prune_removes_exactly_the_stopped_containers(self):
        gone = self.container("gone", "exit 0")
        kept = self.container("kept", "sleep 3600")
        self.wait_state(gone, "exited")
        gone_id = self.inspect(gone)["Id"]
        res = self.runbook("""
            step("prune", function()
              local r = docker.prune{ containers = true }
              out({ ok = r.ok, deleted = r.containers.ContainersDeleted })
            end)
            """)
        self.assertExit(res, 0)
        self.assertTrue(res.data[0]["ok"])
        self.assertIn(gone_id, res.data[0]["deleted"])
        names = ENGINE.cli("ps", "-a", "--format", "{{.Names}}").split()
        self.assertNotIn(gone, names)
        self.assertIn(kept, names)

    def test_rm_removes_and_refuses_a_running_container_without_force(self):
        done = self.container("done", "exit 0")
        up = self.container("up", "sleep 3600")
        forced = self.container("forced", "sleep 3600")
        self.wait_state(done, "exited")
        mark = ENGINE.log_size()
        res = self.runbook("""
            step("rm", function()
              out(docker.rm(%(d)s))
              local ok, err = pcall(docker.rm, %(u)s)
              out({ ok = ok, err = tostring(err) })
              out(docker.rm(%(f)s, { force = true, volumes = true }))
            end)
            """ % {"d": lua_str(done), "u": lua_str(up), "f": lua_str(forced)})
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], {"ok": True, "name": done, "status": 204})
        self.assertFalse(res.data[1]["ok"])
        self.assertIn("docker rm %s: " % up, res.data[1]["err"])
        # the engine's own refusal, as Debian's CLI shows it
        theirs = ENGINE.run("rm", up, check=False).stderr.lower()
        cause = res.data[1]["err"].split("docker rm %s: " % up, 1)[1].strip().lower()
        self.assertIn("cannot remove a running container", cause)
        self.assertIn(cause, theirs)
        names = ENGINE.cli("ps", "-a", "--format", "{{.Names}}").split()
        self.assertNotIn(done, names)
        self.assertNotIn(forced, names)
        self.assertIn(up, names)
        self.assertEqual(self.inspect(up)["State"]["Status"], "running")
        deletes = [p for m, p in ENGINE.requests(mark) if m == "DELETE"]
        self.assertTrue(any(p.endswith("/containers/%s?force=1&v=1" % forced) for p in deletes),
                        deletes)
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["class"]) for a in acts], [("rm", "mutate")] * 3)


COMPOSE_FILE = """\
version: "2.4"
# network_mode none: compose creates no network, so nothing touches the
# host's interfaces (the engine runs with --bridge=none)
services:
  web:
    image: %(image)s
    command: ["sh", "-c", "echo web up; sleep 3600"]
    init: true
    network_mode: none
  worker:
    image: %(image)s
    command: ["sh", "-c", "echo worker up; sleep 3600"]
    init: true
    network_mode: none
"""


class Compose(EngineCase):
    """docker.compose against the real engine with the Compose CLI Debian
    ships: docker-compose 1.29 (the docker CLI's compose plugin is not in
    Debian).  ps and restart go through the Engine API by compose's labels;
    up, stop, logs and down through the CLI, as the docker action `docker
    compose ...` whichever Compose runs them."""

    def setUp(self):
        super().setUp()
        if not os.access("/usr/bin/docker-compose", os.X_OK):
            if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
                raise RuntimeError("/usr/bin/docker-compose not found: install docker-compose")
            self.skipTest("/usr/bin/docker-compose not found: install docker-compose")
        self.project = self.prefix.strip("-")
        self.file = self.write(os.path.join(self.project, "docker-compose.yml"),
                               COMPOSE_FILE % {"image": dockerd.IMAGE})
        self.addCleanup(lambda: [ENGINE.run("rm", "-f", c, check=False)
                                 for c in self.containers()])

    def containers(self, *args):
        label = "label=com.docker.compose.project=%s" % self.project
        return ENGINE.cli("ps", "-a", "--filter", label, *args,
                          "--format", "{{.Names}}").split()

    def by_service(self):
        out = {}
        for name in self.containers():
            i = self.inspect(name)
            out[i["Config"]["Labels"]["com.docker.compose.service"]] = i
        return out

    def test_up_ps_restart_logs_stop_down_on_a_two_service_file(self):
        res = self.runbook("""
            step("compose", function()
              local c = docker.compose(%(f)s)
              out(c.project)
              local up = c:up{ detach = true, services = { "web", "worker" } }
              out({ ok = up.ok, code = up.code })
              local rows = {}
              for _, x in ipairs(c:ps()) do rows[#rows + 1] = { x.service, x.name, x.state } end
              out(rows)
            end)
            """ % {"f": lua_str(self.file)})
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], self.project)
        self.assertEqual(res.data[1], {"ok": True, "code": 0})
        svc = self.by_service()
        self.assertEqual(sorted(svc), ["web", "worker"])
        self.assertEqual([r[0] for r in res.data[2]], ["web", "worker"])
        for service, name, state in res.data[2]:
            self.assertEqual("/" + name, svc[service]["Name"])
            self.assertEqual(state, svc[service]["State"]["Status"])
            self.assertEqual(state, "running")
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["class"], a["words"]) for a in acts], [
            ("compose up", "mutate", "docker compose -f %s up -d web worker" % self.file),
            ("compose ps", "read", "docker compose ps --all")])

        web0, worker0 = svc["web"]["State"]["StartedAt"], svc["worker"]["State"]["StartedAt"]
        res = self.runbook("""
            step("compose", function()
              local c = docker.compose(%(f)s)
              out(c:restart("web", { timeout = 1 }).containers)
              local l = c:logs("web")
              out(l.stdout)
              c:stop{ services = { "worker" }, stop_timeout = 1 }
            end)
            """ % {"f": lua_str(self.file)})
        self.assertExit(res, 0)
        svc = self.by_service()
        self.assertEqual(res.data[0], [svc["web"]["Name"].lstrip("/")])
        self.assertNotEqual(svc["web"]["State"]["StartedAt"], web0)       # restarted
        self.assertEqual(svc["worker"]["State"]["StartedAt"], worker0)    # not restarted
        self.assertEqual(svc["web"]["State"]["Status"], "running")
        self.assertEqual(svc["worker"]["State"]["Status"], "exited")      # stopped
        self.assertEqual(res.data[1].count("web up"), 2, res.data[1])     # before and after
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["class"]) for a in acts], [
            ("compose restart", "mutate"), ("compose logs", "read"), ("compose stop", "mutate")])

        res = self.runbook("""
            step("down", function() docker.compose(%(f)s):down() end)
            """ % {"f": lua_str(self.file)})
        self.assertExit(res, 0)
        self.assertEqual(self.containers(), [])

    def test_dry_run_reads_through_the_cli_and_creates_nothing(self):
        mark = ENGINE.log_size()
        res = self.runbook("""
            step("compose", function()
              local c = docker.compose(%(f)s)
              local up = c:up{ services = { "web" } }
              out({ ok = up.ok, dry_run = up.dry_run })
              out(#c:ps())
              out(c:logs("web").code)
              c:restart("web")
              c:down()
            end)
            """ % {"f": lua_str(self.file)}, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [{"ok": True, "dry_run": True}, 0, 0])
        self.assertIn("would: docker compose -f %s up -d web" % self.file, res.out)
        self.assertIn("would: docker compose -f %s down" % self.file, res.out)
        self.assertEqual(self.containers(), [])
        reqs = ENGINE.requests(mark)
        self.assertEqual([r for r in reqs if r[0] not in ("GET", "HEAD")], [])
        # the read (logs) ran docker-compose, which asked the engine
        self.assertTrue(reqs, "docker-compose logs never reached the engine")
        acts = self.actions(primitive="docker")
        self.assertEqual([(a["verb"], a["simulated"]) for a in acts], [
            ("compose up", True), ("compose ps", False), ("compose logs", False),
            ("compose restart", True), ("compose down", True)])


class Errors(EngineCase):
    def test_engine_refusals_name_the_action_and_the_engines_cause(self):
        stopped = self.container("stopped", "exit 0")
        self.wait_state(stopped, "exited")
        res = self.runbook("""
            step("errors", function()
              for _, f in ipairs({
                function() return docker.kill(%(s)s, { signal = "SIGHUP" }) end,
                function() return docker.update(%(s)s, { memory = "1m" }) end,
                function() return docker.inspect("rb-no-such-container") end,
              }) do
                local ok, err = pcall(f)
                out({ ok = ok, err = tostring(err) })
              end
            end)
            """ % {"s": lua_str(stopped)})
        self.assertExit(res, 0)
        cli = [ENGINE.run(*a, check=False).stderr for a in (("kill", "-s", "SIGHUP", stopped),
                                                ("update", "--memory", "1m", stopped),
                                                ("container", "inspect", "rb-no-such-container"))]
        for d, words, theirs in zip(res.data, ("docker kill %s: " % stopped,
                                               "docker update %s: " % stopped,
                                               "docker inspect rb-no-such-container: "), cli):
            self.assertFalse(d["ok"])
            self.assertIn(words, d["err"])
            cause = d["err"].split(words, 1)[1].strip()
            # the engine's own message, as the CLI shows it
            self.assertIn(cause.lower(), theirs.lower())
        self.assertIn("is not running", res.data[0]["err"])
        self.assertIn("no such container", res.data[2]["err"])
        self.assertEqual(self.inspect(stopped)["HostConfig"]["Memory"], 0)


class DryRun(EngineCase):
    def test_dry_run_changes_nothing_on_the_engine(self):
        up = self.container("up", "sleep 3600")
        down = self.container("down", "exit 0")
        self.wait_state(down, "exited")
        before = {n: self.inspect(n) for n in (up, down)}
        mark = ENGINE.log_size()
        res = self.runbook("""
            step("fix", function()
              out(#docker.ps{ all = true, filters = { name = %(u)s } })
              out(docker.inspect(%(u)s).State.Status)
              out(docker.logs(%(u)s).stdout)
              out(docker.stats(%(u)s).pids)
              local r = docker.restart(%(u)s, { timeout = 1 })
              out({ ok = r.ok, dry_run = r.dry_run })
              docker.stop(%(u)s, { timeout = 1 })
              docker.kill(%(u)s, { signal = "SIGKILL" })
              docker.update(%(u)s, { memory = "64m", memory_swap = "128m", cpus = 0.5 })
              docker.start(%(d)s)
              docker.prune{ containers = true }
              docker.rm(%(u)s, { force = true })
            end)
            """ % {"u": lua_str(up), "d": lua_str(down)}, "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data[:4], [1, "running", "", 2])
        self.assertEqual(res.data[4], {"ok": True, "dry_run": True})
        for w in ("docker restart %s --time 1" % up, "docker stop %s --time 1" % up,
                  "docker kill %s --signal SIGKILL" % up, "docker update %s" % up,
                  "docker start %s" % down, "docker prune containers",
                  "docker rm %s --force" % up):
            self.assertIn("would: " + w, res.out)
        reqs = ENGINE.requests(mark)
        self.assertEqual([r for r in reqs if r[0] not in ("GET", "HEAD")], [])
        self.assertTrue(any(p.endswith("/containers/%s/json" % up) for _, p in reqs), reqs)
        for n, b in before.items():
            a = self.inspect(n)
            self.assertEqual(a["State"], b["State"], n)  # StartedAt, FinishedAt, Status, Pid
            self.assertEqual(a["HostConfig"], b["HostConfig"], n)
            self.assertEqual(a["RestartCount"], b["RestartCount"], n)
        acts = self.actions(primitive="docker")
        self.assertEqual([a["simulated"] for a in acts],
                         [False, False, False, False] + [True] * 7)


if __name__ == "__main__":
    unittest.main()
