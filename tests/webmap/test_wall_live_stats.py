"""The wall's live aggregates (migration 0095, issue 11): the KPI panel and the unit layers of a region user read
case_wall_open / case_wall_flow instead of counting today's and open cases on every refresh. Whatever the cases
go through (intake, transitions, deadlines moved, merges, moves between units, accusations, deletes), the
answers equal the direct count over case_record, for every region role, with the guard applied, at any `now`."""

from __future__ import annotations

import datetime as dt
import random

import psycopg2
import pytest

from cases import wallstats, workflow
from cases.auth import create_user
from cases.calendar import TZ
from cases.service import CaseService
from tests.factories import X0, Y0, get_user_by_username
from tests.webmap import wall_data

GRIDS = [("990101001001001", "990101001001", "990101001", X0 + 0.005),
         ("990101001001002", "990101001001", "990101001", X0 + 0.015),
         ("990101002001001", "990101002001", "990101002", X0 + 0.03)]
CHANNELS = ["hotline_12345", "online_petition", "grid_report", "mailbox", "mini_program"]
REGION_USERS = ["city", "county", "town", "village", "disp", "outsider", "admin1"]


def _users(db):
    for name, role, region in [("town", "township_center", "990101001"), ("village", "village_center", "990101002001"),
                               ("admin1", "admin", "990100")]:
        create_user(db, name, wall_data.PASSWORD, role, region, hash_method="pbkdf2:sha256:1000")
    return {n: get_user_by_username(db, n) for n in REGION_USERS + ["off1"]}


def _intake(db, rng, n, now):
    svc = CaseService(db)
    disp = get_user_by_username(db, "disp")
    for i in range(n):
        _, _, _, x = rng.choice(GRIDS)
        when = now - dt.timedelta(hours=rng.uniform(0, 24 * 40)) if rng.random() < 0.6 else now
        svc.intake({"kind": "投诉", "category_code": rng.choice(["CJ01", "GD01", "CJ"]), "reporter_name": "王小明",
                    "reporter_phone": "13700001111", "channel": rng.choice(CHANNELS), "title": f"诉求{i}",
                    "lon": x + rng.uniform(-0.003, 0.003), "lat": Y0 + 0.005, "emergency": rng.random() < 0.15,
                    "submission_key": f"live-{now.timestamp()}-{i}"}, disp, now=when)


def _shuffle(db, rng, now):
    """Random statements over the case table as the app could make them: each touches one or several rows."""
    ids = [r["id"] for r in db.fetchall("SELECT id FROM case_record ORDER BY id")]
    minute = now.replace(second=0, microsecond=0)
    for _ in range(25):
        pick = rng.sample(ids, k=min(len(ids), rng.choice([1, 1, 2, 5])))
        status = rng.choice(list(workflow.STATES))
        # deadlines around now, often inside the current minute and the minute 24 h on (the exact parts)
        due = rng.choice([now - dt.timedelta(hours=rng.uniform(0, 50)), now + dt.timedelta(hours=rng.uniform(0, 50)),
                          minute + dt.timedelta(seconds=rng.uniform(0, 59.9)),
                          minute + dt.timedelta(hours=24, seconds=rng.uniform(0, 59.9)), None])
        closed = now - dt.timedelta(hours=rng.uniform(0, 24 * 8)) if status == "closed" else rng.choice([None, None, now])
        sets = {"status": status, "closed_at": closed}
        for col in rng.sample(["accept_due_at", "sign_due_at", "reply_due_at", "handle_due_at"], k=rng.randint(1, 4)):
            sets[col] = due
        r = rng.random()
        if r < 0.15:
            sets["accused_units"] = rng.sample(["990101001", "990101", "990101002001", "990101-ZJ", "990100"], k=2)
        elif r < 0.25:
            sets["accused_persons"] = [rng.choice(["town", "county", "village", "city"])]
        elif r < 0.35:
            grid, village, town, _ = rng.choice(GRIDS)
            sets.update(grid_code=grid, village_code=village, township_code=town)
        elif r < 0.4:  # an unlocated case under the region the geocoder was sure of
            sets.update(grid_code=None, village_code=None, township_code=None, county_code=None,
                        handler_region=rng.choice(["990101", "990100"]))
        elif r < 0.5:
            sets["category_code"] = rng.choice(["CJ", "GD01", None])
        elif r < 0.6:
            sets["emergency"] = rng.random() < 0.5
        cols = ", ".join(f"{k} = %({k})s" for k in sets)
        db.execute(f"UPDATE case_record SET {cols} WHERE id = ANY(%(ids)s)", {**sets, "ids": pick})


def _same_answers(db, users, now):
    for name in REGION_USERS:
        u = users[name]
        live, direct = wallstats.kpi(db, u, now, live=True), wallstats.kpi(db, u, now, live=False)
        assert live == direct, (name, now)
        for level, parent in [("county", None), ("township", None), ("township", "990101"), ("grid", "990101001"),
                              ("grid", "990101002")]:
            assert wallstats.unit_counts(db, u, level, parent=parent, now=now, live=True) == \
                wallstats.unit_counts(db, u, level, parent=parent, now=now, live=False), (name, level, parent, now)


