"""Shared helpers for the CLI tests: run the real binary in a private temp dir
with its own audit database, write runbooks, read the audit log with sqlite3,
talk to the binary through a pseudo-terminal, and look at processes.

Every test case gets a fresh directory (self.tmp) used as cwd, HOME and
XDG_STATE_HOME, so nothing here ever touches the user's default audit log.
Standard library only.
"""
import fcntl
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
import unittest

SRC = os.environ.get("RUNBOOK_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def _find_bin():
    b = os.environ.get("RUNBOOK_BIN")
    if b:
        return b
    for d in ("build-tests", "build"):
        p = os.path.join(SRC, d, "runbook")
        if os.access(p, os.X_OK):
            return p
    return "runbook"


BIN = _find_bin()
DEFAULT_TIMEOUT = 60
FIXTURES = os.path.join(SRC, "tests", "fixtures")


def lua_str(s):
    """A Lua string literal for s (any bytes-safe text)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif o < 32 or o == 127:
            out.append("\\%03d" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Result:
    def __init__(self, args, code, out, err):
        self.args, self.code, self.out, self.err = args, code, out, err

    @property
    def all(self):
        return self.out + "\n" + self.err

    def __repr__(self):
        return "exit %s of %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.code, " ".join(self.args), self.out, self.err)


class RunbookTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="rbtest-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.audit = os.path.join(self.tmp, "audit.db")
        self.state_dir = os.path.join(self.tmp, "state")
        os.makedirs(self.state_dir)
        self.bindir = os.path.join(self.tmp, "bin")
        os.makedirs(self.bindir)
        env = dict(os.environ)
        for k in ("RUNBOOK_PATH", "RUNBOOK_AUDIT", "SUDO_USER", "RUNBOOK_STDLIB_DIR",
                  "KUBECONFIG", "DOCKER_HOST"):
            env.pop(k, None)
        env["HOME"] = self.tmp
        env["XDG_STATE_HOME"] = self.state_dir
        env["NO_COLOR"] = "1"
        env["PATH"] = self.bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        self.env = env
        self._procs = []
        self.addCleanup(self._reap)

    def _reap(self):
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    p.kill()
                except OSError:
                    pass
                p.wait()

    # ---- files -----------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text, mode=0o644, dedent=True):
        p = name if os.path.isabs(name) else self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if dedent:
            text = textwrap.dedent(text).lstrip("\n")
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def script(self, name, body):
        """An executable in self.bindir (on the child's PATH)."""
        return self.write(os.path.join(self.bindir, name), "#!/bin/sh\n" + textwrap.dedent(body),
                          mode=0o755, dedent=False)

    def read(self, name):
        p = name if os.path.isabs(name) else self.path(name)
        with open(p) as f:
            return f.read()

    def lines(self, name):
        p = name if os.path.isabs(name) else self.path(name)
        if not os.path.exists(p):
            return []
        return [l for l in self.read(p).splitlines() if l]

    # ---- running the binary -----------------------------------------------

    def child_env(self, extra=None, drop=()):
        env = dict(self.env)
        for k in drop:
            env.pop(k, None)
        if extra:
            env.update(extra)
        return env

    def rb(self, *args, env=None, cwd=None, stdin=None, timeout=DEFAULT_TIMEOUT, drop_env=()):
        """Run `runbook ARGS...`; stdin is a string or None (then /dev/null).
        A new session, so the child never has a controlling terminal."""
        argv = [BIN] + [str(a) for a in args]
        p = subprocess.run(argv, input=stdin if stdin is not None else "",
                           capture_output=True, text=True, errors="replace",
                           cwd=cwd or self.tmp, env=self.child_env(env, drop_env),
                           timeout=timeout, start_new_session=True)
        return Result(argv, p.returncode, p.stdout, p.stderr)

    def run_rb(self, file, *flags, audit=True, **kw):
        """`runbook run FILE --audit self.audit FLAGS...`"""
        args = ["run", file]
        if audit is True:
            args += ["--audit", self.audit]
        elif audit:
            args += ["--audit", audit]
        return self.rb(*(args + list(flags)), **kw)

    # A runbook under test reports values with out(x): one "@@" + JSON line
    # each, read back in order as res.data.
    OUT = 'local function out(x) print("@@" .. json.encode(x)) end\n'

    def runbook_text(self, body, name="t/case", head=""):
        """The text of a runbook named `name` whose code (body, dedented) can
        call out(x); head goes between the preamble and the body."""
        return ("runbook { name = %s }\n" % lua_str(name) + self.OUT + head +
                textwrap.dedent(body).lstrip("\n"))

    def run_body(self, body, *flags, name="t/case", head="", **kw):
        """Write runbook_text(body) to a new file and run it: res.data holds
        what it out()ed, res.file the file."""
        self._body_n = getattr(self, "_body_n", 0) + 1
        f = self.write("case-%d.lua" % self._body_n, self.runbook_text(body, name, head),
                       dedent=False)
        res = self.run_rb(f, *flags, **kw)
        res.file = f
        res.data = [json.loads(l[l.index("@@") + 2:]) for l in res.out.splitlines() if "@@" in l]
        return res

    def assertNoSecret(self, res, secret):
        """secret is in neither output nor any byte of the audit database."""
        self.assertNotIn(secret, res.all)
        for name in os.listdir(self.tmp):  # audit.db and any -wal / -journal
            if name.startswith(os.path.basename(self.audit)):
                with open(self.path(name), "rb") as f:
                    self.assertNotIn(secret.encode(), f.read(), name)

    def spawn(self, *args, env=None, cwd=None, **kw):
        """Start `runbook ARGS...` in the background, in its own session, with
        stdout/stderr going to files (self.tmp/out-N.txt)."""
        n = len(self._procs)
        outp, errp = self.path("spawn-%d.out" % n), self.path("spawn-%d.err" % n)
        out, err = open(outp, "w"), open(errp, "w")
        p = subprocess.Popen([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, cwd=cwd or self.tmp,
                             env=self.child_env(env), start_new_session=True, **kw)
        out.close()
        err.close()
        p.out_path, p.err_path = outp, errp
        self._procs.append(p)
        return p

    def spawned_output(self, p):
        with open(p.out_path, errors="replace") as f:
            out = f.read()
        with open(p.err_path, errors="replace") as f:
            err = f.read()
        return Result(p.args, p.returncode, out, err)

    def assertExit(self, res, code, msg=None):
        self.assertEqual(res.code, code, "%s%r" % ((msg + "\n") if msg else "", res))

    # ---- waiting ---------------------------------------------------------------

    def wait_for(self, cond, timeout=30, what="condition", proc=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            if proc is not None and proc.poll() is not None:
                v = cond()
                if v:
                    return v
                self.fail("process exited (%s) while waiting for %s: %r" % (
                    proc.returncode, what, self.spawned_output(proc)))
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)

    def wait_file(self, p, timeout=30, proc=None, nonempty=True):
        def ok():
            try:
                return os.path.getsize(p) > 0 if nonempty else os.path.exists(p)
            except OSError:
                return False
        self.wait_for(ok, timeout, "file " + p, proc)
        time.sleep(0.05)  # let the writer finish its line
        return self.read(p)

    # ---- the audit log ------------------------------------------------------

    def db(self, path=None):
        con = sqlite3.connect("file:%s?mode=ro" % (path or self.audit), uri=True, timeout=30)
        self.addCleanup(con.close)
        return con

    def records(self, run_id=None, kind=None, path=None):
        """Every record as a dict: its data fields plus seq, run_id, kind, ts,
        prev_hash, hash."""
        con = self.db(path)
        q = "SELECT seq, run_id, kind, ts, data, prev_hash, hash FROM records"
        cond, args = [], []
        if run_id:
            cond.append("run_id = ?")
            args.append(run_id)
        if kind:
            cond.append("kind = ?")
            args.append(kind)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY seq"
        out = []
        for seq, rid, k, ts, data, prev, h in con.execute(q, args):
            d = json.loads(data)
            d.update(seq=seq, run_id=rid, kind=k, ts=ts, prev_hash=prev, hash=h)
            out.append(d)
        con.close()
        return out

    def run_ids(self, path=None):
        con = self.db(path)
        ids = [r[0] for r in con.execute(
            "SELECT run_id FROM records GROUP BY run_id ORDER BY min(seq)")]
        con.close()
        return ids

    def last_run_id(self, path=None):
        ids = self.run_ids(path)
        self.assertTrue(ids, "no run recorded in the audit log")
        return ids[-1]

    def run_record(self, run_id=None, path=None):
        """The latest run record of a run (its final state)."""
        run_id = run_id or self.last_run_id(path)
        runs = self.records(run_id, "run", path)
        self.assertTrue(runs, "run %s has no run record" % run_id)
        return runs[-1]

    def steps(self, run_id=None, path=None):
        return self.records(run_id or self.last_run_id(path), "step", path)

    def actions(self, run_id=None, path=None, primitive=None):
        acts = self.records(run_id or self.last_run_id(path), "action", path)
        if primitive:
            acts = [a for a in acts if a.get("primitive") == primitive]
        return acts

    def step_status(self, run_id=None, path=None):
        """{step name: status} from the step records (the last one wins)."""
        return {s["name"]: s["status"] for s in self.steps(run_id, path)}

    def integrity(self, path=None):
        con = sqlite3.connect(path or self.audit, timeout=30)
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()

    def verify(self, path=None):
        return self.rb("audit", "verify", "--audit", path or self.audit)

    # ---- fixture servers (tests/fixtures, docs/http-contract.md) -------------

    def certs(self):
        """A CA and a 127.0.0.1/localhost server certificate in self.tmp/certs:
        {"ca": ca.pem, "cert": server.pem, "key": server.key, "ca_key": ...}."""
        if not hasattr(self, "_certs"):
            sys.path.insert(0, FIXTURES)
            dont, sys.dont_write_bytecode = sys.dont_write_bytecode, True
            try:
                import certs as _certs_mod
            finally:
                sys.path.remove(FIXTURES)
                sys.dont_write_bytecode = dont
            self._certs = _certs_mod.generate(self.path("certs"))
        return self._certs

    def httpd(self, routes=None, tls=False, args=()):
        """Start tests/fixtures/httpd.py on 127.0.0.1 (HTTPS with self.certs()
        when tls); routes is a dict written as its ROUTES.json.  Use it as
        `with self.httpd() as srv:` or just keep it: it is stopped at cleanup.
        srv.url(path), srv.base, srv.port, srv.requests() (the parsed log)."""
        n = len(getattr(self, "_fixtures", []))
        log = self.path("httpd-%d.jsonl" % n)
        argv = [sys.executable, os.path.join(FIXTURES, "httpd.py"), "--log", log]
        if routes is not None:
            rp = self.path("routes-%d.json" % n)
            with open(rp, "w") as f:
                json.dump(routes, f)
            argv += ["--routes", rp]
        if tls:
            c = self.certs()
            argv += ["--tls", c["cert"], c["key"]]
        return self._fixture(FixtureServer(self, argv + list(args), log,
                                           "https" if tls else "http", n))

    def smtp(self, tls=False, require_auth=None, args=()):
        """Start tests/fixtures/smtp_sink.py; srv.url() is smtp://127.0.0.1:PORT,
        srv.mails() the accepted messages ({"from","to","data","auth",...})."""
        n = len(getattr(self, "_fixtures", []))
        log = self.path("smtp-%d.jsonl" % n)
        argv = [sys.executable, os.path.join(FIXTURES, "smtp_sink.py"), "--log", log]
        if tls:
            c = self.certs()
            argv += ["--tls", c["cert"], c["key"]]
        if require_auth:
            argv += ["--require-auth", require_auth]
        return self._fixture(FixtureServer(self, argv + list(args), log, "smtp", n))

    def fake_kube(self):
        """Start tests/fixtures/fake_kube.py (a fake of the Kubernetes API wire
        protocol: no cluster runs here) and point kubectl at it: KUBECONFIG,
        and a private KUBECACHEDIR so discovery is never cached across tests."""
        self.kc = self.path("kubeconfig")
        log = self.path("kube.jsonl")
        srv = self._fixture(FixtureServer(
            self, [sys.executable, os.path.join(FIXTURES, "fake_kube.py"), "--log", log,
                   "--kubeconfig", self.kc], log, "http", 0))
        self.env["KUBECONFIG"] = self.kc
        self.env["KUBECACHEDIR"] = self.path("kubecache")
        return srv

    @staticmethod
    def kube_writes(srv):
        """What changed the fake cluster (`auth can-i` is a read that POSTs a
        SelfSubjectAccessReview)."""
        return [r for r in srv.requests() if r["method"] not in ("GET", "HEAD")
                and not r["path"].endswith("/selfsubjectaccessreviews")]

    def _fixture(self, srv):
        if not hasattr(self, "_fixtures"):
            self._fixtures = []
        self._fixtures.append(srv)
        self.addCleanup(srv.stop)
        return srv

    def closed_port(self):
        """A loopback port nothing listens on (bound, then closed)."""
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port


class FixtureServer:
    """A running tests/fixtures server process; a context manager that stops it."""

    def __init__(self, case, argv, log, scheme, n, start_timeout=20):
        self.case, self.argv, self.log, self.scheme = case, argv, log, scheme
        self.err_path = case.path("fixture-%d.err" % n)
        open(log, "a").close()
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err)
        line = b""
        deadline = time.monotonic() + start_timeout
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                c = os.read(self.proc.stdout.fileno(), 64)
                if not c:
                    break
                line += c
        if not line.strip().isdigit():
            self.stop()
            with open(self.err_path, errors="replace") as f:
                raise RuntimeError("fixture %s did not start (first line %r):\n%s" % (
                    " ".join(argv), line, f.read()))
        self.port = int(line.strip())
        self.host = "127.0.0.1"
        self.base = "%s://127.0.0.1:%d" % (scheme, self.port)

    def url(self, path="/"):
        if self.scheme == "smtp" and path == "/":
            return self.base
        return self.base + (path if path.startswith("/") else "/" + path)

    def entries(self):
        """Every complete JSON line of the log so far."""
        out = []
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                data = f.read()
        except OSError:
            return out
        for l in data.split("\n")[:-1]:  # the last piece may be a line in progress
            if l.strip():
                out.append(json.loads(l))
        return out

    def requests(self, path=None, method=None):
        """The logged requests, optionally only those to path (exact or, ending
        in '*', a prefix) and/or with method."""
        out = []
        for e in self.entries():
            p = e.get("path", "")
            if path is not None and not (p.startswith(path[:-1]) if path.endswith("*")
                                         else p == path):
                continue
            if method is not None and e.get("method") != method:
                continue
            out.append(e)
        return out

    mails = entries

    def wait_requests(self, n, timeout=15, **kw):
        deadline = time.monotonic() + timeout
        while True:
            r = self.requests(**kw) if self.scheme != "smtp" else self.entries()
            if len(r) >= n or time.monotonic() > deadline:
                return r
            time.sleep(0.02)

    def stop(self):
        p = self.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.stdout:
            p.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def pg_cluster(**kw):
    """A started tests/fixtures/pg_cluster.PgCluster: a real PostgreSQL on
    127.0.0.1 and a private unix socket, superuser "rb" (kw: superuser,
    password).  stop() it (or addCleanup(pg.stop)); it is also stopped at
    exit.  Skips when no server binaries exist, except under CI=true."""
    sys.path.insert(0, FIXTURES)
    dont, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        import pg_cluster as _pg
    finally:
        sys.path.remove(FIXTURES)
        sys.dont_write_bytecode = dont
    if _pg.find_bindir() is None:
        msg = ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
               "install postgresql or set PG_BINDIR")
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            raise RuntimeError(msg)
        raise unittest.SkipTest(msg)
    return _pg.PgCluster(**kw).start()


class RedisServer:
    """A real redis-server (Debian's redis-server package) on 127.0.0.1 at a
    free port, nothing saved to disk, in its own temporary directory.
    cli(*args) runs redis-cli against it and returns stdout."""

    def __init__(self, workdir):
        import socket
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", workdir, "--daemonize", "no", "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 30
        while True:
            try:
                if self.cli("PING").strip() == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start on port %d" % self.port)
            time.sleep(0.05)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                              check=True, capture_output=True, text=True, timeout=30).stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def redis_server(workdir):
    """A started RedisServer; skips when redis-server is not installed,
    except under CI=true (scripts/install-deps.sh installs it)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        msg = "redis-server/redis-cli not found: install redis-server and redis-tools"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            raise RuntimeError(msg)
        raise unittest.SkipTest(msg)
    return RedisServer(workdir)


# ---- processes ------------------------------------------------------------

def live_in_group(pgid):
    """pids of processes (not zombies) whose process group is pgid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        state, pgrp = rest[0], int(rest[2])
        if pgrp == pgid and state not in ("Z", "X"):
            found.append(int(d))
    return found


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


