"""Township review: the page, its endpoints, and the per-unit × day aggregate, which stays exact under intake,
actions and direct updates; a month's per-grid rates from it equal the monthly report's (cases/reports.py),
to the fraction."""

from __future__ import annotations

import datetime as dt

import pytest

from cases import reports
from cases.policy import load_rate_policy
from cases.review import heat_points, parse_period, previous_period, rates_of, review, unit_counts
from gis.errors import BadInput, Forbidden, NotFound
from tests.factories import get_user_by_username
from tests.test_demo_year import NOW, demo  # noqa: F401 - the module fixture (a demo city with cases)


RECOMPUTE = """
    SELECT * FROM ({}) d WHERE (received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved,
        replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
        <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ORDER BY unit_code, day, category_code"""


def _stored(db):
    return db.fetchall("""
        SELECT * FROM case_day_stats WHERE (received, sign_cohort, signed_ok, returned, forwarded, reply_cohort,
            resolved, replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
            <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY unit_code, day, category_code""")


def _recomputed(db):
    sql = db.fetchone("SELECT case_day_stats_delta_sql('SELECT c.*, 1 AS sgn FROM case_record c') q")["q"]
    return db.fetchall(RECOMPUTE.format(sql))


def test_aggregate_equals_a_recomputation_after_intake_actions_and_updates(demo):  # noqa: F811
    db, city, loaded, _ = demo
    assert loaded > 0
    stored = _stored(db)
    assert stored == _recomputed(db)
    assert sum(r["received"] for r in stored) == db.fetchone(
        "SELECT count(*) n FROM case_record WHERE status <> 'merged' AND merged_into IS NULL")["n"]
    # the loop through the service: intake, sign, reply, evaluate
    from cases.service import CaseService

    svc = CaseService(db)
    dispatcher = get_user_by_username(db, "dispatcher")
    a = city.addresses[7]
    case = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "路灯不亮", "content": "review test",
                       "lon": a["geom"].x, "lat": a["geom"].y}, dispatcher)
    assert _stored(db) == _recomputed(db)
    # direct updates of every kind of field, several rows in one statement, and a delete
    db.execute("UPDATE case_record SET evaluation = '不满意', evaluated_at = closed_at, solved = false "
               "WHERE id IN (SELECT id FROM case_record WHERE closed_at IS NOT NULL ORDER BY id LIMIT 25)")
    db.execute("UPDATE case_record SET returned_count = returned_count + 1, forwarded = true "
               "WHERE id IN (SELECT id FROM case_record WHERE dispatched_at IS NOT NULL ORDER BY id DESC LIMIT 30)")
    db.execute("UPDATE case_record SET category_code = (SELECT min(code) FROM category WHERE parent_code IS NOT NULL),"
               " grid_code = NULL WHERE id IN (SELECT id FROM case_record ORDER BY id LIMIT 10)")
    assert _stored(db) == _recomputed(db)
    assert case["id"]


def test_month_grid_rates_equal_the_monthly_report(demo):  # noqa: F811
    db, _, _, _ = demo
    cfg = load_rate_policy(db).config
    for month in ((NOW.month - 1) or 12, NOW.month - 2):
        year = NOW.year
        report = {r["unit_code"]: r["rates"] for r in reports.compute_month(db, year, month, "grid", cfg)}
        start = dt.date(year, month, 1)
        end = dt.date(year + (month == 12), month % 12 + 1, 1)
        counts = unit_counts(db, "", start, end)
        compared = 0
        for code, ur in report.items():
            mine = rates_of(counts.get(code, {}), cfg, code)
            for name in ("response", "resolution", "satisfaction", "on_time", "one_time", "return_rate",
                         "reopen_rate", "forwarding"):
                assert getattr(mine, name) == getattr(ur, name), (code, name)
            assert mine.composite == ur.composite, code
            compared += ur.response.denominator + ur.resolution.denominator
        assert compared > 100     # the month has real cohorts to compare


