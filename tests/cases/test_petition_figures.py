"""The seeds' 信访 figures per unit and month (cases.reports.petition_figures): 重复网信率 (seed 002: "全部网上信访件
1159件，其中重复网信652件"), 再次信访率 (seeds 002/004: the matter comes back after it was closed, "倒流") and
积案化解率 with what 化解清零 still has to do (seed 004: "693件积案动态清零")."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from cases import reports
from grids.store import load_city
from tests.cases.test_reports import G1, T1, insert_case
from tests.factories import tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))


def t(m, d, minute=0, y=2026):
    return dt.datetime(y, m, d, 9, 0, tzinfo=TZ) + dt.timedelta(minutes=minute)


def test_repeat_online_petitions_as_seed_002_counts_them(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    for i in range(1159):   # 507 people write once first; 652 letters come from someone who already wrote
        insert_case(db, f"W{i}", G1, channel="online_petition", kind="求决", status="handling",
                    received_at=t(3, 2, i), reporter_key=f"person{i % 507}")
    f = reports.petition_figures(db, 2026, 3, "township")[T1]
    assert f["online_repeat"] == reports.rates_mod.Rate(Fraction(652), 1159)
    assert f["online_repeat"].pct(1) == "56.3%"
    assert reports.petition_figures(db, 2026, 4, "township").get(T1, {}).get("online_repeat") in (
        None, reports.rates_mod.Rate(Fraction(0), 0))


def test_again_after_closure_and_the_backlog(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    # 再次信访: X's letter was closed on 1 March; X comes back on 10 March. Y's earlier visit is still open.
    insert_case(db, "X1", G1, channel="letter", status="closed", received_at=t(2, 1), closed_at=t(3, 1),
                reporter_key="X")
    insert_case(db, "X2", G1, channel="visit", status="handling", received_at=t(3, 10), reporter_key="X")
    insert_case(db, "Y1", G1, channel="visit", status="handling", received_at=t(2, 20), reporter_key="Y")
    insert_case(db, "Y2", G1, channel="online_petition", status="handling", received_at=t(3, 12), reporter_key="Y")
    insert_case(db, "Z1", G1, channel="hotline_12345", status="closed", received_at=t(1, 5), closed_at=t(1, 9),
                reporter_key="Z")     # a hotline call is not a 信访: Z's petition in March is not "again"
    insert_case(db, "Z2", G1, channel="letter", status="handling", received_at=t(3, 15), reporter_key="Z")
    # 积案 (open 90 days after receipt): one still open, one closed after becoming 积案, one closed in time
    insert_case(db, "B1", G1, channel="letter", status="handling", received_at=t(11, 20, y=2025), reporter_key="B1")
    insert_case(db, "B2", G1, channel="letter", status="closed", received_at=t(12, 1, y=2025),
                closed_at=t(3, 20), reporter_key="B2")
    insert_case(db, "B3", G1, channel="letter", status="closed", received_at=t(12, 5, y=2025),
                closed_at=t(1, 10), reporter_key="B3")
    f = reports.petition_figures(db, 2026, 3, "township")[T1]
    assert f["again"].numerator == 1 and f["again"].denominator == 3          # X2 of X2, Y2, Z2
    assert f["online_repeat"].numerator == 1 and f["online_repeat"].denominator == 1   # Y2: Y wrote before
    assert (f["backlog_resolution"].numerator, f["backlog_resolution"].denominator, f["backlog_open"]) == (1, 2, 1)
    row = {r["unit_code"]: r for r in reports.compute_month(db, 2026, 3, "township")}[T1]
    assert row["metrics"]["backlog_open"] == 1 and row["metrics"]["again"]["display"] == "33.3%"
