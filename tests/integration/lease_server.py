#!/usr/bin/python3
"""A stand-in for the Kubernetes API server's Lease endpoints, for leader-election tests.

  lease_server.py [--token T]... [--tls CERT KEY] [--port-file FILE] [--rbac NAME]...
                  [--rbac-configmap NAME]...

Listens on 127.0.0.1, port 0 (ThreadingHTTPServer), prints the port on the
first line of stdout. Standard library only.

  GET  /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}   200 | 404
  POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases          201 | 409 AlreadyExists
  PUT  /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}   200 | 404 | 409 Conflict
                                                                    | 422 Invalid | 400

As the API server: every error is a v1 Status object; a PUT must carry
metadata.resourceVersion (422 otherwise) and it must be the current one (409
"the object has been modified"); resourceVersion is a cluster-wide counter;
uid and creationTimestamp are set on create; leaseDurationSeconds must be
> 0 and leaseTransitions >= 0 (422); acquireTime and renewTime are MicroTime,
which the API server decodes with Go's layout "2006-01-02T15:04:05.000000Z07:00":
exactly 6 fractional digits, else 400 BadRequest (the body cannot be decoded).
Every call needs "Authorization: Bearer <one of the tokens>" (401 Unauthorized
otherwise). With --rbac NAME (repeatable), as the Role in
deploy/kubernetes/base/rbac.yaml: create is allowed for any name (RBAC cannot
limit it by name), get/update/patch only on the named Leases (403 Forbidden).

ConfigMaps, for keyrotd's crash-recovery state (sched/kube.hpp):

  GET   /api/v1/namespaces/{ns}/configmaps/{name}   200 | 404
  POST  /api/v1/namespaces/{ns}/configmaps          201 | 409 AlreadyExists | 422
  PATCH /api/v1/namespaces/{ns}/configmaps/{name}   200 | 404 | 415 | 422
        Content-Type application/merge-patch+json (RFC 7386; a null removes a
        key); data keys must match [-._a-zA-Z0-9]+ and values be strings, the
        whole data at most 1 MiB (422 otherwise), as the API server.
RBAC for ConfigMaps (when --rbac is given): create for any name, get/patch only
on the --rbac-configmap names (default: keyrotd-state), as deploy's Role.
Failure modes hit Lease requests only, unless "resources": ["configmaps"] (or both).

Test hooks (no auth), JSON bodies:
  POST /__lease/fail    {"mode": M, "tokens": [..] or absent = all, "seconds": S (default 30),
                         "methods": [..] or absent = all, "count": N or absent = no limit,
                        "resources": ["leases"] (default) and/or "configmaps"}
                        requests with those tokens and methods:
                          "500"          a 500
                          "hang"         no answer for S seconds, then a closed connection
                          "close"        a closed connection
                          "commit-close" the request is carried out (a write commits),
                                         then the connection closes without an answer
                          "commit-hang"  carried out, the answer held back S seconds,
                                         then the connection closes
                          "commit-delay" carried out, the answer sent after S seconds
                          "off"
                        after N such requests the mode turns itself off
  POST /__lease/tokens  {"tokens": [..]}   replaces the accepted tokens
  POST /__lease/label   {"namespace": ns, "name": n, "labels": {..}}  another writer (GitOps,
                        a policy controller) merges labels into the Lease: a new
                        resourceVersion, the spec unchanged
  GET  /__lease/history every successful write: {t, method, lease ("ns/name"), holder, rv,
                        transitions, token,
                        renewTime, acquireTime}; method "LABEL" for /__lease/label
  GET  /__lease/stats   requests by "METHOD status" ("PUT lost" for answers withheld)
  GET  /__lease/leases  the stored Leases
  GET  /__lease/configmaps  {"items": {"ns/name": ConfigMap}, "history": [{t, method,
                        configmap, token, set: [keys], removed: [keys]}]}
"""
import json
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/apis/coordination.k8s.io/v1/namespaces/"
ITEM = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([a-z0-9.-]+)/leases/([a-z0-9.-]+)$")
COLLECTION = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([a-z0-9.-]+)/leases$")
CM_ITEM = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/configmaps/([a-z0-9.-]+)$")
CM_COLLECTION = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/configmaps$")
CM_KIND = {"kind": "configmaps"}
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
GROUP_KIND = {"group": "coordination.k8s.io", "kind": "leases"}


