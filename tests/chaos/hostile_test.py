"""Hostile emulator mode (issue "Proof"): the emulator corrupts what it says
about one app -- wrong JSON types, missing fields, huge arrays, duplicate keys
and members -- or makes the org app list's nextPageToken loop back to page
one. keyrotd must survive each: `keyrotd once` exits by itself (no hang, no
crash), says what was wrong in a plain error line, and writes nothing to the
affected app.

What keyrotd does (asserted below):
- wrong-types: the app list page fails to parse ("app list: app[4].attributes:
  expected an array"), the pass fails (exit 1) and nothing at all is written,
  to any app (safe: nothing is changed on data keyrotd could not read).
- missing-fields: well-formed JSON; keys without consumerKey/status are not
  valid keys, so the affected app is left alone and the other four apps are
  rotated (exit 0).
- page-loop: the first page is a true page, and its apps are rotated as they
  stream in (an app's keys all come with it); the repeated token is caught on
  its first repeat: "app list repeats a page token", exit 1, nothing handed
  out or written twice.
- huge-array and duplicate-keys: the planner finds the app's data implausible
  (far past Apigee's limits: 200,000 credentials, 100,000 attributes; or one
  consumer key listed twice), reports it as failed (exit 1) and leaves it
  alone; the other four apps are rotated. (These were bugs until the planner
  learnt to distrust such data.)"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

DEV = "pat@example.com"
VICTIM = "shop"
OTHERS = ["alpha", "bravo", "charlie", "delta"]


def seed():
    def app(name, key):
        return {"developerEmail": DEV, "name": name, "status": "approved",
                "attributes": [{"name": "tier", "value": "gold"}],
                "credentials": [{
                    "consumerKey": key, "consumerSecret": key + "-SECRET",
                    "status": "approved", "issuedAt": "-28d", "expiresAt": "+2d",
                    "attributes": [{"name": "env", "value": "prod"}],
                    "apiProducts": [{"apiproduct": "payments", "status": "approved"}]}]}

    apps = [app(VICTIM, "SHOPkey0000000000000000000000001")]
    apps += [app(n, "%skey%s" % (n.upper(), "0" * 20 + "1")) for n in OTHERS]
    return {"organization": "demo",
            "developers": [{"email": DEV, "firstName": "Pat", "lastName": "Ner",
                            "userName": "pat", "status": "active"}],
            "apiProducts": [{"name": "payments", "approvalType": "auto"}],
            "apps": apps}


CRASH_MARKS = ("Traceback", "terminate called", "Sanitizer", "Segmentation", "Aborted",
               "core dumped", "what():")


class HostileTest(unittest.TestCase):
    def setUp(self):
        self.dir = harness.tmpdir()
        self.emu = harness.Emulator(self.dir, seed=seed())
        self.k = harness.Keyrotd(self.dir, self.emu.url, [harness.policy()])

    def tearDown(self):
        self.emu.stop()
        harness.rmtree(self.dir)

    def apps(self):
        return {a["name"]: a for a in self.emu.state()["apps"]}

    def run_hostile(self, mode, app=VICTIM, victim_untouched=True):
        """Turns the mode on, runs one pass, returns (result, before, after)."""
        out = self.emu.hook("faults", {"hostile": {"mode": mode, "app": app}})
        self.assertEqual(out["hostile"], {"mode": mode, "app": app})
        before = self.apps()
        self.emu.reset_counters()
        try:
            r = self.k.run("once", timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("keyrotd once hung (> 60 s) under hostile mode " + mode)
        self.emu.hook("faults", {"hostile": None})
        after = self.apps()
        text = r.stdout + r.stderr
        print("--- %s: rc %d\n%s" % (mode, r.returncode, text[-3000:]), file=sys.stderr)
        self.assertGreaterEqual(r.returncode, 0, "killed by a signal: " + text[-2000:])
        self.assertIn(r.returncode, (0, 1), text[-2000:])
        for m in CRASH_MARKS:
            self.assertNotIn(m, text)
        # Zero writes to the affected app: its state is unchanged, and no
        # availability record (written by every successful write) names it.
        if victim_untouched:
            self.assertEqual(before[VICTIM], after[VICTIM], "keyrotd wrote to the affected app")
            avail = self.emu.hook("availability")["records"]
            self.assertEqual([x for x in avail if x["app"] == VICTIM], [])
        return r, text, before, after

    def assert_nothing_written(self, before, after):
        self.assertEqual(before, after)
        self.assertEqual(self.emu.writes(), 0)

    def assert_others_rotated(self, before, after):
        for n in OTHERS:
            self.assertGreater(len(after[n]["credentials"]), len(before[n]["credentials"]), n)

    def test_control(self):
        """Without a hostile mode the same pass rotates every app (so the
        assertions below are not vacuous)."""
        before = self.apps()
        r = self.k.run("once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = self.apps()
        for n in [VICTIM] + OTHERS:
            self.assertGreater(len(after[n]["credentials"]), len(before[n]["credentials"]), n)

    def test_wrong_types(self):
        r, text, before, after = self.run_hostile("wrong-types")
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected an array", text)
        self.assert_nothing_written(before, after)

    def test_missing_fields(self):
        r, text, before, after = self.run_hostile("missing-fields")
        self.assertIn(r.returncode, (0, 1))
        self.assert_others_rotated(before, after)

    # Implausible data about one app (far past Apigee's limits, or one consumer
    # key twice): keyrotd reports that app as failed and leaves it alone
    # (run_hostile checks it is untouched); the other apps are rotated.
    def test_huge_array(self):
        r, text, before, after = self.run_hostile("huge-array")
        self.assertEqual(r.returncode, 1)
        self.assertIn("implausible", text)
        self.assert_others_rotated(before, after)

    def test_duplicate_keys(self):
        r, text, before, after = self.run_hostile("duplicate-keys")
        self.assertEqual(r.returncode, 1)
        self.assertIn("listed twice", text)
        self.assert_others_rotated(before, after)

    def test_page_loop(self):
        # Every page's token points back at the first page. The first page is
        # a true page: its apps are planned and rotated as they stream in (each
        # app's keys all come with it). The repeated token is caught at once:
        # the pass fails loudly, and no app is handed out, or written, twice.
        r, text, before, after = self.run_hostile("page-loop", victim_untouched=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("repeats a page token", text)
        self.assertEqual(self.emu.hook("requests")["byRoute"].get(
            "GET /v1/organizations/{org}/apps"), 2, "the loop is caught on its first repeat")
        for n in [VICTIM] + OTHERS:
            self.assertEqual(len(after[n]["credentials"]), len(before[n]["credentials"]) + 1, n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
