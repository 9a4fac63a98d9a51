"""Import and export of a city's geography: what a GIS office hands over, and layers QGIS opens.

Boundaries come from GeoPackage, zipped Shapefile or GeoJSON (pyogrio), in any CRS pyproj knows or
GCJ-02/BD-09 by name; people, centers, departments and standard addresses from CSV (UTF-8 or GBK) or
XLSX. Column names are documented in docs/import-formats.md; Chinese aliases are accepted. Readers
return plain dicts with shapely geometries in WGS84, the same shape fixtures.city produces, so the
same validation and the same writers (grids.store) serve the demo city and a real one.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import shapely

from gis.coords import CHINA_BBOX, geometry_to_wgs84, normalize_crs_name, to_wgs84
from gis.db import copy_rows
from gis.errors import BadInput, Unprocessable
from grids import store
from grids.addrnorm import group_number
from grids.gazetteer import split_names
from grids.validate import ERROR, WARNING, Report, check_staff, expected_level, validate

REGION_LEVELS = ("city", "county", "township", "village")
GRID_TYPES = ("社区", "乡村", "专属")
DEFAULT_STAFF_ROLES = (
    {"role": "grid_officer", "label": "网格员", "applies_to": "all", "is_officer": True, "sort": 1},
    {"role": "grid_chief", "label": "网格长", "applies_to": "all", "is_officer": False, "sort": 2},
    {"role": "police_chief", "label": "网格警长", "applies_to": "社区", "is_officer": False, "sort": 3},
    {"role": "building_chief", "label": "楼栋长", "applies_to": "社区", "is_officer": False, "sort": 4},
    {"role": "villager_rep", "label": "村民代表", "applies_to": "乡村", "is_officer": False, "sort": 5},
)

# canonical column -> accepted spellings (compared lower-cased, spaces/underscores removed).
# Shapefile truncates field names to 10 characters, hence parent_cod / village_co.
ALIASES = {
    "code": ("code", "编码", "代码", "区划代码", "网格编码", "地址编码", "人员编码", "工号", "中心编码", "部门编码"),
    "name": ("name", "名称", "姓名", "网格名称", "区划名称", "路名", "道路名称"),
    "level": ("level", "层级", "级别"),
    "parent_code": ("parent_code", "parent_cod", "parent", "上级编码", "上级代码", "上级区划代码"),
    "short_name": ("short_name", "short_nam", "简称"),
    "kind": ("kind", "类别", "类型", "部门类型"),
    "urban": ("urban", "城镇", "是否城镇"),
    "grid_type": ("grid_type", "网格类型"),
    "village_code": ("village_code", "village_co", "所属社区编码", "社区编码", "村社区编码", "所属村社区编码"),
    "phone": ("phone", "电话", "手机", "联系电话"),
    "role": ("role", "角色", "职务"),
    "grid_code": ("grid_code", "所属网格编码", "所属网格", "网格编码"),
    "region_code": ("region_code", "region_cod", "辖区编码", "所属区划编码", "区划编码"),
    "lon": ("lon", "lng", "x", "经度"),
    "lat": ("lat", "y", "纬度"),
    "crs": ("crs", "坐标系"),
    "full_text": ("full_text", "标准地址", "地址", "地址全称"),
    "road": ("road", "道路", "街路巷"),
    "door_no": ("door_no", "门牌号", "门牌"),
    "compound": ("compound", "小区", "小区名称"),
    "building": ("building", "楼栋", "楼号", "楼栋号"),
    "unit": ("unit", "单元", "单元号"),
    "village_group": ("village_group", "village_gr", "组", "村民小组", "村组", "组号"),
    "natural_village": ("natural_village", "natural_vi", "自然村", "自然屯", "屯"),
    "aliases": ("aliases", "alias", "别名", "曾用名", "旧名", "原名称"),
    "old_names": ("old_names", "old_name", "旧路名", "原路名"),
    "county_code": ("county_code", "county_cod", "所属县区编码", "县区编码", "区县编码"),
}
# Per table: the columns it accepts (the first ones required).
TABLES = {
    "staff": (("code", "name", "role"), ("phone", "grid_code")),
    "centers": (("code", "name", "level", "region_code", "lon", "lat"), ("phone", "crs")),
    "departments": (("code", "name", "kind", "level", "region_code"), ("phone",)),
    "roads": (("name", "county_code"), ("aliases", "old_names")),
    "addresses": (("code", "full_text", "lon", "lat"),
                  ("road", "door_no", "compound", "building", "unit", "village_group", "natural_village", "grid_code",
                   "crs")),
}
REGION_COLUMNS = ("code", "name", "level", "parent_code", "short_name", "kind", "urban", "aliases")
GRID_COLUMNS = ("code", "name", "grid_type", "village_code")
LAYER_LEVEL = {"city": "city", "county": "county", "township": "township", "village": "village",
               "市": "city", "县区": "county", "县": "county", "区": "county", "乡镇": "township",
               "乡镇街道": "township",
               "街道": "township", "村社区": "village", "社区": "village", "村": "village"}
GRID_LAYER_NAMES = ("grid", "grids", "网格")
LEVEL_WORDS = {"市": "city", "县": "county", "区": "county", "县区": "county", "县级": "county", "乡镇": "township",
               "乡": "township", "镇": "township", "街道": "township", "乡镇街道": "township", "村": "village",
               "社区": "village", "村社区": "village"}


def _key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "").replace("_", "").replace("-", "")


_ALIAS_INDEX = {_key(a): canon for canon, names in ALIASES.items() for a in names}


def canonical_columns(columns, wanted, where: str, required=()) -> dict[str, str]:
    """Map source column names to canonical ones; BadInput naming the file when a required one is missing."""
    out: dict[str, str] = {}
    for col in columns:
        canon = _ALIAS_INDEX.get(_key(col))
        if canon in wanted and canon not in out.values():
            out[col] = canon
    missing = [c for c in required if c not in out.values()]
    if missing:
        raise BadInput(f"{where}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, columns))}); "
                       f"see docs/import-formats.md", field=missing[0])
    return out


def as_code(v) -> str:
    """A code cell as text: 990101001001 read as a number stays 990101001001, not 9.9e11."""
    if v is None:
        return ""
    if isinstance(v, float):
        if np.isnan(v):
            return ""
        if v.is_integer():
            return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    s = str(v).strip()
    return s[:-2] if s.endswith(".0") and s[:-2].isdigit() else s


def as_text(v) -> str:
    """A text cell, None/NaN → ''."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return as_code(v) if isinstance(v, (int, float, np.integer)) else str(v).strip()


