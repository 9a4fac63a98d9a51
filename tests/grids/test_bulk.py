"""GridIndex: exact bulk point → grid, same tie-break as PostGIS locate (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPoint, box

from grids.bulk import GridIndex
from grids.locate import find_grid
from grids.store import load_city, resolve_generation
from tests.factories import X0, Y0, TinyCity, tiny_city

G1, G2, G3 = "990101001001001", "990101001001002", "990101002001001"
GRID = 2.0 ** -20          # dyadic snapping: edge midpoints and orientation tests are exact in floats


def voronoi_city(n: int = 50, seed: int = 7) -> TinyCity:
    """~n irregular Voronoi grids clipped to a 0.05° square, vertices snapped to a dyadic lattice."""
    rng = np.random.default_rng(seed)
    square = box(X0, Y0, X0 + 0.05, Y0 + 0.05)
    pts = MultiPoint(np.column_stack([rng.uniform(X0, X0 + 0.05, n), rng.uniform(Y0, Y0 + 0.05, n)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=square))
    cells = shapely.set_precision(shapely.intersection(cells, square), GRID)
    c = TinyCity()
    # codes deliberately not in geometric order
    for i, cell in enumerate(rng.permutation(len(cells))):
        geom = cells[cell]
        if geom.is_empty:
            continue
        c.grids.append(dict(code=f"990101001001{i:03d}", name=f"网格{i}", grid_type="社区",
                            village_code="990101001001", geom=shapely.MultiPolygon([geom])
                            if geom.geom_type == "Polygon" else geom))
    return c


def special_points(grids: list[dict]) -> np.ndarray:
    """Every vertex and the midpoint of every edge shared by two grids."""
    seen: dict[tuple, int] = {}
    verts = []
    for g in grids:
        for ring in shapely.get_rings(shapely.get_parts(g["geom"])):
            xy = shapely.get_coordinates(ring)
            verts.append(xy)
            for a, b in zip(map(tuple, xy[:-1]), map(tuple, xy[1:]), strict=True):
                key = (min(a, b), max(a, b))
                seen[key] = seen.get(key, 0) + 1
    mids = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for (a, b), k in seen.items() if k >= 2]
    return np.unique(np.vstack(verts + [np.array(mids).reshape(-1, 2)]), axis=0)


def postgis_codes(db, lons, lats) -> list[str]:
    """Grid code per point through the PostGIS lookup ('' when outside)."""
    gen = resolve_generation(db)
    out = []
    for lon, lat in zip(lons, lats, strict=True):
        row = find_grid(db, float(lon), float(lat), gen)
        out.append(row["code"] if row["status"] == "inside" else "")
    return out


# ------------------------------------------------------------------------------ no database

def test_tiny_city_tie_break_without_database():
    c = tiny_city()
    gi = GridIndex([g["code"] for g in c.grids], [g["geom"] for g in c.grids], resolution=8, refine=4)
    lons = np.array([X0 + 0.005, X0 + 0.01, X0 + 0.02, X0 + 0.01, X0, X0 + 0.04, X0 - 1e-9, X0 + 0.05, np.nan])
    lats = np.array([Y0 + 0.005, Y0 + 0.005, Y0 + 0.005, Y0 + 0.01, Y0, Y0 + 0.01, Y0, Y0, Y0])
    assert gi.locate(lons, lats).tolist() == [G1, G1, G2, G1, G1, G3, "", "", ""]


def test_codes_order_decides_not_input_order():
    a, b = box(0, 0, 1, 1), box(1, 0, 2, 1)
    gi = GridIndex(["B2", "A1"], [b, a], resolution=4, refine=2)
    assert gi.locate([1.0, 0.5, 1.5], [0.5, 0.5, 0.5]).tolist() == ["A1", "A1", "B2"]


def test_overlapping_grids_take_smallest_code():
    gi = GridIndex(["Z", "M"], [box(0, 0, 2, 2), box(1, 1, 3, 3)], resolution=16, refine=4)
    assert gi.locate([1.5, 0.5, 2.5], [1.5, 0.5, 2.5]).tolist() == ["M", "Z", "M"]


def test_holes_and_multipolygons():
    ring = box(0, 0, 4, 4).difference(box(1, 1, 3, 3))
    multi = shapely.MultiPolygon([box(1, 1, 3, 3), box(5, 0, 6, 1)])
    gi = GridIndex(["R", "H"], [ring, multi], resolution=32, refine=8)
    assert gi.locate([0.5, 2, 1, 5.5, 4.5], [0.5, 2, 2, 0.5, 0.5]).tolist() == ["R", "H", "H", "H", ""]


def test_empty_index():
    gi = GridIndex([], [])
    assert gi.locate([1.0], [2.0]).tolist() == [""]


def test_duplicate_codes_refused():
    with pytest.raises(ValueError):
        GridIndex(["A", "A"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), res=st.sampled_from([4, 16, 64]), refine=st.sampled_from([2, 8, 16]))
def test_matches_brute_force_on_voronoi(seed, res, refine):
    c = voronoi_city(n=30, seed=seed)
    codes = [g["code"] for g in c.grids]
    geoms = [g["geom"] for g in c.grids]
    gi = GridIndex(codes, geoms, resolution=res, refine=refine)
    rng = np.random.default_rng(seed)
    pts = np.vstack([special_points(c.grids),
                     np.column_stack([rng.uniform(X0 - 0.01, X0 + 0.06, 2000),
                                      rng.uniform(Y0 - 0.01, Y0 + 0.06, 2000)])])
    got = gi.locate(pts[:, 0], pts[:, 1])
    order = np.argsort(codes)
    cover = shapely.intersects_xy(np.asarray(geoms)[order][:, None], pts[:, 0][None, :], pts[:, 1][None, :])
    first = np.where(cover.any(axis=0), cover.argmax(axis=0), -1)
    want = np.where(first >= 0, np.asarray(codes)[order][first], "")
    assert got.tolist() == want.tolist()


# ------------------------------------------------------------------------------ against PostGIS

def test_agrees_with_postgis_on_tiny_city(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    gi = GridIndex.from_db(db, resolution=8, refine=4)
    assert gi.generation == 1

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.floats(X0 - 0.005, X0 + 0.045), st.floats(Y0 - 0.005, Y0 + 0.015),
           st.sampled_from([None, "x", "y", "xy"]))
    def check(lon, lat, snap):
        # snap onto the lines of edges and corners to hit shared edges and vertices often
        if snap in ("x", "xy"):
            lon = min((X0, X0 + 0.01, X0 + 0.02, X0 + 0.04), key=lambda e: abs(e - lon))
        if snap in ("y", "xy"):
            lat = min((Y0, Y0 + 0.01), key=lambda e: abs(e - lat))
        assert gi.locate([lon], [lat]).tolist() == postgis_codes(db, [lon], [lat])

    check()


def test_agrees_with_postgis_on_voronoi_city(db):
    city = voronoi_city(n=50, seed=11)
    assert 45 <= len(city.grids) <= 50
    load_city(db, city, progress=lambda m: None)
    gi = GridIndex.from_db(db, resolution=32, refine=8)
    pts = special_points(city.grids)
    assert len(pts) > 150
    assert gi.locate(pts[:, 0], pts[:, 1]).tolist() == postgis_codes(db, pts[:, 0], pts[:, 1])

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.floats(X0 - 0.01, X0 + 0.06), st.floats(Y0 - 0.01, Y0 + 0.06), st.integers(0, len(pts) - 1),
           st.booleans())
    def check(lon, lat, k, on_special):
        if on_special:
            lon, lat = pts[k]
        assert gi.locate([lon], [lat]).tolist() == postgis_codes(db, [lon], [lat])

    check()
