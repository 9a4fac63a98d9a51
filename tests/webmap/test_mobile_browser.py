"""The grid officer's phone page /m in headless Debian Chromium at 390×844, against a live app on PostGIS.

What an officer would check: logging in, counters and the most urgent case first, an action that changes the
case, a stale version refused with a clear message and nothing typed lost, a photo that appears on the case,
a patrol report retried on a flaky network that registers one case; and what the intranet needs: no request
leaves 127.0.0.1, no console errors, no horizontal scrolling, tap targets of at least 44 px, citizen text with
<script> shown as text.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from cases.auth import User, create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from tests.webmap.conftest import login

GRID1 = "990101001001001"
PHONE = (390, 844)
XSS = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">楼道堆满杂物"
# Buttons, links and form fields the officer taps must be at least this tall and wide (px).
TAP_CHECK = """() => [...document.querySelectorAll('button, a[href], input, select, textarea, .leaflet-bar a')]
  .filter(e => e.offsetParent !== null && e.type !== 'checkbox')
  .map(e => { const r = e.getBoundingClientRect(); return [e.id || e.className || e.tagName, r.width, r.height]; })
  .filter(([n, w, h]) => w < 44 || h < 44)"""


@pytest.fixture
def city(db):
    """The tiny city with two officers and three open cases in officer off1's grid, due at different times."""
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    create_user(db, "off1", "password123", "grid_officer", "990101001001", display_name="张伟", grid_code=GRID1,
                hash_method="pbkdf2:sha256:1000")
    create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002",
                hash_method="pbkdf2:sha256:1000")
    create_user(db, "city", "password123", "city_center", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)
    now = dt.datetime.now(dt.UTC)
    ids = {}
    for key, title, content, age_days in [("K-new", "新来的投诉", "刚刚受理", 0),
                                          ("K-old", "楼道堆物", XSS, 3),
                                          ("K-mid", "路灯不亮", "晚上太黑", 1)]:
        c = svc.intake({"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": title,
                        "content": content, "reporter_name": "王小明", "reporter_phone": "13700001111",
                        "lon": X0 + 0.004, "lat": Y0 + 0.005, "submission_key": key,
                        "received_at": (now - dt.timedelta(days=age_days)).isoformat()}, disp)
        ids[key] = c["id"]
    return {"db": db, "ids": ids, "svc": svc, "disp": disp}


def phone(open_page, base, **ctx):
    page = open_page(base + "/m", viewport=PHONE, is_mobile=True, has_touch=True, **ctx)
    page.fill("#login-user", "off1")
    page.fill("#login-pass", "password123")
    page.click("#login-submit")
    page.wait_for_selector(".m-item")
    return page


def assert_phone_ok(page, allowed_errors=()):
    assert page.gg_external == [], page.gg_external
    errors = [e for e in page.gg_console_errors if not any(a in e for a in allowed_errors)]
    assert errors == [], errors
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    assert page.evaluate(TAP_CHECK) == []