# ---- a pseudo-terminal ----------------------------------------------------

class PtyRun:
    """`runbook ARGS...` with a pseudo-terminal as its controlling terminal
    (and stdin), stdout/stderr to files: prompts, which the binary writes to
    and reads from /dev/tty, are read and answered on the master side.
    With all_tty=True stdout and stderr are the terminal too (an interactive
    program); the out/err files then stay empty and everything is in .buf."""

    def __init__(self, case, *args, env=None, cwd=None, all_tty=False):
        self.case = case
        master, slave = os.openpty()
        self.master = master
        self.buf = ""
        self.pos = 0
        n = len(case._procs)
        self.out_path = case.path("pty-%d.out" % n)
        self.err_path = case.path("pty-%d.err" % n)
        out, err = open(self.out_path, "w"), open(self.err_path, "w")

        def make_controlling():
            # after setsid (start_new_session): fd 0 is the slave
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([BIN] + [str(a) for a in args], stdin=slave,
                                     stdout=slave if all_tty else out,
                                     stderr=slave if all_tty else err,
                                     cwd=cwd or case.tmp, env=case.child_env(env),
                                     start_new_session=True, preexec_fn=make_controlling)
        os.close(slave)
        out.close()
        err.close()
        self.proc.out_path, self.proc.err_path = self.out_path, self.err_path
        case._procs.append(self.proc)
        case.addCleanup(self._close)

    def _close(self):
        try:
            os.close(self.master)
        except OSError:
            pass

    def _fill(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every slave fd is closed
            return False
        if not data:
            return False
        self.buf += data.decode("utf-8", "replace")
        return True

    def expect(self, pattern, timeout=30):
        """Wait for pattern in the terminal output after the last match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not self._fill(min(left, 0.2)) and self.proc.poll() is not None:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                break
        self.case.fail("no %r on the terminal; terminal so far:\n%s\n%r" % (
            pattern, self.buf, self.case.spawned_output(self.proc) if self.proc.poll()
            is not None else "(still running)"))

    def send(self, line):
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._fill(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.case.fail("runbook did not finish; terminal:\n" + self.buf)
        while self._fill(0.05):
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                break
        res = self.case.spawned_output(self.proc)
        res.tty = self.buf
        return res

