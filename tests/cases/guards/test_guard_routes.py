"""Every route to a case holds the guard: reads, every action, re-routing, reminders, merges, replays, counts.

Routes are enumerated from the Flask url map and actions from the transition table, so a route or action
added later is covered without editing this file.
"""
import datetime as dt

import pytest

from cases import scheduler, workflow
from cases.notify import MemoryNotifier
from gis.errors import Conflict, Forbidden, Unprocessable
from tests.cases.guards.conftest import NOW, P1, P2, P3, client_for

BASE = {"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
        "lon": P1[0], "lat": P1[1]}


def accusation(svc, city, units=("住建局",), persons=("990101001001001-grid_officer",), at=P1, **kw):
    return svc.intake({**BASE, "kind": "举报", "title": "举报住建局和网格员", "lon": at[0], "lat": at[1],
                       "reporter_name": "王小明", "reporter_phone": "13812345678",
                       "accused_units": list(units), "accused_persons": list(persons), **kw}, city["disp"], now=NOW)


def _case_urls(app, case_id):
    """(method, url) of every route taking a case id, actions expanded over the transition table."""
    out = []
    for rule in app.url_map.iter_rules():
        if "case_id" not in rule.arguments:
            continue
        other = {arg: 1 for arg in rule.arguments - {"case_id", "action"}}  # e.g. an attachment id
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if "action" in rule.arguments:
                out += [(method, rule.build({"case_id": case_id, "action": a, **other}, append_unknown=False)[1])
                        for a in workflow.ACTIONS]
            else:
                out.append((method, rule.build({"case_id": case_id, **other}, append_unknown=False)[1]))
    return out


BODY = {"reason": "x", "reply": "已处理", "master_id": 1, "days": 3, "evaluation": "满意", "lon": P1[0],
        "lat": P1[1], "lead_department": "990101-ZJ"}


@pytest.mark.parametrize("who", ["off1", "zj", "cityzj"])
def test_every_case_route_answers_the_accused_as_if_the_case_did_not_exist(app, svc, city, who):
    acc = accusation(svc, city)
    missing = 10**9
    c = client_for(app, who)
    urls = _case_urls(app, acc["id"])
    assert len(urls) >= len(workflow.ACTIONS) + 3
    before = svc.db.fetchone("SELECT version, status FROM case_record WHERE id = %s", (acc["id"],))
    for method, url in urls:
        r = c.open(url, method=method, json=BODY)
        ghost = c.open(url.replace(f"/{acc['id']}", f"/{missing}", 1), method=method, json=BODY)
        assert (r.status_code, (r.get_json() or {}).get("error", {}).get("code")) == \
            (ghost.status_code, (ghost.get_json() or {}).get("error", {}).get("code")), (who, method, url, r.get_json())
        assert r.status_code in (403, 404), (who, method, url, r.status_code)
    assert svc.db.fetchone("SELECT version, status FROM case_record WHERE id = %s", (acc["id"],)) == before


def test_officer_accused_by_staff_code_never_sees_signs_or_replies(app, svc, city):
    # a 投诉 at village level would go to the grid's officer; naming him by staff code keeps it from him
    c = svc.intake({**BASE, "kind": "投诉", "reporter_phone": "13812345678",
                    "accused_persons": ["990101001001001-grid_officer"]}, city["disp"], now=NOW)
    row = svc.db.fetchone("SELECT officer_code, handling_level FROM case_record WHERE id = %s", (c["id"],))
    assert row["officer_code"] is None and row["handling_level"] == "village"
    o = client_for(app, "off1")
    assert o.get(f"/api/cases/{c['id']}").status_code == 404
    for action in ("sign", "reply", "return", "progress", "escalate"):
        assert o.post(f"/api/cases/{c['id']}/actions/{action}", json={"reason": "x", "reply": "y"}).status_code == 404
    assert c["id"] not in [x["id"] for x in o.get("/api/cases?limit=1000").get_json()["cases"]]
    # the village center handles it instead
    assert client_for(app, "vill1").post(f"/api/cases/{c['id']}/actions/sign", json={}).status_code == 200


