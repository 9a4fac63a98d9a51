"""Open311 GeoReport v2 at /open311/v2: read with the PyPI client `georeport` against a live server, posted with
plain HTTP as a 12345 system would (form-encoded, api_key), JSON and XML, the Chinese profile's extensions."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
from georeport import GeoReport

from cases.auth import create_user, issue_token
from cases.setup import seed_routing_rules
from gis.coords import gcj_to_wgs, wgs_to_bd, wgs_to_gcj
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

FAST = "pbkdf2:sha256:1000"


@pytest.fixture
def city(db, serve, tmp_path, monkeypatch):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    hotline = create_user(db, "hotline", "password123", "dispatcher", "990100", hash_method=FAST)
    off2 = create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002",
                       hash_method=FAST)
    base = serve()
    return {"base": base, "v2": base + "/open311/v2", "key": issue_token(db, hotline, "12345"),
            "off2": issue_token(db, off2, "officer")}


def _post(city, fmt="json", **fields):
    data = {"api_key": city["key"], "service_code": "CJ01", "description": "小区夜间施工噪音扰民",
            "first_name": "小明", "last_name": "王", "phone": "13700001111", "attribute[kind]": "投诉", **fields}
    return requests.post(f"{city['v2']}/requests.{fmt}", data=data, timeout=30)


def _netrc(tmp_path, monkeypatch, token):
    """georeport sends no api_key on reads; requests (which it uses) takes HTTP Basic credentials from ~/.netrc."""
    rc = tmp_path / "netrc"
    rc.write_text(f"machine 127.0.0.1 login georeport password {token}\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))


def test_georeport_client_reads_services_and_requests(city, tmp_path, monkeypatch):
    lon, lat = X0 + 0.014, Y0 + 0.005
    gx, gy = (float(v) for v in wgs_to_gcj(lon, lat))
    r = _post(city, lat=gy, long=gx, crs="gcj02", submission_key="12345-0001")
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]

    for fmt in ("json", "xml"):
        client = GeoReport(city["v2"], output_format=fmt)
        svcs = client.get_service_list()
        assert [s["service_code"] for s in svcs] == ["CJ", "CJ01", "GD", "GD01"], fmt
        cj01 = next(s for s in svcs if s["service_code"] == "CJ01")
        assert cj01["service_name"] == "物业管理" and cj01["group"] == "城乡建设"
        definition = client.get_service_definition("CJ01")
        attrs = definition["attributes"] if fmt == "json" else definition["attributes"]["attribute"]
        kind = next(a for a in attrs if a["code"] == "kind")
        values = kind["values"] if fmt == "json" else kind["values"]["value"]
        assert [v["key"] for v in values] == ["求决", "投诉", "举报", "建议", "咨询", "求助"]
    anonymous = GeoReport(city["v2"]).get_service_requests()
    assert anonymous == []  # public reads by the spec, but citizens' cases are not public

    _netrc(tmp_path, monkeypatch, city["key"])
    client = GeoReport(city["v2"])
    reqs = client.get_service_requests(status="open")
    assert [x["service_request_id"] for x in reqs] == [rid]
    one = client.get_service_request(rid)
    assert one["status"] == "open" and one["service_code"] == "CJ01" and one["service_name"] == "物业管理"
    assert one["lat"] == pytest.approx(lat, abs=1e-7) and one["long"] == pytest.approx(lon, abs=1e-7)
    assert one["grid_code"] == "990101001001002" and one["channel_zh"] == "12345热线" and one["kind"] == "投诉"
    assert one["agency_responsible"] and one["expected_datetime"] > one["requested_datetime"]
    assert "13700001111" not in str(one) and "王小明" not in str(one)
    assert [u["action_zh"] for u in one["updates"]][:1] == ["接诉"]
    assert client.get_service_requests(status="closed") == []
    xml_one = GeoReport(city["v2"], output_format="xml").get_service_request(rid)
    assert xml_one["service_request_id"] == rid and xml_one["status"] == "open"
    assert xml_one["updates"]["update"][0]["action_zh"] == "接诉"
    # the officer of another grid sees nothing of it
    _netrc(tmp_path, monkeypatch, city["off2"])
    assert [x["service_request_id"] for x in GeoReport(city["v2"]).get_service_requests()] == [rid]
    with pytest.raises(requests.HTTPError) as e:
        _netrc(tmp_path, monkeypatch, "ggt_wrong")
        GeoReport(city["v2"]).get_service_requests()
    assert e.value.response.status_code == 401


def test_a_12345_system_posts_a_case(db, city):
    lon, lat = X0 + 0.004, Y0 + 0.005
    bx, by = (float(v) for v in wgs_to_bd(lon, lat))
    r = _post(city, lat=by, long=bx, crs="BD-09", submission_key="12345-0002")
    assert r.status_code == 201, r.text
    made = r.json()[0]
    row = db.fetchone("SELECT id, ST_X(geom) lon, ST_Y(geom) lat, reply_due_at, reporter_name, reporter_phone, kind, "
                      "channel, grid_code, orig_crs FROM case_record WHERE case_no = %s", (made["service_request_id"],))
    assert row["lon"] == pytest.approx(lon, abs=1e-7) and row["lat"] == pytest.approx(lat, abs=1e-7)
    assert row["orig_crs"] == "BD-09" and row["grid_code"] == "990101001001001" == made["grid_code"]
    assert (row["reporter_name"], row["reporter_phone"], row["kind"], row["channel"]) == \
        ("王小明", "13700001111", "投诉", "hotline_12345")
    from cases.calendar import to_local

    assert made["expected_datetime"] == to_local(row["reply_due_at"]).isoformat()
    assert made["token"] == "12345-0002" and made["center_code"].startswith("ZZ")
    again = _post(city, lat=by, long=bx, crs="BD-09", submission_key="12345-0002")
    assert again.status_code == 200 and again.json()[0]["service_request_id"] == made["service_request_id"]
    # read back in GCJ-02 and BD-09
    got = requests.get(f"{city['v2']}/requests/{made['service_request_id']}.json",
                       params={"api_key": city["key"], "crs": "gcj02"}, timeout=30).json()[0]
    wx, wy = (float(v) for v in gcj_to_wgs(got["long"], got["lat"]))
    assert (wx, wy) == (pytest.approx(lon, abs=1e-7), pytest.approx(lat, abs=1e-7)) and got["crs"] == "GCJ-02"
    # an address only, the XML way
    r = _post(city, fmt="xml", address_string="测试市甲区新河镇柳树村一组5号", channel="网上信访")
    assert r.status_code == 201, r.text
    req = ET.fromstring(r.content).find("request")
    token = req.findtext("token")
    assert req.findtext("grid_code") == "990101002001001" and token.startswith("o311_")
    # anyone holding the server-issued token resolves it; a client's own key only with an api_key
    t = requests.get(f"{city['v2']}/tokens/{token}.json", timeout=30)
    assert t.json() == [{"service_request_id": req.findtext("service_request_id"), "token": token}]
    assert requests.get(f"{city['v2']}/tokens/12345-0002.json", timeout=30).status_code == 404
    assert requests.get(f"{city['v2']}/tokens/12345-0002.json", params={"api_key": city["key"]},
                        timeout=30).json()[0]["service_request_id"] == made["service_request_id"]


def test_bad_posts_name_the_field(city):
    cases = [({"api_key": ""}, 401, "api_key"),
             ({"service_code": "NOPE", "address_string": "向阳社区"}, 400, "service_code"),
             ({"lat": "91", "long": str(X0)}, 400, "lat"), ({"lat": "abc", "long": str(X0)}, 400, "lat"),
             ({"lat": str(Y0)}, 400, "long"), ({}, 400, "lat"), ({"attribute[kind]": "闲聊", "lat": str(Y0 + 0.005),
                                                                  "long": str(X0 + 0.01)}, 400, "kind")]
    for fields, status, field in cases:
        r = _post(city, **fields)
        assert r.status_code == status, (fields, r.text)
        assert r.json()["error"]["field"] == field, (fields, r.json())
    r = _post(city, fmt="xml", service_code="NOPE", lat=str(Y0 + 0.005), long=str(X0 + 0.01))
    assert r.status_code == 400
    err = ET.fromstring(r.content).find("error")
    assert err.findtext("code") == "400" and err.findtext("description").startswith("service_code")
    assert _post(city, api_key="ggt_nope").status_code == 401
    assert requests.get(f"{city['v2']}/requests.json", params={"api_key": city["key"], "crs": "EPSG:3857"},
                        timeout=30).json()["error"]["field"] == "crs"


def test_updated_after_pages_through_everything_once(city):
    ids = []
    for i in range(5):
        r = _post(city, lat=str(Y0 + 0.005), long=str(X0 + 0.001 + i * 0.007), submission_key=f"k{i}")
        ids.append(r.json()[0]["service_request_id"])
    seen, url, params = [], f"{city['v2']}/requests.json", {"api_key": city["key"], "updated_after":
                                                             "2020-01-01T00:00:00+08:00", "limit": "2"}
    for _ in range(10):
        r = requests.get(url, params=params, timeout=30)
        assert r.status_code == 200, r.text
        seen += [x["service_request_id"] for x in r.json()]
        if "next" not in r.links:
            break
        url, params = r.links["next"]["url"], {"api_key": city["key"]}
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    with_history = requests.get(f"{city['v2']}/requests.json", params={"api_key": city["key"], "extensions": "true"},
                                timeout=30).json()
    assert all(x["updates"] for x in with_history) and len(with_history) == 5
    two = requests.get(f"{city['v2']}/requests.json", params={"api_key": city["key"],
                                                              "service_request_id": ",".join(ids[:2])}, timeout=30)
    assert sorted(x["service_request_id"] for x in two.json()) == sorted(ids[:2])
    bad = requests.get(f"{city['v2']}/requests.json", params={"api_key": city["key"], "start_date": "2025-01-01",
                                                              "end_date": "2025-06-01"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "end_date"
