"""POST /api/submissions from a machine client, answered without Flask (issue 11: intake near the database's
ceiling).

A surge channel (a 12345 system, a mini-program's back end) hands submissions over with an API token. The
work of an acceptance is small (cases.queue.accept: the token, the checks, the grid, one INSERT), and Flask's
request machinery, hooks and error handlers cost more CPU than all of it: measured under wrk on 2 cores,
~940 acceptances/s through Flask against ~3,800/s for a bare WSGI INSERT. This middleware answers the
plain case itself — POST, that exact path, no query string, `Authorization: Bearer`, a JSON body with a
Content-Length within the JSON limit, no `Origin` and no chunking — through the same code the Flask route
calls: `security.strict_json_loads`, `cases.auth.user_for_token`, the token's "intake" permission and
`cases.queue.accept`, with the same status codes, JSON error shape and response headers. Anything else
(a browser session, a form, an odd header) goes on to Flask, which checks it in full and gives the same
answer the slow way. tests/webmap/test_submissions.py sends every case both ways and compares.
"""

from __future__ import annotations

import json
import logging

from gis.errors import Forbidden, GridgovError

log = logging.getLogger("gridgov.web")

PATH = "/api/submissions"


# A JSON answer runs no script and embeds nothing: the strictest policy, the same every time.
_JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_STATIC_HEADERS = [("Content-Type", "application/json"), ("Content-Security-Policy", _JSON_CSP),
                   ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "same-origin"), ("Cross-Origin-Opener-Policy", "same-origin"),
                   ("Cache-Control", "no-store"), ("Pragma", "no-cache")]


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [*_STATIC_HEADERS, ("Content-Length", str(len(body)))]


STATUS = {200: "200 OK", 202: "202 Accepted", 400: "400 BAD REQUEST", 401: "401 UNAUTHORIZED",
          403: "403 FORBIDDEN", 404: "404 NOT FOUND", 409: "409 CONFLICT", 413: "413 REQUEST ENTITY TOO LARGE",
          415: "415 UNSUPPORTED MEDIA TYPE", 422: "422 UNPROCESSABLE ENTITY", 429: "429 TOO MANY REQUESTS",
          500: "500 INTERNAL SERVER ERROR", 503: "503 SERVICE UNAVAILABLE"}


class SubmissionFastPath:
    """WSGI middleware in front of the Flask app (`app.wsgi_app`)."""

    def __init__(self, app, inner):
        self.app = app
        self.inner = inner

    def _mine(self, environ) -> bool:
        from webmap.security import JSON_MAX_BYTES

        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return False
        if not self.app.config.get("SUBMISSIONS_FAST_PATH", True):
            return False
        if environ.get("QUERY_STRING") or "HTTP_ORIGIN" in environ or "HTTP_SEC_FETCH_SITE" in environ \
                or "HTTP_TRANSFER_ENCODING" in environ or "HTTP_COOKIE" in environ:
            return False
        if environ.get("HTTP_AUTHORIZATION", "")[:7].lower() != "bearer ":
            return False
        if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() != "application/json":
            return False
        length = environ.get("CONTENT_LENGTH") or ""
        return length.isdigit() and 0 < int(length) <= JSON_MAX_BYTES

    def __call__(self, environ, start_response):
        if not self._mine(environ):
            return self.inner(environ, start_response)
        code, out = self._accept(environ)
        body = json.dumps(out, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str).encode()
        start_response(STATUS.get(code, f"{code} ERROR"), _headers(body))
        return [body]

    def _accept(self, environ) -> tuple[int, dict]:
        from cases.auth import TOKEN_CACHE_SECONDS, user_for_token
        from cases.queue import accept
        from webmap.security import strict_json_loads

        try:
            raw = strict_json_loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
            if not isinstance(raw, dict):
                from gis.errors import BadInput

                raise BadInput("request body must be a JSON object")
            db = self.app.extensions["gridgov_db"]
            user = user_for_token(db, environ["HTTP_AUTHORIZATION"][7:].strip(), cache_seconds=TOKEN_CACHE_SECONDS)
            if "intake" not in user.permissions:
                raise Forbidden("API 令牌缺少权限 intake (token lacks permission intake)", field="Authorization")
            out, code = accept(self._service(), user, raw)
            return code, out
        except GridgovError as e:
            if e.status == 503:
                log.warning("unavailable: %s", e.message)
                return 503, e.to_dict()
            if e.status >= 500:
                log.exception("server error")
                return 500, {"error": {"code": "internal", "message": "服务器内部错误"}}
            return e.status, e.to_dict()
        except ValueError:   # not JSON at all (strict_json_loads raises BadInput for what it refuses)
            from gis.errors import BadInput

            return 400, BadInput("request body is not valid JSON").to_dict()
        except Exception:
            log.exception("server error")
            return 500, {"error": {"code": "internal", "message": "服务器内部错误"}}

    def _service(self):
        return case_service(self.app)


def case_service(app):
    """The app's CaseService (one per process, made on first use)."""
    svc = app.extensions.get("gridgov_cases")
    if svc is None:
        from cases.service import CaseService

        svc = app.extensions["gridgov_cases"] = CaseService(app.extensions["gridgov_db"])
    return svc


def warm(app) -> None:
    """Build what the first acceptance of a worker would otherwise build (the case service with its reference
    data, the grid index of the active generation: ~0.25 s alone, up to 1 s on a busy machine), before the
    worker takes connections: a worker started in a surge (a fresh server, a replaced worker) made its
    first callers wait up to a second (the harness's p99 at 8 connections, 13 ms → 255–445 ms). A database
    that cannot answer yet is not fatal: the first acceptance builds them then."""
    import psycopg2

    from cases.queue import grid_index

    try:
        svc = case_service(app)
        svc.reference()
        grid_index(svc)
    except (GridgovError, psycopg2.Error, KeyError, TypeError) as e:
        log.warning("worker warm-up skipped: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)


def install(app) -> None:
    """Put the fast path in front of `app` (its Flask route stays for everything the fast path passes on)."""
    app.wsgi_app = SubmissionFastPath(app, app.wsgi_app)
