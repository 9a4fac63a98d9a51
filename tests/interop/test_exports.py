"""Exports of cases, grids and rates: every format opens with its own reader, scoped and masked, and no cell of a
spreadsheet can run as a formula."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pyogrio.raw
import pytest
import shapely

from cases.auth import create_user, issue_token
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

FAST = "pbkdf2:sha256:1000"


@pytest.fixture
def env(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method=FAST)
    city = create_user(db, "city", "password123", "city_center", "990100", hash_method=FAST)
    off2 = create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002",
                       hash_method=FAST)
    svc = CaseService(db)
    for i, (dx, title) in enumerate([(0.004, "=HYPERLINK(\"http://x\")"), (0.014, "+1 电压不稳"),
                                     (0.03, "@SUM(A1) 饮水")]):
        svc.intake({"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": title,
                    "reporter_name": "王小明", "reporter_phone": "13700001111", "lon": X0 + dx, "lat": Y0 + 0.005,
                    "received_at": f"2025-03-{10 + i:02d}T09:00:00"}, disp)
    app = create_app(settings=Settings(secret_key="t"), db=db)
    return app.test_client(), {u.username: issue_token(db, u, "x") for u in (disp, city, off2)}


def _get(client, url, token, status=200):
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    return r


def test_cases_in_every_format_scoped_masked_and_formula_safe(env, tmp_path):
    client, tok = env
    gj = json.loads(_get(client, "/api/exports/cases.geojson", tok["city"]).data)
    assert len(gj["features"]) == 3 and {f["properties"]["reporter_name"] for f in gj["features"]} == {"王**"}
    rows = list(csv.DictReader(io.StringIO(_get(client, "/api/exports/cases.csv", tok["city"]).data
                                           .decode("utf-8-sig"))))
    assert sorted(r["title"] for r in rows) == ["'+1 电压不稳", "'=HYPERLINK(\"http://x\")", "'@SUM(A1) 饮水"]
    assert {r["reporter_phone"] for r in rows} == {"137****1111"}
    assert float(rows[0]["lon"]) == pytest.approx(X0 + 0.004)
    wb = openpyxl.load_workbook(io.BytesIO(_get(client, "/api/exports/cases.xlsx", tok["city"]).data))
    cells = [c for row in wb.active.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    assert not any(isinstance(c.value, str) and c.value.startswith(("=", "+", "-", "@")) for c in cells)
    path = tmp_path / "cases.gpkg"
    path.write_bytes(_get(client, "/api/exports/cases.gpkg", tok["city"]).data)
    meta, _, wkbs, fields = pyogrio.raw.read(path)
    assert len(wkbs) == 3 and meta["crs"] == "EPSG:4326"
    mine = json.loads(_get(client, "/api/exports/cases.geojson", tok["off2"]).data)["features"]
    assert [f["properties"]["grid_code"] for f in mine] == ["990101001001002"]
    march = json.loads(_get(client, "/api/exports/cases.geojson?datetime=2025-03-11", tok["city"]).data)
    assert len(march["features"]) == 1
    nothing = tmp_path / "none.gpkg"
    nothing.write_bytes(_get(client, "/api/exports/cases.gpkg?datetime=2020-01-01", tok["city"]).data)
    assert len(pyogrio.raw.read(nothing)[2]) == 0
    assert client.get("/api/exports/cases.csv").status_code == 401
    _get(client, "/api/exports/cases.csv?colour=red", tok["city"], status=400)


def test_grids_and_rates(env, db, tmp_path):
    client, tok = env
    path = tmp_path / "grids.gpkg"
    path.write_bytes(_get(client, "/api/exports/grids.gpkg", tok["city"]).data)
    meta, _, wkbs, fields = pyogrio.raw.read(path)
    codes = list(fields[list(meta["fields"]).index("code")])
    want = {r["code"]: shapely.from_wkb(bytes(r["wkb"])) for r in db.fetchall(
        "SELECT code, ST_AsBinary(geom) wkb FROM grid")}
    for code, geom in zip(codes, shapely.from_wkb(wkbs), strict=True):
        assert shapely.equals_exact(geom, want[code], tolerance=0)
    rows = list(csv.DictReader(io.StringIO(_get(client, "/api/exports/grids.csv", tok["city"]).data
                                           .decode("utf-8-sig"))))
    assert len(rows) == 3 and rows[0]["wkt"].startswith("MULTIPOLYGON")
    rates = json.loads(_get(client, "/api/exports/rates.geojson?month=2025-03&unit=grid", tok["city"]).data)
    assert {f["id"] for f in rates["features"]} == {"990101001001001", "990101001001002", "990101002001001"}
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in rates["features"])
    wb = openpyxl.load_workbook(io.BytesIO(_get(client, "/api/exports/rates.xlsx?month=2025-03&unit=township",
                                                tok["city"]).data))
    header = [c.value for c in next(wb.active.iter_rows())]
    assert "unit_code" in header and "colour_label" in header
    _get(client, "/api/exports/rates.csv?month=2025-13", tok["city"], status=400)
    _get(client, "/api/exports/rates.csv?month=2025-03&unit=planet", tok["city"], status=400)
    _get(client, "/api/exports/rates.gpkg?month=2025-03&unit=department", tok["city"], status=400)
