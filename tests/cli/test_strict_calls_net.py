"""Strict calls (issue 16, item 2) for exec, sh, fs, http, notify and ssh: a
misspelled option, a misplaced, missing or extra argument raises at the
runbook's line with the declared signature -- live, in --dry-run and in a
scenario alike -- and NOTHING was done: the HTTP server's request log is
empty, the SMTP sink got no mail, the file's hash is unchanged, no process
was spawned (the marker file a command would create does not exist, a fake
`ssh`/`scp` first on PATH never ran), and the audit log has no action for
the call.  Each test also makes one correct call afterwards, so an empty
log means the call was refused, not that the server was down."""
import hashlib
import json
import os
import unittest

from rbtest import RunbookTestCase, lua_str

MODES = ((), ("--dry-run",))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class StrictCase(RunbookTestCase):
    """self.case(body, *flags): run a runbook whose body is one step "s"; the
    lines of the body can carry a `-- @NAME` marker, and self.at(res, NAME)
    is "FILE:LINE:" of that line, the prefix the error must have."""

    HEAD = ""

    def case(self, body, *flags, head=None, **kw):
        res = self.run_body(body, *flags, name="t/strict", head=head or self.HEAD, **kw)
        res.text = self.read(res.file)
        return res

    def at(self, res, marker):
        for i, line in enumerate(res.text.splitlines(), 1):
            if "-- @" + marker in line:
                return "%s:%d:" % (os.path.basename(res.file), i)
        self.fail("no -- @%s in %s" % (marker, res.file))

    def assertRaisedAt(self, res, marker, message):
        """The run failed with exactly `FILE:LINE: message`."""
        self.assertExit(res, 1)
        self.assertIn("%s %s" % (self.at(res, marker), message), res.all)

    def assertNoAction(self, primitive):
        self.assertEqual([a["words"] for a in self.actions(primitive=primitive)], [],
                         "a refused call left an action record")


# ---- http -------------------------------------------------------------------

