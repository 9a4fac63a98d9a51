"""The review's 四色码 is the official one: from the aggregate, ranked over every unit of the level with the
last place red, equal to reports.compute_month; a stored snapshot (draft or published) wins."""

from __future__ import annotations

import datetime as dt

from cases import reports
from cases.review import official_colour
from tests.cases.test_reports import T1, T2, march  # noqa: F401 - the hand-made March fixture


def _unit(db, code):
    return db.fetchone("SELECT code, name, level FROM region WHERE code = %s", (code,))


def test_colour_equals_the_monthly_report_with_rank_and_last_place(db, march):  # noqa: F811
    official = {r["unit_code"]: r for r in reports.compute_month(db, 2026, 3, "township")}
    assert any("排名末位" in r["colour_reasons"] for r in official.values())  # the rule is exercised
    for code in (T1, T2):
        got = official_colour(db, _unit(db, code), dt.date(2026, 3, 31))
        want = official[code]
        assert (got["code"], got["reasons"], got["rank"]) == (want["colour"], want["colour_reasons"], want["rank"])
        assert got["source"] == "实时计算" and got["month"] == "2026年3月" and got["of"] == 2
    county = official_colour(db, _unit(db, "990101"), dt.date(2026, 3, 15))
    want = {r["unit_code"]: r for r in reports.compute_month(db, 2026, 3, "county")}["990101"]
    assert (county["code"], county["reasons"]) == (want["colour"], want["colour_reasons"])
    assert official_colour(db, _unit(db, T1), dt.date(2026, 7, 1))["label"] == "无数据"


def test_a_stored_snapshot_wins(db, march):  # noqa: F811
    reports.snapshot_month(db, 2026, 3)
    db.execute("UPDATE case_record SET evaluation = '不满意', solved = NULL")  # the live numbers move on
    got = official_colour(db, _unit(db, T2), dt.date(2026, 3, 1))
    snap = {r["unit_code"]: r for r in reports.get_snapshot(db, 2026, 3, "township")}[T2]
    assert got["source"] == "草稿" and (got["code"], got["rank"]) == (snap["colour"], snap["rank"])
    reports.publish_month(db, 2026, 3)
    assert official_colour(db, _unit(db, T2), dt.date(2026, 3, 1))["source"] == "已发布"


def test_the_live_ranking_reads_the_months_rows_by_day(db, march, monkeypatch):  # noqa: F811
    """Without a snapshot the ranking sums the month over every unit of case_day_stats; the aggregate grows by
    millions of rows a year (9.3 M at 2,000,000 cases), so the month is found through the day index (0092),
    not by reading it all (12.2 s of a township review at 1,000,000 cases), and today's date once, not per row."""
    seen = []
    real = db.fetchall
    monkeypatch.setattr(db, "fetchall", lambda sql, params=None: (seen.append((sql, params)), real(sql, params))[1])
    official_colour(db, _unit(db, T1), dt.date(2026, 3, 31))
    monkeypatch.undo()
    sql, params = next((s, p) for s, p in seen if "FROM case_day_stats" in s)
    with db.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")     # a tiny table: ask what the big one would use
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(r["QUERY PLAN"] for r in cur.fetchall())
    assert "case_day_stats_day_idx" in plan, plan
    assert "Index Cond: ((day >= " in plan, plan
    # today is computed once per statement (an InitPlan), not by gridgov_time_zone() for every row and FILTER
    # (9.4 s of the ranking over 290,000 aggregate rows at 10,000,000 cases)
    with db.cursor() as cur:
        cur.execute("EXPLAIN VERBOSE " + sql, params)
        verbose = "\n".join(r["QUERY PLAN"] for r in cur.fetchall())
    assert "gridgov_time_zone" in verbose
    assert verbose.count("gridgov_time_zone") == verbose.count("InitPlan"), verbose
