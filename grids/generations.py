"""Boundary generations (MapIt style): list them, read any of them, activate one and re-locate open cases.

Every committed boundary import is a new, inactive generation. Activating it re-locates every open
case (status not closed/merged/rejected) to the grid covering its point in the new generation
(ST_Covers; on a shared edge the smallest grid code wins) and records each move in case_relocation.
A case outside the new coverage keeps its old grid and generation and is reported. Old generations
stay in the tables and every reader here takes a generation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import shapely

from gis.errors import BadInput, NotFound
from grids import store
from grids.store import resolve_generation

CLOSED_STATUSES = ("closed", "merged", "rejected")


@dataclass
class Relocation:
    """What activating a generation did to open cases."""

    generation: int
    moves: list[dict] = field(default_factory=list)     # case_no, old_grid, new_grid (grid changed)
    outside: list[dict] = field(default_factory=list)   # case_no, grid: not covered by the new generation
    unchanged: int = 0                                  # open cases whose grid code stayed the same

    def to_dict(self) -> dict:
        """Plain JSON-able form."""
        return asdict(self)

    def text(self) -> str:
        """Human-readable summary, one line per move and per case left outside."""
        lines = [f"generation {self.generation} active: {len(self.moves)} open case(s) moved, "
                 f"{self.unchanged} kept their grid, {len(self.outside)} outside the new coverage"]
        lines += [f"  moved {m['case_no']}: {m['old_grid']} -> {m['new_grid']}" for m in self.moves]
        lines += [f"  outside {o['case_no']}: keeps {o['grid']} (lon {o['lon']:.6f}, lat {o['lat']:.6f})"
                  for o in self.outside]
        return "\n".join(lines)


def list_generations(db) -> list[dict]:
    """Every generation with its counts, newest first."""
    return db.fetchall(
        "SELECT g.id, g.active, g.source, g.note, g.created_at, g.activated_at, "
        " (SELECT count(*) FROM region r WHERE r.generation = g.id) AS regions, "
        " (SELECT count(*) FROM grid x WHERE x.generation = g.id) AS grids "
        "FROM generation g ORDER BY g.id DESC")


def load_boundaries(db, generation: int | None = None) -> tuple[list[dict], list[dict]]:
    """Regions and grids of a generation (default: active) as dicts with shapely WGS84 geometries."""
    gen = resolve_generation(db, generation)
    regions = db.fetchall("SELECT code, level, name, short_name, parent_code, kind, urban, ST_AsBinary(geom) AS wkb "
                          "FROM region WHERE generation = %s ORDER BY code", (gen,))
    grids = db.fetchall("SELECT code, name, grid_type, village_code, ST_AsBinary(geom) AS wkb "
                        "FROM grid WHERE generation = %s ORDER BY code", (gen,))
    for rows in (regions, grids):
        for r, g in zip(rows, shapely.from_wkb([bytes(r["wkb"]) for r in rows]), strict=True):
            r.pop("wkb")
            r["geom"] = g
    return regions, grids


def find_grid_at(db, lon: float, lat: float, generation: int | None = None) -> dict | None:
    """The grid covering (lon, lat) in a generation (default: active); smallest code on shared edges."""
    gen = resolve_generation(db, generation)
    return db.fetchone("SELECT code, name, village_code, generation FROM grid WHERE generation = %(gen)s "
                       "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)) ORDER BY code LIMIT 1",
                       {"gen": gen, "lon": lon, "lat": lat})


def layer_geojson_at(db, layer: str, generation: int, level: str | None = None) -> dict:
    """A FeatureCollection of regions (by level) or grids of any generation, old ones included."""
    if layer not in ("region", "grid"):
        raise BadInput(f"unknown layer {layer!r}: region or grid", field="layer")
    return store.layer_geojson(db, layer, level=level, generation=resolve_generation(db, generation))


_RELOCATE_SQL = """
WITH open_case AS (
    SELECT id, case_no, grid_code, generation, geom
    FROM case_record
    WHERE status <> ALL (%(closed)s) AND geom IS NOT NULL
    FOR UPDATE
), target AS (
    SELECT DISTINCT ON (o.id) o.id, g.code, g.village_code
    FROM open_case o
    JOIN grid g ON g.generation = %(gen)s AND ST_Covers(g.geom, o.geom)
    ORDER BY o.id, g.code
)
SELECT o.id, o.case_no, o.grid_code AS old_grid, o.generation AS old_generation,
       t.code AS new_grid, t.village_code,
       coalesce(v.parent_code, substr(t.village_code, 1, 9)) AS township_code,
       coalesce(tw.parent_code, substr(t.village_code, 1, 6)) AS county_code,
       ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat
