"""Test harness: one throwaway PostGIS cluster per session (initdb in a temp dir, free port),
migrations applied once into a template database, and a fresh database cloned from it per test.

If the cluster cannot start, the whole run fails loudly: database tests are never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from gis.cluster import EmbeddedCluster
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
        dsn = cluster.start()
    except Exception as e:  # noqa: BLE001 - fail the session loudly, never skip
        pytest.exit(f"cannot start the test PostGIS cluster: {e}", returncode=3)
    conn = psycopg2.connect(cluster.admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {TEMPLATE}")
    conn.close()
    migrate(dsn.replace("dbname=gridgov", f"dbname={TEMPLATE}"), log=_quiet)
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dsn(pg_cluster):
    """DSN of a fresh, migrated database for one test (cloned from the template, dropped after)."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(pg_cluster.admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield f"host=127.0.0.1 port={pg_cluster.port} user=gridgov dbname={name}"
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def db(dsn):
    """A pooled Database on the per-test database."""
    database = Database(dsn, maxconn=4)
    yield database
    database.close()
