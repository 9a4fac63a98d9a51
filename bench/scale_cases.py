"""Benchmark: the case surfaces on N cases in monthly partitions (issue 11, "10,000,000 cases on one machine").

    .venv/bin/python -m bench.scale_cases --n 1000000 [--data-dir bench/out/scale] [--repeat 200]
    .venv/bin/python -m bench.scale_cases --n 10000000 --data-dir /work/scale10m

Loads N synthetic cases of the demo city over the year before --end through the generator's COPY path
(`cases.simulate.load_simulated`: the loop, routing and deadlines run per case, rows and events by COPY, one
transaction per chunk of 10,000; partitions of the months made first), into an embedded cluster of its own in
--data-dir (or `--dsn` / GRIDGOV_DATABASE_URL with GRIDGOV_MIGRATE_URL). A database that already holds N or
more cases is reused as it is (run again to measure again); one with fewer is refused (the generator's case
numbers would repeat: load into an empty one). One loader process: the generator numbers cases per day from
1, so two generators would collide on case_no. Then measures, warm:
  - the officer's list: `CaseService.list_page(open_only=True, limit=50)` for the grid officer of the grid
    with the most open cases and for the city-wide dispatcher: p50/p95/p99 over --repeat calls;
  - a case's detail by id (any month), the officer's worklist counts, the wall's KPI panel and township
    layer for the city (up to 50 calls each);
  - the township review of the last whole month: `cases.review.review` for the busiest township's center;
  - the monthly rates of that month: `cases.reports.compute_month` per township and per grid (what
    `rates show` and the wall compute);
  - the ledger (台账) export of that month for the county center of the busiest county (`export_ledger`);
  - which partitions the month's ledger query reads (EXPLAIN: pruning to one partition).
Prints a summary and writes bench/out/scale_cases_<N>.json. Every phase is bounded by N and --repeat.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CST = dt.timezone(dt.timedelta(hours=8))
CHUNK = 10_000


def _settings(args):
    from gis.settings import load_settings

    env = dict(os.environ)
    if not args.dsn and not env.get("DATABASE_URL") and not env.get("GRIDGOV_DATABASE_URL"):
        env["GRIDGOV_DATA_DIR"] = str(Path(args.data_dir).resolve())
    elif args.dsn:
        env["GRIDGOV_DATABASE_URL"] = args.dsn
    return load_settings(env)


def load(rt, args, start: dt.datetime, end: dt.datetime) -> dict:
    """Load N cases into an empty case table; returns the load figures."""
    from cases.simulate import Simulator, load_simulated
    from fixtures.cases import generate_cases
    from fixtures.city import build_city
    from gis.cli import ensure_demo

    have = rt.db.fetchone("SELECT count(*) AS n FROM case_record")["n"]
    if have >= args.n:
        return {"reused": have}
    if have:
        raise SystemExit(f"the database holds {have:,} cases, fewer than --n: use an empty --data-dir")
    ensure_demo(rt, 0, args.seed)
    city = build_city(seed=args.seed)
    t0, last = time.monotonic(), [0]

    def progress(done):
        if done - last[0] >= 50_000 or done == args.n:
            last[0] = done
            el = time.monotonic() - t0
            print(f"{done:,}/{args.n:,} cases in {el:,.0f} s, {done / max(el, 1e-9):,.0f}/s", flush=True)

    load_simulated(rt.db, Simulator.from_db(rt.db, now=end),
                   generate_cases(city, args.n, start, end, seed=args.seed, now=end), chunk=CHUNK, progress=progress)
    load_s = time.monotonic() - t0
    t = time.perf_counter()
    rt.db.execute("SELECT analyze_table('case_record'), analyze_table('case_event'), analyze_table('case_key')")
    return {"loaded": args.n, "load_s": round(load_s, 1), "cases_per_s": round(args.n / load_s),
            "analyze_s": round(time.perf_counter() - t, 1)}


def _bench_user(db, username: str, role: str, region: str, **kw):
    from cases.auth import create_user, get_user

    row = db.fetchone("SELECT id FROM app_user WHERE username = %s", (username,))
    if row:
        return get_user(db, row["id"])
    return create_user(db, username, "bench-password", role, region, hash_method="pbkdf2:sha256:1000", **kw)


def _timings(fn, repeat: int) -> dict:
    fn()  # warm
    xs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else xs * 99
    return {"n": repeat, "p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(xs[-1], 2)}


def _once(fn, repeat: int = 3) -> tuple[float, object]:
    """Best of `repeat` runs after a warm one, in ms, and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 1), out


