"""Downloads: cases, grids and monthly rates as GeoPackage, GeoJSON, CSV or XLSX (cases/exports.py does the work).

`GET /api/exports/cases.<fmt>` (login or token; the caller's cases, masked; filters as OGC API items:
datetime, status, grid_code …), `GET /api/exports/grids.<fmt>?generation=N`, and
`GET /api/exports/rates.<fmt>?month=YYYY-MM&unit=township` (scoped to the caller; default this month).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, request

from gis.errors import BadInput
from webmap.api_cases import current_user, login_required, month_arg

bp = Blueprint("exports", __name__)
FMT = "<any(gpkg, geojson, csv, xlsx):ext>"


def _db():
    return current_app.extensions["gridgov_db"]


def _download(body: bytes, fmt: str, name: str) -> Response:
    from cases.exports import MIME

    stamp = dt.date.today().strftime("%Y%m%d")
    return Response(body, mimetype=MIME[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"', "Cache-Control": "no-store"})


@bp.get(f"/api/exports/cases.{FMT}")
@login_required
def export_cases(ext: str):
    """The caller's cases (points; reporter data masked unless the caller handles the case)."""
    from cases.exports import case_features, render

    feats = case_features(_db(), current_user(), request.args.to_dict())
    return _download(render(feats, ext, "cases"), ext, "cases")


@bp.get(f"/api/exports/grids.{FMT}")
@login_required
def export_grids(ext: str):
    """Every grid of the active generation, or of ?generation=N."""
    from cases.exports import grid_features, render

    raw = request.args.get("generation")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise BadInput("generation must be an integer", field="generation")
    feats = grid_features(_db(), int(raw) if raw else None)
    return _download(render(feats, ext, "grids", "MultiPolygon"), ext, "grids")


@bp.get(f"/api/exports/rates.{FMT}")
@login_required
def export_rates(ext: str):
    """三率 and 四色码 of a month per unit, over the cases the caller may see."""
    from cases.exports import rate_features, render

    raw = request.args.get("month") or dt.date.today().strftime("%Y-%m")
    month = month_arg(raw)
    unit = request.args.get("unit") or "township"
    feats = rate_features(_db(), current_user(), month.year, month.month, unit)
    return _download(render(feats, ext, f"rates_{unit}", "MultiPolygon"), ext, f"rates-{raw}-{unit}")
