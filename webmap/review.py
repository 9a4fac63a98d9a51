"""Township review (乡镇热力图研判): the page and its JSON, Excel and PNG endpoints.

Who may call: the centers (city/county/township/village) and the admin, for units in their jurisdiction
(`cases.review.check_access`); everyone else gets 403, units outside the jurisdiction 404. Heat points,
clusters and case lists are scoped by `cases.auth.case_scope`.
"""

from __future__ import annotations

import io
from functools import wraps

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from gis.errors import BadInput
from webmap.api_cases import current_user, login_required

bp = Blueprint("review", __name__)


def _db():
    """Reads only: the replica when GRIDGOV_READ_DATABASE_URL is set (a hot standby; may lag a moment)."""
    return current_app.extensions["gridgov_read_db"]


def reviewer_required(fn):
    """Login, then 403 for roles that do not review (before any argument is read)."""
    @login_required
    @wraps(fn)
    def wrapper(*a, **kw):
        from cases.review import REVIEW_ROLES
        from gis.errors import Forbidden

        if current_user().role not in REVIEW_ROLES:
            raise Forbidden("研判仅限各级综治中心 (review is for the centers)", field="role")
        return fn(*a, **kw)

    return wrapper


def _args():
    """(unit, start, end, categories) from the query string."""
    from cases.review import parse_period

    unit = request.args.get("unit") or ""
    start, end = parse_period(request.args.get("from"), request.args.get("to"), request.args.get("month"))
    cats = [c for c in (request.args.get("category") or "").split(",") if c]
    if len(cats) > 20:
        raise BadInput("at most 20 categories", field="category")
    return unit, start, end, cats


@bp.get("/review")
def page():
    """The review page (anyone may load it; its data needs a center's login)."""
    return render_template("review.html")


@bp.get("/api/review/units")
@reviewer_required
def units():
    """Counties, townships (and villages for a village center) the user may review, with categories."""
    user = current_user()
    rows = _db().fetchall("SELECT code, name, level, parent_code FROM region WHERE generation = (SELECT id FROM "
                          "generation WHERE active) AND level IN ('county', 'township', 'village') AND code LIKE %s "
                          "AND (level <> 'village' OR %s) ORDER BY code",
                          (user.region_prefix + "%", user.role == "village_center"))
    cats = _db().fetchall("SELECT code, name FROM category WHERE parent_code IS NULL ORDER BY code")
    return jsonify({"units": rows, "categories": cats, "default_unit": user.region_code
                    if len(user.region_code) in (9, 12) else (rows[0]["code"] if rows else None)})


@bp.get("/api/review")
@reviewer_required
def summary():
    """Per-grid table with the previous period, totals, 四色码 and reasons, weekly trend, categories."""
    from cases.review import review

    unit, start, end, cats = _args()
    return jsonify(review(_db(), current_user(), unit, start, end, cats))


@bp.get("/api/review/heat")
@reviewer_required
def heat():
    """[lat, lon, week] of the unit's cases in the period (bounded), for the heat map and its weekly change."""
    from cases.review import heat_points

    unit, start, end, cats = _args()
    return jsonify(heat_points(_db(), current_user(), unit, start, end, cats))


@bp.get("/api/review/clusters")
@reviewer_required
def clusters():
    """类案 clusters of the unit and period (bounded cell clustering), with their case ids."""
    from cases.review import review_clusters

    unit, start, end, cats = _args()
    return jsonify(review_clusters(_db(), current_user(), unit, start, end, cats))


@bp.get("/api/review/cases")
@reviewer_required
def cases_of():
    """Short rows of the given case ids that the user may see (a cluster's cases)."""
    from cases.auth import case_scope
    from cases.partitions import received_ats

    raw = (request.args.get("ids") or "").split(",")
    if not raw or len(raw) > 200 or not all(x.isdigit() and len(x) < 19 for x in raw):
        raise BadInput("ids must be up to 200 case ids separated by commas", field="ids")
    scope, params = case_scope(current_user())
    params["ids"] = [int(x) for x in raw]
    params["rats"] = received_ats(_db(), params["ids"])   # their months' partitions only (cases.partitions)
    rows = _db().fetchall(f"SELECT c.id, c.case_no, c.title, c.status, c.received_at, c.address_text, "
                          f"c.grid_code FROM case_record c WHERE {scope} AND c.id = ANY(%(ids)s) "
                          f"AND c.received_at = ANY(%(rats)s) ORDER BY c.id", params)
    return jsonify({"cases": rows})


@bp.get("/api/review/export.xlsx")
@reviewer_required
def export_xlsx():
    """The per-grid table of the period beside the previous one, as Excel (formula-like cells neutralised)."""
    from cases.review import review
    from cases.review_export import review_workbook

    unit, start, end, cats = _args()
    data = review(_db(), current_user(), unit, start, end, cats)
    buf = io.BytesIO()
    review_workbook(data).save(buf)
    name = f"review-{unit}-{start.isoformat()}.xlsx"
    return Response(buf.getvalue(), headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="{name}"'})