def jpeg_bytes(colour=(20, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), colour).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.browser
def test_officer_logs_in_sees_urgent_first_acts_and_a_stale_version_keeps_the_text(city, live_app, open_page):
    base = live_app()
    db, ids = city["db"], city["ids"]
    page = phone(open_page, base)
    # counters are the SQL counts of the officer's scope
    counts = page.request.get(base + "/api/cases/counts").json()["counts"]
    assert counts["pending_sign"] == 3
    for name in ("pending_sign", "handling", "due_soon", "overdue"):
        assert page.inner_text(f'[data-count="{name}"]') == str(counts[name])
    # most urgent first: the case received 3 days ago (sign deadline passed) leads, then 1 day, then today
    order = [int(x) for x in page.eval_on_selector_all(".m-item", "els => els.map(e => e.dataset.case)")]
    assert order == [ids["K-old"], ids["K-mid"], ids["K-new"]]
    assert "已超期" in page.inner_text(f'[data-case="{ids["K-old"]}"]')
    assert page.inner_text('[data-count="overdue"]') == "1"
    # a 领导包案 on the case is shown with its leader, unit, target date and plan (as text)
    db.execute("INSERT INTO case_package (case_id, leader, unit, plan, standard, target_date, assigned_at) VALUES "
               "(%s, '王某某（副县长）', '县住建局', '<b>一案一策</b>：约谈物业', '案结事了', '2026-12-31', now())",
               (ids["K-old"],))
    # citizen text with <script> is shown as text, never run
    page.click(f'[data-case="{ids["K-old"]}"]')
    page.wait_for_selector("#case-title")
    assert "<script>" in page.inner_text("#case-content")
    assert page.evaluate("window.__xss") is None
    assert page.eval_on_selector("#case-content", "e => e.querySelectorAll('script, img').length") == 0
    page.wait_for_selector("#case-map .leaflet-interactive")  # the grid outline and the point are drawn
    pkg = page.inner_text("#case-package")
    assert "王某某（副县长）" in pkg and "县住建局" in pkg and "2026-12-31" in pkg and "<b>一案一策</b>" in pkg
    deadlines = page.inner_text("#case-deadlines")  # due dates with their explanation
    assert "签收截止" in deadlines and "个工作日" in deadlines and "次日起算" in deadlines
    assert_phone_ok(page)
    # an action changes the case: 签收
    page.click('[data-action="sign"]')
    page.click("#act-submit")
    page.wait_for_selector('.m-case-head .m-tag:text("签收")')
    assert db.fetchone("SELECT status FROM case_record WHERE id = %s", (ids["K-old"],))["status"] == "signed"
    # a stale version: the officer types a reply while the city center supervises the case meanwhile
    page.click('[data-action="reply"]')
    page.fill("#act-text", "已联系物业清理楼道，明日复查。")
    city_user = User(**{k: v for k, v in db.fetchone(
        "SELECT id, username, role, region_code FROM app_user WHERE username = 'city'").items()})
    city["svc"].act(city_user, ids["K-old"], "supervise", reason="请加快办理")
    page.click("#act-submit")
    page.wait_for_selector("#act-stale")
    assert "已被他人更新" in page.inner_text("#act-stale") and "内容已保留" in page.inner_text("#act-stale")
    assert page.input_value("#act-text") == "已联系物业清理楼道，明日复查。"
    assert db.fetchone("SELECT status FROM case_record WHERE id = %s", (ids["K-old"],))["status"] == "signed"
    page.click("#act-reload")
    page.wait_for_selector("#act-stale", state="detached")
    assert page.input_value("#act-text") == "已联系物业清理楼道，明日复查。"  # still there after the reload
    assert "督办" in page.inner_text("#case-events")
    page.click("#act-submit")
    page.wait_for_selector('.m-case-head .m-tag:text("答复")')
    row = db.fetchone("SELECT status, version FROM case_record WHERE id = %s", (ids["K-old"],))
    assert row["status"] == "replied"
    ev = db.fetchone("SELECT data FROM case_event WHERE case_id = %s AND action = 'reply'", (ids["K-old"],))
    assert ev["data"]["reply"] == "已联系物业清理楼道，明日复查。"
    # the refused request is the only console message (Chromium logs every 4xx response)
    assert_phone_ok(page, allowed_errors=("status of 409",))


