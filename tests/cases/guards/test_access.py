"""Access control and confidentiality: each test reproduces a hole found in review and asserts it is closed."""
from tests.cases.guards.conftest import NOW, P1, P3, client_for

PHONE = "13812345678"


def accusation(svc, u, **kw):
    sub = {"channel": "hotline_12345", "kind": "举报", "title": "住建局工作人员收受物业公司好处费",
           "content": "向阳小区物业问题住建局不管", "category_code": "CJ01", "lon": P1[0], "lat": P1[1],
           "reporter_name": "王小明", "reporter_phone": PHONE, "reporter_id_no": "990101199001011234",
           "accused_units": ["990101-ZJ"], "accused_persons": ["990101001001001-grid_officer"]}
    sub.update(kw)
    return svc.intake(sub, u["disp"], now=NOW)


def test_duplicate_suggestions_leak_accusation_to_accused_unit(app, svc, city):
    acc = accusation(svc, city)
    zj = client_for(app, "zj")
    # the accused unit cannot read the accusation ...
    assert zj.get(f"/api/cases/{acc['id']}").status_code == 404
    assert acc["id"] not in [c["id"] for c in zj.get("/api/cases").get_json()["cases"]]
    # ... but by registering any case with the suspected whistle-blower's phone it gets it back as a duplicate
    r = zj.post("/api/cases", json={"channel": "hotline_12345", "kind": "求决", "title": "x", "category_code": "CJ01",
                                    "lon": P1[0], "lat": P1[1], "reporter_phone": PHONE,
                                    "received_at": NOW.isoformat()})
    assert r.status_code == 403  # a department handles cases, it does not register them
    # a dispatcher of the same city gets duplicate suggestions only among cases it may see
    d = client_for(app, "disp").post("/api/cases", json={
        "channel": "hotline_12345", "kind": "求决", "title": "x", "category_code": "CJ01", "lon": P1[0],
        "lat": P1[1], "reporter_phone": PHONE, "received_at": NOW.isoformat()})
    assert d.status_code == 201 and [x["id"] for x in d.get_json()["duplicates"]] == [acc["id"]]


def test_duplicate_suggestions_leak_accusation_to_accused_officer(app, svc, city):
    acc = accusation(svc, city)
    off1 = client_for(app, "off1")   # the accused person (staff code)
    assert off1.get(f"/api/cases/{acc['id']}").status_code == 404
    r = off1.post("/api/cases", json={"received_at": NOW.isoformat(), "channel": "grid_report", "kind": "求决",
                                      "title": "物业问题住建局不管",
                                      "content": "向阳小区物业问题住建局不管", "category_code": "CJ01",
                                      "lon": P1[0] + 0.0005, "lat": P1[1]})
    assert r.status_code in (200, 201), r.get_json()
    leaked = [d for d in r.get_json()["duplicates"] if d["id"] == acc["id"]]
    assert not leaked, f"accused officer learns the accusation via duplicates: {leaked}"


def test_dispatcher_of_other_county_sees_unlocated_case_with_full_pii(app, svc, city):
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "无地址", "category_code": "CJ01",
                    "address_text": "甲区某个不存在的地方", "reporter_name": "王小明", "reporter_phone": PHONE,
                    "reporter_id_no": "990101199001011234"}, city["disp"], now=NOW)
    assert c["needs_pin"]
    other = client_for(app, "disp_other")   # dispatcher of 990102, not 990101 / 990100
    r = other.get(f"/api/cases/{c['id']}")
    assert r.status_code == 404, ("out-of-jurisdiction dispatcher reads the case", r.get_json().get("county_code"),
                                  r.get_json().get("reporter_phone"), r.get_json().get("reporter_id_no"))


def test_merge_hands_accusation_to_the_accused(app, svc, city):
    master = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
                         "lon": P1[0], "lat": P1[1]}, city["disp"], now=NOW)
    assert master["lead_department"] == "990101-ZJ"
    acc = accusation(svc, city)
    import pytest

    from gis.errors import Conflict
    with pytest.raises(Conflict, match="被举报"):
        svc.act(city["disp"], acc["id"], "merge", data={"master_id": master["id"]}, now=NOW)
    zj = client_for(app, "zj")
    m = zj.get(f"/api/cases/{master['id']}").get_json()
    ev = [e for e in m["events"] if e["action"] == "merged_in"]
    # the accused unit handles the case the accusation was merged into and sees its id / number
    assert not ev, f"accused unit sees merged accusation: {ev[0]['data']}"


def test_any_role_can_pin_and_reroute_an_active_case(app, svc, city):
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
                    "lon": P1[0], "lat": P1[1]}, city["disp"], now=NOW)
    svc.act(city["off1"], c["id"], "sign", now=NOW)
    svc.act(city["off1"], c["id"], "start", now=NOW)
    off1 = client_for(app, "off1")
    r = off1.post(f"/api/cases/{c['id']}/pin", json={"lon": P3[0], "lat": P3[1]})
    row = svc.db.fetchone("SELECT status, grid_code, lead_department, handling_level, signed_at, needs_pin "
                          "FROM case_record WHERE id=%s", (c["id"],))
    assert r.status_code == 403
    assert row["grid_code"] == "990101001001001", dict(row)
    # a dispatcher cannot re-pin a case that is already being handled either
    r = client_for(app, "disp").post(f"/api/cases/{c['id']}/pin", json={"lon": P3[0], "lat": P3[1]})
    assert r.status_code == 409 and r.get_json()["error"]["field"] == "status"


def test_action_body_set_rewrites_routing_without_trace(app, svc, city):
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
                    "lon": P1[0], "lat": P1[1]}, city["disp"], now=NOW)
    off1 = client_for(app, "off1")
    r = off1.post(f"/api/cases/{c['id']}/actions/sign",
                  json={"set": {"lead_department": "990101-GD", "handling_level": "city",
                                "county_code": "990199", "township_code": "990199001",
                                "village_code": "990199001001", "grid_code": "990101002001001"}})
    assert r.status_code == 200  # the sign itself is legal; the smuggled "set" is ignored
    row = svc.db.fetchone("SELECT lead_department, county_code, grid_code FROM case_record WHERE id=%s", (c["id"],))
    assert row == {"lead_department": "990101-ZJ", "county_code": "990101", "grid_code": "990101001001001"}


def test_action_body_set_bypasses_conflict_guard(svc, city):
    acc = accusation(svc, city)
    # a dispatcher cannot pick the accused unit as lead through reassign ...
    import pytest

    from gis.errors import Unprocessable
    with pytest.raises(Unprocessable):
        svc.act(city["disp"], acc["id"], "reassign", data={"lead_department": "990101-ZJ"}, now=NOW)
    # ... but can through the undocumented "set" of any other action
    svc.act(city["county"], acc["id"], "supervise", data={"set": {"lead_department": "990101-ZJ"}}, now=NOW)
    row = svc.db.fetchone("SELECT lead_department FROM case_record WHERE id=%s", (acc["id"],))
    assert row["lead_department"] != "990101-ZJ", "accused unit made lead department"
