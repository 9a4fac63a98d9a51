"""Web security shared by pages and APIs: CSRF, origin and body checks, request limits, response headers.

- `csrf_token()`: the per-session token. Pages embed it in `<meta name="csrf-token">`; `/static/gg.js`
  sends it as `X-CSRF-Token` on every non-GET request; login and `GET /api/me` return it.
- `init_app(app)` installs, for every request:
  * query strings and paths: no NUL or other control characters, bounded length (400);
  * non-GET: a foreign `Origin` (or `Sec-Fetch-Site: cross-site`) is refused (403 `bad_origin`); a body
    must be JSON (`application/json`) or, for uploads, `multipart/form-data` — anything else is 415;
    JSON bodies are limited to `JSON_MAX_BYTES`, everything to `MAX_CONTENT_LENGTH` (413 JSON);
    a request authenticated by the session cookie must carry the session's token in `X-CSRF-Token`
    (403 `csrf_failed`); `Authorization: Bearer` requests are exempt (no ambient credential);
    `/api/login` itself is checked for Origin and JSON only;
  * API tokens act only within their permissions (`webmap.access.token_permission`);
  * every response: CSP (scripts from 'self' plus this response's nonce, which is added to the
    `<script>` tags of our HTML responses; no 'unsafe-inline' for scripts), `frame-ancestors 'none'`,
    `X-Content-Type-Options: nosniff`, `Referrer-Policy`, and `Cache-Control: no-store` on anything
    personal (every authenticated response, `/api/cases*`, `/api/me`, `/api/login`, tokens, exports).
"""

from __future__ import annotations

import hmac
import json
import math
import re
import secrets
from urllib.parse import urlsplit

from flask import g, request, session

from gis.errors import BadInput, Forbidden, PayloadTooLarge, UnsupportedMediaType

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_MAX_BYTES = 256 * 1024           # any JSON body (a case with a long letter is ~20 KB)
MAX_CONTENT_LENGTH = 26 * 1024 * 1024  # multipart uploads: three 8 MB photos + the form (cases.attachments)
MAX_ARG_LEN = 400
MAX_ARGS = 40
# Paths whose answers carry personal data or credentials even when unauthenticated (login) — never cached.
PERSONAL_PREFIXES = ("/api/cases", "/api/submissions", "/api/me", "/api/login", "/api/logout", "/api/tokens",
                     "/api/export", "/api/ledger", "/export")
_SCRIPT_TAG = re.compile(r"<script(?=[\s>])(?![^>]*\snonce=)", re.IGNORECASE)
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def csrf_token() -> str:
    """The CSRF token of the current session (created on first use)."""
    tok = session.get("csrf")
    if not tok:
        tok = session["csrf"] = secrets.token_urlsafe(24)
    return tok


