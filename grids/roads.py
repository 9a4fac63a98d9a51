"""The city's own roads as a light base-map layer (GeoJSON), read from the `road` table."""

from __future__ import annotations


def road_geojson(db, simplify_m: float = 0.0, bbox=None) -> dict:
    """Roads with a geometry as a FeatureCollection (name and county), optionally simplified and windowed."""
    tol = simplify_m / 111_000.0
    geom_sql = "ST_Simplify(geom, %(tol)s)" if tol > 0 else "geom"
    params: dict = {"tol": tol}
    where = ["geom IS NOT NULL"]
    if bbox is not None:
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=True)))
        where.append("geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)")
    rows = db.fetchall(f"SELECT name, county_code, ST_AsGeoJSON({geom_sql}, 5)::json AS g FROM road "
                       f"WHERE {' AND '.join(where)} ORDER BY id", params)
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": r.pop("g"), "properties": r} for r in rows]}