def _bool(v) -> bool:
    return as_text(v).lower() in ("1", "true", "t", "yes", "y", "是", "城镇")


# --------------------------------------------------------------------------------------------
# boundaries


def dataset_path(path) -> str:
    """The path pyogrio opens: zipped shapefiles through /vsizip/."""
    p = str(path)
    if not os.path.exists(p):
        raise BadInput(f"file not found: {p}", field="path")
    if p.lower().endswith(".zip") and not p.startswith("/vsizip/"):
        return "/vsizip/" + os.path.abspath(p)
    return p


def list_layers(path) -> list[str]:
    """Layer names of a vector dataset."""
    import pyogrio

    try:
        return [str(n) for n in pyogrio.list_layers(dataset_path(path))[:, 0]]
    except Exception as e:  # noqa: BLE001 - GDAL errors become one actionable line
        raise BadInput(f"cannot open {path} as GeoPackage/Shapefile/GeoJSON: {e}", field="path") from None


DENSIFY_M = 50.0  # longest edge (m) of a projected delivery before it is reprojected to lon/lat


def _layer_types(path) -> list[tuple[str, str | None]]:
    """(layer name, geometry type) of a vector dataset."""
    import pyogrio

    try:
        return [(str(n), t) for n, t in pyogrio.list_layers(dataset_path(path))]
    except Exception as e:  # noqa: BLE001
        raise BadInput(f"cannot open {path} as GeoPackage/Shapefile/GeoJSON: {e}", field="path") from None


def read_layer(path, layer: str | None = None, crs: str | None = None,
               extent=None) -> tuple[list[dict], np.ndarray, str]:
    """Read one layer: (attribute rows, WGS84 geometries, source CRS name)."""
    rows, geoms, source, _ = read_layer_native(path, layer, crs, extent)
    return rows, geoms, source


