"""Monthly reports on real PostGIS: a hand-made March, checked against hand-computed fractions;
snapshot, publish, and the freeze held both by the code and by the trigger."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import psycopg2
import pytest

from cases import reports
from cases.auth import User
from cases.rates import RateConfig
from gis.errors import BadInput, Conflict, NotFound
from grids.store import load_city
from tests.factories import tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))
G1, G2, G3 = "990101001001001", "990101001001002", "990101002001001"
T1, T2 = "990101001", "990101002"
ZJ, GD = "990101-ZJ", "990101-GD"


def at(m, d, h=10):
    return dt.datetime(2026, m, d, h, tzinfo=TZ)


def due(m, d):
    return dt.datetime(2026, m, d, 23, 59, 59, tzinfo=TZ)


_GRID_CHAIN = {G1: ("990101001001", T1), G2: ("990101001001", T1), G3: ("990101002001", T2)}


def insert_case(db, case_no, grid, **kw) -> int:
    """One case_record row, columns from this test only."""
    village, township = _GRID_CHAIN[grid]
    row = dict(case_no=case_no, channel="hotline_12345", kind="求决", title=f"诉求 {case_no}", status="closed",
               received_at=at(2, 27), dispatched_at=at(2, 27), grid_code=grid, generation=1,
               village_code=village, township_code=township, county_code="990101", handling_level="village",
               handler_region=village, first_petition=True)   # each a first 求决: all in 一次性化解率's cohort
    row.update(kw)
    if row.get("replied_at") and "eval_due_at" not in row:     # the 7-day evaluation window a reply opens
        row["eval_due_at"] = row["replied_at"] + dt.timedelta(days=7)
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    return db.fetchone(f"INSERT INTO case_record ({cols}) VALUES ({marks}) RETURNING id", list(row.values()))["id"]


# The hand-made month (March 2026). Per case: sign due / signed, reply due / replied, closed,
# evaluation (at), flags. "A" cases are in 东风街道 (T1), "B" cases in 新河镇 (T2).
MARCH = [
    ("A1", G1, dict(sign_due_at=due(3, 2), signed_at=at(3, 2), reply_due_at=due(3, 9), replied_at=at(3, 5),
                    closed_at=at(3, 10), evaluation="满意", evaluated_at=at(3, 8), lead_department=ZJ,
                    handler_region=T1)),
    ("A2", G1, dict(sign_due_at=due(3, 3), signed_at=at(3, 4), reply_due_at=due(3, 10), replied_at=at(3, 12),
                    closed_at=at(3, 14), evaluation="基本满意", evaluated_at=at(3, 14), returned_count=1,
                    lead_department=ZJ)),
    ("A3", G2, dict(sign_due_at=due(3, 5), signed_at=at(3, 5), reply_due_at=due(3, 12), replied_at=at(3, 11),
                    closed_at=at(3, 13), evaluation="不满意", evaluated_at=at(3, 13), solved=True, reopened_count=1,
                    lead_department=GD)),
    ("A4", G2, dict(status="dispatched", sign_due_at=due(3, 20), reply_due_at=due(3, 27), lead_department=ZJ)),
    ("B1", G3, dict(sign_due_at=due(3, 6), signed_at=at(3, 6), reply_due_at=due(3, 13), replied_at=at(3, 10),
                    closed_at=at(3, 20), lead_department=GD)),
    ("B2", G3, dict(status="handling", sign_due_at=due(3, 9), signed_at=at(3, 9), reply_due_at=due(4, 2),
                    lead_department=GD)),
    ("B3", G3, dict(sign_due_at=due(2, 27), signed_at=at(2, 27), reply_due_at=due(3, 4), replied_at=at(3, 3),
                    closed_at=at(3, 5), evaluation="满意", evaluated_at=at(3, 5), solved=True, lead_department=GD)),
    ("B4", G3, dict(sign_due_at=due(3, 9), signed_at=at(3, 8), reply_due_at=due(3, 16), replied_at=at(3, 15),
                    closed_at=at(3, 18), evaluation="基本满意", evaluated_at=at(3, 18), forwarded=True,
                    lead_department=GD)),
    # Outside March entirely, and a merged duplicate: neither counts.
    ("X1", G1, dict(sign_due_at=due(2, 3), signed_at=at(2, 3), reply_due_at=due(2, 9), replied_at=at(2, 5),
                    closed_at=at(2, 10), evaluation="不满意", evaluated_at=at(2, 10))),
    ("M1", G1, dict(status="merged", sign_due_at=due(3, 2), reply_due_at=due(3, 9))),
]


@pytest.fixture
def march(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    ids = {no: insert_case(db, f"2026-{no}", grid, **kw) for no, grid, kw in MARCH}
    return ids


def by_code(rows):
    return {r["unit_code"]: r for r in rows}


def test_township_rates_match_the_hand_count(db, march):
    rows = reports.compute_month(db, 2026, 3, "township")
    t1, t2 = by_code(rows)[T1], by_code(rows)[T2]
    w = Fraction(4, 5)  # 基本满意 weight
    # 东风街道: sign cohort A1..A4 (A1, A3 on time); reply cohort A1..A4 (A1, A2, A3 resolved: A3 flagged
    # solved despite 不满意); evaluated A1 满意, A2 基本满意, A3 不满意; closed A1 clean, A2 returned, A3 reopened.
    a = t1["rates"]
    assert a.response.value == Fraction(2, 4)
    assert a.resolution.value == Fraction(3, 4)
    assert a.satisfaction.value == (1 + w + 0) / 3
    assert a.on_time.value == Fraction(2, 4)  # A1 replied 03-05 ≤ 03-09, A3 03-11 ≤ 03-12
    assert a.one_time.value == Fraction(1, 3) and a.reopen_rate.value == Fraction(1, 3)
    assert a.return_rate.value == Fraction(1, 4) and a.forwarding.value == 0
    assert a.overdue_unevaluated == 0
    assert a.composite == (10 * Fraction(2, 4) + 45 * Fraction(3, 4) + 45 * (1 + w) / 3) / 100
    # 新河镇: sign cohort B1, B2, B4 (B3 due in Feb), all on time, B4 forwarded; reply cohort B1, B3, B4
    # (B2 due in April), all resolved (B1 closed unevaluated counts); evaluated B3 满意, B4 基本满意;
    # B1 replied 03-10, evaluation window ended 03-17 unevaluated → 超期未评 1.
    b = t2["rates"]
    assert b.response.value == 1 and b.forwarding.value == Fraction(1, 3)
    assert b.resolution.value == 1
    # 满意率 counts B1's 超期未评 against it (seed 002); 参评满意率 only those who evaluated
    assert b.satisfaction.value == (1 + w) / 3 == Fraction(3, 5)
    assert b.participating_satisfaction.value == 1
    assert b.one_time.value == 1 and b.reopen_rate.value == 0
    assert b.overdue_unevaluated == 1
    assert b.composite == (10 + 45 + 45 * Fraction(3, 5)) / 100
    # The JSON form keeps the exact parts.
    assert reports.exact(t1["metrics"]["satisfaction"]) == Fraction(3, 5)
    assert t1["metrics"]["composite_exact"] == str(a.composite)


def test_names_ranks_and_four_colours(db, march):
    rows = reports.compute_month(db, 2026, 3, "township")
    assert [(r["unit_code"], r["unit_name"], r["rank"]) for r in rows] == [(T2, "新河镇", 1), (T1, "东风街道", 2)]
    t1, t2 = rows[1], rows[0]
    # 满意率 60% (B1 超期未评 counts against it) is below every bound: orange, the worst a unit's rates give
    assert t2["colour"] == "orange" and t2["colour_label"] == "橙" and t2["colour_reasons"] == ["满意率 60.0% 低于 90%"]
    assert t1["colour"] == "red"
    assert t1["colour_reasons"] == ["响应率 50.0% 低于 95%", "解决率 75.0% 低于 90%", "满意率 60.0% 低于 90%",
                                    "重办率 33.3% 高于 5%", "排名末位"]
    assert t1["colour_reason"] == "；".join(t1["colour_reasons"])
    assert t1["colour_consequence"] == "推进会表态发言，市领导直接约谈"
    # Without the last-place rule the worst metric decides, and a metric alone is orange at worst (seed 004)
    t1b = by_code(reports.compute_month(db, 2026, 3, "township", last_place_red=False))[T1]
    assert t1b["colour"] == "orange" and "排名末位" not in t1b["colour_reasons"]
    t1c = by_code(reports.compute_month(db, 2026, 3, "township", last_place_red=False, red_by_threshold=True))[T1]
    assert t1c["colour"] == "red"


def test_grid_village_county_and_department_units(db, march):
    grids = by_code(reports.compute_month(db, 2026, 3, "grid"))
    assert set(grids) == {G1, G2, G3}
    assert grids[G1]["unit_name"] == "向阳社区第1网格"
    assert grids[G1]["rates"].response.value == Fraction(1, 2)  # A1 on time, A2 late (M1 merged: ignored)
    assert grids[G2]["rates"].response.value == Fraction(1, 2)  # A3 on time, A4 unsigned
    villages = by_code(reports.compute_month(db, 2026, 3, "village"))
    assert villages["990101001001"]["unit_name"] == "向阳社区"
    county = reports.compute_month(db, 2026, 3, "county")
    assert len(county) == 1 and county[0]["unit_name"] == "甲区" and county[0]["rank"] == 1
    assert county[0]["rates"].response.value == Fraction(5, 7)  # 2 of A1..A4 + 3 of B1, B2, B4
    depts = by_code(reports.compute_month(db, 2026, 3, "department"))
    assert depts[ZJ]["unit_name"] == "甲区住房和城乡建设局"
    assert depts[ZJ]["rates"].response.value == Fraction(1, 3)  # A1 on time; A2 late; A4 unsigned
    assert depts[GD]["rates"].response.value == 1  # A3, B1, B2, B4
    # A department without cases this month is listed with no data, unranked, no colour.
    empty = depts["990100-ZJ"]
    assert empty["rank"] is None and empty["colour"] is None and empty["colour_label"] == "无数据"
    assert reports.to_json([empty])[0].keys() >= {"unit_code", "metrics", "colour_reason"}
    with pytest.raises(BadInput):
        reports.compute_month(db, 2026, 3, "street; DROP TABLE case_record")


def test_user_scope_limits_the_report(db, march):
    township = User(id=1, username="twp", role="township_center", region_code=T1)
    rows = reports.compute_month(db, 2026, 3, "township", user=township)
    assert [r["unit_code"] for r in rows] == [T1]
    assert rows[0]["rates"].response.value == Fraction(1, 2)
    officer = User(id=2, username="off", role="grid_officer", region_code="990101001001", grid_code=G3)
    grids = reports.compute_month(db, 2026, 3, "grid", user=officer)
    assert [r["unit_code"] for r in grids] == [G3]
    # An accusation naming the township's center is invisible to it, in reports too.
    insert_case(db, "2026-ACC", G1, status="dispatched", sign_due_at=due(3, 25), accused_units=["ZZ" + T1])
    assert reports.compute_month(db, 2026, 3, "township", user=township)[0]["rates"].response.denominator == 4
    assert reports.compute_month(db, 2026, 3, "township")[1]["rates"].response.denominator == 5


def test_snapshot_publish_and_freeze(db, march):
    s = reports.snapshot_month(db, 2026, 3)
    assert s["written"] == 3 + 2 + 2 + 1 + 3 and s["by_unit_type"]["township"] == 2
    assert reports.month_state(db, 2026, 3) == "draft"
    snap = reports.get_snapshot(db, 2026, 3, "township")
    assert [(r["unit_code"], r["rank"], r["state"], r["colour"]) for r in snap] == [
        (T2, 1, "draft", "orange"), (T1, 2, "draft", "red")]
    assert reports.exact(snap[1]["metrics"]["response"]) == Fraction(1, 2)
    assert snap[1]["colour_reason"].endswith("排名末位")

    # While a draft, recomputation refreshes it: A4 gets signed on time.
    db.execute("UPDATE case_record SET signed_at = %s WHERE case_no = '2026-A4'", (at(3, 20),))
    reports.snapshot_month(db, 2026, 3)
    t1 = by_code(reports.get_snapshot(db, 2026, 3, "township"))[T1]
    assert reports.exact(t1["metrics"]["response"]) == Fraction(3, 4)

    p = reports.publish_month(db, 2026, 3)
    assert p["published"] == 11 and reports.month_state(db, 2026, 3) == "published"
    with pytest.raises(Conflict):
        reports.publish_month(db, 2026, 3)

    # The data changes after publishing: the code refuses and reports the diff; nothing is written.
    db.execute("UPDATE case_record SET signed_at = NULL WHERE case_no = '2026-A1'")
    with pytest.raises(Conflict) as e:
        reports.snapshot_month(db, 2026, 3)
    changed = {(c["unit_type"], c["unit_code"]): c["changes"] for c in e.value.details["changed"]}
    assert changed[("township", T1)]["response"] == {"old": "3/4", "new": "2/4"}
    diff = reports.diff_month(db, 2026, 3)
    assert diff["published"] and not diff["identical"] and diff["changed"] == e.value.details["changed"]
    t1 = by_code(reports.get_snapshot(db, 2026, 3, "township"))[T1]
    assert reports.exact(t1["metrics"]["response"]) == Fraction(3, 4) and t1["state"] == "published"

    # The trigger holds on its own, whatever the SQL.
    for sql in ("UPDATE rate_snapshot SET colour = 'green' WHERE unit_code = %s",
                "DELETE FROM rate_snapshot WHERE unit_code = %s",
                "INSERT INTO rate_snapshot (month, unit_type, unit_code, metrics) VALUES ('2026-03-01', "
                "'township', %s, '{}') ON CONFLICT (month, unit_type, unit_code) DO UPDATE SET metrics = '{}'"):
        with pytest.raises(psycopg2.errors.RaiseException, match="published and frozen"):
            db.execute(sql, (T1,))
    assert by_code(reports.get_snapshot(db, 2026, 3, "township"))[T1]["colour"] == "red"

    # Other months are independent.
    assert reports.snapshot_month(db, 2026, 4)["written"] == 11
    assert reports.month_state(db, 2026, 4) == "draft"


def test_publish_without_draft_and_bad_month(db, march):
    with pytest.raises(NotFound):
        reports.publish_month(db, 2026, 5)
    with pytest.raises(BadInput):
        reports.snapshot_month(db, 2026, 13)
    assert reports.month_state(db, 2026, 5) is None
    # A different config changes the numbers (基本满意 counted fully → 参评满意率).
    t2 = by_code(reports.compute_month(db, 2026, 3, "township", RateConfig(basic_weight=Fraction(1))))[T2]
    assert t2["rates"].satisfaction.value == Fraction(2, 3)      # (1 + 1) / (2 evaluated + 1 超期未评)


def test_stored_rate_policy_changes_weights_and_colours(db, march):
    from cases.policy import save_rate_policy

    save_rate_policy(db, {"weights": [30, 35, 35], "basic_weight": "1", "last_place_red": False,
                          "thresholds": {"satisfaction": [50, 40, 30], "response": [50, 40, 30],
                                         "resolution": [50, 40, 30], "reopen_rate": [50, 60, 70]}})
    t1 = by_code(reports.compute_month(db, 2026, 3, "township"))[T1]
    a = t1["rates"]
    assert a.satisfaction.value == Fraction(2, 3)  # 基本满意 now counts in full: (1 + 1 + 0) / 3
    assert a.composite == (30 * Fraction(2, 4) + 35 * Fraction(3, 4) + 35 * Fraction(2, 3)) / 100
    assert t1["colour"] == "green"  # relaxed thresholds, and the last place is no longer red by rule


def test_publishing_gives_each_colour_its_consequence_as_a_task(db, march):
    """Seed 004: each colour sets something in motion (绿 表扬 … 红 约谈). Publishing a month makes one task per
    coloured unit with a due date; a center lists those of its jurisdiction, red first."""
    reports.snapshot_month(db, 2026, 3)
    out = reports.publish_month(db, 2026, 3, now=at(4, 3))
    assert out["tasks"] > 0
    city = User(id=9, username="city", role="city_center", region_code="990100")
    tasks = reports.colour_tasks(db, city, (2026, 3))
    towns = {t["unit_code"]: t for t in tasks if t["unit_type"] == "township"}
    assert towns[T1]["colour"] == "red" and towns[T1]["consequence"] == "推进会表态发言，市领导直接约谈"
    assert towns[T1]["due_date"] == (at(4, 3).date() + dt.timedelta(days=reports.CONSEQUENCE_DAYS)).isoformat()
    assert towns[T2]["colour"] == "orange" and "专项督查督办" in towns[T2]["consequence"]
    assert tasks[0]["colour"] == "red"                                    # red first
    township = User(id=1, username="twp", role="township_center", region_code=T2)
    assert {t["unit_code"][:9] for t in reports.colour_tasks(db, township)} == {T2}   # its jurisdiction only
    assert reports.colour_tasks(db, city, (2026, 3), open_only=True) == tasks


def test_colour_tasks_go_to_the_unit_types_the_policy_names(db, march):
    """Seed 004's consequences (表扬 … 市领导直接约谈) are for the units that carry 化解清零: counties, townships
    and departments by default — not one 约谈 per grid and month; a city may name other types. Every unit is
    still coloured and ranked."""
    from cases.policy import save_rate_policy

    reports.snapshot_month(db, 2026, 3)
    coloured = {r["unit_type"] for r in db.fetchall("SELECT unit_type FROM rate_snapshot WHERE month = '2026-03-01' "
                                                    "AND colour IN ('green', 'yellow', 'orange', 'red')")}
    assert {"grid", "township"} <= coloured
    reports.publish_month(db, 2026, 3, now=at(4, 3))
    city = User(id=9, username="city", role="city_center", region_code="990100")
    assert {t["unit_type"] for t in reports.colour_tasks(db, city, (2026, 3))} == coloured & {"county", "township",
                                                                                               "department"}
    save_rate_policy(db, {"task_unit_types": ["grid"]})
    reports.snapshot_month(db, 2026, 2)
    reports.publish_month(db, 2026, 2, now=at(3, 3))
    assert {t["unit_type"] for t in reports.colour_tasks(db, city, (2026, 2))} <= {"grid"}


def test_a_colour_task_is_closed_by_a_center_of_its_jurisdiction(db, march):
    from cases.auth import create_user

    reports.snapshot_month(db, 2026, 3)
    reports.publish_month(db, 2026, 3, now=at(4, 3))
    city = User(id=9, username="city", role="city_center", region_code="990100")
    task = next(t for t in reports.colour_tasks(db, city, (2026, 3)) if t["unit_code"] == T1)
    other = create_user(db, "twp2", "password123", "township_center", T2, hash_method="pbkdf2:sha256:1000")
    with pytest.raises(NotFound):
        reports.complete_colour_task(db, other, task["id"])          # another township's task
    mine = create_user(db, "twp1", "password123", "township_center", T1, hash_method="pbkdf2:sha256:1000")
    done = reports.complete_colour_task(db, mine, task["id"], now=at(4, 8))
    assert done["done_at"].startswith("2026-04-08")
    assert task["id"] not in {t["id"] for t in reports.colour_tasks(db, city, open_only=True)}
    with pytest.raises(Conflict):
        reports.complete_colour_task(db, mine, task["id"])
