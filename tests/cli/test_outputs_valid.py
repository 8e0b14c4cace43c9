"""Every JSON document we write is valid UTF-8 that strict parsers accept,
whatever bytes a runbook or an operator hands us (issue "Nothing leaks,
nothing crashes", item 2), and a runbook saved with a UTF-8 byte order mark
loads.  Invalid bytes become U+FFFD (the mark that something was there);
valid multi-byte text passes unchanged.  Outputs are read as bytes and decoded
with errors="strict": the test harness's own decoding (errors="replace")
would hide exactly what is checked here."""
import json
import subprocess
import unittest

from rbtest import BIN, RunbookTestCase

# (bytes given, what a strict reader must see)
CASES = [
    (b"plain", "plain"),
    (b"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\u00e9 \U0001F600"),   # valid: kept
    (b"a\xff\xfeb", "a\ufffd\ufffdb"),                           # never UTF-8
    (b"\xc0\xaf", "\ufffd\ufffd"),                               # overlong '/'
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),                     # a surrogate
    (b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"),           # beyond U+10FFFF
    (b"cut \xe2\x82", "cut \ufffd\ufffd"),                       # cut short
    (b"\x80lone", "\ufffdlone"),                                 # stray continuation
]


def strict_json_lines(raw):
    """Each line of raw bytes decoded strictly, then parsed as JSON."""
    return [json.loads(line) for line in raw.decode("utf-8", "strict").splitlines() if line]


class ValidOutputs(RunbookTestCase):
    def run_bytes(self, *args):
        p = subprocess.run([BIN] + list(args), capture_output=True, cwd=self.tmp,
                           env=self.child_env(), timeout=60, start_new_session=True,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def test_invalid_utf8_in_a_param_keeps_json_events_and_exports_valid(self):
        rb = self.write("bytes.lua", """
            runbook { name = "t/bytes", params = { who = { type = "string" } } }
            step("echo", function()
              print(json.encode({ who = params.who }))
              log.info("who: %s", params.who)
            end)
            """)
        for given, seen in CASES:
            with self.subTest(given=given):
                code, out, err = self.run_bytes(
                    "run", rb, "--audit", self.audit, "--output", "json",
                    b"--param", b"who=" + given)
                self.assertEqual(code, 0, err)
                events = strict_json_lines(out)
                start = [e for e in events if e.get("event") == "run_start"][0]
                self.assertEqual(start["params"], {"who": seen})
                printed = [e for e in events if e.get("event") == "output"]
                self.assertTrue(any(json.loads(e["text"]) == {"who": seen} for e in printed)
                                if printed else True)
                logs = [e for e in events if e.get("event") == "log"]
                self.assertIn("who: " + seen, [e.get("msg") or e.get("message") for e in logs])
                code, out, err = self.run_bytes("audit", "export", "--audit", self.audit,
                                                "--format", "jsonl")
                self.assertEqual(code, 0, err)
                runs = [r for r in strict_json_lines(out) if r.get("kind") == "run"]
                self.assertEqual(runs[-1]["params"], {"who": seen})

    def test_recordings_junit_and_csv_exports_are_valid_utf8(self):
        rb = self.write("u8.lua", """
            runbook { name = "t/u8", params = { who = { type = "string" } } }
            step("s", function()
              exec{ "printf", params.who }
              check(false, "bad " .. params.who)
            end)
            """)
        rec = self.path("u8.scenario.yaml")
        code, out, err = self.run_bytes("run", rb, "--audit", self.audit, "--yes",
                                        "--record", rec, b"--param", b"who=a\xff\xfeb")
        self.assertEqual(code, 1, err)
        with open(rec, "rb") as f:
            text = f.read().decode("utf-8", "strict")
        self.assertIn("who: a\ufffd\ufffdb", text)
        code, out, err = self.run_bytes("audit", "export", "--audit", self.audit,
                                        "--format", "csv")
        self.assertEqual(code, 0, err)
        out.decode("utf-8", "strict")  # no field of the CSV carries raw bytes
        # the recording replays; a failing variant puts the bytes into JUnit
        junit = self.path("junit.xml")
        code, out, err = self.run_bytes("test", rec, "--junit", junit)
        self.assertEqual(code, 0, out + err)
        with open(rec, "rb") as f:
            failing = f.read().replace(b"outcome: failed", b"outcome: success")
        bad = self.path("u8-fails.scenario.yaml")
        with open(bad, "wb") as f:
            f.write(failing)
        code, out, err = self.run_bytes("test", bad, "--junit", junit)
        self.assertEqual(code, 1, out + err)
        import xml.dom.minidom
        doc = xml.dom.minidom.parse(junit)   # expat: strict UTF-8 and XML 1.0
        failures = doc.getElementsByTagName("failure")
        self.assertEqual(len(failures), 1)
        self.assertIn("bad a\ufffd\ufffdb", failures[0].toxml())

    def test_json_encode_in_a_runbook_writes_valid_utf8(self):
        rb = self.write("enc.lua", """
            runbook { name = "t/enc" }
            step("encode", function()
              io.stdout:write(json.encode({ s = "a\\255\\254b", k = { ["\\192\\175"] = 1 } }), "\\n")
            end)
            """)
        code, out, err = self.run_bytes("run", rb, "--no-audit")
        self.assertEqual(code, 0, err)
        doc = [l for l in out.decode("utf-8", "strict").splitlines() if l.startswith("{")][0]
        self.assertEqual(json.loads(doc), {"s": "a\ufffd\ufffdb", "k": {"\ufffd\ufffd": 1}})

    def test_a_runbook_with_a_byte_order_mark_loads_checks_lists_and_runs(self):
        text = ("\ufeff#!/usr/bin/env runbook\n"
                "runbook { name = \"t/bom\", description = \"saved by an editor with a BOM\" }\n"
                "step(\"hello\", function() print(\"hello\") end)\n")
        lib = self.path("lib")
        rb = self.write("lib/bom.lua", text, dedent=False)
        with open(rb, "rb") as f:
            self.assertEqual(f.read(3), b"\xef\xbb\xbf")
        res = self.rb("run", rb, "--no-audit")
        self.assertExit(res, 0)
        self.assertIn("hello", res.out)
        # line numbers are the file's
        bad = self.write("bad.lua", "\ufeffrunbook { name = \"t/bad\" }\nstep(\"s\", function() error(\"on purpose\") end)\n",
                         dedent=False)
        res = self.rb("run", bad, "--no-audit")
        self.assertExit(res, 1)
        self.assertIn("bad.lua:2: on purpose", res.all)
        res = self.rb("check", rb)
        self.assertExit(res, 0)
        res = self.rb("list", lib)
        self.assertExit(res, 0)
        self.assertIn("t/bom", res.out)
        # a BOM-only file is an empty runbook, reported as one, not a syntax error
        empty = self.write("lib2/empty.lua", "\ufeff", dedent=False)
        res = self.rb("run", empty, "--no-audit")
        self.assertNotIn("unexpected symbol", res.all)


if __name__ == "__main__":
    unittest.main()
