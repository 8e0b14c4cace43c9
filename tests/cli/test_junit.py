"""`runbook test --junit`: a report CI tools render.

A library of two runbooks whose scenarios pass, fail, are malformed, time
out and are skipped.  The report must be valid against the JUnit schemas CI
tools validate with (xmllint --schema: Jenkins' for the default, Ant's for
--junit-format ant), read by junitparser (Debian's python3-junitparser) with
the counts the text summary prints, group the scenarios by runbook
(classname = the runbook's name), report a malformed scenario as an
<error>, and carry each run's output -- its secrets redacted -- in
<system-out>.  `runbook test -v` prints that output under each result line.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

from rbtest import FIXTURES, RunbookTestCase

JENKINS_XSD = os.path.join(FIXTURES, "junit.xsd")
ANT_XSD = os.path.join(FIXTURES, "junit-ant.xsd")
XMLLINT = shutil.which("xmllint")


def _junitparser():
    """junitparser as Debian ships it (python3-junitparser), also when the
    tests run under another python3 than Debian's."""
    try:
        import junitparser
        return junitparser
    except ImportError:
        pass
    debian = "/usr/lib/python3/dist-packages"
    if not os.path.isdir(os.path.join(debian, "junitparser")):
        return None
    sys.path.append(debian)
    try:
        import junitparser
        return junitparser
    except ImportError:
        return None
    finally:
        sys.path.remove(debian)


JP = _junitparser()

SECRET = "S3cr3t-junit-7f2c"

RESTART = """
runbook {
  name = "web/restart",
  title = "Restart the web container",
  params = { token = { secret = true, default = "none" } },
}
step("Restart", function()
  log.info("restarting with token %s", params.token)
  state.token_used = params.token
  docker.restart("web")
  log.info("markup <b>&amp;</b> \\"quoted\\" \\1 control, \\239\\191\\191 not a character")
end)
"""

VACUUM = """
runbook { name = "db/vacuum", params = { spin = { type = "boolean", default = false } } }
step("Vacuum", function()
  if params.spin then while true do end end
  exec{ "vacuumdb", "--all" }
end)
"""

SCENARIOS = {
    # web/restart: passes, fails (its expected state holds the secret)
    "web/tests/restarts.scenario.yaml": """
        name: restarts the web container
        runbook: ../restart
        params: { token: %s }
        mocks:
          - docker: { verb: restart, name: web }
        expect:
          outcome: success
          actions: [ "docker restart web" ]
        """ % SECRET,
    "web/tests/wrong-container.scenario.yaml": """
        runbook: web/restart
        params: { token: %s }
        mocks:
          - docker: { verb: restart, name: web }
        expect:
          actions: [ "docker restart db" ]
          state: { token_used: "not-%s" }
        """ % (SECRET, SECRET),
    # db/vacuum: passes, malformed, times out, skipped
    "db/tests/vacuums.scenario.yaml": """
        runbook: ../vacuum
        mocks:
          - exec: { argv: [ vacuumdb, --all ] }
            respond: { stdout: "vacuumed 3 databases" }
        expect:
          actions: [ "vacuumdb --all" ]
        """,
    "db/tests/misspelt.scenario.yaml": """
        runbook: ../vacuum
        expect: { outcom: success }
        """,
    "db/tests/spins.scenario.yaml": """
        runbook: ../vacuum
        params: { spin: true }
        timeout: 1s
        """,
    "db/tests/later.scenario.yaml": """
        runbook: ../vacuum
        skip: waiting for a replica to test against
        """,
}

SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) errors?)?(?:, (\d+) skipped)? "
                        r"\(\d+\.\d\d s\)$", re.M)
LINE_RE = re.compile(r"^(✓|✗|-) (\S+)")


