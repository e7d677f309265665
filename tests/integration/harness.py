"""Shared pieces of keyrotd's integration tests: start the emulator on port 0,
write a config and policies, run keyrotd commands, read the emulator's hooks.
Standard library only (Debian's /usr/bin/python3)."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(os.environ.get("KEYROT_BUILD_DIR", ""))
KEYROTD = os.environ.get("KEYROTD", os.path.join(BUILD, "daemon", "keyrotd"))
EMULATOR = os.environ.get("APIGEE_EMULATOR", os.path.join(BUILD, "emulator", "apigee-emulator"))
# The emulator's profile for every suite: "" (lenient) or "strict", the
# pessimistic reading of each ambiguity in Apigee's reference (docs/apigee-fidelity.md).
PROFILE = os.environ.get("KEYROT_EMULATOR_PROFILE", "")


def fp(key):
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def now_ms():
    return int(time.time() * 1000)


class Emulator:
    def __init__(self, workdir, seed=None, extra=()):
        self.dir = workdir
        port_file = os.path.join(workdir, "emulator.port")
        args = [EMULATOR, "--port", "0", "--port-file", port_file, *extra]
        if PROFILE == "strict":
            args.append("--strict")
        elif PROFILE:
            raise RuntimeError("KEYROT_EMULATOR_PROFILE must be empty or strict, not " + PROFILE)
        if seed is not None:
            seed_file = os.path.join(workdir, "seed.json")
            with open(seed_file, "w") as f:
                json.dump(seed, f)
            args += ["--seed", seed_file]
        self.log = open(os.path.join(workdir, "emulator.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(port_file) and open(port_file).read().strip():
                self.port = int(open(port_file).read().strip())
                break
            if self.proc.poll() is not None:
                raise RuntimeError("emulator exited: " + open(self.log.name).read())
            time.sleep(0.05)
        else:
            raise RuntimeError("emulator did not start")
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, (json.loads(raw) if raw else None)

    def hook(self, name, body=None, method=None):
        status, out = self.call(method or ("GET" if body is None else "POST"), "/__emulator/" + name, body)
        assert status in (200, 204), (name, status, out)
        return out

    def state(self, org="demo"):
        for o in self.hook("state")["organizations"]:
            if o["organization"] == org:
                return o
        raise KeyError(org)

    def app(self, developer, name, org="demo"):
        for a in self.state(org)["apps"]:
            if a["developerEmail"] == developer and a["name"] == name:
                return a
        raise KeyError(name)

    def writes(self):
        """Number of write requests (anything but GET) since the last reset."""
        routes = self.hook("requests")["byRoute"]
        return sum(n for r, n in routes.items() if not r.startswith("GET"))

    def reads(self):
        routes = self.hook("requests")["byRoute"]
        return {r: n for r, n in routes.items() if r.startswith("GET")}

    def reset_counters(self):
        self.hook("reset-counters", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class Keyrotd:
    """A config + policies directory and a way to run keyrotd commands on it."""

    def __init__(self, workdir, url, policies, extra_config="", interval="10m",
                 auth="{method: none}", state_dir="./state"):
        self.dir = workdir
        self.state_dir = os.path.join(workdir, state_dir)
        self.config = os.path.join(workdir, "keyrotd.yaml")
        os.makedirs(os.path.join(workdir, "policies"), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(
                "apigee:\n  url: %s\n  auth: %s\n  requestsPerSecond: 500\n"
                "  maxConcurrency: 8\n  timeout: 5s\n"
                "listen: 127.0.0.1:0\ninterval: %s\nstateDir: %s\npolicies: ./policies\n%s"
                % (url, auth, interval, state_dir, extra_config)
            )
        self.set_policies(policies)
        self.outputs = []  # every stdout/stderr, for the secrets check
        self._bg = 0

    def set_policies(self, policies):
        pdir = os.path.join(self.dir, "policies")
        for f in os.listdir(pdir):
            os.remove(os.path.join(pdir, f))
        for i, p in enumerate(policies):
            with open(os.path.join(pdir, "%02d.json" % i), "w") as f:
                json.dump(p, f)

    def run(self, *args, timeout=120):
        r = subprocess.run([KEYROTD, *args, "-c", self.config], capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def start(self, *args):
        """Starts a keyrotd command (e.g. "run") in the background; stdout and
        stderr go to a file. Returns the Popen; pass it to collect()."""
        self._bg += 1
        out = open(os.path.join(self.dir, "bg-%03d.log" % self._bg), "w+")
        proc = subprocess.Popen([KEYROTD, *args, "-c", self.config], stdout=out,
                                stderr=subprocess.STDOUT, cwd=self.dir)
        proc.log = out
        return proc

    def collect(self, proc, sig=None, timeout=30):
        """Sends `sig` (if any) to a start()ed process, waits for it, records its
        output in self.outputs and returns (exit code, output)."""
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        proc.log.seek(0)
        text = proc.log.read()
        proc.log.close()
        self.outputs.append(text)
        return rc, text

    def audit_path(self):
        return os.path.join(self.state_dir, "audit.jsonl")

    def audit(self):
        path = self.audit_path()
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def audit_text(self):
        path = self.audit_path()
        return open(path).read() if os.path.exists(path) else ""


def policy(name="p", org="demo", method="import", lifetime="30d", before="7d", overlap="3s",
           **extra):
    p = {"name": name, "organization": org, "match": {"apps": ["*"]},
         "rotation": {"keyLifetime": lifetime, "rotateBefore": before, "overlap": overlap,
                      "method": method}}
    for k, v in extra.items():
        if k in ("match",):
            p["match"] = v
        else:
            p["rotation"][k] = v
    return p


def tmpdir():
    return tempfile.mkdtemp(prefix="keyrot-it-")


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
