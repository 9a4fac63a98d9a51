"""Test harness: one throwaway PostGIS cluster per session (initdb in a temp dir, free port),
migrations applied once into a template database, and a fresh database cloned from it per test.

The cluster follows the production model (issue 8): scram-sha-256 password authentication on loopback,
migrations run as the owner role, and the `dsn`/`db` fixtures connect as the app role, which owns nothing
and may not rewrite the event log — so every test proves the app works with exactly those privileges.
`owner_dsn` and `superuser_dsn` name the same per-test database as the owner and the superuser.

If the cluster cannot start, the whole run fails loudly: database tests are never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest
from werkzeug.serving import make_server

from gis.cluster import APP, OWNER, EmbeddedCluster, prepare_database
from gis.db import Database
from gis.migrate import migrate

TEMPLATE = "gridgov_template"


def _quiet(msg):  # cluster progress is noise in test output
    pass


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL+PostGIS cluster for this test session, removed at the end."""
    base = tempfile.mkdtemp(prefix="gridgov-test-")
    os.chmod(base, 0o755)  # when root, the server runs as `postgres` and must reach it
    cluster = EmbeddedCluster(Path(base) / "data", log=_quiet)
    try:
        cluster.start()
    except Exception as e:  # noqa: BLE001 - fail the session loudly, never skip
        pytest.exit(f"cannot start the test PostGIS cluster: {e}", returncode=3)
    conn = psycopg2.connect(cluster.admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE {TEMPLATE} OWNER "{OWNER}"')
    conn.close()
    prepare_database(cluster.superuser_dsn(TEMPLATE))
    migrate(cluster.role_dsn(OWNER, TEMPLATE), log=_quiet)
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


def create_test_database(cluster, prefix: str = "t_") -> str:
    """A fresh migrated database cloned from the template (owned by the owner role); returns its name."""
    name = prefix + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(cluster.admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER "{OWNER}"')
    admin.close()
    return name


def create_empty_database(cluster, name: str) -> tuple[str, str]:
    """An empty database prepared as the cluster prepares its own (owned by the owner role, PostGIS created
    by the superuser), replacing any of that name; returns (app DSN, owner DSN)."""
    admin = psycopg2.connect(cluster.admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f'CREATE DATABASE {name} OWNER "{OWNER}"')
    admin.close()
    prepare_database(cluster.superuser_dsn(name))
    return cluster.role_dsn(APP, name), cluster.role_dsn(OWNER, name)


def drop_test_database(cluster, name: str) -> None:
    admin = psycopg2.connect(cluster.admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def dbname(pg_cluster):
    """Name of a fresh, migrated database for one test (dropped after)."""
    name = create_test_database(pg_cluster)
    yield name
    drop_test_database(pg_cluster, name)


@pytest.fixture
def dsn(pg_cluster, dbname):
    """The app role's DSN of a fresh, migrated database for one test."""
    return pg_cluster.role_dsn(APP, dbname)


@pytest.fixture
def owner_dsn(pg_cluster, dbname):
    """The owner role's DSN of the same per-test database (migrations, maintenance)."""
    return pg_cluster.role_dsn(OWNER, dbname)


@pytest.fixture
def superuser_dsn(pg_cluster, dbname):
    """The bootstrap superuser's DSN of the same per-test database (tampering in audit tests)."""
    return pg_cluster.superuser_dsn(dbname)


@pytest.fixture
def db(dsn):
    """A pooled Database on the per-test database, connected as the app role."""
    database = Database(dsn, maxconn=4)
    yield database
    database.close()


@pytest.fixture
def live_app(db):
    """Start the app on `db` (load data first); yields a function returning the base URL."""
    from gis.settings import Settings
    from webmap import create_app

    servers = []

    def start(**test_config) -> str:
        app = create_app(settings=Settings(secret_key="t"), db=db, test_config=test_config or {"TESTING": False})
        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
