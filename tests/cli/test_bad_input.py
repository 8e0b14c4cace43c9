"""Every bad input is a clear error (issue 15, item 3): the file and line of
the mistake, the key or flag, what is wrong and what was expected; exit 2;
and nothing done -- no step ran, no action was taken, no run was audited.

No message names an engine-internal file (scenario.lua:N, prelude.lua:N) as
the place of a user's mistake, and no message quotes a secret param's value.

Each test feeds one bad input and asserts the whole message."""
import json
import os
import re
import sqlite3
import unittest

from rbtest import RunbookTestCase

# an engine-internal file named as a place: "scenario.lua:334", "runbook/prelude.lua:12"
INTERNAL = re.compile(r"\b(scenario|prelude|record|repl)\.lua:\d+|stack traceback|attempt to "
                      r"(index|compare|call)|bad argument #")

RUNBOOK = """\
runbook { name = "t/bad-input" }
step("act", function()
  print("STEP RAN")
  exec{ "df", "-P", "/var/log" }
end)
"""


class Base(RunbookTestCase):
    def assertClean(self, res, secret=None):
        """No engine-internal place and no secret anywhere in the output."""
        self.assertIsNone(INTERNAL.search(res.all), res)
        if secret:
            self.assertNotIn(secret, res.all)

    def assertNothingAudited(self):
        """No run reached the audit log (it may not even exist)."""
        if not os.path.exists(self.audit):
            return
        con = sqlite3.connect("file:%s?mode=ro" % self.audit, uri=True)
        self.addCleanup(con.close)
        try:
            n = con.execute("SELECT count(*) FROM records").fetchone()[0]
        except sqlite3.OperationalError:  # created, no table yet
            return
        self.assertEqual(n, 0, "a run was audited")


# ---- scenario files ------------------------------------------------------------------

