#!/usr/bin/python3
"""Black-box tests of apigee-emulator: starts the binary on port 0 and calls it.

usage: emulator_test.py BINARY SEED {http|https|gcloud}
Exit 0 = pass, 1 = fail, 77 = skipped (gcloud missing).
"""
import copy
import http.client
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

BINARY, SEED, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
ORG = "/v1/organizations/acme"
TMP = tempfile.mkdtemp(prefix="emulator-test-")
CERT = KEY = CA = None


def make_certs():
    global CERT, KEY, CA
    CA, cakey = os.path.join(TMP, "ca.pem"), os.path.join(TMP, "ca.key")
    CERT, KEY = os.path.join(TMP, "server.pem"), os.path.join(TMP, "server.key")
    csr, ext = os.path.join(TMP, "server.csr"), os.path.join(TMP, "ext.cnf")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cakey, "-out", CA,
        "-days", "2", "-subj", "/CN=emulator-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", KEY, "-out", csr,
        "-subj", "/CN=127.0.0.1")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", CA, "-CAkey", cakey, "-CAcreateserial",
        "-out", CERT, "-days", "2", "-extfile", ext)


class Emu:
    def __init__(self, *extra, seed=SEED):
        self.port_file = tempfile.mktemp(dir=TMP)
        args = [BINARY, "--port", "0", "--port-file", self.port_file]
        if seed:
            args += ["--seed", seed]
        if MODE == "https":
            args += ["--cert", CERT, "--key", KEY]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise AssertionError("emulator exited: " + self.proc.stderr.read())
            if time.time() > deadline:
                raise AssertionError("emulator did not start")
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())
        line = self.proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:%d" % self.port), line
        self.token = None
        if "--token" in extra:
            self.token = extra[list(extra).index("--token") + 1]

    def conn(self):
        if MODE == "https":
            ctx = ssl.create_default_context(cafile=CA)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def call(self, method, path, body=None, headers=None, raw=None, auth=True):
        h = dict(headers or {})
        if auth and self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = self.conn()
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        js = None
        if text:
            try:
                js = json.loads(text)
            except ValueError:
                js = text
        return r.status, js, dict(r.getheaders())

    def ok(self, method, path, body=None, status=200, **kw):
        s, js, _ = self.call(method, path, body, **kw)
        assert s == status, "%s %s -> %d %s" % (method, path, s, js)
        return js

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(10)
            assert rc == 0, "exit code %d after SIGTERM" % rc


def app_path(dev, app):
    return "%s/developers/%s/apps/%s" % (ORG, urllib.parse.quote(dev, safe=""), app)


def key_path(dev, app, key):
    return app_path(dev, app) + "/keys/" + urllib.parse.quote(key, safe="")


def assert_error(status, js, code, name):
    assert status == code, (status, js)
    assert set(js.keys()) == {"error"}, js
    e = js["error"]
    assert e["code"] == code and e["status"] == name and isinstance(e["message"], str), js


def attrs(n, prefix="a"):
    return [{"name": "%s%d" % (prefix, i), "value": "v%d" % i} for i in range(n)]


# ---------------------------------------------------------------- tests

def test_reads_and_int64(e):
    app = e.ok("GET", app_path("dev1@example.com", "shop"))
    assert app["name"] == "shop" and app["status"] == "approved"
    for f in ("createdAt", "lastModifiedAt"):
        assert isinstance(app[f], str) and int(app[f]) > 0
    creds = {c["consumerKey"]: c for c in app["credentials"]}
    c = creds["shopKey_1"]
    assert isinstance(c["issuedAt"], str) and isinstance(c["expiresAt"], str)
    now = time.time() * 1000
    # Relative seed times: issued 30 days ago, expires in 5 minutes.
    assert abs(int(c["expiresAt"]) - (now + 300000)) < 60000, c
    assert abs(int(c["issuedAt"]) - (now - 30 * 86400000)) < 60000, c
    assert c["apiProducts"] == [{"apiproduct": "payments", "status": "approved"},
                                {"apiproduct": "admin", "status": "pending"}]
    assert creds["shopKey_old"]["status"] == "revoked"
    assert e.ok("GET", key_path("dev1@example.com", "shop", "shopKey_1"))["consumerSecret"] == "shopSecret_1"
    old = e.ok("GET", app_path("dev1@example.com", "old-app"))
    assert old["credentials"][0]["expiresAt"] == "-1" and old["credentials"][0]["issuedAt"] == "1600000000000"
    # Email with '@' percent-encoded in the path, and case-insensitive.
    e.ok("GET", ORG + "/developers/DEV1%40example.com/apps/shop")
    dev = e.ok("GET", ORG + "/developers/dev1@example.com")
    assert dev["status"] == "active" and dev["developerId"] and "shop" in dev["apps"]
    assert e.ok("GET", ORG + "/developers/gone@example.com")["status"] == "inactive"
    apps = e.ok("GET", ORG + "/developers/dev1@example.com/apps?expand=true")["app"]
    assert sorted(a["name"] for a in apps) == ["old-app", "shop"]
    names = e.ok("GET", ORG + "/developers/dev1@example.com/apps")["app"]
    assert all("appId" in a for a in names)
    prods = e.ok("GET", ORG + "/apiproducts?expand=true")["apiProduct"]
    assert {p["name"]: p["approvalType"] for p in prods}["admin"] == "manual"
    assert e.ok("GET", ORG + "/apiproducts/admin")["approvalType"] == "manual"
    s, js, _ = e.call("GET", ORG + "/apiproducts/nope")
    assert_error(s, js, 404, "NOT_FOUND")
    by_id = e.ok("GET", ORG + "/apps/" + app["appId"])
    assert by_id["developerEmail"] == "dev1@example.com" and by_id["name"] == "shop"