def test_correct_routing_reassign_and_escalate_never_pick_the_accused(svc, city):
    acc = accusation(svc, city, units=["甲区住建局"], persons=[])
    for action in ("reassign", "correct_routing"):
        with pytest.raises(Unprocessable):
            svc.act(city["disp"], acc["id"], action, reason="改派", data={"lead_department": "990101-ZJ"}, now=NOW)
    # escalation re-routes through the guard too: never to the accused bureau, at any level
    c = svc.intake({**BASE, "kind": "投诉", "accused_units": ["甲区住建局"]}, city["disp"], now=NOW)
    handlers = {"990100-ZJ": "cityzj", "990101-GD": "gd", "990101001001": "vill1", "990101001": "town1",
                "990101": "county"}
    levels = []
    while True:
        row = svc.db.fetchone("SELECT * FROM case_record WHERE id = %s", (c["id"],))
        assert row["lead_department"] != "990101-ZJ" and "990101-ZJ" not in row["co_departments"]
        levels.append(row["handling_level"])
        if row["handling_level"] == "city":
            break
        svc.act(city[handlers[row["lead_department"] or row["handler_region"]]], c["id"], "sign", now=NOW)
        svc.act(city["disp"], c["id"], "escalate", reason="升级", now=NOW)
    assert levels[-1] == "city" and len(levels) >= 3, levels


def test_rerouting_out_of_ones_jurisdiction_is_refused(svc, city):
    c = svc.intake(BASE, city["disp"], now=NOW)
    svc.act(city["disp"], c["id"], "correct_routing", reason="先交乡镇", data={"grid_code": "990101001001002"},
            now=NOW)
    # the township center of 东风街道 may move it inside its township, not into 新河镇
    with pytest.raises(Forbidden):
        svc.act(city["town1"], c["id"], "reassign", data={"grid_code": "990101002001001"}, now=NOW)
    assert svc.act(city["town1"], c["id"], "reassign", data={"grid_code": "990101001001001"},
                   now=NOW)["grid_code"] == "990101001001001"
    # the county may move it anywhere in the county
    assert svc.act(city["county"], c["id"], "reassign", data={"grid_code": "990101002001001"},
                   now=NOW)["grid_code"] == "990101002001001"


def test_a_committed_action_never_answers_404(app, svc, city):
    """A department's 2nd return escalates the case to the next level, which is never handed back to the
    department that refused it: the city's bureau takes it, out of the county bureau's view."""
    c = svc.intake(BASE, city["disp"], now=NOW)
    zj = client_for(app, "zj")
    for i in range(2):
        if i:
            svc.act(city["disp"], c["id"], "dispatch", now=NOW)
        r = zj.post(f"/api/cases/{c['id']}/actions/return", json={"reason": "不属于本部门"})
        assert r.status_code == 200, r.get_json()
    body = r.get_json()
    row = svc.db.fetchone("SELECT status, handling_level, lead_department, version FROM case_record WHERE id = %s",
                          (c["id"],))
    assert row["handling_level"] == "township" and row["lead_department"] == "990100-ZJ"
    assert body["moved_out"] and body["committed"] and body["status"] == row["status"] == "dispatched"
    assert body["version"] == row["version"] and "reporter_phone" not in body and "events" not in body


def test_reminders_skip_the_accused_and_delivery_rechecks(svc, city):
    # the county center is accused: the 举报 goes to the city, and so do its 催办 and 督办
    acc = accusation(svc, city, units=["甲区综治中心"], persons=[])
    row = svc.db.fetchone("SELECT handler_region FROM case_record WHERE id = %s", (acc["id"],))
    assert row["handler_region"] == "990100"
    # a plain case handled by the 住建 bureau, and later (through a merge elsewhere) accusing it
    plain = svc.intake(BASE, city["disp"], now=NOW)
    later = NOW + dt.timedelta(days=20)
    scheduler.scan(svc.db, later)
    recips = {r["recipient"] for r in svc.db.fetchall("SELECT recipient FROM notification WHERE case_id = %s",
                                                       (acc["id"],))}
    assert recips and not recips & {"ZZ990101", "990101", "ZZ990101001", "ZZ990101001001"}, recips
    assert "990101-ZJ" in {r["recipient"] for r in svc.db.fetchall(
        "SELECT recipient FROM notification WHERE case_id = %s", (plain["id"],))}
    svc.db.execute("UPDATE case_record SET accused_units = '{990101-ZJ}' WHERE id = %s", (plain["id"],))
    n = MemoryNotifier()
    out = scheduler.deliver(svc.db, n, later)
    assert out["suppressed"] >= 1
    assert not [x for x in n.sent if x["case_id"] == plain["id"] and x["recipient"] == "990101-ZJ"]


