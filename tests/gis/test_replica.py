"""Issue 11: read traffic (wall map, review) can go to a streaming replica. A hot standby of the test cluster is
made on loopback (pg_basebackup, `EmbeddedCluster.start_standby`); the app reads the wall from it and writes
to the primary. Pausing the standby's replay proves which database answered."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from cases.auth import create_user
from cases.setup import seed_routing_rules
from gis.cluster import APP
from gis.db import Database
from gis.settings import Settings, load_settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

CASE = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "噪音",
        "lon": X0 + 0.004, "lat": Y0 + 0.005}


def _sql(dsn: str, sql: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def standby(pg_cluster):
    base = Path(tempfile.mkdtemp(prefix="gridgov-standby-"))
    os.chmod(base, 0o755)                       # the server's OS user must reach it
    sb = pg_cluster.start_standby(base / "data")
    yield sb
    sb.stop()
    shutil.rmtree(base, ignore_errors=True)


def _caught_up(primary_dsn: str, standby_dsn: str, timeout: float = 30) -> None:
    lsn = _sql(primary_dsn, "SELECT pg_current_wal_lsn()::text")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _sql(standby_dsn, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"):
            return
        time.sleep(0.1)
    raise AssertionError("the standby did not catch up")


def test_wall_reads_from_the_standby_and_writes_go_to_the_primary(pg_cluster, dbname, db, standby):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    create_user(db, "city", "password123", "city_center", "990100", hash_method="pbkdf2:sha256:1000")
    read_db = Database(standby.role_dsn(APP, dbname))
    assert read_db.fetchone("SELECT pg_is_in_recovery() AS r")["r"] is True
    app = create_app(settings=Settings(secret_key="t"), db=db, read_db=read_db)
    clients = {}
    for who in ("disp", "city"):
        c = clients[who] = app.test_client()
        r = c.post("/api/login", json={"username": who, "password": "password123"})
        c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]
    primary_admin, standby_admin = pg_cluster.superuser_dsn(dbname), standby.superuser_dsn(dbname)

    assert clients["disp"].post("/api/cases", json=CASE).status_code == 201      # a write: the primary
    _caught_up(primary_admin, standby_admin)
    assert clients["city"].get("/api/wall/kpi").json["open"] == 1

    _sql(standby_admin, "SELECT pg_wal_replay_pause()")                        # the standby stops applying
    r = clients["disp"].post("/api/cases", json={**CASE, "title": "第二件"})
    assert r.status_code == 201                                                 # still written (primary)
    assert clients["city"].get(f"/api/cases/{r.json['id']}").status_code == 200  # case reads: the primary
    assert clients["city"].get("/api/wall/kpi").json["open"] == 1               # the wall: the paused standby
    _sql(standby_admin, "SELECT pg_wal_replay_resume()")
    _caught_up(primary_admin, standby_admin)
    assert clients["city"].get("/api/wall/kpi").json["open"] == 2
    read_db.close()


def test_read_database_url_setting():
    s = load_settings({"GRIDGOV_READ_DATABASE_URL": "postgresql://u:secret@replica:5432/gridgov"})
    assert s.read_database_url.endswith("@replica:5432/gridgov")
    assert "secret" not in s.describe()["read_database_url"]                    # never printed with its password
    assert load_settings({}).describe()["read_database_url"] == "(the primary)"
