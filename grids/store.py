"""Writing a city's geography into PostGIS and reading its layers back.

`load_city` takes the plain-dict city produced by fixtures.city.build_city (or by an import) and writes
it as a new boundary generation with COPY, in one transaction: either all of it lands or none.
"""

from __future__ import annotations

import shapely
from shapely.geometry import MultiPolygon, Polygon

from gis.db import copy_rows


def ewkb(geom) -> str | None:
    """Hex EWKB with SRID 4326, the text form PostGIS accepts in COPY."""
    if geom is None:
        return None
    return shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True)


def as_multi(geom):
    """Polygon → MultiPolygon (columns are typed MultiPolygon)."""
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    return geom


def next_generation(cur) -> int:
    """The id the next generation will get."""
    cur.execute("SELECT coalesce(max(id), 0) + 1 FROM generation")
    return cur.fetchone()[0]


def create_generation(cur, source: str, note: str = "", activate: bool = False) -> int:
    """Insert a new boundary generation; optionally make it the active one."""
    gen = next_generation(cur)
    cur.execute("INSERT INTO generation (id, source, note) VALUES (%s, %s, %s)", (gen, source, note))
    if activate:
        activate_generation(cur, gen)
    return gen


def activate_generation(cur, gen: int) -> None:
    """Make `gen` the one active generation."""
    cur.execute("UPDATE generation SET active = false, activated_at = activated_at WHERE active AND id <> %s", (gen,))
    cur.execute("UPDATE generation SET active = true, activated_at = now() WHERE id = %s", (gen,))


def resolve_generation(db, generation: int | None = None) -> int:
    """The given generation id if it exists, else the active one; NotFound when there is none."""
    from gis.errors import NotFound

    row = db.fetchone("SELECT id FROM generation WHERE id = coalesce(%(gen)s, (SELECT id FROM generation "
                      "WHERE active))", {"gen": generation})
    if row is None:
        if generation is None:
            raise NotFound("尚未加载网格数据 (no active boundary generation: import boundaries with --commit "
                           "--activate first)")
        raise NotFound(f"网格版本 {generation} 不存在 (boundary generation {generation} does not exist)",
                       field="generation")
    return int(row["id"])


def active_generation(cur) -> int | None:
    """The active generation id, or None when nothing is loaded."""
    cur.execute("SELECT id FROM generation WHERE active")
    row = cur.fetchone()
    return row[0] if row else None


def write_boundaries(cur, gen: int, regions: list[dict], grids: list[dict]) -> None:
    """COPY regions and grids of one generation."""
    copy_rows(cur, "region", ["code", "generation", "level", "name", "short_name", "parent_code", "kind", "urban",
                              "aliases", "geom"],
              ((r["code"], gen, r["level"], r["name"], r.get("short_name") or "", r.get("parent_code"),
                r.get("kind") or "", bool(r.get("urban")), list(r.get("aliases") or []), ewkb(as_multi(r["geom"])))
               for r in regions))
    copy_rows(cur, "grid", ["code", "generation", "name", "grid_type", "village_code", "geom"],
              ((g["code"], gen, g["name"], g["grid_type"], g["village_code"], ewkb(as_multi(g["geom"])))
               for g in grids))


def write_reference(cur, city) -> None:
    """COPY roles, staff, centers, departments, roads, addresses and categories (not versioned)."""
    copy_rows(cur, "staff_role", ["role", "label", "applies_to", "is_officer", "sort"],
              ((r["role"], r["label"], r["applies_to"], bool(r.get("is_officer")), r.get("sort", 0))
               for r in city.staff_roles))
    copy_rows(cur, "staff", ["code", "name", "phone", "role", "grid_code"],
              ((s["code"], s["name"], s.get("phone") or "", s["role"], s.get("grid_code")) for s in city.staff))
    copy_rows(cur, "center", ["code", "name", "level", "region_code", "phone", "geom"],
              ((c["code"], c["name"], c["level"], c["region_code"], c.get("phone") or "", ewkb(c["geom"]))
               for c in city.centers))
    copy_rows(cur, "department", ["code", "name", "kind", "level", "region_code", "phone"],
              ((d["code"], d["name"], d["kind"], d["level"], d["region_code"], d.get("phone") or "")
               for d in city.departments))
    copy_rows(cur, "road", ["name", "county_code", "aliases", "old_names", "geom"],
              ((r["name"], r["county_code"], list(r.get("aliases") or []), list(r.get("old_names") or []),
                ewkb(r.get("geom"))) for r in city.roads))
    copy_rows(cur, "address", ["code", "full_text", "county_code", "township_code", "village_code", "road", "door_no",
                               "compound", "building", "unit", "village_group", "natural_village", "grid_code", "geom"],
              ((a["code"], a["full_text"], a["county_code"], a["township_code"], a["village_code"],
                a.get("road") or "", a.get("door_no") or "", a.get("compound") or "", a.get("building") or "",
                a.get("unit") or "", a.get("village_group") or "", a.get("natural_village") or "", a["grid_code"],
                ewkb(a["geom"])) for a in city.addresses))
    # Parents first so the self-reference holds.
    cats = sorted(city.categories, key=lambda c: (c.get("parent_code") is not None, c["code"]))
    copy_rows(cur, "category", ["code", "name", "parent_code", "dept_kind", "min_level"],
              ((c["code"], c["name"], c.get("parent_code"), c.get("dept_kind") or "", c.get("min_level") or "village")
               for c in cats))


