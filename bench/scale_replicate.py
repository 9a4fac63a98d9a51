"""Grow a loaded case table to 10,000,000 cases by copying its years back in time, inside the database.

    .venv/bin/python -m bench.scale_replicate --data-dir /work/scale --copies 10
    .venv/bin/python -m bench.scale_cases --n 10000000 --data-dir /work/scale   # then measure

`bench.scale_cases --n 1000000` loads a year of simulated cases through the generator's COPY path (the loop,
routing and deadlines run per case in Python: ~400–1,200 cases/s here, so 10,000,000 would take many hours).
This copies that year's cases K times, each copy shifted K years back (every timestamp column minus k years,
`case_no` prefixed `R<k>`, no submission key, no merge link; finished cases only: a case from years ago is
not still open), month by month with one INSERT … SELECT per
month, so the database does it at its own speed: the month partitions are made first
(`case_partitions_ensure`), `case_key` and the `case_day_stats` aggregate follow through their statement
triggers as for any insert. The copies carry no events (the event log stays the year's ~8 events per case:
the surfaces measured — the list, the review, the rates, the ledger — read the case table and the aggregate;
a case's detail reads its own events). Runs as the owner (explicit ids). Bounded: --copies ≤ 20.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# copied ids are the source id + k × ID_STRIDE: unique, and a copy's id tells which copy it is
ID_STRIDE = 100_000_000
# years-old cases are finished: copying the year's open cases back would multiply the open workload tenfold
FINISHED = "('closed', 'merged', 'rejected')"


def log(msg: str) -> None:
    print(f"[replicate] {msg}", file=sys.stderr, flush=True)


def owner_dsn(data_dir: Path) -> str:
    port = (data_dir / "db_port").read_text().strip()
    return f"host=127.0.0.1 port={port} user=gridgov_owner dbname=gridgov passfile={data_dir / 'pgpass'}"


def column_exprs(cur, k: int) -> tuple[list[str], list[str]]:
    """Target columns and the SELECT expression of each for copy k."""
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = 'case_record'::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                "AND a.attgenerated = '' ORDER BY a.attnum")
    cols, exprs = [], []
    for name, typ in cur.fetchall():
        cols.append(f'"{name}"')
        if name == "id":
            exprs.append(f"id + {k * ID_STRIDE}")
        elif name == "case_no":
            exprs.append(f"'R{k}' || case_no")
        elif name in ("submission_key", "merged_into", "submission_hash"):
            exprs.append("NULL")
        elif typ in ("timestamp with time zone", "timestamp without time zone", "date"):
            exprs.append(f'"{name}" - interval \'{k} years\'')
        else:
            exprs.append(f'"{name}"')
    return cols, exprs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="the embedded cluster's data folder (bench.scale_cases --data-dir)")
    ap.add_argument("--dsn", help="owner DSN instead of --data-dir")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--resume", action="store_true",
                    help="go on after a stopped run: skip the months a copy already holds (each month is one "
                         "transaction, so a month is either whole or absent)")
    args = ap.parse_args(argv)
    if not 1 <= args.copies <= 20:
        ap.error("--copies must be between 1 and 20")
    if not (args.dsn or args.data_dir):
        ap.error("give --data-dir or --dsn")
    import psycopg2

    conn = psycopg2.connect(args.dsn or owner_dsn(Path(args.data_dir).resolve()))
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute("SELECT min(received_at), max(received_at), count(*), max(id) FROM case_record "
                f"WHERE id < {ID_STRIDE}")
    lo, hi, n, max_id = cur.fetchone()
    if not n:
        print("error: the case table is empty: load a year first (bench.scale_cases --n 1000000)", file=sys.stderr)
        return 2
    if max_id >= ID_STRIDE:
        print(f"error: ids reach {max_id:,}, past the copy stride {ID_STRIDE:,}", file=sys.stderr)
        return 2
    cur.execute(f"SELECT count(*) FROM case_record WHERE id < {ID_STRIDE} AND status IN {FINISHED}")
    finished = cur.fetchone()[0]
    cur.execute(f"SELECT count(*) FROM case_record WHERE id >= {ID_STRIDE}")
    already = cur.fetchone()[0]
    if already and not args.resume:
        print(f"error: {already:,} copied cases are there already (run once per database, or --resume)",
              file=sys.stderr)
        return 2
    conn.commit()
    log(f"source: {n:,} cases from {lo:%Y-%m-%d} to {hi:%Y-%m-%d}; {finished:,} finished; {args.copies} copies → "
        f"{n + finished * args.copies:,}")
    months = []
    m = dt.datetime(lo.year, lo.month, 1, tzinfo=lo.tzinfo)
    while m <= hi:
        nxt = dt.datetime(m.year + (m.month == 12), m.month % 12 + 1, 1, tzinfo=m.tzinfo)
        months.append((m, nxt))
        m = nxt
    t_all = time.perf_counter()
    done = 0
    for k in range(1, args.copies + 1):
        cur.execute("SELECT case_partitions_ensure(%s::timestamptz - make_interval(years => %s), "
                    "%s::timestamptz - make_interval(years => %s))", (lo, k, hi, k))
        conn.commit()
        cols, exprs = column_exprs(cur, k)
        t = time.perf_counter()
        for a, b in months:
            if already:   # --resume: a month this copy holds is whole (one transaction per month)
                cur.execute(f"SELECT count(*) FROM case_record WHERE received_at >= %s::timestamptz - "
                            f"make_interval(years => %s) AND received_at < %s::timestamptz - make_interval("
                            f"years => %s) AND id >= {k * ID_STRIDE} AND id < {(k + 1) * ID_STRIDE}", (a, k, b, k))
                have = cur.fetchone()[0]
                conn.rollback()
                if have:
                    done += have
                    continue
            # the source rows by their partition (received_at in the month) and below the stride (not copies)
            cur.execute(f"INSERT INTO case_record ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM case_record "
                        f"WHERE received_at >= %s AND received_at < %s AND id < {ID_STRIDE} "
                        f"AND status IN {FINISHED}", (a, b))
            done += cur.rowcount
            conn.commit()
        el = time.perf_counter() - t
        log(f"copy {k}: {finished:,} cases {k} years back in {el:,.0f} s ({finished / el:,.0f} cases/s); "
            f"{done + n:,} in all")
    conn.autocommit = True
    for table in ("case_key", "case_record", "case_day_stats"):
        cur.execute(f"ANALYZE {table}")
    el = time.perf_counter() - t_all
    print(f"copied {done:,} cases in {el:,.0f} s ({done / el:,.0f} cases/s); the case table holds {done + n:,}")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
