"""OGC API Features at /ogcapi: GDAL's own client (ogrinfo, ogr2ogr) against a live server on loopback, and the
protocol details (bbox, datetime, property filters, paging, scoping and masking of cases) through Flask."""

from __future__ import annotations

import os
import re
import subprocess

import pyogrio.raw
import pytest
import shapely

from cases.auth import create_user, issue_token
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import create_generation, load_city, write_boundaries
from tests.factories import X0, Y0, sq, tiny_city
from webmap import create_app

GEO_LAYERS = {"counties": ("region", "level = 'county' AND generation = 1"),
              "townships": ("region", "level = 'township' AND generation = 1"),
              "villages": ("region", "level = 'village' AND generation = 1"),
              "grids": ("grid", "generation = 1"), "grids_g1": ("grid", "generation = 1"),
              "grids_g2": ("grid", "generation = 2"), "centers": ("center", "true"),
              "addresses": ("address", "true")}


def _gdal(*args, token: str | None = None, timeout: int = 120) -> str:
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "30", "CPL_DEBUG": "OFF"}
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _layers(ogrinfo_out: str) -> dict:
    """{layer: (feature count, (x0, y0, x1, y1))} parsed from `ogrinfo -so -al`."""
    out = {}
    for block in ogrinfo_out.split("Layer name: ")[1:]:
        name = block.split("\n", 1)[0].strip()
        count = int(re.search(r"Feature Count: (\d+)", block).group(1))
        m = re.search(r"Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", block)
        out[name] = (count, tuple(float(v) for v in m.groups()) if m else None)
    return out


@pytest.fixture
def city(db):
    """The tiny city (generation 1, active), a redrawn grid layer as generation 2 (inactive) and three cases."""
    load_city(db, tiny_city(), progress=lambda m: None)
    with db.connection() as conn, conn.cursor() as cur:
        gen2 = create_generation(cur, "redraw", activate=False)
        write_boundaries(cur, gen2, [], [dict(code="990101001001001", name="向阳社区合并网格", grid_type="社区",
                                              village_code="990101001001", geom=sq(0, 0, 0.02, 0.01))])
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    off2 = create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002",
                       hash_method="pbkdf2:sha256:1000")
    city = create_user(db, "city", "password123", "city_center", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)
    cases = []
    for i, (dx, day) in enumerate([(0.004, 3), (0.014, 10), (0.03, 20)]):
        cases.append(svc.intake({"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01",
                                 "title": f"噪音{i}", "reporter_name": "王小明", "reporter_phone": "13700001111",
                                 "lon": X0 + dx, "lat": Y0 + 0.005, "received_at": f"2025-03-{day:02d}T09:00:00"},
                                disp))
    return {"disp": disp, "off2": off2, "city": city, "cases": cases,
            "tokens": {u.username: issue_token(db, u, "gdal") for u in (disp, off2, city)}}


def _db_extent(db, table, where):
    r = db.fetchone(f"SELECT count(*) n, ST_XMin(ST_Extent(geom)) x0, ST_YMin(ST_Extent(geom)) y0, "
                    f"ST_XMax(ST_Extent(geom)) x1, ST_YMax(ST_Extent(geom)) y1 FROM {table} WHERE {where}")
    return r["n"], (r["x0"], r["y0"], r["x1"], r["y1"])


def test_ogrinfo_lists_layers_with_counts_and_extents(db, city, serve):
    base = serve()
    layers = _layers(_gdal("ogrinfo", "-ro", "-so", "-al", f"OAPIF:{base}/ogcapi"))
    assert set(layers) == set(GEO_LAYERS)  # anonymous: no cases layer
    for name, (table, where) in GEO_LAYERS.items():
        n, ext = _db_extent(db, table, where)
        assert layers[name][0] == n, name
        assert layers[name][1] == pytest.approx(ext, abs=1e-6), name
    assert layers["grids_g2"][0] == 1 and layers["grids"][0] == 3


def test_ogrinfo_with_a_token_sees_only_the_callers_cases(db, city, serve):
    base = serve()
    everyone = _gdal("ogrinfo", "-ro", "-al", f"OAPIF:{base}/ogcapi", "cases", token=city["tokens"]["city"])
    assert _layers(everyone)["cases"][0] == 3
    # the city center does not handle these cases: the reporter is masked
    assert "王**" in everyone and "王小明" not in everyone and "13700001111" not in everyone
    officer = _gdal("ogrinfo", "-ro", "-al", "-where", "1=1", f"OAPIF:{base}/ogcapi", "cases",
                    token=city["tokens"]["off2"])
    assert _layers(officer)["cases"][0] == 1
    assert "噪音1" in officer and "噪音0" not in officer
    assert "王小明" in officer  # the officer handles the case in their own grid


def test_ogr2ogr_copies_the_grids_exactly(db, city, serve, tmp_path):
    base = serve()
    for layer, gen in (("grids", 1), ("grids_g2", 2)):
        gpkg = tmp_path / f"{layer}.gpkg"
        # a page size of 2 makes GDAL follow the `next` links
        _gdal("ogr2ogr", "-f", "GPKG", str(gpkg), f"OAPIF:{base}/ogcapi", layer, "-oo", "PAGE_SIZE=2")
        meta, _fids, wkbs, fields = pyogrio.raw.read(gpkg)
        codes = list(fields[list(meta["fields"]).index("code")])
        got = dict(zip(codes, shapely.from_wkb(wkbs), strict=True))
        want = {r["code"]: shapely.from_wkb(bytes(r["wkb"])) for r in db.fetchall(
            "SELECT code, ST_AsBinary(geom) wkb FROM grid WHERE generation = %s", (gen,))}
        assert set(got) == set(want)
        for code, geom in want.items():
            assert shapely.equals_exact(got[code], geom, tolerance=0), code