def read_layer_native(path, layer: str | None = None, crs: str | None = None, extent=None):
    """Read one layer: (rows, WGS84 geometries, source CRS, geometries as delivered or None).

    A delivery in a metric projected CRS is densified there (edges at most DENSIFY_M) before its vertices are
    reprojected, so a straight edge stays on its true course in lon/lat; its native geometries are returned
    too, so validation can run on the coordinates as delivered (grids.validate)."""
    from pyogrio.raw import read

    from grids.validate import metric_crs

    src = dataset_path(path)
    where = f"{path}" + (f" layer {layer}" if layer else "")
    try:
        meta, _, geoms, fields = read(src, layer=layer, read_geometry=True)
    except Exception as e:  # noqa: BLE001
        raise BadInput(f"cannot read {where}: {e}", field="path") from None
    names = list(meta["fields"])
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*fields, strict=True)] if names else \
        [{} for _ in range(len(geoms))]
    geoms = shapely.from_wkb(geoms)
    file_crs = meta.get("crs")
    if crs:
        source = normalize_crs_name(crs)
    elif file_crs:
        source = normalize_crs_name(file_crs)
    else:
        raise BadInput(f"{where} has no CRS (no .prj?): pass --crs, e.g. --crs EPSG:4490 or --crs GCJ-02",
                       field="crs")
    geoms = shapely.force_2d(geoms)
    native = None
    if metric_crs(source):
        native = np.asarray(shapely.segmentize(geoms, DENSIFY_M), dtype=object)
        geoms = native
    if source != "EPSG:4326":
        geoms = geometry_to_wgs84(geoms, source)
    _check_in_china(geoms, where, source, extent)
    return rows, np.asarray(geoms, dtype=object), source, native


def parse_extent(raw: str | None) -> tuple[float, float, float, float] | None:
    """`minlon,minlat,maxlon,maxlat` (the --extent option) → a bbox, or None."""
    if not raw:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in str(raw).split(","))
    except ValueError:
        raise BadInput("extent must be minlon,minlat,maxlon,maxlat in degrees", field="extent") from None
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise BadInput("extent must be minlon,minlat,maxlon,maxlat with min < max, in degrees", field="extent")
    return x0, y0, x1, y1


def city_extent(db, margin_deg: float = 0.05) -> tuple[float, float, float, float] | None:
    """The configured city's own extent (its loaded regions, active generation) with a margin, or None."""
    r = db.fetchone("SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM (SELECT ST_Extent(geom) e "
                    "FROM region WHERE generation = (SELECT id FROM generation WHERE active)) s")
    if r is None or r["x0"] is None:
        return None
    return r["x0"] - margin_deg, r["y0"] - margin_deg, r["x1"] + margin_deg, r["y1"] + margin_deg


def _check_in_china(geoms, where: str, source: str, extent=None) -> None:
    """Data must lie in the city's extent when one is known (which also catches another city's file), else in
    China (the default deployment; a city elsewhere passes --extent)."""
    ok = [g for g in geoms if g is not None and not g.is_empty]
    if not ok:
        return
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(ok, dtype=object))
    span = f"read as {source}, the data spans lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}"
    if extent is not None:
        b = extent
        if x0 < b[0] or x1 > b[2] or y0 < b[1] or y1 > b[3]:
            raise BadInput(f"{where}: {span}, outside the city's extent lon {b[0]:.4f}..{b[2]:.4f}, lat "
                           f"{b[1]:.4f}..{b[3]:.4f} — another city's file, wrong CRS or swapped axes? (pass --crs, or "
                           f"--extent for a different city)", field="crs")
        return
    b = CHINA_BBOX
    if x0 < b[0] or x1 > b[2] or y0 < b[1] or y1 > b[3]:
        raise BadInput(f"{where}: {span}, outside China — wrong CRS or swapped axes? pass --crs; a city outside "
                       f"China passes its extent with --extent minlon,minlat,maxlon,maxlat", field="crs")


def _polygonal(geom, where: str):
    if geom is None:
        raise BadInput(f"{where}: feature has no geometry", field="geom")
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    raise BadInput(f"{where}: geometry is a {geom.geom_type}, expected Polygon/MultiPolygon", field="geom")


# Words that name a layer's level, checked in this order (内 "subdistrict" before "district", 社区 before 区).
_LAYER_WORDS = (
    ("grid", ("grid", "网格")),
    ("township", ("township", "subdistrict", "town", "street", "乡镇", "街道", "镇", "乡")),
    ("village", ("village", "community", "communities", "hamlet", "村", "社区", "居委")),
    ("regions", ("region", "admin", "boundar", "division", "区划", "行政区", "边界")),  # level from column/codes
    ("county", ("county", "counties", "district", "区县", "县区", "县", "区", "旗")),
    ("city", ("city", "cities", "prefecture", "地级", "市")),
)


