"""Bulk loading of cases into PostGIS (the synthetic year, imports) with COPY, in chunks."""

from __future__ import annotations

from itertools import islice

from gis.db import copy_rows

# Columns written by the bulk loader; geometry is built from lon/lat.
LOAD_COLUMNS = [
    "case_no", "submission_key", "channel", "kind", "category_code", "title", "content", "anonymous",
    "reporter_name", "reporter_phone", "reporter_id_no", "address_text", "geom", "orig_crs", "orig_x", "orig_y",
    "grid_code", "generation", "village_code", "township_code", "county_code", "status", "emergency",
    "received_at", "accepted_at", "dispatched_at", "signed_at", "replied_at", "evaluated_at", "closed_at",
    "sign_due_at", "reply_due_at", "evaluation",
]


def _row(c: dict, generation: int) -> list:
    lon, lat = c.get("lon"), c.get("lat")
    geom = f"SRID=4326;POINT({lon:.7f} {lat:.7f})" if lon is not None and lat is not None else None
    out = []
    for col in LOAD_COLUMNS:
        if col == "geom":
            out.append(geom)
        elif col == "generation":
            out.append(c.get("generation") or generation)
        elif col == "orig_crs":
            out.append(c.get("orig_crs") or ("EPSG:4326" if geom else None))
        elif col == "orig_x":
            out.append(c.get("orig_x", lon))
        elif col == "orig_y":
            out.append(c.get("orig_y", lat))
        else:
            out.append(c.get(col))
    return out


def load_cases(db, cases, generation: int, chunk: int = 20_000, progress=None) -> int:
    """COPY an iterable of case dicts in chunks of `chunk`, one transaction per chunk; returns the count."""
    total = 0
    it = iter(cases)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            break
        with db.connection() as conn, conn.cursor() as cur:
            total += copy_rows(cur, "case_record", LOAD_COLUMNS, (_row(c, generation) for c in batch))
        if progress:
            progress(total)
    return total
