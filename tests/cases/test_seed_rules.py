"""The seeds' own rules (issue 9), each built from the seed's example and quoting it.

Pure rules first (deadlines, reminders), then the service on real PostGIS (the 疑难复杂 flag as an event).
"""

from __future__ import annotations

import datetime as dt

import pytest

from cases.auth import create_user
from cases.calendar import TZ, WorkCalendar, end_of_day
from cases.deadlines import DeadlinePolicy, ReminderPolicy, compute_deadlines, reminders_due
from cases.policy import parse_deadline_policy, save_deadline_policy
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.errors import BadInput, Unprocessable
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

D = dt.date


def at(y, m, d, h=10, mi=0, s=0):
    return dt.datetime(y, m, d, h, mi, s, tzinfo=TZ)


# -- seed 002: 简易程序 for 信访 ---------------------------------------------------------------------------

SEED_002 = "除疑难复杂的信访事项外，实行信访事项简易程序办理，责任单位1个工作日内签收、5个工作日内答复群众"


@pytest.mark.parametrize("channel", ["online_petition", "letter", "visit"])
def test_petition_channels_get_the_simple_procedure(channel):
    """Seed 002: "{SEED_002}" — 网上信访/来信/来访 dispatched Mon 2026-03-02: 签收 by Tue, 答复 by Mon 03-09."""
    d = compute_deadlines(at(2026, 3, 2, 9), channel, "求决", False, WorkCalendar(),
                          accepted_at=at(2026, 3, 2, 9), dispatched_at=at(2026, 3, 2, 10))
    assert d.profile == "simple"
    assert d.due("sign") == end_of_day(D(2026, 3, 3))
    assert d.due("reply") == end_of_day(D(2026, 3, 9))
    assert d.due("accept") is None and d.due("handle") is None


def test_complex_petition_gets_the_regular_regime():
    """Seed 002 ("除疑难复杂的信访事项外"): a 疑难复杂 case keeps 受理告知 15 days and 办结 60 days."""
    d = compute_deadlines(at(2026, 3, 2, 9), "letter", "求决", False, WorkCalendar(),
                          accepted_at=at(2026, 3, 2, 9), complex_case=True)
    assert d.profile == "petition"
    assert d.due("accept") == end_of_day(D(2026, 3, 17))
    assert d.due("handle") == end_of_day(D(2026, 5, 6))  # 03-02 + 60 days = 05-01 (劳动节) → rolled to 05-06
    assert d.due("sign") is None


def test_city_can_keep_the_old_regime():
    policy = parse_deadline_policy({"simple_petition_channels": []})
    d = compute_deadlines(at(2026, 3, 2, 9), "visit", "求决", False, WorkCalendar(), policy=policy)
    assert d.profile == "petition"
    with pytest.raises(BadInput):
        parse_deadline_policy({"simple_petition_channels": ["hotline_12345"]})
    with pytest.raises(BadInput):
        parse_deadline_policy({"emergency_met_by": "never"})
    assert parse_deadline_policy({}).escalate_overdue_to == "county"          # 县域止访
    assert parse_deadline_policy({"escalate_overdue_to": ""}).escalate_overdue_to == ""
    with pytest.raises(BadInput, match="escalate_overdue_to"):
        parse_deadline_policy({"escalate_overdue_to": "province"})


# -- seed 003: 书记信箱 10 天, 一天一催、三天一督 -------------------------------------------------------------

def test_mailbox_ten_days_as_written():
    """Seed 003: "明确'书记信箱'来信的办理时限为10天" — received Wed 2026-03-04, day 10 is Sat 03-14: due that day,
    not rolled to Monday (a city may roll: mailbox_roll)."""
    d = compute_deadlines(at(2026, 3, 4, 9), "mailbox", "建议", False, WorkCalendar())
    assert d.due("reply") == end_of_day(D(2026, 3, 14))
    rolled = compute_deadlines(at(2026, 3, 4, 9), "mailbox", "建议", False, WorkCalendar(),
                               policy=DeadlinePolicy(mailbox_roll=True))
    assert rolled.due("reply") == end_of_day(D(2026, 3, 16))


def _mailbox_case(dispatched, **kw):
    d = compute_deadlines(dispatched, "mailbox", "求决", False, WorkCalendar(), dispatched_at=dispatched)
    return {"id": 1, "case_no": "SJ-1", "status": "dispatched", "dispatched_at": dispatched,
            "deadline_profile": d.profile, **d.as_fields(), **kw}


