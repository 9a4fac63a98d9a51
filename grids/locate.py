"""Point → grid: which grid (and village, township, county, city, centers, people) covers a point.

Covers semantics with one deterministic tie-break (see docs/locate.md): a point belongs to the grids
whose polygon *covers* it (boundary included); when several do (a shared edge or vertex), the grid
with the smallest code wins. A point no grid covers is "outside", reported with the nearest grid
and its geodesic distance; beyond `max_distance_m` it is an error ("far outside coverage").

Input coordinates are checked before anything else (`parse_point`): numbers, ranges, lon/lat
swapped, projected metres passed as degrees (and degrees passed to a projected CRS), then converted
to WGS84 with gis.coords (GCJ-02 and BD-09 with the exact iterative inverse). The original input
is kept in the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gis.coords import normalize_crs_name, to_wgs84
from gis.errors import BadInput, NotFound, Unprocessable
from gis.privacy import mask_phone
from grids.store import resolve_generation

# Points farther than this from every grid are refused, not answered with a far "nearest grid".
MAX_DISTANCE_M = 50_000.0

_GEOGRAPHIC = {"EPSG:4326", "GCJ-02", "BD-09"}
_M_PER_DEG_LAT = 110_574.0      # the shortest degree of latitude (at the equator), a safe lower bound


class FarOutside(Unprocessable):
    """The point is valid but farther than the allowed distance from every grid (422)."""

    code = "far_outside_coverage"


@dataclass(frozen=True)
class Coverage:
    """The extent the loaded grids cover, used to judge 'near the city' for input checks."""

    lon0: float
    lat0: float
    lon1: float
    lat1: float

    def distance_m(self, lon: float, lat: float) -> float:
        """Approximate distance in metres from (lon, lat) to the coverage's bounding box (0 inside)."""
        if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90:
            return math.inf
        dlon = max(self.lon0 - lon, 0.0, lon - self.lon1)
        dlat = max(self.lat0 - lat, 0.0, lat - self.lat1)
        mid = math.radians(min(max(lat, self.lat0), self.lat1))
        return math.hypot(dlon * 111_320.0 * math.cos(mid), dlat * 111_000.0)


