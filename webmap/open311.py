"""Open311 GeoReport v2 with a Chinese profile, at /open311/v2 — for 12345 hotline systems and other integrators.

Every resource exists as `.json` and `.xml`. The API key is a gridgov API token, given as the `api_key`
parameter (spec), as `Authorization: Bearer ggt_…`, or as the password of HTTP Basic auth (for clients that
cannot add parameters, e.g. through ~/.netrc). Reads without a key are allowed by the spec but see no cases.
POST /requests goes through CaseService.intake. The mapping lives in cases/open311.py; docs/open311.md
describes the profile.
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, current_app, request

from gis.errors import BadInput, Forbidden, GridgovError, Unauthorized

bp = Blueprint("open311", __name__)
V2 = "/open311/v2"
FMT = "<any(json, xml):fmt>"
# Element names of list items in the XML form (GeoReport's own where it names them).
_ITEM = {"services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
         "endpoints": "endpoint", "formats": "format", "updates": "update", "errors": "error"}


def _db():
    return current_app.extensions["gridgov_db"]


def _reader():
    """The caller for reads: a key without the read permission reads nothing (403)."""
    user = _user()
    perms = getattr(user, "permissions", None)
    if perms is not None and "read" not in perms:
        raise Forbidden("this API key may not read cases (permission read)", field="api_key")
    return user


def _user():
    """The caller behind api_key / Bearer / Basic, or None. A bad key is 401, never anonymous."""
    from cases.auth import user_for_token
    from webmap.api_cases import current_user

    key = request.values.get("api_key")
    if not key and request.authorization and request.authorization.type == "basic":
        key = request.authorization.password
    if key:
        return user_for_token(_db(), key.strip())
    return current_user()


def _xml(node: ET.Element, value) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _xml(ET.SubElement(node, k), v)
    elif isinstance(value, list):
        item = _ITEM.get(node.tag, "item")
        for v in value:
            _xml(ET.SubElement(node, item), v)
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        node.text = str(value)


def _out(fmt: str, root: str, payload, status: int = 200, headers: dict | None = None) -> Response:
    if fmt == "xml":
        node = ET.Element(root)
        _xml(node, payload)
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(node, encoding="utf-8")
        return Response(body, status=status, mimetype="text/xml", headers=headers)
    return Response(json.dumps(payload, ensure_ascii=False), status=status, mimetype="application/json",
                    headers=headers)


@bp.errorhandler(GridgovError)
def _error(e: GridgovError):
    """The house error shape in JSON; GeoReport's <errors> in XML."""
    status = e.status if e.status < 500 else 500
    if (request.view_args or {}).get("fmt") == "xml":
        desc = e.message if e.status < 500 else "服务器内部错误"
        if e.field:
            desc = f"{e.field}: {desc}"
        return _out("xml", "errors", [{"code": status, "description": desc}], status=status)
    if e.status >= 500:
        return Response(json.dumps({"error": {"code": "internal", "message": "服务器内部错误"}}), status=500,
                        mimetype="application/json")
    return Response(json.dumps(e.to_dict(), ensure_ascii=False), status=status, mimetype="application/json")


@bp.get(f"{V2}/discovery.{FMT}")
def discovery(fmt: str):
    """Where the endpoint is, what it speaks, whom to ask."""
    base = request.url_root.rstrip("/") + V2
    return _out(fmt, "discovery", {
        "changeset": "2026-01-01T00:00:00+08:00", "contact": "市综治中心 (gridgov) — see docs/open311.md",
        "key_service": "API keys are gridgov API tokens (POST /api/tokens, or ask the city's administrator)",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                       "changeset": "2026-01-01T00:00:00+08:00", "type": "production",
                       "formats": ["application/json", "text/xml"]}]})


@bp.get(f"{V2}/services.{FMT}")
def services(fmt: str):
    """Service list: the category taxonomy."""
    from cases.open311 import services as list_services

    return _out(fmt, "services", list_services(_db()))


