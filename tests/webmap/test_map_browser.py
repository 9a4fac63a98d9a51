"""The city map renders in headless Chromium from the app's own assets, with layers from PostGIS."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading

import pytest
from werkzeug.serving import make_server

from gis.settings import Settings
from grids.store import load_city
from tests.factories import tiny_city
from webmap import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    app = create_app(settings=Settings(secret_key="t"), db=db)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def render(url: str) -> str:
    assert CHROMIUM, "chromium is not installed (./gridgov test installs it): browser tests never skip"
    with tempfile.TemporaryDirectory() as profile:
        cp = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr[-2000:]
    return cp.stdout


@pytest.mark.browser
def test_city_map_renders_counties_townships_grids(server):
    dom = render(server + "/")
    assert "leaflet-container" in dom  # Leaflet ran: served locally, no CDN reachable here
    counts = dict(re.findall(r'data-layer-(\w+)="(\d+)"', dom))
    assert counts == {"grid": "3", "township": "2", "county": "1"}, counts
    external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', dom)
    assert external == [], external  # every script and stylesheet is served by the app
    assert "/vendor/leaflet/dist/leaflet.js" in dom
    assert "leafletjs.com" not in dom  # no link to the internet either (intranet)


def test_vendor_serves_built_files_only(server):
    import urllib.error
    import urllib.request

    assert urllib.request.urlopen(server + "/vendor/leaflet/dist/leaflet.js").status == 200
    assert urllib.request.urlopen(server + "/vendor/leaflet/dist/images/marker-icon.png").status == 200
    for path in ("/vendor/leaflet/dist/leaflet-src.js", "/vendor/leaflet.heat/demo/index.html",
                 "/vendor/leaflet/package.json", "/vendor/other/dist/x.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server + path)
        assert e.value.code == 404, path
