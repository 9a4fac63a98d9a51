"""Web security helpers shared by pages and APIs: the per-session CSRF token.

Pages embed the token in `<meta name="csrf-token">`; `/static/gg.js` sends it as `X-CSRF-Token` on every
non-GET request. Enforcement lives in the app factory (see webmap/__init__.py).
"""

from __future__ import annotations

import secrets

from flask import session

CSRF_HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    """The CSRF token of the current session (created on first use)."""
    tok = session.get("csrf")
    if not tok:
        tok = session["csrf"] = secrets.token_urlsafe(24)
    return tok
