#!/usr/bin/env python3
"""Secrets audit: every stdout/stderr, log, audit log and metrics scrape the
chaos and race suites produced ($KEYROT_ARTIFACTS/*/, left by chaos_test.py),
plus a `keyrotd run` of its own whose /metrics is scraped after a rotation, is
searched for every consumer key and secret the emulator issued and every
bearer token used: zero hits. Runs after chaos_sigkill and chaos_race (ctest
DEPENDS); fails when neither left artifacts."""
import json
import os
import re
import secrets as pysecrets
import signal
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import chaos_test as c  # noqa: E402
import harness as h  # noqa: E402


def own_run():
    """A `keyrotd run` with a token, a rotation and a revocation, and a /metrics scrape."""
    import random
    d = h.tmpdir()
    token = pysecrets.token_urlsafe(30)
    os.environ[c.TOKEN_ENV] = token
    seed, due = c.make_seed(40, random.Random(3))
    emu = h.Emulator(d, seed, extra=("--token", token))
    k = h.Keyrotd(d, emu.url, c.POLICIES, interval="5s",
                  auth="{method: token-env, env: %s}" % c.TOKEN_ENV)
    try:
        p = k.start("run")
        port, scrapes = None, []
        deadline = time.time() + 60
        while time.time() < deadline and len(scrapes) < 3:
            time.sleep(1)
            if port is None:
                p.log.flush()
                m = re.search(r"\(port (\d+)\)|\bport=(\d+)", open(p.log.name).read())
                if m:
                    port = int(m.group(1) or m.group(2))
                continue
            if c.all_done(due, emu.state()) or \
                    time.time() > deadline - 20:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
                    scrapes.append(r.read().decode())
        k.collect(p, signal.SIGTERM)
        k.outputs += scrapes
        c.save_artifacts("secrets-own-run", [k], emu.state(), token)
        return len(scrapes), "keyrotd_rotations_total" in "".join(scrapes)
    finally:
        emu.stop()
        h.rmtree(d)


class SecretsAudit(unittest.TestCase):
    def test_no_secret_in_any_output(self):
        n_scrapes, has_metrics = own_run()
        self.assertGreater(n_scrapes, 0, "scraped /metrics")
        self.assertTrue(has_metrics, "the scrape holds keyrotd metrics")
        cases = sorted(os.listdir(c.ARTIFACTS)) if os.path.isdir(c.ARTIFACTS) else []
        self.assertTrue(any(case.startswith(("chaos", "race-")) for case in cases),
                        "no chaos or race artifacts in %s: run chaos_sigkill/chaos_race first"
                        % c.ARTIFACTS)
        secrets, files = set(), []
        for case in cases:
            d = os.path.join(c.ARTIFACTS, case)
            for f in os.listdir(d):
                if f == "secrets.json":
                    secrets |= set(json.load(open(os.path.join(d, f)))["secrets"])
                else:
                    files.append(os.path.join(d, f))
        secrets = {s for s in secrets if s}
        self.assertGreater(len(secrets), 1000, "enough secrets to look for")
        total, hits, fps = 0, [], 0
        fingerprints = {h.fp(s) for s in secrets}
        for f in files:
            text = open(f, errors="replace").read()
            total += len(text)
            fps += sum(1 for f_ in fingerprints if f_ in text)
            for s in secrets:
                if s in text:
                    hits.append((os.path.relpath(f, c.ARTIFACTS), h.fp(s)))
        print("secrets audit: %d secrets, %d files (%d bytes) from %s: %d hits"
              % (len(secrets), len(files), total, cases, len(hits)), file=sys.stderr)
        self.assertGreater(total, 10000, "there was output to search")
        # Positive control: the outputs do name these keys, by fingerprint.
        self.assertGreater(fps, 100, "fingerprints of the issued keys appear in the outputs")
        self.assertEqual(hits, [], "secrets found (file, fingerprint of the secret)")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
