"""The demo city end to end: built, loaded into PostGIS, a stretch of synthetic cases run through the real
loop (routing rules, deadline engine, transition table), and the numbers add up when recomputed
independently from the append-only event log."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from fractions import Fraction

import pytest

from cases import workflow
from cases.rates import monthly_rates
from cases.setup import seed_demo_users, seed_routing_rules
from cases.simulate import Simulator, load_simulated
from fixtures.cases import generate_cases
from fixtures.city import build_city
from gis.cluster import APP
from gis.db import Database
from grids.store import load_city
from tests.conftest import create_test_database, drop_test_database

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=TZ)
N = 3000


@pytest.fixture(scope="module")
def demo(pg_cluster):
    name = create_test_database(pg_cluster, prefix="demo_")
    db = Database(pg_cluster.role_dsn(APP, name), maxconn=4)
    city = build_city()
    load_city(db, city, progress=lambda m: None)
    seed_routing_rules(db)
    loaded = load_simulated(db, Simulator.from_db(db, now=NOW),
                            generate_cases(city, N, NOW - dt.timedelta(days=120), NOW, seed=5, now=NOW))
    users = seed_demo_users(db)
    yield db, city, loaded, users
    db.close()
    drop_test_database(pg_cluster, name)


def test_demo_city_in_postgis_tiles_and_addresses_in_grids(demo):
    db, city, _, _ = demo
    counts = db.fetchone("SELECT (SELECT count(*) FROM region WHERE level = 'county') counties, "
                         "(SELECT count(*) FROM region WHERE level = 'township') townships, "
                         "(SELECT count(*) FROM grid) grids, (SELECT count(*) FROM address) addresses")
    assert counts == {"counties": 5, "townships": 79, "grids": len(city.grids), "addresses": len(city.addresses)}
    # PostGIS agrees: grids are valid, and every standard address is covered by its own grid
    bad = db.fetchone("SELECT (SELECT count(*) FROM grid WHERE NOT ST_IsValid(geom)) invalid, "
                      "(SELECT count(*) FROM address a JOIN grid g ON g.code = a.grid_code "
                      " WHERE NOT ST_Covers(g.geom, a.geom)) outside")
    assert bad == {"invalid": 0, "outside": 0}
    # counties tile the city: area of the union equals the city's area (geodesic m², relative 1e-6)
    a = db.fetchone("SELECT ST_Area(c.geom::geography) city, (SELECT sum(ST_Area(geom::geography)) FROM region "
                    "WHERE level = 'county') counties FROM region c WHERE c.level = 'city'")
    assert abs(a["city"] - a["counties"]) / a["city"] < 1e-6


def test_every_case_went_through_legal_transitions(demo):
    db, _, loaded, _ = demo
    assert loaded == N
    events: dict[int, list] = {}
    for e in db.fetchall("SELECT case_id, action, from_state, to_state, actor_role, reason FROM case_event "
                         "ORDER BY case_id, at, id"):
        events.setdefault(e["case_id"], []).append(e)
    statuses = {r["id"]: r["status"] for r in db.fetchall("SELECT id, status FROM case_record")}
    assert set(events) == set(statuses)
    for cid, evs in events.items():
        state = "received"
        assert evs[0]["action"] == "receive"
        for e in evs[1:]:
            action = {"extended": "approve_extension"}.get(e["action"], e["action"])
            t = workflow.apply(state, action, e["actor_role"], e["reason"])
            assert (e["from_state"], e["to_state"]) == (state, t.new_state)
            state = t.new_state
        assert state == statuses[cid], cid
    mix = Counter(statuses.values())
    assert mix["closed"] > N * 0.5 and mix["received"] + mix["dispatched"] + mix["handling"] > 0


def test_cases_carry_the_grid_that_covers_them_and_the_routing_reason(demo):
    db, _, _, _ = demo
    row = db.fetchone(
        "SELECT count(*) n, count(*) FILTER (WHERE ST_Covers(g.geom, c.geom)) covered, "
        "count(*) FILTER (WHERE c.routing->'explanation' IS NOT NULL) explained, "
        "count(*) FILTER (WHERE c.generation = 1) gen1 FROM case_record c JOIN grid g ON g.code = c.grid_code")
    assert row["n"] == N and row["covered"] == N and row["explained"] == N and row["gen1"] == N


def test_monthly_rates_match_an_independent_count_from_events(demo):
    db, _, _, _ = demo
    y, m = 2026, 10
    recs = db.fetchall(
        "SELECT county_code AS unit, status, received_at, sign_due_at, signed_at, reply_due_at, replied_at, "
        "accept_due_at, accepted_at, handle_due_at, "
        "evaluated_at, closed_at, evaluation, solved, returned_count, reopened_count, forwarded, "
        "dispatched_at IS NOT NULL AS dispatched FROM case_record")
    rates = monthly_rates(recs, y, m, as_of=NOW)
    # Independent: straight from the event log.
    ev = db.fetchall(
        "SELECT c.county_code unit, coalesce(c.sign_due_at, c.accept_due_at) AS sign_due_at, "
        " c.sign_due_at IS NULL AS by_accept, "
        " (SELECT min(at) FROM case_event e WHERE e.case_id = c.id AND e.action = 'sign') first_sign, "
        " (SELECT min(at) FROM case_event e WHERE e.case_id = c.id AND e.action = 'accept') first_accept, "
        " EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.action = 'dispatch') dispatched, "
        " (SELECT data->>'evaluation' FROM case_event e WHERE e.case_id = c.id AND e.action = 'evaluate' "
        "  ORDER BY id DESC LIMIT 1) evaluation, "
        " (SELECT max(at) FROM case_event e WHERE e.case_id = c.id AND e.action = 'evaluate') evaluated_at, "
        " (SELECT max(at) FROM case_event e WHERE e.case_id = c.id AND e.action = 'reply') replied_at "
        "FROM case_record c")
    start, end = dt.datetime(y, m, 1, tzinfo=TZ), dt.datetime(y, m + 1, 1, tzinfo=TZ)
    checked = 0
    for unit, r in rates.items():
        rows = [e for e in ev if e["unit"] == unit]
        cohort = [e for e in rows if e["dispatched"] and e["sign_due_at"] and start <= e["sign_due_at"] < end]
        # 签收 on time, or 受理 on time for a 信访 case without a 签收 milestone (no case outside the rates)
        ok = [e for e in cohort if (t := e["first_accept"] if e["by_accept"] else e["first_sign"]) is not None
              and t <= e["sign_due_at"]]
        if cohort:
            assert r.response.value == Fraction(len(ok), len(cohort)), unit
            checked += 1
        evals = [e for e in rows if e["evaluation"] and start <= e["evaluated_at"] < end]
        # 超期未评 counts against 满意率: the 7-day window after the last reply ended in the month (by NOW)
        # and nobody evaluated by then
        cut = min(end, NOW)
        wend = {id(e): e["replied_at"] + dt.timedelta(days=7) for e in rows if e["replied_at"]}
        unev = [e for e in rows if id(e) in wend and start <= wend[id(e)] < end and wend[id(e)] <= cut
                and (e["evaluated_at"] is None or e["evaluated_at"] >= cut)]
        if evals or unev:
            sat = sum(Fraction(1) if e["evaluation"] == "满意" else Fraction(4, 5) if e["evaluation"] == "基本满意"
                      else Fraction(0) for e in evals)
            assert r.satisfaction.value == sat / (len(evals) + len(unev)), unit
    assert checked == 5


def test_demo_users_cover_every_role(demo):
    _, _, _, users = demo
    assert {u["role"] for u in users} == {"admin", "city_center", "county_center", "township_center",
                                          "village_center", "grid_officer", "department", "dispatcher"}


def test_no_case_is_invisible_to_the_rates(demo):
    """Issue 9: 15% of a demo's cases never entered 响应率 and 13% never 解决率 — 信访 under the regular procedure
    (受理/办结, no 签收/答复 milestone) and emergencies (no 答复). Every case now has the milestone each rate
    counts it by; only 书记信箱 has no response milestone (docs/cases.md, "Which case enters which rate")."""
    db = demo[0]
    row = db.fetchone(
        "SELECT count(*) FILTER (WHERE deadline_profile = 'petition') AS petitions, "
        " count(*) FILTER (WHERE deadline_profile = 'emergency') AS emergencies, "
        " count(*) FILTER (WHERE coalesce(reply_due_at, handle_due_at) IS NULL) AS no_resolution_due, "
        " count(*) FILTER (WHERE dispatched_at IS NOT NULL AND coalesce(sign_due_at, accept_due_at) IS NULL "
        "   AND channel <> 'mailbox') AS no_response_due "
        "FROM case_record WHERE status NOT IN ('merged', 'rejected')")
    assert row["petitions"] > 0 and row["emergencies"] > 0
    assert row["no_resolution_due"] == 0 and row["no_response_due"] == 0
    # and the aggregate counts them: a month's cohorts equal the cases due in it
    n = db.fetchone("SELECT count(*) AS n FROM case_record WHERE status <> 'merged' AND merged_into IS NULL "
                    "AND coalesce(reply_due_at, handle_due_at) >= '2026-10-01 00:00+08' "
                    "AND coalesce(reply_due_at, handle_due_at) < '2026-11-01 00:00+08'")["n"]
    agg = db.fetchone("SELECT sum(reply_cohort) AS n FROM case_day_stats WHERE day >= '2026-10-01' "
                      "AND day < '2026-11-01'")["n"]
    assert n == agg > 0


def test_demo_year_has_complex_petitions_and_leader_packages(demo, tmp_path):
    """Issue 9: the demo year shows 疑难复杂 (seed 002: "除疑难复杂的信访事项外…实行简易程序") and 领导包案 with its
    约访/下访 (seeds 002, 004), and the ledger's 责任领导/责任单位/办理时限/办理标准 columns (seed 000) are filled."""
    from openpyxl import load_workbook

    from cases.auth import get_user
    from cases.ledger import LEDGER_HEADERS, export_ledger
    from cases.service import CaseService

    db = demo[0]
    c = db.fetchone(
        "SELECT count(*) FILTER (WHERE complex) AS complex, "
        " count(*) FILTER (WHERE complex AND channel NOT IN ('online_petition', 'letter', 'visit', "
        "   'leader_reception')) AS complex_not_petition, "
        " count(*) FILTER (WHERE complex AND deadline_profile <> 'petition') AS complex_simple, "
        " count(*) FILTER (WHERE complex AND NOT EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id "
        "   AND e.action = 'mark_complex' AND e.reason = c.complex_reason)) AS complex_without_event, "
        " count(*) FILTER (WHERE channel IN ('online_petition', 'letter', 'visit') AND NOT complex "
        "   AND deadline_profile = 'simple' AND sign_due_at IS NOT NULL) AS simple_procedure "
        "FROM case_record c")
    assert c["complex"] > 0 and c["simple_procedure"] > 0
    assert c["complex_not_petition"] == c["complex_simple"] == c["complex_without_event"] == 0
    p = db.fetchone(
        "SELECT count(*) AS n, count(*) FILTER (WHERE NOT c.complex) AS not_complex, "
        " count(*) FILTER (WHERE e.data->>'leader' <> p.leader OR e.data->>'target_date' <> p.target_date::text "
        "   OR e.at <> p.assigned_at) AS event_differs, "
        " count(*) FILTER (WHERE p.target_date < (p.assigned_at AT TIME ZONE 'Asia/Shanghai')::date) AS target_past, "
        " (SELECT count(*) FROM case_event v WHERE v.action = 'visit') AS visits "
        "FROM case_package p JOIN case_record c ON c.id = p.case_id "
        "JOIN case_event e ON e.case_id = p.case_id AND e.action = 'package'")
    assert p["n"] > 0 and p["visits"] > 0
    assert p["not_complex"] == p["event_differs"] == p["target_past"] == 0
    assert db.fetchone("SELECT count(*) AS n FROM case_event WHERE action IN ('package', 'visit') AND at > %s",
                       (NOW,))["n"] == 0
    city = get_user(db, next(u["id"] for u in demo[3] if u["role"] == "city_center"))
    svc = CaseService(db)
    packaged, _ = svc.list_page(city, register="领导包案", limit=1000)
    assert len(packaged) == p["n"] and all(r["package"]["leader"] for r in packaged)
    booked, _ = svc.list_page(city, register="预约登记", limit=1000)
    assert booked and all(r["id"] in {x["id"] for x in packaged} for r in booked)
    out = tmp_path / "ledger.xlsx"
    export_ledger(db, city, out, NOW - dt.timedelta(days=130), NOW, filters={"channel": ["online_petition", "letter",
                                                                                          "visit",
                                                                                          "leader_reception"]},
                  now=NOW)
    rows = list(load_workbook(out, read_only=True).worksheets[0].iter_rows(values_only=True))
    head = rows.index(next(r for r in rows if r and r[0] == LEDGER_HEADERS[0]))
    cols = {h: i for i, h in enumerate(rows[head])}
    led = [r for r in rows[head + 1:] if r and r[cols["责任领导"]]]
    assert len(led) == p["n"]
    assert all(r[cols["责任单位"]] and r[cols["办理时限"]] and r[cols["办理标准"]] for r in led)
    assert {r[cols["化解情况"]] for r in led} <= {"已息访办结", "已有化解方案"}


