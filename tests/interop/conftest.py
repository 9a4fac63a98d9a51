"""Live servers on loopback for the interoperability tests (real third-party clients talk to them)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server


@pytest.fixture
def serve(db):
    """Start the app on `db` on a free loopback port; returns its base URL. Stopped after the test."""
    from gis.settings import Settings
    from webmap import create_app

    servers = []

    def start() -> str:
        app = create_app(settings=Settings(secret_key="t"), db=db, test_config={"TESTING": False})
        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
