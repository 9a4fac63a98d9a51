"""case_record and case_event partitioned by month (migration 0090, issue 11): a populated database is
converted with every row, id, event hash and aggregate kept; case_no and submission_key stay unique across
months and foreign keys still refuse orphans (case_key); a month's reads plan only that month's partition; a
case of a month without a partition lands in DEFAULT and moves to its month when the partition is made (the
scheduler makes months ahead); published snapshots stay frozen; the event log stays append-only."""

from __future__ import annotations

import datetime as dt
import re

import psycopg2
import psycopg2.errors
import pytest

from cases import reports
from cases.audit import verify_event_log
from cases.auth import case_scope, create_user
from cases.ledger import _LEDGER_SQL, _bounds
from cases.notify import MemoryNotifier
from cases.partitions import ensure_ahead, ensure_partitions, partitions
from cases.scheduler import run_reminders
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.cluster import APP
from gis.db import Database
from gis.migrate import PACKAGES, ROOT, migrate
from grids.store import load_city
from tests.conftest import create_empty_database, drop_test_database
from tests.factories import X0, Y0, tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))
G1 = "990101001001001"


def at(y, m, d, h=10):
    return dt.datetime(y, m, d, h, tzinfo=TZ)


def _sub(i: int, **kw) -> dict:
    return dict(channel="12345热线", kind="求决", category_code="CJ01", title=f"路灯不亮{i}", content="灯坏了",
                reporter_name="李建国", reporter_phone=f"138{i:08d}", lon=X0 + 0.004, lat=Y0 + 0.005,
                submission_key=f"part-{i}", **kw)


def _insert(db, case_no: str, received: dt.datetime, **kw) -> int:
    row = {"case_no": case_no, "channel": "hotline_12345", "kind": "求决", "title": case_no, "status": "received",
           "received_at": received, **kw}
    return db.fetchone(f"INSERT INTO case_record ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))}) "
                       "RETURNING id", list(row.values()))["id"]


def _where(db, table: str, **match) -> str:
    """The partition holding the row."""
    cond = " AND ".join(f"{k} = %({k})s" for k in match)
    return db.fetchone(f"SELECT tableoid::regclass::text AS p FROM {table} WHERE {cond}", match)["p"]


