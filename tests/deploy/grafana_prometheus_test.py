#!/usr/bin/python3
"""Every query of the Grafana dashboard, run through a real Prometheus that
scrapes a real keyrotd (running against the Apigee emulator with the demo org).

  grafana_prometheus_test.py BUILD_DIR

Starts apigee-emulator (deploy/demo-seed.json), `keyrotd run` (policy on org
demo: keyLifetime 30m, rotateBefore 10m, overlap 4m, deleteRevokedAfter 30s;
interval 5s so that passes and Apigee calls keep counters moving), and
/usr/bin/prometheus on free loopback ports (scrape_interval 1s, a temporary
TSDB). So that every panel has something to show within a minute, the emulator's
clock runs 5 minutes behind (successors are born "5 minutes ago": their overlap
is over, the old keys are revoked and then deleted) and it answers 3 % of calls
with 429 and 3 % with 503 (the error-share panel). keyrotd sends its
notifications to a loopback webhook receiver in this process (the
Notifications row) that answers 500 to every third request.

Prints what a fresh instance shows (expressions without data at the first
scrape: series that keyrotd creates on first use), then waits until a pass,
Apigee calls, a revocation and a deletion have happened between two scrapes (so
rate() and increase() over the dashboard's own 5m ranges have two samples), and
runs each expression that tests/deploy/grafana_exprs.py --org demo prints
through /api/v1/query: each must return a non-empty result, not all NaN.
Exit 77 when prometheus is not installed.
"""
import http.server
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout, step=0.2):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError) as e:
            last = e
        time.sleep(step)
    raise RuntimeError("timed out waiting for %s (last: %r)" % (what, last))


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, name, args, workdir, **kw):
        log = open(os.path.join(workdir, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, **kw)
        self.procs.append((name, p, log))
        return p

    def check_alive(self):
        for name, p, log in self.procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (name, p.returncode, log.name))

    def stop(self):
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
            log.close()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def query(prom, expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url)
    out = json.loads(body)
    if out.get("status") != "success":
        raise RuntimeError("query failed: %s: %s" % (expr, body[:300]))
    return out["data"]


def samples(data):
    """[(labels, value)] of a vector/scalar result."""
    if data["resultType"] == "vector":
        return [(r["metric"], r["value"][1]) for r in data["result"]]
    if data["resultType"] == "scalar":
        return [({}, data["result"][1])]
    if data["resultType"] == "matrix":
        return [(r["metric"], r["values"][-1][1]) for r in data["result"] if r["values"]]
    return []


