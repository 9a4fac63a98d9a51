"""The wall in headless Chromium: login on the page, layers, KPI numbers equal to the database's, drill-down
and breadcrumb, self-refresh, escaped citizen text, nothing leaving 127.0.0.1, no console errors."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest

from cases.calendar import TZ
from cases.deadlines import CHANNELS
from tests.factories import X0, Y0
from tests.webmap import wall_data
from tests.webmap.conftest import login

pytestmark = pytest.mark.browser
READY = "body[data-ready='1']"


@pytest.fixture
def wall(db, live_app):
    ids = wall_data.build(db)
    base = live_app(TESTING=False, WALL_REFRESH_SECONDS=2)
    return base, ids


def attr(page, name):
    return page.evaluate(f"document.body.getAttribute('data-{name}')")


def wait_js(page, expr: str, timeout=15000):
    """Poll a JS expression until truthy (page.evaluate runs outside the page's CSP; wait_for_function would
    need 'unsafe-eval', which the wall's CSP rightly refuses)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expr):
        assert time.monotonic() < deadline, f"timed out waiting for {expr}"
        page.wait_for_timeout(100)


def wait_attr(page, name, value, timeout=15000):
    wait_js(page, f"document.body.getAttribute('data-{name}') === {value!r}", timeout)


def test_login_layers_kpi_drilldown_and_breadcrumb(wall, db, open_page):
    base, ids = wall
    page = open_page(base + "/wall")
    page.wait_for_selector("#login-form", state="visible")
    assert "登录" in page.inner_text("#wall-login")
    page.fill("#login-user", "city")
    page.fill("#login-pass", wall_data.PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(READY, state="attached", timeout=20000)

    # layers: boundaries from PostGIS, centers by level, the live layer
    assert (attr(page, "layer-county"), attr(page, "layer-township")) == ("1", "2")
    assert attr(page, "layer-centers-city-county") == "2"
    assert attr(page, "live-kind") in ("clusters", "points", "grid")
    assert page.locator(".gg-township").count() == 2

    # KPI numbers equal the database's
    exp = wall_data.expected(db)
    shown = {k: int(page.get_attribute(f"#kpi-{k}", "data-value")) for k in ("today", "open", "overdue", "due24",
                                                                                "emergency")}
    assert shown == {"today": exp["today_total"], "open": exp["open"], "overdue": exp["overdue"],
                     "due24": exp["due_24h"], "emergency": exp["emergency"]}
    assert page.inner_text("#kpi-open") == str(exp["open"])
    chart = page.evaluate("(() => { const o = echarts.getInstanceByDom(document.getElementById('chart-channels'))"
                          ".getOption(); return [o.yAxis[0].data, o.series[0].data]; })()")
    drawn = dict(zip(*chart, strict=True))
    assert {k: v for k, v in drawn.items() if v} == {CHANNELS[c]: n for c, n in exp["today"].items()}
    trend = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-trend')).getOption().series[0].data")
    assert len(trend) == 7 and trend[-1] == exp["today_total"]
    wait_attr(page, "rates", "1")
    gauges = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-rates')).getOption().series.length")
    assert gauges == 3

    # drill down: township (badge) → grid (polygon) → case list → case; breadcrumb back
    page.evaluate("ggWall.map.setZoom(11)")
    wait_attr(page, "live-kind", "township")
    page.click(".gg-badge[data-code='990101001']")
    wait_attr(page, "crumbs", "3")
    assert page.inner_text("#wall-crumbs").split() == ["测试市", "›", "甲区", "›", "东风街道"]
    wait_js(page, "Number(document.body.getAttribute('data-layer-grid')) >= 3")
    page.locator("path.grid-990101001001001").dispatch_event("click")
    page.wait_for_selector("#grid-cases li")
    assert attr(page, "crumbs") == "4"
    first = page.locator("#grid-cases li").first
    assert wall_data.SCRIPT_TITLE in first.inner_text()  # shown as text
    page.click(f"#grid-cases li[data-case='{ids['script']}']")
    page.wait_for_selector("#case-detail")
    assert attr(page, "crumbs") == "5"
    assert wall_data.SCRIPT_TITLE in page.inner_text("#case-detail h3")
    assert page.inner_text("#case-content") == "<img src=x onerror=alert(1)>夜间噪音"
    assert page.locator("#wall-drawer img, #wall-drawer script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert "137****1111" in page.inner_text("#case-detail") and "13700001111" not in page.content()
    page.click("#wall-crumbs a[data-level='city']")
    wait_attr(page, "crumbs", "1")
    assert page.locator("#wall-drawer").is_hidden()

    # the colouring switch
    page.click(".mode-switch button[data-mode='density']")
    assert attr(page, "mode") == "density" and "在办密度" in page.inner_text("#wall-legend")

    assert page.gg_external == []
    assert page.gg_console_errors == []


def test_wall_refreshes_itself_without_reloading(wall, db, open_page):
    base, ids = wall
    page = open_page(None)
    login(page, base, "county", wall_data.PASSWORD)
    page.goto(base + "/wall")
    page.wait_for_selector(READY, state="attached", timeout=20000)
    before = int(page.get_attribute("#kpi-open", "data-value"))
    stamp = attr(page, "updated")
    page.evaluate("window.__same_page = 1")
    from cases.auth import authenticate
    from cases.service import CaseService

    CaseService(db).intake({"channel": "visit", "kind": "求助", "category_code": "CJ01", "title": "新来访",
                            "lon": X0 + 0.012, "lat": Y0 + 0.004, "submission_key": "wall-live"},
                           authenticate(db, "disp", wall_data.PASSWORD), now=dt.datetime.now(TZ))
    wait_js(page, f"Number(document.getElementById('kpi-open').dataset.value) === {before + 1}")
    wait_js(page, f"document.body.getAttribute('data-updated') !== {stamp!r}")
    assert page.evaluate("window.__same_page") == 1
    assert page.inner_text("#wall-updated").count(":") == 2
    assert page.gg_console_errors == [] and page.gg_external == []


def _px(lon, lat, z):
    n = 256 * 2 ** z
    phi = math.radians(lat)
    return (lon + 180) / 360 * n, (1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * n


def test_gcj02_tiles_are_shifted_onto_the_wgs84_overlays(wall, open_page):
    from gis.coords import wgs_to_gcj

    base, _ = wall
    page = open_page(None)
    login(page, base, "city", wall_data.PASSWORD)
    page.goto(base + "/wall")
    page.wait_for_selector(READY, state="attached", timeout=20000)
    lon, lat, z = 124.35, 43.17, 15
    off = page.evaluate(
        "([lon, lat, z]) => { const d = document.createElement('div'); d.style.cssText = 'width:400px;height:300px';"
        " document.body.appendChild(d); const m = L.map(d).setView([lat, lon], z);"
        " const b = ggBaseMap.attach(m, {tiles: 'data:image/gif;base64,R0lGODlhAQABAAAAACw=#{z}/{x}/{y}',"
        " tiles_crs: 'gcj02'}); return b.tiles.ggOffset; }", [lon, lat, z])
    glon, glat = (float(v) for v in wgs_to_gcj(lon, lat))
    (cx, cy), (gx, gy) = _px(lon, lat, z), _px(glon, glat, z)
    assert abs(off[0] - (cx - gx)) <= 1 and abs(off[1] - (cy - gy)) <= 1
    assert abs(off[0]) > 50  # hundreds of metres at street zoom: a real shift, not a rounding
    assert page.gg_external == []