def _plan_tables(db, sql: str, params) -> set[str]:
    """The relations an EXPLAIN (after executor-startup pruning) reads."""
    def walk(n):
        if "Relation Name" in n:
            yield n["Relation Name"]
        for c in n.get("Plans", []):
            yield from walk(c)
    plan = db.fetchone("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)["QUERY PLAN"][0]["Plan"]
    return set(walk(plan))


# -- conversion of a populated database ------------------------------------------------------------------

@pytest.fixture
def before_0090(pg_cluster, tmp_path):
    """An empty database migrated up to (not including) 0090: (app DSN, owner DSN)."""
    for pkg in PACKAGES:
        src = ROOT / pkg / "migrations"
        if src.is_dir():
            (tmp_path / pkg / "migrations").mkdir(parents=True)
            for f in src.glob("*.sql"):
                if int(f.name[:4]) < 90:
                    (tmp_path / pkg / "migrations" / f.name).symlink_to(f)
    app, owner = create_empty_database(pg_cluster, "part_convert")
    migrate(owner, log=lambda m: None, root=tmp_path)
    yield app, owner
    drop_test_database(pg_cluster, "part_convert")


def _state(db) -> dict:
    return {
        "cases": [r["t"] for r in db.fetchall("SELECT c::text AS t FROM case_record c ORDER BY id")],
        "events": [r["t"] for r in db.fetchall("SELECT e::text AS t FROM case_event e ORDER BY id")],
        "day_stats": [r["t"] for r in db.fetchall("SELECT s::text AS t FROM case_day_stats s "
                                                  "ORDER BY unit_code, day, category_code")],
        "heads": db.fetchall("SELECT case_id, seq, hash FROM case_event_head ORDER BY case_id"),
        "packages": db.fetchall("SELECT case_id, leader FROM case_package ORDER BY case_id"),
        "snapshots": db.fetchall("SELECT month, unit_type, unit_code, metrics::text, published_at FROM rate_snapshot "
                                 "ORDER BY 1, 2, 3"),
    }


def _month_before_case_key(cur_or_db, case_id):
    """cases.partitions.received_at as it must read before 0090 made case_key (from the case row)."""
    sql = "SELECT received_at FROM case_record WHERE id = %s"
    if hasattr(cur_or_db, "description"):
        cur_or_db.execute(sql, (case_id,))
        row = cur_or_db.fetchone()
    else:
        row = cur_or_db.fetchone(sql, (case_id,))
    return row and (row["received_at"] if isinstance(row, dict) else row[0])


def test_migration_converts_a_populated_database_keeping_rows_ids_events_and_chains(before_0090, monkeypatch):
    app, owner = before_0090
    db = Database(app, maxconn=2)
    # today's service on the schema of 0089, where there is no case_key yet to name a case's month
    monkeypatch.setattr("cases.service.received_at", _month_before_case_key)
    monkeypatch.setattr("cases.case_reads.received_at", _month_before_case_key)
    monkeypatch.setattr("cases.service.received_ats", lambda cur, ids: [_month_before_case_key(cur, i) for i in ids])
    for where in ("cases.service", "cases.case_reads", "cases.attachments"):   # nor case_event_head's span (0093)
        monkeypatch.setattr(f"{where}.event_span", lambda *a, **k: ("true", {}))
    try:
        load_city(db, tiny_city(), progress=lambda m: None)
        seed_routing_rules(db)
        disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
        city = create_user(db, "city", "password123", "city_center", "990100", hash_method="pbkdf2:sha256:1000")
        svc = CaseService(db)
        # cases over four months, with actions, a merge and a 领导包案 (foreign keys of every kind)
        ids = [svc.intake(_sub(i), disp, now=at(2026, 2 + i % 4, 3 + i))["id"] for i in range(8)]
        svc.act(city, ids[1], "package", data={"leader": "副县长", "unit": "住建局", "plan": "一案一策",
                                               "standard": "事要解决", "target_date": "2026-08-01"},
                now=at(2026, 6, 21))
        reports.snapshot_month(db, 2026, 3, as_of=at(2026, 4, 10))
        reports.publish_month(db, 2026, 3, now=at(2026, 4, 10))
        before = _state(db)
        digest = verify_event_log(db).head_digest
        assert db.fetchone("SELECT relkind FROM pg_class WHERE relname = 'case_record'")["relkind"] == "r"
    finally:
        db.close()
    monkeypatch.undo()

    assert [m.version for m in migrate(owner, log=lambda m: None)][0] == 90
    db = Database(app, maxconn=2)
    try:
        assert db.fetchone("SELECT relkind FROM pg_class WHERE relname = 'case_record'")["relkind"] == "p"
        assert _state(db) == before
        rep = verify_event_log(db)
        assert rep.ok and rep.head_digest == digest
        # each case in its month's partition, each event in the partition of its own month
        for cid in ids:
            month = db.fetchone("SELECT to_char(received_at AT TIME ZONE 'Asia/Shanghai', 'YYYY_MM') AS m "
                                "FROM case_record WHERE id = %s", (cid,))["m"]
            assert _where(db, "case_record", id=cid) == f"case_record_p{month}"
        assert db.fetchone("SELECT count(*) AS n FROM case_event "
                           "WHERE tableoid = 'case_event_default'::regclass")["n"] == 0
        assert db.fetchone("SELECT count(*) AS n FROM case_key")["n"] == len(ids)
        # ids and case numbers continue after the converted ones; the chain goes on
        new = CaseService(db).intake(_sub(99), disp, now=at(2026, 6, 25))
        assert new["id"] > max(ids)
        assert verify_event_log(db).ok
        # the published month stays frozen
        with pytest.raises(psycopg2.Error, match="published and frozen"):
            db.execute("UPDATE rate_snapshot SET metrics = '{}' WHERE month = '2026-03-01'")
    finally:
        db.close()


# -- uniqueness and foreign keys across partitions ---------------------------------------------------------

def test_case_no_and_submission_key_stay_unique_across_months(db):
    ensure_partitions(db, at(2026, 1, 1), at(2026, 6, 1))
    _insert(db, "GG-1", at(2026, 1, 5), submission_key="k-1")
    assert _where(db, "case_record", case_no="GG-1") == "case_record_p2026_01"
    with pytest.raises(psycopg2.errors.UniqueViolation, match="case_key_case_no_key"):
        _insert(db, "GG-1", at(2026, 5, 5))               # another month, another partition
    with pytest.raises(psycopg2.errors.UniqueViolation, match="case_key_submission_key_key"):
        _insert(db, "GG-2", at(2026, 4, 5), submission_key="k-1")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        _insert(db, "GG-1", at(2019, 5, 5))               # the DEFAULT partition too
    # the statement failed whole: no case, no key row left behind
    assert db.fetchone("SELECT count(*) AS n FROM case_record")["n"] == 1
    assert db.fetchall("SELECT case_no, submission_key FROM case_key") == [{"case_no": "GG-1", "submission_key": "k-1"}]


def test_intake_replay_of_a_submission_key_is_still_idempotent(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)
    a = svc.intake(_sub(1), disp, now=at(2026, 3, 1))
    b = svc.intake(_sub(1), disp, now=at(2026, 5, 1))   # a retry a month later: the same case
    assert b["duplicate_submission"] and b["id"] == a["id"]
    assert db.fetchone("SELECT count(*) AS n FROM case_record")["n"] == 1


def test_foreign_keys_still_refuse_orphans(db, owner_dsn):
    cid = _insert(db, "GG-1", at(2026, 2, 5))
    db.execute("INSERT INTO case_event (case_id, actor_role, action) VALUES (%s, 'system', 'receive')", (cid,))
    for sql in ("INSERT INTO case_event (case_id, actor_role, action) VALUES (987654, 'system', 'note')",
                "INSERT INTO notification (case_id, kind, recipient, message, dedupe_key) "
                "VALUES (987654, 'remind', 'x', 'y', 'z')",
                "INSERT INTO case_package (case_id, leader, unit, plan, target_date, assigned_at) "
                "VALUES (987654, 'a', 'b', 'c', '2026-03-01', now())",
                "INSERT INTO extension_request (case_id, days, reason) VALUES (987654, 3, 'x')"):
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            db.execute(sql)
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        _insert(db, "GG-2", at(2026, 2, 6), status="merged", merged_into=987654)
    # a case with events cannot be deleted (by the owner: the app may not delete events, and here not cases)
    conn = psycopg2.connect(owner_dsn)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.ForeignKeyViolation):
            cur.execute("DELETE FROM case_record WHERE id = %s", (cid,))
    finally:
        conn.close()
    # every foreign key that pointed at case_record now points at case_key
    refs = db.fetchall("SELECT conrelid::regclass::text AS t, confrelid::regclass::text AS r FROM pg_constraint "
                       "WHERE contype = 'f' AND confrelid IN ('case_record'::regclass, 'case_key'::regclass) "
                       "AND conparentid = 0 ORDER BY 1")
    assert {r["r"] for r in refs} == {"case_key"}
    assert {r["t"] for r in refs} >= {"case_record", "case_event", "case_attachment", "case_package",
                                      "notification", "extension_request"}