def main(argv):
    if len(argv) != 1:
        print(__doc__)
        return 2
    build = os.path.abspath(argv[0])
    if not os.access(PROMETHEUS, os.X_OK):
        print("SKIP: %s not installed (Debian package prometheus)" % PROMETHEUS)
        return 77
    emulator = os.path.join(build, "emulator", "apigee-emulator")
    keyrotd = os.path.join(build, "daemon", "keyrotd")
    for b in (emulator, keyrotd):
        if not os.access(b, os.X_OK):
            print("FAIL: %s not built" % b)
            return 1

    work = tempfile.mkdtemp(prefix="keyrot-grafana-")
    procs = Procs()
    failures = []
    try:
        # 1. The emulator with the demo org.
        port_file = os.path.join(work, "emulator.port")
        procs.start("emulator", [emulator, "--port", "0", "--port-file", port_file, "--seed",
                                 os.path.join(ROOT, "deploy", "demo-seed.json")], work)
        emu_port = int(wait_for("the emulator's port file",
                                lambda: os.path.exists(port_file) and open(port_file).read().strip(), 20))
        emu = "http://127.0.0.1:%d/__emulator/" % emu_port
        post(emu + "clock", {"offsetMs": -5 * 60 * 1000})
        post(emu + "faults", {"p429": 0.03, "p503": 0.03, "retryAfterSeconds": 0, "seed": 7})

        # 2. A webhook receiver (signatures are checked in tests/integration/notify_test.py).
        class Hook(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            count = 0

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                Hook.count += 1
                self.send_response(500 if Hook.count % 3 == 0 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        with open(os.path.join(work, "whsec"), "w") as f:
            f.write("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")

        # 2b. The Kubernetes Secret stand-in keyrotd delivers the demo keys to
        # (the Delivery row; tests/integration/targets_server.py).
        tlog = open(os.path.join(work, "targets.log"), "w")
        targets = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "integration", "targets_server.py"),
             "--kube-token", "grafana-kube-token"],
            stdout=subprocess.PIPE, stderr=tlog, text=True)
        procs.procs.append(("targets", targets, tlog))
        targets_port = int(targets.stdout.readline().strip())
        with open(os.path.join(work, "kube-token"), "w") as f:
            f.write("grafana-kube-token")

        # 3. keyrotd run.
        listen = free_port()
        os.makedirs(os.path.join(work, "policies"))
        with open(os.path.join(work, "keyrotd.yaml"), "w") as f:
            f.write("apigee:\n  url: http://127.0.0.1:%d\n  auth: {method: none}\n"
                    "  requestsPerSecond: 500\n  maxConcurrency: 8\n  timeout: 5s\n"
                    "listen: 127.0.0.1:%d\ninterval: 5s\nstateDir: ./state\npolicies: ./policies\n"
                    "notify:\n  expiringAt: [1h, 10m]\n  webhooks:\n    - name: hub\n"
                    "      url: http://127.0.0.1:%d/hook\n      secretFiles: [whsec]\n"
                    % (emu_port, listen, hook.server_address[1]))
        with open(os.path.join(work, "policies", "demo.json"), "w") as f:
            json.dump({"name": "demo-minutes", "organization": "demo", "match": {"apps": ["*"]},
                       "rotation": {"keyLifetime": "30m", "rotateBefore": "10m", "overlap": "4m",
                                    "revoke": True, "deleteRevokedAfter": "30s",
                                    "method": "import"},
                       "deliver": [{"kind": "kubernetesSecret", "namespace": "keyrot",
                                    "name": "demo-{app}"}]}, f)
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        env.update({"KEYROTD_KUBE_API_URL": "http://127.0.0.1:%d" % targets_port,
                    "KEYROTD_KUBE_TOKEN_FILE": os.path.join(work, "kube-token"),
                    "KEYROTD_KUBE_CA_FILE": ""})
        procs.start("keyrotd", [keyrotd, "run", "-c", os.path.join(work, "keyrotd.yaml")], work,
                    env=env)
        metrics_url = "http://127.0.0.1:%d/metrics" % listen
        wait_for("keyrotd's /metrics", lambda: (procs.check_alive(), http_get(metrics_url))[1][0] == 200, 30)

        # 4. Prometheus scraping it every second.
        prom_port = free_port()
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: keyrotd\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % listen)
        procs.start("prometheus", [PROMETHEUS, "--config.file=" + os.path.join(work, "prometheus.yml"),
                                   "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                                   "--web.listen-address=127.0.0.1:%d" % prom_port,
                                   "--log.level=warn"], work)
        prom = "http://127.0.0.1:%d" % prom_port
        wait_for("prometheus ready", lambda: (procs.check_alive(), http_get(prom + "/-/ready"))[1][0] == 200, 60)
        t0 = time.time()
        wait_for("the first scrape", lambda: any(v == "1" for _, v in samples(query(prom, 'up{job="keyrotd"}'))), 30)
        print("ok: first scrape after %.1f s" % (time.time() - t0))
        exprs = subprocess.run([sys.executable, os.path.join(HERE, "grafana_exprs.py"), "--org", "demo"],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        fresh = [e for e in exprs if not samples(query(prom, e))]
        print("info: at the first scrape %d of %d expressions have no data yet%s" % (
            len(fresh), len(exprs), "".join("\n    " + e for e in fresh)))
        wait_for("a successful pass in Prometheus",
                 lambda: samples(query(prom, "keyrotd_last_successful_pass_timestamp_seconds")), 60)
        # rate()/increase() need two samples with a pass (and Apigee calls) between them.
        wait_for("a pass between two scrapes",
                 lambda: any(float(v) > 0 for _, v in samples(
                     query(prom, "increase(keyrotd_pass_duration_seconds_count[5m])"))), 60)
        wait_for("Apigee calls between two scrapes", lambda: any(float(v) > 0 for _, v in samples(
            query(prom, "increase(keyrotd_apigee_requests_total[5m])"))), 60, step=0.5)
        # These may all have happened in the first pass, before the first scrape: then
        # increase() is 0, but there must be two samples of the series.
        for what, expr in (("a 429 or 5xx", 'keyrotd_apigee_requests_total{code=~"429|5.."}'),
                           ("a revocation", "keyrotd_revocations_total"),
                           ("a deletion", "keyrotd_deletions_total"),
                           ("a delivery", "keyrotd_key_deliveries_total")):
            wait_for(what, lambda: samples(query(prom, "increase(%s[5m])" % expr)), 60, step=0.5)
        time.sleep(2)
        procs.check_alive()
        print("ok: rate windows filled after %.1f s" % (time.time() - t0))

        # 5. Every expression of the dashboard.
        if not exprs:
            failures.append("grafana_exprs.py printed no expressions")
        for expr in exprs:
            data = query(prom, expr)
            got = samples(data)
            if not got:
                failures.append("no data: " + expr)
                print("FAIL (no data): " + expr)
                continue
            vals = [v for _, v in got]
            nan = [v for v in vals if v.lower() in ("nan", "+inf", "-inf") or not math.isfinite(float(v))]
            print("ok (%d series%s): %s  -> %s" % (len(got), ", %d NaN/Inf" % len(nan) if nan else "", expr,
                                                 ", ".join(vals[:4]) + (" ..." if len(vals) > 4 else "")))
            if len(nan) == len(vals):
                failures.append("only NaN/Inf: " + expr)
        print("%d expressions, %d failures" % (len(exprs), len(failures)))
    except Exception as e:  # noqa: BLE001 - report, with the logs below
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        procs.stop()
        if failures:
            for name in ("keyrotd", "prometheus", "emulator", "targets"):
                path = os.path.join(work, name + ".log")
                if os.path.exists(path):
                    print("--- %s.log (tail)" % name)
                    print("".join(open(path, errors="replace").readlines()[-15:]))
        if not os.environ.get("KEEP_WORK"): shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f)
    print("FAILED" if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
