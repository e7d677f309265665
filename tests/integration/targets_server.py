#!/usr/bin/python3
"""A stand-in for the three delivery targets of lib/deliver, for loopback tests.

  targets_server.py [--kube-token T]... [--vault-token T]... [--vault-role R]
                    [--google-token T]... [--google-issuer URL]

--google-issuer: also accept, for Secret Manager, the access tokens the Apigee
emulator at URL issued and that have not expired (read from its
/__emulator/tokens hook), as Google accepts the tokens its own token endpoint
and metadata server issue: keyrotd's end-to-end tests use the credentials it
uses for Apigee.

Listens on 127.0.0.1, port 0 (ThreadingHTTPServer), prints the port on the
first line of stdout. Standard library only. Speaks just enough of each
service's published REST shape (docs/delivery.md cites the reference pages):

Kubernetes v1 Secrets (Authorization: Bearer <--kube-token>, else 401 Status):
  GET  /api/v1/namespaces/{ns}/secrets/{name}   200 | 404 NotFound
  POST /api/v1/namespaces/{ns}/secrets          201 | 409 AlreadyExists | 422 Invalid
  PUT  /api/v1/namespaces/{ns}/secrets/{name}   200 | 404 | 409 Conflict ("the object has
       been modified") | 422 (no metadata.resourceVersion, name mismatch, data not base64)
  Errors are v1 Status objects; resourceVersion is a cluster-wide counter.

Vault KV v2 (X-Vault-Token or Authorization: Bearer; --vault-token or a token from login):
  POST /v1/auth/{mount}/login      {"role", "jwt"}: jwt must be a --kube-token and role
                                   --vault-role -> auth.client_token, lease_duration 3600
  GET  /v1/{mount}/metadata/{path} 200 {data: {current_version, custom_metadata, versions}} | 404
  POST /v1/{mount}/metadata/{path} 204 (custom_metadata replaced)
  GET  /v1/{mount}/data/{path}     200 {data: {data, metadata: {version, ...}}} | 404
  POST /v1/{mount}/data/{path}     200 {data: {version, ...}}; options.cas must equal the
                                   current version (0: absent), else 400 "check-and-set
                                   parameter did not match the current version"
  Errors are {"errors": [..]}; 403 "permission denied" for a bad token.

Secret Manager v1 (Authorization: Bearer <--google-token>, else 401 UNAUTHENTICATED):
  GET   /v1/projects/{p}/secrets/{s}                          200 | 404 NOT_FOUND
  POST  /v1/projects/{p}/secrets?secretId={s}                 200 | 409 ALREADY_EXISTS
  PATCH /v1/projects/{p}/secrets/{s}?updateMask=versionAliases 200 | 409 ABORTED (etag)
  POST  /v1/projects/{p}/secrets/{s}:addVersion               200 SecretVersion | 400
        INVALID_ARGUMENT when payload.dataCrc32c does not match the data
  GET   /v1/projects/{p}/secrets/{s}/versions/{v}             v: number, "latest" or an alias
  GET   /v1/projects/{p}/secrets/{s}/versions/{v}:access      400 FAILED_PRECONDITION if disabled
  GET   /v1/projects/{p}/secrets/{s}/versions?filter=state:ENABLED&pageSize=N&pageToken=T
  POST  /v1/projects/{p}/secrets/{s}/versions/{v}:disable
  Errors are {"error": {code, message, status}}.

Test hooks (no auth), JSON bodies:
  POST /__t/fail  {"path": substring, "method": M or absent, "count": N (default 1),
                   "mode": M}
                   "conflict"      another writer changes the object just before the request
                                   (Secret: an annotation, new resourceVersion; Vault: a new
                                   version with the same data; Secret Manager: a new etag), so
                                   the request meets a real 409 / check-and-set mismatch
                   "status"        answer {"status": S} (403, 429, 500, 503) in the service's
                                   error shape, without carrying the request out; with
                                   "retryAfter": N also a Retry-After: N header
                   "commit-close"  carry the request out, close the connection unanswered
  POST /__t/clear {}  drops every fault (those above and chaos)
  POST /__t/chaos {"rate": P, "seed": N, "lost": Q}  every service request (not hooks) fails
                  with probability P: with probability Q its answer is lost after it was
                  carried out (as commit-close), otherwise a 503 in the service's error
                  shape without carrying it out. rate 0 turns it off.
  POST /__t/seed  {"kind": "secret", "namespace", "name", "labels", "data"} |
                  {"kind": "vault", "mount", "path", "custom_metadata", "data"} |
                  {"kind": "sm", "project", "secret", "labels"}     objects made by others
  GET  /__t/state   every object (Secrets with data decoded, Vault entries, SM secrets and
                    versions with payloads decoded)
  GET  /__t/log     every request: {t (epoch s), method, path, status, auth, fault, place,
                    holds} (never bodies): place names the object ("secret ns/name", "vault
                    mount/path", "sm project/secret"), holds is the fingerprint (first 16 hex
                    digits of SHA-256) of the consumerKey a reader gets from it right after
                    the request (Secret data, Vault's latest version, the Secret Manager
                    version `current` names, else latest), "" when none
"""
import base64
import hashlib
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