class ScenarioFiles(Base):
    """`runbook test --one FILE`: exit 2 and a verdict "malformed" whose one
    failure is the message; `runbook test FILE` prints it too.  The runbook's
    step prints STEP RAN: it never does."""

    def setUp(self):
        super().setUp()
        self.write("sc/bad.lua", RUNBOOK, dedent=False)
        self.write("sc/ok.json", '{"a": 1}\n', dedent=False)
        self.write("sc/not.json", "{not json\n", dedent=False)

    def assertRefused(self, text, message):
        """The scenario `text` (written as sc/t.scenario.yaml) is refused with
        exactly "sc/t.scenario.yaml" + message."""
        p = self.write("sc/t.scenario.yaml", text)
        want = "sc/t.scenario.yaml" + message
        res = self.rb("test", "--one", "sc/t.scenario.yaml")
        self.assertEqual(res.code, 2, res)
        lines = [l for l in res.out.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, res)
        v = json.loads(lines[0])
        self.assertEqual(v["status"], "malformed", v)
        self.assertEqual(v["failures"], [want])
        self.assertEqual(v["output"], "", "the runbook ran")
        self.assertClean(res)
        # and as `runbook test` reports it
        res = self.rb("test", "sc/t.scenario.yaml")
        self.assertEqual(res.code, 1, res)  # runbook test: 1 when any scenario fails or is malformed
        self.assertIn("\n    %s\n" % want, res.out)
        self.assertNotIn("STEP RAN", res.all)
        self.assertClean(res)
        return p

    def test_mocks_not_a_list(self):
        self.assertRefused("runbook: bad.lua\nmocks: 5\n",
                           ":2: mocks: got 5 (expected a list of mocks, each a mapping such as "
                           "{ exec: { argv: [...] }, respond: {...} })")

    def test_a_mock_not_a_mapping(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - exec\n",
                           ":3: mocks[1]: got 'exec' (expected a mock: a mapping such as "
                           "{ exec: { argv: [...] }, respond: {...} })")

    def test_outcome_not_a_documented_value(self):
        self.assertRefused("runbook: bad.lua\nexpect:\n  outcome: maybe\n",
                           ":3: expect.outcome: got 'maybe' (expected one of: aborted, failed, "
                           "success)")

    def test_status_not_an_http_status(self):
        for status, shown in [('"abc"', "'abc'"), ("99", "99"), ("600", "600"), ("200.5", "200.5")]:
            with self.subTest(status):
                self.assertRefused(
                    "runbook: bad.lua\nmocks:\n  - http: { url: \"*\" }\n"
                    "    respond:\n      - { status: 200 }\n      - { status: %s }\n" % status,
                    ":6: mocks[1].respond[2].status: got %s (expected an HTTP status, an "
                    "integer from 100 to 599)" % shown)

    def test_code_not_an_integer(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - exec: { argv: [df, -P, /var/log] }\n"
                           "    respond: { code: \"x\" }\n",
                           ":4: mocks[1].respond[1].code: got 'x' (expected an exit code, an "
                           "integer from 0 to 255)")

    def test_fs_not_a_mapping(self):
        self.assertRefused("runbook: bad.lua\nfs: hello\n",
                           ":2: fs: got 'hello' (expected a mapping of path to the file's text, "
                           "or to { file | text, age_days })")

    def test_fs_seed_text_not_text(self):
        self.assertRefused("runbook: bad.lua\nfs:\n  /etc/a.conf: [1, 2]\n",
                           ":3: fs[/etc/a.conf]: got a list (expected the file's text, or "
                           "{ file | text, age_days })")

    def test_missing_json_file(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - http: { url: \"*\" }\n"
                           "    respond: { json_file: nope.json }\n",
                           ":4: mocks[1].respond[1].json_file: cannot read nope.json: No such "
                           "file or directory")

    def test_json_file_not_json(self):
        p = "runbook: bad.lua\nmocks:\n  - http: { url: \"*\" }\n    respond: { json_file: not.json }\n"
        self.write("sc/t.scenario.yaml", p)
        res = self.rb("test", "--one", "sc/t.scenario.yaml")
        self.assertEqual(res.code, 2, res)
        failure = json.loads(res.out.strip().splitlines()[-1])["failures"][0]
        self.assertTrue(failure.startswith("sc/t.scenario.yaml:4: mocks[1].respond[1].json_file: "
                                           "not.json is not JSON: "), failure)
        self.assertClean(res)

    def test_a_match_field_of_the_wrong_type(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - exec: { argv: \"df -P\" }\n",
                           ":3: mocks[1].exec.argv: got 'df -P' (expected a list of strings "
                           "(globs), element by element)")

    def test_required_not_a_boolean(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - exec: { argv: [df] }\n"
                           "    required: yes\n",
                           ":4: mocks[1].required: got 'yes' (expected true or false)")

    def test_respond_not_a_mapping(self):
        self.assertRefused("runbook: bad.lua\nmocks:\n  - exec: { argv: [df] }\n"
                           "    respond: [ { code: 0 }, 7 ]\n",
                           ":4: mocks[1].respond[2]: got 7 (expected a mapping)")

    def test_expectations_of_the_wrong_shape(self):
        for name, text, msg in [
            ("actions", "expect:\n  actions: 5\n",
             ":3: expect.actions: got 5 (expected a string, or a list of them)"),
            ("notifications", "expect:\n  notifications: { channel: slack }\n",
             ":3: expect.notifications: got a mapping (expected a list of notifications, each "
             "a mapping with channel and/or text)"),
            ("notification key", "expect:\n  notifications:\n    - { chanel: slack }\n",
             ":4: expect.notifications[1]: unknown key 'chanel' (expected one of: channel, "
             "text)"),
            ("failed_step", "expect:\n  failed_step: [1]\n",
             ":3: expect.failed_step: got a list (expected the step's name, or its index "
             "from 1)"),
        ]:
            with self.subTest(name):
                self.assertRefused("runbook: bad.lua\n" + text, msg)

    def test_top_level_values_of_the_wrong_type(self):
        for name, text, msg in [
            ("params", "params: { days: { a: 1 } }\n",
             ":2: params.days: got a mapping (expected a value, or a list of values)"),
            ("confirm", "confirm: 5\n",
             ":2: confirm: got 5 (expected true, false, a list of answers, or a mapping of "
             "question pattern to answer)"),
            ("env", "env: [prod]\n", ":2: env: got a list (expected a string)"),
            ("skip", "skip: true\n", ":2: skip: got true (expected a string)"),
        ]:
            with self.subTest(name):
                self.assertRefused("runbook: bad.lua\n" + text, msg)

    def test_runbook_check_reports_the_same(self):
        self.write("sc/t.scenario.yaml", "runbook: bad.lua\nmocks: 5\n")
        res = self.rb("check", "sc/t.scenario.yaml")
        self.assertEqual(res.code, 1, res)
        self.assertIn("sc/t.scenario.yaml:2:", res.all)
        self.assertIn("mocks: got 5 (expected a list of mocks", res.all)
        self.assertClean(res)


# ---- runbook metadata: params --------------------------------------------------------

class Params(Base):
    """A bad declaration or value: exit 2, the step (which would create
    `marker`) never ran, no run audited."""

    def run_params(self, decl, *flags):
        f = self.write("p.lua", 'runbook { name = "t/p", params = { %s } }\n'
                       'step("s", function() exec{ "touch", %r } end)\n'
                       % (decl, self.path("marker")), dedent=False)
        res = self.run_rb(f, *flags)
        self.assertEqual(res.code, 2, res)
        self.assertFalse(os.path.exists(self.path("marker")), "the step ran")
        self.assertNothingAudited()
        return res

    def assertError(self, res, message, secret=None):
        self.assertEqual(res.err.strip(), "runbook: %s:1: %s" % (self.path("p.lua"), message), res)
        self.assertClean(res, secret)

    def test_choices_must_be_a_list(self):
        res = self.run_params('c = { choices = "abc" }')
        self.assertError(res, "runbook{}: param 'c': choices must be a non-empty list of strings, "
                              "e.g. choices = { ... }, got string")

    def test_choices_must_be_of_the_params_type(self):
        res = self.run_params('n = { type = "number", choices = { 1, "2" } }', "--param", "n=1")
        self.assertError(res, "runbook{}: param 'n': choices[2] must be a finite number (the "
                              "param's type), got string")

    def test_default_must_be_of_the_declared_type(self):
        res = self.run_params('n = { type = "number", default = "many" }')
        self.assertError(res, "param 'n' must be a number, got 'many' (its default)")

    def test_numbers_are_finite(self):
        for value, msg in [("1e400", "param 'n' must be a finite number, got '1e400' (from --param)"),
                           ("inf", "param 'n' must be a number, got 'inf' (from --param)"),
                           ("nan", "param 'n' must be a number, got 'nan' (from --param)")]:
            with self.subTest(value):
                res = self.run_params('n = { type = "number" }', "--param", "n=" + value)
                self.assertError(res, msg)

    def test_a_list_item_outside_the_choices(self):
        res = self.run_params('l = { type = "list", choices = { "a", "b" } }', "--param", "l=a,zz")
        self.assertError(res, "param 'l': 'zz' is not one of a, b")

    def test_secret_values_are_never_quoted(self):
        for decl, value, msg in [
            ('c = { secret = true, choices = { "a", "b" } }', "c=CHOICESECxyz30",
             "param 'c' (secret): the value given is not one of a, b"),
            ('n = { type = "number", secret = true }', "n=NUMSECxyz31",
             "param 'n' (secret) must be a number, and the value given is not (from --param)"),
            ('n = { type = "number", secret = true }', "n=9e999",
             "param 'n' (secret): the value given is not a finite number (from --param)"),
            ('b = { type = "boolean", secret = true }', "b=BOOLSECxyz32",
             "param 'b' (secret) must be a boolean, and the value given is not (from --param)"),
        ]:
            with self.subTest(value):
                res = self.run_params(decl, "--param", value)
                self.assertError(res, msg, secret=value.split("=", 1)[1])


# ---- command-line values -------------------------------------------------------------

class Flags(Base):
    def setUp(self):
        super().setUp()
        self.rbfile = self.write("f.lua", 'runbook { name = "t/f" }\n'
                                 'step("s", function() exec{ "touch", %r } end)\n'
                                 % self.path("marker"), dedent=False)

    def assertRefused(self, res, message):
        self.assertEqual(res.code, 2, res)
        self.assertEqual(res.err.strip(), "runbook: " + message, res)
        self.assertFalse(os.path.exists(self.path("marker")), "the step ran")
        self.assertNothingAudited()
        self.assertClean(res)

    def test_timeout_is_bounded(self):
        for value in ["1e999", "inf", "nan", "8d", "0", "-1"]:
            with self.subTest(value):
                res = self.run_rb(self.rbfile, "--timeout", value)
                self.assertRefused(res, "--timeout %s: expected a duration of more than 0 and at "
                                        "most 7d (seconds, or 90s, 5m, 1h)" % value)

    def test_no_audit_and_audit_together(self):
        other = self.path("x.db")
        res = self.rb("run", self.rbfile, "--no-audit", "--audit", other)
        self.assertRefused(res, "run: --no-audit and --audit contradict each other: record the "
                                "run (drop --no-audit) or do not (drop --audit)")
        self.assertFalse(os.path.exists(other))
        # after the runbook's name too, and for the REPL
        res = self.rb("run", self.rbfile, "--audit", other, "--no-audit")
        self.assertEqual(res.code, 2, res)
        res = self.rb("repl", "--no-audit", "--audit", other, stdin="print(1)\n")
        self.assertRefused(res, "repl: --no-audit and --audit contradict each other: record the "
                                "run (drop --no-audit) or do not (drop --audit)")
        self.assertFalse(os.path.exists(other))

    def test_record_into_a_missing_directory(self):
        dest = self.path("nope", "rec.scenario.yaml")
        res = self.run_rb(self.rbfile, "--record", dest)
        self.assertRefused(res, "run: --record %s: no directory %s to write it in (No such file "
                                "or directory); nothing was run" % (dest, self.path("nope")))
        self.assertFalse(os.path.exists(self.path("nope")))

    def test_record_below_a_file(self):
        self.write("plain", "x\n")
        dest = self.path("plain", "rec.scenario.yaml")
        res = self.run_rb(self.rbfile, "--record", dest)
        self.assertRefused(res, "run: --record %s: %s is not a directory; nothing was run"
                           % (dest, self.path("plain")))

    def test_record_onto_a_directory(self):
        os.makedirs(self.path("adir"))
        res = self.run_rb(self.rbfile, "--record", self.path("adir"))
        self.assertRefused(res, "run: --record %s: is a directory (expected the path of a file); "
                                "nothing was run" % self.path("adir"))

    @unittest.skipIf(os.geteuid() == 0, "root writes through permissions")
    def test_record_into_an_unwritable_directory(self):
        d = self.path("ro")
        os.makedirs(d)
        os.chmod(d, 0o555)
        self.addCleanup(os.chmod, d, 0o755)
        dest = os.path.join(d, "rec.scenario.yaml")
        res = self.run_rb(self.rbfile, "--record", dest)
        self.assertRefused(res, "run: --record %s: cannot write in %s: Permission denied; "
                                "nothing was run" % (dest, d))
        self.assertEqual(os.listdir(d), [])

    def test_record_into_a_good_directory_still_works(self):
        dest = self.path("rec.scenario.yaml")
        res = self.run_rb(self.rbfile, "--record", dest)
        self.assertEqual(res.code, 0, res)
        self.assertTrue(os.path.exists(dest))
        self.assertTrue(os.path.exists(self.path("marker")))
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".runbook-record")], [])


