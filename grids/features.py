"""Feature collections of the governance geography, for OGC API Features and exports (no Flask here).

A collection is a whitelisted SQL source (table, key, geometry, properties, fixed filter). `items()` pages
it by a stable key order with bbox, datetime and equality filters on its properties and returns plain
GeoJSON features whose coordinates are the stored doubles exactly (WKB → shapely → JSON floats).

Collections: counties, townships, villages, grids (active generation), grids_g<N> (generation N),
centers (综治中心) and addresses (标准地址). Cases are in cases/features.py (they need the caller's scope).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import shapely
from shapely.geometry import mapping

from gis.errors import BadInput, NotFound

MAX_LIMIT = 10000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Collection:
    """A whitelisted feature source. `where` may use %(gen)s for the generation it serves."""

    id: str
    title: str
    description: str
    table: str
    key: str
    props: tuple[str, ...]
    geometry_type: str
    where: str = "true"
    generation: int | None = None      # for boundary collections: the generation served (None = active)
    temporal: str | None = None       # column the datetime parameter filters
    extra_params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "description": self.description,
                "geometry_type": self.geometry_type, "properties": list(self.props),
                "generation": self.generation, "temporal": self.temporal}


_REGION_PROPS = ("code", "name", "short_name", "parent_code", "kind", "urban", "generation")
_LEVELS = {"counties": ("county", "县（市、区）", "Counties and districts"),
           "townships": ("township", "乡镇（街道）", "Townships and streets"),
           "villages": ("village", "村（社区）", "Villages and communities")}


def _region(cid: str) -> Collection:
    level, zh, en = _LEVELS[cid]
    return Collection(cid, zh, f"{en} (active boundary generation)", "region", "code", _REGION_PROPS,
                      "MultiPolygon", where=f"level = '{level}' AND generation = %(gen)s")


def _grids(gen: int | None) -> Collection:
    cid = "grids" if gen is None else f"grids_g{gen}"
    title = "网格" if gen is None else f"网格（第 {gen} 版）"
    desc = "Governance grids of the active boundary generation" if gen is None else \
        f"Governance grids of boundary generation {gen}"
    return Collection(cid, title, desc, "grid", "code", ("code", "name", "grid_type", "village_code", "generation"),
                      "MultiPolygon", where="generation = %(gen)s", generation=gen)


STATIC = {
    **{cid: _region(cid) for cid in _LEVELS},
    "grids": _grids(None),
    "centers": Collection("centers", "综治中心", "Comprehensive-governance centers at every level", "center",
                          "code", ("code", "name", "level", "region_code", "phone"), "Point"),
    "addresses": Collection("addresses", "标准地址", "Standard addresses (一标三实)", "address", "code",
                            ("code", "full_text", "county_code", "township_code", "village_code", "road",
                             "door_no", "compound", "building", "unit", "grid_code"), "Point"),
}


def active_generation(db) -> int | None:
    row = db.fetchone("SELECT id FROM generation WHERE active")
    return row["id"] if row else None


def collections(db) -> list[Collection]:
    """Every geography collection: the static ones, then one grids_g<N> per stored generation."""
    gens = [r["id"] for r in db.fetchall("SELECT id FROM generation ORDER BY id")]
    return [*STATIC.values(), *(_grids(g) for g in gens)]


def collection(db, cid: str) -> Collection:
    """The collection `cid` or NotFound."""
    if cid in STATIC:
        return STATIC[cid]
    if cid.startswith("grids_g") and cid[7:].isdigit():
        gen = int(cid[7:])
        if db.fetchone("SELECT 1 FROM generation WHERE id = %s", (gen,)):
            return _grids(gen)
    raise NotFound(f"no such collection: {cid}", field="collectionId")


def _gen(db, c: Collection) -> int | None:
    return c.generation if c.generation is not None else active_generation(db)


@dataclass
class Query:
    """Parsed item-query parameters (see parse_query)."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    props: dict = field(default_factory=dict)


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """minx,miny,maxx,maxy in CRS84 (a 6-number 3D bbox keeps its horizontal part)."""
    try:
        nums = [float(x) for x in raw.split(",")]
    except ValueError:
        raise BadInput("bbox must be 4 numbers: minLon,minLat,maxLon,maxLat", field="bbox") from None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(abs(v) < 1e9 for v in nums):
        raise BadInput("bbox must be 4 numbers: minLon,minLat,maxLon,maxLat", field="bbox")
    x0, y0, x1, y1 = nums
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise BadInput("bbox is outside lon -180..180 / lat -90..90", field="bbox")
    if y0 > y1:
        raise BadInput("bbox minLat is greater than maxLat", field="bbox")
    return x0, y0, x1, y1


def _instant(s: str, end: bool) -> dt.datetime | None:
    if s in ("", ".."):
        return None
    try:
        v = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"datetime {s!r} is not RFC 3339", field="datetime") from None
    if v.tzinfo is None:
        from cases.calendar import to_local

        v = to_local(v)
    if end and "T" not in s and len(s) == 10:
        v += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return v