@pytest.mark.browser
def test_photo_upload_appears_on_the_case(city, live_app, open_page):
    base = live_app()
    page = phone(open_page, base)
    cid = city["ids"]["K-new"]
    page.click(f'[data-case="{cid}"]')
    page.wait_for_selector("#case-photo-input", state="attached")  # hidden behind its 添加照片 label
    page.set_input_files("#case-photo-input", files=[{"name": "现场.jpg", "mimeType": "image/jpeg",
                                                      "buffer": jpeg_bytes()}])
    page.wait_for_selector("#case-photos img")
    page.wait_for_function("() => [...document.querySelectorAll('#case-photos img')].every(i => i.naturalWidth > 0)")
    assert page.eval_on_selector("#case-photos img", "i => i.naturalWidth") == 120
    n = city["db"].fetchone("SELECT count(*) AS n FROM case_attachment WHERE case_id = %s", (cid,))["n"]
    assert n == 1
    assert "上传照片" in page.inner_text("#case-events")
    assert_phone_ok(page)


@pytest.mark.browser
def test_patrol_report_with_gps_and_photo_retried_on_a_flaky_network_is_one_case(city, live_app, open_page):
    base = live_app()
    lat, lon = Y0 + 0.006, X0 + 0.003
    page = phone(open_page, base, geolocation={"latitude": lat, "longitude": lon, "accuracy": 12},
                 permissions=["geolocation"])
    page.click("#m-report-btn")
    page.wait_for_selector("#report-pos:has-text('GPS')")
    assert f"{lat:.5f}" in page.inner_text("#report-pos")
    page.wait_for_selector("#report-map .leaflet-interactive")  # the officer's grid is drawn under the marker
    page.fill("#report-title", "三组路段路灯不亮")
    page.fill("#report-content", "<b>晚上</b>一片漆黑")
    page.set_input_files("#report-photos", files=[{"name": "p1.jpg", "mimeType": "image/jpeg",
                                                   "buffer": jpeg_bytes()},
                                                  {"name": "p2.jpg", "mimeType": "image/jpeg",
                                                   "buffer": jpeg_bytes((200, 200, 0))}])
    assert page.eval_on_selector_all("#report-thumbs img", "els => els.length") == 2
    # the first submission reaches the server, but its answer is lost on the way back
    lost = []

    def flaky(route):
        if route.request.method == "POST" and not lost:
            route.fetch()          # the server registers the case …
            lost.append(1)
            route.abort()          # … and the phone never hears back
        else:
            route.continue_()

    page.route("**/api/cases", flaky)
    page.click("#report-submit")
    page.wait_for_selector("#report-error:has-text('不会重复登记')")
    assert page.inner_text("#report-submit") == "重新提交"
    page.click("#report-submit")
    page.wait_for_selector("#report-ok:not([hidden])")
    assert "已登记" in page.inner_text("#report-ok") or "已上报" in page.inner_text("#report-ok")
    db = city["db"]
    rows = db.fetchall("SELECT id, channel, status, grid_code, ST_X(geom) AS lon, ST_Y(geom) AS lat, content "
                       "FROM case_record WHERE title = '三组路段路灯不亮'")
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["channel"] == "grid_report" and r["grid_code"] == GRID1 and r["content"] == "<b>晚上</b>一片漆黑"
    assert abs(r["lon"] - lon) < 1e-6 and abs(r["lat"] - lat) < 1e-6
    assert db.fetchone("SELECT count(*) AS n FROM case_attachment WHERE case_id = %s", (r["id"],))["n"] == 2
    assert_phone_ok(page, allowed_errors=("net::ERR_FAILED",))


@pytest.mark.browser
def test_login_form_refuses_a_wrong_password_in_chinese(city, live_app, open_page):
    base = live_app()
    page = open_page(base + "/m", viewport=PHONE, is_mobile=True, has_touch=True)
    page.fill("#login-user", "off1")
    page.fill("#login-pass", "wrong-password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.inner_text("#login-error") == "用户名或密码错误"
    assert_phone_ok(page, allowed_errors=("status of 401",))
    login(page, base, "off2", "password123")
    page.goto(base + "/m")
    page.wait_for_selector(".m-empty")  # off2 has no cases: the empty list says so
    assert page.inner_text(".m-empty") == "暂无在办案件" and page.inner_text('[data-count="pending_sign"]') == "0"
