"""Reads first during a surge: intake yields a moment to the wall map's, the officers' and the review's reads.

On a machine whose CPU a surge of submissions fills, every request slows: the command center's wall and the
officers' lists with the rest (measured on 2 cores: the wall's KPI p99 66 ms alone, 167 ms while queued
intake ran at 8 connections). The people watching the wall are the ones who must see the surge, and an
acceptance is cheap and already queued behind the caller's own network; so while a priority read is in
flight anywhere in the server, an intake request waits until none is, at most `READS_FIRST_MS`
(`GRIDGOV_READS_FIRST_MS`, 20 ms by default; 0 turns it off), before it does its work. Without reads in flight
intake does not wait at all.

The gauge of reads in flight is shared by the server's worker processes (`share_across_processes()`, called
by `serve` before gunicorn forks; otherwise it is per process). A worker killed in the middle of a read would
leave the count one too high: the count only holds intake back while reads are actually starting or ending
(within the last `STALE_SECONDS`), so such a leftover stops mattering at once when the reads stop.
"""

from __future__ import annotations

import threading
import time

# GET endpoints whose latency people watch: the wall map, the case lists and case pages (officers,
# dispatchers, handlers), the officer's phone, the township review
PRIORITY_READS = ("/api/wall/", "/api/cases", "/api/m/", "/api/review")
INTAKE = ("/api/submissions", "/api/cases")
STALE_SECONDS = 1.0
_STEP = 0.001


class _LocalGauge:
    """Reads in flight in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._v = [0.0, 0.0]   # reads in flight, monotonic time of the last start or end

    def add(self, d: int) -> None:
        with self._lock:
            self._v[0] = max(0.0, self._v[0] + d)
            self._v[1] = time.monotonic()

    def busy(self) -> bool:
        n, last = self._v
        return n > 0 and time.monotonic() - last < STALE_SECONDS


class _SharedGauge(_LocalGauge):
    """The same in shared memory, for worker processes forked after it was made."""

    def __init__(self):
        import multiprocessing

        self._arr = multiprocessing.get_context("fork").Array("d", 2)
        self._lock = self._arr.get_lock()
        self._v = self._arr


_gauge: _LocalGauge = _LocalGauge()


def share_across_processes() -> None:
    """Make the gauge shared memory (call in the server's parent process before the workers are forked)."""
    global _gauge
    _gauge = _SharedGauge()


def reads_in_flight() -> bool:
    return _gauge.busy()


def yield_to_reads(limit_s: float) -> float:
    """Wait while a priority read is in flight, at most `limit_s`; returns the seconds waited."""
    if limit_s <= 0 or not _gauge.busy():
        return 0.0
    t0 = time.monotonic()
    deadline = t0 + limit_s
    while _gauge.busy() and time.monotonic() < deadline:
        time.sleep(_STEP)
    return time.monotonic() - t0


class ReadsFirst:
    """WSGI middleware, outermost: counts priority reads in flight and holds intake back while there are."""

    def __init__(self, app, inner):
        self.app = app
        self.inner = inner

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO") or ""
        if method == "GET" and path.startswith(PRIORITY_READS):
            _gauge.add(1)
            try:
                # the body is produced inside the call for every JSON endpoint (no streaming reads here)
                return self.inner(environ, start_response)
            finally:
                _gauge.add(-1)
        if method == "POST" and path in INTAKE:
            yield_to_reads(self.app.config.get("READS_FIRST_SECONDS", 0.0))
        return self.inner(environ, start_response)


def install(app) -> None:
    app.wsgi_app = ReadsFirst(app, app.wsgi_app)
