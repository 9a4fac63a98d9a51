"""Pages and layer endpoints of the city map."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_from_directory

from gis.errors import BadInput

bp = Blueprint("map", __name__)

# Only these built files of the npm packages are served under /vendor (never sources, maps or demos).
VENDOR = {
    "leaflet": {"dist/leaflet.js", "dist/leaflet.css"},
    "leaflet.markercluster": {"dist/leaflet.markercluster.js", "dist/MarkerCluster.css",
                              "dist/MarkerCluster.Default.css"},
    "leaflet.heat": {"dist/leaflet-heat.js"},
    "leaflet.vectorgrid": {"dist/Leaflet.VectorGrid.bundled.min.js"},
    "echarts": {"dist/echarts.min.js"},
    "@fontsource/noto-sans-sc": {"400.css", "700.css"},
    # folium's HeatMapWithTime (township review): time dimension control and heatmap.js with its Leaflet layer
    "leaflet-timedimension": {"dist/leaflet.timedimension.min.js", "dist/leaflet.timedimension.control.min.css"},
    "iso8601-js-period": {"iso8601.js"},
    "heatmap.js": {"build/heatmap.min.js", "plugins/leaflet-heatmap/leaflet-heatmap.js"},
}
# Font subsets of the weights we use (woff2 only: every browser we support reads it).
FONT_FILE = re.compile(r"^files/noto-sans-sc-[a-z0-9]+(?:-[a-z]+)?-(400|700)-normal\.woff2$")
STATIC = Path(__file__).resolve().parent / "static"
COUNTY_STYLE = "function (f) { return {color: '#b2182b', weight: 3, fill: false}; }"
TOWNSHIP_STYLE = "function (f) { return {color: '#2166ac', weight: 1.5, fill: false, dashArray: '4 3'}; }"
GRID_STYLE = ("function (f) { return {color: '#4d9221', weight: 0.6, fillColor: "
              "f.properties.grid_type === '社区' ? '#a6dba0' : '#e6f5d0', fillOpacity: 0.35}; }")


def db():
    """The app's Database."""
    return current_app.extensions["gridgov_db"]


@bp.get("/vendor/<package>/<path:path>")
@bp.get("/vendor/@<scope>/<package>/<path:path>")
def vendor(package: str, path: str, scope: str | None = None):
    """Front-end libraries installed from npm, served locally."""
    from webmap import ASSETS

    if scope is not None:
        package = f"@{scope}/{package}"
    files = VENDOR.get(package, set())
    ok = path in files or (package == "leaflet" and path.startswith("dist/images/") and ".." not in path) or (
        package == "@fontsource/noto-sans-sc" and FONT_FILE.match(path))
    if not ok:
        abort(404)
    return send_from_directory(ASSETS / package, path, max_age=86400)


@bp.get("/favicon.ico")
def favicon():
    """No icon (browsers ask for one; answer without a 404 in the console)."""
    return Response(status=204)


@bp.get("/static/<path:path>")
def static(path: str):
    """gridgov's own page scripts, styles and images."""
    return send_from_directory(STATIC, path, max_age=300)


@bp.get("/api/health")
def health():
    """Liveness plus database reachability."""
    row = db().fetchone("SELECT postgis_lib_version() AS postgis, (SELECT id FROM generation WHERE active) AS gen")
    return jsonify({"status": "ok", "postgis": row["postgis"], "generation": row["gen"]})


@bp.get("/api/layers/<layer>")
def layer(layer: str):
    """Boundary layers of the active generation as GeoJSON: region (by level) or grid; and the roads
    (the light base map). Public reference data: anyone may call it."""
    from grids.store import layer_geojson

    level = request.args.get("level")
    if layer == "region" and level not in {"city", "county", "township", "village"}:
        raise BadInput("level must be one of city, county, township, village", field="level")
    if layer not in {"region", "grid", "road"}:
        raise BadInput(f"unknown layer {layer!r}: use region, grid or road", field="layer")
    try:
        simplify = float(request.args.get("simplify", "0") or 0)
    except ValueError:
        raise BadInput("simplify must be a number of metres", field="simplify") from None
    if not 0 <= simplify <= 1000:
        raise BadInput("simplify must be between 0 and 1000 metres", field="simplify")
    if layer == "road":
        from grids.roads import road_geojson

        resp = jsonify(road_geojson(db(), simplify_m=simplify))
        resp.headers["Cache-Control"] = "max-age=300"
        return resp
    parent = request.args.get("parent") or None
    if parent is not None and not (parent.isdigit() and len(parent) <= 15):
        raise BadInput("parent must be a region or village code (digits)", field="parent")
    gen = request.args.get("generation") or None
    if gen is not None:
        if not gen.isdigit() or len(gen) > 9:
            raise BadInput("generation must be a generation number", field="generation")
        from grids.store import resolve_generation

        gen = resolve_generation(db(), int(gen))
    fc = layer_geojson(db(), layer, level=level, parent=parent, simplify_m=simplify, generation=gen)
    resp = jsonify(fc)
    resp.headers["Cache-Control"] = "max-age=300"
    return resp


@bp.get("/")
def city_map():
    """The city map: counties, townships and grids from PostGIS (全市一张网)."""
    from webmap.elements import RemoteGeoJson, TitlePanel, local_map

    row = db().fetchone(
        "SELECT name, ST_X(ST_Centroid(geom)) AS lon, ST_Y(ST_Centroid(geom)) AS lat, "
        "ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, ST_YMax(geom) y1 "
        "FROM region WHERE level = 'city' AND generation = (SELECT id FROM generation WHERE active)")
    if row is None:
        return Response("<h1>尚未加载城市数据</h1><p>请先运行 <code>./gridgov demo</code>。</p>",
                        status=503, mimetype="text/html")
    m = local_map(row["lon"], row["lat"], zoom=9)
    m.get_root().title = f"{row['name']} 网格化社会治理 · 全市一张网"
    RemoteGeoJson("/api/layers/grid?simplify=5", "网格", GRID_STYLE, "p.name + ' ' + p.code", key="grid").add_to(m)
    RemoteGeoJson("/api/layers/region?level=township&simplify=10", "乡镇街道", TOWNSHIP_STYLE,
                  key="township").add_to(m)
    RemoteGeoJson("/api/layers/region?level=county&simplify=20", "县区", COUNTY_STYLE, key="county").add_to(m)
    n = db().fetchone(
        "SELECT count(*) FILTER (WHERE level = 'county') county, count(*) FILTER (WHERE level = 'township') township,"
        " count(*) FILTER (WHERE level = 'village') village, (SELECT count(*) FROM grid g WHERE g.generation = "
        "r.generation) grid, r.generation FROM region r WHERE r.generation = (SELECT id FROM generation WHERE active) "
        "GROUP BY r.generation")
    TitlePanel(f"{row['name']} · 全市一张网",
               f"县区 {n['county']} · 乡镇街道 {n['township']} · 村社区 {n['village']} · 网格 {n['grid']}"
               f"（边界版本 {n['generation']}）").add_to(m)
    m.fit_bounds([[row["y0"], row["x0"]], [row["y1"], row["x1"]]])
    html = m.get_root().render()
    return Response(html, mimetype="text/html")
