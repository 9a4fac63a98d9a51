"""Geography API: point → grid (/api/locate), address text → standard address (/api/geocode), and
point → nearest standard address (/api/reverse). Handlers parse, call one domain function, serialize.

Statuses: 400 bad numbers / CRS / swapped lon-lat (field says which), 404 nothing loaded or no address
near, 422 a valid point far outside coverage (code far_outside_coverage). See docs/locate.md.
"""

from __future__ import annotations

import threading

from flask import Blueprint, current_app, jsonify, request

from gis.errors import BadInput, NotFound

bp = Blueprint("geo", __name__)

_GAZ_KEY = "gridgov_gazetteer"
_gaz_lock = threading.Lock()


def db():
    """The app's Database."""
    return current_app.extensions["gridgov_db"]


def _arg(name: str) -> str | None:
    v = request.args.get(name)
    return v if v is not None and v.strip() != "" else None


def _point_args() -> tuple[str, str, str | None]:
    """(x, y, crs) from lon/lat or x/y query arguments (not both)."""
    lon, lat, x, y = _arg("lon"), _arg("lat"), _arg("x"), _arg("y")
    if (lon is not None or lat is not None) and (x is not None or y is not None):
        raise BadInput("请只给出 lon/lat 或 x/y 其中一组坐标", field="x")
    if x is not None or y is not None:
        if x is None or y is None:
            raise BadInput("投影坐标需要同时给出 x 和 y", field="x" if x is None else "y")
        return x, y, _arg("crs")
    if lon is None:
        raise BadInput("缺少参数 lon (经度)", field="lon")
    if lat is None:
        raise BadInput("缺少参数 lat (纬度)", field="lat")
    return lon, lat, _arg("crs")


def _generation_arg() -> int | None:
    raw = _arg("generation")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadInput("generation 必须是整数", field="generation") from None


@bp.get("/api/locate")
def api_locate():
    """The grid covering a point and its whole chain (grid, village … city, centers, officer, chiefs)."""
    from grids.locate import locate

    x, y, crs = _point_args()
    return jsonify(locate(db(), x, y, crs=crs or "EPSG:4326", generation=_generation_arg()))


def gazetteer():
    """The app's Gazetteer of the active generation, built once and rebuilt when the generation changes."""
    from grids.geocode import Gazetteer
    from grids.store import gazetteer_rows

    row = db().fetchone("SELECT id FROM generation WHERE active")
    if row is None:
        raise NotFound("尚未加载网格数据 (no active generation)")
    gen = row["id"]
    cached = current_app.extensions.get(_GAZ_KEY)
    if cached and cached[0] == gen:
        return cached[1]
    with _gaz_lock:
        cached = current_app.extensions.get(_GAZ_KEY)
        if cached and cached[0] == gen:
            return cached[1]
        gaz = Gazetteer.from_rows(*gazetteer_rows(db(), gen))
        current_app.extensions[_GAZ_KEY] = (gen, gaz)
        return gaz


@bp.get("/api/geocode")
def api_geocode():
    """Address text → standard address and grid, with confidence, rivals and reasons."""
    from grids.geocode import geocode

    q = _arg("q")
    if q is None:
        raise BadInput("缺少参数 q (地址文本)", field="q")
    if len(q) > 200:
        raise BadInput("地址文本过长 (最多 200 字)", field="q")
    try:
        limit = int(_arg("limit") or 5)
    except ValueError:
        raise BadInput("limit 必须是整数", field="limit") from None
    if not 0 <= limit <= 20:
        raise BadInput("limit 必须在 0 到 20 之间", field="limit")
    return jsonify(geocode(gazetteer(), q, limit=limit).to_dict())


@bp.get("/api/reverse")
def api_reverse():
    """Point → the nearest standard address (within max_m metres, default 200)."""
    from grids.geocode import reverse_geocode
    from grids.locate import parse_point

    x, y, crs = _point_args()
    lon, lat, original = parse_point(x, y, crs or "EPSG:4326")
    try:
        max_m = float(_arg("max_m") or 200)
    except ValueError:
        raise BadInput("max_m 必须是数字(米)", field="max_m") from None
    if not 0 < max_m <= 5000:
        raise BadInput("max_m 必须在 0 到 5000 米之间", field="max_m")
    res = reverse_geocode(gazetteer(), lon, lat, max_distance_m=max_m)
    if res is None:
        raise NotFound(f"{max_m:g} 米内没有标准地址", field="lon")
    out = res.to_dict()
    out["input"] = original
    out["wgs84"] = {"lon": lon, "lat": lat}
    return jsonify(out)