def measure(db, args) -> dict:
    from cases import reports
    from cases.ledger import _LEDGER_SQL, export_ledger
    from cases.review import review
    from cases.service import CaseService

    res: dict = {}
    n = db.fetchone("SELECT count(*) AS n, min(received_at) AS first, max(received_at) AS last, "
                    "count(*) FILTER (WHERE status NOT IN ('closed', 'merged', 'rejected')) AS open "
                    "FROM case_record")
    res.update(cases=n["n"], open_cases=n["open"], events=db.fetchone("SELECT count(*) AS n FROM case_event")["n"],
               partitions=db.fetchone("SELECT count(*) AS n FROM pg_inherits WHERE inhparent = "
                                      "'case_record'::regclass")["n"],
               database_size=db.fetchone("SELECT pg_size_pretty(pg_database_size(current_database())) AS s")["s"])
    last = n["last"].astimezone(CST)
    nxt = last + dt.timedelta(days=1)     # the last whole month: the one before the day after the last case
    y, m = (nxt.year, nxt.month - 1) if nxt.month > 1 else (nxt.year - 1, 12)
    start, end = dt.date(y, m, 1), dt.date(y + (m == 12), m % 12 + 1, 1)
    res["month"] = f"{y}-{m:02d}"
    town = db.fetchone("SELECT township_code AS t, county_code AS c FROM case_record WHERE township_code IS NOT NULL "
                       "AND received_at >= %s AND received_at < %s GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1",
                       (start, end))
    grid = db.fetchone("SELECT c.grid_code AS g, c.village_code AS v FROM case_record c "
                       "WHERE c.status NOT IN ('closed', 'merged', 'rejected') AND c.grid_code IS NOT NULL "
                       "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1")
    city = db.fetchone("SELECT code FROM region WHERE level = 'city' AND generation = "
                       "(SELECT id FROM generation WHERE active)")["code"]
    officer = _bench_user(db, "bench_officer", "grid_officer", grid["v"], grid_code=grid["g"])
    dispatcher = _bench_user(db, "bench_dispatcher", "dispatcher", city)
    township = _bench_user(db, "bench_township", "township_center", town["t"])
    county = _bench_user(db, "bench_county", "county_center", town["c"])
    svc = CaseService(db)
    res["officer_grid"], res["township"], res["county"] = grid["g"], town["t"], town["c"]

    res["list_officer"] = _timings(lambda: svc.list_page(officer, open_only=True, limit=50), args.repeat)
    res["list_city"] = _timings(lambda: svc.list_page(dispatcher, open_only=True, limit=50), args.repeat)
    # a case's detail by id (the phone's case page, every action's read-back): any month, named via case_key
    ids = iter([r["id"] for r in db.fetchall("SELECT id FROM case_key TABLESAMPLE SYSTEM (1) LIMIT %s",
                                             (args.repeat + 1,))] * 2)
    res["case_detail"] = _timings(lambda: svc.get(dispatcher, next(ids)), args.repeat)
    # the open-case reads that name the months holding open cases (cases.partitions.open_months)
    from cases.wallstats import kpi, unit_counts
    from cases.worklist import counts

    few = max(1, min(args.repeat, 50))
    res["worklist_officer"] = _timings(lambda: counts(db, officer), few)
    res["wall_kpi_city"] = _timings(lambda: kpi(db, dispatcher), few)
    res["wall_townships_city"] = _timings(lambda: unit_counts(db, dispatcher, "township"), few)
    ms, out = _once(lambda: review(db, township, town["t"], start, end))
    res["review_month_ms"] = ms
    ms, out = _once(lambda: reports.compute_month(db, y, m, "township"))
    res["rates_month_township_ms"], res["rates_townships"] = ms, len(out)
    ms, out = _once(lambda: reports.compute_month(db, y, m, "grid"), repeat=1)
    res["rates_month_grid_ms"], res["rates_grids"] = ms, len(out)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.xlsx"
        t = time.perf_counter()
        out = export_ledger(db, county, path, start, end - dt.timedelta(days=1))
        res["ledger_month_ms"], res["ledger_rows"] = round((time.perf_counter() - t) * 1000), out["rows"]
    # partitions the month's ledger query reads (EXPLAIN of the same statement, the city-wide scope)
    from cases.auth import case_scope
    from cases.ledger import _bounds

    scope, params = case_scope(dispatcher)
    s, e = _bounds(start, end - dt.timedelta(days=1))
    params.update(start=s, end=e)
    plan = "\n".join(r["QUERY PLAN"] for r in db.fetchall("EXPLAIN " + _LEDGER_SQL.format(where=scope), params))
    res["ledger_month_partitions"] = sorted({w for line in plan.split() for w in [line.strip("(),")]
                                             if w.startswith("case_record_p") or w == "case_record_default"})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--data-dir", default=str(ROOT / "bench" / "out" / "scale"))
    ap.add_argument("--dsn", help="the app role's DSN of an existing database (else an embedded cluster)")
    ap.add_argument("--end", default="2026-11-01", help="the load's last day (cases cover the year before)")
    ap.add_argument("--seed", type=int, default=2203)
    ap.add_argument("--repeat", type=int, default=200, help="calls per list measurement (p99 needs ≥ 100)")
    args = ap.parse_args(argv)
    if not 1 <= args.n <= 20_000_000 or not 1 <= args.repeat <= 10_000:
        ap.error("--n 1..20,000,000, --repeat 1..10,000")
    sys.path.insert(0, str(ROOT))
    from gis.runtime import open_database

    settings = _settings(args)
    rt = open_database(settings, log=lambda m: print(f"[db] {m}", flush=True))
    try:
        end = dt.datetime.fromisoformat(args.end).replace(tzinfo=CST)
        res = {"n": args.n, "started": dt.datetime.now(CST).isoformat(timespec="seconds")}
        res["load"] = load(rt, args, end - dt.timedelta(days=365), end)
        print(f"load: {res['load']}", flush=True)
        res.update(measure(rt.db, args))
    finally:
        rt.close()
    print(json.dumps(res, ensure_ascii=False, indent=2, default=str))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scale_cases_{res['cases']}.json").write_text(json.dumps(res, ensure_ascii=False, indent=2,
                                                                      default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