def _layer_kind(name: str) -> str | None:
    """'grid', a region level, or None for a layer name that says neither (counties, 乡镇街道界, 村界 …)."""
    k = _key(name)
    if k in LAYER_LEVEL:
        return LAYER_LEVEL[k]
    for kind, words in _LAYER_WORDS:
        if any(w in k for w in words):
            return kind
    return None


def _level_of_layer(name: str) -> str | None:
    kind = _layer_kind(name)
    return kind if kind in REGION_LEVELS else None


def _is_grid_layer(name: str) -> bool:
    return _key(name) in GRID_LAYER_NAMES or _layer_kind(name) == "grid"


def _native(native, i: int, source: str) -> dict:
    """The delivered geometry of feature i (1-based) for validation in its own CRS, when there is one."""
    if native is None or native[i - 1] is None:
        return {}
    return {"geom_native": _polygonal(native[i - 1], "native"), "crs_native": source}


def read_regions(path, layer: str | None = None, crs: str | None = None, skip_layers=(), extent=None) -> list[dict]:
    """Regions from one layer (with a level column, or levels from the codes) or from one layer per level.

    Every layer is used or reported: a layer whose name says neither a level nor grids is an error naming it
    (pass `layer`, or list it in `skip_layers` to leave it out on purpose)."""
    names = list_layers(path)
    if not layer:  # point and line layers (centers, addresses, roads) are not boundaries
        names = [n for n, t in _layer_types(path) if "polygon" in (t or "polygon").lower()] or names
    if layer:
        layers = [layer]
    else:
        layers = [n for n in names if not _is_grid_layer(n) and _layer_kind(n) is not None]
        unknown = [n for n in names if n not in skip_layers and _layer_kind(n) is None]
        if not layers and len(names) == 1:
            layers, unknown = names, []
        if unknown:
            raise BadInput(f"{path}: layer(s) {', '.join(unknown)} name no level (市/县区/乡镇街道/村社区, "
                           f"city/counties/townships/villages/communities) and no grids — rename them, choose one "
                           f"with --layer, or leave them out with --skip-layer", field="layer")
        if not layers:
            raise BadInput(f"{path}: no region layer among {', '.join(names)} (use --layer)", field="layer")
    out = []
    for name in layers:
        rows, geoms, source, native = read_layer_native(path, name if len(list_layers(path)) > 1 or layer else None,
                                                        crs, extent)
        where = f"{path} layer {name}"
        cols = canonical_columns(list(rows[0]) if rows else [], REGION_COLUMNS, where, required=("code",))
        layer_level = _level_of_layer(name)
        for i, (row, geom) in enumerate(zip(rows, geoms, strict=True), start=1):
            r = {c: row[src] for src, c in cols.items()}
            code = as_code(r.get("code"))
            level = LEVEL_WORDS.get(as_text(r.get("level")), as_text(r.get("level")).lower()) or layer_level \
                or expected_level(code)
            if level not in REGION_LEVELS:
                raise BadInput(f"{where} feature {i} (code {code!r}): level {r.get('level')!r} unknown; use "
                               f"city/county/township/village (市/县区/乡镇/村社区)", field="level")
            out.append(dict(code=code, level=level, name=as_text(r.get("name")) or code,
                            short_name=as_text(r.get("short_name")), parent_code=as_code(r.get("parent_code")) or None,
                            kind=as_text(r.get("kind")), urban=_bool(r.get("urban")),
                            aliases=split_names(as_text(r.get("aliases"))),
                            geom=_polygonal(geom, f"{where} feature {i} (code {code})"),
                            **_native(native, i, source)))
    return out