class State:
    def __init__(self, tokens):
        self.lock = threading.Lock()
        self.leases = {}
        self.rv = 1000
        self.tokens = set(tokens)
        self.fail_mode = "off"
        self.fail_tokens = None  # None: all
        self.hang_seconds = 30.0
        self.fail_methods = None  # None: all
        self.fail_count = None  # None: no limit
        self.rbac = None  # None: no RBAC; else the resourceNames for get/update/patch
        self.rbac_configmaps = {"keyrotd-state"}
        self.fail_resources = {"leases"}
        self.configmaps = {}
        self.cm_history = []
        self.history = []
        self.stats = {}
        self.stopping = threading.Event()


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return code, body


def micro_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")


def decode_times(lease):
    """400, as the API server when a MicroTime does not parse, or None."""
    spec = lease.get("spec") or {}
    if not isinstance(spec, dict):
        return status(400, "BadRequest", "spec is not an object")
    for f in ("acquireTime", "renewTime"):
        v = spec.get(f)
        if v is None:
            continue
        if not isinstance(v, str) or not MICRO_TIME.fullmatch(v):
            return status(400, "BadRequest",
                          'Lease in version "v1" cannot be handled as a Lease: parsing time %s as '
                          '"2006-01-02T15:04:05.000000Z07:00": cannot parse %s as ".000000"'
                          % (json.dumps(v), json.dumps(v)))
    return None