def _number(v, field: str) -> float:
    if isinstance(v, bool) or v is None:
        raise BadInput(f"{field} 必须是数字 (got {v!r})", field=field)
    try:
        f = float(str(v).strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise BadInput(f"{field} 必须是数字 (got {str(v)[:40]!r})", field=field) from None
    if not math.isfinite(f):
        raise BadInput(f"{field} 必须是有限数字 (got {v!r})", field=field)
    return f


def _is_geographic(name: str) -> bool:
    if name in _GEOGRAPHIC:
        return True
    from pyproj import CRS

    return CRS.from_user_input(name).is_geographic


def suggest_cgcs2000_zone(x: float, lon_hint: float | None = None) -> str | None:
    """The CGCS2000 3° Gauss-Krüger EPSG code an easting looks like (zone-prefixed), or from a longitude."""
    zone = int(x // 1_000_000)
    if 25 <= zone <= 45:
        return f"EPSG:{4513 + zone - 25}"
    if lon_hint is not None and 73.5 <= lon_hint <= 136.5:
        cm = int(round(lon_hint / 3.0)) * 3
        return f"EPSG:{4534 + (cm - 75) // 3}"
    return None


def _convert(x: float, y: float, name: str) -> tuple[float, float]:
    lon, lat = to_wgs84(x, y, name)
    return float(lon), float(lat)


def _swap_near(x: float, y: float, name: str, coverage: Coverage, max_distance_m: float) -> bool:
    """True when the swapped pair (y, x) lands within max_distance_m of the coverage."""
    try:
        lon, lat = _convert(y, x, name)
    except Exception:  # noqa: BLE001 - any failure means "swapping does not help"
        return False
    return coverage.distance_m(lon, lat) <= max_distance_m


def parse_point(x, y, crs: str | None = "EPSG:4326", coverage: Coverage | None = None,
                max_distance_m: float = MAX_DISTANCE_M) -> tuple[float, float, dict]:
    """Check and convert an input point to WGS84: (lon, lat, original {x, y, crs}); BadInput says what is wrong."""
    name = normalize_crs_name(crs)
    geographic = _is_geographic(name)
    fx, fy = ("lon", "lat") if geographic else ("x", "y")
    x, y = _number(x, fx), _number(y, fy)
    original = {"x": x, "y": y, "crs": name}

    if geographic:
        if abs(x) > 180 or abs(y) > 90:
            if coverage is not None and _swap_near(x, y, name, coverage, max_distance_m):
                raise BadInput(f"经纬度顺序颠倒: lon={x:g}, lat={y:g} 交换后才落在辖区内; 请按 lon, lat 顺序传入",
                               field="lat")
            if abs(x) > 1000 or abs(y) > 1000:
                zone = suggest_cgcs2000_zone(x)
                hint = f" (例如 crs={zone})" if zone else " (例如 crs=EPSG:4526..4554)"
                raise BadInput(f"坐标 ({x:g}, {y:g}) 像是投影坐标(米), 却按经纬度 {name} 传入; 请给出投影坐标系{hint}",
                               field="crs")
            if abs(y) > 90:
                raise BadInput(f"纬度 lat={y:g} 超出 ±90 范围", field="lat")
            raise BadInput(f"经度 lon={x:g} 超出 ±180 范围", field="lon")
    elif abs(x) <= 180 and abs(y) <= 90:
        raise BadInput(f"坐标 ({x:g}, {y:g}) 像是经纬度(度), 却按投影坐标系 {name} (米) 传入; 请使用 crs=EPSG:4326",
                       field="crs")

    try:
        lon, lat = _convert(x, y, name)
    except BadInput:
        raise
    except Exception:  # noqa: BLE001 - pyproj refuses points far outside the zone
        lon = lat = math.nan
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        raise BadInput(f"坐标 ({x:g}, {y:g}) 无法在 {name} 中换算为经纬度 (超出该坐标系的有效范围)", field=fx)

    if coverage is not None:
        d = coverage.distance_m(lon, lat)
        if d > max_distance_m:
            if _swap_near(x, y, name, coverage, max_distance_m):
                raise BadInput(f"经纬度(或 x/y)顺序颠倒: ({x:g}, {y:g}) 交换后才落在辖区内", field=fy)
            raise FarOutside(f"坐标远离辖区: 距网格覆盖范围约 {d / 1000:.0f} km (上限 {max_distance_m / 1000:g} km)",
                             field=fx)
    return lon, lat, original


# ------------------------------------------------------------------------------------------ SQL

# One round trip: the covering grid with the tie-break, else the nearest one (geodesic metres),
# then the grid's whole chain. The KNN `<->` on degrees only proposes a first candidate; every
# grid within that candidate's geodesic distance (bounded in degrees, conservatively) is then
# compared on geography, so the nearest is exact in metres, ties broken by code.
_LOCATE_SQL = """
WITH pt AS (
    SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g
), gen AS (
    SELECT coalesce(%(gen)s::int, (SELECT id FROM generation WHERE active)) AS id
), hit AS (
    SELECT g.code, 0.0::float8 AS distance_m
    FROM grid g
    WHERE g.generation = (SELECT id FROM gen)
      AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
    ORDER BY g.code
    LIMIT 1
), first AS (
    SELECT ST_Distance(g.geom::geography, pt.g::geography) AS d
    FROM grid g, pt
    WHERE g.generation = (SELECT id FROM gen) AND NOT EXISTS (SELECT 1 FROM hit)
    ORDER BY g.geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
    LIMIT 1
), near AS (
    SELECT g.code, ST_Distance(g.geom::geography, pt.g::geography) AS distance_m
    FROM grid g, pt, first
    WHERE g.generation = (SELECT id FROM gen)
      AND ST_DWithin(g.geom, pt.g,
                     (first.d + 1.0) / (%(m_per_deg)s * cos(radians(least(abs(%(lat)s) + 1.0, 89.0)))))
    ORDER BY distance_m, g.code
    LIMIT 1
), found AS (
    SELECT 'inside' AS status, code, distance_m FROM hit
    UNION ALL
    SELECT 'outside', code, distance_m FROM near
)
SELECT f.status, f.distance_m,
       g.code, g.name, g.grid_type, g.generation,
       v.code AS v_code, v.name AS v_name, v.kind AS v_kind,
       t.code AS t_code, t.name AS t_name, t.kind AS t_kind,
       c.code AS c_code, c.name AS c_name, c.kind AS c_kind,
       m.code AS m_code, m.name AS m_name,
       (SELECT json_agg(json_build_object('level', z.level, 'code', z.code, 'name', z.name) ORDER BY z.code)
          FROM center z WHERE z.region_code IN (v.code, t.code, c.code, m.code)) AS centers,
       (SELECT json_agg(json_build_object('code', s.code, 'role', s.role, 'label', r.label, 'is_officer', r.is_officer,
                                          'name', s.name, 'phone', s.phone) ORDER BY r.sort, s.code)
          FROM staff s JOIN staff_role r ON r.role = s.role
         WHERE s.grid_code = g.code AND s.active) AS staff,
       -- the nearest other grid when closer than near_m metres (intake's 需确认 near a boundary): index
       -- prefilter in degrees (conservative below 85°), then the exact geodesic test
       CASE WHEN %(near_m)s::float8 > 0 AND f.status = 'inside' THEN
           (SELECT min(ST_Distance(o.geom::geography, pt.g::geography)) FROM grid o, pt
             WHERE o.generation = g.generation AND o.code <> g.code
               AND o.geom && ST_Expand(pt.g, %(near_m)s::float8 * 1.2
                                             / (111000.0 * greatest(cos(radians(%(lat)s::float8)), 0.087)))
               AND ST_DWithin(o.geom::geography, pt.g::geography, %(near_m)s::float8)) END AS near_m
FROM found f
JOIN grid g ON g.code = f.code AND g.generation = (SELECT id FROM gen)
LEFT JOIN region v ON v.code = g.village_code AND v.generation = g.generation
LEFT JOIN region t ON t.code = v.parent_code AND t.generation = g.generation
LEFT JOIN region c ON c.code = t.parent_code AND c.generation = g.generation
LEFT JOIN region m ON m.code = c.parent_code AND m.generation = g.generation
"""

_COVERAGE_SQL = """
SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1
FROM (SELECT ST_Extent(geom) AS e FROM grid WHERE generation = %(gen)s) s
"""


def coverage_of(db, generation: int) -> Coverage | None:
    """The bounding box of the grids of one generation (None when it has no grids)."""
    row = db.fetchone(_COVERAGE_SQL, {"gen": generation})
    if row is None or row["x0"] is None:
        return None
    return Coverage(row["x0"], row["y0"], row["x1"], row["y1"])


def find_grid(db, lon: float, lat: float, generation: int | None, near_m: float = 0.0) -> dict | None:
    """The raw lookup row (status, grid and its chain, and `near_m`: the distance to the nearest other grid
    when closer than near_m metres) for a WGS84 point in a generation (None: the active one); None when the
    generation is empty or there is none."""
    # A prepared statement: planning this query costs more than running it.
    return db.fetchone_prepared(_LOCATE_SQL,
                                {"lon": float(lon), "lat": float(lat),
                                 "gen": None if generation is None else int(generation),
                                 "m_per_deg": _M_PER_DEG_LAT, "near_m": float(near_m)})


def _region(code, name, kind=None) -> dict | None:
    if code is None:
        return None
    out = {"code": code, "name": name}
    if kind is not None:
        out["kind"] = kind
    return out


def _shape(row: dict, original: dict, lon: float, lat: float) -> dict:
    inside = row["status"] == "inside"
    grid = {"code": row["code"], "name": row["name"], "type": row["grid_type"], "generation": row["generation"]}
    people = [{"code": s.get("code"), "role": s["role"], "label": s["label"], "name": s["name"],
               "phone": mask_phone(s["phone"])} for s in (row["staff"] or [])]
    officer = next((p for p, s in zip(people, row["staff"] or [], strict=True) if s["is_officer"]), None)
    chiefs = [p for p, s in zip(people, row["staff"] or [], strict=True) if not s["is_officer"]]
    centers = {z["level"]: {"code": z["code"], "name": z["name"]} for z in (row["centers"] or [])}
    out = {
        "status": row["status"],
        "input": original,
        "wgs84": {"lon": lon, "lat": lat},
        "grid": grid if inside else None,
        "village": None, "township": None, "county": None, "city": None,
        "centers": {}, "officer": None, "chiefs": [],
        "nearest": None,
    }
    if inside:
        out.update(village=_region(row["v_code"], row["v_name"], row["v_kind"]),
                   township=_region(row["t_code"], row["t_name"], row["t_kind"]),
                   county=_region(row["c_code"], row["c_name"], row["c_kind"]),
                   city=_region(row["m_code"], row["m_name"]),
                   centers=centers, officer=officer, chiefs=chiefs)
    else:
        out["nearest"] = {"grid_code": row["code"], "grid_name": row["name"], "generation": row["generation"],
                          "distance_m": round(float(row["distance_m"]), 1)}
    return out


def locate(db, lon, lat, crs: str | None = "EPSG:4326", generation: int | None = None,
           max_distance_m: float = MAX_DISTANCE_M, near_m: float = 0.0) -> dict:
    """Locate a point: its grid and whole governance chain, or 'outside' with the nearest grid.

    One round trip (the active generation is looked up inside the statement). With `near_m` > 0 the answer
    also carries `near_other_grid_m`: the distance to the nearest other grid when closer than that, else None.
    """
    gen = resolve_generation(db, generation) if generation is not None else None
    try:
        wlon, wlat, original = parse_point(lon, lat, crs)
    except BadInput as e:
        if e.field not in ("lon", "lat", "crs", "x", "y"):
            raise
        # Only on the error path: would swapping the two numbers land in the city?
        cov = coverage_of(db, gen if gen is not None else resolve_generation(db))
        if cov is not None:
            parse_point(lon, lat, crs, coverage=cov, max_distance_m=max_distance_m)
        raise
    row = find_grid(db, wlon, wlat, gen, near_m)
    if row is None:
        gen = resolve_generation(db, gen)  # NotFound when no generation is active
        raise NotFound(f"网格版本 {gen} 中没有网格", field="generation")
    gen = row["generation"]
    if row["status"] == "outside" and row["distance_m"] > max_distance_m:
        cov = coverage_of(db, gen)
        if cov is not None:
            parse_point(lon, lat, crs, coverage=cov, max_distance_m=max_distance_m)  # raises "swapped" if it is
        raise FarOutside(f"坐标远离辖区: 距最近网格 {row['distance_m'] / 1000:.1f} km "
                         f"(上限 {max_distance_m / 1000:g} km)", field=original_field(original["crs"]))
    out = _shape(row, original, wlon, wlat)
    if near_m > 0:
        out["near_other_grid_m"] = row["near_m"]
    return out


def original_field(crs_name: str) -> str:
    """The name of the first coordinate field for a CRS: 'lon' for geographic, 'x' for projected."""
    return "lon" if _is_geographic(crs_name) else "x"