def test_review_of_a_township_and_its_access(demo):  # noqa: F811
    db, _, _, _ = demo
    town = get_user_by_username(db, "township")
    start, end = parse_period(None, None, f"{NOW.year}-{NOW.month - 1:02d}")
    out = review(db, town, town.region_code, start, end)
    assert out["unit"]["code"] == town.region_code and out["grids"]
    assert out["totals"]["received"] == sum(g["received"] for g in out["grids"]) + out["totals"]["unlocated_to_grid"]
    direct = db.fetchone("SELECT count(*) n FROM case_record WHERE status <> 'merged' AND merged_into IS NULL "
                         "AND coalesce(grid_code, village_code, township_code) LIKE %s AND received_at >= %s "
                         "AND received_at < %s", (town.region_code + "%",
                                                  dt.datetime(start.year, start.month, 1, tzinfo=NOW.tzinfo),
                                                  dt.datetime(end.year, end.month, 1, tzinfo=NOW.tzinfo)))["n"]
    assert out["totals"]["received"] == direct
    assert out["colour"]["label"] and out["colour"]["reasons"]
    assert sum(w["received"] for w in out["weeks"]) == direct
    pts = heat_points(db, town, town.region_code, start, end)
    assert 0 < len(pts["points"]) <= direct
    with pytest.raises(Forbidden):
        review(db, get_user_by_username(db, "officer"), town.region_code, start, end)
    other = db.fetchone("SELECT code FROM region WHERE level = 'township' AND code NOT LIKE %s LIMIT 1",
                        (town.region_prefix + "%",))["code"]
    with pytest.raises(NotFound):
        review(db, town, other, start, end)
    with pytest.raises(BadInput):
        review(db, town, "x'; drop", start, end)


def test_periods():
    assert parse_period(None, None, "2026-03") == (dt.date(2026, 3, 1), dt.date(2026, 4, 1))
    assert previous_period(dt.date(2026, 3, 1), dt.date(2026, 4, 1)) == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    assert parse_period("2026-01-05", "2026-01-11", None) == (dt.date(2026, 1, 5), dt.date(2026, 1, 12))
    assert previous_period(dt.date(2026, 1, 5), dt.date(2026, 1, 12)) == (dt.date(2025, 12, 29), dt.date(2026, 1, 5))
    for bad in ((None, None, "2026-13"), ("2026-01-10", "2026-01-01", None), ("2020-01-01", "2026-01-01", None)):
        with pytest.raises(BadInput):
            parse_period(*bad)


# -- the page and its HTTP endpoints ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def review_app(demo):  # noqa: F811
    import threading

    from werkzeug.serving import make_server

    from gis.settings import Settings
    from webmap import create_app

    db = demo[0]
    app = create_app(settings=Settings(secret_key="t"), db=db, test_config={"TESTING": False})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def _client(app, username):
    c = app.test_client()
    r = c.post("/api/login", json={"username": username, "password": "gridgov2026"},
               headers={"Origin": "http://localhost"})
    assert r.status_code == 200, r.get_json()
    return c


MONTH = f"{NOW.year}-{NOW.month - 1:02d}"


def test_review_endpoints_scope_and_excel(demo, review_app):  # noqa: F811
    import io

    import openpyxl

    db = demo[0]
    app, _ = review_app
    town = get_user_by_username(db, "township")
    c = _client(app, "township")
    j = c.get(f"/api/review?unit={town.region_code}&month={MONTH}").get_json()
    assert j["unit"]["code"] == town.region_code
    assert c.get(f"/api/review?unit={town.region_code}&month=2026-13").status_code == 400
    other = db.fetchone("SELECT code FROM region WHERE level = 'township' AND code NOT LIKE %s LIMIT 1",
                        (town.region_prefix + "%",))["code"]
    assert c.get(f"/api/review?unit={other}&month={MONTH}").status_code == 404
    assert c.get(f"/api/review/heat?unit={other}&month={MONTH}").status_code == 404
    assert _client(app, "officer").get(f"/api/review?unit={town.region_code}&month={MONTH}").status_code == 403
    assert app.test_client().get(f"/api/review?unit={town.region_code}&month={MONTH}").status_code == 401
    # Excel: the table, and a grid name that looks like a formula is neutralised
    code = j["grids"][0]["grid_code"]
    db.execute("UPDATE grid SET name = '=HYPERLINK(\"http://x\")' WHERE code = %s", (code,))
    r = c.get(f"/api/review/export.xlsx?unit={town.region_code}&month={MONTH}")
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment")
    ws = openpyxl.load_workbook(io.BytesIO(r.data))["网格研判"]
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    assert len(rows) == len(j["grids"]) + 1
    names = {row[0]: row[1] for row in rows}
    assert names[code] == "'=HYPERLINK(\"http://x\")"
    assert rows[-1][0] == "合计" and rows[-1][3] == j["totals"]["received"]