def validate(lease):
    """422 Invalid, as the API server's Lease validation, or None."""
    spec = lease.get("spec") or {}
    causes = []
    d = spec.get("leaseDurationSeconds")
    if d is not None and (not isinstance(d, int) or d <= 0):
        causes.append(("spec.leaseDurationSeconds", d, "must be greater than 0"))
    n = spec.get("leaseTransitions")
    if n is not None and (not isinstance(n, int) or n < 0):
        causes.append(("spec.leaseTransitions", n, "must be greater than or equal to 0"))
    if not causes:
        return None
    name = (lease.get("metadata") or {}).get("name", "")
    msg = 'Lease.coordination.k8s.io "%s" is invalid: ' % name + ", ".join(
        "%s: Invalid value: %s: %s" % (f, json.dumps(v), m) for f, v, m in causes)
    return status(422, "Invalid", msg, {"name": name, "group": "coordination.k8s.io",
                                        "kind": "Lease",
                                        "causes": [{"reason": "FieldValueInvalid",
                                                    "message": "Invalid value: %s: %s" % (json.dumps(v), m),
                                                    "field": f} for f, v, m in causes]})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lease-standin/1"

    def log_message(self, fmt, *args):  # quiet; tests read /__lease/stats
        pass

    # ---- plumbing
    def reply(self, code, body):
        # Counted before the answer is sent: a client that reads
        # /__lease/stats right after its answer sees its own request.
        st = self.server.state
        with st.lock:
            key = "%s %d" % (self.command, code)
            st.stats[key] = st.stats.get(key, 0) + 1
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def token(self):
        auth = self.headers.get("Authorization") or ""
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def handle_any(self):
        st = self.server.state
        raw = self.body()
        path = self.path.split("?", 1)[0]
        if path.startswith("/__lease/"):
            return self.hook(path, raw)
        tok = self.token()
        resource = "configmaps" if path.startswith("/api/v1/") else "leases"
        with st.lock:
            mode = st.fail_mode
            hit = mode != "off" and resource in st.fail_resources and (st.fail_tokens is None or tok in st.fail_tokens) and \
                (st.fail_methods is None or self.command in st.fail_methods)
            hang = st.hang_seconds
            if hit and st.fail_count is not None:
                st.fail_count -= 1
                if st.fail_count <= 0:
                    st.fail_mode, st.fail_count = "off", None
        if hit and mode.startswith("commit-"):
            code, body = self.dispatch(path, raw, tok)
            with st.lock:
                key = "%s lost" % self.command
                st.stats[key] = st.stats.get(key, 0) + 1
            if mode == "commit-delay":
                time.sleep(hang)
                try:
                    return self.reply(code, body)
                except OSError:
                    return
            if mode == "commit-hang":
                end = time.time() + hang
                while time.time() < end and not st.stopping.is_set():
                    time.sleep(0.05)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if hit and mode == "500":
            return self.reply(*status(500, "InternalError", "Internal error occurred: injected"))
        if hit and mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if hit and mode == "hang":
            end = time.time() + hang
            while time.time() < end and not st.stopping.is_set():
                time.sleep(0.05)
            self.close_connection = True
            return
        return self.reply(*self.dispatch(path, raw, tok))

    def dispatch(self, path, raw, tok):
        """(code, body) for an API request."""
        st = self.server.state
        if tok is None or tok not in st.tokens:
            return status(401, "Unauthorized", "Unauthorized")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if path.startswith("/api/v1/"):
            return self.configmap_api(path, raw, tok, ctype)
        if self.command in ("POST", "PUT") and ctype != "application/json":
            return status(415, "UnsupportedMediaType",
                          'the body of the request was in an unknown format - '
                          'accepted media types include: application/json')
        m_item, m_coll = ITEM.match(path), COLLECTION.match(path)
        with st.lock:
            allowed = st.rbac
        if m_item and allowed is not None and m_item.group(2) not in allowed:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                self.command, self.command.lower())
            ns, name = m_item.groups()
            return status(403, "Forbidden",
                          'leases.coordination.k8s.io "%s" is forbidden: User '
                          '"system:serviceaccount:%s:keyrotd" cannot %s resource "leases" in API '
                          'group "coordination.k8s.io" in the namespace "%s"' % (name, ns, verb, ns),
                          {"name": name, **GROUP_KIND})
        if self.command == "GET" and m_item:
            return self.get(*m_item.groups())
        if self.command == "POST" and m_coll:
            return self.create(m_coll.group(1), raw, tok)
        if self.command == "PUT" and m_item:
            return self.update(*m_item.groups(), raw, tok)
        if m_item or m_coll:
            return status(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource")
        return status(404, "NotFound", "the server could not find the requested resource")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    # ---- the Lease API
    def get(self, ns, name):
        st = self.server.state
        with st.lock:
            lease = st.leases.get((ns, name))
            if lease is None:
                return status(404, "NotFound", 'leases.coordination.k8s.io "%s" not found' % name,
                              {"name": name, **GROUP_KIND})
            return 200, lease

    def parse(self, raw):
        try:
            obj = json.loads(raw)
        except ValueError as e:
            return None, status(400, "BadRequest", "error decoding request body: %s" % e)
        if not isinstance(obj, dict) or obj.get("kind", "Lease") != "Lease" or \
                obj.get("apiVersion", "coordination.k8s.io/v1") != "coordination.k8s.io/v1":
            return None, status(400, "BadRequest", "the body is not a coordination.k8s.io/v1 Lease")
        if not isinstance(obj.get("metadata", {}), dict):
            return None, status(400, "BadRequest", "metadata is not an object")
        bad_time = decode_times(obj)
        if bad_time:
            return None, bad_time
        return obj, None

    def record(self, method, lease, tok):
        spec = lease.get("spec") or {}
        md = lease["metadata"]
        self.server.state.history.append({
            "t": time.time(), "method": method, "lease": "%s/%s" % (md["namespace"], md["name"]), "holder": spec.get("holderIdentity", ""),
            "rv": lease["metadata"]["resourceVersion"],
            "transitions": spec.get("leaseTransitions", 0), "token": tok,
            "renewTime": spec.get("renewTime"), "acquireTime": spec.get("acquireTime")})

    def create(self, ns, raw, tok):
        obj, err = self.parse(raw)
        if err:
            return err
        md = obj.setdefault("metadata", {})
        name = md.get("name")
        if not name:
            return status(422, "Invalid", "Lease.coordination.k8s.io \"\" is invalid: metadata.name: "
                                          "Required value: name or generateName is required")
        if md.get("namespace", ns) != ns:
            return status(400, "BadRequest", "the namespace of the provided object does not match "
                                             "the namespace sent on the request")
        if md.get("resourceVersion"):
            return status(500, "InternalError",
                          "Internal error occurred: resourceVersion should not be set on objects to be created")
        invalid = validate(obj)
        if invalid:
            return invalid
        st = self.server.state
        with st.lock:
            if (ns, name) in st.leases:
                return status(409, "AlreadyExists", 'leases.coordination.k8s.io "%s" already exists' % name,
                              {"name": name, **GROUP_KIND})
            st.rv += 1
            obj["apiVersion"], obj["kind"] = "coordination.k8s.io/v1", "Lease"
            md.update({"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": str(st.rv),
                       "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            obj.setdefault("spec", {})
            st.leases[(ns, name)] = obj
            self.record("POST", obj, tok)
            return 201, obj

    def update(self, ns, name, raw, tok):
        obj, err = self.parse(raw)
        if err:
            return err
        md = obj.setdefault("metadata", {})
        if md.get("name", name) != name:
            return status(400, "BadRequest", "the name of the object (%s) does not match the name on "
                                             "the URL (%s)" % (md.get("name"), name))
        if md.get("namespace", ns) != ns:
            return status(400, "BadRequest", "the namespace of the provided object does not match "
                                             "the namespace sent on the request")
        st = self.server.state
        with st.lock:
            cur = st.leases.get((ns, name))
            if cur is None:
                return status(404, "NotFound", 'leases.coordination.k8s.io "%s" not found' % name,
                              {"name": name, **GROUP_KIND})
            rv = md.get("resourceVersion")
            if not rv:
                return status(422, "Invalid",
                              'Lease.coordination.k8s.io "%s" is invalid: metadata.resourceVersion: '
                              'Invalid value: 0x0: must be specified for an update' % name,
                              {"name": name, "group": "coordination.k8s.io", "kind": "Lease"})
            if rv != cur["metadata"]["resourceVersion"]:
                return status(409, "Conflict",
                              'Operation cannot be fulfilled on leases.coordination.k8s.io "%s": the '
                              'object has been modified; please apply your changes to the latest '
                              'version and try again' % name, {"name": name, **GROUP_KIND})
            invalid = validate(obj)
            if invalid:
                return invalid
            st.rv += 1
            new = dict(obj)
            new["apiVersion"], new["kind"] = "coordination.k8s.io/v1", "Lease"
            # Server-owned metadata comes from the stored object.
            new["metadata"] = {**md, **{k: cur["metadata"][k] for k in ("uid", "creationTimestamp", "namespace")},
                               "name": name, "resourceVersion": str(st.rv)}
            new.setdefault("spec", {})
            st.leases[(ns, name)] = new
            self.record("PUT", new, tok)
            return 200, new

    # ---- the ConfigMap API (crash-recovery state)
    def configmap_api(self, path, raw, tok, ctype):
        st = self.server.state
        m_item, m_coll = CM_ITEM.match(path), CM_COLLECTION.match(path)
        with st.lock:
            rbac_on = st.rbac is not None
            allowed = st.rbac_configmaps
        if m_item and rbac_on and m_item.group(2) not in allowed:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                self.command, self.command.lower())
            ns, name = m_item.groups()
            return status(403, "Forbidden",
                          'configmaps "%s" is forbidden: User "system:serviceaccount:%s:keyrotd" '
                          'cannot %s resource "configmaps" in API group "" in the namespace "%s"'
                          % (name, ns, verb, ns), {"name": name, **CM_KIND})
        if self.command == "GET" and m_item:
            ns, name = m_item.groups()
            with st.lock:
                cm = st.configmaps.get((ns, name))
                if cm is None:
                    return status(404, "NotFound", 'configmaps "%s" not found' % name,
                                  {"name": name, **CM_KIND})
                return 200, json.loads(json.dumps(cm))
        if self.command == "POST" and m_coll:
            if ctype != "application/json":
                return status(415, "UnsupportedMediaType", "unsupported media type " + ctype)
            try:
                obj = json.loads(raw)
            except ValueError as e:
                return status(400, "BadRequest", "error decoding request body: %s" % e)
            ns = m_coll.group(1)
            md = obj.get("metadata") or {}
            name = md.get("name")
            if obj.get("kind") != "ConfigMap" or obj.get("apiVersion") != "v1" or not name:
                return status(400, "BadRequest", "the body is not a v1 ConfigMap with a name")
            bad = self.check_data(name, obj.get("data") or {})
            if bad:
                return bad
            with st.lock:
                if (ns, name) in st.configmaps:
                    return status(409, "AlreadyExists", 'configmaps "%s" already exists' % name,
                                  {"name": name, **CM_KIND})
                st.rv += 1
                md.update({"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": str(st.rv),
                           "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                obj["metadata"] = md
                obj.setdefault("data", {})
                st.configmaps[(ns, name)] = obj
                st.cm_history.append({"t": time.time(), "method": "POST", "configmap": "%s/%s" % (ns, name),
                                      "token": tok, "set": sorted(obj["data"]), "removed": []})
                return 201, json.loads(json.dumps(obj))
        if self.command == "PATCH" and m_item:
            if ctype != "application/merge-patch+json":
                return status(415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media "
                              "types include: application/json-patch+json, "
                              "application/merge-patch+json, application/apply-patch+yaml")
            try:
                patch = json.loads(raw)
            except ValueError as e:
                return status(400, "BadRequest", "error decoding request body: %s" % e)
            ns, name = m_item.groups()
            with st.lock:
                cur = st.configmaps.get((ns, name))
                if cur is None:
                    return status(404, "NotFound", 'configmaps "%s" not found' % name,
                                  {"name": name, **CM_KIND})
                data = dict(cur.get("data") or {})
                pd = patch.get("data") if isinstance(patch, dict) else None
                set_keys, removed = [], []
                if isinstance(pd, dict):
                    for k, v in pd.items():
                        if v is None:
                            data.pop(k, None)
                            removed.append(k)
                        else:
                            data[k] = v
                            set_keys.append(k)
                bad = self.check_data(name, data)
                if bad:
                    return bad
                st.rv += 1
                cur["data"] = data
                cur["metadata"]["resourceVersion"] = str(st.rv)
                st.cm_history.append({"t": time.time(), "method": "PATCH", "configmap": "%s/%s" % (ns, name),
                                      "token": tok, "set": sorted(set_keys), "removed": sorted(removed)})
                return 200, json.loads(json.dumps(cur))
        if m_item or m_coll:
            return status(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource")
        return status(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def check_data(name, data):
        if not isinstance(data, dict):
            return status(400, "BadRequest", "data is not an object")
        size = 0
        for k, v in data.items():
            if not DATA_KEY.match(k) or len(k) > 253:
                return status(422, "Invalid", 'ConfigMap "%s" is invalid: data[%s]: Invalid value: '
                                              'a valid config key must consist of alphanumeric '
                                              "characters, '-', '_' or '.'" % (name, k))
            if not isinstance(v, str):
                return status(400, "BadRequest", "data values must be strings")
            size += len(k) + len(v.encode())
        if size > 1048576:
            return status(422, "Invalid", 'ConfigMap "%s" is invalid: []: Too long: must have at '
                                          "most 1048576 bytes" % name)
        return None

    # ---- hooks
    def hook(self, path, raw):
        st = self.server.state
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.reply(400, {"error": "bad json"})
        with st.lock:
            if path == "/__lease/fail" and self.command == "POST":
                st.fail_mode = str(body.get("mode", "off"))
                st.fail_tokens = set(body["tokens"]) if body.get("tokens") is not None else None
                st.hang_seconds = float(body.get("seconds", 30))
                st.fail_methods = set(body["methods"]) if body.get("methods") is not None else None
                st.fail_count = int(body["count"]) if body.get("count") is not None else None
                st.fail_resources = set(body.get("resources") or ["leases"])
                out = {"mode": st.fail_mode}
            elif path == "/__lease/label" and self.command == "POST":
                key = (body.get("namespace", ""), body.get("name", ""))
                cur = st.leases.get(key)
                if cur is None:
                    out = None
                else:
                    st.rv += 1
                    md = cur["metadata"]
                    md["labels"] = {**(md.get("labels") or {}), **body.get("labels", {})}
                    md["resourceVersion"] = str(st.rv)
                    self.record("LABEL", cur, None)
                    out = {"resourceVersion": md["resourceVersion"]}
            elif path == "/__lease/tokens" and self.command == "POST":
                st.tokens = set(body.get("tokens", []))
                out = {"tokens": len(st.tokens)}
            elif path == "/__lease/history":
                out = list(st.history)
            elif path == "/__lease/stats":
                out = dict(st.stats)
            elif path == "/__lease/configmaps":
                out = {"items": {"%s/%s" % k: v for k, v in st.configmaps.items()},
                       "history": list(st.cm_history)}
            elif path == "/__lease/leases":
                out = {"%s/%s" % k: v for k, v in st.leases.items()}
            else:
                out = None
        if out is None:
            return self.reply(404, {"error": "no such hook"})
        return self.reply(200, out)


def main(argv):
    tokens, tls, port_file, rbac, rbac_cm = [], None, None, None, None
    i = 0
    while i < len(argv):
        if argv[i] == "--token":
            tokens.append(argv[i + 1])
            i += 2
        elif argv[i] == "--tls":
            tls = (argv[i + 1], argv[i + 2])
            i += 3
        elif argv[i] == "--rbac":
            rbac = (rbac or set()) | {argv[i + 1]}
            i += 2
        elif argv[i] == "--rbac-configmap":
            rbac_cm = (rbac_cm or set()) | {argv[i + 1]}
            i += 2
        elif argv[i] == "--port-file":
            port_file = argv[i + 1]
            i += 2
        else:
            print(__doc__, file=sys.stderr)
            return 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(tokens)
    server.state.rbac = rbac
    if rbac_cm is not None:
        server.state.rbac_configmaps = rbac_cm
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    print(port, flush=True)
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(port_file + ".tmp", port_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.state.stopping.set()
    return 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main(sys.argv[1:]))
