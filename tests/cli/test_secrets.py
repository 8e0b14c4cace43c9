"""Secrets (SPEC §5): a `secret = true` param and a secret() from the
environment never appear in anything the program writes -- terminal, errors,
JSON events, the audit log (every byte of the database files), the export --
and **** appears in their place."""
import glob
import unittest

from rbtest import RunbookTestCase, lua_str

PARAM_SECRET = "pw-Zq81-param-value-Kx7"
ENV_SECRET = "tok-ENV-55501-value-Qm3"
FILE_SECRET = "from-secrets-file-Vb22"


class Redaction(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.env["API_TOKEN"] = ENV_SECRET
        self.rbfile = self.write("secret.lua", """
            runbook {
              name = "t/secrets",
              params = { password = { secret = true, help = "db password" }, user = { default = "ops" } },
            }
            step("Use them", function()
              local tok = secret("API_TOKEN")
              check(tok == %(env)s, "secret() did not return the real value")
              check(params.password == %(param)s, "the param is not the real value")
              log.info("token is %%s and password is %%s", tok, params.password)
              print("print: " .. tok .. " " .. params.password)
              local r = exec{"echo", "Authorization: Bearer " .. tok}
              check(r.stdout:find(tok, 1, true), "the program did not get the real value")
              exec({"cat"}, { stdin = params.password .. "\\n" })
              sh("echo " .. params.password .. " > /dev/null")
              exec({"printenv", "PGPASSWORD"}, { env = { PGPASSWORD = params.password } })
              state.leak = "state has " .. tok
            end)
            local early = secret("API_TOKEN")
            step("Rotate " .. early, { description = "uses " .. early }, function()
              check(confirm("really rotate " .. early), "not confirmed")
            end)
            step("Fail with it", function()
              error("login failed for ops with password " .. params.password .. " and token " .. secret("API_TOKEN"))
            end)
            """ % dict(env=lua_str(ENV_SECRET), param=lua_str(PARAM_SECRET)))

    def assertClean(self, text, where):
        self.assertNotIn(PARAM_SECRET, text, "the secret param leaked into " + where)
        self.assertNotIn(ENV_SECRET, text, "secret() leaked into " + where)

    def db_bytes(self):
        data = b""
        for f in glob.glob(self.audit + "*"):
            with open(f, "rb") as fh:
                data += fh.read()
        return data

    def test_text_output_and_audit(self):
        res = self.run_rb(self.rbfile, "--yes", "--param", "password=" + PARAM_SECRET)
        self.assertExit(res, 1)
        self.assertIn("login failed for ops", res.all)   # the error is shown...
        self.assertClean(res.out, "stdout")
        self.assertClean(res.err, "stderr")
        self.assertIn("****", res.out)                    # ...redacted
        self.assertIn("token is **** and password is ****", res.out)
        self.assertIn("Rotate ****", res.out)
        self.assertEqual(self.step_status().get("Rotate ****"), "ok")
        self.assertTrue(any("really rotate ****" in (a.get("target") or "")
                            for a in self.actions(primitive="confirm")))
        raw = self.db_bytes()
        self.assertNotIn(PARAM_SECRET.encode(), raw, "the secret param is in the audit db files")
        self.assertNotIn(ENV_SECRET.encode(), raw, "secret() is in the audit db files")
        self.assertIn(b"****", raw)
        run = self.run_record()
        self.assertEqual(run["params"]["password"], "****")
        self.assertEqual(run["params"]["user"], "ops")
        self.assertIn("****", run["state"]["leak"])
        for args in (["audit", "export", "--format", "jsonl"], ["audit", "export", "--format", "csv"],
                     ["audit", "show", self.last_run_id()], ["audit", "list", "--json"]):
            out = self.rb(*(args + ["--audit", self.audit]))
            self.assertExit(out, 0)
            self.assertClean(out.out + out.err, " ".join(args))
        export = self.rb("audit", "export", "--audit", self.audit).out
        self.assertIn("Bearer ****", export)

    def test_json_output(self):
        res = self.run_rb(self.rbfile, "--yes", "--output", "json", "--param",
                          "password=" + PARAM_SECRET)
        self.assertExit(res, 1)
        self.assertClean(res.out, "--output json")
        self.assertClean(res.err, "stderr")
        self.assertIn("****", res.out)

    def test_dry_run_and_verbose(self):
        res = self.run_rb(self.rbfile, "--yes", "--dry-run", "-v", "--param",
                          "password=" + PARAM_SECRET)
        self.assertExit(res, 1)
        self.assertClean(res.all, "dry-run -v output")
        self.assertNotIn(PARAM_SECRET.encode(), self.db_bytes())

    def test_secret_from_secrets_file(self):
        self.write("secrets.yaml", "DB_PASS: %s\n" % FILE_SECRET)
        self.write("runbook.yaml", "secrets_file: secrets.yaml\n")
        rb = self.write("file.lua", """
            runbook { name = "t/file" }
            step("Read", function()
              local v = secret("DB_PASS")
              check(v == %s, "wrong value from the secrets file")
              log.info("pass=%%s", v)
              exec{"echo", v}
            end)
            """ % lua_str(FILE_SECRET))
        res = self.run_rb(rb)
        self.assertExit(res, 0)
        self.assertNotIn(FILE_SECRET, res.all)
        self.assertIn("pass=****", res.out)
        self.assertNotIn(FILE_SECRET.encode(), self.db_bytes())

    def test_environment_beats_secrets_file(self):
        self.write("secrets.yaml", "API_TOKEN: from-the-file\n")
        self.write("runbook.yaml", "secrets_file: secrets.yaml\n")
        rb = self.write("pref.lua", """
            runbook { name = "t/pref" }
            step("Read", function()
              check(secret("API_TOKEN") == %s, "the secrets file won over the environment")
            end)
            """ % lua_str(ENV_SECRET))
        self.assertExit(self.run_rb(rb), 0)

    def test_missing_secret_names_it(self):
        rb = self.write("miss.lua", 'runbook { name = "t/miss" }\nstep("s", function() secret("NOT_SET_ANYWHERE") end)\n')
        res = self.run_rb(rb, drop_env=("NOT_SET_ANYWHERE",))
        self.assertExit(res, 1)
        self.assertIn("NOT_SET_ANYWHERE", res.all)

    def test_password_in_a_url_is_a_secret_wherever_it_comes_from(self):
        pw, pw2 = "url-Pw%2F9-xq", "lit-Pw-44q"   # %2F: percent-encoded in the URL
        rb = self.write("url.lua", """
            runbook { name = "t/url", params = { dsn = { default = "" } } }
            step("s", function()
              log.info("connecting to %%s", params.dsn)
              local other = "https://ops:%(pw2)s@example.invalid/x"
              print("url " .. other)
              exec({"printenv", "PGPASSWORD"}, { env = { PGPASSWORD = "url-Pw/9-xq" } })
              error("cannot reach " .. params.dsn)
            end)
        """ % {"pw2": pw2})
        res = self.run_rb(rb, "--param", "dsn=postgres://app:%s@127.0.0.1:1/x" % pw, "-v")
        self.assertExit(res, 1)
        self.assertIn("postgres://app:****@127.0.0.1:1/x", res.all)
        self.assertIn("https://ops:****@example.invalid/x", res.all)
        for leaked in (pw, pw2, "url-Pw/9-xq"):
            self.assertNotIn(leaked, res.all)
            for f in glob.glob(self.audit + "*"):
                with open(f, "rb") as fh:
                    self.assertNotIn(leaked.encode(), fh.read(), f)


if __name__ == "__main__":
    unittest.main(verbosity=2)
