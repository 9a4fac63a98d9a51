"""The reminder worker on real PostGIS: 一天一催，三天一督 over a simulated week, idempotence, recipients,
closed cases, failed deliveries, the notifiers, and a large batch of open cases."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

import pytest

from cases import scheduler
from cases.notify import FakeSmsGateway, LogNotifier, MemoryNotifier, SmsNotifier, phone_directory, scrub
from gis.db import copy_rows
from gis.errors import BadInput
from grids.store import load_city
from tests.factories import tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))
G1 = "990101001001001"
OFFICER = G1 + "-grid_officer"
PHONE = "13912345678"
DUE = dt.datetime(2026, 3, 2, 23, 59, 59, tzinfo=TZ)  # a Monday


def day(k, h=10):
    return dt.datetime(2026, 3, 2, h, tzinfo=TZ) + dt.timedelta(days=k)


def insert_case(db, case_no, **kw) -> int:
    row = dict(case_no=case_no, channel="hotline_12345", kind="求决", title="楼道灯不亮", status="dispatched",
               received_at=day(-1), dispatched_at=day(-1), grid_code=G1, generation=1, village_code="990101001001",
               township_code="990101001", county_code="990101", handling_level="grid", handler_region=G1,
               officer_code=OFFICER, reporter_name="李建国", reporter_phone=PHONE)
    row.update(kw)
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    return db.fetchone(f"INSERT INTO case_record ({cols}) VALUES ({marks}) RETURNING id", list(row.values()))["id"]


@pytest.fixture
def city(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    return db


def test_one_reminder_a_day_and_supervision_every_third_day(city):
    db = city
    cid = insert_case(db, "2026030100001", sign_due_at=DUE)
    notifier = MemoryNotifier()
    per_day = []
    for k in range(7):  # Monday .. Sunday, each day run twice (idempotent)
        first = scheduler.run_reminders(db, day(k), notifier)
        again = scheduler.run_reminders(db, day(k, 15), notifier)
        assert again["inserted"] == 0 and again["sent"] == 0 and again["duplicates"] == first["notices"]
        per_day.append((first["remind"], first["supervise"]))
    # 一天一催、三天一督 from 交办 (seed 003): dispatched the day before day 0 → 催办 every day, 督办 on the 3rd
    # and 6th day after 交办 (day 2 and day 5), whatever the due date.
    assert per_day == [(1, 0), (1, 0), (1, 1), (1, 0), (1, 0), (1, 1), (1, 0)]
    reminds = [n for n in notifier.sent if n["kind"] == "remind"]
    supervises = [n for n in notifier.sent if n["kind"] == "supervise"]
    assert len(reminds) == 7 and len(supervises) == 2
    assert {n["recipient"] for n in reminds} == {OFFICER}
    assert {n["recipient"] for n in supervises} == {"ZZ990101001"}  # the township's center, above the grid
    for n in notifier.sent:
        assert n["case_no"] == "2026030100001" and "2026030100001" in n["message"]
        assert PHONE not in n["message"] and "李建国" not in n["message"]
    assert "剩余" in reminds[0]["message"] and "已超期 5 天 10 小时" in reminds[-1]["message"]
    assert "第 2 次督办" in supervises[-1]["message"]
    # Every row is stamped, every 督办 is an event in the case's log.
    assert db.fetchone("SELECT count(*) AS n FROM notification WHERE sent_at IS NULL")["n"] == 0
    events = db.fetchall("SELECT actor_role, action, data FROM case_event WHERE case_id = %s ORDER BY id", (cid,))
    assert [(e["actor_role"], e["action"]) for e in events] == [("system", "supervise")] * 2
    assert events[1]["data"]["overdue_days"] == 4 and events[1]["data"]["recipient"] == "ZZ990101001"


def test_recipients_department_and_upper_center(city):
    db = city
    insert_case(db, "D1", status="handling", handling_level="county", handler_region="990101", officer_code=None,
                lead_department="990101-GD", signed_at=day(-1), sign_due_at=day(-1), reply_due_at=DUE)
    insert_case(db, "C1", status="handling", handling_level="township", handler_region="990101002",
                officer_code=None, township_code="990101002", village_code="990101002001",
                grid_code="990101002001001", reply_due_at=DUE)
    notifier = MemoryNotifier()
    scheduler.run_reminders(db, day(3), notifier)
    got = sorted((n["case_no"], n["kind"], n["recipient"]) for n in notifier.sent)
    assert got == [("C1", "remind", "ZZ990101002"), ("C1", "supervise", "ZZ990101"),
                   ("D1", "remind", "990101-GD"), ("D1", "supervise", "ZZ990100")]


def test_closed_and_done_cases_get_nothing(city):
    db = city
    insert_case(db, "CLOSED", status="closed", sign_due_at=DUE, reply_due_at=DUE, closed_at=day(0))
    insert_case(db, "MERGED", status="merged", sign_due_at=DUE)
    insert_case(db, "REPLIED", status="replied", sign_due_at=DUE, signed_at=day(0), replied_at=day(1))
    insert_case(db, "LATER", status="accepted", dispatched_at=None, sign_due_at=DUE + dt.timedelta(days=10))
    notifier = MemoryNotifier()
    s = scheduler.run_reminders(db, day(4), notifier)
    assert s["scanned"] == 0 and s["notices"] == 0 and notifier.sent == []


def test_failed_delivery_is_retried_once_and_never_duplicated(city):
    db = city
    insert_case(db, "F1", sign_due_at=DUE)
    failing = MemoryNotifier(fail_for={OFFICER})
    s = scheduler.run_reminders(db, day(1), failing)
    assert s["inserted"] == 1 and s["failed"] == 1 and s["sent"] == 0 and failing.sent == []
    ok = MemoryNotifier()
    s = scheduler.run_reminders(db, day(1, 18), ok)
    assert s["inserted"] == 0 and s["sent"] == 1 and [n["case_no"] for n in ok.sent] == ["F1"]
    assert scheduler.run_reminders(db, day(1, 20), ok)["sent"] == 0


def test_sms_and_log_notifiers_keep_personal_data_out(city, caplog):
    db = city
    db.execute("UPDATE staff SET phone = '13700001111' WHERE code = %s", (OFFICER,))
    insert_case(db, "S1", sign_due_at=DUE)
    gateway = FakeSmsGateway()
    scheduler.run_reminders(db, day(1), SmsNotifier(gateway, phone_directory(db)))
    assert len(gateway.outbox) == 1
    phone, text = gateway.outbox[0]
    assert phone == "13700001111" and text.startswith("【网格化治理】【催办】S1") and PHONE not in text
    # The township center has no phone: a 督办 to it stays unsent, to be retried.
    s = scheduler.run_reminders(db, day(3), SmsNotifier(gateway, phone_directory(db)))
    assert s["supervise"] == 1 and s["failed"] == 1
    with caplog.at_level(logging.INFO, logger="gridgov.notify"):
        LogNotifier().send({"kind": "remind", "recipient": OFFICER, "case_no": "S1",
                            "message": f"【催办】S1 来电人 {PHONE} 身份证 220302199001011234"})
    assert "S1" in caplog.text and PHONE not in caplog.text and "220302199001011234" not in caplog.text
    assert scrub(f"电话{PHONE}") == "电话139****"


def test_bad_now_is_refused(city):
    with pytest.raises(BadInput):
        scheduler.run_reminders(city, dt.datetime(2026, 3, 2), MemoryNotifier())


def test_many_open_cases_in_batches(city):
    """20,000 open overdue cases (plus 20,000 not yet due) are handled in batches, in seconds."""
    db = city
    n = 20_000
    cols = ["case_no", "channel", "kind", "title", "status", "received_at", "dispatched_at", "grid_code",
            "village_code", "township_code", "county_code", "handling_level", "officer_code", "sign_due_at"]
    base = [G1, "990101001001", "990101001", "990101", "grid", OFFICER]

    def rows():
        for i in range(2 * n):
            due = DUE if i < n else DUE + dt.timedelta(days=30)
            # not yet due: accepted, not dispatched (a dispatched case is reminded daily from 交办)
            yield [f"BULK{i:06d}", "hotline_12345", "求决", "t", "dispatched" if i < n else "accepted", day(-1),
                   day(-1) if i < n else None, *base, due]

    with db.connection() as conn, conn.cursor() as cur:
        copy_rows(cur, "case_record", cols, rows())
        cur.execute("SELECT analyze_table('case_record')")
    notifier = MemoryNotifier()
    t0 = time.monotonic()
    s = scheduler.run_reminders(db, day(3), notifier, batch_size=4000)
    elapsed = time.monotonic() - t0
    assert s["scanned"] == n and s["inserted"] == 2 * n and s["sent"] == 2 * n
    assert len(notifier.sent) == 2 * n
    assert re.fullmatch(r"BULK\d{6}", notifier.sent[0]["case_no"])
    assert elapsed < 60, s
    again = scheduler.run_reminders(db, day(3, 16), notifier, batch_size=4000)
    assert again["inserted"] == 0 and again["duplicates"] == 2 * n
