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


def migrate(dsn_or_conn, log=print, root: Path = ROOT) -> list[Migration]:
    """Apply pending migrations; returns what was applied."""
    own = isinstance(dsn_or_conn, str)
    conn = check_connect(dsn_or_conn) if own else dsn_or_conn
    done: list[Migration] = []
    try:
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
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
                first = (str(e).strip().splitlines() or ["?"])[0]
                if "postgis" in first.lower() and ("control file" in first or "not available" in first):
                    raise ConfigError("PostGIS is not installed on the database server: install "
                                      "postgresql-15-postgis-3 (or your server's PostGIS package)") from None
                raise ConfigError(f"migration {m.version:04d}_{m.name} failed: {first}") from None
            log(f"applied migration {m.version:04d}_{m.name}")
            done.append(m)
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
        except psycopg2.Error:
            pass
        if own:
            conn.close()
    return done