# ---- runbook.yaml ----------------------------------------------------------------------

class Config(Base):
    def run_with_config(self, text):
        self.write("runbook.yaml", text)
        f = self.write("c.lua", 'runbook { name = "t/c" }\n'
                       'step("s", function() exec{ "touch", %r } end)\n'
                       % self.path("marker"), dedent=False)
        res = self.run_rb(f)
        self.assertEqual(res.code, 2, res)
        self.assertFalse(os.path.exists(self.path("marker")), "the step ran")
        self.assertNothingAudited()
        self.assertClean(res)
        return res

    def test_a_notify_service_not_a_mapping(self):
        res = self.run_with_config("notify:\n  slack: 5\n")
        self.assertEqual(res.err.strip(),
                         "runbook: runbook.yaml:2: notify.slack must be a mapping, got number")

    def test_an_unknown_notify_service(self):
        res = self.run_with_config("notify:\n  slak: { channel: '#ops' }\n")
        self.assertEqual(res.err.strip(),
                         "runbook: runbook.yaml:2: notify: unknown key 'slak' (valid keys: slack, "
                         "webhook, pagerduty, email)")

    def test_a_notify_service_in_an_environment(self):
        res = self.run_with_config("environments:\n  prod:\n    notify:\n      email: true\n")
        self.assertEqual(res.err.strip(),
                         "runbook: runbook.yaml:4: environments.prod.notify.email must be a "
                         "mapping, got boolean")

    def test_a_webhook_url_is_never_quoted(self):
        res = self.run_with_config("notify:\n  slack: https://hooks.example/T0/SECRETHOOK\n")
        self.assertNotIn("SECRETHOOK", res.all)

    def test_readonly_commands_name_programs(self):
        res = self.run_with_config("readonly_commands: [[1, 2]]\n")
        self.assertEqual(res.err.strip(),
                         "runbook: runbook.yaml:1: readonly_commands[1][1] must be a program's "
                         "name (a string), got a number")

    def test_readonly_commands_nested_lists(self):
        res = self.run_with_config("readonly_commands:\n  - [redis-cli, [INFO]]\n")
        self.assertEqual(res.err.strip(),
                         "runbook: runbook.yaml:2: readonly_commands[1][2] must be a string")


if __name__ == "__main__":
    unittest.main()
