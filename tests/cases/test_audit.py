"""The hash-chained event log: every event chains to its case's previous one, and `audit verify` names the
case and event of any edit, deletion or reordering made behind the app's back (by the owner or the
superuser, on this test's throwaway copy of the database)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest

from cases.audit import verify_event_log
from cases.auth import create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

ROOT = Path(__file__).resolve().parents[2]
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 14, 9, 0, tzinfo=TZ)


def submission(i: int) -> dict:
    return dict(channel="12345热线", kind="求决", category_code="CJ01", title=f"楼道灯不亮{i}",
                content="向阳小区1号楼楼道灯坏了", reporter_name="李建国", reporter_phone="13812345678",
                lon=X0 + 0.004, lat=Y0 + 0.005, submission_key=f"audit-{i}")


@pytest.fixture
def log(db):
    """Three cases through the loop (3 events each), the first also signed (4 events)."""
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    svc = CaseService(db)
    mk = lambda name, role, region, **kw: create_user(db, name, "password123", role, region,  # noqa: E731
                                                    hash_method="pbkdf2:sha256:1000", **kw)
    disp = mk("disp", "dispatcher", "990100")
    officer = mk("off1", "grid_officer", "990101001001", grid_code="990101001001001",
                 staff_code="990101001001001-grid_officer")
    cases = [svc.intake(submission(i), disp, now=T0) for i in range(3)]
    svc.act(officer, cases[0]["id"], "sign", now=T0 + dt.timedelta(hours=1))
    return db, cases


def _events(db, case_id):
    return db.fetchall("SELECT id, seq, prev_hash, hash FROM case_event WHERE case_id = %s ORDER BY seq", (case_id,))


def test_each_event_chains_to_the_previous_one_of_its_case(log):
    db, cases = log
    evs = _events(db, cases[0]["id"])
    assert [e["seq"] for e in evs] == [1, 2, 3, 4]
    assert bytes(evs[0]["prev_hash"]) == b""
    for a, b in zip(evs, evs[1:], strict=False):
        assert bytes(b["prev_hash"]) == bytes(a["hash"]) and len(bytes(a["hash"])) == 32
    rep = verify_event_log(db)
    assert rep.ok and (rep.cases, rep.events) == (3, 10) and len(rep.head_digest) == 64


def test_concurrent_appends_to_one_case_never_fork_the_chain(log):
    db, cases = log
    cid = cases[1]["id"]
    barrier = threading.Barrier(6)

    def append(k):
        barrier.wait()
        db.execute("INSERT INTO case_event (case_id, actor_role, action, data) VALUES (%s, 'system', 'note', %s)",
                   (cid, json.dumps({"k": k})))

    threads = [threading.Thread(target=append, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e["seq"] for e in _events(db, cid)] == list(range(1, 10))
    assert verify_event_log(db).ok


def _tamper(owner_dsn: str, *statements: str) -> None:
    """Rewrite the log as its owner, who may switch the append-only trigger off (the app role cannot)."""
    conn = psycopg2.connect(owner_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE case_event DISABLE TRIGGER case_event_no_update")
        for sql in statements:
            cur.execute(sql)
        cur.execute("ALTER TABLE case_event ENABLE TRIGGER case_event_no_update")
    conn.close()


def test_an_edit_is_named(log, owner_dsn):
    db, cases = log
    ev = _events(db, cases[0]["id"])[1]
    _tamper(owner_dsn, f"UPDATE case_event SET reason = '已核实' WHERE id = {ev['id']}")
    rep = verify_event_log(db)
    assert [(p.kind, p.case_no, p.event_id, p.seq) for p in rep.problems] == \
        [("edited", cases[0]["case_no"], ev["id"], 2)]


def test_an_edit_by_the_superuser_with_triggers_off_is_named(log, superuser_dsn):
    db, cases = log
    ev = _events(db, cases[2]["id"])[0]
    conn = psycopg2.connect(superuser_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE case_event SET at = at - interval '1 day' WHERE id = %s", (ev["id"],))
    conn.close()
    rep = verify_event_log(db)
    assert {(p.kind, p.case_no, p.event_id) for p in rep.problems} == {("edited", cases[2]["case_no"], ev["id"])}


def test_a_deletion_in_the_middle_is_named(log, owner_dsn):
    db, cases = log
    ev = _events(db, cases[0]["id"])[1]
    _tamper(owner_dsn, f"DELETE FROM case_event WHERE id = {ev['id']}")
    rep = verify_event_log(db)
    assert [p.kind for p in rep.problems] == ["deleted"]
    assert rep.problems[0].case_no == cases[0]["case_no"] and "#2" in rep.problems[0].message


def test_a_deleted_tail_and_a_wiped_case_are_named(log, owner_dsn):
    db, cases = log
    last = _events(db, cases[0]["id"])[-1]
    _tamper(owner_dsn, f"DELETE FROM case_event WHERE id = {last['id']}",
            f"DELETE FROM case_event WHERE case_id = {cases[1]['id']}")
    rep = verify_event_log(db)
    got = {(p.kind, p.case_no) for p in rep.problems}
    assert got == {("deleted", cases[0]["case_no"]), ("deleted", cases[1]["case_no"])}
    assert any("#4" in p.message for p in rep.problems) and any("all 3 events" in p.message for p in rep.problems)


def test_a_reordering_is_named(log, owner_dsn):
    db, cases = log
    e1, e2 = _events(db, cases[0]["id"])[:2]
    _tamper(owner_dsn, f"UPDATE case_event SET seq = 100 WHERE id = {e1['id']}",
            f"UPDATE case_event SET seq = 1 WHERE id = {e2['id']}",
            f"UPDATE case_event SET seq = 2 WHERE id = {e1['id']}")
    rep = verify_event_log(db)
    kinds = {p.kind for p in rep.problems}
    assert "reordered" in kinds and {p.case_no for p in rep.problems} == {cases[0]["case_no"]}
    assert {p.event_id for p in rep.problems} >= {e1["id"], e2["id"]}


def test_a_forged_event_that_bypasses_the_chain_is_named(log, superuser_dsn):
    db, cases = log
    conn = psycopg2.connect(superuser_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # the chain trigger does not run
        cur.execute("INSERT INTO case_event (case_id, actor_role, action, seq, prev_hash, hash)"
                    " VALUES (%s, 'system', 'close', 5, '\\x', '\\x00') RETURNING id", (cases[0]["id"],))
        forged = cur.fetchone()[0]
    conn.close()
    rep = verify_event_log(db)
    assert {p.event_id for p in rep.problems} == {forged}
    assert {p.kind for p in rep.problems} >= {"edited"}


def _cli(dsn, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_MIGRATE_URL")}
    env["GRIDGOV_DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "gis", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)


def test_cli_audit_verify(log, dsn, owner_dsn):
    db, cases = log
    cp = _cli(dsn, "audit", "verify")
    assert cp.returncode == 0, cp.stderr
    assert "OK" in cp.stdout and "10 events of 3 cases" in cp.stdout
    ev = _events(db, cases[1]["id"])[2]
    _tamper(owner_dsn, f"UPDATE case_event SET data = '{{\"note\": \"x\"}}' WHERE id = {ev['id']}")
    cp = _cli(dsn, "audit", "verify", "--json")
    assert cp.returncode == 2
    out = json.loads(cp.stdout)
    assert out["ok"] is False and out["problems"][0]["event_id"] == ev["id"]
    assert out["problems"][0]["case_no"] == cases[1]["case_no"]
    err = [line for line in cp.stderr.splitlines() if line.startswith("gridgov: error:")]
    assert len(err) == 1 and cases[1]["case_no"] in err[0] and "Traceback" not in cp.stderr


def test_events_logged_before_the_chain_existed_are_chained_by_the_migration(pg_cluster, tmp_path):
    """A database from before migration 0041 (e.g. a demo city already loaded) gets its history chained."""
    import shutil

    from gis.cluster import APP, OWNER, prepare_database
    from gis.db import Database
    from gis.migrate import discover, migrate
    from tests.conftest import drop_test_database

    for m in discover():
        if m.version < 41:
            (tmp_path / m.path.parent.parent.name / "migrations").mkdir(parents=True, exist_ok=True)
            shutil.copy(m.path, tmp_path / m.path.parent.parent.name / "migrations" / m.path.name)
    admin = psycopg2.connect(pg_cluster.admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE audit_old OWNER "{OWNER}"')
    admin.close()
    try:
        prepare_database(pg_cluster.superuser_dsn("audit_old"))
        owner = pg_cluster.role_dsn(OWNER, "audit_old")
        migrate(owner, log=lambda m: None, root=tmp_path)
        conn = psycopg2.connect(owner)
        with conn, conn.cursor() as cur:
            for i in range(3):
                cur.execute("INSERT INTO case_record (case_no, channel, kind, title, status, received_at)"
                            " VALUES (%s, '12345热线', '求决', 't', 'received', now()) RETURNING id", (f"OLD{i}",))
                cid = cur.fetchone()[0]
                for action in ("receive", "accept", "dispatch")[: i + 1]:
                    cur.execute("INSERT INTO case_event (case_id, actor_role, action) VALUES (%s, 'system', %s)",
                                (cid, action))
        conn.close()
        migrate(owner, log=lambda m: None)
        db = Database(pg_cluster.role_dsn(APP, "audit_old"), maxconn=2)
        try:
            rep = verify_event_log(db)
            assert rep.ok and (rep.cases, rep.events) == (3, 6)
            assert db.fetchall("SELECT case_id, seq FROM case_event_head ORDER BY case_id") == \
                [{"case_id": c, "seq": n} for c, n in zip(sorted(r["id"] for r in db.fetchall(
                    "SELECT id FROM case_record")), (1, 2, 3), strict=True)]
            # and new events continue each chain
            cid = db.fetchone("SELECT id FROM case_record WHERE case_no = 'OLD2'")["id"]
            db.execute("INSERT INTO case_event (case_id, actor_role, action) VALUES (%s, 'system', 'sign')", (cid,))
            assert verify_event_log(db).ok and _events(db, cid)[-1]["seq"] == 4
        finally:
            db.close()
    finally:
        drop_test_database(pg_cluster, "audit_old")