class Http(StrictCase):
    def setUp(self):
        super().setUp()
        self.srv = self.httpd()
        self.HEAD = "local B = %s\n" % lua_str(self.srv.base)

    def test_misspelled_option_raises_and_nothing_is_sent(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      http.get(B .. "/echo", { timout = 1 })  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "unknown option 'timout' for http.get "
                                    "(did you mean 'timeout'?)")
                self.assertEqual(self.srv.requests(), [], "the request went out")
                self.assertNoAction("http")
                self.assertNotIn("would:", res.out)

    def test_misplaced_body_raises_at_the_line_and_posts_nothing(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      http.post(B .. "/echo", 5)  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "http.post: argument 2 (body) must be a string or an "
                                    "options table, got number; usage: http.post(url [, body])")
                self.assertEqual(self.srv.requests(), [], "the request went out")
                self.assertNoAction("http")
                self.assertNotIn("would:", res.out)

    def test_every_method_and_request_checks_its_keys(self):
        res = self.case("""
            local function err(f, ...)
              local ok, e = pcall(f, ...)
              assert(not ok, "no error")
              return (tostring(e):gsub("^[^:]*:%d+: ", ""))
            end
            step("s", function()
              out({
                err(http.post, B .. "/echo", { jsno = { a = 1 } }),
                err(http.put, B .. "/echo", { headres = {} }),
                err(http.patch, B .. "/echo", { body = "x", retires = 2 }),
                err(http.delete, B .. "/echo", { readonyl = true }),
                err(http.head, B .. "/echo", { insecrue = true }),
                err(http.options, B .. "/echo", { querry = { a = 1 } }),
                err(http.request, { method = "POST", url = B .. "/echo", bdy = "x" }),
                err(http.request, { mehtod = "DELETE", url = B .. "/echo" }),
                err(http.get_all, { B .. "/echo" }, { concurency = 2 }),
                err(http.get_all, { B .. "/echo", { url = B .. "/echo", timout = 1 } }),
                err(http.get_all, { B .. "/echo" }, { request = { timout = 1 } }),
              })
              -- the server is up: correct calls reach it (a body as a string too)
              out({ http.post(B .. "/echo", { json = { a = 1 }, timeout = 5 }).status,
                    http.post(B .. "/echo", "raw body").status })
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [
            "unknown option 'jsno' for http.post (did you mean 'json'?)",
            "unknown option 'headres' for http.put (did you mean 'headers'?)",
            "unknown option 'retires' for http.patch (did you mean 'retries'?)",
            "unknown option 'readonyl' for http.delete (did you mean 'readonly'?)",
            "unknown option 'insecrue' for http.head (did you mean 'insecure'?)",
            "unknown option 'querry' for http.options (did you mean 'query'?)",
            "unknown option 'bdy' for http.request (did you mean 'body'?)",
            "unknown option 'mehtod' for http.request (did you mean 'method'?)",
            "unknown option 'concurency' for http.get_all (did you mean 'concurrency'?)",
            "unknown option 'timout' for http.request (did you mean 'timeout'?)",
            "unknown option 'timout' for http.get (did you mean 'timeout'?)",
        ])
        self.assertEqual(res.data[1], [200, 200])
        # get_all checks every item before the first request goes out
        self.assertEqual([(r["method"], r["path"], r["body"]) for r in self.srv.requests()],
                         [("POST", "/echo", '{"a":1}'), ("POST", "/echo", "raw body")])
        self.assertEqual([a["words"].split()[0] for a in self.actions(primitive="http")],
                         ["POST", "POST"])

    def test_misplaced_missing_and_extra_arguments(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                seen = len(self.srv.requests())
                res = self.case("""
                    local function err(f, ...)
                      local ok, e = pcall(f, ...)
                      assert(not ok, "no error")
                      return (tostring(e):gsub("^[^:]*:%d+: ", ""))
                    end
                    step("s", function()
                      out({
                        err(http.post, B .. "/echo", 5),
                        err(http.get),
                        err(http.get, B .. "/echo", {}, 3),
                        err(http.get, { url = B .. "/echo" }),
                        err(http.get, B .. "/echo", "body"),
                        err(http.request, B .. "/echo"),
                        err(http.get_all, B .. "/echo"),
                      })
                      local r = http.get(B .. "/echo")
                      out(err(r.json, r, "extra"))
                    end)
                    """, *flags)
                self.assertExit(res, 0)
                self.assertEqual(res.data[0], [
                    "http.post: argument 2 (body) must be a string or an options table, got "
                    "number; usage: http.post(url [, body])",
                    "http.get: missing argument 1 (url); usage: http.get(url [, opts])",
                    "http.get: too many arguments (3); usage: http.get(url [, opts])",
                    "http.get: argument 1 (url) must be a string, got table; "
                    "usage: http.get(url [, opts])",
                    "http.get: argument 2 (opts) must be an options table, got string; "
                    "usage: http.get(url [, opts])",
                    "http.request: argument 1 (req) must be an options table, got string; "
                    "usage: http.request(req)",
                    "http.get_all: argument 1 (list) must be a table, got string; "
                    "usage: http.get_all(list [, opts])",
                ])
                self.assertIn("http.response:json: too many arguments (1)", res.data[1])
                # only the one correct GET reached the server (a read: dry-run runs it)
                self.assertEqual([(r["method"], r["path"]) for r in self.srv.requests()[seen:]],
                                 [("GET", "/echo")])

    def test_scenario_raises_the_same(self):
        self.write("lib/probe.lua", """
            runbook { name = "probe" }
            step("probe", function()
              http.get("http://api.test/healthz", { timout = 1 })
            end)
            """)
        self.write("lib/tests/misspelled.scenario.yaml", """
            runbook: ../probe.lua
            mocks:
              - http: { method: GET, url: "http://api.test/healthz" }
                respond: { status: 200, body: "ok" }
            expect:
              outcome: failed
              failed_step: probe
            """)
        res = self.rb("test", "-v", self.path("lib"))
        self.assertExit(res, 0)
        self.assertIn("1 passed, 0 failed", res.out)
        self.assertIn("probe.lua:3: unknown option 'timout' for http.get "
                      "(did you mean 'timeout'?)", res.out)


# ---- exec and sh ------------------------------------------------------------

class Exec(StrictCase):
    def setUp(self):
        super().setUp()
        self.marker = self.path("marker")
        self.HEAD = "local M = %s\n" % lua_str(self.marker)

    def test_misspelled_check_spawns_nothing(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      exec({ "touch", M }, { chekc = false })  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "unknown option 'chekc' for exec (did you mean 'check'?)")
                self.assertFalse(os.path.exists(self.marker), "the command ran")
                self.assertNoAction("exec")
                self.assertNotIn("would:", res.out)

    def test_sh_and_argument_mistakes(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    local function err(f, ...)
                      local ok, e = pcall(f, ...)
                      assert(not ok, "no error")
                      return (tostring(e):gsub("^[^:]*:%d+: ", ""))
                    end
                    step("s", function()
                      out({
                        err(sh, "touch " .. M, { timout = 5 }),
                        err(exec, { "touch", M }, { cdw = "/" }),
                        err(exec, "touch " .. M),
                        err(exec, { "touch", M }, "/"),
                        err(exec),
                        err(exec, { "touch", M }, {}, true),
                        err(sh, { "touch", M }),
                      })
                    end)
                    """, *flags)
                self.assertExit(res, 0)
                self.assertEqual(res.data[0], [
                    "unknown option 'timout' for sh (did you mean 'timeout'?)",
                    "unknown option 'cdw' for exec (did you mean 'cwd'?)",
                    "exec: argument 1 (argv) must be a table, got string; "
                    "usage: exec(argv [, opts])",
                    "exec: argument 2 (opts) must be an options table, got string; "
                    "usage: exec(argv [, opts])",
                    "exec: missing argument 1 (argv); usage: exec(argv [, opts])",
                    "exec: too many arguments (3); usage: exec(argv [, opts])",
                    "sh: argument 1 (command) must be a string, got table; "
                    "usage: sh(command [, opts])",
                ])
                self.assertFalse(os.path.exists(self.marker), "a command ran")
                self.assertNoAction("exec")
                self.assertNoAction("sh")

    def test_array_part_and_known_options_still_run(self):
        res = self.case("""
            step("s", function()
              local r = exec({ "sh", "-c", "cat > \\"$1\\"; echo done", "sh", M },
                             { stdin = "in", check = true, timeout = 30, cwd = "/",
                               env = { X = "1" }, readonly = false })
              out(r.stdout)
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data, ["done\n"])
        self.assertEqual(self.read(self.marker), "in")

    def test_scenario_raises_the_same(self):
        self.write("lib/touch.lua", """
            runbook { name = "touch" }
            step("touch", function()
              exec({ "touch", "/tmp/never" }, { chekc = false })
            end)
            """)
        self.write("lib/tests/misspelled.scenario.yaml", """
            runbook: ../touch.lua
            mocks:
              - exec: { argv: [touch, "*"] }
            expect:
              outcome: failed
              failed_step: touch
              not_actions: [ "touch" ]
            """)
        res = self.rb("test", "-v", self.path("lib"))
        self.assertExit(res, 0)
        self.assertIn("1 passed, 0 failed", res.out)
        self.assertIn("touch.lua:3: unknown option 'chekc' for exec (did you mean 'check'?)",
                      res.out)


# ---- fs ---------------------------------------------------------------------

class Fs(StrictCase):
    def setUp(self):
        super().setUp()
        self.file = self.write("app.conf", "workers=4\n", mode=0o640)
        self.dir = self.path("olddir")
        os.makedirs(os.path.join(self.dir, "sub"))
        self.HEAD = "local F, D = %s, %s\n" % (lua_str(self.file), lua_str(self.dir))

    def test_misspelled_option_leaves_the_file_alone(self):
        before = sha256(self.file)
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      fs.write(F, "workers=8\\n", { mdoe = "0600" })  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "unknown option 'mdoe' for fs.write (did you mean 'mode'?)")
                self.assertEqual(sha256(self.file), before, "the file changed")
                self.assertEqual(os.stat(self.file).st_mode & 0o777, 0o640)
                self.assertEqual(sorted(os.listdir(self.tmp)).count("app.conf"), 1)
                self.assertFalse([n for n in os.listdir(self.tmp) if ".rb-" in n],
                                 "a temporary file was left")
                self.assertNoAction("fs")

    def test_argument_mistakes(self):
        before = sha256(self.file)
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    local function err(f, ...)
                      local ok, e = pcall(f, ...)
                      assert(not ok, "no error")
                      return (tostring(e):gsub("^[^:]*:%d+: ", ""))
                    end
                    step("s", function()
                      out({
                        err(fs.write, F, { mode = "0600" }),
                        err(fs.write, { "workers=8" }, F),
                        err(fs.write, F),
                        err(fs.write, F, "x", {}, "extra"),
                        err(fs.append, F, "x", { mod = "0600" }),
                        err(fs.remove, D, { recursiv = true }),
                        err(fs.remove, F, { chek = false }),
                        err(fs.mkdir, D .. "/new/deep", { parent = true }),
                        err(fs.copy, F, D .. "/copy", { force = true }),
                        err(fs.move, F, D .. "/moved", {}),
                        err(fs.read, F, { binary = true }),
                        err(fs.stat, F, { chekc = false }),
                      })
                    end)
                    """, *flags)
                self.assertExit(res, 0)
                self.assertEqual(res.data[0], [
                    "fs.write: argument 2 (data) must be a string, got table; "
                    "usage: fs.write(path, data [, opts])",
                    "fs.write: argument 1 (path) must be a string, got table; "
                    "usage: fs.write(path, data [, opts])",
                    "fs.write: missing argument 2 (data); usage: fs.write(path, data [, opts])",
                    "fs.write: too many arguments (4); usage: fs.write(path, data [, opts])",
                    "unknown option 'mod' for fs.append (did you mean 'mode'?)",
                    "unknown option 'recursiv' for fs.remove (did you mean 'recursive'?)",
                    "unknown option 'chek' for fs.remove (did you mean 'check'?)",
                    "unknown option 'parent' for fs.mkdir (did you mean 'parents'?)",
                    "fs.copy: too many arguments (3); usage: fs.copy(src, dest)",
                    "fs.move: too many arguments (3); usage: fs.move(src, dest)",
                    "fs.read: too many arguments (2); usage: fs.read(path)",
                    "unknown option 'chekc' for fs.stat (did you mean 'check'?)",
                ])
                self.assertEqual(sha256(self.file), before)
                self.assertEqual(sorted(os.listdir(self.dir)), ["sub"])
                self.assertNoAction("fs")


