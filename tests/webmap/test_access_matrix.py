"""The access matrix, generated (issue 8 §6): Flask's url map × every role × a case inside / outside the
user's jurisdiction × accused / not accused, each answer checked against the declared rules of
webmap/access.py (documented in docs/intake-routing.md), personal data checked in every JSON answer and in
the Excel ledger. A route without a rule fails `test_every_route_has_a_rule`.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from openpyxl import load_workbook

from cases.auth import ROLES, create_token, create_user
from cases.ledger import export_ledger
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app
from webmap.access import RULES, rule_for

PW = "password123"
INSIDE = (X0 + 0.005, Y0 + 0.005)    # grid 990101001001001, township 990101001
OUTSIDE = (X0 + 0.03, Y0 + 0.005)    # grid 990101002001001, township 990101002
# The user of each role; city-wide roles have no case "outside" in a one-city world.
JURISDICTION = {"city_center": "990100", "county_center": "990101", "township_center": "990101001",
                "village_center": "990101001001", "grid_officer": "990101001001", "department": "990101",
                "dispatcher": "990100", "admin": "990100"}
HAS_OUTSIDE = {"township_center", "village_center", "grid_officer", "department"}
SAMPLE_ARGS = {"layer": "grid", "path": "gg.js", "package": "leaflet", "scope": "fontsource", "token_id": "1",
               "action": "supervise", "cid": "grids", "fid": "990101001001001", "rid": "GG0", "code": "CJ01",
               "fmt": "json", "ext": "csv", "token": "o311_none",
               "grid_code": "990101001001001",
               "attachment_id": "1",  # attachment 1: a photo of the inside case
               "task_id": "1",  # a 四色码 task (none exists: 404 for the roles that may close one)
               "key": "q_none"}  # a queued submission (none has that key: 404)


def may_see_personal_data(role: str, user: dict, case: dict) -> bool:
    """docs/intake-routing.md, written out independently of cases.auth: the dispatcher; the grid's officer
    when the village level handles it; the lead or co departments; the center of the handling region."""
    if role == "dispatcher":
        return True
    if role == "grid_officer":
        return case["grid_code"] == user["grid_code"] and case["handling_level"] in ("grid", "village")
    if role == "department":
        return user["department_code"] in [case["lead_department"], *(case["co_departments"] or [])]
    if role in ("village_center", "township_center", "county_center"):
        return case["handler_region"] == user["region_code"]
    return False


def case_body(key, point, phone, category="CJ01", **kw):
    return {"channel": "hotline_12345", "kind": "投诉", "category_code": category, "title": f"矩阵 {key}",
            "content": "x", "reporter_name": "王小明", "reporter_phone": phone, "lon": point[0], "lat": point[1],
            "submission_key": key, **kw}


@pytest.fixture
def world(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    app = create_app(settings=Settings(secret_key="test"), db=db)
    from cases.service import CaseService

    svc = CaseService(db)
    disp = create_user(db, "m_disp", PW, "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    inside = svc.intake(case_body("A", INSIDE, "13700000001"), disp)
    outside = svc.intake(case_body("B", OUTSIDE, "13700000002", category="GD01"), disp)
    assert inside["lead_department"] and inside["lead_department"] != outside["lead_department"]
    import io

    from PIL import Image

    from cases.attachments import add_photos, prepare_photo

    png = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 128, 0)).save(png, "PNG")
    photo = add_photos(db, svc, None, inside["id"], [prepare_photo(png.getvalue(), "a.png")], intake=True)
    assert [p["id"] for p in photo] == [int(SAMPLE_ARGS["attachment_id"])]
    users, clients, accused = {}, {}, {}
    for i, role in enumerate(ROLES):
        extra = {}
        if role == "grid_officer":
            extra = {"grid_code": inside["grid_code"]}
        if role == "department":
            extra = {"department_code": inside["lead_department"]}
        name = f"m_{role}"
        u = disp if role == "dispatcher" else create_user(db, name, PW, role, JURISDICTION[role],
                                                          hash_method="pbkdf2:sha256:1000", **extra)
        users[role] = {"id": u.id, "username": u.username, "region_code": u.region_code, "grid_code": u.grid_code,
                       "department_code": u.department_code, "user": u}
        # an accusation inside the jurisdiction naming this very person
        accused[role] = svc.intake(case_body(f"C-{role}", INSIDE, f"1370000{1000 + i:04d}", kind="举报",
                                             accused_persons=[u.username]), disp)
        c = app.test_client()
        r = c.post("/api/login", json={"username": u.username, "password": PW})
        assert r.status_code == 200, r.json
        c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]
        clients[role] = c
    rows = {r["id"]: r for r in db.fetchall("SELECT id, case_no, grid_code, handling_level, handler_region, "
                                            "lead_department, co_departments, reporter_phone FROM case_record")}
    return {"app": app, "db": db, "users": users, "clients": clients, "inside": inside, "outside": outside,
            "accused": accused, "rows": rows}


def url_for(rule, **values) -> str:
    args = {**SAMPLE_ARGS, **values}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(args[m.group(1)]), rule.rule)


def routes(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_route_has_a_rule(db):
    app = create_app(settings=Settings(secret_key="test"), db=db)
    missing = [f"{m} {r.rule} ({r.endpoint})" for r, m in routes(app) if rule_for(r.endpoint, m) is None]
    assert not missing, ("routes without an access rule — declare each in webmap/access.py RULES and "
                         "docs/intake-routing.md: " + ", ".join(missing))
    existing = {(r.endpoint, m) for r, m in routes(app)}
    assert not set(RULES) - existing, f"rules for routes that do not exist: {sorted(set(RULES) - existing)}"


def _request(client, rule, method, **values):
    body = {"reason": "矩阵检查"} if method != "GET" else None
    if rule.endpoint == "cases_api.pin":
        body = {"lon": INSIDE[0], "lat": INSIDE[1]}
    if rule.endpoint in ("cases_api.intake", "cases_api.queue_submission"):
        body = case_body(f"I-{values.get('who', 'x')}-{method}", INSIDE, "13700009999")
    if rule.endpoint == "cases_api.login":
        body = {"username": "nobody", "password": "wrong-password"}
    if rule.endpoint == "cases_api.new_token":
        body = {"name": "matrix"}
    if rule.endpoint == "cases_api.rates":
        values["query"] = "?month=2026-10"
    if rule.endpoint.startswith("review.") and rule.endpoint not in ("review.page", "review.units"):
        values["query"] = "?ids=1" if rule.endpoint == "review.cases_of" else "?unit=990101001001&month=2026-10"
    if rule.endpoint == "wall.cases_in_window":
        values["query"] = f"?bbox={X0 - 0.01},{Y0 - 0.01},{X0 + 0.05},{Y0 + 0.02}&zoom=17"
    url = url_for(rule, **{k: v for k, v in values.items() if k not in ("who", "query")}) + values.get("query", "")
    return client.open(url, method=method, json=body)


def _text(r) -> str:
    """The answer as text (a photo's bytes too: reporter data must not hide in them either)."""
    return r.get_data().decode("utf-8", "replace")


def _check_personal(world, role, response_text: str, where: str):
    """Every reporter phone in an answer belongs to a case this role may see in full."""
    user = world["users"][role]
    for case in world["rows"].values():
        if case["reporter_phone"] and case["reporter_phone"] in response_text:
            assert may_see_personal_data(role, user, case), f"{role} sees {case['case_no']}'s phone in {where}"


def test_anonymous_and_tokens_on_every_route(world, db):
    app = world["app"]
    anon = app.test_client()
    disp = world["users"]["dispatcher"]["user"]
    read_only = app.test_client()
    read_only.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + create_token(db, disp, "ro", permissions=["read"])[
        "token"]
    full = app.test_client()
    full.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + create_token(db, disp, "full")["token"]
    case_id = world["inside"]["id"]
    for rule, method in routes(app):
        decl = rule_for(rule.endpoint, method)
        where = f"{method} {rule.rule}"
        r = _request(anon, rule, method, case_id=case_id, who="anon")
        assert r.status_code < 500, where
        if decl.auth != "public":
            assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized", where
        else:
            assert r.status_code != 401 or rule.endpoint == "cases_api.login", where
        for client, perms in ((read_only, {"read"}), (full, {"read", "intake", "act"})):
            r = _request(client, rule, method, case_id=case_id, who=f"tok{len(perms)}")
            assert r.status_code < 500, where
            refused = decl.token is None or (decl.token != "public" and decl.token not in perms)
            token_refused = r.status_code == 403 and r.json["error"].get("field") == "Authorization"
            assert token_refused == refused, (where, perms, r.status_code, _text(r)[:200])
            if r.is_json:
                _check_personal(world, "dispatcher", _text(r), where)
        if decl.personal or decl.case or decl.lists_cases:
            r = _request(full, rule, method, case_id=case_id, who="nostore")
            assert r.headers.get("Cache-Control") == "no-store", where


def test_role_matrix(world):
    for role in ROLES:
        _role_matrix(world, role)


def _role_matrix(world, role):
    app, db = world["app"], world["db"]
    c = world["clients"][role]
    cells = {"inside": world["inside"], "accused": world["accused"][role]}
    if role in HAS_OUTSIDE:
        cells["outside"] = world["outside"]
    for rule, method in routes(app):
        decl = rule_for(rule.endpoint, method)
        where = f"{role} {method} {rule.rule}"
        if decl.auth == "public" and rule.endpoint not in ("cases_api.logout", "cases_api.login"):
            r = _request(c, rule, method, case_id=world["inside"]["id"], who=role)
            assert r.status_code < 500, where
            continue
        if rule.endpoint in ("cases_api.logout", "cases_api.login"):
            continue  # a session's own life: tests/webmap/test_security.py
        if decl.case:
            for cell, case in cells.items():
                before = db.fetchone("SELECT version FROM case_record WHERE id = %s", (case["id"],))["version"]
                r = _request(c, rule, method, case_id=case["id"], who=role)
                w = f"{where} [{cell}]"
                assert r.status_code < 500, w
                if decl.roles is not None and role not in decl.roles:
                    assert r.status_code == 403, (w, r.status_code)
                elif cell == "inside":
                    assert r.status_code != 404, (w, r.json)
                    if method == "GET":
                        assert r.status_code == 200, (w, r.json)
                else:  # outside the jurisdiction or accused: as if the case did not exist, nothing written
                    assert r.status_code == 404, (w, r.status_code, r.json)
                    assert db.fetchone("SELECT version FROM case_record WHERE id = %s",
                                       (case["id"],))["version"] == before, w
                    assert case["case_no"] not in _text(r), w
                _check_personal(world, role, _text(r), w)
                if cell == "inside" and rule.endpoint == "cases_api.get_case":
                    row = world["rows"][case["id"]]
                    shown = r.json["reporter_phone"] == row["reporter_phone"]
                    assert shown == may_see_personal_data(role, world["users"][role], row), w
            continue
        own_token = create_token(db, world["users"][role]["user"], "own")["id"]  # revoking one's own token
        r = _request(c, rule, method, case_id=world["inside"]["id"], who=role, token_id=own_token)
        assert r.status_code < 500, where
        if decl.roles is not None and role not in decl.roles:
            assert r.status_code == 403, (where, r.status_code)
        elif decl.auth == "person" or decl.lists_cases or rule.endpoint in ("cases_api.me", "cases_api.intake",
                                                                             "cases_api.queue_submission"):
            assert r.status_code in (200, 201, 202), (where, r.status_code, r.json)
        text = _text(r)
        if decl.lists_cases:
            assert world["accused"][role]["case_no"] not in text, where
            if role in HAS_OUTSIDE:
                assert world["outside"]["case_no"] not in text, where
        if rule.endpoint == "cases_api.list_cases":
            ids = {x["id"] for x in r.json["cases"]}
            assert world["inside"]["id"] in ids and world["accused"][role]["id"] not in ids, where
        _check_personal(world, role, text, where)


def test_ledger_masks_and_scopes_for_every_role(world, tmp_path):
    start, end = dt.date(2000, 1, 1), dt.date(2100, 1, 1)
    for role in ROLES:
        user = world["users"][role]
        path = tmp_path / f"{role}.xlsx"
        export_ledger(world["db"], user["user"], path, start, end)
        cells = json.dumps([[str(v) for v in row] for row in load_workbook(path).active.iter_rows(values_only=True)],
                           ensure_ascii=False)
        _check_personal(world, role, cells, f"{role} ledger")
        assert world["accused"][role]["case_no"] not in cells, role
        assert world["inside"]["case_no"] in cells, role
        if role in HAS_OUTSIDE:
            assert world["outside"]["case_no"] not in cells, role
