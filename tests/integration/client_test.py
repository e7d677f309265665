#!/usr/bin/env python3
"""keyrotd's HTTP client against the emulator: the rate limit seen from the
server's per-second request record, and TLS with a CA made at test time."""
import os
import subprocess
import sys
import time
import unittest

import harness as h
from rotation_test import seed, DEV


def set_config(k, old, new):
    with open(k.config) as f:
        text = f.read()
    assert old in text, old
    with open(k.config, "w") as f:
        f.write(text.replace(old, new))


class RateLimitTest(unittest.TestCase):
    def test_no_second_above_requests_per_second(self):
        d = h.tmpdir()
        emu = h.Emulator(d, seed(extra_apps=12))
        try:
            k = h.Keyrotd(d, emu.url, [h.policy(overlap="1h")])
            set_config(k, "requestsPerSecond: 500", "requestsPerSecond: 10")
            emu.hook("reset-counters", {})
            t0 = time.time()
            r = k.run("once")
            took = time.time() - t0
            self.assertEqual(r.returncode, 0, r.stderr)
            total = emu.hook("requests")["total"]
            rate = emu.hook("rate")
            self.assertGreater(total, 60, "enough requests to span several seconds")
            self.assertLessEqual(rate["peak"], 10 + 1, rate)  # limit + burst of 1
            self.assertGreaterEqual(took, total / 10 - 1.5, (total, took))
            print("rate: %d requests in %.1f s, peak %d/s" % (total, took, rate["peak"]),
                  file=sys.stderr)
        finally:
            emu.stop()
            h.rmtree(d)


def make_ca(d, san):
    def run(*args):
        subprocess.run(args, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=keyrotd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")


class TlsTest(unittest.TestCase):
    def setUp(self):
        self.dir = h.tmpdir()
        make_ca(self.dir, "DNS:localhost")  # no IP address in the certificate
        # The emulator serves HTTPS; its test hooks too, so read them over TLS.
        self.emu = h.Emulator(self.dir, seed(), extra=(
            "--cert", os.path.join(self.dir, "server.pem"),
            "--key", os.path.join(self.dir, "server.key")))
        self.emu.url = "https://localhost:%d" % self.emu.port
        import ssl
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        import urllib.request
        urllib.request.install_opener(
            urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx)))

    def tearDown(self):
        self.emu.stop()
        h.rmtree(self.dir)

    def keyrotd(self, url, ca):
        k = h.Keyrotd(self.dir, url, [h.policy()])
        if ca:
            set_config(k, "  timeout: 5s\n", "  timeout: 5s\n  caFile: %s\n"
                       % os.path.join(self.dir, "ca.pem"))
        return k

    def test_works_with_ca_file(self):
        k = self.keyrotd(self.emu.url, ca=True)
        r = k.run("once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(any(a["action"] == "completed" for a in k.audit()))

    def test_without_ca_file_a_clear_error_and_no_request(self):
        self.emu.reset_counters()
        k = self.keyrotd(self.emu.url, ca=False)
        r = k.run("once")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"certificate|verify")
        self.assertEqual(self.emu.hook("requests")["total"], 0, "no request reached the API")

    def test_wrong_host_name_fails(self):
        self.emu.reset_counters()
        k = self.keyrotd("https://127.0.0.1:%d" % self.emu.port, ca=True)
        r = k.run("once")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"mismatch|certificate|verify")
        self.assertEqual(self.emu.hook("requests")["total"], 0, "no request reached the API")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], *sys.argv[1:]], verbosity=2)
