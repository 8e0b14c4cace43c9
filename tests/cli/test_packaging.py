"""Packaging: `runbook version` reports the git describe of the build
(cmake/version.cmake, run at every build), the Debian version derived from
it sorts, a missing dlopen()ed library (the package only Recommends them) is
named with the package to install, and the Dockerfile linter
(scripts/lint-dockerfile.sh) passes the real Dockerfile and catches each rule
it claims to check.  Building and installing the .deb is CI's packaging stage
(.ci/run); building the image needs a Docker engine, which CI has not.
"""
import os
import re
import shutil
import subprocess
import unittest

from rbtest import BIN, SRC, RunbookTestCase

LINT = os.path.join(SRC, "scripts", "lint-dockerfile.sh")
VERSION_CMAKE = os.path.join(SRC, "cmake", "version.cmake")


def git(cwd, *args):
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", cwd] + list(args),
                          capture_output=True, text=True, check=True).stdout.strip()


class Version(RunbookTestCase):
    def test_version_is_the_git_describe_of_the_source(self):
        if not os.path.isdir(os.path.join(SRC, ".git")) or not shutil.which("git"):
            self.skipTest("not built from a git clone")
        # the commit part only: -dirty may change under a developer's edits
        want = git(SRC, "describe", "--tags", "--always")
        for argv in (["version"], ["--version"]):
            res = self.rb(*argv)
            self.assertEqual(res.code, 0, res.all)
            m = re.fullmatch(r"runbook (\d+\.\d+\.\d+) \(git (\S+), Lua 5\.4(\.\d+)?\)\n", res.out)
            self.assertTrue(m, res.out)
            self.assertEqual(re.sub(r"-dirty$", "", m.group(2)), want)


class VersionScript(RunbookTestCase):
    """cmake/version.cmake against a throwaway repository: the describe the
    binary is compiled with and the Debian version cpack uses."""

    def setUp(self):
        super().setUp()
        if not shutil.which("git") or not shutil.which("cmake"):
            self.skipTest("git or cmake missing")
        self.repo = self.path("repo")
        os.makedirs(self.repo)
        git(self.repo, "init", "-q")
        git(self.repo, "config", "user.email", "t@example.invalid")
        git(self.repo, "config", "user.name", "t")
        self.commit("a")

    def commit(self, text):
        self.write(os.path.join(self.repo, "f"), text)
        git(self.repo, "add", "f")
        git(self.repo, "commit", "-q", "-m", text)
        return git(self.repo, "rev-parse", "--short", "HEAD")

    def describe(self, src=None, override=""):
        out_c, out_cmake = self.path("v.c"), self.path("v.cmake")
        subprocess.run(["cmake", "-DSRC=" + (src or self.repo), "-DOUT_C=" + out_c,
                        "-DOUT_CMAKE=" + out_cmake, "-DPROJECT_VERSION=0.1.0",
                        "-DGIT_DESCRIBE=" + override, "-P", VERSION_CMAKE],
                       check=True, capture_output=True)
        c = self.read(out_c)
        m = re.search(r'rb_git_describe\[\] = "(.*)";', c)
        self.assertTrue(m, c)
        deb = re.search(r'RUNBOOK_DEB_VERSION "(.*)"', self.read(out_cmake)).group(1)
        return m.group(1), deb

    def test_untagged_commit_count_and_hash(self):
        h = self.commit("b")
        self.assertEqual(self.describe(), (h, "0.1.0+git2.g" + h))

    def test_release_tag_is_the_version(self):
        git(self.repo, "tag", "v1.2.3")
        self.assertEqual(self.describe(), ("v1.2.3", "1.2.3"))

    def test_commits_after_a_tag(self):
        git(self.repo, "tag", "v1.2.3")
        h = self.commit("b")
        self.assertEqual(self.describe(), ("v1.2.3-1-g" + h, "1.2.3+1.g" + h))

    def test_uncommitted_changes_are_dirty(self):
        h = git(self.repo, "rev-parse", "--short", "HEAD")
        self.write(os.path.join(self.repo, "f"), "changed")
        self.assertEqual(self.describe(), (h + "-dirty", "0.1.0+git1.g%s.dirty" % h))

    def test_a_new_commit_changes_the_version_without_reconfiguring(self):
        first = self.describe()
        h = self.commit("b")
        self.assertEqual(self.describe()[0], h)
        self.assertNotEqual(first, self.describe())

    def test_unchanged_commit_rewrites_nothing(self):
        self.describe()
        before = os.stat(self.path("v.c")).st_mtime_ns
        os.utime(self.path("v.c"), ns=(before - 10**9, before - 10**9))
        self.describe()
        self.assertEqual(os.stat(self.path("v.c")).st_mtime_ns, before - 10**9)

    def test_override_and_no_git(self):
        self.assertEqual(self.describe(override="v9.9.9"), ("v9.9.9", "9.9.9"))
        os.makedirs(self.path("plain"))
        self.assertEqual(self.describe(src=self.path("plain")), ("unknown", "0.1.0"))

    def test_debian_versions_sort(self):
        if not shutil.which("dpkg"):
            self.skipTest("no dpkg")
        order = ["0.1.0", "0.1.0+git2.gabc", "0.1.0+git2.gabc.dirty", "0.1.0+git10.gdef",
                 "0.2.0", "0.2.0+1.g123"]
        for lo, hi in zip(order, order[1:]):
            r = subprocess.run(["dpkg", "--compare-versions", lo, "lt", hi])
            self.assertEqual(r.returncode, 0, "%s < %s" % (lo, hi))


