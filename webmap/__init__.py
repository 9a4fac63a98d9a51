"""gridgov's web layer: the only package that imports Flask and folium.

`create_app(settings=None, db=None, test_config=None)` builds the app; nothing happens at import.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.routing import IntegerConverter

from gis.errors import GridgovError, NotFound, PayloadTooLarge

ASSETS = Path(__file__).resolve().parent / "assets" / "node_modules"
log = logging.getLogger("gridgov.web")


def create_app(settings=None, db=None, test_config: dict | None = None, read_db=None) -> Flask:
    """Build the Flask app around an open Database (or open one from the settings); `read_db` (or
    GRIDGOV_READ_DATABASE_URL) is a streaming replica that serves the wall map's and the review's reads."""
    from gis.settings import load_settings, session_secret

    settings = settings or load_settings()
    app = Flask(__name__, static_folder=None)
    app.config.update(SECRET_KEY=settings.secret_key or (secrets.token_hex(32) if test_config else
                                                         session_secret(settings)),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=bool(getattr(settings, "secure_cookies", False)))
    if app.config["SESSION_COOKIE_SECURE"]:
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"  # Secure, Path=/, no Domain: not settable by subdomains
    app.url_map.converters["int"] = BoundedInt
    app.config["READS_FIRST_SECONDS"] = getattr(settings, "reads_first_ms", 20) / 1000
    if test_config:
        app.config.update(test_config)
    if db is None:
        from gis.runtime import open_database

        db = open_database(settings, log=log.info).db
    app.extensions["gridgov_db"] = db
    if read_db is None and getattr(settings, "read_database_url", None):
        from gis.db import Database

        read_db = Database(settings.read_database_url, maxconn=settings.db_pool_max)
    app.extensions["gridgov_read_db"] = read_db or db
    app.extensions["gridgov_settings"] = settings
    app.json.ensure_ascii = False
    _register_errors(app)
    from webmap import compress, security

    compress.init_app(app)  # before security: its after_request (CSP nonces in HTML) must run first
    security.init_app(app)
    from webmap import views

    app.register_blueprint(views.bp)
    for mod in ("webmap.api_geo", "webmap.api_cases", "webmap.ogcapi", "webmap.open311", "webmap.exports",
                "webmap.openapi", "webmap.wall", "webmap.api_attachments", "webmap.mobile",
                "webmap.review"):
        _maybe_register(app, mod)
    from webmap import fastpath

    fastpath.install(app)   # POST /api/submissions from machine clients without Flask's machinery
    from webmap import priority

    priority.install(app)   # outermost: intake yields to the wall's and officers' reads in flight
    return app


class BoundedInt(IntegerConverter):
    """`<int:…>` path parts fit a bigint: a longer number is a 404, never a database error."""

    def __init__(self, map, fixed_digits=0, min=None, max=2**63 - 1, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _maybe_register(app: Flask, module: str) -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        app.register_blueprint(importlib.import_module(module).bp)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(GridgovError)
    def _gridgov(e: GridgovError):
        if e.status == 503:
            log.warning("unavailable: %s", e.message)
            return jsonify(e.to_dict()), 503
        if e.status >= 500:
            log.exception("server error")
            return jsonify({"error": {"code": "internal", "message": "服务器内部错误"}}), 500
        resp = jsonify(e.to_dict())
        if getattr(e, "retry_after", None):
            resp.headers["Retry-After"] = str(e.retry_after)
        return resp, e.status

    @app.errorhandler(404)
    def _404(e):
        return jsonify(NotFound(f"no such resource: {request.path}").to_dict()), 404

    @app.errorhandler(405)
    def _405(e):
        return jsonify({"error": {"code": "method_not_allowed",
                                  "message": f"{request.method} is not allowed on {request.path}"}}), 405

    @app.errorhandler(Exception)
    def _500(e):
        from werkzeug.exceptions import HTTPException

        if isinstance(e, HTTPException):
            if e.code == 413:
                return jsonify(PayloadTooLarge("请求过大 (request body too large)").to_dict()), 413
            return jsonify({"error": {"code": e.name.lower().replace(" ", "_"), "message": e.description}}), e.code
        log.exception("unhandled error on %s", request.path)
        return jsonify({"error": {"code": "internal", "message": "服务器内部错误"}}), 500
