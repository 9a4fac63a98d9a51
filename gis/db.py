"""PostgreSQL access: one bounded connection pool per process, transactions as context managers.

`Database` wraps psycopg2's ThreadedConnectionPool with a semaphore so that callers wait for a free
connection instead of failing when the pool is exhausted. Values are always bound, never formatted in.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
import psycopg2.pool

from gis.errors import ConfigError
from gis.settings import redact_dsn


def check_connect(dsn: str, timeout: int = 5):
    """Open one connection or raise ConfigError with a one-line reason (DSN redacted)."""
    try:
        return psycopg2.connect(dsn, connect_timeout=timeout)
    except psycopg2.OperationalError as e:
        first = (str(e).strip().splitlines() or ["unknown error"])[0]
        raise ConfigError(f"cannot connect to the database at {redact_dsn(dsn)}: {first}") from None


class Database:
    """A bounded pool of connections to one database."""

    def __init__(self, dsn: str, maxconn: int = 8, acquire_timeout: float = 30.0):
        check_connect(dsn).close()
        self.dsn = dsn
        self.maxconn = maxconn
        self.acquire_timeout = acquire_timeout
        self._pool = psycopg2.pool.ThreadedConnectionPool(0, maxconn, dsn, connect_timeout=5)
        self._slots = threading.BoundedSemaphore(maxconn)

    def __repr__(self) -> str:
        return f"Database({redact_dsn(self.dsn)!r}, maxconn={self.maxconn})"

    @contextmanager
    def connection(self):
        """A pooled connection inside one transaction: commit on success, rollback on error."""
        if not self._slots.acquire(timeout=self.acquire_timeout):
            raise ConfigError(f"no free database connection after {self.acquire_timeout}s (pool of {self.maxconn})")
        conn = None
        try:
            conn = self._pool.getconn()
            if conn.closed:
                self._pool.putconn(conn, close=True)
                conn = self._pool.getconn()
            try:
                yield conn
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
        finally:
            if conn is not None:
                self._pool.putconn(conn, close=bool(conn.closed))
            self._slots.release()

    @contextmanager
    def cursor(self, dict_rows: bool = True):
        """A cursor in its own transaction; rows as dicts by default."""
        with self.connection() as conn:
            factory = psycopg2.extras.RealDictCursor if dict_rows else None
            with conn.cursor(cursor_factory=factory) as cur:
                yield cur

    def fetchall(self, sql: str, params=None) -> list[dict]:
        """Run a query and return all rows as dicts."""
        with self.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def fetchone(self, sql: str, params=None) -> dict | None:
        """Run a query and return the first row as a dict (or None)."""
        with self.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def execute(self, sql: str, params=None) -> int:
        """Run a statement; returns the affected row count."""
        with self.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.closeall()


def copy_rows(cur, table: str, columns: list[str], rows) -> int:
    """Bulk-load rows (iterables of Python values) with COPY … FORMAT csv; returns the row count.

    `table` and `columns` must come from code, never from input. None becomes NULL; lists become
    PostgreSQL arrays; geometries must already be EWKT/EWKB-hex strings.
    """
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    n = 0
    for row in rows:
        w.writerow([_copy_value(v) for v in row])
        n += 1
    buf.seek(0)
    cols = ", ".join(columns)
    cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)
    return n


def _copy_value(v):
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (list, tuple)):
        inner = ",".join('"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"' for x in v)
        return "{" + inner + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