class MissingLibraries(RunbookTestCase):
    """libcurl and libpq are dlopen()ed on first use (the package Recommends
    them): without them the call fails naming the library and its package.
    The library is hidden in a private mount namespace (root only)."""

    def hidden(self, soname, lua):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare")
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        m = re.search(r"\s%s \(.*x86-64.*\) => (\S+)" % re.escape(soname), out) or \
            re.search(r"\s%s \(.*\) => (\S+)" % re.escape(soname), out)
        if not m:
            self.skipTest(soname + " is not installed")
        real = os.path.realpath(m.group(1))
        f = self.write("t.lua", 'runbook { name = "t" }\nstep("s", function()\n%s\nend)\n' % lua)
        argv = ["unshare", "-m", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', real,
                BIN, "run", f, "--no-audit", "--yes"]
        p = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=self.tmp,
                           timeout=60)
        if "mount:" in p.stderr and "permission denied" in p.stderr.lower():
            self.skipTest("no mount namespace here")
        return p

    def test_http_without_libcurl(self):
        p = self.hidden("libcurl.so.4", 'http.get("http://127.0.0.1:9/")')
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("http: cannot load libcurl (apt-get install libcurl4)", p.stdout + p.stderr)

    def test_postgres_without_libpq(self):
        p = self.hidden("libpq.so.5", 'db.open("postgres://u@127.0.0.1:9/x")')
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("db: cannot load libpq (apt-get install libpq5)", p.stdout + p.stderr)


