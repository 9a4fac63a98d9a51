"""Nothing acknowledged is lost: kill -9 of PostgreSQL under intake load through the HTTP API, bounded
(3 crashes, a few hundred intakes, well under a minute, loopback only).

The module runs its own embedded cluster in a temp folder (it is killed, so it cannot be the session's).
The app keeps one pool across the crashes: requests during an outage answer 503, the server comes back on
the port recorded in the data folder (`./gridgov db start`), and the same app recovers without a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from cases.auth import create_user, issue_token
from cases.setup import seed_routing_rules
from gis.cluster import EmbeddedCluster
from gis.db import Database
from gis.migrate import migrate
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

ROOT = Path(__file__).resolve().parents[2]
CRASHES = 3
ACKS_PER_ROUND = 60      # intakes acknowledged between two crashes
WORKERS = 4
TIME_LIMIT = 120.0       # hard bound for the load run (~25 s on an idle 2-core machine)


def _quiet(msg):
    pass


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def crash_server(data: Path) -> None:
    """kill -9 the postmaster and every backend, walwriter and checkpointer at once (a server crash)."""
    pid = EmbeddedCluster(data, log=_quiet).postmaster_pid()
    assert pid is not None, "the server is not running"
    victims = [pid, *_children(pid)]
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in victims):
        assert time.monotonic() < deadline, "server processes survived SIGKILL"
        time.sleep(0.02)


def restart_server(data: Path) -> EmbeddedCluster:
    """What `./gridgov db start` does after a crash: recovery, on the port recorded in the data folder."""
    cluster = EmbeddedCluster(data, log=_quiet)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def crash_app():
    """A private cluster with the tiny city, a dispatcher's API token and an app on one pool."""
    base = tempfile.mkdtemp(prefix="gridgov-crash-")
    os.chmod(base, 0o755)
    data = Path(base) / "data"
    cluster = EmbeddedCluster(data, log=_quiet)
    dsn = cluster.start()
    migrate(cluster.owner_dsn, log=_quiet)
    db = Database(dsn, maxconn=WORKERS + 2, acquire_timeout=10)
    load_city(db, tiny_city(), progress=_quiet)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    token = issue_token(db, disp, "crash-test")
    app = create_app(settings=Settings(secret_key="test", data_dir=data), db=db)
    yield app, cluster.port, token, data
    db.close()
    EmbeddedCluster(data, log=_quiet).stop()
    subprocess.run(["rm", "-rf", base])


def _case(key: str) -> dict:
    return {"channel": "hotline_12345", "kind": "求决", "category_code": "CJ01", "title": "楼道灯不亮",
            "content": f"压力测试 {key}", "reporter_name": "李建国", "reporter_phone": "13812345678",
            "lon": X0 + 0.004, "lat": Y0 + 0.005, "submission_key": key}


def test_kill_9_under_intake_load_loses_no_acknowledged_case(crash_app):
    app, port, token, data = crash_app
    acked: set[str] = set()
    statuses: dict[int, int] = {}
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + TIME_LIMIT

    def worker(w: int) -> None:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            key = f"crash-{w}-{i}"
            while not stop.is_set() and time.monotonic() < deadline:  # retry the same submission until answered
                r = client.post("/api/cases", json=_case(key), headers=headers)
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code in (200, 201):
                    with lock:
                        acked.add(key)
                    break
                if r.status_code != 503:
                    with lock:
                        unexpected.append(f"{r.status_code} {r.get_data(as_text=True)[:200]}")
                    return
                assert r.json["error"]["code"] == "unavailable"
                time.sleep(0.05)
            i += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(WORKERS)]
    for t in threads:
        t.start()
    try:
        for _ in range(CRASHES):
            target = len(acked) + ACKS_PER_ROUND
            while len(acked) < target and not unexpected:
                assert time.monotonic() < deadline, f"load too slow: {len(acked)} acknowledged, {statuses}"
                time.sleep(0.01)
            crash_server(data)
            time.sleep(0.3)  # requests meanwhile answer 503
            assert restart_server(data).port == port
        target = len(acked) + ACKS_PER_ROUND // 3  # the same pool serves again after the last restart
        while len(acked) < target and not unexpected:
            assert time.monotonic() < deadline, f"no recovery after the restart: {statuses}"
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not unexpected, unexpected[:3]
    assert statuses.get(503, 0) > 0  # the crashes happened under load
    conn = psycopg2.connect(restart_server(data).owner_dsn)  # the running server, as the owner
    with conn.cursor() as cur:
        cur.execute("SELECT submission_key FROM case_record WHERE submission_key = ANY(%s)", (sorted(acked),))
        found = {r[0] for r in cur.fetchall()}
    conn.close()
    lost = acked - found
    print(f"\n{CRASHES} crashes, {len(acked)} acknowledged intakes, {len(lost)} lost, answers {statuses}")
    assert lost == set(), f"{len(lost)} acknowledged cases lost: {sorted(lost)[:10]}"


def test_outage_answers_503_and_the_same_app_recovers_on_the_same_port(crash_app):
    app, port, token, data = crash_app
    client = app.test_client()
    assert client.get("/api/health").status_code == 200  # the pool now holds a live connection
    crash_server(data)
    r = client.get("/api/health")  # the pooled connection is dead and the server is down
    assert r.status_code == 503 and r.json["error"]["code"] == "unavailable"
    r = client.post("/api/cases", json=_case("outage-1"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503
    # `./gridgov db start` after the crash: same data folder, same port
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_DATABASE_URL", "GRIDGOV_DB_PORT")}
    env["GRIDGOV_DATA_DIR"] = str(data)
    cp = subprocess.run([sys.executable, "-m", "gis", "db", "start"], capture_output=True, text=True, cwd=ROOT,
                        env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert f"port={port}" in cp.stdout
    assert "password" not in (cp.stdout + cp.stderr).lower().replace("passfile", "")
    assert client.get("/api/health").status_code == 200  # no app restart needed
    r = client.post("/api/cases", json=_case("outage-1"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201


def test_a_connection_that_dies_inside_a_transaction_answers_503_not_500(crash_app):
    """A stale pooled connection that passes the idle check but dies mid-query still maps to 503."""
    app, port, token, data = crash_app
    db = app.extensions["gridgov_db"]
    from gis.errors import Unavailable

    with pytest.raises(Unavailable):
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            crash_server(data)
            cur.execute("SELECT 2")
    restart_server(data)
    assert db.fetchone("SELECT 3 AS x") == {"x": 3}
