"""gzip for text responses: libraries, pages and layers compressed for browsers that accept it, unchanged
otherwise, and compressed after the CSP nonces were added to the page."""

from __future__ import annotations

import gzip

import pytest

from gis.settings import Settings
from grids.store import load_city
from tests.factories import tiny_city
from webmap import ASSETS, create_app

GZ = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    return create_app(settings=Settings(secret_key="test"), db=db)


def test_vendor_files_are_gzipped_once_and_identical_after_decompression(app):
    c = app.test_client()
    raw = (ASSETS / "echarts/dist/echarts.min.js").read_bytes()
    for _ in range(2):  # the second answer comes from the in-memory cache
        r = c.get("/vendor/echarts/dist/echarts.min.js", headers=GZ)
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["Vary"]
        assert gzip.decompress(r.data) == raw and len(r.data) < len(raw) / 2
        assert int(r.headers["Content-Length"]) == len(r.data)
    plain = c.get("/vendor/echarts/dist/echarts.min.js")
    assert "Content-Encoding" not in plain.headers and plain.data == raw


def test_pages_and_layers_are_compressed_after_the_nonces(app):
    c = app.test_client()
    page = c.get("/wall", headers=GZ)
    html = gzip.decompress(page.data).decode()
    assert page.headers["Content-Encoding"] == "gzip" and '<script nonce="' in html and "/static/wall.js" in html
    js = c.get("/static/wall.js", headers=GZ)
    assert js.headers["Content-Encoding"] == "gzip" and b"ggWall" in gzip.decompress(js.data)
    small = c.get("/api/layers/region?level=township", headers=GZ)  # the tiny city: under one packet
    assert len(small.data) < 1400 and "Content-Encoding" not in small.headers
    assert small.json["type"] == "FeatureCollection"
    missing = c.get("/vendor/echarts/dist/nope.js", headers=GZ)
    assert missing.status_code == 404 and "Content-Encoding" not in missing.headers