class DockerfileLint(unittest.TestCase):
    """The real Dockerfile passes; each rule, broken once, is reported by name."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(SRC, "Dockerfile")) as f:
            cls.good = f.read()

    def lint(self, text, context=SRC):
        import tempfile
        d = tempfile.mkdtemp(prefix="rblint-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, "Dockerfile")
        with open(p, "w") as f:
            f.write(text)
        return subprocess.run(["bash", LINT, p, context], capture_output=True, text=True)

    def broken(self, old, new, rule, count=1):
        self.assertIn(old, self.good)
        r = self.lint(self.good.replace(old, new, count))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rules = set(re.findall(r":\d+: ([a-z-]+):", r.stderr))
        self.assertEqual(rules, {rule}, r.stderr)
        return r.stderr

    def test_the_dockerfile_passes(self):
        r = self.lint(self.good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("follows the rules", r.stdout)

    def test_moving_or_missing_base_tag(self):
        # a moving tag named in FROM itself
        for tag in ("debian:bookworm-slim", "debian:12-slim", "debian"):
            self.broken("FROM ${BASE} AS tools", "FROM %s AS tools" % tag, "pinned-base")
        r = self.lint(self.good.replace("FROM ${BASE} AS tools", "FROM debian:latest AS tools"))
        self.assertEqual(set(re.findall(r":\d+: ([a-z-]+):", r.stderr)),
                         {"pinned-base", "no-latest"}, r.stderr)
        # the BASE argument: a Debian release by default; no default, or another
        # image by a moving tag, is refused (a pinned one is as good as in FROM)
        for arg in ("ARG BASE", "ARG BASE=", "ARG BASE=ubuntu:noble", "ARG BASE=alpine"):
            self.broken("ARG BASE=debian:bookworm-slim", arg, "pinned-base")

    def test_latest_anywhere(self):
        self.broken('ARG KUBECTL_VERSION=""', 'ARG KUBECTL_VERSION="latest"', "no-latest")

    def test_apt_get_rules(self):
        self.broken("apt-get install -y --no-install-recommends ca-certificates curl",
                    "apt-get install -y ca-certificates curl", "apt-get")
        self.broken("apt-get install -y --no-install-recommends ca-certificates curl",
                    "apt-get install --no-install-recommends ca-certificates curl", "apt-get")
        self.broken(" && rm -rf /var/lib/apt/lists/* /tmp/runbook_*.deb",
                    " && rm -rf /tmp/runbook_*.deb", "apt-get")
        self.broken("RUN apt-get update \\\n && apt-get install -y --no-install-recommends "
                    "/tmp/runbook_*.deb",
                    "RUN apt-get update\nRUN apt-get install -y --no-install-recommends "
                    "/tmp/runbook_*.deb", "apt-get")

    def test_pipe_without_pipefail(self):
        self.broken('FROM ${BASE} AS tools\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]',
                    "FROM ${BASE} AS tools", "pipefail")

    def test_unverified_or_piped_download(self):
        self.broken('      echo "$(curl -fsSL "${url}.sha256")  kubectl" | sha256sum -c -; \\\n', "",
                    "verified-download")
        self.broken("RUN useradd", "RUN curl -fsSL https://example.invalid/x.sh | sh && useradd",
                    "verified-download")

    def test_add_and_cd(self):
        self.broken("COPY . .", "ADD . .", "copy-not-add")
        self.broken("WORKDIR /out", "WORKDIR out", "workdir")
        self.broken("RUN useradd", "RUN cd /tmp && useradd", "workdir")

    def test_root_entrypoint(self):
        self.broken("USER runbook\n", "", "non-root")
        self.broken("USER runbook\n", "USER root\n", "non-root")
        # USER after the ENTRYPOINT does not count
        self.broken("USER runbook\n", "", "non-root")
        r = self.lint(self.good.replace("USER runbook\n", "").replace(
            'CMD ["help"]', 'CMD ["help"]\nUSER runbook'))
        self.assertIn("non-root", r.stderr)

    def test_shell_form_entrypoint(self):
        self.broken('ENTRYPOINT ["runbook"]', "ENTRYPOINT runbook", "exec-form")
        self.broken('CMD ["help"]', "CMD help", "exec-form")

    def test_no_audit_volume(self):
        self.broken('VOLUME ["/home/runbook/.local/state/runbook"]\n', "", "audit-volume")

    def test_context(self):
        self.broken("COPY scripts/install-deps.sh scripts/install-deps.sh",
                    "COPY scripts/no-such.sh scripts/no-such.sh", "context")
        # a source the .dockerignore leaves out is as missing
        self.broken("COPY scripts/install-deps.sh scripts/install-deps.sh",
                    "COPY .git/HEAD scripts/install-deps.sh", "context")


if __name__ == "__main__":
    unittest.main()
