"""The man pages (man/*.scd) say what the binary does: for every command that
`runbook --help` lists, man/runbook-CMD.1.scd exists and documents exactly the
long and short flags of `runbook CMD --help` (for a command with subcommands,
such as audit, the union of `runbook CMD SUB --help` over the subcommands its
--help lists), nothing more and nothing less.  Every page builds with scdoc
and renders with `man -l` without a warning.

Data-driven from `runbook --help`: a command added to main.c's table without
its page, or a flag added to a --help without its line in the page (or the
reverse: a page describing a flag the binary does not have), fails here.
The same for the file formats: runbook.yaml(5) and runbook-scenario(5) must
name every key the binary lists when it refuses an unknown one (config keys,
scenario keys, each mocked primitive's fields and answers).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from rbtest import BIN, SRC, RunbookTestCase  # noqa: E402

MAN_SRC = os.path.join(SRC, "man")

# A flag is --word or -x, standing alone (not the -x of `dry-run` or the
# -czf of a tar example).  --help/-h (every command's) and --version (the
# global one) are not compared.
LONG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
SHORT = re.compile(r"(?<![\w-])(-[a-zA-Z])(?![\w-])")
IGNORED = {"--help", "-h", "--version"}
# "  name     summary" in a --help that lists commands (a name as long as
# the column leaves one space: "  schedule run ...")
COMMAND_LINE = re.compile(r"^  ([a-z][a-z0-9-]*) +\S")


def flags_of(text):
    return (set(LONG.findall(text)) | set(SHORT.findall(text))) - IGNORED


def scd_text(path):
    """The page's text as a reader sees it: comment lines (`; ...`) dropped,
    scdoc's *bold* and _underline_ markers and escapes removed."""
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith(";")]
    text = "\n".join(lines)
    text = text.replace("\\*", "*").replace("\\_", "_")
    return re.sub(r"[*]|(?<![\w])_|_(?![\w])", " ", text)


def undated(roff):
    """The page without its .TH line, which carries the date it was built."""
    return re.sub(rb"(?m)^\.TH .*$", b"", roff)


