"""超期未评 counts against 满意率 (seed 002: "满意率较低。主要是网信超期未评件较多"): each reply opens the citizen's
evaluation window (eval_due_at), the scheduler sends one 回访 reminder before it ends and closes the case as
未评 after it, and the month's 满意率 counts it — in the monthly report and in the review's aggregate alike."""

from __future__ import annotations

import datetime as dt

import pytest

from cases import reports, scheduler
from cases.auth import create_user
from cases.policy import load_rate_policy
from cases.review import rates_of, unit_counts
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 14, 9, 0, tzinfo=TZ)
G1 = "990101001001001"


@pytest.fixture
def replied(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    mk = lambda name, role, region, **kw: create_user(db, name, "password123", role, region,  # noqa: E731
                                                    hash_method="pbkdf2:sha256:1000", **kw)
    disp = mk("disp", "dispatcher", "990100")
    zj = mk("zj", "department", "990101", department_code="990101-ZJ")
    svc = CaseService(db)
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "category_code": "CJ01", "title": "楼道灯不亮",
                    "reporter_phone": "13812345678", "lon": X0 + 0.004, "lat": Y0 + 0.005}, disp, now=T0)
    svc.act(zj, c["id"], "sign", now=T0)
    c = svc.act(zj, c["id"], "reply", data={"reply": "已修复"}, now=T0 + dt.timedelta(hours=3))
    return db, svc, disp, c


def test_a_reply_opens_the_evaluation_window(replied):
    _, _, _, c = replied
    window = load_rate_policy(replied[0]).config.eval_window_days
    assert c["status"] == "replied"
    assert dt.datetime.fromisoformat(c["eval_due_at"]) == T0 + dt.timedelta(hours=3, days=window)


def test_revisit_once_then_close_as_unevaluated(replied):
    db, svc, disp, c = replied
    due = dt.datetime.fromisoformat(c["eval_due_at"])
    assert scheduler.revisit(db, due - dt.timedelta(days=3)) == 0          # not yet
    assert scheduler.revisit(db, due - dt.timedelta(days=1)) == 1          # 回访 before the window ends
    assert scheduler.revisit(db, due - dt.timedelta(hours=2)) == 0         # once
    note = db.fetchone("SELECT kind, recipient, message FROM notification WHERE case_id = %s", (c["id"],))
    assert note["kind"] == "revisit" and note["recipient"] == "990101-ZJ" and "回访" in note["message"]
    assert svc.close_unevaluated(due - dt.timedelta(minutes=1)) == []
    assert svc.close_unevaluated(due + dt.timedelta(minutes=1)) == [c["id"]]
    c = svc.get(disp, c["id"])
    assert c["status"] == "closed" and c["evaluation"] is None
    last = c["events"][-1]
    assert last["action"] == "close" and last["actor_role"] == "system" and "超期未评" in last["reason"]


def test_unevaluated_counts_against_satisfaction_in_report_and_review(replied):
    db, svc, disp, c = replied
    svc.close_unevaluated(T0 + dt.timedelta(days=30))
    row = {r["unit_code"]: r["rates"] for r in reports.compute_month(db, 2026, 9, "grid")}[G1]
    assert row.overdue_unevaluated == 1
    assert row.satisfaction.denominator == 1 and row.satisfaction.value == 0     # nobody satisfied of 1
    assert row.participating_satisfaction.value is None                         # nobody evaluated
    counts = unit_counts(db, G1, dt.date(2026, 9, 1), dt.date(2026, 10, 1))[G1]
    mine = rates_of(counts, load_rate_policy(db).config, G1)
    assert (mine.satisfaction, mine.overdue_unevaluated) == (row.satisfaction, row.overdue_unevaluated)


def test_a_reopening_keeps_the_earlier_verdict_in_its_month(replied):
    """Seed 001: "是否得到了解决，最终还是要群众来检验" — a 不满意 given in September stays in September's 满意率
    after the case is reopened and later evaluated 满意 in October (a reopening used to erase it)."""
    db, svc, disp, c = replied
    from cases.auth import get_user

    zj = get_user(db, db.fetchone("SELECT id FROM app_user WHERE username = 'zj'")["id"])
    svc.act(disp, c["id"], "evaluate", data={"evaluation": "不满意"}, now=T0 + dt.timedelta(days=1))
    svc.act(disp, c["id"], "reopen", reason="群众不满意，重办", now=dt.datetime(2026, 10, 8, 9, tzinfo=TZ))
    svc.act(disp, c["id"], "dispatch", now=dt.datetime(2026, 10, 8, 10, tzinfo=TZ))
    svc.act(zj, c["id"], "sign", now=dt.datetime(2026, 10, 8, 11, tzinfo=TZ))
    svc.act(zj, c["id"], "reply", data={"reply": "已彻底修复"}, now=dt.datetime(2026, 10, 9, 9, tzinfo=TZ))
    svc.act(disp, c["id"], "evaluate", data={"evaluation": "满意"}, now=dt.datetime(2026, 10, 10, 9, tzinfo=TZ))
    cfg = load_rate_policy(db).config
    for month, want in ((9, 0), (10, 1)):
        r = {x["unit_code"]: x["rates"] for x in reports.compute_month(db, 2026, month, "grid")}[G1]
        assert (r.satisfaction.denominator, r.satisfaction.value) == (1, want), month
        start = dt.date(2026, month, 1)
        counts = unit_counts(db, G1, start, dt.date(2026, month + 1, 1))[G1]
        assert rates_of(counts, cfg, G1).satisfaction == r.satisfaction, month      # the aggregate agrees
    row = db.fetchone("SELECT prior_evaluations FROM case_record WHERE id = %s", (c["id"],))
    assert row["prior_evaluations"] == ["不满意"]


