"""Live servers on loopback for the interoperability tests (real third-party clients talk to them)."""

from __future__ import annotations

import pytest


@pytest.fixture
def serve(live_app):
    """Start the app on `db` on a free loopback port; returns its base URL. Stopped after the test."""
    return live_app
