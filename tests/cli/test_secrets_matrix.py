"""The redaction matrix (issue "Nothing leaks, nothing crashes", item 6):
every secret source x every output, zero occurrences of the value and of the
encodings it travels in (percent-encoded, JSON-escaped, base64 at each
alignment, base64(user:password) for Basic auth).

Sources: a string, number and list param declared secret; secret() from the
environment; a password in a URL; Basic auth (table and "user:pass");
Bearer auth; secret.register of a value read from a file.  A boolean secret
param is hidden by declaration (its value is "****" wherever params are
written) and never searched for -- "true" cannot be redacted from every
output; a value under 4 bytes likewise, with a warning (both documented in
the README).

Outputs: the terminal, -v, --output json, audit show, audit export jsonl and
csv, the database's raw bytes (with its -wal), a --record file and its
replay, JUnit from `runbook test` of that recording, the REPL's history on a
real pty, and error messages (a failed step's message, stderr)."""
import base64
import glob
import json
import os
import urllib.parse
import unittest

from rbtest import RunbookTestCase, lua_str
from test_repl import Repl

STR = "str-Secret-Kq81/+value"
NUM = "987654321987"
ITEM1, ITEM2 = "list-Item1-Zz9", "list-Item2-Yy8"
ENV = "env-Token-55501+/="
URLPW = "url-Pw-Hh42"
BASIC_USER, BASIC = "ops", "basic-Pw-Jj73"
USERPASS = "svc:userpass-Pw-Mm55"
BEARER = "bearer-Tok-Ll64"
REG = "registered-Vv37\"quote"
SOURCES = {"string param": STR, "number param": NUM, "list param": ITEM1, "list param 2": ITEM2,
           "secret()": ENV, "URL password": URLPW, "Basic auth": BASIC,
           "Basic auth as user:pass": USERPASS.split(":", 1)[1], "Bearer auth": BEARER,
           "secret.register": REG}


def b64_inner(value):
    """What base64 of value looks like at each of 3 alignments inside a longer
    base64 text: only the characters made of the value's own bits."""
    out = set()
    raw = value.encode()
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        first, end = (shift * 8 + 5) // 6, (shift * 8 + len(raw) * 8) // 6
        out.add(enc[first:end])
    return out


def forms(value):
    """The value and the encodings it may travel in."""
    f = {value, urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]}
    f |= b64_inner(value)
    f |= {x.replace("+", "-").replace("/", "_") for x in b64_inner(value)}
    return {x for x in f if len(x) >= 4}


ALL_FORMS = {}
for name, v in SOURCES.items():
    ALL_FORMS[name] = forms(v)
ALL_FORMS["Basic auth header"] = {base64.b64encode(("%s:%s" % (BASIC_USER, BASIC)).encode()).decode(),
                                  base64.b64encode(USERPASS.encode()).decode()}


