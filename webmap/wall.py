"""The command-center wall map (一屏观全城), /wall, and its aggregated JSON endpoints.

The page is a static template plus /static/wall.js; the data comes from small aggregated endpoints
(never one marker per case city-wide), each scoped to the logged-in user by cases.auth.case_scope.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, current_app, jsonify, render_template, request

from cases import wallstats
from webmap.api_cases import _int_arg, current_user, login_required

bp = Blueprint("wall", __name__)

REFRESH_SECONDS = 30  # the app config WALL_REFRESH_SECONDS overrides it (tests)
RATES_TTL = 120  # seconds: the month's 三率 change slowly and cost a pass over the month's cases
# zoom thresholds of the live layer: counts per county < TOWNSHIP_ZOOM ≤ per township < GRID_ZOOM ≤ per grid
# < CLUSTER_ZOOM ≤ clusters < POINT_ZOOM ≤ single cases
ZOOMS = {"township": 10, "grid": 12, "cluster": 14, "point": 16}
_lock = threading.Lock()


def _db():
    """Reads only: the replica when GRIDGOV_READ_DATABASE_URL is set (a hot standby; may lag a moment)."""
    return current_app.extensions["gridgov_read_db"]


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/wall")
def wall_page():
    """The wall page (anyone; it shows a login form until /api/me answers, and all data needs a login)."""
    from webmap.elements import base_map_options

    # the page knows whether a session exists, so an anonymous visit shows the form without a refused request
    return render_template("wall.html", base_map=base_map_options(), zooms=ZOOMS, logged_in=current_user() is not None,
                           refresh=current_app.config.get("WALL_REFRESH_SECONDS", REFRESH_SECONDS))


@bp.get("/api/wall/context")
@login_required
def context():
    """The user's jurisdiction the wall opens on, zoom thresholds and refresh period (logged-in users)."""
    user = current_user()
    return _no_store(jsonify({"user": user.to_dict(), "region": wallstats.jurisdiction(_db(), user),
                              "zooms": ZOOMS,
                              "refresh_seconds": current_app.config.get("WALL_REFRESH_SECONDS", REFRESH_SECONDS),
                              "status_groups": {k: v[0] for k, v in wallstats.STATUS_GROUPS.items()},
                              "labels": wallstats.event_labels()}))


@bp.get("/api/wall/kpi")
@login_required
def kpi():
    """KPI panel: today's intake by channel, open/overdue/due in 24 h, 7-day trend, top categories (logged-in
    users; their jurisdiction only)."""
    return _no_store(jsonify(wallstats.kpi(_db(), current_user())))


@bp.get("/api/wall/rates")
@login_required
def month_rates():
    """This month's 三率 (sums of /api/rates?unit=township) and the townships' 四色码, kept RATES_TTL seconds
    (logged-in users; their jurisdiction only)."""
    return _no_store(jsonify(_month_rates(current_user())))


def _month_rates(user) -> dict:
    cache = current_app.extensions.setdefault("gridgov_wall_rates", {})
    key = user.id
    now = time.monotonic()
    with _lock:
        hit = cache.get(key)
    if hit and now - hit[0] < RATES_TTL:
        return hit[1]
    value = wallstats.month_rates(_db(), user)
    with _lock:
        cache[key] = (now, value)
    return value


@bp.get("/api/wall/units")
@login_required
def units():
    """Open/overdue/emergency counts per county, township or grid (`level`, optional `parent` code prefix
    or `bbox`), with a label point (logged-in users; their jurisdiction only)."""
    level = request.args.get("level") or "township"
    rows = wallstats.unit_counts(_db(), current_user(), level, parent=request.args.get("parent") or None,
                                 bbox=wallstats.parse_bbox(request.args.get("bbox")))
    return _no_store(jsonify({"level": level, "units": rows}))


@bp.get("/api/wall/cases")
@login_required
def cases_in_window():
    """Open cases in a map window (`bbox`, `zoom`): clusters below the point zoom, then points (logged-in
    users; their jurisdiction only)."""
    from gis.errors import BadInput

    bbox = wallstats.parse_bbox(request.args.get("bbox"))
    if bbox is None:
        raise BadInput("bbox is required: west,south,east,north", field="bbox")
    zoom = _int_arg("zoom", 12, 0, 22)
    return _no_store(jsonify(wallstats.live_cases(_db(), current_user(), bbox, zoom, point_zoom=ZOOMS["point"])))


@bp.get("/api/wall/grids/<grid_code>/cases")
@login_required
def grid_cases(grid_code: str):
    """A grid's cases for the drill-down list: open first, then the latest (logged-in users; scoped)."""
    rows = wallstats.grid_cases(_db(), current_user(), grid_code, limit=_int_arg("limit", 60, 1, 200))
    return _no_store(jsonify(rows))


@bp.get("/api/wall/centers")
@login_required
def centers():
    """综治中心 of some levels (`levels`, comma-separated; optional `bbox`) in the user's jurisdiction
    (logged-in users)."""
    levels = tuple(x for x in (request.args.get("levels") or "city,county,township").split(",") if x)
    rows = wallstats.centers(_db(), current_user(), levels, bbox=wallstats.parse_bbox(request.args.get("bbox")))
    resp = jsonify({"centers": rows})
    resp.headers["Cache-Control"] = "private, max-age=300"
    return resp
