"""One exception hierarchy for gridgov: each error carries an HTTP status and a safe public message.

The web layer turns these into `{"error": {"code", "message", "field"}}` with the status; the
command line prints the message on one line and exits non-zero. Nothing internal goes in `message`.
"""

from __future__ import annotations


class GridgovError(Exception):
    """Base error: `status` for HTTP, `code` a stable machine word, `message` safe to show."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadInput(GridgovError):
    status = 400
    code = "bad_input"


class Unauthorized(GridgovError):
    status = 401
    code = "unauthorized"


class Forbidden(GridgovError):
    status = 403
    code = "forbidden"


class NotFound(GridgovError):
    status = 404
    code = "not_found"


class Conflict(GridgovError):
    status = 409
    code = "conflict"


class Unprocessable(GridgovError):
    status = 422
    code = "unprocessable"


class PayloadTooLarge(GridgovError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(GridgovError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(GridgovError):
    """Throttled (login attempts): `retry_after` seconds until the next try is considered."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int = 60, field: str | None = None):
        super().__init__(message, field=field, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(GridgovError):
    """A dependency (the database) is down; the client may retry."""

    status = 503
    code = "unavailable"


class ConfigError(GridgovError):
    """Bad configuration or environment (database unreachable, PostGIS missing, port in use …)."""

    status = 500
    code = "config"