def read_grids(path, layer: str | None = None, crs: str | None = None, extent=None) -> list[dict]:
    """Grids from a layer named grid/grids/网格 (or the only layer, or `layer`)."""
    names = list_layers(path)
    if layer is None:
        hits = [n for n in names if _is_grid_layer(n)]
        layer = hits[0] if hits else (names[0] if len(names) == 1 else None)
        if layer is None:
            raise BadInput(f"{path} has layers {', '.join(names)}: say which holds the grids with --layer",
                           field="layer")
    rows, geoms, source, native = read_layer_native(path, layer if len(names) > 1 else None, crs, extent)
    where = f"{path} layer {layer}"
    columns = list(rows[0]) if rows else []
    cols = canonical_columns(columns, GRID_COLUMNS, where, required=("code",))
    if "grid_type" not in cols.values():  # a grid layer's kind/类型/类别 column is its grid type
        kind = canonical_columns(columns, ("kind",), where)
        cols.update({src: "grid_type" for src in kind})
    out = []
    for i, (row, geom) in enumerate(zip(rows, geoms, strict=True), start=1):
        r = {c: row[src] for src, c in cols.items()}
        code = as_code(r.get("code"))
        village = as_code(r.get("village_code")) or code[:12]
        raw = as_text(r.get("grid_type"))
        gtype = grid_type_of(raw) if raw else "社区"
        out.append(dict(code=code, name=as_text(r.get("name")) or code, grid_type=gtype, village_code=village,
                        geom=_polygonal(geom, f"{where} feature {i} (code {code})"), **_native(native, i, source),
                        **({} if raw else {"grid_type_defaulted": True})))
    return out


_GRID_TYPE_WORDS = (("专属", ("专属", "专业", "exclusive", "special")),
                    ("乡村", ("乡村", "农村", "村", "rural", "village")),
                    ("社区", ("社区", "城市", "城镇", "居民", "community", "urban")))


def grid_type_of(raw: str) -> str:
    """社区/乡村/专属 from the common spellings (社区网格, 乡村网格, 农村网格, 专属网格, rural …); other values are
    returned as given, for grid_type_findings to report."""
    k = _key(raw)
    for gtype, words in _GRID_TYPE_WORDS:
        if any(w in k for w in words):
            return gtype
    return raw


def grid_type_findings(grids: list[dict]) -> Report:
    """Grid types outside 社区/乡村/专属 (the database refuses them) and grids typed 社区 for want of a column."""
    rep = Report()
    defaulted = [g["code"] for g in grids if g.get("grid_type_defaulted")]
    if defaulted:
        rep.add("defaulted_value", WARNING, defaulted[:20],
                f"{len(defaulted)} 个网格没有网格类型 (grid_type/网格类型/kind 列)，按 社区 导入")
    for g in grids:
        if g["grid_type"] not in GRID_TYPES:
            rep.add("bad_value", ERROR, [g["code"]],
                    f"网格 {g['code']} 的网格类型 {g['grid_type']!r} 应为 社区/乡村/专属")
    return rep


# --------------------------------------------------------------------------------------------
# tables


def read_table(path, sheet: str | None = None) -> list[dict]:
    """Rows of a CSV (UTF-8 with or without BOM, or GBK) or XLSX file as dicts of raw cells."""
    p = Path(path)
    if not p.exists():
        raise BadInput(f"file not found: {p}", field="path")
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(p, read_only=True, data_only=True)
        ws = wb[sheet] if sheet else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = [as_text(h) for h in next(it, [])]
        rows = [dict(zip(header, r, strict=False)) for r in it if any(c not in (None, "") for c in r)]
        wb.close()
        return rows
    if suffix in (".csv", ".txt"):
        raw = p.read_bytes()
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise BadInput(f"{p}: not UTF-8 or GBK text", field="path")
        return [r for r in csv.DictReader(io.StringIO(text)) if any((v or "").strip() for v in r.values())]
    raise BadInput(f"{p}: expected .csv or .xlsx", field="path")