def csp_nonce() -> str:
    """This response's CSP nonce (for `<script nonce=...>` in templates)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",   # folium/Leaflet set inline styles; scripts stay strict
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


MAX_JSON_DEPTH = 20
MAX_JSON_STRING = 20_000
MAX_JSON_NODES = 20_000
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth_ok(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return True
    depth = 0
    for ch in _JSON_STRING.sub("", text):
        if ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _refuse_constant(name):
    raise BadInput(f"{name} is not a number JSON allows", field="body")


def strict_json_loads(data, **kw):
    """Request bodies: nesting at most MAX_JSON_DEPTH, finite numbers within 64 bits, strings bounded and
    free of NUL, control characters and lone surrogates — anything else is a 400 naming the field."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data  # bad UTF-8: ValueError → 400
    if not _json_depth_ok(text):
        raise BadInput(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", field="body")
    obj = json.loads(text, parse_constant=_refuse_constant)
    stack, nodes = [("body", obj)], 0
    while stack:
        where, v = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise BadInput(f"JSON with more than {MAX_JSON_NODES} values", field="body")
        if isinstance(v, str):
            if len(v) > MAX_JSON_STRING:
                raise BadInput(f"{where} is longer than {MAX_JSON_STRING} characters", field=where)
            if _BAD_CHARS.search(v):
                raise BadInput(f"{where} contains a control character or an invalid code point", field=where)
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise BadInput(f"{where} is out of range", field=where)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise BadInput(f"{where} is out of range", field=where)
        elif isinstance(v, list):
            stack.extend((where, x) for x in v)
        elif isinstance(v, dict):
            for k, x in v.items():
                if len(k) > 64 or _BAD_CHARS.search(k):
                    raise BadInput("a field name is too long or contains a control character", field="body")
                stack.append((k if where == "body" else where, x))
    return obj


class _StrictJSON:
    """The json module of our requests: strict loads, Flask's dumps."""

    loads = staticmethod(strict_json_loads)

    @staticmethod
    def dumps(obj, **kw):
        from flask import json as flask_json

        return flask_json.dumps(obj, **kw)


def init_app(app) -> None:
    """Install the request checks and response headers on `app`."""
    app.config.setdefault("MAX_CONTENT_LENGTH", MAX_CONTENT_LENGTH)
    app.jinja_env.globals.update(csrf_token=csrf_token, csp_nonce=csp_nonce)
    app.before_request(_check_request)
    app.after_request(_secure_response)


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer …` header, else None."""
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def _check_request():
    request.json_module = _StrictJSON  # request bodies only (Flask sets app.json per request)
    csp_nonce()
    _check_args()
    if request.method in SAFE_METHODS:
        _check_token_scope()
        return None
    _check_origin()
    _check_body()
    if bearer_token() is None and request.endpoint != "cases_api.login" and session.get("sid"):
        sent = request.headers.get(CSRF_HEADER, "")
        want = session.get("csrf") or ""
        if not want or not hmac.compare_digest(sent.encode("utf-8", "replace"), want.encode()):
            raise Forbidden("缺少或错误的 CSRF 令牌，请刷新页面后重试 (CSRF token missing or wrong)",
                            field=CSRF_HEADER)
    _check_token_scope()
    return None


def _check_args() -> None:
    if len(request.args) > MAX_ARGS or len(request.query_string) > 8 * MAX_ARG_LEN:
        raise BadInput("too many or too long query parameters", field="query")
    if _BAD_CHARS.search(request.path):
        raise BadInput("the path contains a control character", field="path")
    for name, value in request.args.items(multi=True):
        if len(value) > MAX_ARG_LEN or len(name) > 64:
            raise BadInput(f"{name[:64]} is longer than {MAX_ARG_LEN} characters", field=name[:64])
        if _BAD_CHARS.search(name):
            raise BadInput("a parameter name contains a control character", field="query")
        if _BAD_CHARS.search(value):
            raise BadInput(f"{name} contains a control character", field=name)
        if value.isdigit() and not value.isascii():  # "²", "٣", "３": numbers are ASCII digits
            raise BadInput(f"{name} must be written with the digits 0-9", field=name)


def _check_origin() -> None:
    origin = request.headers.get("Origin")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden("跨站请求被拒绝 (cross-site request refused)", field="Origin")
    if origin is None:
        return
    parts = urlsplit(origin) if origin != "null" else None
    if parts is None or parts.scheme not in ("http", "https") or parts.netloc.lower() != request.host.lower():
        raise Forbidden("跨站请求被拒绝 (foreign Origin)", field="Origin")


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


# Endpoints whose standard mandates application/x-www-form-urlencoded bodies (machine clients with an API
# key, no cookie session): Open311 GeoReport v2 POST requests.
FORM_ENDPOINTS = frozenset({"open311.post_request"})


def _check_body() -> None:
    if not _has_body():
        return
    mime = request.mimetype or ""
    if mime == "application/x-www-form-urlencoded" and request.endpoint in FORM_ENDPOINTS:
        mime = "multipart/form-data"  # a standard that mandates form posts (GeoReport v2): same size limit
    if mime == "multipart/form-data":
        if request.content_length and request.content_length > MAX_CONTENT_LENGTH:
            raise PayloadTooLarge(f"请求过大 (at most {MAX_CONTENT_LENGTH // (1024 * 1024)} MB)")
        return
    if mime != "application/json" and not (mime.startswith("application/") and mime.endswith("+json")):
        raise UnsupportedMediaType("请求体必须是 JSON (Content-Type: application/json)", field="Content-Type")
    request.max_content_length = JSON_MAX_BYTES
    if request.content_length and request.content_length > JSON_MAX_BYTES:
        raise PayloadTooLarge(f"请求过大 (JSON bodies at most {JSON_MAX_BYTES // 1024} KB)")


def _check_token_scope() -> None:
    """A request with an API token acts only within the token's permissions (tokens never mint tokens)."""
    if bearer_token() is None or request.endpoint is None:
        return
    from webmap.access import token_permission
    from webmap.api_cases import current_user

    user = current_user()  # Unauthorized for an invalid, expired or revoked token
    need = token_permission(request.endpoint, request.method)
    if need is None:
        raise Forbidden("API 令牌不能访问该接口，请以个人身份登录 (not with an API token)", field="Authorization")
    if need != "public" and need not in getattr(user, "permissions", ()):
        raise Forbidden(f"API 令牌缺少权限 {need} (token lacks permission {need})", field="Authorization")


def _secure_response(resp):
    h = resp.headers
    nonce = g.get("csp_nonce") or csp_nonce()
    h.setdefault("Content-Security-Policy", content_security_policy(nonce))
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    from flask import current_app

    if current_app.config.get("SESSION_COOKIE_SECURE"):
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if g.get("user") is not None or request.path.startswith(PERSONAL_PREFIXES) or session.get("sid"):
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    if (resp.mimetype == "text/html" and not resp.direct_passthrough and not resp.is_streamed
            and (resp.content_length or 0) < 8 * 1024 * 1024):
        html = resp.get_data(as_text=True)
        if "<script" in html.lower():
            resp.set_data(_SCRIPT_TAG.sub(f'<script nonce="{nonce}"', html))
    return resp
