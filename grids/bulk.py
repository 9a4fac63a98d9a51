"""Bulk point → grid in process: millions of points against one grid generation, exact.

`GridIndex` answers with the same rule as grids.locate: among the grids whose polygon covers the
point, the smallest code wins; '' when none does. Design (docs/locate.md):

* a two-level raster over the grids' extent: a coarse raster, and for every coarse cell a boundary
  crosses, a tile of `refine` × `refine` fine cells;
* a cell is *pure* when no boundary segment comes within a hair of it, so its whole closed box lies
  in one face of the tessellation; connected groups of pure cells (scipy.ndimage.label) are labelled
  by one exact lookup of a representative point each;
* boundary cells are marked conservatively by sampling every ring segment at less than a fine cell
  and marking every fine cell within half a sample step (plus epsilon) of a sample;
* lookup is numpy indexing; points in boundary cells (a few percent) fall back to an STRtree query
  and `shapely.intersects_xy` (for points, covers == intersects) on prepared polygons.

Persistence: a generation's grids never change once committed, so the built raster is saved per
generation (`save`/`load`, `GridIndex.cached(db)` keeps one file per generation and content checksum
under the data folder). Loading skips the raster build entirely; the STRtree and the prepared polygons
of the exact fallback are built lazily, only for the polygons a lookup actually needs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage

_EMPTY = -1          # pure cell covered by no grid
_MIXED = -2          # fine cell a boundary touches: exact check
_TILE0 = -2          # coarse value v <= -2 means tile number -v - 2


class GridIndex:
    """An in-process point → grid index with the smallest-code tie-break."""

    def __init__(self, codes, geoms, resolution: int = 512, refine: int = 16, generation: int | None = None):
        codes = np.asarray([str(c) for c in codes], dtype=object)
        geoms = np.asarray(geoms, dtype=object)
        if len(codes) != len(geoms):
            raise ValueError("codes and geoms differ in length")
        if len(codes) and len(set(codes.tolist())) != len(codes):
            raise ValueError("grid codes must be unique")
        order = np.argsort(codes.astype(str), kind="stable")
        self.codes = codes[order]
        self.geoms = geoms[order]
        self.generation = generation
        self.resolution = int(resolution)
        self.refine = int(refine)
        self._tree = None
        self._table = np.append(self.codes.astype(str), "")
        self._build()

    @property
    def tree(self) -> shapely.STRtree:
        """STRtree over the grid polygons, built on first use (a loaded index may never need it)."""
        if self._tree is None:
            self._tree = shapely.STRtree(self.geoms)
        return self._tree

    # ------------------------------------------------------------------ persistence
    FORMAT = 1

    def save(self, path) -> Path:
        """Write the built index to `path` (.npz, atomically: a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        wkb = shapely.to_wkb(self.geoms)
        lengths = np.fromiter((len(b) for b in wkb), dtype=np.int64, count=len(wkb))
        meta = np.array([self.x0, self.y0, self.dx, self.dy], dtype=np.float64)
        dims = np.array([self.FORMAT, self.nx, self.ny, self.resolution, self.refine,
                         -1 if self.generation is None else self.generation], dtype=np.int64)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=meta, dims=dims, coarse=self.coarse, tiles=self.tiles,
                     codes=self.codes.astype(str), wkb=np.frombuffer(b"".join(wkb), dtype=np.uint8),
                     wkb_len=lengths)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> GridIndex:
        """Read an index written by `save` (no raster build; the fallback tree is built lazily)."""
        with np.load(path, allow_pickle=False) as z:
            dims = z["dims"]
            if int(dims[0]) != cls.FORMAT:
                raise ValueError(f"{path}: grid index format {int(dims[0])}, expected {cls.FORMAT}")
            gi = cls.__new__(cls)
            gi.x0, gi.y0, gi.dx, gi.dy = (float(v) for v in z["meta"])
            gi.nx, gi.ny, gi.resolution, gi.refine = (int(v) for v in dims[1:5])
            gi.generation = None if int(dims[5]) < 0 else int(dims[5])
            gi.coarse, gi.tiles = z["coarse"], z["tiles"]
            gi.codes = z["codes"].astype(object)
            raw, lengths = z["wkb"].tobytes(), z["wkb_len"]
        ends = np.cumsum(lengths)
        gi.geoms = shapely.from_wkb([raw[e - n:e] for e, n in zip(ends.tolist(), lengths.tolist(), strict=True)])
        gi._tree = None
        gi._table = np.append(gi.codes.astype(str), "")
        return gi

    @classmethod
    def cached(cls, db, generation: int | None = None, cache_dir=None, **kw) -> GridIndex:
        """The index of one generation from the on-disk cache, built and saved on first use.

        The file name carries the generation and a checksum of its grids (codes and geometry), so a
        changed or re-created generation can never be answered from a stale file.
        """
        from grids.store import resolve_generation

        gen = resolve_generation(db, generation)
        if cache_dir is None:
            from gis.settings import load_settings

            cache_dir = Path(load_settings().data_dir) / "cache"
        row = db.fetchone("SELECT count(*) n, md5(string_agg(code || ':' || md5(ST_AsBinary(geom)), ',' "
                          "ORDER BY code)) sum FROM grid WHERE generation = %s", (gen,))
        params = f"{kw.get('resolution', 512)}-{kw.get('refine', 16)}"
        digest = hashlib.sha256(f"{row['sum']}|{row['n']}|{params}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"gridindex-g{gen}-{digest}.npz"
        if path.exists():
            try:
                return cls.load(path)
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)   # a damaged cache file is rebuilt, never trusted
        gi = cls.from_db(db, gen, **kw)
        gi.save(path)
        return gi

    @classmethod
    def from_db(cls, db, generation: int | None = None, **kw) -> GridIndex:
        """Load one generation's grids (the active one by default) and index them."""
        from grids.store import resolve_generation

        gen = resolve_generation(db, generation)
        rows = db.fetchall("SELECT code, ST_AsBinary(geom) AS wkb FROM grid WHERE generation = %s ORDER BY code",
                           (gen,))
        geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
        return cls([r["code"] for r in rows], geoms, generation=gen, **kw)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        n, f = len(self.geoms), self.refine
        if n == 0:
            self.x0 = self.y0 = 0.0
            self.dx = self.dy = 1.0
            self.nx = self.ny = 1
            self.coarse = np.full((1, 1), _EMPTY, dtype=np.int32)
            self.tiles = np.zeros((0, f, f), dtype=np.int32)
            return
        bx0, by0, bx1, by1 = shapely.total_bounds(self.geoms)
        w, h = max(bx1 - bx0, 1e-9), max(by1 - by0, 1e-9)
        cell = max(w, h) / self.resolution
        # one fine cell of margin so points on the outer bounds land inside the raster
        margin = cell / f
        self.x0, self.y0 = bx0 - margin, by0 - margin
        self.nx = int(np.ceil((w + 2 * margin) / cell))
        self.ny = int(np.ceil((h + 2 * margin) / cell))
        self.dx = self.dy = cell
        fdx = cell / f

        # boundary samples every < 1/2 fine cell along every ring segment
        rings = shapely.get_rings(shapely.get_parts(self.geoms))
        coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
        same = ring_idx[1:] == ring_idx[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        step = fdx / 2.0
        seg_len = np.hypot(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1])
        k = np.maximum(np.ceil(seg_len / step).astype(np.int64), 1)
        seg = np.repeat(np.arange(len(a)), k + 1)
        start = np.repeat(np.cumsum(k + 1) - (k + 1), k + 1)
        t = (np.arange(len(seg)) - start) / np.repeat(k, k + 1)
        sx = a[seg, 0] + t * (b[seg, 0] - a[seg, 0])
        sy = a[seg, 1] + t * (b[seg, 1] - a[seg, 1])
        r = step / 2.0 + fdx * 1e-6
        nfx, nfy = self.nx * f, self.ny * f
        lo_x = np.clip(np.floor((sx - r - self.x0) / fdx), 0, nfx - 1).astype(np.int64)
        hi_x = np.clip(np.floor((sx + r - self.x0) / fdx), 0, nfx - 1).astype(np.int64)
        lo_y = np.clip(np.floor((sy - r - self.y0) / fdx), 0, nfy - 1).astype(np.int64)
        hi_y = np.clip(np.floor((sy + r - self.y0) / fdx), 0, nfy - 1).astype(np.int64)
        marked = np.unique(np.concatenate([_runs(lo_y * nfx + lo_x), _runs(lo_y * nfx + hi_x),
                                           _runs(hi_y * nfx + lo_x), _runs(hi_y * nfx + hi_x)]))
        my, mx = marked // nfx, marked % nfx
        coarse_id = np.unique((my // f) * self.nx + (mx // f))

        # coarse level: pure coarse cells by connected components
        coarse_mixed = np.zeros(self.ny * self.nx, dtype=bool)
        coarse_mixed[coarse_id] = True
        coarse_mixed = coarse_mixed.reshape(self.ny, self.nx)
        comp, ncomp = ndimage.label(~coarse_mixed)
        coarse = np.empty((self.ny, self.nx), dtype=np.int32)
        if ncomp:
            iy, ix = _first_cells(comp, ncomp)
            labels = self._exact((ix + 0.5) * cell + self.x0, (iy + 0.5) * cell + self.y0)
            coarse[~coarse_mixed] = labels[comp[~coarse_mixed] - 1]
        # tiles for boundary coarse cells
        ntiles = len(coarse_id)
        tile_of = np.full(self.ny * self.nx, -1, dtype=np.int64)
        tile_of[coarse_id] = np.arange(ntiles)
        coarse.ravel()[coarse_id] = (_TILE0 - np.arange(ntiles)).astype(np.int32)
        fine_mixed = np.zeros((ntiles, f, f), dtype=bool)
        fine_mixed[tile_of[(my // f) * self.nx + (mx // f)], my % f, mx % f] = True
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)   # connect within a tile only
        comp, ncomp = ndimage.label(~fine_mixed, structure=structure)
        tiles = np.full((ntiles, f, f), _MIXED, dtype=np.int32)
        if ncomp:
            it, iy, ix = _first_cells(comp, ncomp)
            cy, cx = np.divmod(coarse_id[it], self.nx)
            px = self.x0 + cx * cell + (ix + 0.5) * fdx
            py = self.y0 + cy * cell + (iy + 0.5) * fdx
            labels = self._exact(px, py)
            tiles[~fine_mixed] = labels[comp[~fine_mixed] - 1]
        self.coarse, self.tiles = coarse, tiles

    # ------------------------------------------------------------------ lookup
    def _exact(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Exact grid index (-1 when none) by STRtree candidates and covers, smallest index wins."""
        out = np.full(len(lons), _EMPTY, dtype=np.int32)
        if len(lons) == 0:
            return out
        pidx, gidx = self.tree.query(shapely.points(lons, lats))
        if len(pidx) == 0:
            return out
        cand = self.geoms[np.unique(gidx)]
        shapely.prepare(cand)          # only the polygons this lookup needs (no-op when already prepared)
        ok = shapely.intersects_xy(self.geoms[gidx], lons[pidx], lats[pidx])
        pidx, gidx = pidx[ok], gidx[ok]
        if len(pidx):
            order = np.lexsort((gidx, pidx))
            pidx, gidx = pidx[order], gidx[order]
            first = np.ones(len(pidx), dtype=bool)
            first[1:] = pidx[1:] != pidx[:-1]
            out[pidx[first]] = gidx[first]
        return out

    def locate_index(self, lons, lats) -> np.ndarray:
        """Index into self.codes of the covering grid (smallest code) per point; -1 when outside."""
        lons = np.ascontiguousarray(lons, dtype=np.float64).ravel()
        lats = np.ascontiguousarray(lats, dtype=np.float64).ravel()
        if lons.shape != lats.shape:
            raise ValueError("lons and lats differ in length")
        f = self.refine
        fdx = self.dx / f
        fx = (lons - self.x0) / fdx
        fy = (lats - self.y0) / fdx
        inb = (fx >= 0) & (fy >= 0) & (fx < self.nx * f) & (fy < self.ny * f)   # NaN fails every test
        out = np.full(len(lons), _EMPTY, dtype=np.int32)
        sel = np.flatnonzero(inb)
        ix = fx[sel].astype(np.int64)
        iy = fy[sel].astype(np.int64)
        v = self.coarse[iy // f, ix // f]
        tiled = v <= _TILE0
        if tiled.any():
            v[tiled] = self.tiles[_TILE0 - v[tiled], iy[tiled] % f, ix[tiled] % f]
        mixed = v == _MIXED
        if mixed.any():
            m = sel[mixed]
            v[mixed] = self._exact(lons[m], lats[m])
        out[sel] = v
        self.last_exact_fraction = float(mixed.sum()) / max(len(lons), 1)
        return out

    def locate_one(self, lon: float, lat: float) -> str:
        """locate() of one point without numpy's per-call overhead (queued intake locates one submission per
        request): the same raster, the same tie-break, the same answer ('' when no grid covers it)."""
        f = self.refine
        fdx = self.dx / f
        fx, fy = (lon - self.x0) / fdx, (lat - self.y0) / fdx
        if not (0 <= fx < self.nx * f and 0 <= fy < self.ny * f):   # NaN fails too
            return ""
        ix, iy = int(fx), int(fy)
        v = int(self.coarse[iy // f, ix // f])
        if v <= _TILE0:
            v = int(self.tiles[_TILE0 - v, iy % f, ix % f])
        if v == _MIXED:
            v = int(self._exact(np.array([lon], dtype=np.float64), np.array([lat], dtype=np.float64))[0])
        return "" if v < 0 else str(self.codes[v])

    def locate(self, lons, lats) -> np.ndarray:
        """Grid code per point (numpy array of str, '' when no grid covers it)."""
        idx = self.locate_index(lons, lats)
        return self._table[np.where(idx < 0, len(self.codes), idx)]

    def stats(self) -> dict:
        """Sizes of the index (cells, tiles, memory) for reports."""
        f = self.refine
        return {"grids": len(self.codes), "coarse_cells": int(self.coarse.size), "tiles": int(len(self.tiles)),
                "fine_cell_deg": self.dx / f, "memory_mb": round((self.coarse.nbytes + self.tiles.nbytes) / 2**20, 1),
                "pure_fine_fraction_in_tiles": float((self.tiles != _MIXED).mean()) if len(self.tiles) else 1.0}


def _first_cells(comp: np.ndarray, ncomp: int):
    """Coordinates of one cell of each component 1..ncomp of a label array."""
    flat = comp.ravel()
    nz = np.flatnonzero(flat)
    first = np.empty(ncomp + 1, dtype=np.int64)
    first[flat[nz[::-1]]] = nz[::-1]          # reversed, so the last write is the first cell
    return np.unravel_index(first[1:], comp.shape)


def _runs(keys: np.ndarray) -> np.ndarray:
    """Drop consecutive repeats (samples along a segment hit the same cell several times)."""
    if len(keys) < 2:
        return keys
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep]
