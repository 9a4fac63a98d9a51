"""Benchmark: single-case intake through the Python API (CaseService.intake) on the demo city.

    .venv/bin/python -m bench.intake --n 500

Starts a throwaway embedded PostGIS (or uses DATABASE_URL), loads the demo city, then times intake of
N cases by a dispatcher: coordinates (WGS84 and GCJ-02) and address text, each located/geocoded,
routed, given its deadlines, written with its events and duplicate suggestions (view=False: the
essentials are returned); "+view" also re-reads the full case view (events, deadline explanation)
as the web API does. Prints p50/p90/p99/mean in ms; --json writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from cases.auth import create_user
    from cases.service import CaseService
    from cases.setup import seed_routing_rules
    from fixtures.city import build_city
    from gis.cluster import EmbeddedCluster
    from gis.coords import wgs_to_gcj
    from gis.db import Database
    from gis.migrate import migrate
    from grids.store import load_city

    cluster = None
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        base = tempfile.mkdtemp(prefix="gridgov-bench-")
        os.chmod(base, 0o755)
        cluster = EmbeddedCluster(Path(base) / "data", log=lambda m: None)
        dsn = cluster.start()
    try:
        migrate(cluster.owner_dsn if cluster else dsn, log=lambda m: None)
        db = Database(dsn, maxconn=4)
        city = build_city()
        if not db.fetchone("SELECT count(*) n FROM generation")["n"]:
            load_city(db, city, progress=lambda m: None)
        seed_routing_rules(db)
        user = create_user(db, f"bench{int(time.time())}", "password123", "dispatcher", "220300")
        svc = CaseService(db)
        rng = np.random.default_rng(args.seed)
        addrs = [city.addresses[i] for i in rng.choice(len(city.addresses), args.n, replace=False)]
        svc.gazetteer()  # built once per process, outside the timing
        svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "warm-up", "lon": addrs[0]["geom"].x,
                    "lat": addrs[0]["geom"].y}, user)
        now = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        timings = {"wgs84": [], "gcj02": [], "address": [], "wgs84+view": []}
        for i, a in enumerate(addrs):
            mode = ("wgs84", "gcj02", "address", "wgs84+view")[i % 4]
            sub = {"channel": "hotline_12345", "kind": "求决", "category_code": "C0102", "title": "物业服务问题",
                   "content": "楼道卫生无人打扫", "reporter_name": "测试", "reporter_phone": f"139{i:08d}"}
            lon, lat = a["geom"].x, a["geom"].y
            if mode.startswith("wgs84"):
                sub.update(lon=lon, lat=lat)
            elif mode == "gcj02":
                g = wgs_to_gcj(lon, lat)
                sub.update(lon=float(g[0]), lat=float(g[1]), crs="GCJ-02")
            else:
                sub["address_text"] = a["full_text"]
            t = time.perf_counter()
            svc.intake(sub, user, now=now, view=mode.endswith("+view"))
            timings[mode].append((time.perf_counter() - t) * 1000)
        out = {}
        for mode, ts in timings.items():
            ts.sort()
            out[mode] = {"n": len(ts), "p50_ms": round(statistics.median(ts), 2),
                         "p90_ms": round(ts[int(0.9 * (len(ts) - 1))], 2),
                         "p99_ms": round(ts[int(0.99 * (len(ts) - 1))], 2), "mean_ms": round(statistics.mean(ts), 2)}
            print(f"intake ({mode:10s}): n={len(ts)} p50={out[mode]['p50_ms']} ms p90={out[mode]['p90_ms']} ms "
                  f"p99={out[mode]['p99_ms']} ms mean={out[mode]['mean_ms']} ms")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        db.close()
    finally:
        if cluster:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
