"""Case API: login/tokens, intake, lists, detail, actions, manual pins, repeats, clusters and rates.

Handlers parse, call one CaseService method, serialise. Authentication is a signed session cookie
(people) or `Authorization: Bearer ggt_…` (machines, e.g. the 12345 system).
"""

from __future__ import annotations

import datetime as dt
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request, session

from cases.auth import TokenUser, create_token, list_tokens, revoke_token, user_for_token
from gis.errors import BadInput, Forbidden, Unauthorized, UnsupportedMediaType

bp = Blueprint("cases_api", __name__)


def service():
    """The app's CaseService (one per app)."""
    from cases.service import CaseService

    svc = current_app.extensions.get("gridgov_cases")
    if svc is None:
        svc = current_app.extensions["gridgov_cases"] = CaseService(current_app.extensions["gridgov_db"])
    return svc


def current_user():
    """The authenticated user of this request (token or session), or None."""
    if "user" in g:
        return g.user
    from cases.sessions import session_user
    from webmap.security import bearer_token

    db = current_app.extensions["gridgov_db"]
    user = None
    token = bearer_token()
    if token is not None:
        user = user_for_token(db, token)
    elif session.get("sid"):
        user = session_user(db, session["sid"])  # None once the session ended (logout) or expired
    g.user = user
    return user


def login_required(fn):
    """Refuse anonymous requests with 401 JSON."""
    @wraps(fn)
    def wrapper(*a, **kw):
        if current_user() is None:
            raise Unauthorized("请先登录 (login required)")
        return fn(*a, **kw)

    return wrapper


def _json() -> dict:
    if request.content_length and not request.is_json:
        raise UnsupportedMediaType("请求体必须是 JSON (Content-Type: application/json)", field="Content-Type")
    body = request.get_json(silent=True)
    if body is None:
        if request.get_data(cache=True):
            raise BadInput("request body is not valid JSON")
        return {}
    if not isinstance(body, dict):
        raise BadInput("request body must be a JSON object")
    return body


def month_arg(raw: str) -> dt.datetime:
    """A `month` query argument YYYY-MM (2000-01 … 2100-12) as its first day, or a 400."""
    try:
        month = dt.datetime.strptime(raw, "%Y-%m")
    except ValueError:
        raise BadInput("month must be YYYY-MM", field="month") from None
    if not 2000 <= month.year <= 2100:
        raise BadInput("month must be between 2000-01 and 2100-12", field="month")
    return month


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 18):  # no "²", "٣" or "1_0"
        raise BadInput(f"{name} must be an integer", field=name)
    v = int(raw)
    if not lo <= v <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}", field=name)
    return v


@bp.post("/api/login")
def login():
    """Username/password → a new server-side session (cookie) and its CSRF token; throttled (429)."""
    from cases.sessions import login as do_login
    from webmap.security import csrf_token

    body = _json()
    db = current_app.extensions["gridgov_db"]
    user, sid = do_login(db, body.get("username"), body.get("password"), request.remote_addr or "-")
    session.clear()
    session["sid"] = sid
    g.user = user
    return jsonify({"user": user.to_dict(), "csrf_token": csrf_token()})


@bp.post("/api/logout")
def logout():
    """End the session on the server (the old cookie is dead) and clear the cookie."""
    from cases.sessions import end_session

    end_session(current_app.extensions["gridgov_db"], session.get("sid"))
    session.clear()
    return jsonify({"ok": True})


@bp.get("/api/me")
@login_required
def me():
    """The logged-in user (and, for a session, its CSRF token)."""
    from webmap.security import csrf_token

    user = current_user()
    out = {"user": user.to_dict()}
    if isinstance(user, TokenUser):
        out["token"] = {"id": user.token_id, "permissions": list(user.permissions), "region": user.scope_region}
    else:
        out["csrf_token"] = csrf_token()
    return jsonify(out)


def _person():
    user = current_user()
    if isinstance(user, TokenUser):
        raise Forbidden("API tokens cannot manage tokens: log in as a person", field="Authorization")
    return user


@bp.post("/api/tokens")
@login_required
def new_token():
    """Issue an API token for the current person (shown once): {name, days?, region?, permissions?}."""
    body = _json()
    unknown = set(body) - {"name", "days", "region", "permissions"}
    if unknown:
        raise BadInput(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0][:64])
    tok = create_token(current_app.extensions["gridgov_db"], _person(), body.get("name"),
                       days=body.get("days", 90), region=body.get("region"), permissions=body.get("permissions"))
    return jsonify(tok), 201


@bp.get("/api/tokens")
@login_required
def list_tokens_api():
    """The current person's tokens (never the secrets)."""
    return jsonify({"tokens": list_tokens(current_app.extensions["gridgov_db"], _person())})


@bp.delete("/api/tokens/<int:token_id>")
@login_required
def revoke_token_api(token_id: int):
    """Revoke one of the current person's tokens."""
    revoke_token(current_app.extensions["gridgov_db"], _person(), token_id)
    return jsonify({"ok": True, "id": token_id})


@bp.post("/api/cases")
@login_required
def intake():
    """Register a case (any channel); idempotent on submission_key. Multipart: JSON in `case`, photos in
    `photo` (webmap.api_attachments)."""
    if request.mimetype == "multipart/form-data":
        from webmap.api_attachments import intake_with_photos

        return intake_with_photos()
    case = service().intake(_json(), current_user())
    return jsonify(case), 200 if case.get("duplicate_submission") else 201


@bp.post("/api/submissions")
@login_required
def queue_submission():
    """Hand a submission over for queued registration (surge channels, partner systems): 202 at once with
    the case number it will carry, its grid and the submission key; a writer registers it (cases.queue).
    Idempotent on submission_key like POST /api/cases."""
    from cases.queue import accept

    out, code = accept(service(), current_user(), _json())
    return jsonify(out), code


