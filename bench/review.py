"""Benchmark: the township review's per-grid table from the aggregate vs the direct per-grid ST_Covers join.

    .venv/bin/python -m bench.review --dsn "host=… dbname=…" [--repeat 5]

Needs a database with the demo city and many cases (e.g. 1,000,000: `./gridgov build-city` and
`./gridgov load-cases --n 1000000` into an empty database; migrations backfill the aggregate). Takes the
township with the most cases and the year before the newest case, computes the per-grid counts of the
review (received, 响应/解决/满意 cohorts and numerators) both ways, checks they are identical and prints
the best-of timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLS = ("received", "sign_cohort", "signed_ok", "reply_cohort", "resolved", "evaluated", "eval_sat", "eval_basic")

DIRECT = """
WITH p AS (SELECT (%(start)s::date::timestamp AT TIME ZONE 'Asia/Shanghai') s,
                  (%(end)s::date::timestamp AT TIME ZONE 'Asia/Shanghai') e)
SELECT g.code AS unit_code,
  count(*) FILTER (WHERE c.received_at >= p.s AND c.received_at < p.e)::int received,
  count(*) FILTER (WHERE c.dispatched_at IS NOT NULL AND c.sign_due_at >= p.s AND c.sign_due_at < p.e)::int sign_cohort,
  count(*) FILTER (WHERE c.dispatched_at IS NOT NULL AND c.sign_due_at >= p.s AND c.sign_due_at < p.e
                   AND c.signed_at <= c.sign_due_at)::int signed_ok,
  count(*) FILTER (WHERE c.reply_due_at >= p.s AND c.reply_due_at < p.e)::int reply_cohort,
  count(*) FILTER (WHERE c.reply_due_at >= p.s AND c.reply_due_at < p.e AND c.closed_at IS NOT NULL
     AND c.closed_at < ((date_trunc('month', c.reply_due_at AT TIME ZONE 'Asia/Shanghai') + interval '1 month')
                        AT TIME ZONE 'Asia/Shanghai')
     AND coalesce(c.solved, c.evaluation IS DISTINCT FROM '不满意'))::int resolved,
  count(*) FILTER (WHERE c.evaluation IS NOT NULL AND coalesce(c.evaluated_at, c.closed_at) >= p.s
                   AND coalesce(c.evaluated_at, c.closed_at) < p.e)::int evaluated,
  count(*) FILTER (WHERE c.evaluation = '满意' AND coalesce(c.evaluated_at, c.closed_at) >= p.s
                   AND coalesce(c.evaluated_at, c.closed_at) < p.e)::int eval_sat,
  count(*) FILTER (WHERE c.evaluation = '基本满意' AND coalesce(c.evaluated_at, c.closed_at) >= p.s
                   AND coalesce(c.evaluated_at, c.closed_at) < p.e)::int eval_basic
FROM p, grid g JOIN case_record c ON ST_Covers(g.geom, c.geom)
WHERE g.generation = (SELECT id FROM generation WHERE active) AND g.code LIKE %(prefix)s
  AND c.status <> 'merged' AND c.merged_into IS NULL
  AND NOT EXISTS (SELECT 1 FROM grid g2 WHERE g2.generation = g.generation AND g2.code < g.code
                  AND ST_Covers(g2.geom, c.geom))          -- a point on a shared edge: the smallest code
GROUP BY g.code ORDER BY g.code
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--township")
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("--dsn (or DATABASE_URL) is required")
    sys.path.insert(0, str(ROOT))
    from cases.review import unit_counts
    from gis.db import Database

    db = Database(args.dsn, maxconn=2)
    n = db.fetchone("SELECT count(*) n, max(received_at) last FROM case_record")
    town = args.township or db.fetchone(
        "SELECT township_code t FROM case_record WHERE township_code IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC "
        "LIMIT 1")["t"]
    end = n["last"].astimezone(dt.timezone(dt.timedelta(hours=8))).date() + dt.timedelta(days=1)
    start = end - dt.timedelta(days=365)
    params = {"prefix": town + "%", "start": start, "end": end}

    def timed(fn):
        best, out = float("inf"), None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        return best, out

    agg_s, agg = timed(lambda: unit_counts(db, town, start, end))
    direct_s, direct = timed(lambda: db.fetchall(DIRECT, params))
    direct = {r.pop("unit_code"): r for r in direct}
    grids = sorted(set(direct) | {k for k in agg if len(k) > 12})
    mismatch = [g for g in grids if any((agg.get(g, {}).get(c) or 0) != (direct.get(g, {}).get(c) or 0)
                                        for c in COLS)]
    res = {"cases": n["n"], "township": town, "period": [start.isoformat(), end.isoformat()],
           "grids": len(grids), "cases_in_period": sum(r["received"] for r in direct.values()),
           "aggregate_ms": round(agg_s * 1000, 2), "direct_join_ms": round(direct_s * 1000, 1),
           "speedup": round(direct_s / agg_s, 1), "identical": not mismatch, "mismatched_grids": mismatch[:10]}
    print(json.dumps(res, ensure_ascii=False, indent=2))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"review_{n['n']}.json").write_text(json.dumps(res, ensure_ascii=False, indent=2))
    return 0 if not mismatch else 1


if __name__ == "__main__":
    sys.exit(main())
