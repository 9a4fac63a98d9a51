"""gzip for the app's own files (/vendor libraries and fonts' CSS, /static page scripts) when the client
accepts it.

The wall's first view is mostly libraries (ECharts alone is 1.1 MB); compressed it is a third of that.
Each file version is compressed once and kept in memory. API answers are left alone: some HTTP clients (test
clients, WSGI harnesses) announce gzip without decoding it, and our JSON answers are small. Partial,
already-encoded and error responses pass untouched.
"""

from __future__ import annotations

import gzip
import threading

from flask import request

MIN_SIZE = 1400  # below one packet compression gains nothing
TYPES = ("text/", "application/json", "application/javascript", "application/geo+json", "image/svg+xml")
_CACHE: dict[tuple, bytes] = {}
_CACHE_MAX = 256
_lock = threading.Lock()


PREFIXES = ("/vendor/", "/static/")


def _compressible(resp) -> bool:
    # files (direct passthrough) and buffered bodies; never a generator stream
    return (request.path.startswith(PREFIXES) and resp.status_code == 200
            and "Content-Encoding" not in resp.headers and (resp.mimetype or "").startswith(TYPES)
            and not request.headers.get("Range")
            and (resp.direct_passthrough or not resp.is_streamed)
            and "gzip" in request.headers.get("Accept-Encoding", "").lower())


def _compress(resp):
    if not _compressible(resp):
        return resp
    key = (request.path, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
    body = _CACHE.get(key)
    if body is None:
        resp.direct_passthrough = False
        raw = resp.get_data()
        if len(raw) < MIN_SIZE:
            return resp
        body = gzip.compress(raw, compresslevel=6, mtime=0)
        with _lock:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[key] = body
    else:
        resp.direct_passthrough = False
    resp.set_data(body)
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Content-Length"] = str(len(body))
    vary = resp.headers.get("Vary")
    resp.headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
    return resp


def init_app(app) -> None:
    """Compress the app's text responses for browsers that accept gzip. Register it before any after_request
    hook that rewrites bodies (Flask runs them last-registered first), so it sees the final body."""
    app.after_request(_compress)
