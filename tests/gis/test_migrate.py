"""Migrations on an empty database: applied in order, recorded, idempotent, atomic."""

from __future__ import annotations

import psycopg2
import pytest

from gis.errors import ConfigError
from gis.migrate import discover, migrate
from tests.conftest import create_empty_database, drop_test_database


@pytest.fixture
def empty_dsn(pg_cluster):
    """An empty database owned by the owner role (PostGIS created by the superuser, as the cluster does)."""
    yield create_empty_database(pg_cluster, "mig_empty")[1]
    drop_test_database(pg_cluster, "mig_empty")


def test_migrations_apply_on_empty_database(empty_dsn):
    ms = discover()
    assert [m.version for m in ms] == sorted({m.version for m in ms})
    applied = migrate(empty_dsn, log=lambda m: None)
    assert [m.version for m in applied] == [m.version for m in ms]
    conn = psycopg2.connect(empty_dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [m.version for m in ms]
        cur.execute("SELECT postgis_lib_version()")
        assert cur.fetchone()[0].startswith("3.")
        cur.execute("SELECT Find_SRID('public', 'grid', 'geom'), Find_SRID('public', 'case_record', 'geom')")
        assert cur.fetchone() == (4326, 4326)
    conn.close()
    assert migrate(empty_dsn, log=lambda m: None) == []  # idempotent


def test_failing_migration_is_rolled_back_and_reported(empty_dsn, tmp_path):
    (tmp_path / "gis" / "migrations").mkdir(parents=True)
    (tmp_path / "gis" / "migrations" / "0001_ok.sql").write_text("CREATE TABLE ok_t (x int);")
    (tmp_path / "gis" / "migrations" / "0002_bad.sql").write_text("CREATE TABLE bad_t (x int); SELECT nope;")
    with pytest.raises(ConfigError, match="0002_bad failed"):
        migrate(empty_dsn, log=lambda m: None, root=tmp_path)
    conn = psycopg2.connect(empty_dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ok_t') IS NOT NULL, to_regclass('bad_t') IS NOT NULL")
        assert cur.fetchone() == (True, False)
        cur.execute("SELECT version FROM schema_migrations")
        assert [r[0] for r in cur.fetchall()] == [1]
    conn.close()


def test_duplicate_migration_numbers_are_refused(tmp_path):
    for pkg in ("gis", "grids"):
        (tmp_path / pkg / "migrations").mkdir(parents=True)
        (tmp_path / pkg / "migrations" / "0005_x.sql").write_text("SELECT 1;")
    with pytest.raises(ConfigError, match="used twice"):
        discover(tmp_path)
