"""Case attachments (photos) over HTTP: upload to a case, list, download; intake with photos (multipart).

Handlers parse, call cases.attachments, serialise. Every read is scoped by cases.auth.case_scope (another
officer gets 404); bytes are served with their sniffed type, `nosniff`, an inline Content-Disposition and a
sandboxing CSP, never from a name the client chose.
"""

from __future__ import annotations

import io
import json

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from cases import attachments as att
from gis.errors import BadInput, PayloadTooLarge
from webmap.api_cases import current_user, login_required, service

bp = Blueprint("attachments_api", __name__)
# One multipart request: up to three photos of MAX_BYTES each plus the form fields.
MAX_REQUEST = att.MAX_PER_REQUEST * att.MAX_BYTES + 1024 * 1024


def _db():
    return current_app.extensions["gridgov_db"]


def _uploaded_photos() -> list:
    """The `photo` files of this multipart request, checked and re-encoded (413/400 when refused)."""
    request.max_content_length = MAX_REQUEST
    try:
        files = request.files.getlist("photo")
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"上传内容过大：一次最多 {att.MAX_PER_REQUEST} 张、每张不超过 "
                              f"{att.MAX_BYTES // 1048576} MB", field="photo") from None
    return att.prepare_photos([(f.filename, f.read(att.MAX_BYTES + 1)) for f in files])


def intake_with_photos():
    """POST /api/cases as multipart: part `case` = the JSON submission, parts `photo` = 0–3 images.

    Photos are checked before the case is written (a refused photo registers nothing); a retried request
    with the same submission_key returns the first case and adds only photos it does not have yet.
    """
    photos = _uploaded_photos()
    raw = request.form.get("case")
    if not raw:
        raise BadInput("multipart intake needs a `case` part with the JSON submission", field="case")
    try:
        sub = json.loads(raw)
    except ValueError:
        raise BadInput("case is not valid JSON", field="case") from None
    user = current_user()
    case = service().intake(sub, user)
    added = att.add_photos(_db(), service(), user, case["id"], photos, intake=True)
    case["attachments_added"] = added
    return jsonify(case), 200 if case.get("duplicate_submission") else 201


@bp.get("/api/cases/<int:case_id>/attachments")
@login_required
def list_attachments(case_id: int):
    """Photos of a case (metadata and URLs). Who: anyone who may see the case (case_scope), else 404."""
    rows = att.list_attachments(_db(), current_user(), case_id)
    return jsonify({"attachments": rows, "count": len(rows)})


@bp.post("/api/cases/<int:case_id>/attachments")
@login_required
def upload(case_id: int):
    """Add 1–3 photos (multipart `photo`). Who: the case's handler, intake/upper centers of its jurisdiction,
    or whoever registered it; the case must be visible (case_scope) and still open."""
    att.require_visible(_db(), current_user(), case_id)  # a case the user may not see is 404, whatever the body
    if request.mimetype != "multipart/form-data":
        raise BadInput("upload photos as multipart/form-data with parts named photo", field="photo")
    photos = _uploaded_photos()
    if not photos:
        raise BadInput("no photo in the request", field="photo")
    added = att.add_photos(_db(), service(), current_user(), case_id, photos)
    return jsonify({"attachments": added, "count": len(added)}), 201


@bp.get("/api/cases/<int:case_id>/attachments/<int:attachment_id>")
@login_required
def download(case_id: int, attachment_id: int):
    """The photo's bytes. Who: anyone who may see the case (case_scope), else 404."""
    a = att.get_attachment(_db(), current_user(), case_id, attachment_id)
    resp = send_file(io.BytesIO(a["bytes"]), mimetype=a["mime"], download_name=a["file_name"],
                     as_attachment=request.args.get("download") == "1", max_age=0)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp
