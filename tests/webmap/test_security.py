"""Sessions, tokens and headers (issue 8 §2): CSRF, origin and media-type checks, server-side logout,
login throttling with equal timing, scoped/expiring/revocable API tokens, Secure cookies, security headers."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from cases.auth import create_user
from cases.setup import seed_routing_rules
from gis.settings import Settings, load_settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

PW = "password123"
CASE = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "小区噪音扰民",
        "content": "夜间施工", "reporter_name": "王小明", "reporter_phone": "13700001111",
        "lon": X0 + 0.004, "lat": Y0 + 0.005}


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", PW, "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    create_user(db, "off1", PW, "grid_officer", "990101001001", grid_code="990101001001001",
                hash_method="pbkdf2:sha256:1000")
    create_user(db, "city", PW, "city_center", "990100", hash_method="pbkdf2:sha256:1000")
    return create_app(settings=Settings(secret_key="test"), db=db)


def session_client(app, username, **environ):
    c = app.test_client()
    c.environ_base.update(environ)
    r = c.post("/api/login", json={"username": username, "password": PW})
    assert r.status_code == 200, r.json
    return c, r.json["csrf_token"]


def cases_count(db) -> int:
    return db.fetchone("SELECT count(*) n FROM case_record")["n"]


def error(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert set(r.json) == {"error"} and {"code", "message"} <= set(r.json["error"])
    if code:
        assert r.json["error"]["code"] == code, r.json
    return r.json["error"]


# -- CSRF, Origin, media type ------------------------------------------------------------------------

def test_cookie_state_change_needs_the_csrf_token(app, db):
    c, tok = session_client(app, "disp")
    assert len(tok) >= 20
    error(c.post("/api/cases", json={**CASE, "submission_key": "K1"}), 403, "forbidden")
    error(c.post("/api/cases", json={**CASE, "submission_key": "K1"}, headers={"X-CSRF-Token": "x" * 32}), 403)
    assert cases_count(db) == 0
    r = c.post("/api/cases", json={**CASE, "submission_key": "K1"}, headers={"X-CSRF-Token": tok})
    assert r.status_code == 201, r.json
    assert c.get("/api/me").json["csrf_token"] == tok
    # logout is a state change too
    error(c.post("/api/logout"), 403)
    assert c.get("/api/me").status_code == 200


def test_bearer_requests_need_no_csrf_token(app, db):
    c, tok = session_client(app, "disp")
    token = c.post("/api/tokens", json={"name": "12345"}, headers={"X-CSRF-Token": tok}).json["token"]
    m = app.test_client()
    r = m.post("/api/cases", json={**CASE, "submission_key": "B1"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.json


def test_form_bodies_are_refused_not_read_as_empty(app, db):
    c, tok = session_client(app, "disp")
    case = c.post("/api/cases", json={**CASE, "submission_key": "F1"}, headers={"X-CSRF-Token": tok}).json
    o, otok = session_client(app, "off1")
    r = o.post(f"/api/cases/{case['id']}/actions/sign", data={"x": "1"}, headers={"X-CSRF-Token": otok})
    error(r, 415, "unsupported_media_type")
    r = o.post(f"/api/cases/{case['id']}/actions/sign", data="{}", content_type="text/plain",
               headers={"X-CSRF-Token": otok})
    error(r, 415)
    assert o.get(f"/api/cases/{case['id']}").json["status"] == "dispatched"
    # multipart (uploads) passes the media-type check but still needs the token
    r = o.post(f"/api/cases/{case['id']}/actions/sign", data={"f": "1"}, content_type="multipart/form-data")
    error(r, 403)
    r = o.post(f"/api/cases/{case['id']}/actions/sign", json={}, headers={"X-CSRF-Token": otok})
    assert r.status_code == 200 and r.json["status"] == "signed"


def test_foreign_origin_is_refused(app, db):
    c, tok = session_client(app, "disp")
    for origin in ("http://evil.example", "null", "http://localhost.evil.example"):
        r = c.post("/api/cases", json={**CASE, "submission_key": "O1"},
                   headers={"X-CSRF-Token": tok, "Origin": origin})
        error(r, 403)
    error(c.post("/api/cases", json={**CASE, "submission_key": "O1"},
                 headers={"X-CSRF-Token": tok, "Sec-Fetch-Site": "cross-site"}), 403)
    assert cases_count(db) == 0
    r = c.post("/api/cases", json={**CASE, "submission_key": "O1"},
               headers={"X-CSRF-Token": tok, "Origin": "http://localhost"})
    assert r.status_code == 201
    # login: Origin checked and JSON only (a cross-site form cannot log a browser in)
    n = app.test_client()
    error(n.post("/api/login", json={"username": "disp", "password": PW}, headers={"Origin": "http://evil.example"}),
          403)
    error(n.post("/api/login", data={"username": "disp", "password": PW}), 415)
    r = n.post("/api/login", json={"username": "disp", "password": PW}, headers={"Origin": "http://localhost"})
    assert r.status_code == 200 and r.json["csrf_token"]


# -- sessions --------------------------------------------------------------------------------------

def test_logout_kills_the_old_cookie_on_the_server(app):
    c, tok = session_client(app, "disp")
    stolen = c.get_cookie("session").value
    assert c.post("/api/logout", headers={"X-CSRF-Token": tok}).status_code == 200
    assert c.get("/api/me").status_code == 401
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    error(replay.get("/api/me"), 401, "unauthorized")
    error(replay.get("/api/cases"), 401)


def test_login_rotates_the_session(app):
    c, tok = session_client(app, "disp")
    first = c.get_cookie("session").value
    r = c.post("/api/login", json={"username": "disp", "password": PW})
    assert r.status_code == 200 and r.json["csrf_token"] != tok
    old = app.test_client()
    old.set_cookie("session", first)
    assert c.get("/api/me").status_code == 200
    # the first session still exists until logout; ending the new one leaves the old one alone
    assert old.get("/api/me").status_code == 200


# -- throttling and timing ---------------------------------------------------------------------------

def test_login_lockout_per_username_and_for_unknown_users_alike(app, db):
    c = app.test_client()
    for name in ("disp", "nobody"):
        for _ in range(5):
            error(c.post("/api/login", json={"username": name, "password": "wrong-password"}), 401)
        r = c.post("/api/login", json={"username": name, "password": PW})
        e = error(r, 429, "too_many_requests")
        assert int(r.headers["Retry-After"]) > 0 and e["details"]["retry_after"] > 0
    assert error(c.post("/api/login", json={"username": "disp", "password": PW}), 429)["message"] == \
        error(c.post("/api/login", json={"username": "nobody", "password": PW}), 429)["message"]
    # another user from another address is not affected
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    assert other.post("/api/login", json={"username": "city", "password": PW}).status_code == 200
    # after the window, the user may log in again
    db.execute("UPDATE login_failure SET at = at - interval '16 minutes'")
    assert c.post("/api/login", json={"username": "disp", "password": PW}).status_code == 200


def test_login_lockout_per_address(app, db):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    for i in range(30):
        error(c.post("/api/login", json={"username": f"guess{i}", "password": "x"}), 401)
    error(c.post("/api/login", json={"username": "city", "password": PW}), 429)
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.0.8"
    assert other.post("/api/login", json={"username": "city", "password": PW}).status_code == 200


def test_unknown_usernames_take_as_long_as_known_ones(app, db):
    create_user(db, "real", PW, "dispatcher", "990100")  # the default (production) password hash
    c = app.test_client()

    def timed(name):
        db.execute("DELETE FROM login_failure")
        t = time.perf_counter()
        assert c.post("/api/login", json={"username": name, "password": "wrong-password"}).status_code == 401
        return time.perf_counter() - t

    pairs = [(timed("real"), timed(f"ghost{i}")) for i in range(5)]  # interleaved: load affects both alike
    known = statistics.median(k for k, _ in pairs)
    unknown = statistics.median(u for _, u in pairs)
    assert known > 0.01  # a real hash was checked
    assert 0.33 < unknown / known < 3, pairs  # before: 3 ms against 97 ms


def test_bad_credentials_are_4xx(app):
    c = app.test_client()
    for body in ({"username": "a\x00b", "password": PW}, {"username": 5, "password": PW},
                 {"username": "x" * 5000, "password": PW}):
        error(c.post("/api/login", json=body), 400)
    error(c.post("/api/login", data='{"username": "disp", "password": "\\ud800"}', content_type="application/json"),
          400)


# -- tokens ----------------------------------------------------------------------------------------

def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_tokens_expire_and_can_be_revoked(app, db):
    c, tok = session_client(app, "disp")
    h = {"X-CSRF-Token": tok}
    t1 = c.post("/api/tokens", json={"name": "a", "days": 30}, headers=h).json
    t2 = c.post("/api/tokens", json={"name": "b"}, headers=h).json
    assert t1["expires_at"] and t1["permissions"] == ["read", "intake", "act"]
    m = app.test_client()
    assert m.get("/api/cases", headers=bearer(t1["token"])).status_code == 200
    db.execute("UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = %s", (t1["id"],))
    error(m.get("/api/cases", headers=bearer(t1["token"])), 401)
    assert c.delete(f"/api/tokens/{t2['id']}", headers=h).status_code == 200
    error(m.get("/api/cases", headers=bearer(t2["token"])), 401)
    listed = c.get("/api/tokens").json["tokens"]
    assert {t["name"]: t["revoked"] for t in listed} == {"a": False, "b": True}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    # someone else's token cannot be revoked
    o, otok = session_client(app, "off1")
    error(o.delete(f"/api/tokens/{t1['id']}", headers={"X-CSRF-Token": otok}), 404)
    for bad in ({"name": "x", "days": 0}, {"name": "x", "days": "²"}, {"name": "a\x00"}, {"name": "x", "zz": 1},
                {"name": "x", "permissions": ["root"]}, {"name": "x", "permissions": []}):
        error(c.post("/api/tokens", json=bad, headers=h), 400)


def test_tokens_cannot_mint_tokens_or_act_as_persons(app):
    c, tok = session_client(app, "disp")
    t = c.post("/api/tokens", json={"name": "m"}, headers={"X-CSRF-Token": tok}).json
    m = app.test_client()
    error(m.post("/api/tokens", json={"name": "child"}, headers=bearer(t["token"])), 403)
    error(m.get("/api/tokens", headers=bearer(t["token"])), 403)
    error(m.delete(f"/api/tokens/{t['id']}", headers=bearer(t["token"])), 403)
    assert m.get("/api/me", headers=bearer(t["token"])).json["token"]["id"] == t["id"]


def test_token_scope_limits_permissions_and_region(app, db):
    c, tok = session_client(app, "disp")
    h = {"X-CSRF-Token": tok}
    inside = c.post("/api/cases", json={**CASE, "submission_key": "S1"}, headers=h).json  # township 990101001
    other = c.post("/api/cases", json={**CASE, "submission_key": "S2", "lon": X0 + 0.03}, headers=h).json
    assert inside["township_code"] != other["township_code"]
    ro = c.post("/api/tokens", json={"name": "ro", "permissions": ["read"], "region": inside["township_code"]},
                headers=h).json
    m = app.test_client()
    seen = [x["id"] for x in m.get("/api/cases", headers=bearer(ro["token"])).json["cases"]]
    assert seen == [inside["id"]]
    error(m.get(f"/api/cases/{other['id']}", headers=bearer(ro["token"])), 404)
    error(m.post("/api/cases", json={**CASE, "submission_key": "S3"}, headers=bearer(ro["token"])), 403)
    error(m.post(f"/api/cases/{inside['id']}/actions/supervise", json={"reason": "x"}, headers=bearer(ro["token"])),
          403)
    assert cases_count(db) == 2
    # a token's region must lie inside the owner's jurisdiction
    error(c.post("/api/tokens", json={"name": "x", "region": "110000"}, headers=h), 403)
    o, otok = session_client(app, "off1")
    error(o.post("/api/tokens", json={"name": "x", "region": "990101001"}, headers={"X-CSRF-Token": otok}), 403)


# -- cookies and headers ---------------------------------------------------------------------------

def test_secure_cookie_flag_is_a_setting(db, app):
    assert load_settings({"GRIDGOV_SECURE_COOKIES": "1"}).secure_cookies is True
    assert load_settings({}).secure_cookies is False
    plain = app.test_client().post("/api/login", json={"username": "disp", "password": PW})
    assert "Secure" not in plain.headers["Set-Cookie"] and "HttpOnly" in plain.headers["Set-Cookie"]
    secure_app = create_app(settings=Settings(secret_key="test", secure_cookies=True), db=db)
    r = secure_app.test_client().post("/api/login", json={"username": "disp", "password": PW},
                                      base_url="https://localhost")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=") and "; Secure" in cookie and "HttpOnly" in cookie
    assert "max-age" in r.headers["Strict-Transport-Security"]


def test_security_headers_on_every_response(app):
    c, tok = session_client(app, "disp")
    for url in ("/", "/api/health", "/api/cases", "/api/me", "/api/nope", "/vendor/leaflet/dist/leaflet.js",
                "/static/gg.js", "/api/layers/grid"):
        r = c.get(url)
        csp = r.headers.get("Content-Security-Policy", "")
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)
        assert "'unsafe-inline'" not in script_src and "'self'" in script_src, url
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
    for url in ("/api/cases", "/api/me", "/api/tokens"):
        assert c.get(url).headers["Cache-Control"] == "no-store", url
    assert app.test_client().post("/api/login", json={"username": "disp", "password": PW}).headers[
        "Cache-Control"] == "no-store"


def test_inline_scripts_of_pages_carry_the_response_nonce(app):
    r = app.test_client().get("/")
    assert r.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    html = r.get_data(as_text=True)
    tags = re.findall(r"<script\b[^>]*>", html)
    assert tags and all(f'nonce="{nonce}"' in t for t in tags), tags
    assert re.search(r"'nonce-([^']+)'", app.test_client().get("/").headers["Content-Security-Policy"]).group(1) \
        != nonce
