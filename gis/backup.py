"""Backup and restore of the gridgov database with pg_dump -Fc / pg_restore, as the owner role.

A backup is one custom-format file (compressed, 0600: it holds citizens' personal data). A restore goes
into an empty database in one transaction (all or nothing); PostGIS is not restored from the file (the
cluster or the DBA creates it, as for a fresh install), ownership goes to the restoring owner role, and the
app role's grants come back with the tables. Afterwards migrations bring an older backup up to date.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from gis.cluster import find_pg_bin
from gis.errors import BadInput, ConfigError


def _tool(name: str) -> str:
    path = find_pg_bin() / name
    if not path.exists():
        raise ConfigError(f"{name} not found next to the PostgreSQL server binaries ({path.parent})")
    return str(path)


def _run(args: list[str], what: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what} timed out after {timeout}s") from None
    if cp.returncode != 0:
        lines = [line for line in cp.stderr.strip().splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line] or lines
        raise ConfigError(f"{what} failed: {errors[0] if errors else f'exit code {cp.returncode}'}")
    return cp


def backup(owner_dsn: str, out: str | Path) -> int:
    """Write a pg_dump custom-format backup to `out` (atomically, mode 0600); returns its size in bytes."""
    out = Path(out).absolute()
    if out.is_dir():
        raise BadInput(f"{out} is a folder: give a file name, e.g. {out / 'gridgov.dump'}", field="file")
    if not out.parent.is_dir():
        raise BadInput(f"folder {out.parent} does not exist", field="file")
    fd, tmp = tempfile.mkstemp(prefix=".gridgov-backup-", dir=out.parent)
    os.close(fd)
    os.chmod(tmp, 0o600)
    try:
        _run([_tool("pg_dump"), "--format=custom", "--file", tmp, "--dbname", owner_dsn], "pg_dump")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out.stat().st_size


def holds_data(dsn: str) -> bool:
    """True when the database already holds a gridgov schema."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
            return cur.fetchone()[0]
    finally:
        conn.close()


def restore(owner_dsn: str, src: str | Path) -> None:
    """Restore a backup into the (empty) database of `owner_dsn`, in one transaction."""
    src = Path(src)
    if not src.is_file():
        raise BadInput(f"backup file {src} does not exist", field="file")
    if holds_data(owner_dsn):
        raise BadInput("the database already holds gridgov data: restore into an empty database "
                       "(embedded cluster: `restore --replace` drops the current one first)", field="file")
    listing = _run([_tool("pg_restore"), "--list", str(src)], "pg_restore --list (is it a gridgov backup?)").stdout
    # PostGIS is created by the superuser/DBA, not by the owner role: leave the extension, its comment and
    # its own table (spatial_ref_sys, which the extension fills) out.
    keep = [line for line in listing.splitlines()
            if " EXTENSION " not in line and " spatial_ref_sys " not in line]
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as f:
        f.write("\n".join(keep) + "\n")
        list_file = f.name
    try:
        _run([_tool("pg_restore"), "--no-owner", "--single-transaction", "--exit-on-error", "--use-list", list_file,
              "--dbname", owner_dsn, str(src)], "pg_restore")
    finally:
        os.unlink(list_file)
