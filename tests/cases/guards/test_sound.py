"""Routes the review found sound: the accused are blocked everywhere, personal data is masked."""
import datetime as dt

from cases.ledger import export_ledger
from tests.cases.guards.conftest import NOW, P1, P2, client_for
from tests.cases.guards.test_access import accusation


def test_accused_blocked_everywhere_else(app, svc, city, tmp_path):
    acc = accusation(svc, city)
    for u in ("zj", "off1"):
        c = client_for(app, u)
        assert c.get(f"/api/cases/{acc['id']}").status_code == 404
        assert c.get(f"/api/cases/{acc['id']}/repeats").status_code == 404
        assert c.post(f"/api/cases/{acc['id']}/actions/sign", json={}).status_code == 404
        assert c.post(f"/api/cases/{acc['id']}/pin", json={"lon": P1[0], "lat": P1[1]}).status_code in (403, 404)
        assert acc["id"] not in [x["id"] for x in c.get("/api/cases?limit=1000").get_json()["cases"]]
        cl = c.get("/api/clusters?min_samples=2&days=400").get_json()
        assert all(acc["id"] not in k["case_ids"] for k in cl["clusters"])
        info = export_ledger(svc.db, city[u], tmp_path / f"{u}.xlsx", dt.date(2026, 3, 1), dt.date(2026, 3, 31))
        assert info["rows"] == 0
    # merge master lookup is scoped
    other = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "t", "category_code": "CJ01",
                        "lon": P2[0], "lat": P2[1]}, city["disp"], now=NOW)
    r = client_for(app, "off2").post(f"/api/cases/{other['id']}/actions/merge", json={"master_id": acc["id"]})
    assert r.status_code in (403, 404)


def test_pii_masked_for_non_handlers(app, svc, city):
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "t", "category_code": "CJ01",
                    "lon": P1[0], "lat": P1[1], "reporter_name": "王小明", "reporter_phone": "13812345678",
                    "reporter_id_no": "990101199001011234"}, city["disp"], now=NOW)
    for u in ("town1", "county", "admin"):
        j = client_for(app, u).get(f"/api/cases/{c['id']}").get_json()
        assert j["reporter_phone"] == "138****5678" and j["pii_masked"], u
        assert "reporter_key" not in j
    j = client_for(app, "off1").get(f"/api/cases/{c['id']}").get_json()
    assert j["reporter_phone"] == "13812345678"
