#!/usr/bin/python3
"""Black-box tests of apigee-emulator's Edge flavor (--flavor edge): the Edge
management API (/v1/organizations and /v1/o), Edge JSON and errors, inclusive
startKey paging, companies, keys, and the Edge login server's POST /oauth/token.

usage: emulator_edge_test.py BINARY {lenient|strict}
Exit 0 = pass, 1 = fail.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

BINARY, PROFILE = sys.argv[1], sys.argv[2]
STRICT = PROFILE == "strict"
TMP = tempfile.mkdtemp(prefix="emulator-edge-test-")
ORG = "/v1/organizations/acme"
USER, PASSWORD = "ops@example.com", "s3cret-Pass"
MFA_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CLIENT = "Basic " + base64.b64encode(b"edgecli:edgeclisecret").decode()
N_BULK = 1205  # apps beyond one page of 1000


def seed():
    prods = [{"name": "gold"}, {"name": "silver"}, {"name": "admin", "approvalType": "manual"}]
    devs = [{"email": "dev%d@example.com" % i, "developerId": "id-dev%d" % i} for i in range(1, 6)]
    devs[4]["status"] = "inactive"
    devs.append({"email": "bulk@example.com", "developerId": "id-bulk"})
    apps = [
        {"developerEmail": "dev1@example.com", "name": "shop", "appId": "app-shop",
         "callbackUrl": "https://shop.example/cb",
         "attributes": [{"name": "DisplayName", "value": "Shop"}, {"name": "tier", "value": "1"}],
         "credentials": [
             {"consumerKey": "shopKey_1", "consumerSecret": "shopSecret_1", "issuedAt": "-30d",
              "expiresAt": "+5m", "apiProducts": ["gold"],
              "attributes": [{"name": "keyrotd_replaces", "value": "x"}]},
             {"consumerKey": "shopKey_never", "consumerSecret": "s2", "apiProducts": ["gold"]}]},
        {"developerEmail": "dev2@example.com", "name": "blog", "appId": "app-blog",
         "credentials": [{"consumerKey": "blogKey", "consumerSecret": "blogSecret",
                          "apiProducts": [{"apiproduct": "silver", "status": "approved"}]}]},
        {"companyName": "acme-team", "name": "portal", "appId": "app-portal",
         "attributes": [{"name": "owner", "value": "team"}],
         "credentials": [{"consumerKey": "portalKey", "consumerSecret": "portalSecret",
                          "apiProducts": ["gold"]}]},
        {"appGroup": "beta-team", "name": "beta-app", "appId": "app-beta", "status": "revoked"},
    ]
    for i in range(N_BULK):
        apps.append({"developerEmail": "bulk@example.com", "name": "bulk-%04d" % i,
                     "appId": "bulk-%04d" % i,
                     "credentials": [{"consumerKey": "bulkKey%04d" % i, "consumerSecret": "s",
                                      "apiProducts": ["gold"]}]})
    companies = [{"name": "acme-team", "displayName": "Acme Team"},
                 {"name": "zeta-team", "status": "inactive"}]
    return {"organization": "acme", "apiProducts": prods, "developers": devs,
            "companies": companies, "apps": apps}


SEED_FILE = os.path.join(TMP, "seed.json")
with open(SEED_FILE, "w") as f:
    json.dump(seed(), f)


class Emu:
    def __init__(self, *extra, flavor="edge", strict=STRICT, with_seed=True):
        self.port_file = tempfile.mktemp(dir=TMP)
        args = [BINARY, "--port", "0", "--port-file", self.port_file]
        if flavor:
            args += ["--flavor", flavor]
        if with_seed:
            args += ["--seed", SEED_FILE]
        if strict:
            args.append("--strict")
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while not (os.path.exists(self.port_file) and open(self.port_file).read().strip()):
            if self.proc.poll() is not None:
                raise AssertionError("emulator exited: " + self.proc.stderr.read())
            if time.time() > deadline:
                raise AssertionError("emulator did not start")
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())
        self.auth = None

    def call(self, method, path, body=None, headers=None, raw=None):
        h = dict(headers or {})
        if self.auth and "Authorization" not in h:
            h["Authorization"] = self.auth
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
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

    def token(self, form, query="", client=CLIENT, ctype="application/x-www-form-urlencoded"):
        h = {"Content-Type": ctype, "Accept": "application/json"}
        if client:
            h["Authorization"] = client
        return self.call("POST", "/oauth/token" + query, raw=urllib.parse.urlencode(form).encode(),
                         headers=h)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(10) == 0


def app_path(dev, app, owner="developers"):
    return "%s/%s/%s/apps/%s" % (ORG, owner, urllib.parse.quote(dev, safe=""), app)


def key_path(dev, app, key, owner="developers"):
    return app_path(dev, app, owner) + "/keys/" + urllib.parse.quote(key, safe="")


def edge_error(status, js, code, edge_code=None):
    assert status == code, (status, js)
    assert set(js) == {"code", "message", "contexts"}, js
    assert js["contexts"] == [] and isinstance(js["message"], str) and js["code"], js
    if edge_code:
        assert js["code"] == edge_code, js


def now_ms():
    return time.time() * 1000


def totp(step):
    key = base64.b32decode(MFA_SEED)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


def mid_step():
    """The current 30 s step, waiting first when it is about to end (no race)."""
    if time.time() % 30 > 27:
        time.sleep(30 - time.time() % 30 + 0.2)
    return int(time.time() // 30)


# ---------------------------------------------------------------- tests

def test_reads_and_json(e):
    app = e.ok("GET", app_path("dev1@example.com", "shop"))
    assert app["name"] == "shop" and app["appId"] == "app-shop" and app["status"] == "approved"
    assert app["developerId"] == "id-dev1" and "developerEmail" not in app, app
    assert isinstance(app["createdAt"], int) and isinstance(app["lastModifiedAt"], int), app
    creds = {c["consumerKey"]: c for c in app["credentials"]}
    c = creds["shopKey_1"]
    assert isinstance(c["issuedAt"], int) and isinstance(c["expiresAt"], int), c
    assert abs(c["expiresAt"] - (now_ms() + 300000)) < 60000, c
    assert creds["shopKey_never"]["expiresAt"] == -1, creds
    assert c["apiProducts"] == [{"apiproduct": "gold", "status": "approved"}], c
    assert creds["shopKey_never"]["attributes"] == [] and c["scopes"] == [], creds
    # /v1/o/{org} is the same API; a developer may be named by its developerId.
    assert e.ok("GET", "/v1/o/acme/developers/dev1@example.com/apps/shop")["appId"] == "app-shop"
    assert e.ok("GET", app_path("id-dev1", "shop"))["appId"] == "app-shop"
    dev = e.ok("GET", ORG + "/developers/DEV1@example.com")
    assert dev["developerId"] == "id-dev1" and "shop" in dev["apps"], dev
    assert isinstance(dev["createdAt"], int)
    assert e.ok("GET", ORG + "/apps/app-portal")["companyName"] == "acme-team"
    assert e.ok("GET", ORG + "/developers/dev1@example.com/apps") == ["shop"]
    listed = e.ok("GET", ORG + "/developers/dev1@example.com/apps?expand=true")["app"]
    assert [a["name"] for a in listed] == ["shop"] and listed[0]["credentials"], listed
    org = e.ok("GET", "/v1/o/acme")
    assert org["name"] == "acme", org


def test_developer_list(e):
    all_emails = e.ok("GET", ORG + "/developers")
    assert all_emails[:2] == ["bulk@example.com", "dev1@example.com"], all_emails
    assert len(all_emails) == 6
    full = e.ok("GET", ORG + "/developers?expand=true")["developer"]
    assert [d["email"] for d in full] == all_emails and full[5]["status"] == "inactive", full
    # startKey is included: the pages overlap by one.
    page = e.ok("GET", ORG + "/developers?count=2&startKey=dev2%40example.com")
    assert page == ["dev2@example.com", "dev3@example.com"], page
    paged = e.ok("GET", ORG + "/developers?expand=true&count=2&startKey=dev2%40example.com")
    if STRICT:  # developer-list-emails: expand is not valid with count or startKey
        assert paged == ["dev2@example.com", "dev3@example.com"], paged
    else:
        assert [d["email"] for d in paged["developer"]] == page, paged
        assert paged["developer"][0]["developerId"] == "id-dev2"
    assert len(e.ok("GET", ORG + "/developers?count=5000")) == 6
    s, js, _ = e.call("GET", ORG + "/developers?count=x")
    edge_error(s, js, 400)


def test_companies(e):
    assert e.ok("GET", ORG + "/companies") == ["acme-team", "beta-team", "zeta-team"]
    full = e.ok("GET", ORG + "/companies?expand=true")["company"]
    assert [c["name"] for c in full] == ["acme-team", "beta-team", "zeta-team"], full
    assert full[2]["status"] == "inactive" and full[0]["displayName"] == "Acme Team", full
    # The reference's example leaves a company startKey out: strict reading.
    want = ["zeta-team"] if STRICT else ["beta-team", "zeta-team"]
    assert e.ok("GET", ORG + "/companies?count=2&startKey=beta-team") == want
    c = e.ok("GET", ORG + "/companies/acme-team")
    assert c["name"] == "acme-team" and c["apps"] == ["portal"] and isinstance(c["createdAt"], int)
    assert e.ok("GET", ORG + "/companies/acme-team/apps") == ["portal"]
    apps = e.ok("GET", ORG + "/companies/acme-team/apps?expand=true")["app"]
    assert apps[0]["companyName"] == "acme-team" and "developerId" not in apps[0], apps
    s, js, _ = e.call("GET", ORG + "/companies/acme-team/apps?startKey=portal")
    edge_error(s, js, 400)  # count is required with startKey
    assert e.ok("GET", ORG + "/companies/acme-team/apps?count=5&startKey=portal") == ["portal"]
    s, js, _ = e.call("GET", ORG + "/companies/nope")
    edge_error(s, js, 404, "developer.service.CompanyDoesNotExist")
    s, js, _ = e.call("GET", app_path("acme-team", "nope", "companies"))
    edge_error(s, js, 404, "keymanagement.service.app_does_not_exist")


def test_org_app_paging(e):
    total = N_BULK + 4
    ids = e.ok("GET", ORG + "/apps")
    assert ids == sorted(ids) and len(ids) == 1000, len(ids)
    # rows above the cap: still 1000 (Public Cloud).
    assert len(e.ok("GET", ORG + "/apps?rows=5000")) == 1000
    seen, start, pages = [], None, 0
    while True:
        q = "?expand=true&rows=1000" + ("&startKey=" + urllib.parse.quote(start) if start else "")
        page = e.ok("GET", ORG + "/apps" + q)["app"]
        pages += 1
        if start is not None:
            assert page[0]["appId"] == start, (start, page[0]["appId"])  # inclusive
            page = page[1:]
        seen += [a["appId"] for a in page]
        if len(page) < 999 or pages > 5:
            break
        start = seen[-1]
    assert pages == 2 and seen == sorted(seen) and len(seen) == len(set(seen)) == total, (
        pages, len(seen))
    apps = {a["appId"]: a for a in e.ok("GET", ORG + "/apps?expand=true&rows=10&startKey=app-")["app"]}
    assert set(apps) == {"app-beta", "app-blog", "app-portal", "app-shop"} | {
        "bulk-%04d" % i for i in range(6)}, sorted(apps)
    assert apps["app-portal"]["companyName"] == "acme-team" and "developerId" not in apps["app-portal"]
    assert apps["app-shop"]["developerId"] == "id-dev1" and "developerEmail" not in apps["app-shop"]
    assert len(apps["app-shop"]["credentials"]) == 2
    assert apps["app-beta"]["credentials"] == [] and apps["app-beta"]["status"] == "revoked"
    assert e.ok("GET", ORG + "/apps?rows=2&startKey=app-blog") == ["app-blog", "app-portal"]
    assert e.ok("GET", ORG + "/apps?status=revoked") == ["app-beta"]
    assert e.ok("GET", ORG + "/apps?apptype=company") == ["app-beta", "app-portal"]
    s, js, _ = e.call("GET", ORG + "/apps?rows=abc")
    edge_error(s, js, 400)
    s, js, _ = e.call("GET", ORG + "/apps?startKey=app-blog")  # rows is required with startKey
    edge_error(s, js, 400)
    # A developer's apps: at most 100 a call, startKey (a name) included.
    bulk = ORG + "/developers/bulk@example.com/apps"
    assert e.ok("GET", bulk) == ["bulk-%04d" % i for i in range(100)]
    assert e.ok("GET", bulk + "?count=3&startKey=bulk-0100") == ["bulk-0100", "bulk-0101",
                                                                 "bulk-0102"]
    assert len(e.ok("GET", bulk + "?count=500")) == 100
    names, start = [], None
    for _ in range(20):
        page = e.ok("GET", bulk + "?count=100" + ("&startKey=" + start if start else ""))
        if start:
            assert page[0] == start
            page = page[1:]
        names += page
        if len(page) < 99:
            break
        start = names[-1]
    assert names == ["bulk-%04d" % i for i in range(N_BULK)], len(names)
    paged = e.ok("GET", bulk + "?expand=true&count=2&startKey=bulk-0007")
    if STRICT:  # expand is "not applicable" with count or startKey
        assert paged == ["bulk-0007", "bulk-0008"], paged
    else:
        assert [a["name"] for a in paged["app"]] == ["bulk-0007", "bulk-0008"], paged


def test_private_cloud():
    e = Emu("--private-cloud")
    try:
        assert len(e.ok("GET", ORG + "/apps?rows=10000")) == N_BULK + 4
        assert len(e.ok("GET", ORG + "/apps?rows=20000")) == N_BULK + 4
        assert len(e.ok("GET", ORG + "/apps?rows=7")) == 7
    finally:
        e.stop()


def test_generate_and_put(e):
    for owner, name, app in (("developers", "dev2@example.com", "blog"),
                             ("companies", "acme-team", "portal")):
        path = app_path(name, app, owner)
        before = e.ok("GET", path)
        body = {"name": app, "attributes": [{"name": "kept", "value": "1"}],
                "apiProducts": ["gold", "admin"], "keyExpiresIn": 86400000}
        if STRICT and owner == "companies":
            # company-post-action-only: the reference's POST on a company app
            # is approve/revoke only.
            s, js, _ = e.call("POST", path, body)
            edge_error(s, js, 400)
            assert e.ok("GET", path) == before
            e.ok("POST", path + "?action=revoke", status=204)
            e.ok("POST", path + "?action=approve", status=204)
            continue
        out = e.ok("POST", path, body)
        assert out["attributes"] == [{"name": "kept", "value": "1"}], out  # replaced
        new = [c for c in out["credentials"]
               if c["consumerKey"] not in {x["consumerKey"] for x in before["credentials"]}]
        assert len(new) == 1, out
        k = new[0]
        assert abs(k["expiresAt"] - (now_ms() + 86400000)) < 60000, k
        assert k["attributes"] == [] and k["status"] == "approved", k
        assert k["apiProducts"] == [{"apiproduct": "gold", "status": "approved"},
                                    {"apiproduct": "admin", "status": "pending"}], k
        # keyExpiresIn as a numeric string; none: never expires.
        out = e.ok("POST", path, {"keyExpiresIn": "60000", "apiProducts": ["gold"]})
        assert abs(out["credentials"][-1]["expiresAt"] - (now_ms() + 60000)) < 30000
        assert "callbackUrl" not in out and out["attributes"] == [], out  # left out: removed
        out = e.ok("POST", path, {"apiProducts": ["gold"]})
        assert out["credentials"][-1]["expiresAt"] == -1
        s, js, _ = e.call("POST", path, {"keyExpiresIn": "soon"})
        edge_error(s, js, 400)
        # PUT: what is left out is removed.
        out = e.ok("PUT", path, {"attributes": [{"name": "a", "value": "b"}],
                                 "callbackUrl": "https://x.example/cb"})
        assert out["attributes"] == [{"name": "a", "value": "b"}] and out["callbackUrl"]
        out = e.ok("PUT", path, {"name": app})
        assert out["attributes"] == [] and "callbackUrl" not in out, out
        # approve/revoke the app
        e.ok("POST", path + "?action=revoke", status=204)
        assert e.ok("GET", path)["status"] == "revoked"
        e.ok("POST", path + "?action=approve", status=204)


def test_keys(e):
    for owner, name, app in (("developers", "dev1@example.com", "shop"),
                             ("companies", "acme-team", "portal")):
        tag = owner[:3]
        path = app_path(name, app, owner)
        new = e.ok("POST", path + "/keys/create",
                   {"consumerKey": "imp_" + tag, "consumerSecret": "impSecret_" + tag}, status=201)
        assert new["consumerKey"] == "imp_" + tag and new["expiresAt"] == -1, new
        assert new["apiProducts"] == [] and new["status"] == "approved", new
        assert isinstance(new["issuedAt"], int)
        # An expiry in the body: ignored (lenient) or refused (strict).
        body = {"consumerKey": "exp_" + tag, "consumerSecret": "s", "expiresInSeconds": 3600}
        s, js, _ = e.call("POST", path + "/keys/create", body)
        if STRICT:
            edge_error(s, js, 400)
            assert e.call("GET", key_path(name, app, "exp_" + tag, owner))[0] == 404
        else:
            assert s == 201 and js["expiresAt"] == -1, (s, js)
        s, js, _ = e.call("POST", path + "/keys/create", {"consumerKey": "imp_" + tag,
                                                          "consumerSecret": "x"})
        edge_error(s, js, 409)
        s, js, _ = e.call("POST", path + "/keys/create", {"consumerKey": "nosecret_" + tag})
        edge_error(s, js, 400)
        s, js, _ = e.call("POST", path + "/keys/create", {"consumerKey": "bad key",
                                                          "consumerSecret": "x"})
        edge_error(s, js, 400)
        # X's POST …/keys is not an Edge call.
        s, js, _ = e.call("POST", path + "/keys", {"consumerKey": "x_" + tag, "consumerSecret": "s"})
        edge_error(s, js, 404)
        kp = key_path(name, app, "imp_" + tag, owner)
        # Update: products appended, attributes replaced.
        out = e.ok("POST", kp, {"apiProducts": ["gold"],
                                "attributes": [{"name": "keyrotd_replaces", "value": "old"}]})
        assert out["apiProducts"] == [{"apiproduct": "gold", "status": "approved"}], out
        out = e.ok("POST", kp, {"apiProducts": ["admin"],
                                "attributes": [{"name": "n", "value": "v"}]})
        assert [p["apiproduct"] for p in out["apiProducts"]] == ["gold", "admin"], out
        assert out["apiProducts"][1]["status"] == "pending"
        assert out["attributes"] == [{"name": "n", "value": "v"}], out
        out = e.ok("POST", kp, {"apiProducts": ["silver"]})
        assert out["attributes"] == ([] if STRICT else [{"name": "n", "value": "v"}]), out
        s, js, _ = e.call("POST", kp, {"apiProducts": ["nope"]})
        edge_error(s, js, 400)
        # Attributes of a key.
        out = e.ok("POST", kp + "/attributes", {"attribute": [{"name": "x", "value": "1"}]})
        assert out == {"attribute": [{"name": "x", "value": "1"}]}, out
        assert e.ok("GET", kp)["attributes"] == [{"name": "x", "value": "1"}]
        # Approve / revoke the key and a product on it.
        e.ok("POST", kp + "?action=revoke", status=204)
        assert e.ok("GET", kp)["status"] == "revoked"
        e.ok("POST", kp + "?action=approve", status=204)
        assert e.ok("GET", kp)["status"] == "approved"
        e.ok("POST", kp + "/apiproducts/admin?action=approve", status=204)
        e.ok("POST", kp + "/apiproducts/gold?action=revoke", status=204)
        st = {p["apiproduct"]: p["status"] for p in e.ok("GET", kp)["apiProducts"]}
        assert st == {"gold": "revoked", "admin": "approved", "silver": "approved"}, st
        s, js, _ = e.call("POST", kp + "?action=explode")
        edge_error(s, js, 400)
        s, js, _ = e.call("POST", kp + "/apiproducts/nope?action=approve")
        edge_error(s, js, 404)
        # Delete: the deleted credential, then 404.
        gone = e.ok("DELETE", kp)
        assert gone["consumerKey"] == "imp_" + tag and gone["consumerSecret"] == "impSecret_" + tag
        s, js, _ = e.call("GET", kp)
        edge_error(s, js, 404, "keymanagement.service.InvalidClientIdForGivenApp")
    # The availability history names a company app's writes (team field).
    recs = e.ok("GET", "/__emulator/availability")["records"]
    assert any(r["team"] == "acme-team" and r["app"] == "portal" for r in recs), recs[-3:]
    assert any(r["developer"] == "dev1@example.com" and r["app"] == "shop" for r in recs)


def test_errors_and_faults(e):
    s, js, _ = e.call("GET", ORG + "/developers/nobody@example.com")
    edge_error(s, js, 404, "developer.service.DeveloperDoesNotExist")
    s, js, _ = e.call("GET", app_path("dev1@example.com", "nope"))
    edge_error(s, js, 404, "keymanagement.service.app_does_not_exist")
    s, js, _ = e.call("GET", "/v1/organizations/other/apps")
    edge_error(s, js, 404, "organizations.OrganizationDoesNotExist")
    s, js, _ = e.call("GET", ORG + "/appgroups")  # an X call
    edge_error(s, js, 404)
    s, js, h = e.call("PATCH", app_path("dev1@example.com", "shop"))
    edge_error(s, js, 405)
    assert h.get("Allow") == "GET, POST, PUT, DELETE", h
    s, js, _ = e.call("POST", app_path("dev1@example.com", "shop"), raw=b"{not json",
                      headers={"Content-Type": "application/json"})
    edge_error(s, js, 400)
    e.ok("POST", "/__emulator/faults", {"p429": 1})
    s, js, h = e.call("GET", ORG + "/apps")
    edge_error(s, js, 429)
    assert h.get("Retry-After") == "1"
    e.ok("POST", "/__emulator/faults", {"p429": 0, "p503": 1})
    s, js, h = e.call("GET", ORG + "/apps")
    edge_error(s, js, 503)
    e.ok("POST", "/__emulator/faults", {"p503": 0})
    # Creates answer 201 on Edge.
    dev = e.ok("POST", ORG + "/developers", {"email": "new@example.com", "firstName": "N",
                                             "lastName": "N", "userName": "n"}, status=201)
    assert isinstance(dev["createdAt"], int) and dev["developerId"], dev
    app = e.ok("POST", ORG + "/developers/new@example.com/apps",
               {"name": "fresh", "apiProducts": ["gold"], "keyExpiresIn": 3600000}, status=201)
    assert abs(app["credentials"][0]["expiresAt"] - (now_ms() + 3600000)) < 60000, app
    s, js, _ = e.call("POST", ORG + "/developers/new@example.com/apps", {"name": "fresh"})
    edge_error(s, js, 409)
    # A developer's status.
    e.ok("POST", ORG + "/developers/dev3@example.com?action=inactive", status=204)
    assert e.ok("GET", ORG + "/developers/dev3@example.com")["status"] == "inactive"
    # The state dump keeps companies (as AppGroups) and reloads.
    st = e.ok("GET", "/__emulator/state")["organizations"][0]
    assert {g["name"] for g in st["appGroups"]} == {"acme-team", "beta-team", "zeta-team"}
    e.ok("POST", "/__emulator/seed", st)
    assert e.ok("GET", ORG + "/companies/acme-team/apps") == ["portal"]
    readings = e.ok("GET", "/__emulator/readings")
    for r in ("create-expiry", "refresh-single-use", "company-post-action-only",
              "company-startkey-exclusive"):
        assert readings[r] == STRICT, readings


def test_x_flavor_unchanged():
    e = Emu(flavor=None, strict=False)
    try:
        assert "create-expiry" not in e.ok("GET", "/__emulator/readings")
        s, js, _ = e.call("POST", "/__emulator/readings", {"create-expiry": True})
        assert s == 400, (s, js)
        app = e.ok("GET", app_path("dev1@example.com", "shop"))
        assert isinstance(app["createdAt"], str) and "attributes" in app
        s, js, _ = e.call("GET", ORG + "/companies")
        assert s == 404 and "error" in js, js
        s, js, _ = e.call("POST", "/oauth/token", raw=b"grant_type=password")
        assert s == 404, s
        s, js, _ = e.call("GET", "/v1/o/acme/apps")
        assert s == 404, s
    finally:
        e.stop()
    s = subprocess.run([BINARY, "--mfa-seed", MFA_SEED], capture_output=True, text=True)
    assert s.returncode == 2 and "--flavor edge" in s.stderr, s


def test_basic_auth():
    e = Emu("--edge-user", USER, "--edge-password", PASSWORD)
    try:
        s, js, _ = e.call("GET", ORG + "/apps")
        edge_error(s, js, 401)
        basic = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        assert e.ok("GET", ORG + "/apps?rows=1", headers={"Authorization": basic}) == ["app-beta"]
        wrong = "Basic " + base64.b64encode(("%s:nope" % USER).encode()).decode()
        s, js, _ = e.call("GET", ORG + "/apps", headers={"Authorization": wrong})
        edge_error(s, js, 401)
        # Without MFA the password grant needs no code.
        s, js, _ = e.token({"grant_type": "password", "username": USER, "password": PASSWORD})
        assert s == 200 and js["token_type"] == "bearer", (s, js)
    finally:
        e.stop()


def test_oauth_password_mfa():
    e = Emu("--edge-user", USER, "--edge-password", PASSWORD, "--mfa-seed", MFA_SEED,
            "--login-limit", "12")
    try:
        good = {"grant_type": "password", "username": USER, "password": PASSWORD}
        step = mid_step()
        s, js, _ = e.token(good, "?mfa_token=" + totp(step))
        assert s == 200, (s, js)
        assert set(js) >= {"access_token", "token_type", "refresh_token", "expires_in", "scope",
                           "jti"}, js
        assert js["token_type"] == "bearer" and js["expires_in"] == 1799, js
        bearer = "Bearer " + js["access_token"]
        assert e.ok("GET", ORG + "/apps?rows=1", headers={"Authorization": bearer}) == ["app-beta"]
        # MFA: the previous step is accepted; older, wrong or missing codes are not.
        step = mid_step()
        s, js, _ = e.token(good, "?mfa_token=" + totp(step - 1))
        assert s == 200, (s, js)
        for code in (totp(step - 2), "000000" if totp(step) != "000000" else "111111", ""):
            s, js, _ = e.token(good, "?mfa_token=" + code if code else "")
            assert s == 401 and js["error"] == "unauthorized", (code, s, js)
        s, js, _ = e.token(dict(good, password="wrong"), "?mfa_token=" + totp(mid_step()))
        assert s == 401 and js["error"] == "unauthorized" and "error_description" in js, js
        s, js, _ = e.token(dict(good, username="someone@example.com"),
                           "?mfa_token=" + totp(mid_step()))
        assert s == 401, (s, js)
        # The client must be edgecli:edgeclisecret, the body a form.
        s, js, _ = e.token(good, "?mfa_token=" + totp(mid_step()), client=None)
        assert s == 401, (s, js)
        s, js, _ = e.token(good, "?mfa_token=" + totp(mid_step()), ctype="application/json")
        assert s == 400, (s, js)
        s, js, _ = e.token({"grant_type": "client_credentials"})
        assert s == 400 and js["error"] == "unsupported_grant_type", js
        # With MFA on, Basic is refused (Apigee: no Basic on MFA accounts).
        basic = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        s, js, _ = e.call("GET", ORG + "/apps", headers={"Authorization": basic})
        edge_error(s, js, 401)
        s, js, _ = e.call("GET", ORG + "/apps", headers={"Authorization": "Bearer forged"})
        edge_error(s, js, 401)
        # The login limit (--login-limit 12 here; Apigee: 30 an hour): 429.
        statuses = [e.token(good, "?mfa_token=" + totp(mid_step()))[0] for _ in range(12)]
        assert statuses.count(200) == 10 and statuses[-1] == 429, statuses
        tokens = e.ok("GET", "/__emulator/tokens")
        assert tokens["edgeTokenRequests"] >= 20 and tokens["rejected"] >= 2, tokens
        assert all(t["source"] == "edge:password" for t in tokens["issued"]), tokens["issued"]
    finally:
        e.stop()


def test_oauth_passcode_refresh_expiry():
    e = Emu("--edge-user", USER, "--edge-password", PASSWORD, "--passcode", "PC-ONE",
            "--passcode", "PC-TWO", "--token-ttl", "2", "--refresh-ttl", "4")
    try:
        pc = {"grant_type": "password", "response_type": "token", "passcode": "PC-ONE"}
        s, js, _ = e.token(pc)
        assert s == 200 and js["expires_in"] == 2, (s, js)
        access, refresh = js["access_token"], js["refresh_token"]
        s, js2, _ = e.token(pc)  # single use
        assert s == 401 and js2["error"] == "unauthorized", (s, js2)
        s, js2, _ = e.token(dict(pc, passcode="PC-NOPE"))
        assert s == 401, (s, js2)
        e.ok("POST", "/__emulator/passcodes", {"passcodes": ["PC-THREE"]})
        assert e.token(dict(pc, passcode="PC-THREE"))[0] == 200
        assert e.token(dict(pc, passcode="PC-TWO"))[0] == 200
        assert e.ok("GET", "/__emulator/tokens")["passcodesLeft"] == 0
        e.ok("GET", ORG + "/apps?rows=1", headers={"Authorization": "Bearer " + access})
        # The access token expires: 401; the refresh grant gives a working one.
        time.sleep(2.3)
        s, js, _ = e.call("GET", ORG + "/apps?rows=1", headers={"Authorization": "Bearer " + access})
        edge_error(s, js, 401)
        s, js, _ = e.token({"grant_type": "refresh_token", "refresh_token": refresh})
        assert s == 200 and js["access_token"] != access, (s, js)
        e.ok("GET", ORG + "/apps?rows=1", headers={"Authorization": "Bearer " + js["access_token"]})
        # Lenient: the refresh token works again until it expires; strict: once
        # (the answer carries a new one).
        s, js2, _ = e.token({"grant_type": "refresh_token", "refresh_token": refresh})
        if STRICT:
            assert js["refresh_token"] != refresh
            assert s == 401 and js2["error"] == "invalid_token", (s, js2)
            refresh = js["refresh_token"]
        else:
            assert s == 200 and js["refresh_token"] == refresh, (s, js2)
        s, js2, _ = e.token({"grant_type": "refresh_token", "refresh_token": "edge-refresh-nope"})
        assert s == 401 and js2["error"] == "invalid_token", (s, js2)
        time.sleep(4.2)  # the refresh token expires too: a full grant again
        s, js2, _ = e.token({"grant_type": "refresh_token", "refresh_token": refresh})
        assert s == 401 and js2["error"] == "invalid_token", (s, js2)
    finally:
        e.stop()


# ---------------------------------------------------------------- runner

def main():
    failures = []
    e = Emu()
    try:
        for t in (test_reads_and_json, test_developer_list, test_companies, test_org_app_paging,
                  test_generate_and_put, test_keys, test_errors_and_faults):
            try:
                t(e)
                print("ok   %s (%s)" % (t.__name__, PROFILE))
            except Exception:
                failures.append(t.__name__)
                print("FAIL %s (%s)\n%s" % (t.__name__, PROFILE, traceback.format_exc()))
    finally:
        e.stop()
    for t in (test_private_cloud, test_x_flavor_unchanged, test_basic_auth, test_oauth_password_mfa,
              test_oauth_passcode_refresh_expiry):
        try:
            t()
            print("ok   %s (%s)" % (t.__name__, PROFILE))
        except Exception:
            failures.append(t.__name__)
            print("FAIL %s (%s)\n%s" % (t.__name__, PROFILE, traceback.format_exc()))
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