# -- a month's reads prune to its partition ------------------------------------------------------------------

@pytest.fixture
def three_months(db):
    ensure_partitions(db, at(2026, 1, 1), at(2026, 12, 1))
    for m in (3, 4, 5):
        db.execute("""
            INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom, grid_code, village_code,
                                     township_code, county_code, sign_due_at, reply_due_at, dispatched_at)
            SELECT 'M' || %(m)s || '-' || i, 'hotline_12345', '求决', 't', 'dispatched', %(t)s + i * interval '1 hour',
                   ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), %(g)s, '990101001001', '990101001', '990101',
                   %(t)s + i * interval '1 hour' + interval '1 day', %(t)s + i * interval '1 hour' + interval '5 days',
                   %(t)s + i * interval '1 hour'
            FROM generate_series(1, 200) i""", {"m": m, "t": at(2026, m, 2), "x": X0 + 0.004, "y": Y0 + 0.005,
                                                "g": G1})
    db.execute("SELECT analyze_table('case_record')")
    return db


def test_a_month_of_the_ledger_and_the_review_reads_only_that_months_partition(three_months, db):
    city = create_user(db, "city", "password123", "city_center", "990100", hash_method="pbkdf2:sha256:1000")
    scope, params = case_scope(city)
    s, e = _bounds(dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    params.update(start=s, end=e)
    ledger = _plan_tables(db, _LEDGER_SQL.format(where=scope), params)
    assert {t for t in ledger if t.startswith("case_record")} == {"case_record_p2026_04"}
    # the review's period predicates (cases.review._period_where) use the zone function: pruned at start-up
    from cases.review import _period_where
    params = {}
    where = _period_where("990101001", dt.date(2026, 4, 1), dt.date(2026, 5, 1), None, params)
    got = _plan_tables(db, f"SELECT count(*) FROM case_record c WHERE {' AND '.join(where)}", params)
    assert got == {"case_record_p2026_04"}
    assert db.fetchone(f"SELECT count(*) AS n FROM case_record c WHERE {' AND '.join(where)}", params)["n"] == 200


def test_a_case_by_id_is_planned_on_its_own_months_partition(three_months, db):
    """A statement naming only the id is planned over every partition and its 27 indexes (6 ms with 17 months,
    ~70 ms with 30 on a busy machine, 0.2 ms unpartitioned). The case's month from case_key, given as a constant,
    leaves the planner one partition: the case reads and writes of every action do this."""
    from cases.case_rows import CASE_COLUMNS
    from cases.partitions import received_at

    case_id = db.fetchone("SELECT id FROM case_record WHERE case_no = 'M4-7'")["id"]
    month = received_at(db, case_id)
    assert month == at(2026, 4, 2) + dt.timedelta(hours=7)
    assert received_at(db, 10**12) is None
    sql = f"SELECT {CASE_COLUMNS} FROM case_record c WHERE c.id = %(cid)s AND c.received_at = %(rat)s"
    lines = [r["QUERY PLAN"] for r in db.fetchall("EXPLAIN " + sql, {"cid": case_id, "rat": month})]
    scanned = {w for line in lines for w in line.split() if w.startswith("case_record_p")}
    assert scanned == {"case_record_p2026_04"}, lines   # planned, not only pruned at run time
    assert db.fetchone(sql, {"cid": case_id, "rat": month})["case_no"] == "M4-7"


def test_a_months_rates_read_no_later_month(three_months, db):
    """A case counts in a month by its milestones, which may come long after its receipt (积案), so the rates
    cannot skip earlier months; but nothing received after the month can count in it."""
    from cases.rates import month_bounds
    from cases.reports import _FIELDS, _MONTH_WHERE

    start, end = month_bounds(2026, 4)
    params = {"start": start, "end": end, "wstart": start - dt.timedelta(days=7), "wend": end - dt.timedelta(days=7)}
    got = _plan_tables(db, f"SELECT {_FIELDS} FROM case_record c WHERE {_MONTH_WHERE}", params)
    assert got and not {t for t in got if t >= "case_record_p2026_05" and t != "case_record_default"}
    rows = reports.fetch_month_records(db, 2026, 4, "grid")
    assert len(rows) == 200        # April's own cases: their milestones fall in April


# -- months without a partition ----------------------------------------------------------------------------

def test_a_case_of_a_month_without_partition_waits_in_default_and_moves_when_its_month_is_made(db):
    cid = _insert(db, "OLD-1", at(2019, 3, 5))
    db.execute("INSERT INTO case_event (case_id, at, actor_role, action) VALUES (%s, %s, 'system', 'receive')",
               (cid, at(2019, 3, 5)))
    db.execute("INSERT INTO case_event (case_id, at, actor_role, action) VALUES (%s, %s, 'system', 'sign')",
               (cid, at(2019, 4, 1)))
    assert _where(db, "case_record", id=cid) == "case_record_default"
    stats = db.fetchall("SELECT s::text AS t FROM case_day_stats s ORDER BY 1")
    digest = verify_event_log(db).head_digest
    # the scheduler's run makes the months ahead and every month waiting in DEFAULT
    assert ensure_partitions(db, at(2019, 3, 1), at(2019, 3, 31)) >= 2
    assert _where(db, "case_record", id=cid) == "case_record_p2019_03"
    assert {r["p"] for r in db.fetchall("SELECT tableoid::regclass::text AS p FROM case_event WHERE case_id = %s",
                                        (cid,))} == {"case_event_p2019_03", "case_event_p2019_04"}
    assert db.fetchone("SELECT count(*) AS n FROM case_record "
                       "WHERE tableoid = 'case_record_default'::regclass")["n"] == 0
    # moved, not re-inserted: aggregate, ids and hashes unchanged; the partitions are the owner's
    assert db.fetchall("SELECT s::text AS t FROM case_day_stats s ORDER BY 1") == stats
    rep = verify_event_log(db)
    assert rep.ok and rep.head_digest == digest
    with pytest.raises(psycopg2.Error, match="permission denied"):
        db.execute("SELECT count(*) FROM case_record_p2019_03")
    # the event log is append-only in the new partitions too, and its triggers chain new events there
    db.execute("INSERT INTO case_event (case_id, at, actor_role, action) VALUES (%s, %s, 'system', 'note')",
               (cid, at(2019, 3, 20)))
    assert verify_event_log(db).ok


def test_the_scheduler_makes_the_months_ahead(db):
    now = dt.datetime.now(TZ)
    run_reminders(db, now, MemoryNotifier())
    names = {p["name"] for p in partitions(db)}
    for k in range(4):
        y, m = divmod(now.month - 1 + k, 12)
        assert f"case_record_p{now.year + y}_{m + 1:02d}" in names
        assert f"case_event_p{now.year + y}_{m + 1:02d}" in names.union(p["name"] for p in partitions(db, "case_event"))
    assert ensure_ahead(db, now) == 0      # idempotent
    # a case received next month goes to its own partition, not DEFAULT
    nxt = (now.replace(day=1) + dt.timedelta(days=40)).replace(day=2)
    cid = _insert(db, "NEXT-1", nxt)
    assert _where(db, "case_record", id=cid) == f"case_record_p{nxt:%Y_%m}"


def test_the_app_cannot_touch_partitions_or_case_key_directly(db):
    ensure_partitions(db, at(2026, 3, 1), at(2026, 3, 1))
    cid = _insert(db, "GG-1", at(2026, 3, 5))
    db.execute("INSERT INTO case_event (case_id, actor_role, action) VALUES (%s, 'system', 'receive')", (cid,))
    month = _where(db, "case_event", case_id=cid)
    for sql in ("UPDATE case_event SET reason = 'x'", "DELETE FROM case_event", f"DELETE FROM {month}",
                f"UPDATE {month} SET reason = 'x'", "DELETE FROM case_record_p2026_03",
                "INSERT INTO case_key (id, case_no, received_at) VALUES (1, 'x', now())",
                "DELETE FROM case_key", f"ALTER TABLE {month} DISABLE TRIGGER ALL"):
        with pytest.raises(psycopg2.Error, match="permission denied|must be owner"):
            db.execute(sql)
    # the owner may not rewrite it through a partition either: the append-only trigger is on every partition
    assert db.fetchone("SELECT count(*) AS n FROM pg_trigger t JOIN pg_inherits i ON i.inhrelid = t.tgrelid "
                       "WHERE i.inhparent = 'case_event'::regclass AND t.tgname = 'case_event_no_update'")["n"] \
        == len(partitions(db, "case_event"))
    assert db.fetchone("SELECT count(*) AS n FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                       "WHERE rolname = %s)", (APP,))["n"] == 0



# -- open-case reads name the months that hold open cases (migration 0091) -------------------------------------

def test_case_key_knows_which_cases_are_open_and_open_reads_plan_only_their_months(three_months, db, monkeypatch):
    """The officer's list, the worklist, the wall's open layers and the scheduler's scans name no month; with
    years of partitions they were planned over all of them (list p99 27 ms at 17 partitions, 120 ms at 41).
    case_key.open (kept by the owner triggers) gives the oldest open case; the reads keep the months from it."""
    from cases.partitions import open_months
    from cases.worklist import counts

    load_city(db, tiny_city(), progress=lambda m: None)
    ensure_partitions(db, at(2023, 1, 1), at(2024, 12, 1))
    old_closed = _insert(db, "OLD-CLOSED", at(2023, 2, 3), status="closed")
    old_open = _insert(db, "OLD-OPEN", at(2024, 6, 3), status="handling", grid_code=G1,
                       village_code="990101001001", township_code="990101001", county_code="990101")
    is_open = {r["case_no"]: r["open"] for r in db.fetchall("SELECT case_no, open FROM case_key")}
    assert is_open["OLD-OPEN"] and not is_open["OLD-CLOSED"] and is_open["M4-7"]
    assert open_months(db) == ("c.received_at >= %(open_since)s", {"open_since": at(2024, 6, 3)})

    officer = create_user(db, "off1", "password123", "grid_officer", "990101001001", grid_code=G1,
                          hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)
    seen = []
    real = db.fetchall

    def spy(sql, params=None):
        seen.append((sql, params))
        return real(sql, params)

    monkeypatch.setattr(db, "fetchall", spy)
    rows, _ = svc.list_page(officer, open_only=True, limit=1000)
    monkeypatch.undo()
    assert len(rows) == 601 and "OLD-OPEN" in {r["case_no"] for r in rows}     # the 积案 of 2024 is still listed
    sql, params = next((s, p) for s, p in seen if "FROM case_record c" in s)
    read = {t for t in _plan_tables(db, sql, params) if t.startswith("case_record_p")}
    assert read and min(read) == "case_record_p2024_06", read          # nothing before the oldest open case
    assert counts(db, officer)["counts"]["open"] == 601

    # closing the old case moves the bound up to the oldest open case left; reopening it moves it back
    db.execute("UPDATE case_record SET status = 'closed', closed_at = now() WHERE id = %s", (old_open,))
    assert not db.fetchone("SELECT open FROM case_key WHERE id = %s", (old_open,))["open"]
    assert open_months(db)[1] == {"open_since": at(2026, 3, 2) + dt.timedelta(hours=1)}
    rows, _ = svc.list_page(officer, open_only=True, limit=1000)
    assert len(rows) == 600 and counts(db, officer)["counts"]["open"] == 600
    db.execute("UPDATE case_record SET status = 'reopened' WHERE id = %s", (old_open,))
    assert open_months(db)[1] == {"open_since": at(2024, 6, 3)}
    assert len(svc.list_page(officer, open_only=True, limit=1000)[0]) == 601
    # every case closed: nothing to narrow by, and the reads still answer
    db.execute("UPDATE case_record SET status = 'closed'")
    assert open_months(db) == ("true", {})
    assert svc.list_page(officer, open_only=True)[0] == []
    assert db.fetchone("SELECT count(*) AS n FROM case_key WHERE open")["n"] == 0
    assert old_closed


def test_the_open_flag_uses_the_workflows_terminal_states():
    """Migration 0091 writes the terminal states into its triggers; they must be cases.workflow's."""
    from cases import workflow

    sql = (ROOT / "cases" / "migrations" / "0091_case_key_open.sql").read_text()
    lists = {tuple(sorted(s.strip().strip("'") for s in m.split(",")))
             for m in re.findall(r"IN \(('[a-z]+'(?:, '[a-z]+')*)\)", sql)}
    assert lists == {tuple(sorted(workflow.TERMINAL_STATES))}


def test_a_cases_events_are_read_from_the_months_they_are_in(db):
    """case_event_head keeps each case's first and last event instant (0093), whatever order the events come
    in; the case page names that span, so its events are planned on their own months, and all of them come."""
    from cases.partitions import event_span

    load_city(db, tiny_city(), progress=lambda m: None)
    ensure_partitions(db, at(2025, 1, 1), at(2026, 12, 1))
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    other = _insert(db, "OTHER", at(2026, 1, 5))
    cid = _insert(db, "GG-1", at(2026, 3, 5), county_code="990101")
    assert event_span(db, cid) == ("false", {})                       # no events yet: nothing to read
    for when, action in ((at(2026, 3, 5), "receive"), (at(2026, 6, 1), "note"), (at(2026, 2, 20), "note"),
                         (at(2026, 4, 9), "note")):                     # not in time order
        db.execute("INSERT INTO case_event (case_id, at, actor_role, action) VALUES (%s, %s, 'system', %s)",
                   (cid, when, action))
    db.execute("INSERT INTO case_event (case_id, at, actor_role, action) VALUES (%s, %s, 'system', 'receive')",
               (other, at(2025, 5, 1)))
    head = db.fetchone("SELECT first_at, last_at FROM case_event_head WHERE case_id = %s", (cid,))
    assert (head["first_at"], head["last_at"]) == (at(2026, 2, 20), at(2026, 6, 1))
    span, params = event_span(db, cid)
    sql = f"SELECT id FROM case_event WHERE case_id = %(cid)s AND {span} ORDER BY id"
    read = {t for t in _plan_tables(db, sql, {"cid": cid, **params}) if t.startswith("case_event_p")}
    assert read == {f"case_event_p2026_{m:02d}" for m in range(2, 7)}     # February to June, no other month
    lines = [r["QUERY PLAN"] for r in db.fetchall("EXPLAIN " + sql, {"cid": cid, **params})]
    assert not any("case_event_p2025" in line or "case_event_p2026_01" in line for line in lines), lines
    case = CaseService(db).get(disp, cid)
    assert len(case["events"]) == 4 and [e["action"] for e in case["events"]][0] == "receive"
