"""Benchmark: single point → grid latency through PostGIS (p50/p99), plain vs ST_Subdivide'd grids.

    .venv/bin/python bench/locate_latency.py [--n 2000] [--dsn DSN] [--seed 2]

Times, per random point over the demo city (half bbox-uniform, half around the urban core):
  locate        grids.locate.locate(): input checks, the generation, then one prepared statement for grid, chain,
                centers and people
  lookup        only the covering-grid query (ST_Covers + ORDER BY code LIMIT 1) on `grid`
  lookup_sub    the same query on a scratch table of ST_Subdivide(geom, 64) pieces (dropped afterwards)
The two lookups must agree on every point. Writes JSON to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bulk_locate import demo_database, log, make_points  # noqa: E402

LOOKUP = ("SELECT code FROM {table} WHERE generation = %(gen)s "
          "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)) ORDER BY code LIMIT 1")


def percentiles(ms: list[float]) -> dict:
    """p50/p90/p99/max in milliseconds."""
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3),
            "mean_ms": round(float(a.mean()), 3)}


def time_calls(fn, lons, lats) -> tuple[list, list[float]]:
    """Call fn(lon, lat) per point; results and per-call milliseconds."""
    out, ms = [], []
    for lon, lat in zip(lons, lats, strict=True):
        t = time.perf_counter()
        out.append(fn(float(lon), float(lat)))
        ms.append((time.perf_counter() - t) * 1000)
    return out, ms


def main(argv=None) -> int:
    """Run the latency benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--max-vertices", type=int, default=64, help="ST_Subdivide max vertices per piece")
    args = ap.parse_args(argv)
    return run(args)


def run(args) -> int:
    """The measurements (separate from argument parsing)."""
    from grids.locate import FarOutside, locate
    from grids.store import resolve_generation

    results: dict = {"n": args.n, "seed": args.seed}
    with demo_database(args.dsn) as db:
        gen = resolve_generation(db)
        lons, lats = make_points(db, args.n, args.seed)

        def full(conn):
            def fn(lon, lat):
                try:
                    return locate(conn, lon, lat)["status"]
                except FarOutside:
                    return "far"
            return fn

        def lookup(conn, table):
            sql = LOOKUP.format(table=table)

            def fn(lon, lat):
                row = conn.fetchone(sql, {"gen": gen, "lon": lon, "lat": lat})
                return row["code"] if row else ""
            return fn

        one = db  # gis.db.Database keeps its connections: every call reuses a warm backend
        try:
            for lon, lat in zip(lons[:50], lats[:50], strict=True):
                one.fetchone(LOOKUP.format(table="grid"), {"gen": gen, "lon": float(lon), "lat": float(lat)})
            status, ms = time_calls(full(one), lons, lats)
            results["locate"] = percentiles(ms)
            results["locate"]["status_counts"] = {s: status.count(s) for s in sorted(set(status))}
            plain, ms = time_calls(lookup(one, "grid"), lons, lats)
            results["lookup"] = percentiles(ms)

            t = time.perf_counter()
            db.execute("DROP TABLE IF EXISTS bench_grid_sub")
            db.execute("CREATE TABLE bench_grid_sub AS SELECT code, generation, ST_Subdivide(geom, %s) AS geom "
                       "FROM grid WHERE generation = %s", (args.max_vertices, gen))
            db.execute("CREATE INDEX ON bench_grid_sub USING gist (geom)")
            db.execute("ANALYZE bench_grid_sub")
            pieces = db.fetchone("SELECT count(*) n FROM bench_grid_sub")["n"]
            results["subdivide"] = {"max_vertices": args.max_vertices, "pieces": pieces,
                                    "build_s": round(time.perf_counter() - t, 2)}
            sub, ms = time_calls(lookup(one, "bench_grid_sub"), lons, lats)
        finally:
            db.execute("DROP TABLE IF EXISTS bench_grid_sub")
        results["lookup_sub"] = percentiles(ms)
        results["lookup_sub"]["identical"] = sub == plain

    print(f"{args.n:,} single lookups ({results['locate']['status_counts']})")
    print("  (through gis.db.Database's pool, warm connections)")
    for k in ("locate", "lookup", "lookup_sub"):
        r = results[k]
        print(f"  {k:16s} p50 {r['p50_ms']:7.3f} ms   p90 {r['p90_ms']:7.3f} ms   p99 {r['p99_ms']:7.3f} ms   "
              f"max {r['max_ms']:7.2f} ms")
    print(f"  subdivided: {results['subdivide']['pieces']} pieces, lookups identical: "
          f"{results['lookup_sub']['identical']}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"locate_latency_{args.n}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    log("done")
    return 0 if results["lookup_sub"]["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
