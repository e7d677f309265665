#!/usr/bin/env python3
"""Runs obs_exposition, scrapes it over HTTP and checks the exposition with
`promtool check metrics`: any output from promtool (a lint problem) is a failure.

usage: obs_promtool_test.py OBS_EXPOSITION PROMTOOL
"""
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

# docs/metrics.md: the names outside users rely on.
CONTRACT = [
    "keyrotd_build_info",
    "keyrotd_rotations_total",
    "keyrotd_revocations_total",
    "keyrotd_deletions_total",
    "keyrotd_keys",
    "keyrotd_apps_without_valid_key",
    "keyrotd_key_expiry_timestamp_seconds",
    "keyrotd_next_action_timestamp_seconds",
    "keyrotd_pass_duration_seconds",
    "keyrotd_last_successful_pass_timestamp_seconds",
    "keyrotd_apigee_requests_total",
    "keyrotd_apigee_request_duration_seconds",
    "keyrotd_config_reloads_total",
]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def fetch(port, path):
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def main():
    exe, promtool = sys.argv[1], sys.argv[2]
    if shutil.which(promtool) is None:
        fail(f"{promtool} not found: install Debian's prometheus package")
    proc = subprocess.Popen([exe], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            fail(f"unexpected first line from {exe}: {line!r}")
        port = int(line[1])

        status, ctype, body = fetch(port, "/metrics")
        if status != 200:
            fail(f"/metrics answered {status}")
        if "version=0.0.4" not in ctype:
            fail(f"/metrics content type {ctype!r}")
        for name in CONTRACT:
            if f"# TYPE {name} " not in body:
                fail(f"{name} missing from the exposition")
        for path, want in (("/healthz", 200), ("/readyz", 200), ("/nope", 404)):
            got = fetch(port, path)[0]
            if got != want:
                fail(f"{path} answered {got}, want {want}")

        check = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                               capture_output=True, timeout=60)
        output = (check.stdout + check.stderr).strip()
        if check.returncode != 0 or output:
            fail(f"promtool check metrics exited {check.returncode}:\n{output}\n--- exposition:\n{body}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            fail("obs_exposition did not stop within 10 s of SIGTERM")
    if rc != 0:
        fail(f"obs_exposition exited {rc}")
    print(f"ok: {len(CONTRACT)} contract metrics present, promtool check metrics clean")


if __name__ == "__main__":
    main()
