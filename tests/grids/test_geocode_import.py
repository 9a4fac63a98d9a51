"""The import format carries the rural components and old names the geocoder uses: a 曾用名 column for regions,
村民小组 and 自然村 columns for standard addresses (real PostGIS, the 清河 example files)."""

from __future__ import annotations

import json
from pathlib import Path

import shapely

from grids.geocode import Gazetteer, geocode
from grids.io import import_boundaries, import_records, read_grids, read_records, read_regions
from grids.store import gazetteer_rows

DATA = Path(__file__).parents[1] / "data" / "qinghe"
LIUYING_CUN = "990701002001"


def test_aliases_groups_and_hamlets_from_files_reach_the_geocoder(db, tmp_path):
    doc = json.loads((DATA / "regions.geojson").read_text(encoding="utf-8"))
    for f in doc["features"]:
        if f["properties"]["编码"] == LIUYING_CUN:
            f["properties"]["曾用名"] = "老柳村；东柳村"      # 合村并组: two merged villages
        if f["properties"]["编码"] == LIUYING_CUN[:9]:
            f["properties"]["曾用名"] = "柳营乡"              # 撤乡设镇
    src = tmp_path / "regions.geojson"
    src.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    regions = read_regions(src)
    assert {r["code"]: r["aliases"] for r in regions}[LIUYING_CUN] == ["老柳村", "东柳村"]
    grids = read_grids(DATA / "grids.geojson")
    import_boundaries(db, regions, grids, "test", commit=True, activate=True)

    grid = next(g for g in grids if g["village_code"] == LIUYING_CUN)
    pts = [shapely.Point(grid["geom"].representative_point().x + dx, grid["geom"].representative_point().y)
           for dx in (0.0, 0.0001)]
    assert all(grid["geom"].covers(p) for p in pts)
    csv = tmp_path / "addresses.csv"
    csv.write_text("地址编码,标准地址,自然村,村民小组,门牌号,经度,纬度\n"
                   f"A1,清河市河东区柳营镇柳营村窝堡屯三组8号,窝堡屯,三组,8,{pts[0].x:.7f},{pts[0].y:.7f}\n"
                   f"A2,清河市河东区柳营镇柳营村窝堡屯四组2号,窝堡屯,第四村民小组,2,{pts[1].x:.7f},{pts[1].y:.7f}\n",
                   encoding="gbk")
    records = read_records("addresses", csv)
    report = import_records(db, "addresses", records, commit=True)
    assert report.ok, report.to_dict()
    rows = db.fetchall("SELECT code, village_group, natural_village, grid_code FROM address ORDER BY code")
    assert [(r["village_group"], r["natural_village"]) for r in rows] == [("3", "窝堡屯"), ("4", "窝堡屯")]

    gaz = Gazetteer.from_rows(*gazetteer_rows(db))
    res = geocode(gaz, "柳营乡老柳村三社8号")
    assert res.confident and res.matched["code"] == "A1" and res.grid_code == grid["code"], res.to_dict()
    assert res.components["村"] == "柳营村（曾用名 老柳村）"
    res = geocode(gaz, "柳营镇窝堡屯4组2号")
    assert res.confident and res.matched["code"] == "A2"


def test_bad_group_value_is_refused(db, tmp_path):
    import_boundaries(db, read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids.geojson"), "test",
                      commit=True, activate=True)
    csv = tmp_path / "addresses.csv"
    csv.write_text("code,full_text,village_group,lon,lat\nB1,清河市某村,大队,117.2050000,36.6050000\n",
                   encoding="utf-8")
    report = import_records(db, "addresses", read_records("addresses", csv))
    assert [f.kind for f in report.findings] == ["bad_value"] and "村民小组" in report.findings[0].message


def test_road_aliases_and_old_names_from_a_roads_file(db, tmp_path):
    import_boundaries(db, read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids.geojson"), "test",
                      commit=True, activate=True)
    assert import_records(db, "addresses", read_records("addresses", DATA / "addresses.csv"), commit=True).ok
    roads = tmp_path / "roads.csv"
    roads.write_text("路名,县区编码,别名,旧路名\n滨河路,990701,滨河大道,河滨路；沿河路\n", encoding="utf-8")
    report = import_records(db, "roads", read_records("roads", roads), commit=True)
    assert report.ok, report.to_dict()
    again = import_records(db, "roads", read_records("roads", roads), commit=True)   # upsert, no duplicate
    assert again.ok and db.fetchone("SELECT count(*) AS n FROM road")["n"] == 1
    gaz = Gazetteer.from_rows(*gazetteer_rows(db))
    for name in ("滨河大道", "沿河路"):
        res = geocode(gaz, f"河东区{name}1号")
        assert res.confident and res.matched["code"] == "99070100100100001", res.to_dict()
        assert res.components["道路"].startswith("滨河路（"), res.components


def test_road_in_unknown_county_is_refused(db, tmp_path):
    import_boundaries(db, read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids.geojson"), "test",
                      commit=True, activate=True)
    roads = tmp_path / "roads.csv"
    roads.write_text("name,county_code,aliases\n滨河路,990799,\n", encoding="utf-8")
    report = import_records(db, "roads", read_records("roads", roads))
    assert [f.kind for f in report.findings] == ["unknown_region"]
