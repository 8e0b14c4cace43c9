"""Shell completions (issue 18 item 3): completions/runbook.bash loaded into a
real `bash --norc --noprofile`, its function driven with COMP_WORDS and
COMP_CWORD as readline sets them, and COMPREPLY checked: subcommands, flags,
library runbook names, the params and steps of the runbook on the line, the
environments of runbook.yaml.  The candidates come from the hidden `runbook
__complete`, which reads a runbook's metadata in listing mode: a runbook whose
top level calls exec{} or prints must not act nor pollute the candidates.
zsh and fish: their files parse (and fish completes for real) when installed."""
import fcntl
import os
import re
import select
import shutil
import subprocess
import termios
import time
import unittest

from rbtest import BIN, SRC, RunbookTestCase, lua_str

COMPLETIONS = os.path.join(SRC, "completions")
BASH_FILE = os.path.join(COMPLETIONS, "runbook.bash")


class Completion(RunbookTestCase):
    def setUp(self):
        super().setUp()
        # the completion calls the program by the name typed: `runbook`
        os.symlink(BIN, os.path.join(self.bindir, "runbook"))
        self.marker = self.path("marker-top-level")
        self.lib = self.path("library")
        self.write(os.path.join(self.lib, "ops", "restart-web.lua"), """
            runbook {
              name = "ops/restart-web",
              title = "Restart the web tier",
              params = {
                service = { help = "which service" },
                replicas = { type = "number", default = 3 },
                token = { secret = true },
              },
            }
            -- top-level effects: completing must run none of them
            exec{"touch", %s}
            print("printed-at-top-level")
            step("Drain traffic", function() end)
            step("Restart pods", function() end)
            """ % lua_str(self.marker))
        self.write(os.path.join(self.lib, "ops", "rotate-logs.lua"), """
            runbook { name = "ops/rotate-logs" }
            step("Rotate", function() end)
            """)
        self.write(os.path.join(self.lib, "db", "backup.lua"), """
            runbook { name = "db/backup" }
            step("Dump", function() end)
            """)
        # lib/ and tests/ hold no runbooks (as for `runbook list`)
        self.write(os.path.join(self.lib, "lib", "helpers.lua"), "return {}\n")
        # ./runbooks is a library root too
        self.write(os.path.join("runbooks", "local", "check-disk.lua"), """
            runbook { name = "local/check-disk" }
            step("df", function() end)
            """)
        self.write("runbook.yaml", """
            environments:
              staging: {}
              production: {}
            """)
        self.env["RUNBOOK_PATH"] = self.lib

    def tearDown(self):
        self.assertFalse(os.path.exists(self.marker),
                         "completing ran the runbook's top-level exec{}")

    # ---- driving bash ----------------------------------------------------------

    def bash(self, script):
        p = subprocess.run(["bash", "--norc", "--noprofile"], input=script,
                           capture_output=True, text=True, cwd=self.tmp,
                           env=self.child_env(), timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def complete(self, line):
        """COMPREPLY for the line (the cursor at its end), as bash would set
        COMP_WORDS: split at blanks and at '=' (COMP_WORDBREAKS)."""
        words = re.findall(r"=|[^\s=]+", line)
        if line.endswith(" ") or not words:
            words.append("")
        quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
        out = self.bash("""
            source %s
            COMP_WORDS=(%s)
            COMP_CWORD=%d
            COMP_LINE=%s
            COMP_POINT=${#COMP_LINE}
            _runbook
            printf '<%%s>\\n' "${COMPREPLY[@]}"
            """ % (lua_str(BASH_FILE), quoted, len(words) - 1, "'%s'" % line.replace("'", "'\\''")))
        return [l[1:-1] for l in out.splitlines() if l.startswith("<") and l != "<>"]

    # ---- the tests -----------------------------------------------------------------

    def test_bash_registers_the_completion(self):
        out = self.bash("source %s\ncomplete -p runbook\n" % lua_str(BASH_FILE))
        self.assertIn("-F _runbook", out)
        self.assertIn("-o default", out)  # no candidate: readline completes paths
        self.assertRegex(out.strip(), r"runbook$")

    def test_subcommands(self):
        self.assertEqual(self.complete("runbook r"), ["reference", "repl", "run"])
        every = self.complete("runbook ")
        for cmd in ("run", "repl", "test", "check", "list", "show", "audit", "version", "help"):
            self.assertIn(cmd, every)
        self.assertNotIn("__complete", every)
        self.assertNotIn("__confined", every)

    def test_subcommands_are_the_help_table(self):
        # the commands `runbook help` lists, no second list
        res = self.rb("help")
        listed = re.findall(r"^  (\S+)\s", res.out, re.M)
        self.assertTrue(listed)
        self.assertEqual(sorted(self.complete("runbook ")), sorted(listed))
        self.assertEqual(self.complete("runbook help au"), ["audit"])

    def test_flags(self):
        self.assertEqual(self.complete("runbook run --dr"), ["--dry-run"])
        self.assertEqual(self.complete("runbook run --no"), ["--no-audit"])
        self.assertEqual(self.complete("runbook list --m"), ["--markdown"])
        self.assertEqual(self.complete("runbook test --cov"), ["--coverage", "--coverage-json"])
        # after the runbook's name, still its command's flags
        self.assertIn("--dry-run", self.complete("runbook run ops/restart-web --"))

    @staticmethod
    def help_flags(text):
        """The flags a --help declares: those of its usage lines and those
        that start an option line (not the ones its prose mentions)."""
        flags = set()
        for line in text.splitlines():
            if re.match(r"\s*(usage: )?runbook ", line):
                flags |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", line))
            m = re.match(r"\s+(?:-\w, )?(--[a-z][a-z-]*[a-z])", line)
            if m:
                flags.add(m.group(1))
        return flags

    def test_flags_are_every_flag_of_help(self):
        # every command `runbook help` lists, those added later included
        commands = re.findall(r"^  (\S+)\s", self.rb("help").out, re.M)
        lines = [[c] for c in commands if c not in ("help", "version")]
        lines += [["audit", sub] for sub in ("list", "show", "export", "verify")]
        for words in lines:
            in_help = self.help_flags(self.rb(*words, "--help").out)
            got = set(self.complete("runbook %s --" % " ".join(words)))
            self.assertTrue(in_help or words == ["audit"], words)  # audit: subcommands only
            self.assertEqual(in_help - got, set(), "flags of %s --help not completed" % words)
            self.assertEqual(got - in_help - {"--help"}, set(),
                             "completed flags not in %s --help" % words)

    def test_subcommand_flags(self):
        self.assertEqual(self.complete("runbook audit e"), ["export"])
        self.assertEqual(self.complete("runbook audit export --f"), ["--format"])
        self.assertEqual(self.complete("runbook audit export --format "), ["csv", "jsonl"])
        self.assertIn("--runbook", self.complete("runbook audit list --"))
        self.assertNotIn("--format", self.complete("runbook audit list --"))

    def test_flag_values(self):
        self.assertEqual(self.complete("runbook run ops/rotate-logs --output "), ["json", "text"])
        self.assertEqual(self.complete("runbook run ops/rotate-logs --env "),
                         ["production", "staging"])
        self.assertEqual(self.complete("runbook audit list --runbook db/"), ["db/backup"])

    def test_library_runbook_names(self):
        # (the installed library may add its own names: only ours are asserted)
        names = self.complete("runbook run ")
        for name in ("db/backup", "local/check-disk", "ops/restart-web", "ops/rotate-logs"):
            self.assertIn(name, names)
        self.assertFalse([n for n in names if n.startswith("lib/") or "/lib/" in n], names)
        self.assertEqual(self.complete("runbook run ops/r"),
                         ["ops/restart-web", "ops/rotate-logs"])
        self.assertEqual(self.complete("runbook show db"), ["db/backup"])
        # each name is one `runbook run` finds
        for name in ("db/backup", "local/check-disk", "ops/restart-web", "ops/rotate-logs"):
            self.assertExit(self.rb("show", name), 0)
        # a path is left to the shell: nothing, so readline completes files
        self.assertEqual(self.complete("runbook run ./li"), [])
        self.assertEqual(self.complete("runbook check li"), [])

    def test_params_of_the_runbook_on_the_line(self):
        self.assertEqual(self.complete("runbook run ops/restart-web --param "),
                         ["replicas=", "service=", "token="])
        self.assertEqual(self.complete("runbook run --dry-run ops/restart-web --param s"),
                         ["service="])
        # after another param and flags, still that runbook's params
        self.assertEqual(
            self.complete("runbook run ops/restart-web --param service=web --yes --param r"),
            ["replicas="])
        # the value is the operator's: no candidate after key=
        self.assertEqual(self.complete("runbook run ops/restart-web --param service="), [])
        # a runbook given by its path
        self.assertEqual(self.complete("runbook run %s --param t" %
                                       os.path.join(self.lib, "ops", "restart-web.lua")),
                         ["token="])
        # steps for --from
        self.assertEqual(self.complete("runbook run ops/restart-web --from D"),
                         ["Drain\\ traffic"])

    def test_nothing_runs_and_nothing_leaks(self):
        out = subprocess.run(["runbook", "__complete", "run", "ops/restart-web", "--param", ""],
                             capture_output=True, text=True, cwd=self.tmp,
                             env=self.child_env(), timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split("\n"), ["replicas=", "service=", "token=", ""])
        self.assertNotIn("printed-at-top-level", out.stdout)
        self.assertFalse(os.path.exists(self.marker))
        # the audit log was not even opened
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "runbook")))

    def test_a_runbook_that_never_returns_does_not_hang_tab(self):
        self.write(os.path.join(self.lib, "ops", "spin.lua"), """
            runbook { name = "ops/spin", params = { x = {} } }
            while true do end
            """)
        # stopped by the completion's own deadline; the subprocess timeout is
        # only a backstop
        self.assertEqual(self.complete("runbook run ops/spin --param "), [])

    def tab(self, argv, setup, cases, env=None):
        """Type each line of cases into an interactive shell on a terminal,
        press TAB, and wait for the completed text readline (or zle) echoes;
        ^U clears the line for the next one.  The shell splits the words on
        its own (bash also at '=')."""
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.tmp,
            env=self.child_env(env), start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self._procs.append(proc)
        seen = [""]

        def expect(text):
            deadline = time.monotonic() + 30
            while text not in seen[0] and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    seen[0] += os.read(master, 4096).decode("utf-8", "replace")
            self.assertIn(text, seen[0], "typed %r" % typed)
            seen[0] = seen[0][seen[0].index(text) + len(text):]

        typed = setup
        os.write(master, (setup + "\n").encode())
        expect("rb$ ")
        for typed, completed in cases:
            os.write(master, (typed + "\t").encode())
            expect(completed)
            os.write(master, b"\x15")
        os.write(master, b"exit\n")
        proc.wait(timeout=30)

    CASES = [("runbook run --dr", "--dry-run"),
             ("runbook run ops/res", "ops/restart-web"),
             ("runbook run ops/restart-web --param se", "--param service="),
             # no space after key=: the value follows right away
             ("runbook run ops/restart-web --param se\tweb", "--param service=web"),
             ("runbook run ops/restart-web --param service=web --param rep", "replicas="),
             ("runbook run ops/restart-web --from Dr", "--from Drain\\ traffic"),
             ("runbook check runbook.y", "runbook check runbook.yaml"),
             ("runbook au", "runbook audit")]

    def test_real_tab_in_interactive_bash(self):
        self.tab(["bash", "--norc", "--noprofile", "-i"], "source %s" % lua_str(BASH_FILE),
                 self.CASES, env={"PS1": "rb$ ", "INPUTRC": "/dev/null"})

    @unittest.skipUnless(shutil.which("zsh"), "zsh not installed")
    def test_real_tab_in_interactive_zsh(self):
        self.tab(["zsh", "-f", "-i"],
                 "PS1='rb$ '; fpath=(%s $fpath); autoload -U compinit; compinit -u -D" %
                 COMPLETIONS, self.CASES)

    # ---- zsh and fish ----------------------------------------------------------------

    @unittest.skipUnless(shutil.which("zsh"), "zsh not installed")
    def test_zsh_file_parses(self):
        p = subprocess.run(["zsh", "-n", os.path.join(COMPLETIONS, "_runbook")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(COMPLETIONS, "_runbook")) as f:
            self.assertEqual(f.readline().strip(), "#compdef runbook")

    @unittest.skipUnless(shutil.which("fish"), "fish not installed")
    def test_fish_file_parses_and_completes(self):
        fish_file = os.path.join(COMPLETIONS, "runbook.fish")
        p = subprocess.run(["fish", "--no-config", "-n", fish_file],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(
            ["fish", "--no-config", "-c",
             "source %s; complete -C 'runbook r'; echo ---; "
             "complete -C 'runbook run ops/restart-web --param '" % fish_file],
            capture_output=True, text=True, cwd=self.tmp, env=self.child_env(), timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        first, second = p.stdout.split("---\n")
        self.assertEqual(first.split(), ["reference", "repl", "run"])
        self.assertEqual(second.split(), ["replicas=", "service=", "token="])


if __name__ == "__main__":
    unittest.main()