def read_records(kind: str, path, crs: str | None = None, sheet: str | None = None, extent=None) -> list[dict]:
    """Read staff/centers/departments/addresses into canonical dicts (points converted to WGS84)."""
    if kind not in TABLES:
        raise BadInput(f"unknown table {kind!r}: one of {', '.join(TABLES)}", field="kind")
    required, optional = TABLES[kind]
    rows = read_table(path, sheet)
    cols = canonical_columns(list(rows[0]) if rows else required, set(required) | set(optional), str(path),
                             required=required)
    out = []
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        r = {c: row.get(src) for src, c in cols.items()}
        rec = {c: (as_code(r.get(c)) if c.endswith("code") or c == "phone" else as_text(r.get(c)))
               for c in (*required, *optional) if c not in ("lon", "lat")}
        rec["_row"] = i
        if kind == "addresses":  # stored the way the geocoder reads a query ("709号" → 709, "3幢" → 3)
            from grids.addrnorm import building_number, door_number

            rec["door_no"], rec["building"] = door_number(rec.get("door_no")), building_number(rec.get("building"))
        if "lon" in required:
            try:
                x, y = float(as_text(r.get("lon"))), float(as_text(r.get("lat")))
            except ValueError:
                raise BadInput(f"{path} row {i} (code {rec.get('code')}): lon/lat {r.get('lon')!r},{r.get('lat')!r} "
                               f"are not numbers", field="lon") from None
            point_crs = rec.get("crs") or crs or "EPSG:4326"
            lon, lat = to_wgs84(x, y, point_crs)
            rec["lon"], rec["lat"] = float(lon), float(lat)
            rec["orig_crs"] = normalize_crs_name(point_crs)
            rec["geom"] = shapely.Point(rec["lon"], rec["lat"])
        out.append(rec)
    if kind in ("centers", "addresses") and out:
        _check_in_china([r["geom"] for r in out], str(path), "the given CRS", extent)
    return out


def check_records(kind: str, records: list[dict], regions: list[dict], grids: list[dict],
                  roles: list[dict] | None = None) -> Report:
    """Validate reference rows against the active geography; fills addresses' grid/village/township/county."""
    rep = Report(checked={kind: len(records)})
    seen: dict[str, int] = {}
    for r in records:
        code = r.get("code", "")
        where = f"第 {r['_row']} 行 ({code or r.get('name') or '无编码'})"
        if kind == "roads":
            pass              # identified by (name, county_code), checked below
        elif not code:
            rep.add("missing_value", ERROR, [], f"{where}: 编码为空")
        elif code in seen:
            rep.add("duplicate_code", ERROR, [code], f"{where}: 编码 {code} 与第 {seen[code]} 行重复")
        else:
            seen[code] = r["_row"]
        for c in TABLES[kind][0]:
            if c not in ("lon", "lat") and not r.get(c):
                rep.add("missing_value", ERROR, [code], f"{where}: {c} 为空")
    region_by_code = {x["code"]: x for x in regions}
    if kind in ("centers", "departments"):
        for r in records:
            reg = region_by_code.get(r.get("region_code"))
            where = f"第 {r['_row']} 行 ({r.get('code')})"
            if r.get("level") and r["level"] not in REGION_LEVELS:
                r["level"] = LEVEL_WORDS.get(r["level"], r["level"])
            if r.get("level") not in REGION_LEVELS:
                rep.add("bad_value", ERROR, [r.get("code")],
                        f"{where}: 层级 {r.get('level')!r} 应为 city/county/township/village")
            if reg is None:
                rep.add("unknown_region", ERROR, [r.get("code"), r.get("region_code")],
                        f"{where}: 辖区编码 {r.get('region_code')} 不在当前边界中")
            elif kind == "centers" and not reg["geom"].covers(r["geom"]):
                rep.add("outside_region", WARNING, [r["code"], reg["code"]],
                        f"{where}: 综治中心不在其辖区“{reg['name']}”内", [r["lon"], r["lat"]])
    if kind == "roads":
        seen_roads: dict[tuple, int] = {}
        for r in records:
            r["aliases"], r["old_names"] = split_names(r.get("aliases")), split_names(r.get("old_names"))
            where = f"第 {r['_row']} 行 ({r.get('name')})"
            key = (r.get("name"), r.get("county_code"))
            if key in seen_roads:
                rep.add("duplicate_code", ERROR, [r.get("name")], f"{where}: 与第 {seen_roads[key]} 行重复")
            seen_roads[key] = r["_row"]
            reg = region_by_code.get(r.get("county_code"))
            if reg is None or reg["level"] != "county":
                rep.add("unknown_region", ERROR, [r.get("name"), r.get("county_code")],
                        f"{where}: 县区编码 {r.get('county_code')} 不在当前边界中")
    if kind == "addresses":
        _locate_addresses(rep, records, grids)
        for r in records:
            if r.get("village_group"):
                # 三组 / 第三村民小组 / 3社 / 3 → "3"
                n = group_number(r["village_group"])
                if n is None:
                    rep.add("bad_value", ERROR, [r.get("code")], f"第 {r['_row']} 行 ({r.get('code')}): "
                            f"村民小组 {r['village_group']!r} 应为 3、三组、第三村民小组 等")
                else:
                    r["village_group"] = n
    if kind == "staff":
        role_rows = roles or list(DEFAULT_STAFF_ROLES)
        by_label = {x["label"]: x["role"] for x in role_rows}
        for r in records:
            r["role"] = by_label.get(r["role"], r["role"])
        rep.extend(check_staff({g["code"] for g in grids}, records, role_rows))
    return rep


