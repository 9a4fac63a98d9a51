"""Monthly partitions of case_record (by received_at) and case_event (by at), migration 0090.

A month's partition must exist before its rows arrive, or they land in the DEFAULT partition (nothing fails,
but month reads no longer prune to one partition). The scheduler makes MONTHS_AHEAD months ahead on every
run; bulk loads (the case generator, `import-cases`) make the months of their own dates first. The work is
done by the database function `case_partitions_ensure(since, through)` (owner's rights: the app role owns no
table), which also moves rows waiting in DEFAULT into the month partition it makes for them.
"""

from __future__ import annotations

import datetime as dt

MONTHS_AHEAD = 3

ENSURE_SQL = "SELECT case_partitions_ensure(%(since)s::timestamptz, %(through)s::timestamptz) AS made"


def ensure_partitions(db, since: dt.datetime, through: dt.datetime) -> int:
    """Make the month partitions of both tables covering [since, through]; returns how many were made."""
    if since is None or through is None:
        return 0
    return db.fetchone(ENSURE_SQL, {"since": since, "through": through})["made"]


def ensure_partitions_cur(cur, since: dt.datetime, through: dt.datetime) -> int:
    """As ensure_partitions, on an open cursor (inside the caller's transaction)."""
    if since is None or through is None:
        return 0
    cur.execute(ENSURE_SQL, {"since": since, "through": through})
    row = cur.fetchone()
    return row["made"] if isinstance(row, dict) else row[0]


def ensure_ahead(db, now: dt.datetime, months: int = MONTHS_AHEAD) -> int:
    """The scheduler's daily call: this month and `months` months ahead (about 31 days each)."""
    return ensure_partitions(db, now, now + dt.timedelta(days=31 * months))


def partitions(db, table: str = "case_record") -> list[dict]:
    """The partitions of `table` with their bounds and row estimates, oldest first (DEFAULT last)."""
    if table not in ("case_record", "case_event"):
        raise ValueError(f"not a partitioned case table: {table!r}")
    return db.fetchall(
        "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bounds, c.reltuples::bigint AS rows "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
        "ORDER BY c.relname LIKE '%%default', c.relname", (table,))
