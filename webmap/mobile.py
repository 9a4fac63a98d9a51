"""The grid officer's phone page `/m` and the small APIs it needs (counters, the case with its own actions).

The page is one template plus /static/m.js and /static/m.css; it talks to the case API (list, detail,
actions with `version`, multipart intake with photos) through gg.api. Access per route is in each docstring.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from cases import attachments as att
from cases import workflow
from cases.deadlines import CHANNELS, KINDS, MILESTONE_LABELS
from cases.service import HANDLER_ACTIONS
from gis.errors import Forbidden
from webmap.api_cases import _int_arg, current_user, login_required, service

bp = Blueprint("mobile", __name__)

# The officer's actions on the phone, in the order the buttons appear.
MOBILE_ACTIONS = ("sign", "start", "progress", "reply", "request_extension", "return", "escalate")
EVENT_EXTRA = {"receive": "登记", "attach": "上传照片", "pin": "人工定位", "merged_in": "合并来件",
               "unified_reply": "统一答复", "remind": "催办"}


def _db():
    return current_app.extensions["gridgov_db"]


@bp.get("/m")
def page():
    """The phone page (login form when not logged in). Who: anyone; data needs a login."""
    cats = _db().fetchall("SELECT code, name, parent_code FROM category ORDER BY code")
    labels = {"states": workflow.STATES, "actions": {**workflow.EVENT_LABELS, **EVENT_EXTRA},
              "roles": workflow.ROLES, "levels": workflow.LEVEL_LABELS, "milestones": MILESTONE_LABELS,
              "channels": CHANNELS, "kinds": list(KINDS), "reason_required": sorted(workflow.REASON_REQUIRED),
              "categories": cats, "max_photos": att.MAX_PER_REQUEST, "max_photo_mb": att.MAX_BYTES // 1048576}
    user = current_user()
    return render_template("mobile.html", labels=labels, me=user.to_dict() if user else None)


@bp.get("/api/cases/counts")
@login_required
def counts():
    """待签收 / 办理中 / 即将超期 / 已超期 among the open cases the user may see (case_scope). Who: any login."""
    from cases.worklist import counts as count_worklist

    return jsonify(count_worklist(_db(), current_user(), soon_hours=_int_arg("soon_hours", 24, 1, 720)))


@bp.get("/api/m/cases/<int:case_id>")
@login_required
def case_bundle(case_id: int):
    """One case for the phone: the case (scoped, masked), the actions this user may take on it now, and its
    photos. Who: anyone who may see the case (case_scope), else 404."""
    user = current_user()
    svc = service()
    case = svc.get(user, case_id)
    actions = []
    for a in case["allowed_actions"]:
        if a not in MOBILE_ACTIONS:
            continue
        if a in HANDLER_ACTIONS:
            try:  # the service's rule for handling actions: only the case's handler
                svc._check_handler(user, case, a)
            except Forbidden:
                continue
        actions.append(a)
    actions.sort(key=MOBILE_ACTIONS.index)
    photos = att.list_attachments(_db(), user, case_id)
    return jsonify({"case": case, "actions": actions, "attachments": photos,
                    "may_attach": att.user_may_attach(_db(), svc, user, case),
                    "me": {"id": user.id, "grid_code": user.grid_code, "role": user.role}})