def load_city(db, city, source: str = "demo", progress=print) -> int:
    """Write a whole city as a new, active generation in one transaction; returns the generation id."""
    with db.connection() as conn, conn.cursor() as cur:
        gen = create_generation(cur, source, note="demo city", activate=True)
        progress(f"writing {len(city.regions)} regions and {len(city.grids)} grids (generation {gen})")
        write_boundaries(cur, gen, city.regions, city.grids)
        progress(f"writing {len(city.addresses)} standard addresses, {len(city.staff)} staff, "
                 f"{len(city.centers)} centers, {len(city.departments)} departments")
        write_reference(cur, city)
        cur.execute("SELECT analyze_table('region'), analyze_table('grid'), analyze_table('address')")
    return gen


def gazetteer_rows(db, generation: int | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """Regions (of a generation, the active one by default), roads and standard addresses for grids.gazetteer."""
    gen = {"gen": generation}
    regions = db.fetchall("SELECT code, level, name, short_name, parent_code, kind, aliases FROM region "
                          "WHERE generation = coalesce(%(gen)s, (SELECT id FROM generation WHERE active)) "
                          "ORDER BY code", gen)
    roads = db.fetchall("SELECT name, county_code, aliases, old_names FROM road ORDER BY id")
    addresses = db.fetchall(
        "SELECT code, full_text, county_code, township_code, village_code, road, door_no, compound, building, unit, "
        "village_group, natural_village, grid_code, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM address ORDER BY code")
    return regions, roads, addresses


def city_loaded(db) -> bool:
    """True when some generation is active."""
    row = db.fetchone("SELECT count(*) AS n FROM generation WHERE active")
    return bool(row and row["n"])


def layer_geojson(db, layer: str, level: str | None = None, parent: str | None = None,
                  simplify_m: float = 0.0, bbox=None, generation: int | None = None) -> dict:
    """A FeatureCollection of one boundary layer ('region' by level, or 'grid') of a generation (the active
    one by default; old generations stay queryable)."""
    tol = simplify_m / 111_000.0
    geom_sql = "ST_SimplifyPreserveTopology(geom, %(tol)s)" if tol > 0 else "geom"
    params = {"tol": tol, "level": level, "parent": parent, "gen": generation}
    where = ["generation = coalesce(%(gen)s, (SELECT id FROM generation WHERE active))"]
    if bbox is not None:
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox, strict=False)))
        where.append("geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)")
    if layer == "region":
        where.append("level = %(level)s")
        if parent:
            where.append("parent_code = %(parent)s")
        sql = (f"SELECT code, name, level, kind, parent_code, ST_AsGeoJSON({geom_sql}, 6)::json AS g "
               f"FROM region WHERE {' AND '.join(where)} ORDER BY code")
    elif layer == "grid":
        if parent:
            where.append("code LIKE %(prefix)s")
            params["prefix"] = parent + "%"
        sql = (f"SELECT code, name, grid_type, village_code, ST_AsGeoJSON({geom_sql}, 6)::json AS g "
               f"FROM grid WHERE {' AND '.join(where)} ORDER BY code")
    else:
        raise ValueError(f"unknown layer {layer!r}")
    rows = db.fetchall(sql, params)
    feats = []
    for r in rows:
        g = r.pop("g")
        feats.append({"type": "Feature", "geometry": g, "properties": r})
    return {"type": "FeatureCollection", "features": feats}
