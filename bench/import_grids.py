"""Benchmark: import a 5,000-grid city from a GeoPackage (read → validate 全市一张网 → COPY), and validate
the demo city.

    .venv/bin/python -m bench.import_grids [--grids 5000]

The synthetic city is 50 villages of 100 irregular (Voronoi) grids each, written to a GeoPackage with
pyogrio; the timing covers what `./gridgov import boundaries --grids F --regions F --commit` does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_city(n_villages: int, per_village: int, seed: int = 3):
    """Regions and grids (Voronoi cells clipped to square villages) that tile exactly."""
    import shapely
    from shapely.geometry import MultiPolygon, box

    rng = np.random.default_rng(seed)
    x0, y0, size = 117.0, 36.0, 0.01
    side = 10
    n_villages = side * int(np.ceil(n_villages / side))  # whole rows, so villages tile the outline
    outline = box(x0, y0, x0 + side * size, y0 + (n_villages // side) * size)
    regions = [dict(code="990800", level="city", name="基准市", parent_code=None, geom=outline),
               dict(code="990801", level="county", name="基准区", parent_code="990800", geom=outline),
               dict(code="990801001", level="township", name="基准街道", parent_code="990801", geom=outline)]
    grids = []
    for v in range(n_villages):
        vx, vy = x0 + (v % side) * size, y0 + (v // side) * size
        vbox = box(vx, vy, vx + size, vy + size)
        vcode = f"990801001{v + 1:03d}"
        regions.append(dict(code=vcode, level="village", name=f"第{v + 1}社区", parent_code="990801001", geom=vbox))
        pts = shapely.points(rng.uniform(vx, vx + size, per_village), rng.uniform(vy, vy + size, per_village))
        cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=vbox)
        pieces = [shapely.intersection(c, vbox, grid_size=1e-7) for c in shapely.get_parts(cells)]
        for k, p in enumerate(sorted(pieces, key=lambda g: (g.centroid.y, g.centroid.x))):
            grids.append(dict(code=f"{vcode}{k + 1:03d}", name=f"第{k + 1}网格", grid_type="社区", village_code=vcode,
                              geom=MultiPolygon([p]) if p.geom_type == "Polygon" else p))
    return regions, grids


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=int, default=5000)
    args = ap.parse_args(argv)
    import geopandas as gpd

    from gis.cluster import EmbeddedCluster
    from gis.db import Database
    from gis.migrate import migrate
    from grids.io import import_boundaries, read_grids, read_regions

    per_village = 100
    regions, grids = synthetic_city(max(1, args.grids // per_village), per_village)
    work = Path(tempfile.mkdtemp(prefix="gridgov-import-"))
    os.chmod(work, 0o755)
    gpkg = work / "city.gpkg"
    gpd.GeoDataFrame([{k: v for k, v in r.items() if k != "geom"} for r in regions],
                     geometry=[r["geom"] for r in regions], crs=4326).to_file(gpkg, layer="regions")
    gpd.GeoDataFrame([{k: v for k, v in g.items() if k != "geom"} for g in grids],
                     geometry=[g["geom"] for g in grids], crs=4326).to_file(gpkg, layer="grids")
    cluster = EmbeddedCluster(work / "data", log=lambda m: None)
    dsn = cluster.start()
    try:
        migrate(cluster.owner_dsn, log=lambda m: None)
        db = Database(dsn, maxconn=2)
        t0 = time.perf_counter()
        reg = read_regions(gpkg, layer="regions")
        grd = read_grids(gpkg, layer="grids")
        t1 = time.perf_counter()
        report, gen, _ = import_boundaries(db, reg, grd, "bench", commit=True, activate=True)
        t2 = time.perf_counter()
        assert report.ok, report.text()
        n = db.fetchone("SELECT count(*) n FROM grid WHERE generation = %s", (gen,))["n"]
        print(f"{n:,} grids in {len(reg)} regions: read {t1 - t0:.2f} s, validate + commit {t2 - t1:.2f} s, "
              f"total {t2 - t0:.2f} s")
        from fixtures.city import build_city
        from grids.validate import validate

        city = build_city()
        t = time.perf_counter()
        rep = validate(city.regions, city.grids, staff=city.staff, roles=city.staff_roles)
        print(f"validate the demo city ({len(city.grids):,} grids, {len(city.staff):,} staff): "
              f"{time.perf_counter() - t:.2f} s, ok={rep.ok}")
        db.close()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