class JUnitCase(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.write("lib/runbooks/web/restart.lua", RESTART)
        self.write("lib/runbooks/db/vacuum.lua", VACUUM)
        for rel, text in SCENARIOS.items():
            self.write("lib/runbooks/" + rel, text)
        # from another directory than the library's: nothing depends on it
        os.makedirs(self.path("elsewhere"))

    def run_test(self, *args):
        return self.rb("test", self.path("lib", "runbooks"), *args, cwd=self.path("elsewhere"))

    def summary(self, res):
        m = SUMMARY_RE.search(res.out)
        self.assertIsNotNone(m, res)
        return {"passed": int(m.group(1)), "failed": int(m.group(2)),
                "errors": int(m.group(3) or 0), "skipped": int(m.group(4) or 0)}

    def text_status(self, res):
        """{scenario path: ✓, ✗ or -} from the text report, and the ✗ lines' marks"""
        status, marks = {}, {}
        for line in res.out.splitlines():
            m = LINE_RE.match(line)
            if m:
                status[m.group(2)] = m.group(1)
                marks[m.group(2)] = line
        return status, marks

    def xmllint(self, xsd, xml):
        p = subprocess.run([XMLLINT, "--noout", "--schema", xsd, xml],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


@unittest.skipUnless(XMLLINT, "xmllint not installed (libxml2-utils)")
class Report(JUnitCase):
    def setUp(self):
        super().setUp()
        self.xml = self.path("report.xml")
        self.res = self.run_test("--junit", self.xml)
        self.assertEqual(self.res.code, 1, self.res)

    def test_valid_against_the_jenkins_schema(self):
        self.xmllint(JENKINS_XSD, self.xml)
        with open(self.xml, "rb") as f:
            f.read().decode("utf-8", "strict")

    def test_a_suite_per_runbook_classname_the_runbook(self):
        root = ET.parse(self.xml).getroot()
        self.assertEqual(root.tag, "testsuites")
        suites = {s.get("name"): s for s in root.findall("testsuite")}
        self.assertEqual(sorted(suites), ["db/vacuum", "web/restart"])
        for name, suite in suites.items():
            for case in suite.findall("testcase"):
                self.assertEqual(case.get("classname"), name)
                self.assertGreaterEqual(float(case.get("time")), 0)
        names = lambda s: sorted(c.get("name") for c in suites[s].findall("testcase"))
        # the scenario's name: when it has none, its file name
        self.assertEqual(names("web/restart"), ["restarts the web container", "wrong-container"])
        self.assertEqual(names("db/vacuum"), ["later", "misspelt", "spins", "vacuums"])
        self.assertTrue(suites["db/vacuum"].get("file").endswith("runbooks/db/vacuum.lua"))

    def test_failure_error_and_skipped(self):
        root = ET.parse(self.xml).getroot()
        case = {c.get("name"): c for c in root.iter("testcase")}
        # expectations that did not hold: a failure, each one in its text
        wrong = case["wrong-container"]
        self.assertEqual([e.tag for e in wrong if e.tag != "system-out"], ["failure"])
        self.assertEqual(wrong.find("failure").get("type"), "expectations")
        self.assertIn("docker restart db", wrong.find("failure").get("message"))
        self.assertIn("token_used", wrong.find("failure").text)
        self.assertIn("wrong-container.scenario.yaml", wrong.find("failure").text)
        # a malformed scenario is an error (the test is wrong, not the
        # runbook), with its file and line and what is wrong
        bad = case["misspelt"]
        self.assertEqual([e.tag for e in bad], ["error"])
        err = bad.find("error")
        self.assertEqual(err.get("type"), "malformed")
        self.assertRegex(err.get("message"), r"misspelt\.scenario\.yaml:2: expect: unknown key "
                                             r"'outcom'")
        # one that could not finish: an error too
        spin = case["spins"].find("error")
        self.assertEqual(spin.get("type"), "timeout")
        self.assertIn("timed out after 1s", spin.get("message"))
        self.assertIn("spins.scenario.yaml", spin.text)
        skipped = case["later"].findall("skipped")
        self.assertEqual([s.get("message") for s in skipped], ["waiting for a replica to test against"])
        self.assertEqual(list(case["vacuums"].iter("failure")) + list(case["vacuums"].iter("error")), [])

    def test_system_out_is_the_run_output_without_the_secret(self):
        with open(self.xml, "rb") as f:
            raw = f.read()
        self.assertNotIn(SECRET.encode(), raw)
        root = ET.parse(self.xml).getroot()
        case = {c.get("name"): c for c in root.iter("testcase")}
        out = case["restarts the web container"].find("system-out").text
        self.assertIn("▶ web/restart", out)
        self.assertIn("→ docker restart web", out)
        self.assertIn("restarting with token ****", out)
        # markup and characters XML cannot hold come back as text
        self.assertIn('markup <b>&amp;</b> "quoted"', out)
        self.assertIn("  control,   not a character", out)
        wrong = case["wrong-container"]
        self.assertIn("restarting with token ****", wrong.find("system-out").text)
        self.assertIn("****", wrong.find("failure").text)
        self.assertIn("vacuumdb --all", case["vacuums"].find("system-out").text)

    def test_counts_equal_the_text_summary(self):
        text = self.summary(self.res)
        self.assertEqual(text, {"passed": 2, "failed": 1, "errors": 2, "skipped": 1})
        status, marks = self.text_status(self.res)
        self.assertTrue(marks[self.path("lib/runbooks/db/tests/misspelt.scenario.yaml")]
                        .endswith(" malformed"), marks)
        self.assertTrue(marks[self.path("lib/runbooks/db/tests/spins.scenario.yaml")]
                        .endswith(" error"), marks)
        root = ET.parse(self.xml).getroot()
        total = {k: int(root.get(k)) for k in ("tests", "failures", "errors")}
        self.assertEqual(total, {"tests": 6, "failures": text["failed"], "errors": text["errors"]})
        # each suite's counts are its runbook's lines of the text report
        for suite in root.findall("testsuite"):
            d = "/runbooks/%s/tests/" % suite.get("name").split("/")[0]
            mine = [s for p, s in status.items() if d in p]
            self.assertEqual(int(suite.get("tests")), len(mine))
            self.assertEqual(int(suite.get("skipped")), mine.count("-"))
            self.assertEqual(int(suite.get("failures")) + int(suite.get("errors")), mine.count("✗"))

    @unittest.skipUnless(JP, "junitparser not installed (python3-junitparser)")
    def test_junitparser_reads_it_with_the_text_counts(self):
        text = self.summary(self.res)
        doc = JP.JUnitXml.fromfile(self.xml)
        got = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        per_suite = {}
        for suite in doc:
            kinds = {"failed": 0, "errors": 0, "skipped": 0, "passed": 0}
            for case in suite:
                self.assertEqual(case.classname, suite.name)
                results = case.result
                kind = ("passed" if not results else
                        "failed" if isinstance(results[0], JP.Failure) else
                        "errors" if isinstance(results[0], JP.Error) else
                        "skipped" if isinstance(results[0], JP.Skipped) else "?")
                kinds[kind] += 1
            # the suite's attributes say what its cases say
            self.assertEqual((suite.tests, suite.failures, suite.errors, suite.skipped),
                             (sum(kinds.values()), kinds["failed"], kinds["errors"],
                              kinds["skipped"]), suite.name)
            per_suite[suite.name] = kinds
            for k in got:
                got[k] += kinds[k]
        self.assertEqual(got, text)
        self.assertEqual(per_suite, {
            "web/restart": {"passed": 1, "failed": 1, "errors": 0, "skipped": 0},
            "db/vacuum": {"passed": 1, "failed": 0, "errors": 2, "skipped": 1}})
        outs = {c.name: c.system_out for s in doc for c in s}
        self.assertIn("→ docker restart web", outs["restarts the web container"])
        self.assertNotIn(SECRET, "".join(o or "" for o in outs.values()))


@unittest.skipUnless(XMLLINT, "xmllint not installed (libxml2-utils)")
class AntFormat(JUnitCase):
    def test_one_testsuite_root_valid_for_ant_and_jenkins(self):
        xml = self.path("ant.xml")
        res = self.run_test("--junit", xml, "--junit-format", "ant")
        self.assertEqual(res.code, 1, res)
        self.xmllint(ANT_XSD, xml)
        self.xmllint(JENKINS_XSD, xml)
        root = ET.parse(xml).getroot()
        self.assertEqual(root.tag, "testsuite")
        text = self.summary(res)
        self.assertEqual({k: int(root.get(k)) for k in ("failures", "errors", "skipped")},
                         {"failures": text["failed"], "errors": text["errors"],
                          "skipped": text["skipped"]})
        self.assertEqual(int(root.get("tests")), sum(text.values()))
        classes = {c.get("name"): c.get("classname") for c in root.iter("testcase")}
        self.assertEqual(classes["wrong-container"], "web/restart")
        self.assertEqual(classes["misspelt"], "db/vacuum")
        self.assertEqual(root.find("testcase[@name='misspelt']/error").get("type"), "malformed")
        # the runs' output, each under its scenario, in the suite's system-out
        out = root.find("system-out").text
        self.assertIn("=== web/restart: restarts the web container (", out)
        self.assertIn("→ docker restart web", out)
        with open(xml, "rb") as f:
            self.assertNotIn(SECRET.encode(), f.read())

    def test_unknown_format_is_a_usage_error(self):
        res = self.run_test("--junit", self.path("x.xml"), "--junit-format", "xunit")
        self.assertEqual(res.code, 2, res)
        self.assertIn("--junit-format xunit: expected testsuites", res.err)
        self.assertFalse(os.path.exists(self.path("x.xml")))


class Verbose(JUnitCase):
    def test_v_prints_each_run_output_under_its_line(self):
        for flag in ("-v", "--verbose"):
            res = self.run_test(flag, "-j", "1")
            self.assertEqual(res.code, 1, res)
            self.assertNotIn(SECRET, res.all)
            lines = res.out.splitlines()
            ok = next(i for i, l in enumerate(lines)
                      if l.startswith("✓ " + self.path("lib/runbooks/web/tests/restarts")))
            block = []
            for l in lines[ok + 1:]:
                if not l.startswith("  │ "):
                    break
                block.append(l[len("  │ "):])
            self.assertTrue(block and block[0].startswith("▶ web/restart"), lines)
            self.assertIn("  → docker restart web  (0 ms)", [re.sub(r"\(\d+ ms\)", "(0 ms)", b)
                                                            for b in block])
            self.assertIn("  info restarting with token ****", block)
            # a failing scenario: its failure lines first, then its output
            bad = next(i for i, l in enumerate(lines) if l.startswith(
                "✗ " + self.path("lib/runbooks/web/tests/wrong-container")))
            self.assertTrue(lines[bad + 1].startswith("    "), lines[bad:bad + 3])
            self.assertTrue(any(l.startswith("  │ ▶ web/restart") for l in lines[bad + 1:bad + 12]))
        # without -v, no output
        res = self.run_test()
        self.assertNotIn("│", res.out)


if __name__ == "__main__":
    unittest.main()