@pytest.fixture
def client(db, city):
    return create_app(settings=Settings(secret_key="t"), db=db).test_client()


def _get(client, url, token=None, status=200):
    r = client.get(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    assert r.status_code == status, r.json
    return r


def test_landing_conformance_and_collection(client):
    links = {x["rel"]: x["href"] for x in _get(client, "/ogcapi").json["links"]}
    assert links["conformance"].endswith("/ogcapi/conformance") and links["data"].endswith("/ogcapi/collections")
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in \
        _get(client, "/ogcapi/conformance").json["conformsTo"]
    c = _get(client, "/ogcapi/collections/grids").json
    assert c["extent"]["spatial"]["bbox"] == [[pytest.approx(X0), pytest.approx(Y0), pytest.approx(X0 + 0.04),
                                               pytest.approx(Y0 + 0.01)]]
    assert _get(client, "/ogcapi/collections/nope", status=404).json["error"]["field"] == "collectionId"
    assert _get(client, "/ogcapi/collections/grids_g9", status=404).json["error"]["code"] == "not_found"


def test_items_paging_bbox_and_property_filters(client):
    r = _get(client, "/ogcapi/collections/grids/items?limit=2")
    assert r.mimetype == "application/geo+json"
    page = r.json
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    nxt = next(x["href"] for x in page["links"] if x["rel"] == "next")
    page2 = _get(client, nxt.split("localhost", 1)[1]).json
    assert [f["id"] for f in page["features"] + page2["features"]] == \
        ["990101001001001", "990101001001002", "990101002001001"]
    assert not any(x["rel"] == "next" for x in page2["links"])
    # bbox of the eastern half: only the village grid (shared edges touch, so the western one counts too)
    east = _get(client, f"/ogcapi/collections/grids/items?bbox={X0 + 0.025},{Y0},{X0 + 0.04},{Y0 + 0.01}").json
    assert [f["id"] for f in east["features"]] == ["990101002001001"] and east["numberMatched"] == 1
    rural = _get(client, "/ogcapi/collections/grids/items?grid_type=乡村").json
    assert [f["properties"]["name"] for f in rural["features"]] == ["柳树村第1网格"]
    one = _get(client, "/ogcapi/collections/villages/items/990101002001").json
    assert one["properties"]["kind"] == "村" and one["geometry"]["type"] == "MultiPolygon"
    assert _get(client, "/ogcapi/collections/grids_g2/items/990101001001001").json["properties"]["name"] == \
        "向阳社区合并网格"
    for bad in ("limit=0", "limit=x", "bbox=1,2,3", "bbox=1,50,2,40", "colour=red", "datetime=yesterday",
                "f=html", "offset=-1"):
        err = _get(client, f"/ogcapi/collections/grids/items?{bad}", status=400).json["error"]
        assert err["field"] == bad.split("=")[0], bad
    assert _get(client, "/ogcapi/collections/grids/items/nope", status=404).json["error"]["field"] == "featureId"


def test_cases_need_a_token_are_scoped_masked_and_filter_by_datetime(client, city):
    assert "cases" not in [c["id"] for c in _get(client, "/ogcapi/collections").json["collections"]]
    assert _get(client, "/ogcapi/collections/cases/items", status=401).json["error"]["code"] == "unauthorized"
    assert _get(client, "/ogcapi/collections/cases", status=401)
    tok = city["tokens"]
    assert "cases" in [c["id"] for c in _get(client, "/ogcapi/collections", tok["city"]).json["collections"]]
    all_cases = _get(client, "/ogcapi/collections/cases/items", tok["city"]).json
    assert all_cases["numberMatched"] == 3
    props = all_cases["features"][0]["properties"]
    assert props["reporter_name"] == "王**" and props["reporter_phone"] == "137****1111" and props["pii_masked"]
    assert "content" not in props and "reporter_id_no" not in props
    seen_by_dispatcher = _get(client, "/ogcapi/collections/cases/items", tok["disp"]).json["features"][0]
    assert seen_by_dispatcher["properties"]["reporter_name"] == "王小明"
    mine = _get(client, "/ogcapi/collections/cases/items", tok["off2"]).json
    assert [f["properties"]["title"] for f in mine["features"]] == ["噪音1"]
    other = city["cases"][0]["id"]
    _get(client, f"/ogcapi/collections/cases/items/{other}", tok["off2"], status=404)
    assert _get(client, f"/ogcapi/collections/cases/items/{other}", tok["city"]).json["geometry"]["coordinates"] == \
        [pytest.approx(X0 + 0.004), pytest.approx(Y0 + 0.005)]
    march = _get(client, "/ogcapi/collections/cases/items?datetime=2025-03-05/2025-03-15", tok["city"]).json
    assert [f["properties"]["title"] for f in march["features"]] == ["噪音1"]
    assert _get(client, "/ogcapi/collections/cases/items?datetime=2025-03-20", tok["city"]).json["numberMatched"] == 1
    assert _get(client, "/ogcapi/collections/cases/items?datetime=../2025-03-10T12:00:00Z",
                tok["city"]).json["numberMatched"] == 2
    assert _get(client, "/ogcapi/collections/cases/items?grid_code=990101002001001",
                tok["city"]).json["numberMatched"] == 1
    _get(client, "/ogcapi/collections/cases/items?reporter_name=王小明", tok["city"], status=400)