@bp.get("/api/submissions/<key>")
@login_required
def submission_status(key: str):
    """Where a submission this account handed over stands: queued, registered (the case) or rejected (why)."""
    from cases.queue import status
    from cases.service import INTAKE_ROLES

    user = current_user()
    if user.role not in INTAKE_ROLES:
        raise Forbidden(f"role {user.role} does not register cases", field="role")
    return jsonify(status(current_app.extensions["gridgov_db"], user, key))


@bp.get("/api/cases")
@login_required
def list_cases():
    """Cases in the user's jurisdiction, most urgent first; paged by `cursor` (the `next_cursor` of the page
    before: stable while cases come and go) or `offset`."""
    pin = request.args.get("needs_pin")
    rows, nxt = service().list_page(current_user(), status=request.args.get("status") or None,
                                    open_only=request.args.get("open") in ("1", "true"),
                                    limit=_int_arg("limit", 100, 1, 1000), offset=_int_arg("offset", 0, 0, 10**9),
                                    order=request.args.get("order") or "urgency",
                                    needs_pin=None if pin is None else pin in ("1", "true"),
                                    cursor=request.args.get("cursor"),
                                    register=request.args.get("register") or None)
    return jsonify({"cases": rows, "count": len(rows), "next_cursor": nxt})


@bp.get("/api/cases/<int:case_id>")
@login_required
def get_case(case_id: int):
    """One case with events, routing explanation and deadline explanation."""
    return jsonify(service().get(current_user(), case_id))


@bp.post("/api/cases/<int:case_id>/actions/<action>")
@login_required
def act(case_id: int, action: str):
    """Perform a loop action: {reason, version, ...data}. 409 when the case changed meanwhile."""
    body = _json()
    reason = body.pop("reason", None)
    version = body.pop("version", None)
    if version is not None and not isinstance(version, int):
        raise BadInput("version must be an integer", field="version")
    return jsonify(service().act(current_user(), case_id, action, reason=reason, expected_version=version,
                                 data=body))


@bp.post("/api/cases/<int:case_id>/pin")
@login_required
def pin(case_id: int):
    """Manually pin a case waiting in the dispatcher queue."""
    body = _json()
    return jsonify(service().pin(current_user(), case_id, body.get("lon", body.get("x")),
                                 body.get("lat", body.get("y")), body.get("crs") or "EPSG:4326",
                                 expected_version=body.get("version")))


@bp.get("/api/cases/<int:case_id>/repeats")
@login_required
def repeats(case_id: int):
    """重复信访 counts for a case."""
    return jsonify(service().repeat_counts(current_user(), case_id))


@bp.get("/api/clusters")
@login_required
def clusters():
    """类案: space × time clusters of one category among the cases the user may see (bounded cell clustering)."""
    from cases.auth import case_scope
    from cases.clusters import cell_clusters

    days = _int_arg("days", 90, 1, 400)
    eps = _int_arg("eps_m", 300, 10, 5000)
    min_samples = _int_arg("min_samples", 5, 2, 1000)
    scope, params = case_scope(current_user())
    params.update(since=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    where = ["c.received_at >= %(since)s"]
    for arg in ("category", "region"):
        if "\x00" in (request.args.get(arg) or "") or len(request.args.get(arg) or "") > 40:
            raise BadInput(f"{arg} must be a code", field=arg)
    if request.args.get("category"):
        where.append("c.category_code LIKE %(cat)s")
        params["cat"] = request.args["category"] + "%"
    if request.args.get("region"):
        where.append("coalesce(c.grid_code, c.village_code, c.township_code, c.county_code, '') LIKE %(region)s")
        params["region"] = request.args["region"] + "%"
    out = cell_clusters(current_app.extensions["gridgov_db"], scope, params, eps_m=eps, min_samples=min_samples,
                        window_days=min(days, 30), where=tuple(where))
    return jsonify({"clusters": out, "count": len(out)})


@bp.get("/api/rates")
@login_required
def rates():
    """三率 and 四色码 of one month per unit type, over the cases the user may see (published snapshot if any)."""
    from cases import reports

    raw = request.args.get("month") or ""
    month = month_arg(raw)
    unit = request.args.get("unit") or "township"
    if unit not in reports.UNIT_COLUMNS:
        raise BadInput(f"unit must be one of {', '.join(reports.UNIT_COLUMNS)}", field="unit")
    db = current_app.extensions["gridgov_db"]
    rows = reports.compute_month(db, month.year, month.month, unit, user=current_user())
    return jsonify({"month": raw, "unit": unit, "state": reports.month_state(db, month.year, month.month),
                    "units": reports.to_json(rows)})


@bp.get("/api/colour-tasks")
@login_required
def colour_tasks():
    """四色码 consequences (seed 004: 表扬, 督导组推动, 专项督查督办, 约谈) of the units in the user's jurisdiction,
    created when a month's rates are published, each with its due date; `month` (YYYY-MM) and `open=1` filter."""
    from cases import reports

    raw = request.args.get("month")
    month = month_arg(raw) if raw else None
    rows = reports.colour_tasks(current_app.extensions["gridgov_db"], current_user(),
                                (month.year, month.month) if month else None,
                                open_only=request.args.get("open") in ("1", "true"))
    return jsonify({"tasks": rows, "count": len(rows)})


@bp.post("/api/colour-tasks/<int:task_id>/done")
@login_required
def colour_task_done(task_id: int):
    """Mark a 四色码 consequence done (upper centers of the unit's jurisdiction; others' tasks are 404)."""
    from cases import reports

    return jsonify(reports.complete_colour_task(current_app.extensions["gridgov_db"], current_user(), task_id))
