"""All or nothing: a batch import (`import-cases --commit`) or a generation activation killed (SIGKILL) in the
middle of its transaction leaves nothing behind, and running it again completes it.

The kill point is made exact, not timed: a second session holds a lock the command will need after it has
already written part of its work; once PostgreSQL shows the command's backend waiting on that lock (with a
transaction id, i.e. rows written), the process is killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from cases.auth import create_user
from cases.setup import seed_routing_rules
from grids.io import import_boundaries
from grids.store import load_city
from tests.cases.test_importer import good, write_csv
from tests.factories import X0, Y0, tiny_city
from tests.grids.test_generations import G1, G2, _redraw

ROOT = Path(__file__).resolve().parents[2]
VICTIM = "gridgov-crash-victim"


def _start(args: list[str], dsn: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_MIGRATE_URL")}
    env["GRIDGOV_DATABASE_URL"] = f"{dsn} application_name={VICTIM}"
    return subprocess.Popen([sys.executable, "-m", "gis", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when_blocked_inside_transaction(proc: subprocess.Popen, superuser_dsn: str) -> None:
    """SIGKILL `proc` once its backend waits on a lock inside a transaction that has written rows."""
    mon = psycopg2.connect(superuser_dsn)
    mon.autocommit = True
    deadline = time.monotonic() + 60
    try:
        with mon.cursor() as cur:
            while True:
                assert proc.poll() is None, f"the command ended before the kill point: {proc.communicate()}"
                assert time.monotonic() < deadline, "the command never reached the kill point"
                cur.execute("SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE application_name = %s"
                            " AND wait_event_type = 'Lock' AND state = 'active'", (VICTIM,))
                row = cur.fetchone()
                if row:
                    assert row[0], "blocked before writing anything: not inside the transaction"
                    break
                time.sleep(0.02)
            proc.kill()
            proc.wait(timeout=30)
    finally:
        mon.close()


def _run_and_kill(args: list[str], dsn: str, blocker, superuser_dsn: str) -> None:
    """Start the command, kill it inside its transaction (blocked by `blocker`), release, wait it out."""
    proc = _start(args, dsn)
    try:
        _kill_when_blocked_inside_transaction(proc, superuser_dsn)
    finally:
        blocker.rollback()
        blocker.close()
        if proc.poll() is None:
            proc.kill()
    _wait_victim_gone(superuser_dsn)


def _wait_victim_gone(superuser_dsn: str) -> None:
    mon = psycopg2.connect(superuser_dsn)
    mon.autocommit = True
    deadline = time.monotonic() + 30
    with mon.cursor() as cur:
        while True:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (VICTIM,))
            if cur.fetchone()[0] == 0:
                break
            assert time.monotonic() < deadline, "the killed client's backend lingers"
            time.sleep(0.05)
    mon.close()


def test_import_cases_killed_mid_transaction_leaves_nothing(db, dsn, owner_dsn, superuser_dsn, tmp_path):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    rows = [good(i) for i in range(1, 41)]
    path = write_csv(tmp_path / "batch.csv", rows)
    # Another session inserts row 25's case (uncommitted): the import writes rows 1–24, then waits on it.
    blocker = psycopg2.connect(owner_dsn)
    with blocker.cursor() as cur:
        cur.execute("INSERT INTO case_record (case_no, submission_key, channel, kind, title, status, received_at)"
                    " VALUES ('BLOCKER', %s, '12345热线', '求决', 'x', 'received', now())",
                    (rows[24]["工单编号"],))
    _run_and_kill(["import-cases", str(path), "--as-user", "disp", "--commit"], dsn, blocker, superuser_dsn)
    left = db.fetchone("SELECT (SELECT count(*) FROM case_record) AS cases, (SELECT count(*) FROM case_event) AS"
                       " events, (SELECT count(*) FROM case_event_head) AS heads")
    assert left == {"cases": 0, "events": 0, "heads": 0}
    # the same import, run again to its end, brings all 40
    proc = _start(["import-cases", str(path), "--as-user", "disp", "--commit"], dsn)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert db.fetchone("SELECT count(*) AS n FROM case_record")["n"] == 40


def _case(db, case_no, lon, lat, grid, status="dispatched"):
    db.execute(
        "INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom, grid_code, generation, "
        "village_code, township_code, county_code) VALUES (%s, '12345', '求决', 'test', %s, %s, "
        "ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, 1, %s, %s, %s)",
        (case_no, status, datetime(2025, 3, 1, tzinfo=UTC), X0 + lon, Y0 + lat, grid, grid[:12], grid[:9], grid[:6]))


def test_generation_activation_killed_mid_transaction_leaves_nothing(db, owner_dsn, dsn, superuser_dsn):
    load_city(db, tiny_city(), source="test", progress=lambda m: None)
    _case(db, "C-NEAR-EDGE", 0.011, 0.005, G2)  # moves to G1 in the redraw
    _case(db, "C-LAST", 0.005, 0.005, G1)
    c = _redraw()
    report, gen, _ = import_boundaries(db, c.regions, c.grids, "redraw", commit=True)
    assert report.ok and gen == 2
    before = db.fetchall("SELECT id, active FROM generation ORDER BY id")
    # Another session holds a case row: activation flips the generation, then waits to re-locate that case.
    blocker = psycopg2.connect(owner_dsn)
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM case_record WHERE case_no = 'C-LAST' FOR UPDATE")
    _run_and_kill(["generations", "activate", "2"], dsn, blocker, superuser_dsn)
    assert db.fetchall("SELECT id, active FROM generation ORDER BY id") == before
    assert db.fetchone("SELECT grid_code, generation FROM case_record WHERE case_no = 'C-NEAR-EDGE'") == \
        {"grid_code": G2, "generation": 1}
    assert db.fetchone("SELECT (SELECT count(*) FROM case_relocation) AS moves,"
                       " (SELECT count(*) FROM case_event WHERE action = 'relocate') AS events") == \
        {"moves": 0, "events": 0}
    proc = _start(["generations", "activate", "2"], dsn)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "moved C-NEAR-EDGE" in out
    assert db.fetchone("SELECT grid_code, generation FROM case_record WHERE case_no = 'C-NEAR-EDGE'") == \
        {"grid_code": G1, "generation": 2}
