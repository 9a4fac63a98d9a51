"""The case API through Flask's test client on real PostGIS: auth, intake, actions, errors, scoping."""

from __future__ import annotations

import pytest

from cases.auth import create_user
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", "password123", "dispatcher", "990100")
    create_user(db, "off1", "password123", "grid_officer", "990101001001", grid_code="990101001001001")
    create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002")
    create_user(db, "city", "password123", "city_center", "990100")
    return create_app(settings=Settings(secret_key="test"), db=db)


def login(app, username):
    c = app.test_client()
    r = c.post("/api/login", json={"username": username, "password": "password123"})
    assert r.status_code == 200, r.json
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]  # what gg.api() sends
    return c


CASE = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "小区噪音扰民",
        "content": "<script>alert(1)</script>夜间施工", "reporter_name": "王小明", "reporter_phone": "13700001111",
        "lon": X0 + 0.004, "lat": Y0 + 0.005, "submission_key": "A1"}


def test_login_required_and_bad_password(app):
    c = app.test_client()
    r = c.get("/api/cases")
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    r = c.post("/api/login", json={"username": "disp", "password": "wrong-password"})
    assert r.status_code == 401


def test_intake_list_act_flow(app):
    d = login(app, "disp")
    r = d.post("/api/cases", json=CASE)
    assert r.status_code == 201, r.json
    case = r.json
    assert case["status"] == "dispatched" and case["grid_code"] == "990101001001001"
    again = d.post("/api/cases", json=CASE)
    assert again.status_code == 200 and again.json["duplicate_submission"] is True
    o = login(app, "off1")
    mine = o.get("/api/cases?open=1").json["cases"]
    assert [x["id"] for x in mine] == [case["id"]]
    assert mine[0]["content"] == CASE["content"]  # JSON carries raw text; pages escape it
    r = o.post(f"/api/cases/{case['id']}/actions/sign", json={"version": case["version"]})
    assert r.status_code == 200 and r.json["status"] == "signed"
    stale = o.post(f"/api/cases/{case['id']}/actions/return", json={"version": case["version"], "reason": "x"})
    assert stale.status_code == 409 and stale.json["error"]["field"] == "version"
    bad = o.post(f"/api/cases/{case['id']}/actions/evaluate", json={})
    assert bad.status_code in (403, 409)
    no_reason = o.post(f"/api/cases/{case['id']}/actions/escalate", json={})
    assert no_reason.status_code == 422 and no_reason.json["error"]["field"] == "reason"
    assert login(app, "off2").get(f"/api/cases/{case['id']}").status_code == 404
    overseer = login(app, "city").get(f"/api/cases/{case['id']}").json
    assert overseer["reporter_phone"] == "137****1111"


def test_bad_input_gets_one_json_error_shape(app):
    d = login(app, "disp")
    for body, field in [({**CASE, "kind": "x"}, "kind"), ({**CASE, "lat": 999}, "lat"),
                        ({**CASE, "title": ""}, "title")]:
        r = d.post("/api/cases", json=body)
        assert r.status_code == 400, r.json
        assert set(r.json["error"]) >= {"code", "message"} and r.json["error"].get("field") == field
    r = d.post("/api/cases", data="not json", content_type="application/json")
    assert r.status_code == 400
    r = d.get("/api/cases?limit=abc")
    assert r.status_code == 400 and r.json["error"]["field"] == "limit"
    assert d.get("/api/nope").status_code == 404
    assert d.get("/api/cases/999999").status_code == 404


def test_api_token_for_machines(app):
    d = login(app, "disp")
    tok = d.post("/api/tokens", json={"name": "12345系统"}).json["token"]
    m = app.test_client()
    r = m.post("/api/cases", json={**CASE, "submission_key": "T-1"}, headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 201
    r = m.get("/api/cases", headers={"Authorization": "Bearer ggt_wrong"})
    assert r.status_code == 401


def test_rates_endpoint_scoped_and_validated(app):
    d = login(app, "disp")
    d.post("/api/cases", json=CASE)
    r = d.get("/api/rates?month=2026-10&unit=county")
    assert r.status_code == 200 and r.json["unit"] == "county"
    assert all("colour" in u and "metrics" in u for u in r.json["units"])
    assert d.get("/api/rates?month=oct").status_code == 400
    assert d.get("/api/rates?month=2026-10&unit=planet").json["error"]["field"] == "unit"
    assert app.test_client().get("/api/rates?month=2026-10").status_code == 401


def _pages(client, order, limit=3):
    ids, url = [], f"/api/cases?order={order}&limit={limit}"
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.json
        ids += [c["id"] for c in r.json["cases"]]
        if r.json["next_cursor"] is None:
            return ids
        assert r.json["count"] == limit
        url = f"/api/cases?order={order}&limit={limit}&cursor={r.json['next_cursor']}"


def test_cursor_paging_is_stable_while_cases_arrive(app):
    """Issue 10: lists are paged with a stable cursor. Every case once, in the list's order, and a case
    registered between two pages neither repeats nor hides one (with offsets it shifts every later page)."""
    d = login(app, "disp")
    made = [d.post("/api/cases", json={**CASE, "submission_key": f"P{i}", "title": f"第{i}件",
                                       "lon": X0 + 0.001 * (i % 4), "lat": Y0 + 0.005}).json for i in range(8)]
    o = login(app, "off1")
    for case in made[:3]:                        # signed: ordered by their reply due date, after the rest
        if case["grid_code"] == "990101001001001":
            assert o.post(f"/api/cases/{case['id']}/actions/sign", json={"version": case["version"]}).status_code == 200
    for order in ("urgency", "newest"):
        full = [c["id"] for c in d.get(f"/api/cases?order={order}&limit=1000").json["cases"]]
        assert len(full) == 8 and _pages(d, order) == full
    first = d.get("/api/cases?order=newest&limit=3").json
    d.post("/api/cases", json={**CASE, "submission_key": "late", "title": "后来的"})
    second = d.get(f"/api/cases?order=newest&limit=3&cursor={first['next_cursor']}").json
    full_before = [c["id"] for c in first["cases"]] + [c["id"] for c in second["cases"]]
    assert full_before == [c["id"] for c in reversed(made)][:6]
    # a cursor is checked: garbage, another order's cursor, or a cursor with an offset are 400s
    cur = first["next_cursor"]
    for bad in ("order=newest&cursor=zz", "order=newest&cursor=eyJ4IjoxfQ", f"order=urgency&cursor={cur}",
                f"order=newest&cursor={cur}&offset=2"):
        r = d.get(f"/api/cases?{bad}")
        assert r.status_code == 400 and r.json["error"]["field"] == "cursor", r.json
