"""Bad input is always a 4xx JSON error and writes nothing (issue 8 §3).

CATALOGUE names each bad input the probe found (and a few neighbours); `test_catalogue` sends each one
and checks the status, the one error shape `{"error": {"code", "message", "field"?}}` and that no row of
any table changed. `test_generated_requests_on_every_route` throws generated JSON bodies and queries
(hypothesis) at every route of Flask's url map, as anonymous, a session and an API token: never a 5xx,
every 4xx has the error shape and leaves every table as it was.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases.auth import create_token, create_user
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

PW = "password123"
CASE = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "小区噪音扰民",
        "content": "夜间施工", "reporter_name": "王小明", "reporter_phone": "13700001111",
        "lon": X0 + 0.004, "lat": Y0 + 0.005, "submission_key": "BASE"}
# Tables that record who logged in or used a token: bookkeeping, not data (failed logins are counted).
BOOKKEEPING = ("auth_session", "login_failure", "api_token")


@pytest.fixture
def world(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", PW, "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    create_user(db, "off1", PW, "grid_officer", "990101001001", grid_code="990101001001001",
                hash_method="pbkdf2:sha256:1000")
    app = create_app(settings=Settings(secret_key="test"), db=db)
    clients = {"anonymous": app.test_client()}
    for name in ("disp", "off1"):
        c = app.test_client()
        r = c.post("/api/login", json={"username": name, "password": PW})
        c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]
        clients[name] = c
    case = clients["disp"].post("/api/cases", json=CASE).json
    token = create_token(db, disp, "fuzz")["token"]
    clients["token"] = app.test_client()
    clients["token"].environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return {"app": app, "db": db, "clients": clients, "case": case}


def snapshot(db) -> dict:
    """A digest of every row of every table (bookkeeping tables aside)."""
    tables = [r["t"] for r in db.fetchall(
        "SELECT table_name t FROM information_schema.tables WHERE table_schema = 'public' AND "
        "table_type = 'BASE TABLE' AND table_name <> 'spatial_ref_sys' AND table_name <> ALL(%s) ORDER BY 1",
        (list(BOOKKEEPING),))]
    sql = " UNION ALL ".join(f"SELECT '{t}' t, count(*) n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), "
                             f"'')) h FROM \"{t}\" x" for t in tables)
    return {r["t"]: (r["n"], r["h"]) for r in db.fetchall(sql)}


def assert_error_shape(r):
    assert r.mimetype == "application/json", (r.status_code, r.data[:200])
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"] and isinstance(err.get("message"), str), err
    assert set(err) <= {"code", "message", "field", "details"}, err


def raw(body: str) -> dict:
    return {"data": body.encode("utf-8", "surrogatepass"), "content_type": "application/json"}


# name → (client, method, path ({case} is the case id), request kwargs, expected status)
CATALOGUE = {
    "json_nested_100000_deep": ("disp", "POST", "/api/cases", raw("[" * 100_000 + "]" * 100_000), 400),
    "json_nested_object_in_action": ("off1", "POST", "/api/cases/{case}/actions/progress",
                                     raw('{"text": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}"), 400),
    "lone_surrogate_in_title": ("disp", "POST", "/api/cases", raw(json.dumps({**CASE, "title": "\ud800x"})), 400),
    "lone_surrogate_in_reason": ("off1", "POST", "/api/cases/{case}/actions/return",
                                 raw('{"reason": "\\udfff"}'), 400),
    "nul_in_login": ("anonymous", "POST", "/api/login", {"json": {"username": "disp\x00", "password": PW}}, 400),
    "nul_in_token_name": ("disp", "POST", "/api/tokens", {"json": {"name": "a\x00b"}}, 400),
    "nul_in_query": ("disp", "GET", "/api/cases?status=a%00b", {}, 400),
    "nul_in_geocode_query": ("anonymous", "GET", "/api/geocode?q=%E4%B8%80%00", {}, 400),
    "superscript_two_in_limit": ("disp", "GET", "/api/cases?limit=%C2%B2", {}, 400),
    "arabic_indic_in_limit": ("disp", "GET", "/api/cases?limit=%D9%A3", {}, 400),
    "superscript_two_in_generation": ("anonymous", "GET", "/api/layers/grid?generation=%C2%B2", {}, 400),
    "arabic_indic_in_generation": ("anonymous", "GET", "/api/locate?lon=124.3&lat=43.1&generation=%D9%A3", {}, 400),
    "superscript_two_in_master_id": ("disp", "POST", "/api/cases/{case}/actions/merge",
                                     {"json": {"master_id": "²"}}, 400),
    "arabic_indic_in_days": ("off1", "POST", "/api/cases/{case}/actions/request_extension",
                             {"json": {"days": "٣", "reason": "x"}}, 400),
    "arabic_indic_in_version": ("off1", "POST", "/api/cases/{case}/actions/sign", {"json": {"version": "٣"}}, 400),
    "huge_integer_version": ("off1", "POST", "/api/cases/{case}/actions/sign", {"json": {"version": 10**30}}, 400),
    "nan_literal": ("disp", "POST", "/api/cases", raw('{"title": "x", "lon": NaN, "lat": 1}'), 400),
    "case_id_beyond_bigint": ("disp", "GET", "/api/cases/99999999999999999999999", {}, 404),
    "body_10_mb": ("off1", "POST", "/api/cases/{case}/actions/progress",
                   {"json": {"text": "x" * (10 * 1024 * 1024)}}, 413),
    "action_text_over_bound": ("off1", "POST", "/api/cases/{case}/actions/progress", {"json": {"text": "x" * 5000}},
                               400),
    "action_unknown_field": ("off1", "POST", "/api/cases/{case}/actions/sign", {"json": {"blob": "x" * 1000}}, 400),
    "action_wrong_type": ("disp", "POST", "/api/cases/{case}/actions/reply", {"json": {"solved": "maybe"}}, 400),
    "unknown_action": ("disp", "POST", "/api/cases/{case}/actions/explode", {"json": {}}, 400),
    "form_body": ("off1", "POST", "/api/cases/{case}/actions/sign", {"data": {"version": "1"}}, 415),
    "text_plain_body": ("disp", "POST", "/api/cases", {"data": json.dumps(CASE), "content_type": "text/plain"}, 415),
    "json_array_body": ("disp", "POST", "/api/cases", raw("[1, 2]"), 400),
    "invalid_utf8": ("disp", "POST", "/api/cases", {"data": b'{"title": "\xff\xfe"}',
                                                    "content_type": "application/json"}, 400),
    "truncated_json": ("disp", "POST", "/api/cases", raw('{"title": "x"'), 400),
    "content_length_larger_than_body": ("disp", "POST", "/api/cases",
                                        {"data": b'{"title": 1}', "content_type": "application/json",
                                         "headers": {"Content-Length": "5000"}}, 400),
    "too_many_query_parameters": ("disp", "GET", "/api/cases?" + "&".join(f"p{i}=1" for i in range(60)), {}, 400),
    "query_value_over_bound": ("anonymous", "GET", "/api/geocode?q=" + "路" * 1000, {}, 400),
    "login_password_not_text": ("anonymous", "POST", "/api/login", {"json": {"username": "disp", "password": 123}},
                                400),
}


def test_catalogue(world):
    failures = []
    for name, (who, method, path, kw, status) in sorted(CATALOGUE.items()):
        before = snapshot(world["db"])
        r = world["clients"][who].open(path.format(case=world["case"]["id"]), method=method, **kw)
        try:
            assert r.status_code == status, f"{r.status_code} instead of {status}: {r.data[:200]!r}"
            assert_error_shape(r)
            assert snapshot(world["db"]) == before, "rows changed"
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)


# -- generated requests on every route -----------------------------------------------------------------

WEIRD = st.sampled_from(["", "²", "٣", "３", "\x00", "\ud800", "\udfff", "1e999", "NaN", "-1", "0", "9" * 40,
                         "<script>", "' OR 1=1 --", "../../etc/passwd", "true", "null", "\u202e", "路" * 300])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), WEIRD,
                    st.text(st.characters(codec=None, exclude_categories=()), max_size=30))
FIELDS = st.sampled_from(["title", "kind", "channel", "category_code", "lon", "lat", "x", "y", "crs", "version",
                          "reason", "master_id", "days", "text", "reply", "solved", "evaluation", "grid_code",
                          "lead_department", "username", "password", "name", "region", "permissions",
                          "submission_key", "accused_units", "received_at", "anonymous", "emergency"])
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(FIELDS, inner, max_size=5)),
                           max_leaves=12)
BODIES = st.one_of(st.dictionaries(FIELDS, JSON_VALUES, max_size=8), JSON_VALUES)
QUERY_TEXT = st.one_of(WEIRD.filter(lambda s: "\ud800" not in s and "\udfff" not in s),
                       st.text(st.characters(codec="utf-8"), max_size=20))
QUERIES = st.dictionaries(st.sampled_from(["limit", "offset", "status", "open", "order", "needs_pin", "month",
                                           "unit", "days", "eps_m", "min_samples", "category", "region", "lon",
                                           "lat", "x", "y", "crs", "q", "max_m", "generation", "level", "simplify",
                                           "parent", "bbox", "z", "since"]), QUERY_TEXT, max_size=5)
SEGMENT = st.one_of(st.sampled_from(["1", "0", "99999999999999999999", "²", "grid", "region", "sign", "merge",
                                     "leaflet", "dist/leaflet.js", "gg.js", "%00", "..", "x" * 300]),
                    st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12))


def _url(rule, values: dict) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "1"), rule.rule)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_requests_on_every_route(world, data):
    app, db = world["app"], world["db"]
    rules = sorted((r for r in app.url_map.iter_rules()), key=lambda r: r.rule)
    rule = data.draw(st.sampled_from(rules), label="rule")
    method = data.draw(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})), label="method")
    values = {a: data.draw(st.one_of(st.just(str(world["case"]["id"])), SEGMENT), label=a) for a in rule.arguments}
    who = data.draw(st.sampled_from(sorted(world["clients"])), label="who")
    kw = {"query_string": data.draw(QUERIES, label="query")}
    if method != "GET":
        body = data.draw(BODIES, label="body")
        kw.update(data=json.dumps(body).encode(), content_type="application/json")
    before = snapshot(db)
    r = world["clients"][who].open(_url(rule, values), method=method, **kw)
    assert r.status_code < 500, (rule.rule, method, who, kw, r.status_code, r.data[:300])
    if r.status_code >= 400:
        assert_error_shape(r)
        assert snapshot(db) == before, (rule.rule, method, who, kw, r.status_code)