def test_merge_refused_both_ways_when_the_accused_handles_a_family_member(app, svc, city):
    plain = svc.intake(BASE, city["disp"], now=NOW)            # handled by the 住建 bureau
    acc = accusation(svc, city, units=["甲区住建局"], persons=[])  # accuses it
    d = client_for(app, "disp")
    for child, master in ((acc, plain), (plain, acc)):
        r = d.post(f"/api/cases/{child['id']}/actions/merge", json={"master_id": master["id"]})
        assert r.status_code == 409 and "被举报" in r.get_json()["error"]["message"], r.get_json()
        with pytest.raises(Conflict):
            svc.act(city["disp"], child["id"], "merge", data={"master_id": master["id"]}, now=NOW)
    rows = svc.db.fetchall("SELECT status, merged_into FROM case_record WHERE id IN (%s, %s)", (plain["id"], acc["id"]))
    assert all(r["merged_into"] is None and r["status"] != "merged" for r in rows)


def test_merge_passes_the_guard_on_to_the_whole_family(app, svc, city):
    """A merge the guard allows: the family shares one guard, so the accused never reads the unified reply."""
    plain = svc.intake({**BASE, "category_code": "GD01", "title": "电压不稳"}, city["disp"], now=NOW)  # 供电
    acc = accusation(svc, city, units=["甲区住建局"], persons=[], category_code="GD01")
    for child, master in ((acc, plain),):
        svc.act(city["disp"], child["id"], "merge", data={"master_id": master["id"]}, now=NOW)
    zj = client_for(app, "zj")
    for cid in (plain["id"], acc["id"]):
        assert zj.get(f"/api/cases/{cid}").status_code == 404
    svc.act(city["gd"], plain["id"], "sign", now=NOW)
    svc.act(city["gd"], plain["id"], "reply", data={"reply": "统一答复：已更换变压器"}, now=NOW)
    for cid in (plain["id"], acc["id"]):
        assert zj.get(f"/api/cases/{cid}").status_code == 404
    # and the family's master can no longer be handed to the accused
    with pytest.raises((Unprocessable, Conflict)):
        svc.act(city["disp"], plain["id"], "reassign", data={"lead_department": "990101-ZJ"}, now=NOW)


def test_replayed_submission_key_reveals_nothing_and_refuses_other_content(app, svc, city):
    sub = {**BASE, "kind": "举报", "accused_units": ["甲区住建局"], "submission_key": "12345-K-1",
           "reporter_phone": "13812345678", "received_at": NOW.isoformat()}
    first = client_for(app, "disp").post("/api/cases", json=sub)
    assert first.status_code == 201
    same = client_for(app, "disp").post("/api/cases", json=sub)
    assert same.status_code == 200 and same.get_json()["id"] == first.get_json()["id"]
    other = client_for(app, "disp_other").post("/api/cases", json=sub)       # cannot see the case
    body = other.get_json()
    assert other.status_code == 200 and body["duplicate_submission"] is True
    assert not {"id", "case_no", "status", "title", "routing"} & set(body), body
    assert svc.intake(sub, None, now=NOW).keys() == {"duplicate_submission", "submission_key"}  # citizen channel
    for changed in ({"title": "别的内容"}, {"content": "另一封信"}, {"accused_units": []}, {"reporter_phone": "1"}):
        r = client_for(app, "disp_other").post("/api/cases", json={**sub, **changed})
        assert r.status_code == 409 and r.get_json()["error"]["field"] == "submission_key", changed
    assert svc.db.fetchone("SELECT count(*) AS n FROM case_record")["n"] == 1


def test_repeat_counts_are_scoped(app, svc, city):
    ids = [svc.intake({**BASE, "lon": p[0], "lat": p[1], "reporter_phone": "13812345678"}, city["disp"],
                      now=NOW)["id"] for p in (P1, P2, P3)]
    assert client_for(app, "disp").get(f"/api/cases/{ids[0]}/repeats").get_json()["by_person"] == 3
    assert client_for(app, "off1").get(f"/api/cases/{ids[0]}/repeats").get_json()["by_person"] == 1
    assert client_for(app, "town1").get(f"/api/cases/{ids[0]}/repeats").get_json()["by_person"] == 2