def _locate_addresses(rep: Report, records: list[dict], grids: list[dict]) -> None:
    """Point-in-grid (covers, smallest code on shared edges) for every address; check given grid codes."""
    from shapely.strtree import STRtree

    codes = [g["code"] for g in grids]
    tree = STRtree([g["geom"] for g in grids])
    pts = [r["geom"] for r in records]
    found: dict[int, str] = {}
    if pts and codes:
        pi, gi = tree.query(pts, predicate="intersects")
        for p, g in zip(pi, gi, strict=True):
            if p not in found or codes[g] < found[p]:
                found[int(p)] = codes[g]
    known = set(codes)
    for i, r in enumerate(records):
        where = f"第 {r['_row']} 行 ({r.get('code')})"
        hit = found.get(i)
        given = r.get("grid_code")
        if given:
            if given not in known:
                rep.add("unknown_grid", ERROR, [r["code"], given], f"{where}: 网格 {given} 不在当前边界中",
                        [r["lon"], r["lat"]])
            elif hit != given:
                rep.add("outside_grid", WARNING, [r["code"], given],
                        f"{where}: 坐标不在所填网格 {given} 内（落在 {hit or '任何网格之外'}）", [r["lon"], r["lat"]])
        elif hit is None:
            rep.add("outside_grid", ERROR, [r["code"]], f"{where}: 坐标不在任何网格内，无法确定所属网格",
                    [r["lon"], r["lat"]])
        grid = given or hit or ""
        r["grid_code"] = grid
        r["village_code"], r["township_code"], r["county_code"] = grid[:12], grid[:9], grid[:6]


# --------------------------------------------------------------------------------------------
# writing


def _check_commit(report: Report, what: str) -> None:
    if not report.ok:
        n = len(report.errors)
        raise Unprocessable(f"{what}: {n} error(s), nothing written — fix the data or run without --commit to "
                            f"see the report", details=report.to_dict())


def import_boundaries(db, regions: list[dict], grids: list[dict], source: str, commit: bool = False,
                      activate: bool = False, tol_m2: float | None = None, progress=None,
                      tol_width_m: float | None = None):
    """Validate boundaries; with commit write them as a new generation (one transaction), optionally activate.

    Returns (report, generation or None, relocation or None). Refuses (Unprocessable) to commit invalid data.
    """
    from grids.generations import relocate_open_cases

    progress = progress or (lambda msg: None)
    progress(f"validating {len(regions):,} regions and {len(grids):,} grids")
    kw = {} if tol_m2 is None else {"tol_m2": tol_m2}
    if tol_width_m is not None:
        kw["tol_width_m"] = tol_width_m
    report = validate(regions, grids, **kw).extend(grid_type_findings(grids))
    if not commit:
        return report, None, None
    _check_commit(report, f"boundaries from {source}")
    relocation = None
    with db.connection() as conn, conn.cursor() as cur:
        gen = store.create_generation(cur, source, note=f"{len(regions)} regions, {len(grids)} grids")
        progress(f"writing generation {gen}: {len(regions):,} regions and {len(grids):,} grids (COPY)")
        store.write_boundaries(cur, gen, regions, grids)
        if activate:
            progress(f"activating generation {gen} and relocating open cases")
            relocation = relocate_open_cases(cur, gen)
    return report, gen, relocation


_UPSERT = {
    "staff": ("staff", ["code", "name", "phone", "role", "grid_code"]),
    "centers": ("center", ["code", "name", "level", "region_code", "phone", "geom"]),
    "departments": ("department", ["code", "name", "kind", "level", "region_code", "phone"]),
    "addresses": ("address", ["code", "full_text", "county_code", "township_code", "village_code", "road", "door_no",
                              "compound", "building", "unit", "village_group", "natural_village", "grid_code", "geom"]),
}


