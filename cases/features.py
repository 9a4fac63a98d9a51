"""Cases as point features (OGC API Features, exports): only what the caller may see (cases.auth.case_scope),
personal data masked (cases.auth.present_personal_data → gis.privacy). No Flask here."""

from __future__ import annotations

from cases import workflow
from cases.auth import User, case_scope, present_personal_data
from cases.deadlines import CHANNELS
from cases.partitions import received_at
from gis.errors import Forbidden, NotFound, Unauthorized
from grids.features import Collection, Query, feature, where_clause

# Public properties of a case feature (filterable by equality, except the labels).
PROPS = ("case_no", "status", "channel", "kind", "category_code", "title", "received_at", "closed_at",
         "emergency", "grid_code", "generation", "village_code", "township_code", "county_code", "lead_department",
         "anonymous", "reporter_name", "reporter_phone")
FILTERABLE = ("case_no", "status", "channel", "kind", "category_code", "grid_code", "village_code",
              "township_code", "county_code", "lead_department", "emergency")
# Columns present_personal_data needs to decide whether the caller handles the case.
_HANDLING = ("handling_level", "handler_region", "co_departments", "reporter_id_no")

CASES = Collection("cases", "诉求件", "Cases (points) the caller may see; personal data masked unless the caller "
                   "handles the case. Needs a login or an API token.", "case_record", "id", FILTERABLE, "Point",
                   temporal="received_at")


def _require(user: User | None) -> User:
    if user is None:
        raise Unauthorized("cases need a login or an API token (Authorization: Bearer …)")
    perms = getattr(user, "permissions", None)
    if perms is not None and "read" not in perms:
        raise Forbidden("this API token may not read cases (permission read)", field="Authorization")
    return user


def _select(alias: str = "c") -> str:
    cols = [f"{alias}.{p}" for p in PROPS if p not in ("reporter_name", "reporter_phone")]
    return (f"{alias}.id AS _key, ST_AsBinary({alias}.geom) AS _wkb, {', '.join(cols)}, {alias}.reporter_name, "
            f"{alias}.reporter_phone, " + ", ".join(f"{alias}.{h}" for h in _HANDLING))


def _feature(user: User, row: dict) -> dict:
    shown = present_personal_data(user, dict(row))
    props = {k: shown.get(k) for k in PROPS}
    props["status_label"] = workflow.STATES.get(row["status"], row["status"])
    props["channel_label"] = CHANNELS.get(row["channel"], row["channel"])
    props["pii_masked"] = shown.get("pii_masked", True)
    return feature(row["_key"], row["_wkb"], props)


def _scope(user: User) -> tuple[list[str], dict]:
    scope, params = case_scope(user)
    return [scope, "c.geom IS NOT NULL", "c.status <> 'merged'"], params


def items(db, user: User | None, q: Query) -> tuple[list[dict], int]:
    """One page of the caller's cases (ordered by id) and how many match."""
    user = _require(user)
    where, params = _scope(user)
    w, p = where_clause(q, {k: f"c.{k}" for k in FILTERABLE}, "c.geom", "c.received_at")
    params.update(p, limit=q.limit, offset=q.offset)
    cond = " AND ".join([*where, *w])
    matched = db.fetchone(f"SELECT count(*) AS n FROM case_record c WHERE {cond}", params)["n"]
    rows = db.fetchall(f"SELECT {_select()} FROM case_record c WHERE {cond} ORDER BY c.id "
                       f"LIMIT %(limit)s OFFSET %(offset)s", params)
    return [_feature(user, r) for r in rows], matched


def item(db, user: User | None, fid: str) -> dict:
    """One case feature the caller may see, or NotFound (also when it exists outside the scope)."""
    user = _require(user)
    if not fid.isdigit() or len(fid) > 18:
        raise NotFound(f"no feature {fid!r} in collection cases", field="featureId")
    where, params = _scope(user)
    params.update(fid=int(fid), frat=received_at(db, int(fid)))
    row = db.fetchone(f"SELECT {_select()} FROM case_record c WHERE c.id = %(fid)s AND c.received_at = %(frat)s "
                      f"AND {' AND '.join(where)}", params)
    if row is None:
        raise NotFound(f"no feature {fid!r} in collection cases", field="featureId")
    return _feature(user, row)


def extent(db, user: User) -> tuple[float, float, float, float] | None:
    """The bbox of the caller's cases."""
    where, params = _scope(user)
    r = db.fetchone(f"SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM "
                    f"(SELECT ST_Extent(c.geom) e FROM case_record c WHERE {' AND '.join(where)}) s", params)
    return None if r is None or r["x0"] is None else (r["x0"], r["y0"], r["x1"], r["y1"])
