"""A small live situation on the tiny city for the wall's tests: open, overdue, emergency and closed cases,
users inside and outside the jurisdiction, and the database's own answers computed independently."""

from __future__ import annotations

import datetime as dt

from cases.auth import create_user
from cases.calendar import TZ
from cases.service import CaseService, next_due
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

PASSWORD = "password123"
SCRIPT_TITLE = "<script>window.__pwned=1</script>楼道堆物"


def build(db) -> dict:
    """Load the tiny city with users and cases; returns the case ids by name."""
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", PASSWORD, "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    for name, role, region, kw in [("city", "city_center", "990100", {}), ("county", "county_center", "990101", {}),
                                   ("outsider", "county_center", "990102", {}),
                                   ("off1", "grid_officer", "990101001001", {"grid_code": "990101001001001"})]:
        create_user(db, name, PASSWORD, role, region, hash_method="pbkdf2:sha256:1000", **kw)
    svc = CaseService(db)
    now = dt.datetime.now(TZ)
    base = {"kind": "投诉", "category_code": "CJ01", "reporter_name": "王小明", "reporter_phone": "13700001111"}
    specs = {
        "script": dict(channel="hotline_12345", title=SCRIPT_TITLE, content="<img src=x onerror=alert(1)>夜间噪音",
                       lon=X0 + 0.004, lat=Y0 + 0.005),
        "overdue": dict(channel="online_petition", title="路灯不亮", lon=X0 + 0.015, lat=Y0 + 0.005,
                        received_at=(now - dt.timedelta(days=12)).isoformat()),
        "emergency": dict(channel="grid_report", title="燃气泄漏", lon=X0 + 0.03, lat=Y0 + 0.004, emergency=True,
                          category_code="GD01"),
        "closed": dict(channel="mailbox", title="已办结的诉求", lon=X0 + 0.006, lat=Y0 + 0.006,
                       received_at=(now - dt.timedelta(days=3)).isoformat()),
    }
    ids = {}
    for i, (name, spec) in enumerate(specs.items()):
        sub = {**base, **spec, "submission_key": f"wall-{i}"}
        when = dt.datetime.fromisoformat(spec["received_at"]) if "received_at" in spec else now
        ids[name] = svc.intake(sub, disp, now=when)["id"]
    db.execute("UPDATE case_record SET status = 'closed', closed_at = %s WHERE id = %s",
               (now - dt.timedelta(days=1), ids["closed"]))
    # whatever milestone the 12-day-old case waits for, it was due two hours ago
    db.execute("UPDATE case_record SET accept_due_at = %(t)s, sign_due_at = %(t)s, reply_due_at = %(t)s "
               "WHERE id = %(id)s", {"t": now - dt.timedelta(hours=2), "id": ids["overdue"]})
    return ids


def expected(db) -> dict:
    """The wall's KPI numbers computed straight from case_record (no wallstats code): today's intake by
    channel, open, and overdue / due within 24 h as cases.service.next_due judges each open case."""
    today = {r["channel"]: r["n"] for r in db.fetchall(
        "SELECT channel, count(*) AS n FROM case_record WHERE received_at >= "
        "(date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai') GROUP BY channel")}
    rows = db.fetchall("SELECT * FROM case_record WHERE status NOT IN ('closed', 'rejected', 'merged')")
    dues = [next_due(r) for r in rows]
    return {
        "today": today, "today_total": sum(today.values()), "open": len(rows),
        "overdue": sum(d["overdue"] for d in dues),
        "due_24h": sum(d["remaining_hours"] is not None and 0 <= d["remaining_hours"] < 24 for d in dues),
        "emergency": sum(r["emergency"] for r in rows),
        "by_township": {r["township_code"]: r["n"] for r in db.fetchall(
            "SELECT township_code, count(*) AS n FROM case_record WHERE status NOT IN ('closed', 'rejected', "
            "'merged') GROUP BY 1")},
        "closed_today_minus_1": db.fetchone(
            "SELECT count(*) AS n FROM case_record WHERE (closed_at AT TIME ZONE 'Asia/Shanghai')::date = "
            "(now() AT TIME ZONE 'Asia/Shanghai')::date - 1")["n"],
    }