@pytest.mark.browser
def test_review_page_in_chromium(demo, review_app, open_page):  # noqa: F811
    db = demo[0]
    app, base = review_app
    town = get_user_by_username(db, "township")
    # a 类案 of five cases whose title is a script: shown as text, never run
    spot = db.fetchone("SELECT ST_X(ST_PointOnSurface(geom)) x, ST_Y(ST_PointOnSurface(geom)) y, code, village_code "
                       "FROM grid WHERE code LIKE %s ORDER BY code LIMIT 1", (town.region_code + "%",))
    cat = db.fetchone("SELECT code FROM category WHERE parent_code IS NOT NULL ORDER BY code LIMIT 1")["code"]
    db.execute("""
        INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom, grid_code, village_code,
                                 township_code, county_code, category_code)
        SELECT 'XSS' || i, '12345热线', '求决', '<script>window.__pwned = 1</script>', 'received',
               %(t)s::timestamptz + i * interval '1 hour', ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), %(g)s,
               %(v)s, %(tw)s, left(%(tw)s, 6), %(cat)s
        FROM generate_series(1, 5) i""", {"t": f"{MONTH}-10T10:00:00+08:00", "x": spot["x"], "y": spot["y"],
                                            "g": spot["code"], "v": spot["village_code"], "tw": town.region_code,
                                            "cat": cat})
    page = open_page("", viewport=(1600, 900))
    r = page.request.post(base + "/api/login", data={"username": "township", "password": "gridgov2026"},
                          headers={"Origin": base})
    assert r.ok
    page.goto(f"{base}/review?unit={town.region_code}&month={MONTH}")
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    summary = review(db, town, town.region_code, *parse_period(None, None, MONTH))
    assert page.get_attribute("body", "data-review-grids") == str(len(summary["grids"]))
    assert page.get_attribute("body", "data-review-total") == str(summary["totals"]["received"])
    assert int(page.get_attribute("body", "data-heat-points")) > 0
    assert page.locator("canvas.leaflet-heatmap-layer").count() == 1          # the heat layer is drawn
    assert page.locator("#grids tbody tr").count() == len(summary["grids"])
    # the week slider steps through the weekly heat layers
    page.locator("#week").fill("1")
    assert int(page.get_attribute("body", "data-heat-points")) < summary["totals"]["received"] + 5
    # a 类案 link lists its cases, with the citizen's text as text
    links = page.locator("#clusters a[data-i]")
    assert links.count() >= 1
    for i in range(links.count()):
        links.nth(i).click()
        page.wait_for_selector("body[data-cluster-cases]")
        if "<script>" in page.inner_text("#clustercases"):
            break
    assert "<script>window.__pwned = 1</script>" in page.inner_text("#clustercases")
    # 四色码整改 / 领导包案 / 信访积案 tabs (issue 9): the unit's lists, and a task marked 落实 from the page
    task = db.fetchone("INSERT INTO colour_task (month, unit_type, unit_code, unit_name, colour, consequence, reason, "
                       "due_date, created_at) VALUES (%s, 'township', %s, '<b>镇</b>', 'red', '约谈', "
                       "'<script>window.__pwned = 2</script>', %s, now()) RETURNING id",
                       (dt.date(int(MONTH[:4]), int(MONTH[5:]), 1), town.region_code, dt.date(2026, 1, 5)))
    pick = db.fetchone("SELECT id FROM case_record WHERE township_code = %s AND channel = 'letter' ORDER BY id "
                       "LIMIT 1", (town.region_code,)) or db.fetchone(
        "SELECT id FROM case_record WHERE township_code = %s ORDER BY id LIMIT 1", (town.region_code,))
    db.execute("INSERT INTO case_package (case_id, leader, unit, plan, standard, target_date, assigned_at) VALUES "
               "(%s, '王某某（副县长）', '县信访局', '一案一策', '案结事了', '2026-12-31', now()) "
               "ON CONFLICT DO NOTHING",
               (pick["id"],))
    page.locator("#go").click()
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    packaged = db.fetchone("SELECT count(*) n FROM case_package p JOIN case_record c ON c.id = p.case_id "
                           "WHERE c.township_code = %s", (town.region_code,))["n"]
    backlog = db.fetchone("SELECT count(*) n FROM case_record WHERE township_code = %s AND channel IN "
                          "('online_petition', 'letter', 'visit', 'leader_reception') AND status NOT IN "
                          "('closed', 'merged', 'rejected') AND received_at < now() - interval '90 days'",
                          (town.region_code,))["n"]
    assert int(page.get_attribute("body", "data-packages")) == packaged >= 1
    assert int(page.get_attribute("body", "data-backlog")) == backlog
    page.locator('.rv-tabs button[data-tab="packages"]').click()
    assert page.locator("#packages").is_visible() and not page.locator("#grids").is_visible()
    assert "王某某（副县长）" in page.inner_text("#packages")
    page.locator('.rv-tabs button[data-tab="tasks"]').click()
    assert "<script>window.__pwned = 2</script>" in page.inner_text("#tasks")
    assert "已逾期" in page.inner_text("#tasks")
    page.locator(f'#tasks button[data-task="{task["id"]}"]').click()
    page.wait_for_selector("#tasks .done")
    assert db.fetchone("SELECT done_at FROM colour_task WHERE id = %s", (task["id"],))["done_at"] is not None
    # a 信访积案 without a leader gets one from the page (领导包案: leader, unit, 一案一策, standard, target date)
    stale = db.fetchone("""
        INSERT INTO case_record (case_no, channel, kind, title, status, received_at, dispatched_at, geom, grid_code,
                                 village_code, township_code, county_code, category_code)
        VALUES ('JA1', 'letter', '求决', '<i>多年未解决的宅基地纠纷</i>', 'handling', now() - interval '120 days',
                now() - interval '119 days', ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), %(g)s, %(v)s, %(tw)s,
                left(%(tw)s, 6), %(cat)s) RETURNING id""",
                       {"x": spot["x"], "y": spot["y"], "g": spot["code"], "v": spot["village_code"],
                        "tw": town.region_code, "cat": cat})
    page.locator("#go").click()
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    assert int(page.get_attribute("body", "data-backlog")) == backlog + 1
    page.locator('.rv-tabs button[data-tab="backlog"]').click()
    assert "<i>多年未解决的宅基地纠纷</i>" in page.inner_text("#backlog")
    page.locator(f'#backlog button[data-package="{stale["id"]}"]').click()
    page.fill("#pkgleader", "李某某（县委副书记）")
    page.fill("#pkgunit", "县自然资源局")
    page.fill("#pkgplan", "一案一策：实地勘界，召开听证会")
    page.locator("#pkgsave").click()
    page.locator("#backlog", has_text="李某某（县委副书记）").wait_for()
    pkg = db.fetchone("SELECT leader, unit, plan, standard, target_date FROM case_package WHERE case_id = %s",
                      (stale["id"],))
    assert pkg["leader"] == "李某某（县委副书记）" and pkg["unit"] == "县自然资源局" and pkg["standard"]
    assert db.fetchone("SELECT count(*) AS n FROM case_event WHERE case_id = %s AND action = 'package'",
                       (stale["id"],))["n"] == 1
    assert page.evaluate("window.__pwned") is None
    assert page.gg_external == []
    assert page.gg_console_errors == []


