"""Township review: the per-unit × day aggregate stays exact under intake, actions and direct updates, and a
month's per-grid rates from it equal the monthly report's (cases/reports.py), to the fraction."""

from __future__ import annotations

import datetime as dt

import pytest

from cases import reports
from cases.auth import get_user
from cases.policy import load_rate_policy
from cases.review import heat_points, parse_period, previous_period, rates_of, review, unit_counts
from gis.errors import BadInput, Forbidden, NotFound
from tests.test_demo_year import NOW, demo  # noqa: F401 - the module fixture (a demo city with cases)

def get_user_by_username(db, username):
    return get_user(db, db.fetchone("SELECT id FROM app_user WHERE username = %s", (username,))["id"])


RECOMPUTE = """
    SELECT * FROM ({}) d WHERE (received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved,
        replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
        <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ORDER BY unit_code, day, category_code"""


def _stored(db):
    return db.fetchall("""
        SELECT * FROM case_day_stats WHERE (received, sign_cohort, signed_ok, returned, forwarded, reply_cohort,
            resolved, replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
            <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY unit_code, day, category_code""")


def _recomputed(db):
    sql = db.fetchone("SELECT case_day_stats_delta_sql('SELECT c.*, 1 AS sgn FROM case_record c') q")["q"]
    return db.fetchall(RECOMPUTE.format(sql))


def test_aggregate_equals_a_recomputation_after_intake_actions_and_updates(demo):  # noqa: F811
    db, city, loaded, _ = demo
    assert loaded > 0
    stored = _stored(db)
    assert stored == _recomputed(db)
    assert sum(r["received"] for r in stored) == db.fetchone(
        "SELECT count(*) n FROM case_record WHERE status <> 'merged' AND merged_into IS NULL")["n"]
    # the loop through the service: intake, sign, reply, evaluate
    from cases.service import CaseService

    svc = CaseService(db)
    dispatcher = get_user_by_username(db, "dispatcher")
    a = city.addresses[7]
    case = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "路灯不亮", "content": "review test",
                       "lon": a["geom"].x, "lat": a["geom"].y}, dispatcher)
    assert _stored(db) == _recomputed(db)
    # direct updates of every kind of field, several rows in one statement, and a delete
    db.execute("UPDATE case_record SET evaluation = '不满意', evaluated_at = closed_at, solved = false "
               "WHERE id IN (SELECT id FROM case_record WHERE closed_at IS NOT NULL ORDER BY id LIMIT 25)")
    db.execute("UPDATE case_record SET returned_count = returned_count + 1, forwarded = true "
               "WHERE id IN (SELECT id FROM case_record WHERE dispatched_at IS NOT NULL ORDER BY id DESC LIMIT 30)")
    db.execute("UPDATE case_record SET category_code = (SELECT min(code) FROM category WHERE parent_code IS NOT NULL),"
               " grid_code = NULL WHERE id IN (SELECT id FROM case_record ORDER BY id LIMIT 10)")
    assert _stored(db) == _recomputed(db)
    assert case["id"]


def test_month_grid_rates_equal_the_monthly_report(demo):  # noqa: F811
    db, _, _, _ = demo
    cfg = load_rate_policy(db).config
    for month in ((NOW.month - 1) or 12, NOW.month - 2):
        year = NOW.year
        report = {r["unit_code"]: r["rates"] for r in reports.compute_month(db, year, month, "grid", cfg)}
        start = dt.date(year, month, 1)
        end = dt.date(year + (month == 12), month % 12 + 1, 1)
        counts = unit_counts(db, "", start, end)
        compared = 0
        for code, ur in report.items():
            mine = rates_of(counts.get(code, {}), cfg, code)
            for name in ("response", "resolution", "satisfaction", "on_time", "one_time", "return_rate",
                         "reopen_rate", "forwarding"):
                assert getattr(mine, name) == getattr(ur, name), (code, name)
            assert mine.composite == ur.composite, code
            compared += ur.response.denominator + ur.resolution.denominator
        assert compared > 100     # the month has real cohorts to compare


def test_review_of_a_township_and_its_access(demo):  # noqa: F811
    db, _, _, _ = demo
    town = get_user_by_username(db, "township")
    start, end = parse_period(None, None, f"{NOW.year}-{NOW.month - 1:02d}")
    out = review(db, town, town.region_code, start, end)
    assert out["unit"]["code"] == town.region_code and out["grids"]
    assert out["totals"]["received"] == sum(g["received"] for g in out["grids"]) + out["totals"]["unlocated_to_grid"]
    direct = db.fetchone("SELECT count(*) n FROM case_record WHERE status <> 'merged' AND merged_into IS NULL "
                         "AND coalesce(grid_code, village_code, township_code) LIKE %s AND received_at >= %s "
                         "AND received_at < %s", (town.region_code + "%",
                                                  dt.datetime(start.year, start.month, 1, tzinfo=NOW.tzinfo),
                                                  dt.datetime(end.year, end.month, 1, tzinfo=NOW.tzinfo)))["n"]
    assert out["totals"]["received"] == direct
    assert out["colour"]["label"] and out["colour"]["reasons"]
    assert sum(w["received"] for w in out["weeks"]) == direct
    pts = heat_points(db, town, town.region_code, start, end)
    assert 0 < len(pts["points"]) <= direct
    with pytest.raises(Forbidden):
        review(db, get_user_by_username(db, "officer"), town.region_code, start, end)
    other = db.fetchone("SELECT code FROM region WHERE level = 'township' AND code NOT LIKE %s LIMIT 1",
                        (town.region_prefix + "%",))["code"]
    with pytest.raises(NotFound):
        review(db, town, other, start, end)
    with pytest.raises(BadInput):
        review(db, town, "x'; drop", start, end)


def test_periods():
    assert parse_period(None, None, "2026-03") == (dt.date(2026, 3, 1), dt.date(2026, 4, 1))
    assert previous_period(dt.date(2026, 3, 1), dt.date(2026, 4, 1)) == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    assert parse_period("2026-01-05", "2026-01-11", None) == (dt.date(2026, 1, 5), dt.date(2026, 1, 12))
    assert previous_period(dt.date(2026, 1, 5), dt.date(2026, 1, 12)) == (dt.date(2025, 12, 29), dt.date(2026, 1, 5))
    for bad in ((None, None, "2026-13"), ("2026-01-10", "2026-01-01", None), ("2020-01-01", "2026-01-01", None)):
        with pytest.raises(BadInput):
            parse_period(*bad)
