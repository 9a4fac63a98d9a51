"""The wall's aggregated endpoints on real PostGIS: numbers equal the database's, and everything is scoped."""

from __future__ import annotations

import pytest

from gis.settings import Settings
from tests.factories import X0, Y0
from tests.webmap import wall_data
from webmap import create_app

BBOX = f"{X0 - 0.01},{Y0 - 0.01},{X0 + 0.05},{Y0 + 0.02}"


@pytest.fixture
def app(db):
    app = create_app(settings=Settings(secret_key="test"), db=db)
    app.wall_ids = wall_data.build(db)
    return app


def client(app, username):
    c = app.test_client()
    r = c.post("/api/login", json={"username": username, "password": wall_data.PASSWORD})
    assert r.status_code == 200, r.json
    return c


def test_wall_data_needs_a_login_but_the_page_does_not(app):
    c = app.test_client()
    for url in ("/api/wall/kpi", "/api/wall/rates", "/api/wall/context", "/api/wall/units?level=county",
                f"/api/wall/cases?bbox={BBOX}",
                "/api/wall/grids/990101001001001/cases", "/api/wall/centers"):
        r = c.get(url)
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized", url
    page = c.get("/wall")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "登录" in html and 'name="csrf-token"' in html and "/static/wall.js" in html
    assert "<script>" not in html.split("</head>")[1].split("<script src")[0]  # no inline script in the body


def test_kpi_equals_the_database(app, db):
    exp = wall_data.expected(db)
    k = client(app, "city").get("/api/wall/kpi").json
    assert k["today"]["total"] == exp["today_total"] >= 2
    assert {c["channel"]: c["count"] for c in k["today"]["by_channel"] if c["count"]} == exp["today"]
    assert (k["open"], k["overdue"], k["due_24h"], k["emergency"]) == \
        (exp["open"], exp["overdue"], exp["due_24h"], exp["emergency"])
    assert exp["open"] == 3 and exp["overdue"] >= 1 and exp["emergency"] == 1
    assert sum(g["count"] for g in k["by_status"]) == exp["open"]
    assert len(k["trend"]) == 7 and k["trend"][-1]["intake"] == exp["today_total"]
    assert k["trend"][-2]["closed"] == exp["closed_today_minus_1"] == 1
    assert sum(d["intake"] for d in k["trend"]) == 3  # today's two plus the 3-day-old one (not the 12-day-old)
    cats = {c["name"]: c["count"] for c in k["top_categories"]}
    assert sum(cats.values()) == db.fetchone(
        "SELECT count(*) AS n FROM case_record WHERE received_at >= date_trunc('month', now() AT TIME ZONE "
        "'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'")["n"]
    assert set(cats) <= {"城乡建设", "供水供电"}


def test_month_rates_are_the_sums_of_api_rates(app):
    c = client(app, "city")
    k = {"rates": c.get("/api/wall/rates").json}
    month = k["rates"]["month"]
    rows = c.get(f"/api/rates?month={month}&unit=township").json["units"]
    from fractions import Fraction

    for name in ("response", "resolution", "satisfaction"):
        num = sum(Fraction(r["metrics"][name]["numerator"]) for r in rows)
        den = sum(r["metrics"][name]["denominator"] for r in rows)
        got = k["rates"]["rates"][name]
        assert (Fraction(got["numerator"]), got["denominator"]) == (num, den), name
    assert {u["code"]: u["colour"] for u in k["rates"]["townships"]} == {r["unit_code"]: r["colour"] for r in rows}


def test_unit_counts_per_level(app, db):
    exp = wall_data.expected(db)
    c = client(app, "city")
    town = {u["code"]: u for u in c.get("/api/wall/units?level=township").json["units"]}
    assert {k: u["open"] for k, u in town.items()} == exp["by_township"]
    assert town["990101001"]["name"] == "东风街道" and town["990101001"]["km2"] > 0
    county = c.get("/api/wall/units?level=county").json["units"]
    assert [(u["code"], u["open"], u["emergency"]) for u in county] == [("990101", 3, 1)]
    grids = c.get("/api/wall/units?level=grid&parent=990101001").json["units"]
    assert {u["code"]: u["open"] for u in grids} == {"990101001001001": 1, "990101001001002": 1}
    assert sum(u["overdue"] for u in grids) == exp["overdue"] - (0 if exp["overdue"] == 1 else 1)
    for u in grids:  # the label point is on the grid
        assert db.fetchone("SELECT ST_Covers(geom, ST_SetSRID(ST_Point(%s, %s), 4326)) AS ok FROM grid WHERE code = %s",
                           (u["lon"], u["lat"], u["code"]))["ok"]
    r = c.get("/api/wall/units?level=grid")
    assert r.status_code == 400 and r.json["error"]["field"] == "parent"
    r = c.get("/api/wall/units?level=village")
    assert r.status_code == 400 and r.json["error"]["field"] == "level"


def test_clusters_then_points_by_zoom(app):
    c = client(app, "city")
    cl = c.get(f"/api/wall/cases?bbox={BBOX}&zoom=12").json
    assert cl["kind"] == "clusters" and sum(x["n"] for x in cl["clusters"]) == 3
    pts = c.get(f"/api/wall/cases?bbox={BBOX}&zoom=17").json
    assert pts["kind"] == "points" and len(pts["points"]) == 3
    ids = app.wall_ids
    by_id = {p["id"]: p for p in pts["points"]}
    assert ids["closed"] not in by_id
    assert by_id[ids["overdue"]]["overdue"] is True and by_id[ids["emergency"]]["emergency"] is True
    assert set(by_id[ids["script"]]) == {"id", "lon", "lat", "status", "emergency", "overdue", "group"}  # no text
    west = c.get(f"/api/wall/cases?bbox={X0},{Y0},{X0 + 0.012},{Y0 + 0.01}&zoom=17").json
    assert {p["id"] for p in west["points"]} == {ids["script"]}
    for bad in ("1,2,3", "a,b,c,d", "10,10,5,5", "0,0,200,1"):
        r = c.get(f"/api/wall/cases?bbox={bad}&zoom=12")
        assert r.status_code == 400 and r.json["error"]["field"] == "bbox", bad
    assert c.get(f"/api/wall/cases?bbox={BBOX}&zoom=99").status_code == 400