@pytest.mark.browser
def test_review_png_for_the_meeting(demo, tmp_path):  # noqa: F811
    from webmap.snapshot import review_png

    db = demo[0]
    town = get_user_by_username(db, "township")
    out = review_png(db, town, town.region_code, MONTH, tmp_path / "review.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1600 and int.from_bytes(data[20:24], "big") == 900
    assert db.fetchone("SELECT count(*) n FROM api_token WHERE name = 'review-png' AND NOT revoked")["n"] == 0
    with pytest.raises(NotFound):
        review_png(db, town, "229999999", MONTH, tmp_path / "x.png")


def test_day_stats_trigger_runs_the_current_delta_sql_as_static_statements(db):
    """Issue 11: the trigger's upsert is static SQL generated from case_day_stats_upsert_sql (plans kept per
    session, not re-planned per intake); a migration that redefines the delta SQL must regenerate it. The
    installed body holds exactly today's three statements and no EXECUTE."""
    body = db.fetchone("SELECT prosrc FROM pg_proc WHERE proname = 'case_day_stats_sync'")["prosrc"]
    for src in ("SELECT n.*, 1 AS sgn FROM new_rows n", "SELECT o.*, -1 AS sgn FROM old_rows o",
                "SELECT o.*, -1 AS sgn FROM old_rows o UNION ALL SELECT n.*, 1 FROM new_rows n"):
        assert db.fetchone("SELECT case_day_stats_upsert_sql(%s) AS q", (src,))["q"] in body
    assert "EXECUTE" not in body.upper()