def test_demo_publishes_its_closed_months_with_colour_tasks(demo):
    """Issue 9 (seed 004: 红码 = 排名末位, each colour with its consequence): the demo year publishes every month
    that ended before its publication day; each coloured unit gets its task; only last places are red."""
    from cases.simulate import publish_history

    db = demo[0]
    out = publish_history(db, NOW - dt.timedelta(days=120), NOW)
    assert [o["month"] for o in out] == ["2026-08-01", "2026-09-01", "2026-10-01"]
    snap = db.fetchall("SELECT month, unit_type, unit_code, colour, (metrics->>'rank')::int AS rank, "
                       "published_at FROM rate_snapshot")
    assert snap and all(r["published_at"] is not None for r in snap)
    assert {r["month"].isoformat() for r in snap} == {o["month"] for o in out}
    for r in snap:
        if r["colour"] == "red":
            last = max(x["rank"] or 0 for x in snap if (x["month"], x["unit_type"]) == (r["month"], r["unit_type"]))
            assert r["rank"] == last, r
    tasks = db.fetchall("SELECT month, unit_type, unit_code, colour, consequence, done_at FROM colour_task")
    coloured = {(r["month"], r["unit_type"], r["unit_code"]) for r in snap if r["colour"] in
                ("green", "yellow", "orange", "red") and r["unit_type"] in ("county", "township", "department")}
    assert {(t["month"], t["unit_type"], t["unit_code"]) for t in tasks} == coloured
    assert all(t["consequence"] for t in tasks)
    newest = max(t["month"] for t in tasks)
    assert all((t["done_at"] is None) == (t["month"] == newest) for t in tasks)
    with pytest.raises(Exception, match="已发布"):
        publish_history(db, NOW - dt.timedelta(days=120), NOW)
