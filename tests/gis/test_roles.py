"""The event log is evidence: the app's role owns nothing and cannot rewrite case_event by any door
(UPDATE, DELETE, TRUNCATE, disabling the trigger, session_replication_role); the cluster authenticates
with scram-sha-256 passwords kept in the data folder, and acknowledges only durable commits."""

from __future__ import annotations

import stat

import psycopg2
import pytest

from gis.cluster import APP, OWNER, SUPERUSER, kv_dsn


def _fails(dsn: str, sql: str, match: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error, match=match):
            cur.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize("sql, match", [
    ("UPDATE case_event SET reason = 'x'", "permission denied"),
    ("DELETE FROM case_event", "permission denied"),
    ("TRUNCATE case_event", "permission denied"),
    ("TRUNCATE case_record CASCADE", "permission denied"),
    ("ALTER TABLE case_event DISABLE TRIGGER case_event_no_update", "must be owner"),
    ("ALTER TABLE case_event DISABLE TRIGGER ALL", "must be owner"),
    ("DROP TRIGGER zz_case_event_chain ON case_event", "must be owner"),
    ("SET session_replication_role = replica", "permission denied"),
    ("UPDATE case_event_head SET seq = 0", "permission denied"),
    ("CREATE TABLE mine (x int)", "permission denied"),
    ("CREATE OR REPLACE FUNCTION case_event_chain() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
     "must be owner|permission denied"),
    ("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')", "permission denied"),
])
def test_app_role_cannot_rewrite_the_event_log(dsn, sql, match):
    _fails(dsn, sql, match)


def test_app_role_owns_nothing_and_is_no_superuser(dsn, db):
    row = db.fetchone(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,"
        " (SELECT count(*) FROM pg_class WHERE relowner = r.oid) AS relations,"
        " (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) AS functions,"
        " (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) AS schemas,"
        " (SELECT count(*) FROM pg_type WHERE typowner = r.oid) AS types,"
        " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS db_owner,"
        " pg_has_role(current_user, %s, 'MEMBER') AS owner_member"
        " FROM pg_roles r WHERE r.rolname = current_user", (OWNER,))
    assert row == {"rolname": APP, "rolsuper": False, "rolcreaterole": False, "rolcreatedb": False,
                   "rolbypassrls": False, "rolreplication": False, "relations": 0, "functions": 0, "schemas": 0,
                   "types": 0, "db_owner": OWNER, "owner_member": False}
    # …and it can still do its work: append events, read them, ask for fresh statistics
    assert db.fetchone("SELECT has_table_privilege('case_event', 'INSERT') AS ins,"
                       " has_table_privilege('case_event', 'SELECT') AS sel") == {"ins": True, "sel": True}
    db.execute("SELECT analyze_table('case_record')")


def test_the_app_cannot_leave_the_append_only_rule_through_the_owner_functions(db):
    with pytest.raises(psycopg2.Error, match="no table"):
        db.execute("SELECT analyze_table('case_event; DROP TABLE case_event')")


def test_cluster_uses_scram_passwords_and_synchronous_commit(pg_cluster, dsn):
    hba = (pg_cluster.pgdata / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(r[-1] == "scram-sha-256" for r in rules)
    mode = stat.S_IMODE(pg_cluster.passfile.stat().st_mode)
    assert mode == 0o600
    # no password, or a wrong one, is refused for every role
    for role in (APP, OWNER, SUPERUSER):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(kv_dsn(host="127.0.0.1", port=pg_cluster.port, user=role, dbname="postgres",
                                    passfile="/nonexistent"), connect_timeout=5)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(kv_dsn(host="127.0.0.1", port=pg_cluster.port, user=role, dbname="postgres",
                                    password="guess"), connect_timeout=5)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('synchronous_commit'), current_setting('fsync'),"
                    " current_setting('password_encryption')")
        assert cur.fetchone() == ("on", "on", "scram-sha-256")
    conn.close()
    # the passwords never appear in a DSN or in the server log
    secrets = pg_cluster.passwords().values()
    text = pg_cluster.dsn + pg_cluster.owner_dsn + pg_cluster.admin_dsn + pg_cluster.logfile.read_text()
    assert not any(s in text for s in secrets)