K_ITEM = re.compile(r"^/api/v1/namespaces/([a-z0-9-]+)/secrets/([a-z0-9.-]+)$")
K_COLL = re.compile(r"^/api/v1/namespaces/([a-z0-9-]+)/secrets$")
V_LOGIN = re.compile(r"^/v1/auth/([A-Za-z0-9._-]+)/login$")
V_KV = re.compile(r"^/v1/([A-Za-z0-9._-]+)/(data|metadata)/(.+)$")
SM_SECRET = re.compile(r"^/v1/projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]+)$")
SM_COLL = re.compile(r"^/v1/projects/([a-z0-9-]+)/secrets$")
SM_ADD = re.compile(r"^/v1/projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]+):addVersion$")
SM_VERSION = re.compile(
    r"^/v1/projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]+)/versions/([A-Za-z0-9_-]+)(:access|:disable)?$")
SM_ANY = re.compile(r"^/v1/projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]+)")
SM_VERSIONS = re.compile(r"^/v1/projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]+)/versions$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PROJECT_NUMBER = "123456789012"


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: independent of the C++ table."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class State:
    def __init__(self, kube_tokens, vault_tokens, vault_role, google_tokens, google_issuer=""):
        self.lock = threading.Lock()
        self.kube_tokens = set(kube_tokens)
        self.vault_tokens = set(vault_tokens)
        self.vault_role = vault_role
        self.google_tokens = set(google_tokens)
        self.google_issuer = google_issuer
        self.google_issued = {}  # token -> expiry (epoch ms), from the issuer
        self.chaos = None  # {"rate", "lost", "rng"}
        self.rv = 1000
        self.secrets = {}  # "ns/name" -> Secret object
        self.vault = {}    # "mount/path" -> {"custom_metadata", "versions": {n: {...}}, "current"}
        self.sm = {}       # "project/secret" -> {"secret": resource, "versions": [..]}
        self.faults = []
        self.log = []

    def next_rv(self):
        self.rv += 1
        return str(self.rv)


def k_status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


def v_error(code, message):
    return code, {"errors": [message] if message else []}


def g_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle plus the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        st = self.state
        if path.startswith("/__t/"):
            code, body = self.hook(path, raw)
            self.reply(code, body)
            return
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else self.headers.get("X-Vault-Token", "")
        with st.lock:
            fault = None
            for f in st.faults:
                if f["count"] > 0 and f["path"] in path and f.get("method") in (None, method):
                    f["count"] -= 1
                    fault = f
                    break
            if fault is None and st.chaos and st.chaos["rng"].random() < st.chaos["rate"]:
                lost = st.chaos["rng"].random() < st.chaos["lost"]
                fault = {"mode": "commit-close"} if lost else {"mode": "status", "status": 503}
            if fault and fault["mode"] == "status":
                code, body = self.fault_status(path, fault["status"])
            else:
                if fault and fault["mode"] == "conflict":
                    self.other_writer(path)
                code, body = self.dispatch(method, path, query, raw, token)
            try:
                place, holds = self.holds(path, raw)
            except Exception:  # noqa: BLE001 -- bookkeeping must never fail a request
                place, holds = "", ""
            st.log.append({"t": time.time(), "method": method, "path": self.path,
                           "status": code, "auth": bool(token),
                           "fault": fault["mode"] if fault else None,
                           "place": place, "holds": holds})
        if fault and fault["mode"] == "commit-close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        retry_after = fault.get("retryAfter") if fault and fault["mode"] == "status" else None
        self.reply(code, body, {"Retry-After": str(retry_after)} if retry_after is not None else {})

    # ------------------------------------------------------------ faults and hooks

    def holds(self, path, raw):
        """(place, fingerprint of the consumerKey a reader gets from it now)."""
        st = self.state

        def fp(value):
            return hashlib.sha256(value.encode()).hexdigest()[:16] if value else ""

        m = K_ITEM.match(path) or K_COLL.match(path)
        if m:
            ns = m.group(1)
            if m.re is K_ITEM:
                name = m.group(2)
            else:
                try:
                    name = json.loads(raw or b"{}").get("metadata", {}).get("name", "")
                except (ValueError, AttributeError):
                    name = ""
            obj = st.secrets.get("%s/%s" % (ns, name))
            enc = ((obj or {}).get("data") or {}).get("consumerKey", "")
            try:
                return "secret %s/%s" % (ns, name), fp(base64.b64decode(enc).decode())
            except ValueError:
                return "secret %s/%s" % (ns, name), ""
        m = V_KV.match(path)
        if m:
            key = "%s/%s" % (m.group(1), m.group(3))
            e = st.vault.get(key)
            data = e["versions"][e["current"]]["data"] if e and e["current"] else {}
            return "vault " + key, fp(str(data.get("consumerKey", "")))
        m = SM_ANY.match(path)
        if m:
            key = "%s/%s" % m.groups()
            e = st.sm.get(key)
            v = None
            if e:
                v = self.sm_find_version(e, "current") or self.sm_find_version(e, "latest")
            if v is None:
                return "sm " + key, ""
            try:
                payload = json.loads(base64.b64decode(v["data"]))
            except ValueError:
                return "sm " + key, ""
            if not isinstance(payload, dict):
                return "sm " + key, ""
            return "sm " + key, fp(str(payload.get("consumerKey", "")))
        return "", ""

    def fault_status(self, path, code):
        if path.startswith("/api/"):
            return k_status(code, "Forbidden" if code == 403 else "InternalError", "injected")
        if path.startswith("/v1/projects/"):
            return g_error(code, "PERMISSION_DENIED" if code == 403 else "UNAVAILABLE", "injected")
        return v_error(code, "injected")

    def other_writer(self, path):
        st = self.state
        m = K_ITEM.match(path)
        if m and "%s/%s" % m.groups() in st.secrets:
            obj = st.secrets["%s/%s" % m.groups()]
            obj["metadata"].setdefault("annotations", {})["other-writer"] = str(time.time())
            obj["metadata"]["resourceVersion"] = st.next_rv()
            return
        m = V_KV.match(path)
        if m and "%s/%s" % (m.group(1), m.group(3)) in st.vault:
            e = st.vault["%s/%s" % (m.group(1), m.group(3))]
            data = dict(e["versions"][e["current"]]["data"]) if e["current"] else {}
            self.vault_add(e, data)
            return
        m = SM_SECRET.match(path)
        if m and "%s/%s" % m.groups() in st.sm:
            st.sm["%s/%s" % m.groups()]["secret"]["etag"] = '"%s"' % uuid.uuid4().hex[:12]

    def hook(self, path, raw):
        st = self.state
        body = json.loads(raw) if raw else {}
        with st.lock:
            if path == "/__t/fail":
                body.setdefault("count", 1)
                st.faults.append(body)
                return 200, {}
            if path == "/__t/clear":
                st.faults = []
                st.chaos = None
                return 200, {}
            if path == "/__t/chaos":
                rate = float(body.get("rate", 0))
                st.chaos = {"rate": rate, "lost": float(body.get("lost", 0.5)),
                            "rng": random.Random(body.get("seed", 0))} if rate > 0 else None
                return 200, {}
            if path == "/__t/log":
                return 200, st.log
            if path == "/__t/state":
                return 200, self.snapshot()
            if path == "/__t/seed":
                kind = body["kind"]
                if kind == "secret":
                    st.secrets["%s/%s" % (body["namespace"], body["name"])] = {
                        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": body["name"], "namespace": body["namespace"],
                                     "labels": body.get("labels", {}),
                                     "resourceVersion": st.next_rv(), "uid": str(uuid.uuid4())},
                        "data": {k: base64.b64encode(v.encode()).decode()
                                 for k, v in body.get("data", {}).items()}}
                elif kind == "vault":
                    e = {"custom_metadata": body.get("custom_metadata"), "versions": {},
                         "current": 0}
                    st.vault["%s/%s" % (body["mount"], body["path"])] = e
                    if "data" in body:
                        self.vault_add(e, body["data"])
                elif kind == "sm":
                    self.sm_create(body["project"], body["secret"], body.get("labels", {}))
                return 200, {}
        return 404, {}

    def snapshot(self):
        st = self.state
        secrets_out = {}
        for key, obj in st.secrets.items():
            o = json.loads(json.dumps(obj))
            o["decoded"] = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
            secrets_out[key] = o
        sm_out = {}
        for key, e in st.sm.items():
            sm_out[key] = {"secret": e["secret"], "versions": [
                {"name": v["name"], "state": v["state"],
                 "payload": json.loads(base64.b64decode(v["data"]))} for v in e["versions"]]}
        return {"secrets": secrets_out, "vault": st.vault, "sm": sm_out}

    # ------------------------------------------------------------ routing

    def dispatch(self, method, path, query, raw, token):
        st = self.state
        if path.startswith("/api/v1/"):
            if token not in st.kube_tokens:
                return k_status(401, "Unauthorized", "Unauthorized")
            return self.kube(method, path, raw)
        if path.startswith("/v1/projects/"):
            if not self.google_ok(token):
                return g_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                                       "credentials.")
            return self.secret_manager(method, path, query, raw)
        if path.startswith("/v1/"):
            m = V_LOGIN.match(path)
            if m and method == "POST":
                return self.vault_login(raw)
            if token not in st.vault_tokens:
                return v_error(403, "permission denied")
            return self.vault_kv(method, path, raw)
        return 404, {}

    def google_ok(self, token):
        st = self.state
        if token in st.google_tokens:
            return True
        now_ms = time.time() * 1000
        if st.google_issued.get(token, 0) > now_ms:
            return True
        if not token or not st.google_issuer:
            return False
        try:
            with urllib.request.urlopen(st.google_issuer + "/__emulator/tokens", timeout=5) as r:
                issued = json.loads(r.read()).get("issued", [])
        except (OSError, ValueError):
            return False
        for i in issued:
            st.google_issued[i.get("token", "")] = i.get("expiresAt", 0)
        return st.google_issued.get(token, 0) > now_ms

    # ------------------------------------------------------------ Kubernetes

    def kube(self, method, path, raw):
        st = self.state
        m = K_ITEM.match(path)
        if m and method == "GET":
            obj = st.secrets.get("%s/%s" % m.groups())
            if obj is None:
                return k_status(404, "NotFound", 'secrets "%s" not found' % m.group(2))
            return 200, obj
        if m and method == "PUT":
            ns, name = m.groups()
            cur = st.secrets.get("%s/%s" % (ns, name))
            if cur is None:
                return k_status(404, "NotFound", 'secrets "%s" not found' % name)
            try:
                obj = json.loads(raw)
            except ValueError:
                return k_status(400, "BadRequest", "the body cannot be decoded")
            md = obj.get("metadata", {})
            if md.get("name") != name:
                return k_status(422, "Invalid", "metadata.name does not match the URL")
            if not md.get("resourceVersion"):
                return k_status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: "
                                                "must be specified for an update")
            if md["resourceVersion"] != cur["metadata"]["resourceVersion"]:
                return k_status(409, "Conflict",
                                'Operation cannot be fulfilled on secrets "%s": the object has '
                                'been modified; please apply your changes to the latest version '
                                'and try again' % name)
            bad = self.check_data(obj)
            if bad:
                return bad
            md["namespace"] = ns
            md["uid"] = cur["metadata"]["uid"]
            md["resourceVersion"] = st.next_rv()
            obj.setdefault("type", cur.get("type", "Opaque"))
            st.secrets["%s/%s" % (ns, name)] = obj
            return 200, obj
        m = K_COLL.match(path)
        if m and method == "POST":
            ns = m.group(1)
            try:
                obj = json.loads(raw)
            except ValueError:
                return k_status(400, "BadRequest", "the body cannot be decoded")
            md = obj.get("metadata", {})
            name = md.get("name", "")
            if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
                return k_status(422, "Invalid", "metadata.name: Invalid value")
            if md.get("resourceVersion"):
                return k_status(422, "Invalid", "resourceVersion should not be set on objects "
                                                "to be created")
            if "%s/%s" % (ns, name) in st.secrets:
                return k_status(409, "AlreadyExists", 'secrets "%s" already exists' % name)
            bad = self.check_data(obj)
            if bad:
                return bad
            md["namespace"] = ns
            md["uid"] = str(uuid.uuid4())
            md["resourceVersion"] = st.next_rv()
            md["creationTimestamp"] = now_rfc3339()
            st.secrets["%s/%s" % (ns, name)] = obj
            return 201, obj
        return k_status(405, "MethodNotAllowed", "not served by the stand-in")

    @staticmethod
    def check_data(obj):
        for k, v in (obj.get("data") or {}).items():
            if not re.match(r"^[-._a-zA-Z0-9]+$", k) or not isinstance(v, str):
                return k_status(422, "Invalid", "data[%s]: Invalid value" % k)
            try:
                base64.b64decode(v, validate=True)
            except ValueError:
                return k_status(400, "BadRequest", "illegal base64 data")
        return None

    # ------------------------------------------------------------ Vault

    def vault_login(self, raw):
        st = self.state
        body = json.loads(raw or b"{}")
        if body.get("jwt") not in st.kube_tokens or body.get("role") != st.vault_role:
            return v_error(403, "permission denied")
        token = "hvs." + secrets.token_urlsafe(18)
        st.vault_tokens.add(token)
        return 200, {"auth": {"client_token": token, "lease_duration": 3600, "renewable": True,
                              "policies": ["keyrotd"]}}

    @staticmethod
    def vault_add(e, data):
        n = max(e["versions"], default=0) + 1
        e["versions"][n] = {"data": data, "created_time": now_rfc3339(), "deletion_time": "",
                            "destroyed": False}
        e["current"] = n
        return n

    def vault_kv(self, method, path, raw):
        st = self.state
        m = V_KV.match(path)
        if not m:
            return v_error(404, "")
        mount, kind, vpath = m.groups()
        key = "%s/%s" % (mount, vpath)
        e = st.vault.get(key)
        if kind == "metadata":
            if method == "GET":
                if e is None:
                    return v_error(404, "")
                return 200, {"data": {
                    "current_version": e["current"], "custom_metadata": e["custom_metadata"],
                    "versions": {str(n): {k: v[k] for k in ("created_time", "deletion_time",
                                                            "destroyed")}
                                 for n, v in e["versions"].items()}}}
            if method == "POST":
                body = json.loads(raw or b"{}")
                if e is None:
                    e = st.vault[key] = {"custom_metadata": None, "versions": {}, "current": 0}
                if "custom_metadata" in body:
                    e["custom_metadata"] = body["custom_metadata"]
                return 204, None
        if kind == "data":
            if method == "GET":
                if e is None or not e["current"]:
                    return v_error(404, "")
                v = e["versions"][e["current"]]
                return 200, {"data": {"data": v["data"], "metadata": {
                    "version": e["current"], "created_time": v["created_time"],
                    "deletion_time": v["deletion_time"], "destroyed": v["destroyed"],
                    "custom_metadata": e["custom_metadata"]}}}
            if method == "POST":
                body = json.loads(raw or b"{}")
                if not isinstance(body.get("data"), dict):
                    return v_error(400, "no data provided")
                cas = (body.get("options") or {}).get("cas")
                current = e["current"] if e else 0
                if cas is not None and cas != current:
                    return v_error(400, "check-and-set parameter did not match the current "
                                        "version")
                if e is None:
                    e = st.vault[key] = {"custom_metadata": None, "versions": {}, "current": 0}
                n = self.vault_add(e, body["data"])
                return 200, {"data": {"version": n, "created_time": now_rfc3339(),
                                      "deletion_time": "", "destroyed": False}}
        return v_error(405, "unsupported operation")

    # ------------------------------------------------------------ Secret Manager

    def sm_create(self, project, sid, labels):
        st = self.state
        res = {"name": "projects/%s/secrets/%s" % (PROJECT_NUMBER, sid),
               "replication": {"automatic": {}}, "createTime": now_rfc3339(),
               "labels": labels, "etag": '"%s"' % uuid.uuid4().hex[:12]}
        st.sm["%s/%s" % (project, sid)] = {"secret": res, "versions": []}
        return res

    @staticmethod
    def sm_version_resource(v):
        return {"name": v["name"], "createTime": v["createTime"], "state": v["state"],
                "replicationStatus": {"automatic": {}}, "etag": v["etag"],
                "clientSpecifiedPayloadChecksum": True}

    def sm_find_version(self, e, ref):
        if ref == "latest":
            return e["versions"][-1] if e["versions"] else None
        aliases = e["secret"].get("versionAliases", {})
        if ref in aliases:
            ref = str(aliases[ref])
        if not ref.isdigit():
            return None
        n = int(ref)
        return e["versions"][n - 1] if 0 < n <= len(e["versions"]) else None

    def secret_manager(self, method, path, query, raw):
        st = self.state
        m = SM_COLL.match(path)
        if m and method == "POST":
            sid = (query.get("secretId") or [""])[0]
            if not re.match(r"^[A-Za-z0-9_-]{1,255}$", sid):
                return g_error(400, "INVALID_ARGUMENT", "bad secretId")
            if "%s/%s" % (m.group(1), sid) in st.sm:
                return g_error(409, "ALREADY_EXISTS", "Secret [%s] already exists." % sid)
            body = json.loads(raw or b"{}")
            if "replication" not in body:
                return g_error(400, "INVALID_ARGUMENT", "replication is required")
            return 200, self.sm_create(m.group(1), sid, body.get("labels", {}))
        m = SM_SECRET.match(path)
        if m:
            e = st.sm.get("%s/%s" % m.groups())
            if e is None:
                return g_error(404, "NOT_FOUND", "Secret [%s] not found." % m.group(2))
            if method == "GET":
                return 200, e["secret"]
            if method == "PATCH":
                mask = (query.get("updateMask") or [""])[0]
                body = json.loads(raw or b"{}")
                if body.get("etag") and body["etag"] != e["secret"]["etag"]:
                    return g_error(409, "ABORTED", "etag does not match")
                if mask != "versionAliases":
                    return g_error(400, "INVALID_ARGUMENT", "unsupported updateMask")
                aliases = body.get("versionAliases", {})
                for a, v in aliases.items():
                    if a == "latest" or not str(v).isdigit() or \
                            not 0 < int(v) <= len(e["versions"]):
                        return g_error(400, "INVALID_ARGUMENT", "bad alias %s" % a)
                e["secret"]["versionAliases"] = {a: str(v) for a, v in aliases.items()}
                e["secret"]["etag"] = '"%s"' % uuid.uuid4().hex[:12]
                return 200, e["secret"]
        m = SM_ADD.match(path)
        if m and method == "POST":
            e = st.sm.get("%s/%s" % m.groups())
            if e is None:
                return g_error(404, "NOT_FOUND", "Secret [%s] not found." % m.group(2))
            payload = json.loads(raw or b"{}").get("payload", {})
            try:
                data = base64.b64decode(payload.get("data", ""), validate=True)
            except ValueError:
                return g_error(400, "INVALID_ARGUMENT", "payload.data is not base64")
            if "dataCrc32c" in payload and int(payload["dataCrc32c"]) != crc32c(data):
                return g_error(400, "INVALID_ARGUMENT", "Checksum mismatch")
            n = len(e["versions"]) + 1
            v = {"name": "projects/%s/secrets/%s/versions/%d" % (PROJECT_NUMBER, m.group(2), n),
                 "createTime": now_rfc3339(), "state": "ENABLED",
                 "etag": '"%s"' % uuid.uuid4().hex[:12],
                 "data": payload.get("data", ""), "crc": crc32c(data)}
            e["versions"].append(v)
            return 200, self.sm_version_resource(v)
        m = SM_VERSION.match(path)
        if m:
            e = st.sm.get("%s/%s" % m.group(1, 2))
            v = self.sm_find_version(e, m.group(3)) if e else None
            if v is None:
                return g_error(404, "NOT_FOUND", "Secret Version not found.")
            if m.group(4) == ":access" and method == "GET":
                if v["state"] != "ENABLED":
                    return g_error(400, "FAILED_PRECONDITION",
                                   "%s is in DISABLED state." % v["name"])
                return 200, {"name": v["name"], "payload": {"data": v["data"],
                                                            "dataCrc32c": str(v["crc"])}}
            if m.group(4) == ":disable" and method == "POST":
                v["state"] = "DISABLED"
                return 200, self.sm_version_resource(v)
            if m.group(4) is None and method == "GET":
                return 200, self.sm_version_resource(v)
        m = SM_VERSIONS.match(path)
        if m and method == "GET":
            e = st.sm.get("%s/%s" % m.groups())
            if e is None:
                return g_error(404, "NOT_FOUND", "Secret not found.")
            flt = (query.get("filter") or [""])[0]
            vs = [v for v in reversed(e["versions"])
                  if flt != "state:ENABLED" or v["state"] == "ENABLED"]
            size = int((query.get("pageSize") or ["25"])[0])
            start = int((query.get("pageToken") or ["0"])[0])
            page = vs[start:start + min(size, 2)]  # small pages: callers must follow tokens
            out = {"versions": [self.sm_version_resource(v) for v in page], "totalSize": len(vs)}
            if start + len(page) < len(vs):
                out["nextPageToken"] = str(start + len(page))
            return 200, out
        return g_error(404, "NOT_FOUND", "not served by the stand-in")


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--kube-token", action="append", default=[])
    ap.add_argument("--vault-token", action="append", default=[])
    ap.add_argument("--vault-role", default="keyrotd")
    ap.add_argument("--google-token", action="append", default=[])
    ap.add_argument("--google-issuer", default="")
    args = ap.parse_args(argv)
    Handler.state = State(args.kube_token, args.vault_token, args.vault_role, args.google_token,
                          args.google_issuer.rstrip("/"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