class ManPages(RunbookTestCase):

    def help_of(self, *cmd):
        res = self.rb(*(list(cmd) + ["--help"]))
        self.assertEqual(res.code, 0, "`runbook %s --help` should exit 0:\n%r"
                         % (" ".join(cmd), res))
        self.assertTrue(res.out.strip(), "`runbook %s --help` printed nothing" % " ".join(cmd))
        return res.out

    def commands(self):
        res = self.rb("--help")
        self.assertEqual(res.code, 0, res)
        cmds = [m.group(1) for m in map(COMMAND_LINE.match, res.out.splitlines()) if m]
        # the commands every release has; init and schedule join them when present
        for c in ("run", "repl", "test", "check", "list", "show", "audit", "version", "help"):
            self.assertIn(c, cmds, "`runbook --help` no longer lists %s:\n%s" % (c, res.out))
        return cmds

    def help_flags(self, cmd):
        """The flags of `runbook CMD --help`, with its subcommands' when its help
        points at `runbook CMD COMMAND --help`."""
        text = self.help_of(cmd)
        flags = flags_of(text)
        if re.search(r"runbook %s COMMAND --help" % re.escape(cmd), text):
            subs = [m.group(1) for m in map(COMMAND_LINE.match, text.splitlines()) if m]
            self.assertTrue(subs, "`runbook %s --help` names no subcommand" % cmd)
            for sub in subs:
                flags |= flags_of(self.help_of(cmd, sub))
        return flags

    def test_every_command_has_a_page_with_the_same_flags(self):
        for cmd in self.commands():
            with self.subTest(command=cmd):
                page = os.path.join(MAN_SRC, "runbook-%s.1.scd" % cmd)
                self.assertTrue(os.path.isfile(page),
                                "`runbook %s` has no man page: write %s (copy the format of "
                                "man/runbook-run.1.scd)" % (cmd, os.path.relpath(page, SRC)))
                in_help = self.help_flags(cmd)
                in_page = flags_of(scd_text(page))
                self.assertEqual(
                    sorted(in_help - in_page), [],
                    "flags of `runbook %s --help` that %s does not document" % (cmd, page))
                self.assertEqual(
                    sorted(in_page - in_help), [],
                    "flags %s documents that `runbook %s --help` does not list" % (page, cmd))

    def test_no_page_for_a_command_that_does_not_exist(self):
        cmds = set(self.commands())
        for page in glob.glob(os.path.join(MAN_SRC, "runbook-*.1.scd")):
            cmd = os.path.basename(page)[len("runbook-"):-len(".1.scd")]
            with self.subTest(page=page):
                self.assertIn(cmd, cmds, "%s documents a command `runbook --help` does not list"
                              % page)

    def test_overview_names_every_command(self):
        text = scd_text(os.path.join(MAN_SRC, "runbook.1.scd"))
        for cmd in self.commands():
            with self.subTest(command=cmd):
                self.assertIn("runbook-%s(1)" % cmd, re.sub(r"\s+", "", text),
                              "runbook.1.scd does not point at runbook-%s(1)" % cmd)
        for page in ("runbook.yaml(5)", "runbook-scenario(5)"):
            self.assertIn(page, re.sub(r"\s+", "", text))

    def test_headers_name_their_file(self):
        pages = glob.glob(os.path.join(MAN_SRC, "*.scd"))
        self.assertGreaterEqual(len(pages), 12, pages)
        for page in pages:
            name, section = re.match(r"(.+)\.(\d)\.scd$", os.path.basename(page)).groups()
            with open(page) as f:
                first = f.readline()
            with self.subTest(page=page):
                self.assertTrue(first.startswith("%s(%s)" % (name, section)),
                                "%s starts with %r, not %s(%s)" % (page, first, name, section))

    # ---- the two file formats: their keys, as the binary itself names them

    def refused(self, res):
        """The list a usage error names after `one of:` or `valid keys:`."""
        m = re.search(r"(?:expected one of|valid keys): ([^)]*)\)", res.all)
        self.assertTrue(m, "no list of valid keys in:\n%r" % res)
        return [k.strip() for k in m.group(1).replace("or a module's section:", ",").split(",")
                if k.strip()]

    def section(self, text, start, end):
        i = text.index(start)
        return text[i:text.index(end, i + len(start))]

    def test_config_page_names_every_key(self):
        """runbook.yaml(5) names every key the config accepts, at the top level
        and in an environment (the binary lists them when it refuses one)."""
        with open(os.path.join(MAN_SRC, "runbook.yaml.5.scd")) as f:
            page = f.read()
        self.write("top.yaml", "zz_not_a_key: 1\n")
        self.write("env.yaml", "environments:\n  e:\n    zz_not_a_key: 1\n")
        for cfg in ("top.yaml", "env.yaml"):
            res = self.rb("audit", "list", "--config", cfg)
            self.assertEqual(res.code, 2, res)
            for key in self.refused(res):
                with self.subTest(config=cfg, key=key):
                    self.assertTrue(re.search(r"\*%s[:*]" % re.escape(key), page),
                                    "runbook.yaml.5.scd does not document %r" % key)

    def test_scenario_page_names_every_key(self):
        """runbook-scenario(5) names every top-level key, every mocked primitive
        with each field a mock of it may match, and every key it may answer
        with, as `runbook check` lists them when it refuses a key."""
        with open(os.path.join(MAN_SRC, "runbook-scenario.5.scd")) as f:
            page = f.read()
        mocks = self.section(page, "# MOCKS", "# EXPECTATIONS")
        respond = self.section(mocks, "*respond:*", "*times:*")
        self.write("x.lua", 'runbook { name = "man/x" }\nstep("a", function() end)\n')

        def check(body):
            """`runbook check` of a scenario made of body: refused (exit 1)."""
            self.write("s.scenario.yaml", "runbook: x.lua\n" + body)
            res = self.rb("check", "s.scenario.yaml")
            self.assertEqual(res.code, 1, res)
            return res

        def keys_of(body):
            return self.refused(check(body))

        for key in keys_of("zz_not_a_key: 1\n"):
            with self.subTest(top=key):
                self.assertTrue("*%s:*" % key in self.section(page, "# TOP-LEVEL KEYS", "# MOCKS"),
                                "TOP-LEVEL KEYS does not describe %r" % key)
        for key in keys_of("expect: { zz_not_a_key: 1 }\n"):
            with self.subTest(expect=key):
                self.assertTrue("*%s:*" % key in self.section(page, "# EXPECTATIONS", "# EXAMPLE"),
                                "EXPECTATIONS does not describe %r" % key)
        res = check("mocks:\n  - {}\n")
        m = re.search(r"which primitive does it answer\? \(([^)]*)\)", res.all)
        self.assertTrue(m, res)
        prims = [p.strip() for p in m.group(1).split(",")]
        self.assertIn("exec", prims)
        for prim in prims:
            # the term "*prim*" and its indented paragraph
            block = re.search(r"(?m)^\*%s\*\n((?:\t.*\n)+)" % re.escape(prim), mocks)
            with self.subTest(primitive=prim):
                self.assertTrue(block, "MOCKS does not describe the %s mock" % prim)
            if not block:
                continue
            for key in keys_of("mocks:\n  - %s: { zz_not_a_key: 1 }\n" % prim):
                if key == "words":  # every primitive's, described once
                    continue
                with self.subTest(primitive=prim, field=key):
                    self.assertTrue("*%s*" % key in block.group(1),
                                    "MOCKS does not say a %s mock may match %r" % (prim, key))
            answers = keys_of("mocks:\n  - %s: {}\n    respond: { zz_not_a_key: 1 }\n" % prim)
            for key in answers:
                if key.endswith("_file") and key[:-5] in answers:  # K_file, described once
                    continue
                with self.subTest(primitive=prim, answer=key):
                    self.assertTrue("*%s*" % key in respond,
                                    "respond: does not say a %s mock may answer %r" % (prim, key))
        self.assertIn("*words*", mocks)

    def test_pages_build_and_render(self):
        scdoc = shutil.which("scdoc")
        if not scdoc:
            self.skipTest("scdoc is not installed (bash scripts/install-deps.sh)")
        man = shutil.which("man")
        built_dir = os.path.join(os.path.dirname(os.path.abspath(BIN)), "man")
        for page in sorted(glob.glob(os.path.join(MAN_SRC, "*.scd"))):
            base = os.path.basename(page)[:-len(".scd")]
            with self.subTest(page=base):
                with open(page, "rb") as f:
                    p = subprocess.run([scdoc], stdin=f, capture_output=True, timeout=60)
                self.assertEqual(p.returncode, 0, "scdoc %s: %s" % (page, p.stderr.decode()))
                self.assertEqual(p.stderr, b"")
                roff = self.path(base)
                with open(roff, "wb") as f:
                    f.write(p.stdout)
                # the build (cmake/man.cmake) made the same page
                built = os.path.join(built_dir, base)
                if os.path.isdir(built_dir):
                    self.assertTrue(os.path.isfile(built), "the build did not make %s" % built)
                    with open(built, "rb") as f:
                        self.assertEqual(undated(f.read()), undated(p.stdout),
                                         "%s is stale: rebuild" % built)
                if not man:
                    continue
                env = self.child_env({"MANWIDTH": "80", "MAN_KEEP_FORMATTING": "",
                                      "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"})
                r = subprocess.run([man, "--warnings", "-l", roff], capture_output=True,
                                   text=True, env=env, timeout=60)
                self.assertEqual(r.returncode, 0, "man -l %s: %s" % (base, r.stderr))
                self.assertEqual(r.stderr.strip(), "", "man -l %s warns" % base)
                # it shows the NAME line: "runbook-run - run a runbook..."
                name = base.rsplit(".", 1)[0]
                self.assertRegex(r.stdout, r"(?m)^\s+%s\s+-\s+\S" % re.escape(name))


if __name__ == "__main__":
    unittest.main(verbosity=2)