def test_one_reminder_a_day_and_supervision_every_third_day_from_dispatch():
    """Seed 003: "从交办当日起就与承办单位保持'热线'联系，'一天一催，三天一督'" — a 书记信箱 case dispatched on
    2026-06-01 (due 06-11) is reminded from 06-02 every day and supervised on days 3, 6, 9 (06-04, 06-07,
    06-10), long before its due date; the old code waited until 06-11 and 06-14."""
    case = _mailbox_case(at(2026, 6, 1, 9))
    reminds, supervises, seen = [], [], set()
    for day in range(1, 12):
        for n in reminders_due(case, at(2026, 6, day, 9)):
            if n.key not in seen:  # the worker records each key once
                seen.add(n.key)
                (reminds if n.kind == "remind" else supervises).append((day, n))
    assert [d for d, _ in reminds] == list(range(2, 12))
    assert [d for d, _ in supervises] == [4, 7, 10]
    assert "交办第 3 天" in supervises[0][1].message and "第 1 次督办" in supervises[0][1].message
    assert len({n.key for _, n in supervises}) == 3
    # An hourly worker missing day 3 still supervises on day 4 with the same key (never missed, never twice).
    late = [n for n in reminders_due(case, at(2026, 6, 5, 9)) if n.kind == "supervise"]
    assert late[0].key == supervises[0][1].key
    # The reply ends it.
    assert reminders_due({**case, "replied_at": at(2026, 6, 5), "status": "replied"}, at(2026, 6, 8, 9)) == []


def test_supervision_says_how_overdue_it_really_is():
    """督办 fires at 3 full overdue days, not at 2 days + 1 s, and says the true overdue time."""
    case = {"id": 2, "case_no": "X-2", "status": "accepted", "reply_due_at": end_of_day(D(2026, 3, 16)),
            "replied_at": None}
    due = end_of_day(D(2026, 3, 16))
    ns = reminders_due(case, due + dt.timedelta(days=2, seconds=1))
    assert [n.kind for n in ns] == ["remind"] and "已超期 2 天 0 小时" in ns[0].message
    ns = reminders_due(case, due + dt.timedelta(days=3, hours=5))
    sup = [n for n in ns if n.kind == "supervise"]
    assert sup and sup[0].overdue_days == 3 and "已超期 3 天 5 小时" in sup[0].message


# -- seed 004: emergencies met by 处置反馈 ----------------------------------------------------------------

def test_emergency_met_by_the_handlers_report_back():
    """Seed 004: "1小时指令到达基层处置一线，3小时处置完毕报告反馈" — answered (处置反馈) after 2 hours, the
    case gets no 催办/督办 while it waits for the citizen to close it (the old code sent 17 催办 and 5 督办)."""
    received = at(2026, 3, 2, 9)
    d = compute_deadlines(received, "hotline_12345", "求助", True, WorkCalendar(), dispatched_at=received)
    case = {"id": 3, "case_no": "JJ-3", "status": "replied", "deadline_profile": "emergency",
            "dispatched_at": received, "signed_at": received + dt.timedelta(minutes=30),
            "replied_at": received + dt.timedelta(hours=2), **d.as_fields()}
    notices = [n for h in range(3, 24 * 20, 3) for n in reminders_due(case, received + dt.timedelta(hours=h))]
    assert notices == []
    # A city that counts the citizen's closure instead still can.
    late = reminders_due(case, received + dt.timedelta(days=4), ReminderPolicy(emergency_met_by="close"))
    assert any(n.kind == "supervise" and n.milestone == "handle" for n in late)


# -- the 疑难复杂 flag on real PostGIS -------------------------------------------------------------------

