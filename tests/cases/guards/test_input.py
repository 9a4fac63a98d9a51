"""Requests that end in 500 instead of a 4xx."""
import pytest

from tests.cases.guards.conftest import NOW, P1, client_for

BASE = {"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
        "lon": P1[0], "lat": P1[1]}

INTAKE_BODIES = {
    "title_int": {**BASE, "title": 123},
    "title_list": {**BASE, "title": ["a"]},
    "category_list": {**BASE, "category_code": ["CJ01"]},
    "kind_list": {**BASE, "kind": ["求决"]},
    "address_int": {k: v for k, v in {**BASE, "address_text": 5}.items() if k not in ("lon", "lat")},
    "phone_int": {**BASE, "reporter_phone": 13812345678},
    "name_dict": {**BASE, "reporter_name": {"a": 1}},
    "content_list": {**BASE, "content": ["a", "b"]},
    "submission_key_dict": {**BASE, "submission_key": {"a": 1}},
    "submission_key_list": {**BASE, "submission_key": ["a"]},
    "received_at_int": {**BASE, "received_at": 12345},
    "received_at_year1": {**BASE, "received_at": "0001-01-01T00:00:00"},
    "received_at_9999": {**BASE, "received_at": "9999-12-31T23:00:00"},
    "crs_list": {**BASE, "crs": ["EPSG:4326"]},
    "channel_list": {**BASE, "channel": ["hotline_12345"]},
    "accused_nul": {**BASE, "accused_units": ["a\x00b"]},
    "title_nul": {**BASE, "title": "a\x00b"},
}


@pytest.mark.parametrize("name", list(INTAKE_BODIES))
def test_intake_odd_types_are_4xx(app, name):
    c = client_for(app, "disp")
    r = c.post("/api/cases", json=INTAKE_BODIES[name])
    assert r.status_code < 500, (name, r.status_code, r.get_json())


ACTION_BODIES = [
    ("request_extension", {"days": "abc"}, ["sign", "start"]),
    ("request_extension", {"days": [1]}, ["sign", "start"]),
    ("request_extension", {"days": 10**12}, ["sign", "start"]),
    ("merge", {"master_id": "abc"}, []),
    ("merge", {"master_id": [1]}, []),
    ("merge", {"master_id": 10**30}, []),
    ("reassign", {"grid_code": ["x"]}, []),
    ("reassign", {"category_code": ["CJ"]}, []),
    ("reassign", {"lead_department": {"a": 1}}, []),
    ("dispatch", {"grid_code": {"a": 1}}, []),
    ("sign", {"set": 5}, []),
    ("sign", {"set": {"generation": "abc"}}, []),
]


@pytest.mark.parametrize("i", range(len(ACTION_BODIES)))
def test_action_odd_types_are_4xx(app, svc, city, i):
    action, body, pre = ACTION_BODIES[i]
    case = svc.intake(BASE, city["disp"], now=NOW)
    for a in pre:
        svc.act(city["off1"], case["id"], a, now=NOW)
    who = "off1" if action in ("request_extension", "sign") else "disp"
    c = client_for(app, who)
    r = c.post(f"/api/cases/{case['id']}/actions/{action}", json=body)
    assert r.status_code < 500, (action, body, r.status_code, r.get_json())


@pytest.mark.parametrize("url", ["/api/cases/99999999999999999999", "/api/cases/99999999999999999999/repeats",
                                 "/api/locate?lon=124.305&lat=43.105&generation=99999999999",
                                 "/api/rates?month=9999-12", "/api/rates?month=0001-01",
                                 "/api/cases?status=%00", "/api/clusters?category=%00"])
def test_get_odd_args_are_4xx(app, url):
    c = client_for(app, "disp")
    r = c.get(url)
    assert r.status_code < 500, (url, r.status_code, r.get_json())


def test_action_huge_case_id(app):
    c = client_for(app, "disp")
    r = c.post("/api/cases/99999999999999999999/actions/accept", json={})
    assert r.status_code < 500, r.status_code
    r = c.post("/api/cases/99999999999999999999/pin", json={"lon": P1[0], "lat": P1[1]})
    assert r.status_code < 500, r.status_code
