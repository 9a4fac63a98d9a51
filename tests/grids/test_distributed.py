"""Persisted GridIndex and bulk point → grid on Dask: the same answers as one process, build skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grids.bulk import GridIndex
from grids.distributed import local_client, locate_cases_in_db, locate_parquet
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from tests.grids.test_bulk import special_points, voronoi_city


def _points(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(X0 - 0.005, X0 + 0.055, n), rng.uniform(Y0 - 0.005, Y0 + 0.055, n)


@pytest.fixture(scope="module")
def voronoi_index():
    city = voronoi_city(60, seed=11)
    return city, GridIndex([g["code"] for g in city.grids], [g["geom"] for g in city.grids])


def test_saved_index_answers_exactly_like_the_built_one(voronoi_index, tmp_path):
    city, gi = voronoi_index
    path = gi.save(tmp_path / "gi.npz")
    loaded = GridIndex.load(path)
    lon, lat = _points(20_000)
    sp = special_points(city.grids)            # vertices and edge midpoints: the tie-break cases
    lon, lat = np.concatenate([lon, sp[:, 0]]), np.concatenate([lat, sp[:, 1]])
    assert (loaded.locate(lon, lat) == gi.locate(lon, lat)).all()
    assert GridIndex.load(path)._tree is None     # loading builds nothing: the fallback tree comes on demand
    assert list(loaded.codes) == list(gi.codes)


def test_one_point_lookup_equals_the_vectorised_one(voronoi_index):
    """Queued intake locates one point per request with locate_one: random, vertex and edge points, points
    outside the raster and NaN answer exactly as locate() does."""
    city, gi = voronoi_index
    lon, lat = _points(5_000, seed=5)
    sp = special_points(city.grids)
    lon = np.concatenate([lon, sp[:, 0], [X0 - 1.0, X0 + 5.0, np.nan, X0]])
    lat = np.concatenate([lat, sp[:, 1], [Y0, Y0, Y0, np.nan]])
    want = gi.locate(lon, lat)
    got = [gi.locate_one(float(x), float(y)) for x, y in zip(lon, lat, strict=True)]
    assert got == [str(w) for w in want]
    assert sum(1 for g in got if g) > len(got) // 2 and "" in got   # inside and outside points were both tried


def test_damaged_or_foreign_files_are_refused(voronoi_index, tmp_path):
    _, gi = voronoi_index
    path = gi.save(tmp_path / "gi.npz")
    np.savez(tmp_path / "other.npz", dims=np.array([99, 1, 1, 1, 1, -1]))
    with pytest.raises(ValueError, match="format 99"):
        GridIndex.load(tmp_path / "other.npz")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(Exception):  # noqa: B017 - a truncated zip fails in numpy/zipfile
        GridIndex.load(path)


def test_cached_index_is_built_once_per_generation_and_content(db, tmp_path):
    load_city(db, tiny_city(), progress=lambda m: None)
    a = GridIndex.cached(db, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("gridindex-g*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    b = GridIndex.cached(db, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime          # read, not rebuilt
    lon, lat = _points(2_000)
    assert (a.locate(lon, lat) == b.locate(lon, lat)).all()
    # a damaged cache file is rebuilt, never trusted
    files[0].write_bytes(b"not an index")
    c = GridIndex.cached(db, cache_dir=tmp_path)
    assert (c.locate(lon, lat) == a.locate(lon, lat)).all()
    # different grid content → a different file (the name carries a checksum of codes and geometry)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT code FROM grid ORDER BY code LIMIT 1")
        code = cur.fetchone()[0]
        cur.execute("UPDATE grid SET geom = ST_Multi(ST_Translate(geom, 0.0001, 0)) WHERE code = %s", (code,))
        conn.commit()
    GridIndex.cached(db, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("gridindex-g*.npz"))) == 2


@pytest.fixture(scope="module")
def dask_client():
    client = local_client(workers=2)
    yield client
    client.close()


def test_dask_partitions_equal_the_single_machine_answer(voronoi_index, tmp_path, dask_client):
    import geopandas as gpd

    city, gi = voronoi_index
    path = gi.save(tmp_path / "gi.npz")
    lon, lat = _points(40_000, seed=9)
    gdf = gpd.GeoDataFrame({"id": np.arange(len(lon))}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    src = tmp_path / "points"
    src.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(lon)), 4)):   # four files → four partitions
        gdf.iloc[part].to_parquet(src / f"part{i}.parquet")
    ddf = locate_parquet(str(src), path)
    assert ddf.npartitions == 4
    got = ddf.compute().sort_values("id")
    assert len(dask_client.scheduler_info()["workers"]) == 2
    assert (got["grid_code"].to_numpy() == gi.locate(lon, lat)).all()
    # plain Parquet with lon/lat columns works the same way
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"id": np.arange(len(lon)), "lon": lon, "lat": lat}).to_parquet(plain)
    got2 = locate_parquet(str(plain), path).compute().sort_values("id")
    assert (got2["grid_code"].to_numpy() == gi.locate(lon, lat)).all()


def test_dask_over_the_case_table_equals_postgis(db, tmp_path, dask_client):
    load_city(db, tiny_city(), progress=lambda m: None)
    lon, lat = _points(3_000, seed=5)
    lon, lat = lon * 0 + X0 + (lon - X0) * 0.8, lat * 0 + Y0 + (lat - Y0) * 0.2   # mostly inside the city
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE pts (i int, lon float8, lat float8)")
        cur.executemany("INSERT INTO pts VALUES (%s, %s, %s)", list(zip(range(len(lon)), lon.tolist(),
                                                                       lat.tolist(), strict=True)))
        cur.execute("""
            INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom)
            SELECT 'T' || i, '12345热线', '求决', 't', 'received', now(), ST_SetSRID(ST_MakePoint(lon, lat), 4326)
            FROM pts ORDER BY i""")
        conn.commit()
    gi = GridIndex.cached(db, cache_dir=tmp_path)
    path = gi.save(tmp_path / "bulk.npz")
    got = locate_cases_in_db(db.dsn, path, chunk=700).compute().set_index("id").sort_index()
    want = db.fetchall("""
        SELECT c.id, coalesce((SELECT g.code FROM grid g WHERE ST_Covers(g.geom, c.geom) ORDER BY g.code LIMIT 1),
                              '') AS code FROM case_record c ORDER BY c.id""")
    assert len(got) == len(want) == 3_000
    assert got["grid_code"].tolist() == [r["code"] for r in want]
    assert (got["grid_code"] != "").mean() > 0.5


def test_bulk_locate_command(db, tmp_path, monkeypatch):
    from gis.cli import main

    load_city(db, tiny_city(), progress=lambda m: None)
    lon, lat = _points(5_000, seed=2)
    src = tmp_path / "pts.parquet"
    pd.DataFrame({"id": np.arange(len(lon)), "lon": lon, "lat": lat}).to_parquet(src)
    monkeypatch.setenv("DATABASE_URL", db.dsn)
    monkeypatch.setenv("GRIDGOV_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out"
    assert main(["bulk-locate", "--parquet", str(src), "--out", str(out), "--scheduler", "sync"]) == 0
    got = pd.read_parquet(out).sort_values("id")
    want = GridIndex.from_db(db).locate(lon, lat)
    assert (got["grid_code"].to_numpy() == want).all()
    assert main(["bulk-locate", "--out", str(out)]) == 2                 # no input: one-line error
    assert main(["bulk-locate", "--parquet", str(tmp_path / "missing"), "--out", str(out)]) == 2
