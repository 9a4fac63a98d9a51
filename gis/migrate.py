"""Numbered SQL migrations, each applied in its own transaction and recorded in schema_migrations.

Each package keeps its SQL beside its code: `gis/migrations`, `grids/migrations`, `cases/migrations`,
files named `NNNN_name.sql`. Numbers are global across packages (gis 00xx, grids 01xx/001x, cases 002x …);
a duplicate number is an error. An advisory lock serialises concurrent migrators.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.errors

from gis.db import check_connect
from gis.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gis", "grids", "cases", "webmap")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 22030001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def discover(root: Path = ROOT) -> list[Migration]:
    """All migrations of all packages, ordered by version."""
    found: dict[int, Migration] = {}
    for pkg in PACKAGES:
        folder = root / pkg / "migrations"
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.sql")):
            m = _NAME.match(p.name)
            if not m:
                raise ConfigError(f"migration file {p} is not named NNNN_name.sql")
            v = int(m.group(1))
            if v in found:
                raise ConfigError(f"migration number {v:04d} is used twice: {found[v].path} and {p}")
            found[v] = Migration(v, m.group(2), p)
    return [found[v] for v in sorted(found)]


def applied(conn) -> dict[int, str]:
    """Applied versions and their checksums."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations')")
        if cur.fetchone()[0] is None:
            return {}
        cur.execute("SELECT version, checksum FROM schema_migrations")
        return dict(cur.fetchall())


def pending(conn, root: Path = ROOT) -> list[Migration]:
    """Migrations not applied yet on this connection's database."""
    have = applied(conn)
    conn.rollback()
    return [m for m in discover(root) if m.version not in have]


def migrate(dsn_or_conn, log=print, root: Path = ROOT) -> list[Migration]:
    """Apply pending migrations; returns what was applied.

    Run as the owner role. A role without the privilege to change the schema (the app role) may call it
    too: when nothing is pending it changes nothing, otherwise it fails saying which role to use."""
    own = isinstance(dsn_or_conn, str)
    conn = check_connect(dsn_or_conn) if own else dsn_or_conn
    done: list[Migration] = []
    locked = False
    try:
        conn.autocommit = False
        if not pending(conn, root):
            return done
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            locked = True
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not cur.fetchone()[0]:
                cur.execute(
                    "CREATE TABLE schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
        conn.commit()
        have = applied(conn)
        for m in discover(root):
            if m.version in have:
                if have[m.version] != m.checksum:
                    log(f"warning: migration {m.version:04d}_{m.name} changed after it was applied")
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute(m.sql)
                    cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                (m.version, m.name, m.checksum))
                conn.commit()
            except psycopg2.Error as e:
                conn.rollback()
                raise _failure(m, e) from None
            log(f"applied migration {m.version:04d}_{m.name}")
            done.append(m)
    except psycopg2.errors.InsufficientPrivilege as e:
        conn.rollback()
        raise _failure(None, e) from None
    finally:
        if locked:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
                conn.commit()
            except psycopg2.Error:
                pass
        if own:
            conn.close()
    return done


def _failure(m: Migration | None, e: psycopg2.Error) -> ConfigError:
    first = (str(e).strip().splitlines() or ["?"])[0]
    if "postgis" in first.lower() and ("control file" in first or "not available" in first):
        return ConfigError("PostGIS is not installed on the database server: install "
                           "postgresql-15-postgis-3 (or your server's PostGIS package)")
    what = f"migration {m.version:04d}_{m.name} failed" if m else "cannot apply migrations"
    if isinstance(e, psycopg2.errors.InsufficientPrivilege):
        return ConfigError(f"{what}: {first} — migrations run as the owner role: set GRIDGOV_MIGRATE_URL "
                           f"(README, \"Database roles\")")
    return ConfigError(f"{what}: {first}")
