"""The embedded cluster: start/stop (also as root), reuse, and bad configuration ending in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest

from gis.cluster import EmbeddedCluster, free_port, shared_buffers_mb
from gis.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpbase():
    base = tempfile.mkdtemp(prefix="gridgov-cl-")
    os.chmod(base, 0o755)
    yield Path(base)
    subprocess.run(["rm", "-rf", base])


def test_start_stop_restart(tmpbase):
    c = EmbeddedCluster(tmpbase / "data", log=lambda m: None)
    dsn = c.start()
    try:
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_setting('listen_addresses')")
            user, listen = cur.fetchone()
            # sized to the machine (a quarter of its memory, 256 MB … 4 GB), not a fixed 256 MB
            cur.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
            assert cur.fetchone()[0] == shared_buffers_mb() and 256 <= shared_buffers_mb() <= 4096
            cur.execute("SELECT usesuper FROM pg_user WHERE usename = current_user")
            assert cur.fetchone()[0] is False  # the app never connects as a superuser
        conn.close()
        assert user == "gridgov_app" and listen == "127.0.0.1"
        # A second handle on the same folder reuses the running server.
        again = EmbeddedCluster(tmpbase / "data", log=lambda m: None)
        assert again.start() == dsn
    finally:
        c.stop()
    assert c.running_port() is None
    # Restart on the existing cluster works, keeps data and keeps its port (recorded in the data folder).
    dsn2 = c.start()
    assert dsn2 == dsn and c.recorded_port() == c.port
    conn = psycopg2.connect(dsn2)
    conn.close()
    c.stop()


def test_server_runs_as_an_unprivileged_user(tmpbase):
    """As root the server runs as `postgres` (PostgreSQL refuses root); otherwise as the calling user."""
    import pwd

    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    c = EmbeddedCluster(tmpbase / "data", log=lambda m: None)
    c.start()
    try:
        pid = int((c.pgdata / "postmaster.pid").read_text().splitlines()[0])
        owner = Path(f"/proc/{pid}").stat().st_uid
        assert owner == expected and owner != 0
        assert (c.pgdata).stat().st_uid == owner
    finally:
        c.stop()


def test_requested_port_in_use_is_a_config_error(tmpbase):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"port {port}.*in use"):
            EmbeddedCluster(tmpbase / "data", port=port, log=lambda m: None).start()
    finally:
        s.close()


def test_unwritable_data_folder_is_a_config_error(tmpbase):
    blocker = tmpbase / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        EmbeddedCluster(blocker / "data", log=lambda m: None).start()


def _cli(*args, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_DATABASE_URL")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "gis", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)


def _assert_one_line_error(cp, pattern):
    assert cp.returncode != 0
    err = cp.stderr.strip()
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if not line.startswith("[gridgov]")]
    assert len(errors) == 1 and errors[0].startswith("gridgov: error: "), err
    assert pattern in errors[0]


def test_cli_unreachable_database_url_is_one_line():
    port = free_port()
    cp = _cli("migrate", env_extra={"DATABASE_URL": f"postgresql://u:s3cret@127.0.0.1:{port}/x"})
    _assert_one_line_error(cp, "cannot connect to the database")
    assert "s3cret" not in cp.stderr  # secrets never printed


def test_cli_port_in_use_is_one_line(tmpbase):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        cp = _cli("migrate", env_extra={"GRIDGOV_DATA_DIR": str(tmpbase / "d"),
                                        "GRIDGOV_DB_PORT": str(s.getsockname()[1])})
    finally:
        s.close()
    _assert_one_line_error(cp, "is in use")


def test_cli_unwritable_data_dir_is_one_line(tmpbase):
    (tmpbase / "f").write_text("x")
    cp = _cli("migrate", env_extra={"GRIDGOV_DATA_DIR": str(tmpbase / "f" / "sub")})
    _assert_one_line_error(cp, "not writable")


def test_cli_missing_postgis_is_one_line(tmpbase):
    # A PostgreSQL installation without the PostGIS files: point GRIDGOV_PG_BIN at a copy of the
    # binaries whose pg_config reports an empty share folder.
    fake = tmpbase / "pgbin"
    fake.mkdir()
    real = Path("/usr/lib/postgresql/15/bin")
    for name in ("initdb", "pg_ctl", "postgres"):
        (fake / name).symlink_to(real / name)
    (fake / "pg_config").write_text(f"#!/bin/sh\necho {tmpbase / 'share'}\n")
    (fake / "pg_config").chmod(0o755)
    cp = _cli("migrate", env_extra={"GRIDGOV_DATA_DIR": str(tmpbase / "d"), "GRIDGOV_PG_BIN": str(fake)})
    _assert_one_line_error(cp, "PostGIS is not installed")


def test_cli_bad_integer_setting_is_one_line():
    cp = _cli("config", env_extra={"GRIDGOV_DB_POOL_MAX": "many"})
    _assert_one_line_error(cp, "GRIDGOV_DB_POOL_MAX")
