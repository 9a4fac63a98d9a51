"""The surfaces' shared assets: CJK font, chart library and page helpers are served by gridgov itself."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from grids.store import load_city
from tests.factories import tiny_city


@pytest.fixture
def base(db, live_app):
    load_city(db, tiny_city(), progress=lambda m: None)
    return live_app()


def test_vendor_serves_fonts_charts_and_helpers(base):
    css = urllib.request.urlopen(base + "/vendor/@fontsource/noto-sans-sc/400.css").read().decode()
    assert "Noto Sans SC" in css and "woff2" in css
    first = css.split("url(./")[1].split(")")[0]
    font = urllib.request.urlopen(f"{base}/vendor/@fontsource/noto-sans-sc/{first}")
    assert font.status == 200 and len(font.read()) > 1000
    assert urllib.request.urlopen(base + "/vendor/echarts/dist/echarts.min.js").status == 200
    assert "X-CSRF-Token" in urllib.request.urlopen(base + "/static/gg.js").read().decode()
    for path in ("/vendor/@fontsource/noto-sans-sc/100.css", "/vendor/@fontsource/noto-sans-sc/package.json",
                 "/vendor/@fontsource/noto-sans-sc/files/noto-sans-sc-4-100-normal.woff2",
                 "/vendor/echarts/dist/echarts.js.map", "/static/../views.py"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path)
        assert e.value.code == 404, path


@pytest.mark.browser
def test_cjk_text_renders_with_the_served_font(base, open_page):
    page = open_page(base + "/")
    page.wait_for_selector(".leaflet-container")
    page.set_content(f'<html><head><link rel="stylesheet" href="{base}/vendor/@fontsource/noto-sans-sc/400.css">'
                     '</head><body style="font-family:\'Noto Sans SC\'">网格化社会治理</body></html>')
    loaded = page.evaluate("document.fonts.load('16px \"Noto Sans SC\"', '网格').then(f => f.length)")
    assert loaded >= 1  # a face of the served font covering these characters was downloaded and loaded
    assert page.gg_external == []
