"""Exports of cases, grids and monthly rates to GeoPackage, GeoJSON, CSV and XLSX (no Flask here).

Cases come through cases.features (scoped by cases.auth.case_scope, reporter data masked unless the caller
handles the case); grids through grids.features; rates through cases.reports.compute_month with the caller
as the scope, joined to the unit's boundary for the geographic formats. Every text cell of CSV and XLSX that
begins with =, +, -, @ (or a tab/CR) is written with a leading apostrophe, so a spreadsheet never runs it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile

import numpy as np
import shapely
from shapely.geometry import shape

from cases.auth import User
from gis.errors import BadInput

FORMATS = ("gpkg", "geojson", "csv", "xlsx")
MIME = {"gpkg": "application/geopackage+sqlite3", "geojson": "application/geo+json",
        "csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
MAX_FEATURES = 500_000
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """A spreadsheet-safe cell: text starting with = + - @ (formula triggers) gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def _flat(props: dict) -> dict:
    out = {}
    for k, v in props.items():
        if isinstance(v, dict):
            for k2, v2 in _flat(v).items():
                out[f"{k}.{k2}"] = v2
        elif isinstance(v, list | tuple):
            out[k] = "；".join(str(x) for x in v)
        else:
            out[k] = v
    return out


def _all_pages(fetch) -> list[dict]:
    from grids.features import Query

    feats, offset = [], 0
    while True:
        page, matched = fetch(Query(limit=10000, offset=offset))
        feats += page
        offset += len(page)
        if not page or offset >= matched:
            return feats
        if offset > MAX_FEATURES:
            raise BadInput(f"more than {MAX_FEATURES:,} features: narrow the export (datetime, region …)")


def case_features(db, user: User, args: dict) -> list[dict]:
    """The caller's cases as point features (filters as OGC API items: datetime, status, grid_code …)."""
    from cases import features as cf
    from grids.features import parse_query

    q = parse_query(args, cf.FILTERABLE)
    return _all_pages(lambda page: cf.items(db, user, _merge(q, page)))


def grid_features(db, generation: int | None = None) -> list[dict]:
    """Every grid of a generation (default: the active one)."""
    from grids import features as gf

    c = gf.collection(db, "grids" if generation is None else f"grids_g{generation}")
    return _all_pages(lambda page: gf.items(db, c, page))


def rate_features(db, user: User, year: int, month: int, unit: str) -> list[dict]:
    """三率 and 四色码 of one month per unit as the caller may see them; the unit's boundary as geometry."""
    from cases import reports

    if unit not in reports.UNIT_COLUMNS:
        raise BadInput(f"unit must be one of {', '.join(reports.UNIT_COLUMNS)}", field="unit")
    rows = reports.to_json(reports.compute_month(db, year, month, unit, user=user))
    geoms = {}
    if unit == "grid":
        geoms = {r["code"]: r["wkb"] for r in db.fetchall(
            "SELECT code, ST_AsBinary(geom) wkb FROM grid WHERE generation = (SELECT id FROM generation WHERE active)")}
    elif unit != "department":
        geoms = {r["code"]: r["wkb"] for r in db.fetchall(
            "SELECT code, ST_AsBinary(geom) wkb FROM region WHERE level = %s AND generation = "
            "(SELECT id FROM generation WHERE active)", (unit,))}
    out = []
    for r in rows:
        wkb = geoms.get(r["unit_code"])
        geom = shapely.geometry.mapping(shapely.from_wkb(bytes(wkb))) if wkb is not None else None
        out.append({"type": "Feature", "id": r["unit_code"], "geometry": geom, "properties": _flat(r)})
    return out


def _merge(q, page):
    page.bbox, page.start, page.end, page.props = q.bbox, q.start, q.end, q.props
    return page


def _columns(feats: list[dict]) -> list[str]:
    cols: dict[str, None] = {}
    for f in feats:
        cols.update(dict.fromkeys(_flat(f["properties"])))
    return list(cols)


def _geometry_columns(f: dict) -> dict:
    g = f.get("geometry")
    if g is None:
        return {"lon": None, "lat": None, "wkt": None}
    if g["type"] == "Point":
        return {"lon": g["coordinates"][0], "lat": g["coordinates"][1]}
    return {"wkt": shapely.to_wkt(shape(g), rounding_precision=-1)}


def _table(feats: list[dict]) -> tuple[list[str], list[list]]:
    cols = _columns(feats)
    geo_cols: dict[str, None] = {}
    for f in feats:
        geo_cols.update(dict.fromkeys(_geometry_columns(f)))
    header = ["id", *cols, *geo_cols]
    rows = []
    for f in feats:
        p, g = _flat(f["properties"]), _geometry_columns(f)
        rows.append([f.get("id"), *(p.get(c) for c in cols), *(g.get(c) for c in geo_cols)])
    return header, rows


def to_csv(feats: list[dict]) -> bytes:
    """UTF-8 with BOM (Excel opens it correctly), formula triggers neutralised."""
    header, rows = _table(feats)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([neutralise(v) for v in r])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(feats: list[dict], title: str) -> bytes:
    """One sheet, text cells written as text (never formulas) and neutralised."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    header, rows = _table(feats)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    ws.freeze_panes = "A2"
    ws.append(header)
    for r in rows:
        cells = []
        for v in r:
            v = neutralise(v)
            c = WriteOnlyCell(ws, value=v)
            if isinstance(v, str):
                c.data_type = "s"
            cells.append(c)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def to_geojson(feats: list[dict]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False).encode()


def to_gpkg(feats: list[dict], layer: str, empty_type: str = "Point") -> bytes:
    """A GeoPackage with one layer (EPSG:4326); features without geometry cannot be written."""
    from pyogrio.raw import write

    if any(f.get("geometry") is None for f in feats):
        raise BadInput("some rows have no geometry (e.g. departments, unlocated cases): use csv or xlsx",
                       field="format")
    cols = _columns(feats)
    flat = [_flat(f["properties"]) for f in feats]
    data = [np.asarray([_gpkg_value(p.get(c)) for p in flat], dtype=object) for c in cols]
    geoms = np.asarray([shapely.to_wkb(shape(f["geometry"])) for f in feats], dtype=object)
    kinds = {f["geometry"]["type"] for f in feats}
    gtype = "Point" if kinds == {"Point"} else ("MultiPolygon" if kinds else empty_type)
    if not cols:
        cols, data = ["id"], [np.asarray([str(f.get("id")) for f in feats], dtype=object)]
    fd, path = tempfile.mkstemp(suffix=".gpkg")
    os.close(fd)
    os.unlink(path)
    try:
        write(path, geoms, data, cols, layer=layer, driver="GPKG", geometry_type=gtype, crs="EPSG:4326",
              promote_to_multi=gtype == "MultiPolygon")
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _gpkg_value(v):
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def render(feats: list[dict], fmt: str, layer: str, empty_type: str = "Point") -> bytes:
    """The features in one of FORMATS."""
    if fmt == "csv":
        return to_csv(feats)
    if fmt == "xlsx":
        return to_xlsx(feats, layer)
    if fmt == "geojson":
        return to_geojson(feats)
    if fmt == "gpkg":
        return to_gpkg(feats, layer, empty_type)
    raise BadInput(f"format must be one of {', '.join(FORMATS)}", field="format")