def test_grid_case_list_is_scoped_and_raw_text_for_the_page_to_escape(app):
    ids = app.wall_ids
    c = client(app, "county")
    lst = c.get("/api/wall/grids/990101001001001/cases").json
    assert [x["id"] for x in lst["cases"]] == [ids["script"], ids["closed"]]  # open first
    assert lst["cases"][0]["title"] == wall_data.SCRIPT_TITLE and lst["cases"][0]["is_open"]
    assert "reporter_phone" not in lst["cases"][0]
    assert c.get("/api/wall/grids/990101009009009/cases").status_code == 404
    assert c.get("/api/wall/grids/abc/cases").status_code == 400
    officer = client(app, "off1").get("/api/wall/grids/990101001001002/cases").json
    assert officer["cases"] == []  # another grid's cases are not the officer's


def test_an_outsider_sees_nothing_of_others(app):
    c = client(app, "outsider")
    k = c.get("/api/wall/kpi").json
    assert (k["today"]["total"], k["open"], k["overdue"], k["emergency"]) == (0, 0, 0, 0)
    assert sum(d["intake"] + d["closed"] for d in k["trend"]) == 0 and k["top_categories"] == []
    rates = c.get("/api/wall/rates").json
    assert rates["townships"] == [] and rates["rates"]["response"]["denominator"] == 0
    for level in ("county", "township"):
        assert c.get(f"/api/wall/units?level={level}").json["units"] == []
    assert c.get("/api/wall/units?level=grid&parent=990101").json["units"] == []
    assert c.get(f"/api/wall/cases?bbox={BBOX}&zoom=12").json["clusters"] == []
    assert c.get(f"/api/wall/cases?bbox={BBOX}&zoom=17").json["points"] == []
    assert c.get("/api/wall/grids/990101001001001/cases").json["cases"] == []
    assert c.get(f"/api/cases/{app.wall_ids['script']}").status_code == 404
    assert [x["code"] for x in c.get("/api/wall/centers?levels=city,county,township").json["centers"]] == ["ZZ990100"]


def test_context_opens_on_the_users_jurisdiction(app):
    ctx = client(app, "county").get("/api/wall/context").json
    assert ctx["region"]["code"] == "990101" and ctx["region"]["name"] == "甲区" and ctx["region"]["city"] == "测试市"
    assert ctx["zooms"]["point"] > ctx["zooms"]["cluster"] > ctx["zooms"]["grid"] > ctx["zooms"]["township"]
    assert client(app, "off1").get("/api/wall/context").json["region"]["code"] == "990101001001"


def test_road_layer_and_base_map_settings(app, db):
    db.execute("UPDATE road SET geom = ST_SetSRID(ST_MakeLine(ST_Point(%s, %s), ST_Point(%s, %s)), 4326)",
               (X0, Y0 + 0.005, X0 + 0.04, Y0 + 0.005))
    fc = app.test_client().get("/api/layers/road").json
    assert [f["properties"]["name"] for f in fc["features"]] == ["人民大街"]
    assert fc["features"][0]["geometry"]["type"] == "LineString"
    from gis.errors import ConfigError
    from gis.settings import load_settings
    from webmap.elements import base_map_options

    s = load_settings({"GRIDGOV_TILE_URL": "http://tiles.intranet/{z}/{x}/{y}.png", "GRIDGOV_TILE_CRS": "GCJ02"})
    assert base_map_options(s) == {"tiles": "http://tiles.intranet/{z}/{x}/{y}.png", "tiles_crs": "gcj02",
                                   "roads": "/api/layers/road?simplify=5"}
    assert base_map_options(load_settings({}))["tiles"] is None
    for env in ({"GRIDGOV_TILE_CRS": "bd09"}, {"GRIDGOV_TILE_URL": "http://tiles/no-placeholders.png"}):
        with pytest.raises(ConfigError):
            load_settings(env)


def test_top_categories_roll_up_to_the_top_level_as_the_category_tree_says(app, db):
    from cases.wallstats import _top_categories

    roots = {r["code"]: (r["root"], r["name"]) for r in db.fetchall(
        "WITH RECURSIVE root AS (SELECT code, code AS root FROM category WHERE parent_code IS NULL "
        "UNION ALL SELECT k.code, r.root FROM category k JOIN root r ON k.parent_code = r.code) "
        "SELECT root.code, root.root, t.name FROM root JOIN category t ON t.code = root.root")}
    child = next(c for c, (r, _) in roots.items() if c != r)
    top, top_name = roots[child]
    other = next(c for c, (r, _) in roots.items() if r != top)
    got = _top_categories(db, {child: 3, top: 3, "不存在的类别": 4, None: 1, other: 1})
    assert got[0] == {"code": top, "name": top_name, "count": 6}
    assert got[1] == {"code": "", "name": "未分类", "count": 5}           # unknown and none, together
    assert got[2] == {"code": roots[other][0], "name": roots[other][1], "count": 1}
    assert len(_top_categories(db, {c: 1 for c in roots}, limit=2)) == 2