def import_records(db, kind: str, records: list[dict], commit: bool = False, progress=None) -> Report:
    """Validate reference rows against the active generation; with commit upsert them by code (one transaction)."""
    from grids.generations import load_boundaries

    progress = progress or (lambda msg: None)
    regions, grids = load_boundaries(db) if kind != "departments" else (load_boundaries(db)[0], [])
    roles = db.fetchall("SELECT role, label, is_officer FROM staff_role ORDER BY sort") if kind == "staff" else None
    progress(f"checking {len(records):,} {kind} against {len(regions):,} regions and {len(grids):,} grids")
    report = check_records(kind, records, regions, grids, roles or None)
    if not commit:
        return report
    _check_commit(report, f"{kind} import")
    if kind == "roads":
        with db.connection() as conn, conn.cursor() as cur:
            progress(f"writing {len(records):,} roads (upsert by name and county)")
            for r in records:
                cur.execute("INSERT INTO road (name, county_code, aliases, old_names) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (name, county_code) DO UPDATE SET aliases = EXCLUDED.aliases, "
                            "old_names = EXCLUDED.old_names",
                            (r["name"], r["county_code"], r["aliases"], r["old_names"]))
        return report
    table, cols = _UPSERT[kind]
    with db.connection() as conn, conn.cursor() as cur:
        if kind == "staff" and not roles:
            copy_rows(cur, "staff_role", ["role", "label", "applies_to", "is_officer", "sort"],
                      ((r["role"], r["label"], r["applies_to"], r["is_officer"], r["sort"])
                       for r in DEFAULT_STAFF_ROLES))
        cur.execute(f"CREATE TEMP TABLE import_rows (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
        progress(f"writing {len(records):,} {kind} (COPY + upsert by code)")
        copy_rows(cur, "import_rows", cols,
                  ([store.ewkb(r["geom"]) if c == "geom" else (r.get(c) or ("" if c != "grid_code" else None))
                    for c in cols] for r in records))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "code")
        col_list = ", ".join(cols)
        cur.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM import_rows "
                    f"ON CONFLICT (code) DO UPDATE SET {updates}")
    return report


# --------------------------------------------------------------------------------------------
# export

EXPORT_LAYERS = ("city", "county", "township", "village", "grid", "center", "address")


def export_layers(db, out, fmt: str = "gpkg", generation: int | None = None, progress=None) -> dict[str, int]:
    """Write regions by level, grids, centers and addresses as layers QGIS opens; returns features per layer."""
    import geopandas as gpd
    import pyogrio

    from grids.store import resolve_generation

    progress = progress or (lambda msg: None)
    if fmt not in ("gpkg", "geojson"):
        raise BadInput(f"unknown export format {fmt!r}: gpkg or geojson", field="format")
    gen = resolve_generation(db, generation)
    queries = {lvl: ("SELECT code, name, level, parent_code, short_name, kind, urban, "
                     "array_to_string(aliases, ';') AS aliases, ST_AsBinary(geom) AS wkb "
                     "FROM region WHERE generation = %(gen)s AND level = %(lvl)s ORDER BY code")
               for lvl in REGION_LEVELS}
    queries["grid"] = ("SELECT code, name, grid_type, village_code, ST_AsBinary(geom) AS wkb FROM grid "
                       "WHERE generation = %(gen)s ORDER BY code")
    queries["center"] = ("SELECT code, name, level, region_code, phone, ST_AsBinary(geom) AS wkb FROM center "
                         "ORDER BY code")
    queries["address"] = ("SELECT code, full_text, road, door_no, compound, building, unit, village_group, "
                          "natural_village, grid_code, village_code, "
                          "township_code, county_code, ST_AsBinary(geom) AS wkb FROM address ORDER BY code")
    out = Path(out)
    if fmt == "gpkg":
        if out.exists():
            out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in EXPORT_LAYERS:
        rows = db.fetchall(queries[name], {"gen": gen, "lvl": name})
        if not rows:
            continue
        geoms = shapely.from_wkb([bytes(r.pop("wkb")) for r in rows])
        df = gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4326")
        progress(f"writing layer {name}: {len(df):,} features")
        if fmt == "gpkg":
            pyogrio.write_dataframe(df, str(out), layer=name, driver="GPKG")
        else:
            pyogrio.write_dataframe(df, str(out / f"{name}.geojson"), driver="GeoJSON")
        counts[name] = len(df)
    return counts
