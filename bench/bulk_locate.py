"""Benchmark: bulk point → grid over the demo city — GridIndex vs geopandas sjoin vs a PostGIS join.

    .venv/bin/python bench/bulk_locate.py [--n 1000000] [--dsn DSN] [--seed 1] [--skip-postgis]

Points: half uniform over the grids' bounding box, half normally scattered around the urban core
(where grids are small). Every method must give the identical grid code per point (smallest code
among covering grids, '' outside). Prints points/s and speedups; writes JSON to bench/out/.
Without --dsn (or DATABASE_URL) an embedded PostGIS cluster is started in a temp folder and removed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REPEAT = 3


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def demo_database(dsn: str | None, seed: int = 2203):
    """A Database holding the demo city: the given DSN (loaded if empty) or a throwaway embedded cluster."""
    from gis.db import Database
    from gis.migrate import migrate
    from grids.store import city_loaded, load_city

    cluster = base = None
    try:
        if dsn is None:
            from gis.cluster import EmbeddedCluster

            base = tempfile.mkdtemp(prefix="gridgov-bench-")
            os.chmod(base, 0o755)
            cluster = EmbeddedCluster(Path(base) / "data", log=log)
            dsn = cluster.start()
        migrate(cluster.owner_dsn if cluster else dsn, log=lambda m: None)
        db = Database(dsn, maxconn=4)
        if not city_loaded(db):
            from fixtures.city import build_city

            t = time.perf_counter()
            city = build_city(seed=seed)
            log(f"built the demo city in {time.perf_counter() - t:.1f}s: {len(city.grids)} grids")
            load_city(db, city, progress=log)
        try:
            yield db
        finally:
            db.close()
    finally:
        if cluster is not None:
            cluster.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


def make_points(db, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points: half bbox-uniform, half around the city center (urban core, sigma ~3 km)."""
    row = db.fetchone(
        "SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM "
        "(SELECT ST_Extent(geom) e FROM grid WHERE generation = (SELECT id FROM generation WHERE active)) s")
    core = db.fetchone("SELECT ST_X(geom) lon, ST_Y(geom) lat FROM center WHERE level = 'city' LIMIT 1")
    rng = np.random.default_rng(seed)
    half = n // 2
    lon = np.concatenate([rng.uniform(row["x0"], row["x1"], half), rng.normal(core["lon"], 0.04, n - half)])
    lat = np.concatenate([rng.uniform(row["y0"], row["y1"], half), rng.normal(core["lat"], 0.03, n - half)])
    return lon, lat


def run_index(db, lon, lat) -> tuple[np.ndarray, dict]:
    """GridIndex: build (timed apart) and locate."""
    from grids.bulk import GridIndex

    t = time.perf_counter()
    gi = GridIndex.from_db(db)
    build = time.perf_counter() - t
    gi.locate(lon[:1000], lat[:1000])  # warm
    sec = float("inf")
    for _ in range(REPEAT):    # best of REPEAT: the machine is shared
        t = time.perf_counter()
        codes = gi.locate(lon, lat)
        sec = min(sec, time.perf_counter() - t)
    # a one-off bulk job end to end: load the persisted index of the generation (GridIndex.cached), locate
    cache = tempfile.mkdtemp(prefix="gridgov-gi-")
    try:
        GridIndex.cached(db, cache_dir=cache)           # first use builds and saves it
        e2e = float("inf")
        for _ in range(REPEAT):
            t = time.perf_counter()
            loaded = GridIndex.cached(db, cache_dir=cache)
            load = time.perf_counter() - t
            got = loaded.locate(lon, lat)
            e2e = min(e2e, time.perf_counter() - t)
        assert (got == codes).all(), "the persisted index answered differently"
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return codes, {"build_s": round(build, 3), "locate_s": round(sec, 3), "points_per_s": round(len(lon) / sec),
                   "cached_load_s": round(load, 3), "end_to_end_s": round(e2e, 3),
                   "exact_fraction": round(gi.last_exact_fraction, 4), "index": _plain(gi.stats())}


def run_sjoin(db, lon, lat, predicate: str) -> tuple[np.ndarray, dict]:
    """geopandas sjoin, plus the smallest-code tie-break (timed apart)."""
    import geopandas as gpd
    import shapely

    rows = db.fetchall("SELECT code, ST_AsBinary(geom) wkb FROM grid "
                       "WHERE generation = (SELECT id FROM generation WHERE active) ORDER BY code")
    grids = gpd.GeoDataFrame({"code": [r["code"] for r in rows]},
                             geometry=shapely.from_wkb([bytes(r["wkb"]) for r in rows]), crs=4326)
    sec = float("inf")
    for _ in range(REPEAT):
        t = time.perf_counter()
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
        joined = gpd.sjoin(pts, grids, predicate=predicate, how="left")
        sec = min(sec, time.perf_counter() - t)
    t = time.perf_counter()
    # grids are sorted by code, so the smallest right index is the smallest code
    first = joined["index_right"].groupby(level=0).min().reindex(range(len(lon))).to_numpy()
    table = np.append(grids["code"].to_numpy(dtype=str), "")
    codes = table[np.where(np.isnan(first), len(grids), np.nan_to_num(first, nan=0)).astype(np.int64)]
    tie = time.perf_counter() - t
    return codes, {"predicate": predicate, "sjoin_s": round(sec, 3), "tie_break_s": round(tie, 3),
                   "points_per_s": round(len(lon) / sec)}


