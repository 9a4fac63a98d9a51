"""The production web server of `serve`/`demo`: gunicorn with several worker processes (Linux).

Each worker builds its own app and connection pool after the fork (psycopg2 connections must never
cross a fork); the embedded database, when used, belongs to the parent command and outlives workers.
`GRIDGOV_SERVER=waitress` keeps the single-process server (Windows, debugging).
"""

from __future__ import annotations

import os
from collections.abc import Callable


def gunicorn_options(settings) -> dict:
    """gunicorn settings from ours: gthread workers, bounded request sizes, timeouts against slow clients."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": "gthread",
        "timeout": 60,                 # a worker stuck this long is replaced
        "graceful_timeout": 10,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": False,          # the app (and its pool) is built in each worker, after the fork
        "proc_name": "gridgov",
    }


def run_gunicorn(settings, make_app: Callable[[], object], on_start: Callable[[], None] | None = None) -> None:
    """Serve `make_app()` (called once per worker) until SIGINT/SIGTERM."""
    from gunicorn.app.base import BaseApplication

    opts = gunicorn_options(settings)

    class _App(BaseApplication):
        def load_config(self):
            for k, v in opts.items():
                self.cfg.set(k, v)
            if on_start is not None:
                self.cfg.set("when_ready", lambda server: on_start())

        def load(self):
            return make_app()

    parent = os.getpid()
    try:
        _App().run()
    except SystemExit as e:
        if os.getpid() != parent:
            # a worker leaving: gunicorn has cleaned up; never run the parent's cleanup (it would stop the
            # embedded database) in a forked worker
            os._exit(e.code if isinstance(e.code, int) else 1)
        if e.code not in (0, None):   # the arbiter exits on shutdown: the caller cleans up instead
            raise