@pytest.fixture
def svc(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    return CaseService(db)


def _user(db, name, role, region, **kw):
    return create_user(db, name, "password123", role, region, hash_method="pbkdf2:sha256:1000", **kw)


def test_complex_flag_is_an_event_with_a_reason_and_moves_the_regime(db, svc):
    """Seed 002: a dispatcher flags a 来信 疑难复杂 (reason required); its deadlines become 受理 15 / 办结 60."""
    disp = _user(db, "disp", "dispatcher", "990100")
    t0 = at(2026, 9, 14, 9)
    c = svc.intake(dict(channel="来信", kind="求决", category_code="CJ01", title="宅基地纠纷",
                        content="多年宅基地纠纷", reporter_name="王某", reporter_phone="13812345678",
                        lon=X0 + 0.004, lat=Y0 + 0.005), disp, now=t0)
    assert c["deadlines"]["profile"] == "simple" and c["sign_due_at"] and c["reply_due_at"]
    with pytest.raises(Unprocessable):
        svc.act(disp, c["id"], "mark_complex", None, now=t0 + dt.timedelta(hours=1))
    c2 = svc.act(disp, c["id"], "mark_complex", "涉及多个部门、历史遗留", now=t0 + dt.timedelta(hours=1))
    assert c2["deadlines"]["profile"] == "petition"
    assert c2["sign_due_at"] is None and c2["reply_due_at"] is None
    assert c2["handle_due_at"].startswith("2026-11-13T23:59:59")  # 09-14 + 60 days
    ev = [e for e in c2["events"] if e["action"] == "mark_complex"]
    assert ev and ev[0]["reason"] == "涉及多个部门、历史遗留" and ev[0]["data"]["profile_before"] == "simple"
    hotline = svc.intake(dict(channel="12345热线", kind="求决", category_code="CJ01", title="路灯",
                              content="路灯坏", lon=X0 + 0.004, lat=Y0 + 0.005), disp, now=t0)
    with pytest.raises(Unprocessable):
        svc.act(disp, hotline["id"], "mark_complex", "复杂", now=t0)


def test_stored_deadline_policy_is_used(db, svc):
    disp = _user(db, "disp", "dispatcher", "990100")
    save_deadline_policy(db, {"simple_petition_channels": ["online_petition"]})
    svc.invalidate()
    c = svc.intake(dict(channel="来访", kind="求决", category_code="CJ01", title="补偿", content="补偿款",
                        lon=X0 + 0.004, lat=Y0 + 0.005), disp, now=at(2026, 9, 14, 9))
    assert c["deadlines"]["profile"] == "petition"


# -- the CLI: deadline policy, scheduler --now ---------------------------------------------------------

def test_cli_deadline_policy_and_scheduler_now_without_offset(dsn, db, tmp_path):
    """`scheduler --now 2025-07-02T09:00` is Beijing time (it used to fail with "timezone-aware")."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def run(*args):
        return subprocess.run([sys.executable, "-m", "gis", *args], cwd=root, env={"DATABASE_URL": dsn,
                              "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)

    cp = run("scheduler", "--now", "2025-07-02T09:00")
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout.strip().splitlines()[-1])["now"] == "2025-07-02T09:00:00+08:00"
    assert run("scheduler", "--now", "yesterday").returncode != 0
    f = tmp_path / "p.json"
    f.write_text('{"mailbox_days": 7, "mailbox_roll": true}', encoding="utf-8")
    cp = run("deadline-policy", "set", str(f))
    assert cp.returncode == 0, cp.stderr
    shown = json.loads(cp.stdout)
    assert shown["mailbox_days"] == 7 and shown["simple_petition_channels"] == ["letter", "online_petition", "visit"]
    f.write_text('{"mailbox_days": 0}', encoding="utf-8")
    cp = run("deadline-policy", "set", str(f))
    assert cp.returncode != 0 and "mailbox_days" in cp.stderr


# -- seed 001: 解决率 — the citizen decides -------------------------------------------------------------

def test_a_case_closed_unsatisfied_is_not_solved(db, svc):
    """Seed 001: "群众急难愁盼的问题是否得到了解决，最终还是要群众来检验" — 答复 does not mark a case solved by
    itself, and a 不满意 evaluation makes it unsolved even when the handler said solved."""
    from cases.rates import is_resolved

    disp = _user(db, "disp", "dispatcher", "990100")
    off = _user(db, "off1", "grid_officer", "990101001001", grid_code="990101001001001",
                staff_code="990101001001001-grid_officer")
    t0 = at(2026, 9, 14, 9)
    sub = dict(channel="12345热线", kind="求决", category_code="CJ01", title="楼道灯不亮", content="灯坏了",
               lon=X0 + 0.004, lat=Y0 + 0.005)
    ids = []
    for i, (solved, evaluation) in enumerate([(None, None), (True, "不满意"), (None, "满意")]):
        c = svc.intake(dict(sub, title=f"楼道灯不亮{i}"), disp, now=t0)
        data = {"reply": "已处理"} if solved is None else {"reply": "已处理", "solved": solved}
        svc.act(off, c["id"], "sign", now=t0 + dt.timedelta(hours=1))
        svc.act(off, c["id"], "reply", data=data, now=t0 + dt.timedelta(hours=2))
        if evaluation:
            svc.act(disp, c["id"], "evaluate", data={"evaluation": evaluation}, now=t0 + dt.timedelta(hours=3))
        svc.act(disp, c["id"], "close", now=t0 + dt.timedelta(hours=4))
        ids.append(c["id"])
    rows = {r["id"]: r for r in db.fetchall("SELECT id, solved, evaluation, closed_at FROM case_record "
                                            "WHERE id = ANY(%s)", (ids,))}
    assert rows[ids[0]]["solved"] is None  # the old code stored True for every reply
    assert rows[ids[1]]["solved"] is False
    end = at(2026, 10, 1, 0)
    assert [is_resolved(rows[i], end) for i in ids] == [True, False, True]


def test_ledger_overdue_both_ways():
    """台账 是否超期: a merged case is not overdue ("—"); an open 信访 case past its 受理告知/办结 is."""
    from cases.ledger import _overdue

    now = at(2026, 6, 1)
    merged = {"status": "merged", "sign_due_at": at(2026, 3, 1), "signed_at": None}
    petition = {"status": "accepted", "deadline_profile": "petition", "accept_due_at": at(2026, 3, 17),
                "accepted_at": at(2026, 3, 3), "handle_due_at": at(2026, 5, 6), "closed_at": None}
    emergency = {"status": "replied", "deadline_profile": "emergency", "handle_due_at": at(2026, 3, 2, 12),
                 "replied_at": at(2026, 3, 2, 11), "closed_at": None, "sign_due_at": at(2026, 3, 2, 10),
                 "signed_at": at(2026, 3, 2, 9, 30)}
    assert _overdue(merged, now) is None
    assert _overdue(petition, now) is True
    assert _overdue(emergency, now) is False
