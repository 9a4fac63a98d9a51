"""Bulk point → grid past one machine: Dask partitions, each using the same persisted GridIndex.

Re-locating hundreds of millions of historical cases after a boundary redraw, multi-year heat maps and
类案 scans outgrow one process. The work is embarrassingly parallel: every partition of points is looked
up in the one GridIndex of the generation, which is saved once (`GridIndex.save`) and loaded by each
worker process once (`_index`), so no worker rebuilds the raster and no polygon is shipped per task.

Inputs: a GeoParquet file or folder (dask-geopandas; point geometry or lon/lat columns) or the case table
of a PostgreSQL database (id ranges read by each task with its own connection). Output: Parquet with
the key column and `grid_code` ('' outside every grid). `python -m gis bulk-locate` runs it.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd


@functools.lru_cache(maxsize=4)
def _index(path: str):
    """One loaded GridIndex per worker process and file."""
    from grids.bulk import GridIndex

    return GridIndex.load(path)


def locate_partition(df: pd.DataFrame, index_path: str, key: str = "id", lon: str = "lon",
                     lat: str = "lat") -> pd.DataFrame:
    """Grid codes of one partition: a frame of `key` and `grid_code` (geometry or lon/lat columns in)."""
    if "geometry" in df.columns and lon not in df.columns:
        import shapely

        xy = shapely.get_coordinates(np.asarray(df.geometry.values))
        x, y = xy[:, 0], xy[:, 1]
    else:
        x, y = df[lon].to_numpy(dtype=np.float64), df[lat].to_numpy(dtype=np.float64)
    codes = _index(str(index_path)).locate(x, y)
    return pd.DataFrame({key: df[key].to_numpy(), "grid_code": pd.array(codes.astype(str), dtype="str")})


def locate_parquet(src, index_path, key: str = "id", lon: str = "lon", lat: str = "lat"):
    """A lazy Dask frame of (key, grid_code) for the points of a (Geo)Parquet file or folder."""
    import dask.dataframe as dd

    try:
        import dask_geopandas

        ddf = dask_geopandas.read_parquet(src)
    except (ValueError, TypeError):   # plain Parquet with lon/lat columns: no geometry metadata
        ddf = dd.read_parquet(src)
    meta = pd.DataFrame({key: pd.Series(dtype=ddf[key].dtype), "grid_code": pd.Series(dtype="str")})
    return ddf.map_partitions(locate_partition, str(index_path), key, lon, lat, meta=meta)


def _read_cases(dsn: str, lo: int, hi: int) -> pd.DataFrame:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM case_record WHERE id >= %s AND id < %s "
                    "AND geom IS NOT NULL ORDER BY id", (lo, hi))
        rows = cur.fetchall()
    conn.close()
    a = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return pd.DataFrame({"id": a[:, 0].astype(np.int64), "lon": a[:, 1], "lat": a[:, 2]})


def locate_cases_in_db(dsn: str, index_path, chunk: int = 250_000):
    """A lazy Dask frame of (id, grid_code) over the case table, one task per id range of `chunk`."""
    import dask
    import dask.dataframe as dd
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(min(id), 0), coalesce(max(id), -1) FROM case_record")
        lo, hi = cur.fetchone()
    conn.close()
    bounds = list(range(lo, hi + 1, chunk)) + [hi + 1]
    parts = [dask.delayed(_read_cases)(dsn, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    meta = pd.DataFrame({"id": pd.Series(dtype=np.int64), "lon": pd.Series(dtype=np.float64),
                         "lat": pd.Series(dtype=np.float64)})
    if not parts:
        parts = [dask.delayed(lambda: meta.copy())()]
    ddf = dd.from_delayed(parts, meta=meta)
    out_meta = pd.DataFrame({"id": pd.Series(dtype=np.int64), "grid_code": pd.Series(dtype="str")})
    return ddf.map_partitions(locate_partition, str(index_path), meta=out_meta)


def local_client(workers: int = 2, threads: int = 1):
    """A Dask distributed client on a local multi-process cluster (loopback only)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    return Client(cluster)