def parse_datetime(raw: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An instant, a date (the whole day) or an interval a/b with open ends '..' or ''."""
    if "/" in raw:
        a, b = raw.split("/", 1)
        start, end = _instant(a, False), _instant(b, True)
        if start is None and end is None:
            raise BadInput("datetime interval needs at least one end", field="datetime")
        if start and end and start > end:
            raise BadInput("datetime interval start is after its end", field="datetime")
        return start, end
    start = _instant(raw, False)
    if start is None:
        raise BadInput("datetime must be an instant or an interval", field="datetime")
    return start, _instant(raw, True) if len(raw) == 10 else start


def parse_query(args: dict, props: tuple[str, ...], reserved: tuple[str, ...] = ("f",)) -> Query:
    """Item-query parameters from a plain mapping; an unknown parameter is a 400 (OGC API Features)."""
    q = Query()
    for name, raw in args.items():
        raw = raw if isinstance(raw, str) else str(raw)
        if "\x00" in raw or len(raw) > 500:
            raise BadInput(f"{name} is not a valid value", field=name)
        if name == "limit":
            try:
                q.limit = int(raw)
            except ValueError:
                raise BadInput("limit must be an integer", field="limit") from None
            if not 1 <= q.limit <= MAX_LIMIT:
                raise BadInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        elif name == "offset":
            if not raw.isdigit() or int(raw) > 10**9:
                raise BadInput("offset must be a non-negative integer", field="offset")
            q.offset = int(raw)
        elif name == "bbox":
            q.bbox = parse_bbox(raw)
        elif name == "bbox-crs":
            if raw not in ("http://www.opengis.net/def/crs/OGC/1.3/CRS84",):
                raise BadInput("only CRS84 is supported for bbox-crs", field="bbox-crs")
        elif name == "datetime":
            q.start, q.end = parse_datetime(raw)
        elif name in props:
            q.props[name] = raw
        elif name not in reserved:
            raise BadInput(f"unknown parameter {name!r}; queryables: {', '.join(props)}", field=name)
    return q


def where_clause(q: Query, props_sql: dict, geom: str, temporal: str | None) -> tuple[list[str], dict]:
    """SQL conditions (bound values, whitelisted columns) for a parsed query."""
    where, params = [], {}
    if q.bbox:
        x0, y0, x1, y1 = q.bbox
        params.update(bx0=x0, by0=y0, bx1=x1, by1=y1)
        where.append(f"{geom} && ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326) AND "
                     f"ST_Intersects({geom}, ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326))")
    if temporal and q.start:
        where.append(f"{temporal} >= %(dt_start)s")
        params["dt_start"] = q.start
    if temporal and q.end:
        where.append(f"{temporal} <= %(dt_end)s")
        params["dt_end"] = q.end
    for i, (name, value) in enumerate(q.props.items()):
        where.append(f"{props_sql[name]}::text = %(p{i})s")
        params[f"p{i}"] = value
    return where, params


def feature(key, geom_wkb, props: dict) -> dict:
    """A GeoJSON feature with the stored coordinates exactly."""
    geom = mapping(shapely.from_wkb(bytes(geom_wkb))) if geom_wkb is not None else None
    out = {}
    for k, v in props.items():
        out[k] = v.isoformat() if isinstance(v, dt.datetime | dt.date) else v
    return {"type": "Feature", "id": key, "geometry": geom, "properties": out}


def _base(db, c: Collection) -> tuple[str, dict]:
    return c.where, {"gen": _gen(db, c)}


def items(db, c: Collection, q: Query) -> tuple[list[dict], int]:
    """One page of features (ordered by key) and the number matched by the whole query."""
    base, params = _base(db, c)
    where, p = where_clause(q, {k: k for k in c.props}, "geom", c.temporal)
    params.update(p, limit=q.limit, offset=q.offset)
    cond = " AND ".join([base, *where])
    matched = db.fetchone(f"SELECT count(*) AS n FROM {c.table} WHERE {cond}", params)["n"]
    rows = db.fetchall(f"SELECT {c.key} AS _key, ST_AsBinary(geom) AS _wkb, {', '.join(c.props)} FROM {c.table} "
                       f"WHERE {cond} ORDER BY {c.key} LIMIT %(limit)s OFFSET %(offset)s", params)
    return [feature(r["_key"], r["_wkb"], {k: r[k] for k in c.props}) for r in rows], matched


def item(db, c: Collection, fid: str) -> dict:
    """One feature by its key, or NotFound."""
    base, params = _base(db, c)
    params["fid"] = fid
    r = db.fetchone(f"SELECT {c.key} AS _key, ST_AsBinary(geom) AS _wkb, {', '.join(c.props)} FROM {c.table} "
                    f"WHERE {base} AND {c.key}::text = %(fid)s", params)
    if r is None:
        raise NotFound(f"no feature {fid!r} in collection {c.id}", field="featureId")
    return feature(r["_key"], r["_wkb"], {k: r[k] for k in c.props})


def extent(db, c: Collection) -> tuple[float, float, float, float] | None:
    """The bbox of the whole collection (None when empty)."""
    base, params = _base(db, c)
    r = db.fetchone(f"SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM "
                    f"(SELECT ST_Extent(geom) e FROM {c.table} WHERE {base}) s", params)
    return None if r is None or r["x0"] is None else (r["x0"], r["y0"], r["x1"], r["y1"])
