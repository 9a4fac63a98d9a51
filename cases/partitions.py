"""Monthly partitions of case_record (by received_at) and case_event (by at), migration 0090.

A month's partition must exist before its rows arrive, or they land in the DEFAULT partition (nothing fails,
but month reads no longer prune to one partition). The scheduler makes MONTHS_AHEAD months ahead on every
run; bulk loads (the case generator, `import-cases`) make the months of their own dates first. The work is
done by the database function `case_partitions_ensure(since, through)` (owner's rights: the app role owns no
table), which also moves rows waiting in DEFAULT into the month partition it makes for them.
"""

from __future__ import annotations

import datetime as dt

import psycopg2.extensions

MONTHS_AHEAD = 3

ENSURE_SQL = "SELECT case_partitions_ensure(%(since)s::timestamptz, %(through)s::timestamptz) AS made"


def ensure_partitions(db, since: dt.datetime, through: dt.datetime) -> int:
    """Make the month partitions of both tables covering [since, through]; returns how many were made."""
    with db.cursor() as cur:
        return ensure_partitions_cur(cur, since, through)


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


def _fetch(cur_or_db, sql: str, params, many: bool = False):
    """Rows as tuples or dicts, on an open cursor (inside the caller's transaction) or a Database."""
    if isinstance(cur_or_db, psycopg2.extensions.cursor):
        cur_or_db.execute(sql, params)
        return cur_or_db.fetchall() if many else cur_or_db.fetchone()
    return (cur_or_db.fetchall if many else cur_or_db.fetchone)(sql, params)


def _first(row):
    return None if row is None else (next(iter(row.values())) if isinstance(row, dict) else row[0])


def received_at(cur_or_db, case_id: int) -> dt.datetime | None:
    """A case's received_at, from case_key (one probe of its primary key), or None when there is no such case.

    A statement on case_record that names only the id is planned over every month partition and each of its
    indexes (6 ms with 17 partitions, ~70 ms with 30 on a busy machine, against 0.2 ms unpartitioned);
    adding `received_at = <this value>` lets the planner keep the one partition the case is in."""
    return _first(_fetch(cur_or_db, "SELECT received_at FROM case_key WHERE id = %s", (int(case_id),)))


def received_ats(cur_or_db, case_ids) -> list[dt.datetime]:
    """The distinct received_at of the cases `case_ids` (from case_key), for `received_at = ANY(...)` beside
    `id = ANY(...)`: the planner then keeps only the partitions of those cases' months."""
    rows = _fetch(cur_or_db, "SELECT DISTINCT received_at FROM case_key WHERE id = ANY(%s)",
                  ([int(i) for i in case_ids],), many=True)
    return [_first(r) for r in rows]


OPEN_SINCE_SQL = "SELECT min(received_at) AS lo FROM case_key WHERE open"


def open_months(cur_or_db, alias: str = "c") -> tuple[str, dict]:
    """A predicate on `alias`.received_at naming the months from the oldest open case on, and its parameters.

    A read of open cases that names no month is planned over every partition and each of its indexes (the
    officer's list p99 went from 27 ms at 17 partitions to 120 ms at 41). Open cases sit in a few recent months,
    and case_key keeps which cases are open (migration 0091, a partial index): the oldest open case bounds the
    read, and, sent as a constant, lets the planner keep only the partitions from its month on (no upper bound:
    a case received after this lookup is still read). The predicate only narrows what the read's own status
    condition selects, so add it to reads of open cases only."""
    lo = _first(_fetch(cur_or_db, OPEN_SINCE_SQL, None))
    if lo is None:                      # no open case anywhere: nothing to narrow by (one may arrive meanwhile)
        return "true", {}
    return f"{alias}.received_at >= %(open_since)s", {"open_since": lo}


EVENT_SPAN_SQL = "SELECT first_at, last_at FROM case_event_head WHERE case_id = %s"


def event_span(cur_or_db, case_id: int, alias: str | None = None) -> tuple[str, dict]:
    """A predicate on case_event's `at` naming the months of the case's events, and its parameters.

    case_event is partitioned by the month of `at`; a read by case_id alone is planned over every month of the
    event log. The chain trigger keeps each case's first and last event instant in case_event_head (migration
    0093); sent as constants they leave the planner the case's own months. On a cursor, inside the caller's
    transaction (an event it has just written is in the span); a case without events gets `false`."""
    row = _fetch(cur_or_db, EVENT_SPAN_SQL, (int(case_id),))
    if row is None or _first(row) is None:
        return "false", {}
    lo, hi = (row["first_at"], row["last_at"]) if isinstance(row, dict) else row
    col = f"{alias}.at" if alias else "at"
    return f"{col} BETWEEN %(ev_first)s AND %(ev_last)s", {"ev_first": lo, "ev_last": hi}