def test_a_window_still_open_is_not_overdue_in_the_running_month(db):
    """The wall's month-to-date 满意率 read 34.9% on 2 December: every reply whose evaluation window ends later
    in the month counted as 超期未评 already (the month was cut at its end, not at now). A window that has not
    ended is not overdue — in the rates and in the review's aggregate alike."""
    from cases.rates import unit_rates

    now = dt.datetime.now(TZ)
    past, future = now - dt.timedelta(seconds=1), now + dt.timedelta(seconds=60)
    recs = [{"replied_at": now - dt.timedelta(days=8), "eval_due_at": past, "evaluation": None},
            {"replied_at": now - dt.timedelta(days=1), "eval_due_at": future, "evaluation": None}]
    same_month = (future.year, future.month) == (past.year, past.month)   # not so only in a month's last minute
    assert unit_rates(recs, past.year, past.month).overdue_unevaluated == 1
    later = unit_rates(recs, past.year, past.month, as_of=future + dt.timedelta(seconds=1))
    assert later.overdue_unevaluated == (2 if same_month else 1)
    # the aggregate: a window that ended yesterday counts, one that ends tomorrow does not (yet)
    load_city(db, tiny_city(), progress=lambda m: None)
    today = now.date()
    db.execute("""
        INSERT INTO case_record (case_no, channel, kind, title, status, received_at, replied_at, eval_due_at,
                                 reply_due_at, grid_code, village_code, township_code, county_code, category_code)
        SELECT 'W' || d, 'hotline_12345', '求决', '待评', 'replied', %(t)s - interval '9 days',
               %(t)s - interval '8 days', %(t)s + d * interval '1 day', %(t)s - interval '7 days', %(g)s,
               left(%(g)s, 12), left(%(g)s, 9), left(%(g)s, 6), 'CJ01'
        FROM unnest(ARRAY[-1, 1]) d""", {"t": now, "g": G1})
    counts = unit_counts(db, "990101", today - dt.timedelta(days=1), today + dt.timedelta(days=2))
    assert sum(c["unevaluated"] for c in counts.values()) == 1


def test_a_running_month_counts_a_milestone_due_later_only_once_it_is_met(db):
    """The wall's month-to-date 解决率 read 50% on 2 December: every case due later in the month counted as
    unresolved. A milestone due later in a running month enters its cohort once met (signed, resolved), in
    the rates and in the review's aggregate alike; a past month is unchanged."""
    from cases.rates import unit_rates

    now = dt.datetime.now(TZ)
    soon = now + dt.timedelta(seconds=60)
    base = {"dispatched": True, "received_at": now - dt.timedelta(days=1)}
    recs = [{**base, "sign_due_at": soon, "reply_due_at": soon},                           # not yet due: out
            {**base, "sign_due_at": soon, "signed_at": now - dt.timedelta(hours=1), "reply_due_at": soon,
             "replied_at": now - dt.timedelta(minutes=30), "closed_at": now - dt.timedelta(minutes=5),
             "evaluation": "满意", "evaluated_at": now - dt.timedelta(minutes=5)}]        # met early: in
    if (soon.year, soon.month) == (now.year, now.month):                                 # all but a month's last minute
        ur = unit_rates(recs, now.year, now.month)
        assert (ur.response.numerator, ur.response.denominator) == (1, 1)
        assert (ur.resolution.numerator, ur.resolution.denominator) == (1, 1)
        end = unit_rates(recs, now.year, now.month, as_of=soon + dt.timedelta(seconds=1))
        assert (end.response.numerator, end.response.denominator) == (1, 2)
        assert (end.resolution.numerator, end.resolution.denominator) == (1, 2)
    # the aggregate, to the day: a case due tomorrow counts once it is met
    load_city(db, tiny_city(), progress=lambda m: None)
    today = now.date()
    db.execute("""
        INSERT INTO case_record (case_no, channel, kind, title, status, received_at, dispatched_at, sign_due_at,
                                 signed_at, reply_due_at, replied_at, closed_at, evaluation, evaluated_at, grid_code,
                                 village_code, township_code, county_code, category_code)
        SELECT 'R' || i, 'hotline_12345', '求决', '办理', CASE WHEN i = 1 THEN 'closed' ELSE 'dispatched' END,
               %(t)s - interval '1 day', %(t)s - interval '1 day', %(t)s + interval '1 day',
               CASE WHEN i = 1 THEN %(t)s - interval '1 hour' END, %(t)s + interval '1 day',
               CASE WHEN i = 1 THEN %(t)s - interval '30 minutes' END, CASE WHEN i = 1 THEN %(t)s END,
               CASE WHEN i = 1 THEN '满意' END, CASE WHEN i = 1 THEN %(t)s END,
               %(g)s, left(%(g)s, 12), left(%(g)s, 9), left(%(g)s, 6), 'CJ01'
        FROM generate_series(1, 3) i""", {"t": now, "g": G1})
    c = unit_counts(db, "990101", today, today + dt.timedelta(days=3))[G1]
    assert (c["signed_ok"], c["sign_cohort"], c["resolved"], c["reply_cohort"]) == (1, 1, 1, 1)
