"""Backup and restore round trip (`gridgov backup FILE` / `gridgov restore FILE`) on a small city: the
restored database holds the same cases and the same intact hash chains, the app role keeps exactly its
privileges, and new cases continue after the restored ones."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from cases.audit import verify_event_log
from cases.auth import create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.db import Database
from grids.store import load_city
from tests.conftest import create_empty_database, drop_test_database
from tests.factories import X0, Y0, tiny_city

ROOT = Path(__file__).resolve().parents[2]
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 14, 9, 0, tzinfo=TZ)
TABLES = ("region", "grid", "address", "app_user", "routing_rule", "case_record", "case_event", "case_event_head",
          "schema_migrations")


def _cli(app_dsn: str, owner_dsn: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(GRIDGOV_DATABASE_URL=app_dsn, GRIDGOV_MIGRATE_URL=owner_dsn)
    return subprocess.run([sys.executable, "-m", "gis", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def _sub(i: int) -> dict:
    return dict(channel="12345热线", kind="求决", category_code="CJ01", title=f"楼道灯不亮{i}", content="灯坏了",
                reporter_name="李建国", reporter_phone="13812345678", lon=X0 + 0.004, lat=Y0 + 0.005,
                submission_key=f"bk-{i}")


def _snapshot(db) -> dict:
    out = {t: db.fetchone(f"SELECT count(*) AS n FROM {t}")["n"] for t in TABLES}
    out["cases"] = db.fetchall("SELECT id, case_no, status, reporter_phone, ST_AsText(geom) AS geom, grid_code"
                               " FROM case_record ORDER BY id")
    out["events"] = [(r["id"], r["seq"], bytes(r["hash"])) for r in
                     db.fetchall("SELECT id, seq, hash FROM case_event ORDER BY id")]
    return out


@pytest.fixture
def empty_target(pg_cluster):
    """An empty database for the restore, prepared as the cluster prepares its own (owner, PostGIS)."""
    yield create_empty_database(pg_cluster, "restore_target")
    drop_test_database(pg_cluster, "restore_target")


def test_backup_restore_round_trip(db, dsn, owner_dsn, empty_target, tmp_path):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)
    for i in range(3):
        svc.intake(_sub(i), disp, now=T0)
    before = _snapshot(db)
    digest = verify_event_log(db).head_digest

    out = tmp_path / "city.dump"
    cp = _cli(dsn, owner_dsn, "backup", str(out))
    assert cp.returncode == 0, cp.stderr
    assert out.stat().st_size > 10_000 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "restore with" in cp.stdout

    app2, owner2 = empty_target
    cp = _cli(app2, owner2, "restore", str(out))
    assert cp.returncode == 0, cp.stderr
    restored = Database(app2, maxconn=2)
    try:
        assert _snapshot(restored) == before
        rep = verify_event_log(restored)
        assert rep.ok and rep.head_digest == digest
        # the app role is the app role again: it appends but cannot rewrite, and new ids follow the old ones
        with pytest.raises(psycopg2.Error, match="permission denied"):
            restored.execute("DELETE FROM case_event")
        new = CaseService(restored).intake(_sub(99), disp, now=T0)
        assert new["id"] > max(c["id"] for c in before["cases"])
        assert verify_event_log(restored).ok
    finally:
        restored.close()

    # a second restore into a database that holds data is refused in one line, nothing changed
    cp = _cli(app2, owner2, "restore", str(out))
    assert cp.returncode == 2 and "already holds gridgov data" in cp.stderr and "Traceback" not in cp.stderr


def test_restore_of_a_missing_or_foreign_file_is_one_line(dsn, owner_dsn, tmp_path):
    cp = _cli(dsn, owner_dsn, "restore", str(tmp_path / "nope.dump"))
    assert cp.returncode == 2 and "does not exist" in cp.stderr
    (tmp_path / "x.dump").write_text("not a dump")
    cp = _cli(dsn, owner_dsn, "backup", str(tmp_path))
    assert cp.returncode == 2 and "is a folder" in cp.stderr