def test_generate_trap(e):
    p = app_path("dev1@example.com", "shop")
    before = e.ok("GET", p)
    t0 = time.time() * 1000
    out = e.ok("POST", p, {"name": "shop", "apiProducts": ["payments", "admin"], "scopes": ["read", "write"],
                            "keyExpiresIn": "3600000"})
    assert len(out["credentials"]) == len(before["credentials"]) + 1
    old_keys = {c["consumerKey"] for c in before["credentials"]}
    new = [c for c in out["credentials"] if c["consumerKey"] not in old_keys][0]
    assert new["status"] == "approved" and "attributes" not in new
    assert new["scopes"] == ["read", "write"]
    assert new["apiProducts"] == [{"apiproduct": "payments", "status": "approved"},
                                  {"apiproduct": "admin", "status": "pending"}]
    assert abs(int(new["issuedAt"]) - t0) < 10000
    assert int(new["expiresAt"]) - int(new["issuedAt"]) == 3600000
    # The trap: attributes and callbackUrl were not in the body, so they are gone.
    after = e.ok("GET", p)
    assert "attributes" not in after and "callbackUrl" not in after, after
    assert after["scopes"] == ["read"] and after["appFamily"] == "default"
    # Sending them back keeps them; keyExpiresIn as a number; absent expiry = never.
    keep = [{"name": "DisplayName", "value": "Shop"}, {"name": "Notes", "value": "keep me"}]
    out = e.ok("POST", p, {"name": "shop", "apiProducts": ["payments"], "attributes": keep,
                            "callbackUrl": "https://shop.example.com/cb"})
    assert out["attributes"] == keep and out["callbackUrl"] == "https://shop.example.com/cb"
    assert out["credentials"][-1]["expiresAt"] == "-1"
    out = e.ok("POST", p, {"apiProducts": ["reports"], "keyExpiresIn": 60000, "attributes": keep})
    c = out["credentials"][-1]
    assert int(c["expiresAt"]) - int(c["issuedAt"]) == 60000
    s, js, _ = e.call("POST", p, {"apiProducts": ["no-such-product"]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")


def test_create_calls(e):
    d = e.ok("POST", ORG + "/developers", {"email": "new@example.com", "firstName": "N", "lastName": "D",
                                           "userName": "nd", "attributes": attrs(2)})
    assert d["status"] == "active" and d["developerId"] and isinstance(d["createdAt"], str)
    s, js, _ = e.call("POST", ORG + "/developers", {"email": "NEW@example.com", "firstName": "N"})
    assert_error(s, js, 409, "ALREADY_EXISTS")
    for bad in ["not-an-email", "a@b", "@x.com", "a b@x.com", ""]:
        s, js, _ = e.call("POST", ORG + "/developers", {"email": bad})
        assert_error(s, js, 400, "INVALID_ARGUMENT")
    p = e.ok("POST", ORG + "/apiproducts", {"name": "gold", "displayName": "Gold", "approvalType": "manual",
                                            "attributes": attrs(1)})
    assert p["approvalType"] == "manual"
    s, js, _ = e.call("POST", ORG + "/apiproducts", {"name": "gold"})
    assert_error(s, js, 409, "ALREADY_EXISTS")
    app = e.ok("POST", ORG + "/developers/new@example.com/apps",
               {"name": "fresh", "apiProducts": ["payments", "gold"], "attributes": attrs(3),
                "callbackUrl": "https://cb.example", "scopes": ["s1"], "keyExpiresIn": "86400000"})
    assert app["status"] == "approved" and len(app["credentials"]) == 1
    c = app["credentials"][0]
    assert c["apiProducts"] == [{"apiproduct": "payments", "status": "approved"},
                                {"apiproduct": "gold", "status": "pending"}]
    assert int(c["expiresAt"]) - int(c["issuedAt"]) == 86400000
    assert app["keyExpiresIn"] == "86400000"
    s, js, _ = e.call("POST", ORG + "/developers/new@example.com/apps", {"name": "fresh"})
    assert_error(s, js, 409, "ALREADY_EXISTS")
    s, js, _ = e.call("POST", ORG + "/developers/nobody@example.com/apps", {"name": "x"})
    assert_error(s, js, 404, "NOT_FOUND")
    devs = e.ok("GET", ORG + "/developers?expand=true")["developer"]
    assert "new@example.com" in [x["email"] for x in devs] and all("status" in x for x in devs)
    page = e.ok("GET", ORG + "/developers?count=2")["developer"]
    assert [x["email"] for x in page] == ["dev1@example.com", "dev2@example.com"]
    page = e.ok("GET", ORG + "/developers?expand=true&count=2&startKey=gone%40example.com")["developer"]
    assert [x["email"] for x in page] == ["gone@example.com", "new@example.com"]


def test_custom_keys(e):
    base = app_path("dev2@example.com", "solo")
    k = e.ok("POST", base + "/keys", {"consumerKey": "custom_Key-1", "consumerSecret": "sec_1",
                                      "attributes": attrs(2), "scopes": ["x"], "expiresInSeconds": "600"})
    assert k["status"] == "approved" and "apiProducts" not in k and k["attributes"] == attrs(2)
    assert int(k["expiresAt"]) - int(k["issuedAt"]) == 600000
    k2 = e.ok("POST", base + "/keys/create", {"consumerKey": "custom_Key-2", "consumerSecret": "sec_2",
                                              "expiresInSeconds": -1, "apiProducts": ["reports"]})
    assert k2["expiresAt"] == "-1" and "apiProducts" not in k2
    k3 = e.ok("POST", base + "/keys", {"consumerKey": "custom_Key-3", "consumerSecret": "sec_3"})
    assert k3["expiresAt"] == "-1"
    # Duplicate anywhere in the org; the message never echoes the key.
    for path in (base + "/keys", app_path("dev1@example.com", "shop") + "/keys/create"):
        s, js, _ = e.call("POST", path, {"consumerKey": "custom_Key-1", "consumerSecret": "z"})
        assert_error(s, js, 409, "ALREADY_EXISTS")
        assert "custom_Key-1" not in json.dumps(js)
    for bad in ["has space", "slash/x", "dot.key", "ümlaut", "x" * 2049]:
        s, js, _ = e.call("POST", base + "/keys", {"consumerKey": bad, "consumerSecret": "ok"})
        assert_error(s, js, 400, "INVALID_ARGUMENT")
        assert bad not in json.dumps(js)
    s, js, _ = e.call("POST", base + "/keys", {"consumerKey": "okKey_9", "consumerSecret": "bad secret!"})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    assert "bad secret" not in json.dumps(js)
    e.ok("POST", base + "/keys", {"consumerKey": "k" * 2048, "consumerSecret": "s" * 2048})
    # Update key: products added (manual -> pending), attributes replaced only when given.
    kp = key_path("dev2@example.com", "solo", "custom_Key-1")
    u = e.ok("POST", kp, {"apiProducts": ["payments", "admin"], "attributes": [{"name": "n", "value": "v"}]})
    assert u["apiProducts"] == [{"apiproduct": "payments", "status": "approved"},
                                {"apiproduct": "admin", "status": "pending"}]
    assert u["attributes"] == [{"name": "n", "value": "v"}]
    u = e.ok("POST", kp, {"apiProducts": ["reports", "payments"]})
    assert [p["apiproduct"] for p in u["apiProducts"]] == ["payments", "admin", "reports"]
    assert u["attributes"] == [{"name": "n", "value": "v"}]
    # Product on key: approve/revoke, 204.
    for action, want in (("approve", "approved"), ("revoke", "revoked")):
        s, js, _ = e.call("POST", kp + "/apiproducts/admin?action=" + action,
                          headers={"Content-Type": "application/octet-stream"})
        assert s == 204 and js is None, (s, js)
        st = {p["apiproduct"]: p["status"] for p in e.ok("GET", kp)["apiProducts"]}
        assert st["admin"] == want
    s, js, _ = e.call("POST", kp + "/apiproducts/nope?action=approve")
    assert_error(s, js, 404, "NOT_FOUND")
    s, js, _ = e.call("POST", kp + "/apiproducts/admin?action=explode")
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    out = e.ok("DELETE", kp + "/apiproducts/reports")
    assert "reports" not in [p["apiproduct"] for p in out["apiProducts"]]
    # Key approve/revoke.
    s, _, _ = e.call("POST", kp + "?action=revoke", headers={"Content-Type": "application/octet-stream"})
    assert s == 204 and e.ok("GET", kp)["status"] == "revoked"
    s, _, _ = e.call("POST", kp + "?action=approve", headers={"Content-Type": "application/octet-stream"})
    assert s == 204 and e.ok("GET", kp)["status"] == "approved"
    # Scopes replaced.
    assert e.ok("PUT", kp, {"scopes": ["a", "b"]})["scopes"] == ["a", "b"]
    # Delete returns the key; then it is gone.
    gone = e.ok("DELETE", kp)
    assert gone["consumerKey"] == "custom_Key-1"
    s, js, _ = e.call("GET", kp)
    assert_error(s, js, 404, "NOT_FOUND")
    assert "custom_Key-1" not in json.dumps(js)
    # The key can be re-created once deleted.
    e.ok("POST", base + "/keys", {"consumerKey": "custom_Key-1", "consumerSecret": "again"})


def test_limits(e):
    s, js, _ = e.call("POST", ORG + "/developers/dev2@example.com/apps", {"name": "a19", "attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    e.ok("POST", ORG + "/developers/dev2@example.com/apps", {"name": "a18", "attributes": attrs(18)})
    p = app_path("dev2@example.com", "a18")
    s, js, _ = e.call("POST", p, {"attributes": attrs(19)})  # generate
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("PUT", p, {"attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    assert len(e.ok("GET", p)["attributes"]) == 18  # a failed write changed nothing
    key = e.ok("GET", p)["credentials"][0]["consumerKey"]
    kp = key_path("dev2@example.com", "a18", key)
    s, js, _ = e.call("POST", kp, {"attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    e.ok("POST", kp, {"attributes": attrs(18)})
    s, js, _ = e.call("POST", p + "/keys", {"consumerKey": "lim_k", "consumerSecret": "s", "attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers", {"email": "lim@example.com", "attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/apiproducts", {"name": "lim", "attributes": attrs(19)})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", kp, {"attributes": [{"name": "n" * 1025, "value": "v"}]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", kp, {"attributes": [{"name": "n", "value": "v" * 2049}]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    e.ok("POST", kp, {"attributes": [{"name": "n" * 1024, "value": "v" * 2048}]})
    # 50 products per key.
    for i in range(50):
        e.ok("POST", ORG + "/apiproducts", {"name": "lp%02d" % i})
    e.ok("POST", p + "/keys", {"consumerKey": "fifty", "consumerSecret": "s"})
    fk = key_path("dev2@example.com", "a18", "fifty")
    e.ok("POST", fk, {"apiProducts": ["lp%02d" % i for i in range(50)]})
    s, js, _ = e.call("POST", fk, {"apiProducts": ["payments"]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")


def test_paging_and_filters(e):
    seen, token, pages = [], None, 0
    while True:
        q = "?expand=true&includeCred=true&pageSize=10" + ("&pageToken=" + urllib.parse.quote(token) if token else "")
        page = e.ok("GET", ORG + "/apps" + q)
        pages += 1
        assert page["totalSize"] == 24, page["totalSize"]  # 25 apps, one revoked
        seen += page["app"]
        token = page.get("nextPageToken")
        if not token:
            break
    assert pages == 3 and len(seen) == 24 and len({a["appId"] for a in seen}) == 24
    assert "old-app" not in [a["name"] for a in seen]
    for a in seen:
        assert a["developerEmail"] and a["developerId"]
    shop = [a for a in seen if a["name"] == "shop"][0]
    assert [c["consumerKey"] for c in shop["credentials"]] == ["shopKey_1"]  # revoked key left out
    rev = e.ok("GET", ORG + "/apps?expand=true&keyStatus=revoked")
    shop = [a for a in rev["app"] if a["name"] == "shop"][0]
    assert [c["consumerKey"] for c in shop["credentials"]] == ["shopKey_old"]
    solo = [a for a in rev["app"] if a["name"] == "solo"][0]
    assert "credentials" not in solo  # listed, no key of that status
    revoked_apps = e.ok("GET", ORG + "/apps?expand=true&status=revoked")
    assert [a["name"] for a in revoked_apps["app"]] == ["old-app"] and revoked_apps["totalSize"] == 1
    one = e.ok("GET", ORG + "/apps?expand=true&pageSize=1000")
    assert "nextPageToken" not in one or one["nextPageToken"] == ""
    ids = e.ok("GET", ORG + "/apps")
    assert all(set(a.keys()) == {"appId"} for a in ids["app"])
    s, js, _ = e.call("GET", ORG + "/apps?pageToken=zz")
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("GET", ORG + "/apps?status=weird")
    assert_error(s, js, 400, "INVALID_ARGUMENT")


def test_update_and_app_status(e):
    p = app_path("dev1@example.com", "shop")
    before = e.ok("GET", p)
    out = e.ok("PUT", p, {"name": "shop", "attributes": [{"name": "tier", "value": "silver"}],
                          "callbackUrl": "https://new.example/cb", "appFamily": "fam2", "scopes": ["zzz"]})
    assert out["attributes"] == [{"name": "tier", "value": "silver"}]
    assert out["callbackUrl"] == "https://new.example/cb" and out["appFamily"] == "fam2"
    assert out["scopes"] == before["scopes"] and out["credentials"] == before["credentials"]
    for action, want in (("revoke", "revoked"), ("approve", "approved")):
        s, js, _ = e.call("POST", p + "?action=" + action, headers={"Content-Type": "application/octet-stream"})
        assert s == 204 and js is None
        assert e.ok("GET", p)["status"] == want
    s, js, _ = e.call("POST", p + "?action=nope", headers={"Content-Type": "application/octet-stream"})
    assert_error(s, js, 400, "INVALID_ARGUMENT")


def test_bad_input(e):
    alive = lambda: e.ok("GET", ORG + "/developers")
    s, js, _ = e.call("POST", ORG + "/developers", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers", raw=b"[1,2]", headers={"Content-Type": "application/json"})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers", {"email": 42})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers/dev1@example.com/apps", {"name": "x", "attributes": "nope"})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers/dev1@example.com/apps", {"name": "x", "apiProducts": [1]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    alive()
    for path in ("/v2/foo", "/v1/organizations/acme/nope", ORG + "/developers/a/b/c/d/e/f/g/h/i", "/", "/v1"):
        s, js, _ = e.call("GET", path)
        assert_error(s, js, 404, "NOT_FOUND")
    s, js, _ = e.call("GET", "/v1/organizations/nosuchorg/apps")
    assert_error(s, js, 404, "NOT_FOUND")
    s, js, h = e.call("PATCH", ORG + "/developers")
    assert_error(s, js, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in h.get("Allow", "")
    s, js, _ = e.call("DELETE", ORG + "/apps")
    assert_error(s, js, 405, "METHOD_NOT_ALLOWED")
    s, js, _ = e.call("GET", ORG + "/developers/%ff%fe/apps/%c3")  # not UTF-8
    assert_error(s, js, 404, "NOT_FOUND")
    s, js, _ = e.call("GET", ORG + "/developers/%zz")
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    s, js, _ = e.call("POST", ORG + "/developers", raw=b"x" * (1024 * 1024 + 10),
                      headers={"Content-Type": "application/json"})
    assert s == 413 and js["error"]["code"] == 413, (s, js)
    alive()
    # Garbage that is not HTTP at all, and a connection that hangs up mid-request.
    if MODE == "http":
        sock = socket.create_connection(("127.0.0.1", e.port), timeout=5)
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        data = sock.recv(4096)
        sock.close()
        assert data.startswith(b"HTTP/1.1 400"), data
        sock = socket.create_connection(("127.0.0.1", e.port), timeout=5)
        sock.sendall(b"POST /v1/organizations/acme/developers HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        sock.close()
    alive()


def test_token():
    e = Emu("--token", "s3cret")
    try:
        s, js, _ = e.call("GET", ORG + "/developers", auth=False)
        assert_error(s, js, 401, "UNAUTHENTICATED")
        s, js, _ = e.call("GET", ORG + "/developers", headers={"Authorization": "Bearer wrong"})
        assert_error(s, js, 401, "UNAUTHENTICATED")
        assert "s3cret" not in json.dumps(js)
        e.ok("GET", ORG + "/developers")
        e.ok("GET", "/__emulator/state", auth=False)  # hooks need no token
    finally:
        e.stop()


def test_faults(e):
    p = app_path("dev2@example.com", "solo")
    e.ok("POST", "/__emulator/faults", {"p503": 1})
    s, js, h = e.call("GET", p)
    assert_error(s, js, 503, "UNAVAILABLE")
    e.ok("POST", "/__emulator/faults", {"p503": 0, "p429": 1, "retryAfterSeconds": 7})
    s, js, h = e.call("GET", p)
    assert_error(s, js, 429, "RESOURCE_EXHAUSTED")
    assert h.get("Retry-After") == "7"
    # Deterministic with a seed: the same sequence twice.
    def pattern():
        e.ok("POST", "/__emulator/faults", {"p429": 0.5, "seed": 1234})
        return [e.call("GET", p)[0] for _ in range(20)]
    a, b = pattern(), pattern()
    assert a == b and 429 in a and 200 in a, a
    e.ok("POST", "/__emulator/faults", {"p429": 0, "latencyMs": 300})
    t = time.time()
    e.ok("GET", p)
    assert time.time() - t >= 0.29
    e.ok("POST", "/__emulator/faults", {"latencyMs": 0, "pDropAfterWrite": 1})
    n = len(e.ok("GET", p)["credentials"])
    try:
        s, js, _ = e.call("POST", p, {"apiProducts": ["reports"]})
        raise AssertionError("expected a dropped connection, got %d" % s)
    except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError, http.client.BadStatusLine):
        pass
    assert len(e.ok("GET", p)["credentials"]) == n + 1  # the write took effect
    f = e.ok("POST", "/__emulator/faults", {"pDropAfterWrite": 0})
    # The fields of this test (other faults, e.g. metadataDown and hostile, have
    # tests of their own).
    want = {"latencyMs": 0, "p503": 0, "p429": 0, "retryAfterSeconds": 7, "pDropAfterWrite": 0,
            "seed": 1234}
    assert {k: f.get(k) for k in want} == want, f
    assert not f.get("metadataDown") and not f.get("hostile"), f
    assert e.ok("GET", "/__emulator/faults") == f


def test_hooks(e):
    e.ok("POST", "/__emulator/reset-counters", status=204)
    for _ in range(3):
        e.ok("GET", ORG + "/apps?expand=true")
    kp = key_path("dev2@example.com", "solo", "soloKey")
    e.call("POST", kp + "?action=approve")
    req = e.ok("GET", "/__emulator/requests")["byRoute"]
    assert req["GET /v1/organizations/{org}/apps"] == 3, req
    assert req["POST /v1/organizations/{org}/developers/{developer}/apps/{app}/keys/{key}?action"] == 1, req
    rate = e.ok("GET", "/__emulator/rate")["rate"]
    assert sum(r["count"] for r in rate) == 4 and all({"second", "count"} <= set(r) for r in rate)
    state = e.ok("GET", "/__emulator/state")
    orgs = {o["organization"]: o for o in state["organizations"]}
    assert set(orgs) == {"acme", "other"}
    keys = [c["consumerKey"] for a in orgs["acme"]["apps"] for c in a["credentials"]]
    assert "soloKey" in keys
    # Seed hook: replaces an org of the same name, adds new ones; the state round-trips.
    e.ok("POST", "/__emulator/seed", {"organization": "third", "developers": [{"email": "t@t.example"}]})
    e.ok("GET", "/v1/organizations/third/developers/t@t.example")
    e.ok("GET", "/v1/organizations/other/developers/x@other.example")
    s, js, _ = e.call("POST", "/__emulator/seed", {"organization": "bad", "apps": [{"developerEmail": "no@x.y", "name": "a"}]})
    assert_error(s, js, 400, "INVALID_ARGUMENT")
    dump = copy.deepcopy(orgs["acme"])
    e.ok("POST", "/__emulator/seed", dump)
    again = {o["organization"]: o for o in e.ok("GET", "/__emulator/state")["organizations"]}["acme"]
    assert again == dump
    s, js, _ = e.call("GET", "/__emulator/nope")
    assert_error(s, js, 404, "NOT_FOUND")


def test_availability_and_clock(e):
    e.ok("DELETE", "/__emulator/availability", status=204)
    kp = key_path("dev2@example.com", "solo", "soloKey")
    e.ok("PUT", kp, {"scopes": []})
    s, _, _ = e.call("POST", kp + "?action=revoke", headers={"Content-Type": "application/octet-stream"})
    assert s == 204
    av = e.ok("GET", "/__emulator/availability")
    recs = [r for r in av["records"] if r["app"] == "solo"]
    assert [r["usableKeys"] for r in recs] == [1, 0], recs
    assert recs[1]["developer"] == "dev2@example.com" and recs[1]["org"] == "acme"
    assert recs[1]["request"].endswith("/keys/{key}?action")
    lost = av["everLostLast"]
    assert [(r["app"], r["usableKeys"]) for r in lost] == [("solo", 0)], lost
    # Clock: shopKey_1 expires in 5 minutes; advance 10 and it no longer counts.
    e.ok("POST", ORG + "/developers/dev1@example.com/apps/shop/keys/shopKey_1", {"scopes": ["read"]})
    before = e.ok("GET", "/__emulator/availability")["records"][-1]
    assert before["usableKeys"] == 1, before
    clock = e.ok("POST", "/__emulator/clock", {"advanceMs": 600000})
    assert clock["offsetMs"] == 600000
    e.ok("POST", ORG + "/developers/dev1@example.com/apps/shop/keys/shopKey_1", {"scopes": ["read"]})
    after = e.ok("GET", "/__emulator/availability")["records"][-1]
    assert after["usableKeys"] == 0, after
    # New keys are issued on the emulator clock.
    app = e.ok("POST", ORG + "/developers/dev1@example.com/apps/shop", {"apiProducts": ["payments"]})
    assert int(app["credentials"][-1]["issuedAt"]) - time.time() * 1000 > 590000
    assert e.ok("GET", "/__emulator/availability")["records"][-1]["usableKeys"] == 1
    assert e.ok("GET", "/__emulator/clock")["offsetMs"] == 600000


def test_multi_org(e):
    e.ok("GET", "/v1/organizations/other/developers/x@other.example")
    s, js, _ = e.call("GET", "/v1/organizations/other/developers/dev1@example.com")
    assert_error(s, js, 404, "NOT_FOUND")
    e.ok("GET", "/v1/organizations/acme")


def test_teams():
    """Team (AppGroup) apps: the AppGroup list and reads, and their keys (docs/apigee-api.md)."""
    seed = {"organization": "acme",
            "apiProducts": [{"name": "payments"}, {"name": "admin", "approvalType": "manual"}],
            "developers": [{"email": "dev1@example.com"}],
            "appGroups": [{"name": "partners", "status": "active",
                           "attributes": [{"name": "tier", "value": "gold"}]},
                          {"name": "retired", "status": "inactive"}],
            "apps": [{"appGroup": "partners", "name": "portal", "keyExpiresIn": "90d",
                      "credentials": [{"consumerKey": "teamOldKey_1", "status": "approved",
                                       "apiProducts": [{"apiproduct": "payments", "status": "approved"}]}]},
                     {"appGroup": "implicit", "name": "other"},
                     {"developerEmail": "dev1@example.com", "name": "shop"}]}
    path = os.path.join(TMP, "teams-seed.json")
    with open(path, "w") as f:
        json.dump(seed, f)
    for strict in (False, True):
        e = Emu(*(["--strict"] if strict else []), seed=path)
        try:
            groups = e.ok("GET", ORG + "/appgroups")["appGroups"]
            assert [(g["name"], g["status"]) for g in groups] == [
                ("implicit", "active"), ("partners", "active"), ("retired", "inactive")], groups
            assert {"name": "tier", "value": "gold"} in groups[1]["attributes"]
            page = e.ok("GET", ORG + "/appgroups?pageSize=2")
            assert len(page["appGroups"]) == 2 and page["nextPageToken"], page
            rest = e.ok("GET", ORG + "/appgroups?pageSize=2&pageToken=" + page["nextPageToken"])
            assert [g["name"] for g in rest["appGroups"]] == ["retired"] and "nextPageToken" not in rest
            assert e.ok("GET", ORG + "/appgroups/partners")["status"] == "active"
            s, js, _ = e.call("GET", ORG + "/appgroups/nobody")
            assert_error(s, js, 404, "NOT_FOUND")
            apps = e.ok("GET", ORG + "/appgroups/partners/apps")["appGroupApps"]
            assert [a["name"] for a in apps] == ["portal"], apps
            assert apps[0]["appGroup"] == "partners" and "developerEmail" not in apps[0]
            assert apps[0]["keyExpiresIn"] == str(90 * 86400), apps[0]  # seconds on a team app
            listed = {a["name"]: a for a in e.ok("GET", ORG + "/apps?expand=true")["app"]}
            assert listed["portal"]["appGroup"] == "partners" and "developerEmail" not in listed["portal"]
            base = ORG + "/appgroups/partners/apps/portal"
            k = e.ok("POST", base + "/keys", {"consumerKey": "teamNewKey_1", "consumerSecret": "s_1",
                                              "expiresInSeconds": "600",
                                              "attributes": [{"name": "m", "value": "pending:x"}]})
            assert k["status"] == "approved" and "apiProducts" not in k
            kp = base + "/keys/teamNewKey_1"
            assert e.ok("GET", kp)["attributes"] == [{"name": "m", "value": "pending:x"}]
            u = e.ok("POST", kp, {"apiProducts": ["payments", "admin"],
                                  "appGroupAppKey": {"attributes": [{"name": "m", "value": "x"}],
                                                     "scopes": ["read"]}})
            assert u["apiProducts"] == [{"apiproduct": "payments", "status": "approved"},
                                        {"apiproduct": "admin", "status": "pending"}], u
            assert u["attributes"] == [{"name": "m", "value": "x"}] and u["scopes"] == ["read"]
            # No attributes sent: kept (lenient) or wiped (strict), as for developer keys.
            u = e.ok("POST", kp, {"apiProducts": ["payments"]})
            assert u.get("attributes", []) == ([] if strict else [{"name": "m", "value": "x"}]), u
            # Fields the message does not define, ?action=, action with anything else: 400.
            for body in ({"attributes": []}, {"appGroupAppKey": {"colour": "red"}},
                         {"action": "revoke", "apiProducts": []}, {"action": "explode"}):
                s, js, _ = e.call("POST", kp, body)
                assert_error(s, js, 400, "INVALID_ARGUMENT")
            s, js, _ = e.call("POST", kp + "?action=revoke", headers={"Content-Type": "application/octet-stream"})
            assert_error(s, js, 400, "INVALID_ARGUMENT")
            assert e.ok("POST", kp, {"action": "revoke"})["status"] == "revoked"
            assert e.ok("GET", kp)["status"] == "revoked"
            assert e.ok("POST", kp, {"action": "approve"})["status"] == "approved"
            s, _, _ = e.call("POST", kp + "/apiproducts/admin?action=approve",
                             headers={"Content-Type": "application/octet-stream"})
            assert s == 204
            assert {p["apiproduct"]: p["status"] for p in e.ok("GET", kp)["apiProducts"]}["admin"] == "approved"
            # The same key under another AppGroup or a developer: 404.
            for other in (ORG + "/appgroups/retired/apps/portal/keys/teamNewKey_1",
                          app_path("dev1@example.com", "portal") + "/keys/teamNewKey_1"):
                s, js, _ = e.call("GET", other)
                assert_error(s, js, 404, "NOT_FOUND")
            assert e.ok("DELETE", kp)["consumerKey"] == "teamNewKey_1"
            s, js, _ = e.call("GET", kp)
            assert_error(s, js, 404, "NOT_FOUND")
            state = e.ok("GET", "/__emulator/state")["organizations"][0]
            assert [g["name"] for g in state["appGroups"]] == ["implicit", "partners", "retired"]
        finally:
            e.stop()


def test_profiles():
    """The lenient and the strict reading of each ambiguity (docs/apigee-fidelity.md)."""
    for strict in (False, True):
        e = Emu(*(["--strict"] if strict else []))
        try:
            readings = e.ok("GET", "/__emulator/readings")
            assert set(readings) == {"create-scopes", "update-wipes-attributes",
                                     "developer-list-emails", "page-100", "put-generates",
                                     "keystatus-whole-apps"}, readings
            assert all(v == strict for v in readings.values()), readings
            shop = app_path("dev1@example.com", "shop")
            # create-scopes
            s, js, _ = e.call("POST", shop + "/keys", {"consumerKey": "scoped_1", "scopes": ["read"]})
            if strict:
                assert_error(s, js, 400, "INVALID_ARGUMENT")
            else:
                assert s == 200 and js["scopes"] == ["read"], (s, js)
            # update-wipes-attributes, and the marker-loss record
            marker = [{"name": "keyrotd_replaces", "value": "pending:abc"}]
            e.ok("POST", shop + "/keys", {"consumerKey": "marked_1", "attributes": marker})
            k = e.ok("POST", key_path("dev1@example.com", "shop", "marked_1"),
                     {"apiProducts": ["payments"]})
            assert k.get("attributes", []) == ([] if strict else marker), k
            lost = e.ok("GET", "/__emulator/invariants")["markersLost"]
            assert len(lost) == (1 if strict else 0), lost
            if strict:
                assert lost[0]["app"] == "shop" and lost[0]["key"] == hashlib.sha256(
                    b"marked_1").hexdigest()[:16], lost
            k = e.ok("POST", key_path("dev1@example.com", "shop", "marked_1"),
                     {"apiProducts": [], "attributes": marker})
            assert k["attributes"] == marker
            k = e.ok("PUT", key_path("dev1@example.com", "shop", "marked_1"), {"scopes": ["s"]})
            assert k["scopes"] == ["s"] and k.get("attributes", []) == ([] if strict else marker), k
            e.ok("DELETE", "/__emulator/invariants", status=204)
            k = e.ok("PUT", key_path("dev1@example.com", "shop", "marked_1"),
                     {"scopes": ["t"], "attributes": marker})
            assert k["attributes"] == marker and e.ok("GET", "/__emulator/invariants")["markersLost"] == []
            # developer-list-emails: paged entries without status
            paged = e.ok("GET", ORG + "/developers?expand=true&count=10")["developer"]
            assert all(("status" in d) != strict for d in paged), paged
            assert all("status" in d for d in e.ok("GET", ORG + "/developers?expand=true")["developer"])
            # keystatus-whole-apps
            rev = e.ok("GET", ORG + "/apps?expand=true&keyStatus=revoked")
            names = [a["name"] for a in rev["app"]]
            assert ("solo" in names) != strict, names
            shop_rev = [a for a in rev["app"] if a["name"] == "shop"][0]
            keys = sorted(c["consumerKey"] for c in shop_rev["credentials"])
            assert (len(keys) > 1) == strict and "shopKey_old" in keys, keys
            assert rev["totalSize"] == len(rev["app"]), rev["totalSize"]
            # put-generates
            before = len(e.ok("GET", shop)["credentials"])
            e.ok("PUT", shop, {"name": "shop", "apiProducts": ["payments"], "attributes": []})
            after = len(e.ok("GET", shop)["credentials"])
            assert after == before + (1 if strict else 0), (before, after)
            # page-100, and a team app in the org list
            # (With keystatus-whole-apps an app without an approved key is not listed.)
            apps = [{"developerEmail": "d@big.example.com", "name": "a%03d" % i,
                     "credentials": [{}]} for i in range(150)]
            apps.append({"appGroup": "team-a", "name": "team-app", "credentials": [{}]})
            e.ok("POST", "/__emulator/seed", {"organization": "big", "developers": [
                {"email": "d@big.example.com"}], "apps": apps})
            page = e.ok("GET", "/v1/organizations/big/apps?expand=true&pageSize=1000")
            assert len(page["app"]) == (100 if strict else 151), len(page["app"])
            assert bool(page.get("nextPageToken")) == strict and page["totalSize"] == 151
            team = [a for a in page["app"] if a["name"] == "team-app"]
            if not strict:
                assert team[0]["appGroup"] == "team-a" and "developerEmail" not in team[0], team
            # The hook switches readings at run time.
            e.ok("POST", "/__emulator/readings", {"page-100": not strict})
            assert e.ok("GET", "/__emulator/readings")["page-100"] == (not strict)
            s, js, _ = e.call("POST", "/__emulator/readings", {"no-such-reading": True})
            assert s == 400, (s, js)
        finally:
            e.stop()


def test_bad_start():
    bad = os.path.join(TMP, "bad-seed.json")
    with open(bad, "w") as f:
        f.write('{"organization": "x", "developers": [{"email": "nope"}]}')
    r = subprocess.run([BINARY, "--port", "0", "--seed", bad], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "invalid email" in r.stderr, r
    r = subprocess.run([BINARY, "--bogus"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2


def run_gcloud():
    gcloud = shutil.which("gcloud")
    if not gcloud:
        print("SKIP: gcloud not installed")
        return 77
    e = Emu()
    try:
        env = dict(os.environ, CLOUDSDK_CONFIG=tempfile.mkdtemp(dir=TMP), CLOUDSDK_CORE_DISABLE_PROMPTS="1")
        g = lambda *a: subprocess.run([gcloud, *a], env=env, capture_output=True, text=True, timeout=120)
        for args in (("config", "set", "api_endpoint_overrides/apigee", "http://127.0.0.1:%d/" % e.port),
                     ("config", "set", "auth/disable_credentials", "true")):
            r = g(*args)
            assert r.returncode == 0, r.stderr
        r = g("apigee", "developers", "list", "--organization=acme", "--format=json")
        assert r.returncode == 0, r.stderr
        emails = sorted(d["email"] for d in json.loads(r.stdout))
        assert emails == ["dev1@example.com", "dev2@example.com", "gone@example.com"], emails
        r = g("apigee", "applications", "list", "--organization=acme", "--format=json")
        assert r.returncode == 0, r.stderr
        apps = json.loads(r.stdout)
        assert len(apps) == 24 and "shop" in [a.get("name") for a in apps], apps
        shop_id = e.ok("GET", app_path("dev1@example.com", "shop"))["appId"]
        r = g("apigee", "applications", "describe", shop_id, "--organization=acme", "--format=json")
        assert r.returncode == 0, r.stderr
        shop = json.loads(r.stdout)
        assert shop["name"] == "shop" and shop["callbackUrl"] == "https://shop.example.com/cb"
        assert {"name": "Notes", "value": "keep me"} in shop["attributes"]
        req = e.ok("GET", "/__emulator/requests")["byRoute"]
        assert req.get("GET /v1/organizations/{org}/developers", 0) >= 1, req
        print("PASS gcloud")
        return 0
    finally:
        e.stop()


def main():
    if MODE == "gcloud":
        return run_gcloud()
    if MODE == "https":
        make_certs()
    failed = 0
    # Each test gets a fresh emulator (and stops it with SIGTERM, checking exit 0).
    for t in (test_reads_and_int64, test_generate_trap, test_create_calls, test_custom_keys, test_limits,
              test_paging_and_filters, test_update_and_app_status, test_bad_input, test_faults,
              test_hooks, test_availability_and_clock, test_multi_org, test_token, test_bad_start,
              test_profiles, test_teams):
        try:
            if t.__code__.co_argcount:
                e = Emu()
                try:
                    t(e)
                finally:
                    e.stop()
            else:
                t()
            print("PASS", t.__name__)
        except Exception:
            failed += 1
            print("FAIL", t.__name__)
            traceback.print_exc()
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