@bp.get(f"{V2}/services/<code>.{FMT}")
def service_definition(fmt: str, code: str):
    """Attributes of one service (kind, emergency, anonymous)."""
    from cases.open311 import service_definition as definition

    return _out(fmt, "service_definition", definition(_db(), code))


@bp.get(f"{V2}/requests.{FMT}")
def get_requests(fmt: str):
    """Requests the key's user may see (none without a key); `updated_after` pages by a Link header."""
    from urllib.parse import urlencode

    from cases.open311 import list_requests

    args = request.args.to_dict()
    rows, nxt = list_requests(_db(), _reader(), args)
    headers = {}
    if nxt:
        keep = {k: v for k, v in args.items() if k not in ("after_id", "api_key")}
        headers["Link"] = f'<{request.base_url}?{urlencode({**keep, **nxt})}>; rel="next"'
    return _out(fmt, "service_requests", rows, headers=headers)


@bp.get(f"{V2}/requests/<rid>.{FMT}")
def get_request(fmt: str, rid: str):
    """One request (as a one-element list, as the spec says) with its update history."""
    from cases.open311 import get_request as one
    from cases.open311 import out_crs

    return _out(fmt, "service_requests", [one(_db(), _reader(), rid, out_crs(request.args.get("crs")))])


@bp.get(f"{V2}/tokens/<token>.{FMT}")
def get_token(fmt: str, token: str):
    """The service_request_id created for a POST token."""
    from cases.open311 import lookup_token

    return _out(fmt, "service_requests", [lookup_token(_db(), _reader(), token)])


@bp.post(f"{V2}/requests.{FMT}")
def post_request(fmt: str):
    """Create a request (form-encoded as the spec says, or JSON) with an API key; intake via CaseService."""
    from cases.open311 import submission
    from cases.service import INTAKE_ROLES
    from webmap.api_cases import service

    user = _user()
    if user is None:
        raise Unauthorized("api_key is required to create a service request", field="api_key")
    if user.role not in INTAKE_ROLES:
        raise Forbidden(f"role {user.role} does not register cases", field="role")
    perms = getattr(user, "permissions", None)
    if perms is not None and "intake" not in perms:
        raise Forbidden("this API key may not register cases (permission intake)", field="api_key")
    form = request.form.to_dict() if request.form else (request.get_json(silent=True) or {})
    if not isinstance(form, dict):
        raise BadInput("request body must be form fields or a JSON object")
    for name, value in list(form.items()):
        if isinstance(value, bool):
            form[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            form[name] = str(value)
        elif not isinstance(value, str | type(None)):
            raise BadInput(f"{str(name)[:64]} must be a text or a number", field=str(name)[:64])
    sub = submission(form)
    try:
        case = service().intake(sub, user, view=False)
    except BadInput as e:  # name GeoReport's fields, not ours
        e.field = _FIELD_NAMES.get(e.field, e.field)
        raise
    from cases.open311 import get_request as one
    from gis.errors import NotFound

    try:
        created = one(_db(), user, case["case_no"])
    except NotFound:  # registered for a jurisdiction the key's user does not see: the essentials only
        created = {}
    out = {"service_request_id": case["case_no"], "token": sub["submission_key"],
           "service_notice": created.get("service_notice", ""), "account_id": form.get("account_id") or "",
           "expected_datetime": created.get("expected_datetime"), "status_zh": created.get("status_zh"),
           "grid_code": created.get("grid_code", case.get("grid_code")), "center_code": created.get("center_code"),
           "agency_responsible": created.get("agency_responsible")}
    return _out(fmt, "service_requests", [out], status=200 if case.get("duplicate_submission") else 201)


_FIELD_NAMES = {"lon": "long", "x": "long", "y": "lat", "category_code": "service_code",
                "address_text": "address_string", "reporter_name": "last_name", "reporter_phone": "phone",
                "content": "description"}