# ---- notify -----------------------------------------------------------------

class Notify(StrictCase):
    ROUTES = {
        "/slack": {"status": 200, "body": "ok"},
        "/hook": {"status": 200, "json": {"received": True}},
        "/v2/enqueue": {"status": 202, "json": {"status": "success", "dedup_key": "d-1"}},
    }

    def setUp(self):
        super().setUp()
        self.srv = self.httpd(routes=self.ROUTES)
        self.mail = self.smtp()
        self.HEAD = "local B, SMTP = %s, %s\n" % (lua_str(self.srv.base),
                                                  lua_str(self.mail.url()))

    def test_slack_misspelled_key_sends_nothing(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      notify.slack{ webhook = B .. "/slack", text = "db failover", chanel = "#ops" }  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "unknown option 'chanel' for notify.slack "
                                    "(did you mean 'channel'?)")
                self.assertEqual(self.srv.requests(), [], "the message went out")
                self.assertNoAction("notify")
                self.assertNotIn("would:", res.out)

    def test_every_channel_checks_its_keys(self):
        res = self.case("""
            local function err(f, ...)
              local ok, e = pcall(f, ...)
              assert(not ok, "no error")
              return (tostring(e):gsub("^[^:]*:%d+: ", ""))
            end
            step("s", function()
              out({
                err(notify.webhook, B .. "/hook", { any = "payload key" }, { methd = "PUT" }),
                err(notify.pagerduty, { url = B .. "/v2/enqueue", routing_key = "k",
                                        summary = "disk full", severty = "critical" }),
                err(notify.email, { smtp = SMTP, from = "rb@x.test", to = "oncall@x.test",
                                    subjet = "disk full" }),
                err(notify.slack, "disk full"),
                err(notify.webhook, B .. "/hook"),
                err(notify.slack, { webhook = B .. "/slack", text = "x" }, { channel = "#a" }),
              })
              -- a payload's keys are data, not options; the server is up
              out(notify.webhook(B .. "/hook", { any = "payload key" }).status)
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [
            "unknown option 'methd' for notify.webhook (did you mean 'method'?)",
            "unknown option 'severty' for notify.pagerduty (did you mean 'severity'?)",
            "unknown option 'subjet' for notify.email (did you mean 'subject'?)",
            "notify.slack: argument 1 (message) must be an options table, got string; "
            "usage: notify.slack(message)",
            "notify.webhook: missing argument 2 (payload); "
            "usage: notify.webhook(url, payload [, opts])",
            "notify.slack: too many arguments (2); usage: notify.slack(message)",
        ])
        self.assertEqual(res.data[1], 200)
        self.assertEqual([(r["method"], r["path"], json.loads(r["body"]))
                          for r in self.srv.requests()],
                         [("POST", "/hook", {"any": "payload key"})])
        self.assertEqual(self.mail.mails(), [])
        self.assertEqual([a["verb"] for a in self.actions(primitive="notify")], ["webhook"])


# ---- ssh --------------------------------------------------------------------

class Ssh(StrictCase):
    """No sshd: the check happens before any client is spawned, so a fake
    `ssh` and `scp` first on PATH that leave a marker prove none ran."""

    def setUp(self):
        super().setUp()
        self.ran = self.path("client-ran")
        for client in ("ssh", "scp"):
            self.script(client, 'echo "$0 $*" >> %s\n' % self.ran)
        self.src = self.write("payload.txt", "data\n")
        self.HEAD = "local SRC = %s\n" % lua_str(self.src)

    def test_misspelled_option_spawns_no_client(self):
        for flags in MODES:
            with self.subTest(flags=flags):
                res = self.case("""
                    step("s", function()
                      ssh.run("web1", { "systemctl", "restart", "app" }, { timout = 5 })  -- @call
                    end)
                    """, *flags)
                self.assertRaisedAt(res, "call",
                                    "unknown option 'timout' for ssh.run "
                                    "(did you mean 'timeout'?)")
                self.assertFalse(os.path.exists(self.ran), "an ssh client ran")
                self.assertNoAction("ssh")

    def test_argument_mistakes_and_a_correct_call(self):
        res = self.case("""
            local function err(f, ...)
              local ok, e = pcall(f, ...)
              assert(not ok, "no error")
              return (tostring(e):gsub("^[^:]*:%d+: ", ""))
            end
            step("s", function()
              out({
                err(ssh.run, "web1", "uptime"),
                err(ssh.run, { "uptime" }, "web1"),
                err(ssh.run, "web1", { "uptime" }, { stdni = "x" }),
                err(ssh.copy, SRC, "web1", "/tmp/x", { chekc = false }),
                err(ssh.copy, SRC, "web1"),
                err(ssh.each, { "web1" }, function() end, { concurrenc = 2 }),
                err(ssh.each, function() end, { "web1" }),
                err(ssh.hosts),
              })
              -- the fake client is the one on PATH: a correct call runs it
              out(ssh.run("web1", { "uptime" }, { check = true, timeout = 30 }).code)
            end)
            """)
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], [
            "ssh.run: argument 2 (argv) must be a table, got string; "
            "usage: ssh.run(host, argv [, opts])",
            "ssh.run: argument 1 (host) must be a string, got table; "
            "usage: ssh.run(host, argv [, opts])",
            "unknown option 'stdni' for ssh.run (did you mean 'stdin'?)",
            "unknown option 'chekc' for ssh.copy (did you mean 'check'?)",
            "ssh.copy: missing argument 3 (dest); usage: ssh.copy(src, host, dest [, opts])",
            "unknown option 'concurrenc' for ssh.each (did you mean 'concurrency'?)",
            "ssh.each: argument 1 (hosts) must be a string or a table, got function; "
            "usage: ssh.each(hosts, fn [, opts])",
            "ssh.hosts: missing argument 1 (group); usage: ssh.hosts(group)",
        ])
        self.assertEqual(res.data[1], 0)
        ran = self.lines(self.ran)
        self.assertEqual(len(ran), 1, ran)
        self.assertIn("uptime", ran[0])
        self.assertEqual([a["verb"] for a in self.actions(primitive="ssh")], ["run"])


if __name__ == "__main__":
    unittest.main()
