"""stdlib backup: listing, retention plans, pruning (live and dry-run) and
checksum verification against a db.backup manifest or a sha256sum file, on
real files whose ages are set with os.utime."""
import hashlib
import json
import os
import sys
import time
import unittest

from rbtest import RunbookTestCase, lua_str

sys.dont_write_bytecode = True

DAY = 86400


class Retention(RunbookTestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.path("backups")
        os.makedirs(self.dir)
        t = time.time()
        for i in range(1, 7):  # app-1 is 10 days old ... app-6 is 60 days old
            p = os.path.join(self.dir, "app-%d.dump" % i)
            with open(p, "w") as f:
                f.write("backup %d\n" % i)
            os.utime(p, (t - 10 * i * DAY, t - 10 * i * DAY))
        with open(os.path.join(self.dir, "app-5.dump.manifest.json"), "w") as f:
            f.write("{}")
        with open(os.path.join(self.dir, "app-9.dump.partial"), "w") as f:
            f.write("half")

    def run_lua(self, body, *flags):
        return self.run_body('step("s", function()\n' + body + '\nend)\n', *flags,
                             name="t/backup", head='local backup = require "backup"\n')

    def remaining(self):
        return sorted(os.listdir(self.dir))

    def test_list_is_newest_first_without_manifests_or_partials(self):
        res = self.run_lua('local l = backup.list(%s)\nlocal n = {}\n'
                           'for _, b in ipairs(l) do n[#n + 1] = b.name end\nout(n)\n'
                           'out({ l[1].size, math.floor(l[6].age_days + 0.5) })'
                           % lua_str(self.dir + "/app-*"))
        self.assertExit(res, 0)
        self.assertEqual(res.data[0], ["app-%d.dump" % i for i in range(1, 7)])
        self.assertEqual(res.data[1], [len("backup 1\n"), 60])

    def test_plan_keeps_last_n_or_younger_than_d(self):
        pat = lua_str(self.dir + "/app-*.dump")
        res = self.run_lua(
            'local function names(l) local n = {} for _, b in ipairs(l) do n[#n + 1] = b.name end return n end\n'
            'for _, o in ipairs({ { keep_last = 2 }, { keep_days = 35 }, { keep_last = 4, keep_days = 15 },'
            ' { keep_days = 0 } }) do\n'
            '  local p = backup.plan(%s, o)\n  out({ names(p.keep), names(p.delete) })\nend' % pat)
        self.assertExit(res, 0)
        d = lambda *ns: ["app-%d.dump" % n for n in ns]
        self.assertEqual(res.data[0], [d(1, 2), d(3, 4, 5, 6)])
        self.assertEqual(res.data[1], [d(1, 2, 3), d(4, 5, 6)])
        self.assertEqual(res.data[2], [d(1, 2, 3, 4), d(5, 6)])
        # keep_days = 0 would keep nothing: the newest backup is never deleted
        self.assertEqual(res.data[3], [d(1), d(2, 3, 4, 5, 6)])
        self.assertEqual(len(self.remaining()), 8, "plan must not delete anything")

    def test_plan_without_a_rule_is_refused(self):
        res = self.run_lua('backup.plan(%s, {})' % lua_str(self.dir + "/*"))
        self.assertExit(res, 1)
        self.assertIn("say what to keep", res.all)
        res = self.run_lua('backup.plan(%s, { keep_last = 0 })' % lua_str(self.dir + "/*"))
        self.assertExit(res, 1)
        self.assertIn("keep_last must be a whole number >= 1", res.all)

    def test_prune_dry_run_shows_and_deletes_nothing(self):
        res = self.run_lua('local p = backup.prune(%s, { keep_last = 3 })\nout(#p.delete)'
                           % lua_str(self.dir + "/app-*"), "--dry-run")
        self.assertExit(res, 0)
        self.assertEqual(res.data, [3])
        for n in (4, 5, 6):
            self.assertIn("would: fs remove %s/app-%d.dump" % (self.dir, n), res.out)
        self.assertEqual(len(self.remaining()), 8)
        self.assertIn("would: fs remove %s/app-5.dump.manifest.json" % self.dir, res.out)
        acts = [a for a in self.actions() if a["verb"] == "remove"]
        self.assertEqual(len(acts), 4)
        self.assertTrue(all(a["simulated"] and a["class"] == "mutate" for a in acts))

    def test_prune_live_deletes_old_backups_and_their_manifests(self):
        res = self.run_lua('backup.prune(%s, { keep_last = 3 })' % lua_str(self.dir + "/app-*"))
        self.assertExit(res, 0)
        self.assertEqual(self.remaining(),
                         ["app-1.dump", "app-2.dump", "app-3.dump", "app-9.dump.partial"])

    def test_verify_against_sha256sums_and_manifest(self):
        p2 = os.path.join(self.dir, "app-2.dump")
        with open(p2, "rb") as f:
            good = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(self.dir, "SHA256SUMS"), "w") as f:
            f.write("%s  app-2.dump\n%s *app-3.dump\n" % (good, "0" * 64))
        with open(p2 + ".manifest.json", "w") as f:
            json.dump({"sha256": good}, f)
        sums = lua_str(self.dir + "/SHA256SUMS")
        res = self.run_lua(
            'out(backup.verify(%s, %s))\nout(backup.verify(%s))\n'
            'out(backup.verify(%s, %s, { check = false }))\n'
            'backup.verify(%s, %s)'
            % (lua_str(p2), sums, lua_str(p2), lua_str(self.dir + "/app-3.dump"), sums,
               lua_str(self.dir + "/app-4.dump"), sums))
        self.assertExit(res, 1)
        self.assertTrue(res.data[0]["ok"])
        self.assertEqual(res.data[0]["sha256"], good)
        self.assertTrue(res.data[1]["ok"])
        self.assertFalse(res.data[2]["ok"])
        self.assertIn("differs from " + "0" * 64, res.data[2]["problem"])
        self.assertIn("has no checksum for app-4.dump", res.all)


if __name__ == "__main__":
    unittest.main()