def run_postgis(db, lon, lat) -> tuple[np.ndarray, dict]:
    """COPY the points into a temp table and join with ST_Covers + the tie-break, in one connection."""
    with db.connection() as conn, conn.cursor() as cur:
        t = time.perf_counter()
        cur.execute("CREATE TEMP TABLE bench_raw (id integer, lon float8, lat float8) ON COMMIT DROP")
        buf = io.StringIO()
        np.savetxt(buf, np.column_stack([np.arange(len(lon)), lon, lat]), fmt=["%d", "%.17g", "%.17g"],
                   delimiter=",")
        buf.seek(0)
        cur.copy_expert("COPY bench_raw (id, lon, lat) FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("CREATE TEMP TABLE bench_pts ON COMMIT DROP AS "
                    "SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS geom FROM bench_raw")
        cur.execute("CREATE INDEX ON bench_pts USING gist (geom); ANALYZE bench_pts")
        load = time.perf_counter() - t
        t = time.perf_counter()
        cur.execute("""
            SELECT DISTINCT ON (p.id) p.id, g.code
            FROM bench_pts p
            JOIN grid g ON g.generation = (SELECT id FROM generation WHERE active) AND ST_Covers(g.geom, p.geom)
            ORDER BY p.id, g.code""")
        rows = cur.fetchall()
        sec = time.perf_counter() - t
    codes = np.full(len(lon), "", dtype=object)
    if rows:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes[ids] = [r[1] for r in rows]
    return codes.astype(str), {"load_s": round(load, 3), "join_s": round(sec, 3),
                               "points_per_s": round(len(lon) / sec)}


def _plain(d: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()}


def main(argv=None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--skip-postgis", action="store_true")
    ap.add_argument("--skip-within", action="store_true", help="skip the sjoin predicate='within' run")
    args = ap.parse_args(argv)

    with demo_database(args.dsn) as db:
        lon, lat = make_points(db, args.n, args.seed)
        log(f"{args.n:,} points")
        results: dict = {"n": args.n, "seed": args.seed}
        ref, results["gridindex"] = run_index(db, lon, lat)
        log(f"GridIndex: {results['gridindex']}")
        got, results["sjoin_intersects"] = run_sjoin(db, lon, lat, "intersects")
        log(f"sjoin intersects: {results['sjoin_intersects']}")
        results["sjoin_intersects"]["identical"] = bool((got == ref).all())
        if not args.skip_within:
            got, results["sjoin_within"] = run_sjoin(db, lon, lat, "within")
            results["sjoin_within"]["identical"] = bool((got == ref).all())
            log(f"sjoin within: {results['sjoin_within']}")
        if not args.skip_postgis:
            got, results["postgis"] = run_postgis(db, lon, lat)
            results["postgis"]["identical"] = bool((got == ref).all())
            log(f"PostGIS join: {results['postgis']}")
    results["inside_fraction"] = round(float((ref != "").mean()), 4)
    gi = results["gridindex"]["points_per_s"]
    results["speedup"] = {k: round(gi / v["points_per_s"], 1) for k, v in results.items()
                          if isinstance(v, dict) and "points_per_s" in v and k != "gridindex"}

    print(f"points: {args.n:,} (inside coverage {results['inside_fraction']:.1%})")
    for k, v in results.items():
        if isinstance(v, dict) and "points_per_s" in v:
            same = "" if k == "gridindex" else f"  identical={v['identical']}  GridIndex is {results['speedup'][k]}x"
            print(f"  {k:18s} {v['points_per_s']:>12,} points/s{same}")
    print(f"  GridIndex build {results['gridindex']['build_s']}s, exact fallback on "
          f"{results['gridindex']['exact_fraction']:.1%} of points")
    e2e = results["gridindex"]["end_to_end_s"]
    sj = results["sjoin_intersects"]["sjoin_s"] + results["sjoin_intersects"]["tie_break_s"]
    results["end_to_end_speedup_vs_sjoin"] = round(sj / e2e, 1)
    print(f"  one-off bulk job end to end: persisted GridIndex load {results['gridindex']['cached_load_s']}s + "
          f"locate = {e2e}s vs sjoin (points, tree, join, tie-break) {sj:.3f}s: "
          f"{results['end_to_end_speedup_vs_sjoin']}x")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bulk_locate_{args.n}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    ok = all(v.get("identical", True) for v in results.values() if isinstance(v, dict))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