FROM open_case o
LEFT JOIN target t ON t.id = o.id
LEFT JOIN region v ON v.code = t.village_code AND v.generation = %(gen)s
LEFT JOIN region tw ON tw.code = v.parent_code AND tw.generation = %(gen)s
ORDER BY o.case_no
"""


def relocate_open_cases(cur, gen: int) -> Relocation:
    """Activate `gen` on this cursor's transaction and re-locate open cases into it (see module docstring)."""
    cur.execute("SELECT 1 FROM generation WHERE id = %s", (gen,))
    if cur.fetchone() is None:
        raise NotFound(f"boundary generation {gen} does not exist", field="generation")
    store.activate_generation(cur, gen)
    cur.execute(_RELOCATE_SQL, {"gen": gen, "closed": list(CLOSED_STATUSES)})
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    result = Relocation(generation=gen)
    updates, audit = [], []
    for r in rows:
        if r["new_grid"] is None:
            result.outside.append({"case_no": r["case_no"], "grid": r["old_grid"], "lon": r["lon"], "lat": r["lat"]})
            audit.append((r["id"], r["case_no"], r["old_grid"], r["old_generation"], None, gen))
            continue
        updates.append((r["new_grid"], gen, r["village_code"], r["township_code"], r["county_code"], r["id"]))
        if r["new_grid"] != r["old_grid"]:
            result.moves.append({"case_no": r["case_no"], "old_grid": r["old_grid"], "new_grid": r["new_grid"],
                                 "old_generation": r["old_generation"], "new_generation": gen})
            audit.append((r["id"], r["case_no"], r["old_grid"], r["old_generation"], r["new_grid"], gen))
        else:
            result.unchanged += 1
    if updates:
        from psycopg2.extras import execute_values

        execute_values(cur, "UPDATE case_record c SET grid_code = u.grid, generation = u.gen, "
                            "village_code = u.village, township_code = u.township, county_code = u.county, "
                            "version = c.version + CASE WHEN c.grid_code IS DISTINCT FROM u.grid THEN 1 ELSE 0 END "
                            "FROM (VALUES %s) AS u (grid, gen, village, township, county, id) WHERE c.id = u.id",
                       updates, template="(%s, %s::integer, %s, %s, %s, %s::bigint)", page_size=1000)
    if audit:
        from psycopg2.extras import execute_values

        execute_values(cur, "INSERT INTO case_relocation (case_id, case_no, from_grid, from_generation, to_grid, "
                            "to_generation) VALUES %s", audit, page_size=1000)
        # The move is also part of each case's own history (append-only event log).
        cur.execute(
            "INSERT INTO case_event (case_id, actor_role, action, from_state, to_state, reason, data) "
            "SELECT r.case_id, 'system', 'relocate', c.status, c.status, %s, json_build_object("
            "'from_grid', r.from_grid, 'from_generation', r.from_generation, 'to_grid', r.to_grid, "
            "'to_generation', r.to_generation) FROM case_relocation r JOIN case_record c ON c.id = r.case_id "
            "WHERE r.to_generation = %s AND r.at = now()",
            (f"启用边界版本 {gen}，重新定位网格", gen))
    return result


def activate_generation_and_relocate(db, gen: int) -> Relocation:
    """Make `gen` the active generation and re-locate every open case into it, in one transaction."""
    with db.connection() as conn, conn.cursor() as cur:
        return relocate_open_cases(cur, gen)