class Matrix(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.httpd()
        self.env["MATRIX_TOKEN"] = ENV
        self.state_dir = self.path("state")
        self.env["XDG_STATE_HOME"] = self.state_dir
        self.pwfile = self.write("pw.txt", REG, dedent=False)
        self.rbfile = self.write("matrix.lua", """
            runbook {
              name = "t/matrix",
              params = {
                s = { secret = true }, n = { type = "number", secret = true },
                l = { type = "list", secret = true },
                b = { type = "boolean", secret = true, default = false },
                base = { default = "" },
              },
            }
            step("use every secret", function()
              local env = secret("MATRIX_TOKEN")
              local reg = secret.register(fs.read(%(pwfile)s))
              local url = "postgres://ops:%(urlpw)s@127.0.0.1:1/db"
              local all = { params.s, params.n, params.l[1], params.l[2], env, reg, url }
              for _, v in ipairs(all) do
                log.info("value %%s", v)
                print("printed " .. tostring(v))
              end
              print(json.encode({ s = params.s, n = params.n, l = params.l, b = params.b, reg = reg }))
              exec{ "echo", table.concat({ params.s, tostring(params.n), env, reg }, " ") }
              exec{ "sh", "-c", "printf %%s \\"$0\\" | base64", params.s }
              -- the server echoes the request: its Authorization header comes back
              for _, o in ipairs({ { auth = { user = %(buser)s, password = %(basic)s } },
                                   { auth = %(userpass)s },
                                   { headers = { Authorization = "Bearer " .. %(bearer)s } } }) do
                print(http.get(params.base .. "/echo", o).body)
              end
              print(http.get(params.base .. "/echo?token=" .. env).body)
              state.everything = all
            end)
            step("fail with every secret", function()
              error("failing with " .. table.concat({ params.s, tostring(params.n), params.l[1],
                    secret("MATRIX_TOKEN"), %(basic)s, %(bearer)s, %(urlpwq)s, fs.read(%(pwfile)s) }, " "))
            end)
            """ % {"pwfile": lua_str(self.pwfile), "urlpw": URLPW, "urlpwq": lua_str(URLPW), "buser": lua_str(BASIC_USER),
                   "basic": lua_str(BASIC), "userpass": lua_str(USERPASS), "bearer": lua_str(BEARER)})
        self.params = ["--param", "s=" + STR, "--param", "n=" + NUM,
                       "--param", "l=%s,%s" % (ITEM1, ITEM2), "--param", "b=true",
                       "--param", "base=" + self.srv.base]

    def assertClean(self, output_name, text):
        for source, fs in ALL_FORMS.items():
            for f in fs:
                self.assertFalse(f in text, "%s leaks through %s as %r" % (source, output_name, f))

    def run_all(self, *flags):
        return self.rb("run", self.rbfile, "--audit", self.audit, "--yes", *(self.params + list(flags)))

    def test_every_source_through_every_output(self):
        outputs = {}
        res = self.run_all()
        self.assertExit(res, 1)
        self.assertIn("failing with ****", res.all)          # the error message
        self.assertIn("printed ****", res.out)
        self.assertIn('"authorization": "Basic ****"', res.out)   # the server's echo
        self.assertIn('"authorization": "Bearer ****"', res.out)
        outputs["terminal"] = res.all
        res = self.run_all("-v")
        self.assertExit(res, 1)
        outputs["-v"] = res.all
        res = self.run_all("--output", "json")
        self.assertExit(res, 1)
        outputs["--output json"] = res.all
        events = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        start = [e for e in events if e.get("event") == "run_start"][0]
        # by declaration: every secret param's value, the boolean too
        self.assertEqual({k: start["params"][k] for k in "snlb"}, dict.fromkeys("snlb", "****"))
        self.assertTrue(self.srv.requests(), "the HTTP calls never reached the server")
        # the server did get the real credentials: redaction is of outputs only
        sent = json.dumps(self.srv.requests())
        self.assertIn(base64.b64encode(b"ops:" + BASIC.encode()).decode(), sent)
        self.assertIn(BEARER, sent)
        rid = self.last_run_id()
        for name, args in (("audit show", ("audit", "show", rid)),
                           ("audit export jsonl", ("audit", "export", "--format", "jsonl")),
                           ("audit export csv", ("audit", "export", "--format", "csv"))):
            r = self.rb(*(args + ("--audit", self.audit)))
            self.assertExit(r, 0)
            outputs[name] = r.all
        raw = b""
        for f in glob.glob(self.audit + "*"):
            with open(f, "rb") as fh:
                raw += fh.read()
        self.assertTrue(raw)
        outputs["database bytes (with -wal)"] = raw.decode("latin-1")
        # a recording, its replay and the replay's JUnit
        rec = self.path("rec/matrix.scenario.yaml")
        os.makedirs(os.path.dirname(rec))
        res = self.run_all("--record", rec)
        outputs["--record run"] = res.all
        outputs["--record file"] = "".join(self.read(f) for f in glob.glob(self.path("rec/*")))
        junit = self.path("junit.xml")
        t = self.rb("test", rec, "--junit", junit)
        outputs["runbook test"] = t.all
        outputs["JUnit"] = self.read(junit)
        self.assertIn("<testsuite", outputs["JUnit"])
        self.assertEqual(t.code, 0, t.all)  # the recording replays as written
        # the REPL's history, on a real pty
        r = Repl(self, env={"MATRIX_TOKEN": ENV, "XDG_STATE_HOME": self.state_dir})
        r.do('t = secret("MATRIX_TOKEN")')
        r.do('r = secret.register(%s)' % lua_str(REG))
        r.do('print(%s, %s, %s)' % (lua_str(ENV), lua_str(REG), lua_str("x" + REG)))
        r.quit()
        hist = os.path.join(self.state_dir, "runbook", "history")
        outputs["REPL history"] = self.read(hist)
        self.assertIn("secret.register(", outputs["REPL history"])
        for name, text in outputs.items():
            with self.subTest(output=name):
                self.assertClean(name, text)
        # the size of the matrix, for the note
        print("\nredaction matrix: %d sources x %d outputs" % (len(ALL_FORMS), len(outputs)))

    def test_a_short_secret_is_said_and_still_hidden_where_params_are_written(self):
        rb = self.write("short.lua", """
            runbook { name = "t/short", params = { pin = { type = "number", secret = true } } }
            step("s", function() log.info("pin is %s", params.pin) end)
            """)
        res = self.rb("run", rb, "--audit", self.audit, "--param", "pin=42", "--output", "json")
        self.assertExit(res, 0)
        self.assertIn("param 'pin' is a secret shorter than 4 bytes", res.all)
        events = [json.loads(l) for l in res.out.splitlines() if l.startswith("{")]
        start = [e for e in events if e.get("event") == "run_start"][0]
        self.assertEqual(start["params"], {"pin": "****"})
        # not searched for: "pin is 42" stays, as the warning says
        self.assertIn("pin is 42", res.out)

    def test_an_excerpt_is_redacted_before_it_is_cut(self):
        secret = "cut-Secret-Ab12Cd34"
        rb = self.write("cut.lua", """
            runbook { name = "t/cut" }
            step("s", function()
              secret.register(%s)
              exec{ "sh", "-c", "head -c 4090 /dev/zero | tr '\\\\0' a; printf %%s \\"$0\\"", %s }
            end)
            """ % (lua_str(secret), lua_str(secret)))
        res = self.rb("run", rb, "--audit", self.audit, "--yes")
        self.assertExit(res, 0)
        acts = self.actions()
        out = acts[0]["stdout"]
        self.assertNotIn(secret[:4], out[4080:])
        self.assertTrue(out.endswith("a****") or out.endswith("a****"[:len(out) - 4086]), out[-20:])
        with open(self.audit, "rb") as f:
            self.assertNotIn(secret[:6].encode(), f.read())


if __name__ == "__main__":
    unittest.main()