def _aggregates_are_the_cases(owner_dsn):
    """case_wall_open and case_wall_flow hold exactly what a rebuild from case_record gives, and no zero rows."""
    with psycopg2.connect(owner_dsn) as conn, conn.cursor() as cur:
        for table, src in [("case_wall_open", "case_wall_open_delta_sql"), ("case_wall_flow", "case_wall_flow_delta_sql")]:
            cur.execute(f"SELECT {src}('SELECT c.*, 1 AS sgn FROM case_record c')")
            rebuilt = cur.fetchone()[0]
            cur.execute(f"SELECT count(*) FROM (({rebuilt}) EXCEPT ALL TABLE {table}) a")
            missing = cur.fetchone()[0]
            cur.execute(f"SELECT count(*) FROM (TABLE {table} EXCEPT ALL ({rebuilt})) a")
            extra = cur.fetchone()[0]
            assert (missing, extra) == (0, 0), table
        cur.execute("SELECT count(*) FROM case_wall_open WHERE n = 0")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_live_wall_counts_equal_the_direct_counts_through_random_histories(app_db, owner_dsn):
    db, users = app_db
    rng = random.Random(11)
    now = dt.datetime.now(TZ)
    _intake(db, rng, 40, now)
    for round_ in range(4):
        _shuffle(db, rng, now)
        _aggregates_are_the_cases(owner_dsn)
        minute = now.replace(second=0, microsecond=0)
        for t in (now, minute, minute + dt.timedelta(seconds=59.99), now + dt.timedelta(hours=3),
                  now - dt.timedelta(days=1, hours=3)):
            _same_answers(db, users, t)
    k = wallstats.kpi(db, users["city"], now)
    assert k["open"] > 0 and k["today"]["total"] > 0 and any(d["closed"] for d in k["trend"])
    # the guard hides open cases from the township's center (otherwise the subtraction was never exercised)
    hidden = db.fetchone("SELECT count(*) AS n FROM case_record WHERE status NOT IN ('closed', 'merged', 'rejected') "
                         "AND coalesce(village_code, township_code, county_code, handler_region, '') LIKE '990101001%%' "
                         "AND (accused_units && %s OR accused_persons && %s)",
                         (users["town"].identities, users["town"].person_ids))["n"]
    assert hidden > 0


def test_deletes_and_truncate_keep_the_aggregates(app_db, owner_dsn):
    db, users = app_db
    rng = random.Random(5)
    now = dt.datetime.now(TZ)
    _intake(db, rng, 12, now)
    _shuffle(db, rng, now)
    with psycopg2.connect(owner_dsn) as conn, conn.cursor() as cur:
        # copies of some cases (no events refer to them), then deleted again, as an owner's maintenance would
        cur.execute("CREATE TEMP TABLE twin AS SELECT * FROM case_record WHERE id % 3 = 0")
        cur.execute("UPDATE twin SET id = id + 100000, case_no = case_no || '-twin', submission_key = NULL")
        cur.execute("INSERT INTO case_record SELECT * FROM twin")
    conn.close()
    _aggregates_are_the_cases(owner_dsn)
    _same_answers(db, users, now)
    with psycopg2.connect(owner_dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM case_record WHERE id > 100000 AND id % 2 = 0")
        assert cur.rowcount > 0
    conn.close()
    _aggregates_are_the_cases(owner_dsn)
    _same_answers(db, users, now)
    with psycopg2.connect(owner_dsn) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE case_key, case_record, case_event CASCADE")
        cur.execute("SELECT (SELECT count(*) FROM case_wall_open) + (SELECT count(*) FROM case_wall_flow)")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_a_surge_adds_rows_per_unit_and_minute_not_per_case(app_db, owner_dsn):
    """200 cases in one grid within the minute fall into a handful of aggregate rows: the wall's refresh does not
    grow with the surge."""
    db, users = app_db
    before = db.fetchone("SELECT (SELECT count(*) FROM case_wall_open) AS o, (SELECT count(*) FROM case_wall_flow) AS f")
    now = dt.datetime.now(TZ)
    svc = CaseService(db)
    disp = users["disp"]
    for i in range(200):
        svc.intake({"kind": "投诉", "category_code": "GD01", "reporter_name": "李雷", "reporter_phone": "13700002222",
                    "channel": "hotline_12345", "title": "停水", "lon": X0 + 0.031, "lat": Y0 + 0.004 + i * 1e-6,
                    "submission_key": f"surge-{i}"}, disp, now=now)
    after = db.fetchone("SELECT (SELECT count(*) FROM case_wall_open) AS o, (SELECT count(*) FROM case_wall_flow) AS f")
    assert after["o"] - before["o"] <= 3 and after["f"] - before["f"] <= 1
    assert wallstats.kpi(db, users["city"], now, live=True) == wallstats.kpi(db, users["city"], now, live=False)


def test_the_trigger_runs_the_current_delta_sql(db):
    """Like case_day_stats: the trigger body is generated from the delta functions; redefining them without
    case_wall_install_sync() would leave the trigger on the old SQL."""
    body = db.fetchone("SELECT prosrc FROM pg_proc WHERE proname = 'case_wall_sync'")["prosrc"]
    for src in ("SELECT n.*, 1 AS sgn FROM new_rows n", "SELECT o.*, -1 AS sgn FROM old_rows o",
                "SELECT o.*, -1 AS sgn FROM old_rows o UNION ALL SELECT n.*, 1 FROM new_rows n"):
        for fn in ("case_wall_open_delta_sql", "case_wall_flow_delta_sql"):
            assert db.fetchone(f"SELECT {fn}(%s) AS q", (src,))["q"] in body
    assert "EXECUTE" not in body.upper()


@pytest.fixture
def app_db(db):
    wall_data.build(db)
    return db, _users(db)
