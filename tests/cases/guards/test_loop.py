"""Loop correctness findings."""
import datetime as dt
import threading

from cases.service import CaseService
from tests.cases.guards.conftest import NOW, P1, client_for

BASE = {"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
        "lon": P1[0], "lat": P1[1]}
H = dt.timedelta(hours=1)


def _row(svc, cid):
    return svc.db.fetchone("SELECT status, handling_level, dispatched_at, sign_due_at, reply_due_at, returned_count, "
                           "channel, kind, emergency, received_at, accepted_at, extended_days "
                           "FROM case_record WHERE id=%s", (cid,))


def test_auto_escalation_does_not_recompute_deadlines(svc, city):
    c = svc.intake(BASE, city["disp"], now=NOW)
    svc.act(city["off1"], c["id"], "return", reason="不属于本网格", now=NOW + H)
    svc.act(city["disp"], c["id"], "dispatch", now=NOW + 2 * H)
    t = NOW + dt.timedelta(days=3)      # Thursday
    svc.act(city["off1"], c["id"], "return", reason="还是不属于", now=t)   # 2nd return -> auto escalation
    r = _row(svc, c["id"])
    assert r["status"] == "dispatched" and r["handling_level"] == "township"
    assert r["dispatched_at"] == t
    expected = svc.deadlines_for(r).as_fields()["sign_due_at"]
    assert r["sign_due_at"] == expected, f"sign due still {r['sign_due_at']}, new dispatch needs {expected}"


def test_one_return_after_escalation_escalates_again(svc, city):
    c = svc.intake(BASE, city["disp"], now=NOW)
    for i in range(2):
        if i:
            svc.act(city["disp"], c["id"], "dispatch", now=NOW + i * H)
        svc.act(city["off1"], c["id"], "return", reason="退回", now=NOW + i * H + H / 2)
    assert _row(svc, c["id"])["handling_level"] == "township"
    # the township (its center acts as handler) returns ONCE -> straight to county
    svc.act(city["town1"], c["id"], "return", reason="乡镇退回一次", now=NOW + 5 * H)
    assert _row(svc, c["id"])["handling_level"] == "township", "a single return at the new level escalated again"


def test_string_false_flags(app, svc, city):
    c = client_for(app, "disp")
    r = c.post("/api/cases", json={**BASE, "emergency": "false", "anonymous": "false",
                                   "reporter_name": "王小明", "reporter_phone": "13812345678"})
    body = r.get_json()
    row = svc.db.fetchone("SELECT emergency, anonymous, reporter_name, deadline_profile FROM case_record "
                          "WHERE id=%s", (body["id"],))
    assert (row["emergency"], row["anonymous"], row["reporter_name"]) == (False, False, "王小明"), dict(row)


def test_reply_solved_false_string(svc, city):
    c = svc.intake(BASE, city["disp"], now=NOW)
    svc.act(city["off1"], c["id"], "sign", now=NOW)
    svc.act(city["off1"], c["id"], "reply", data={"solved": "false", "reply": "无法解决"}, now=NOW)
    assert svc.db.fetchone("SELECT solved FROM case_record WHERE id=%s", (c["id"],))["solved"] is False


def test_department_intake_writes_case_then_answers_404(app, svc, city):
    zj = client_for(app, "zj")
    r = zj.post("/api/cases", json={**BASE, "category_code": "GD01", "title": "电压不稳", "submission_key": "K1"})
    n = svc.db.fetchone("SELECT count(*) n FROM case_record WHERE submission_key='K1'")["n"]
    assert not (r.status_code == 404 and n == 1), "404 returned although the case was written"


def test_accused_unit_named_by_name_sees_accusation(app, svc, city):
    # the 12345 import format allows 被举报单位 as names; the guard compares codes only
    acc = svc.intake({**BASE, "kind": "举报", "title": "街道办主任违规", "accused_units": ["东风街道综治中心"],
                      "reporter_name": "王小明", "reporter_phone": "13812345678"}, city["disp"], now=NOW)
    t = client_for(app, "town1")
    assert t.get(f"/api/cases/{acc['id']}").status_code == 404


def test_concurrent_intake_same_submission_key(db, city):
    results = []
    barrier = threading.Barrier(2)

    def go():
        svc = CaseService(db)
        orig = svc.prepare
        def prepare(*a, **kw):
            out = orig(*a, **kw)
            barrier.wait(timeout=10)
            return out
        svc.prepare = prepare
        try:
            results.append(svc.intake({**BASE, "submission_key": "12345-0001"}, city["disp"], now=NOW)["id"])
        except Exception as e:  # noqa
            results.append(e)
    ts = [threading.Thread(target=go) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert all(isinstance(x, int) for x in results), results


def test_concurrent_cross_merge_makes_cycle(db, city):
    svc0 = CaseService(db)
    a = svc0.intake(BASE, city["disp"], now=NOW)["id"]
    b = svc0.intake(BASE, city["disp"], now=NOW)["id"]
    barrier = threading.Barrier(2)
    errs = []

    def go(x, y):
        svc = CaseService(db)
        orig = svc._check_master
        def check(*args, **kw):
            orig(*args, **kw)
            barrier.wait(timeout=10)
        svc._check_master = check
        try:
            svc.act(city["disp"], x, "merge", data={"master_id": y}, now=NOW)
        except Exception as e:  # noqa
            errs.append(e)
    ts = [threading.Thread(target=go, args=p) for p in ((a, b), (b, a))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    rows = db.fetchall("SELECT id, status, merged_into FROM case_record WHERE id IN (%s, %s)", (a, b))
    print("ERRS", errs, [dict(r) for r in rows])
    assert not all(r["status"] == "merged" for r in rows), [dict(r) for r in rows]


def test_pin_does_not_recompute_deadlines_or_clear_near_boundary(svc, city):
    # near boundary (within 30 m of grid 002) -> accepted, not dispatched
    c = svc.intake({**BASE, "lon": P1[0] + 0.00499, "lat": P1[1]}, city["disp"], now=NOW)
    assert c["near_boundary"] and c["status"] == "accepted"
    svc.pin(city["disp"], c["id"], P1[0], P1[1], now=NOW + H)
    row = svc.db.fetchone("SELECT near_boundary, needs_pin FROM case_record WHERE id=%s", (c["id"],))
    assert row["near_boundary"] is False, dict(row)
