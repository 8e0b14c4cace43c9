"""`runbook init [DIR] [--team NAME]`: the skeleton it writes is a working
library (check, test and the CI's dry-run pass in it, run from that
directory as CI would), and init never overwrites: a second init leaves
every byte and mtime as they were, a file or symlink that was there is kept
byte-identical (a symlink's target is not written through), and a DIR that
is a file is refused before anything is written.
"""
import hashlib
import http.server
import os
import re
import shutil
import sys
import threading
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import RunbookTestCase  # noqa: E402

EXPECTED = [
    ".github/workflows/runbooks.yml",
    ".gitlab-ci.yml",
    "README.md",
    "runbook.yaml",
    "runbooks/lib/common.lua",
    "runbooks/{team}/service-health.lua",
    "runbooks/{team}/tests/service-health-healthy.scenario.yaml",
    "runbooks/{team}/tests/service-health-unhealthy.scenario.yaml",
]


def snapshot(root):
    """{relative path: (sha256, mtime_ns, mode)} of every file and symlink under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if os.path.islink(p):
                digest = "link:" + os.readlink(p)
            else:
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (digest, st.st_mtime_ns, st.st_mode)
    return out


class HealthServer:
    """A health endpoint on 127.0.0.1 that records every request it gets."""

    def __init__(self, status=200, body=b"ok"):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(("GET", self.path))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/healthz" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Init(RunbookTestCase):

    def init(self, *args, cwd=None):
        return self.rb("init", *args, cwd=cwd)

    def fresh(self, team=None):
        """init into a new directory; returns it."""
        lib = self.path("lib-" + (team or "default"))
        args = [lib] + (["--team", team] if team else [])
        res = self.init(*args)
        self.assertEqual(res.code, 0, res)
        return lib, res

    def server(self, **kw):
        s = HealthServer(**kw)
        self.addCleanup(s.close)
        return s

    def ci_dry_run(self, lib):
        """The dry-run command of the CI files, as argv after `runbook` (the
        same line in both files)."""
        lines = []
        for f in (".github/workflows/runbooks.yml", ".gitlab-ci.yml"):
            text = self.read(os.path.join(lib, f))
            found = re.findall(r"^\s*(?:- |run: )?runbook (run .*--dry-run.*)$", text, re.M)
            self.assertEqual(len(found), 1, "%s: one dry-run line expected:\n%s" % (f, text))
            lines.append(found[0].split())
        self.assertEqual(lines[0], lines[1])
        return lines[0]

    def staging_config(self, lib, url):
        """A copy of the generated runbook.yaml whose staging endpoint is url
        (the generated file itself stays as init wrote it)."""
        text = self.read(os.path.join(lib, "runbook.yaml"))
        staging = "https://staging.example.com/healthz"
        self.assertEqual(text.count(staging), 1, text)
        return self.write(self.path("staging-runbook.yaml"), text.replace(staging, url),
                          dedent=False)

    # ---- the skeleton works ------------------------------------------------

    def test_empty_dir_gets_a_library_that_checks_and_tests(self):
        lib, res = self.fresh()
        files = sorted(snapshot(lib))
        self.assertEqual(files, sorted(p.format(team="ops") for p in EXPECTED))
        for p in files:
            self.assertIn("created %s\n" % p, res.out)
        self.assertIn("8 created, 0 kept", res.out)
        # nothing of the template's placeholder is left
        for p in files:
            self.assertNotIn("{{team}}", self.read(os.path.join(lib, p)), p)

        res = self.rb("check", cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertIn("0 errors, 0 warnings", res.out)
        res = self.rb("test", cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertIn("2 passed, 0 failed", res.out)

        # the runbook is found by name, and its library module by require
        res = self.rb("show", "ops/service-health", cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertIn("health_url", res.out)

    def test_ci_commands_pass_in_the_skeleton(self):
        lib, _ = self.fresh()
        gh = self.read(os.path.join(lib, ".github/workflows/runbooks.yml"))
        gl = self.read(os.path.join(lib, ".gitlab-ci.yml"))
        for text in (gh, gl):
            self.assertRegex(text, r"(?m)runbook check$")
            self.assertIn("runbook test --junit runbook-junit.xml", text)
        try:
            import yaml  # PyYAML, when present: the CI files are YAML of the right shape
        except ImportError:
            yaml = None
        if yaml:
            w = yaml.safe_load(gh)
            self.assertIn("runbooks", w["jobs"])
            self.assertTrue(w["jobs"]["runbooks"]["steps"])
            g = yaml.safe_load(gl)
            self.assertEqual(g["test"]["artifacts"]["reports"]["junit"], "runbook-junit.xml")

        # `runbook test --junit` as CI runs it: a report of both scenarios, none failed
        res = self.rb("test", "--junit", "runbook-junit.xml", cwd=lib)
        self.assertEqual(res.code, 0, res)
        root = ET.parse(os.path.join(lib, "runbook-junit.xml")).getroot()
        cases = root.findall(".//testcase")
        self.assertEqual(len(cases), 2, ET.tostring(root))
        self.assertEqual(root.findall(".//failure") + root.findall(".//error"), [])

        # the CI's dry-run, word for word, against staging -- pointed at a
        # local endpoint through a copy of the config
        srv = self.server()
        argv = self.ci_dry_run(lib)
        self.assertIn("--env", argv)
        self.assertEqual(argv[argv.index("--env") + 1], "staging")
        res = self.rb(*(argv + ["--config", self.staging_config(lib, srv.url),
                                "--param", "disk_critical=101"]), cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertIn("dry-run", res.out)
        self.assertEqual(srv.requests, [("GET", "/healthz")])

    def test_dry_run_reads_the_endpoint_and_fails_when_unhealthy(self):
        lib, _ = self.fresh(team="payments")
        up = self.server()
        res = self.run_rb("payments/service-health", "--dry-run", "--param",
                          "health_url=" + up.url, "--param", "disk_critical=101", cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(up.requests, [("GET", "/healthz")])

        down = self.server(status=503, body=b"database unreachable")
        res = self.run_rb("payments/service-health", "--dry-run", "--param",
                          "health_url=" + down.url, "--param", "disk_critical=101", cwd=lib)
        self.assertEqual(res.code, 1, res)
        self.assertIn("Verdict", res.all)
        self.assertIn("health endpoint down: HTTP 503", res.all)
        self.assertEqual(down.requests, [("GET", "/healthz")])

    def test_scenarios_judge_the_runbook(self):
        """The unhealthy scenario fails when the runbook stops failing a full
        disk: the scenarios test the runbook, not merely run it."""
        lib, _ = self.fresh()
        common = os.path.join(lib, "runbooks/lib/common.lua")
        text = self.read(common)
        self.assertIn("critical = 90", text)
        self.write(common, text.replace("critical = 90", "critical = 99"), dedent=False)
        res = self.rb("test", cwd=lib)
        self.assertEqual(res.code, 1, res)
        self.assertIn("1 passed, 1 failed", res.out)
        self.assertRegex(res.out, r"✗ .*service-health-unhealthy")

    # ---- never overwrites --------------------------------------------------

    def test_second_init_changes_nothing(self):
        lib, _ = self.fresh()
        # an edit of the user's, which a second init must keep
        self.write(os.path.join(lib, "runbooks/lib/common.lua"), "return {}\n", dedent=False)
        before = snapshot(lib)
        res = self.init(lib)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(snapshot(lib), before)
        self.assertIn("0 created, 8 kept", res.out)
        self.assertIn("kept runbook.yaml (exists)\n", res.out)
        self.assertNotIn("created", res.out.replace("0 created", ""))

        # in the current directory (no DIR) too
        res = self.init(cwd=lib)
        self.assertEqual(res.code, 0, res)
        self.assertEqual(snapshot(lib), before)

    def test_existing_files_and_symlinks_are_kept(self):
        lib = self.path("existing")
        mine = "# my own config\nparams: { health_url: \"http://10.0.0.1/healthz\" }\n"
        self.write(os.path.join(lib, "runbook.yaml"), mine, dedent=False)
        # a symlink at a template's path, to a file outside: neither is written
        outside = self.write(self.path("outside.lua"), "-- outside\n", dedent=False)
        os.makedirs(os.path.join(lib, "runbooks/ops"))
        os.symlink(outside, os.path.join(lib, "runbooks/ops/service-health.lua"))
        # and a dangling one: init must not create its target
        target = self.path("nowhere", "x.yml")
        os.makedirs(os.path.join(lib, ".github/workflows"))
        os.symlink(target, os.path.join(lib, ".github/workflows/runbooks.yml"))
        before = snapshot(lib)
        outside_before = snapshot(os.path.dirname(outside))["outside.lua"]

        res = self.init(lib)
        self.assertEqual(res.code, 0, res)
        self.assertIn("kept runbook.yaml (exists)\n", res.out)
        self.assertIn("kept runbooks/ops/service-health.lua (exists)\n", res.out)
        self.assertIn("kept .github/workflows/runbooks.yml (exists)\n", res.out)
        self.assertIn("created .gitlab-ci.yml\n", res.out)
        self.assertIn("5 created, 3 kept", res.out)
        after = snapshot(lib)
        for p, v in before.items():
            self.assertEqual(after[p], v, p)
        with open(os.path.join(lib, "runbook.yaml"), "rb") as f:
            self.assertEqual(f.read(), mine.encode())
        self.assertEqual(snapshot(os.path.dirname(outside))["outside.lua"], outside_before)
        self.assertFalse(os.path.lexists(target))
        self.assertEqual(len(after), 8)

    def test_dir_that_is_a_file_is_refused(self):
        f = self.write(self.path("afile"), "data\n", dedent=False)
        before = snapshot(self.tmp)
        res = self.init(f)
        self.assertEqual(res.code, 2, res)
        self.assertIn("afile is not a directory", res.err)
        self.assertEqual(res.out, "")
        self.assertEqual(snapshot(self.tmp), before)

    def test_bad_team_names_write_nothing(self):
        for team in ("../escape", "a/b", "", ".hidden", "-x", "x" * 65):
            with self.subTest(team=team):
                lib = self.path("bad-team")
                res = self.init(lib, "--team", team)
                self.assertEqual(res.code, 2, res)
                self.assertIn("--team", res.err)
                self.assertFalse(os.path.exists(lib))
                self.assertFalse(os.path.exists(self.path("escape")))

    def test_a_file_in_the_way_fails_only_its_files(self):
        lib = self.path("blocked")
        self.write(os.path.join(lib, "runbooks/lib"), "not a directory\n", dedent=False)
        res = self.init(lib)
        self.assertEqual(res.code, 1, res)
        self.assertIn("runbooks/lib", res.err)
        self.assertEqual(self.read(os.path.join(lib, "runbooks/lib")), "not a directory\n")
        self.assertTrue(os.path.isfile(os.path.join(lib, "runbooks/ops/service-health.lua")))
        self.assertIn("7 created, 0 kept, some not written", res.out)

    def test_usage(self):
        res = self.init("--help")
        self.assertEqual(res.code, 0, res)
        self.assertIn("usage: runbook init [DIR] [--team NAME]", res.out)
        res = self.init("a", "b")
        self.assertEqual(res.code, 2, res)
        res = self.init("--bogus")
        self.assertEqual(res.code, 2, res)
        self.assertIn("init", self.rb("--help").out)
        self.assertFalse(os.path.exists(self.path("a")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
