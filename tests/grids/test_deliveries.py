"""Real deliveries import cleanly (issue 10): each bug found by importing an unseen city as its GIS office would,
with its own small fixture written here (no shared data files)."""

from __future__ import annotations

import numpy as np
import pyogrio.raw
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon

from gis.errors import BadInput
from grids.io import read_grids, read_regions
from grids.validate import validate

UTM = "EPSG:32651"  # UTM 51N: a metric delivery, exact in its own CRS
ORIGIN = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(124.30, 43.10)


def _write(path, layer, rows, geoms, crs=UTM, append=False):
    fields = list(rows[0])
    data = [np.asarray([r[f] for r in rows], dtype=object) for f in fields]
    pyogrio.raw.write(str(path), np.asarray(shapely.to_wkb(geoms), dtype=object), data, fields, layer=layer,
                      driver="GPKG", geometry_type="MultiPolygon", crs=crs, append=append)


def _rect(x0, y0, x1, y1, mid_left=None, mid_right=None):
    """A metric rectangle offset from ORIGIN; optional extra vertices (T-junctions) on its west/east edges."""
    ox, oy = ORIGIN
    pts = [(x0, y0), (x1, y0)]
    pts += [(x1, y) for y in (mid_right or [])]
    pts += [(x1, y1), (x0, y1)]
    pts += [(x0, y) for y in reversed(mid_left or [])]
    return MultiPolygon([Polygon([(ox + x, oy + y) for x, y in pts])])


def _projected_city(path, gap=False):
    """A county 20 km × 17 km in UTM: two townships (west/east), one village each, two grids per village split at
    y = 8.5 km, so every grid corner on a 17 km edge is a T-junction the parents do not have. With gap=True a
    400 m × 300 m hole (120,000 m²) is planted in grid 990101002001002."""
    W, H, M = 20000.0, 17000.0, 8500.0
    regions = [("990100", "city", None, _rect(0, 0, W, H)), ("990101", "county", "990100", _rect(0, 0, W, H)),
               ("990101001", "township", "990101", _rect(0, 0, W / 2, H)),
               ("990101002", "township", "990101", _rect(W / 2, 0, W, H)),
               ("990101001001", "village", "990101001", _rect(0, 0, W / 2, H)),
               ("990101002001", "village", "990101002", _rect(W / 2, 0, W, H))]
    g4 = _rect(W / 2, M, W, H)
    if gap:
        ox, oy = ORIGIN
        g4 = MultiPolygon([shapely.difference(g4, shapely.box(ox + 15000, oy + 12000, ox + 15400, oy + 12300))])
    grids = [("990101001001001", "990101001001", _rect(0, 0, W / 2, M)),
             ("990101001001002", "990101001001", _rect(0, M, W / 2, H)),
             ("990101002001001", "990101002001", _rect(W / 2, 0, W, M)),
             ("990101002001002", "990101002001", g4)]
    _write(path, "regions", [{"code": c, "level": lv, "parent_code": p or "", "name": c} for c, lv, p, _ in regions],
           [g for *_, g in regions])
    _write(path, "grids", [{"code": c, "village_code": v, "name": c, "grid_type": "社区"} for c, v, _ in grids],
           [g for *_, g in grids], append=True)


def test_a_projected_tiling_exact_in_its_crs_validates_clean(tmp_path):
    path = tmp_path / "utm.gpkg"
    _projected_city(path)
    report = validate(read_regions(path, layer="regions"), read_grids(path, layer="grids"))
    assert report.errors == [], report.text()


def test_a_real_gap_in_a_projected_delivery_is_still_found(tmp_path):
    path = tmp_path / "utm_gap.gpkg"
    _projected_city(path, gap=True)
    report = validate(read_regions(path, layer="regions"), read_grids(path, layer="grids"))
    gaps = [f for f in report.errors if f.kind == "gap"]
    assert len(report.errors) == 1 and len(gaps) == 1, report.text()
    assert gaps[0].area_m2 == pytest.approx(120000, rel=1e-6)
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(ORIGIN[0] + 15200,
                                                                                ORIGIN[1] + 12150)
    assert gaps[0].location == pytest.approx([lon, lat], abs=0.003)  # a point of the hole, in lon/lat


def test_stored_geometries_are_densified_before_reprojecting(tmp_path):
    """A 17 km straight edge in UTM is a curve in lon/lat: the stored boundary follows it to the centimetre."""
    path = tmp_path / "utm.gpkg"
    _projected_city(path)
    county = next(r for r in read_regions(path, layer="regions") if r["code"] == "990101")
    back = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    ring = np.asarray(county["geom"].geoms[0].exterior.coords)
    assert len(ring) > 100  # densified
    x, y = back.transform(ring[:, 0], ring[:, 1])
    on_edge = np.minimum.reduce([np.abs(x - ORIGIN[0]), np.abs(x - ORIGIN[0] - 20000), np.abs(y - ORIGIN[1]),
                                 np.abs(y - ORIGIN[1] - 17000)])
    assert float(on_edge.max()) < 0.01


# -- layers are never skipped silently ----------------------------------------------------------

def _square(i):
    return MultiPolygon([shapely.box(124.30 + i * 0.01, 43.10, 124.31 + i * 0.01, 43.11)])


def test_plural_and_chinese_layer_names_are_recognised_and_unknown_layers_reported(tmp_path):
    path = tmp_path / "city.gpkg"
    layers = [("counties", [("990101", "990100")]), ("Townships", [("990101001", "990101")]),
              ("communities", [("990101001001", "990101001")]), ("乡镇街道界", [("990101002", "990101")]),
              ("村界", [("990101002001", "990101002")]), ("roads_misc", [("x1", "")])]
    for k, (name, rows) in enumerate(layers):
        _write(path, name, [{"code": c, "parent_code": p, "name": c} for c, p in rows],
               [_square(k)] * len(rows), crs="EPSG:4326", append=k > 0)
    with pytest.raises(BadInput) as e:
        read_regions(path)
    assert "roads_misc" in e.value.message and e.value.field == "layer"
    regions = read_regions(path, skip_layers=["roads_misc"])
    assert sorted((r["code"], r["level"]) for r in regions) == [
        ("990101", "county"), ("990101001", "township"), ("990101001001", "village"), ("990101002", "township"),
        ("990101002001", "village")]


# -- grid kinds --------------------------------------------------------------------------------

def test_grid_kind_spellings_are_recognised_and_unknown_ones_reported(tmp_path):
    from grids.io import grid_type_findings

    path = tmp_path / "grids.gpkg"
    kinds = ["社区网格", "乡村网格", "农村网格", "专属网格", "城市社区", "网格"]
    _write(path, "grids", [{"code": f"99010100100100{i}", "kind": k, "name": k} for i, k in enumerate(kinds)],
           [_square(i) for i in range(len(kinds))], crs="EPSG:4326")
    grids = read_grids(path)
    assert [g["grid_type"] for g in grids] == ["社区", "乡村", "乡村", "专属", "社区", "网格"]
    bad = grid_type_findings(grids).errors
    assert [f.codes for f in bad] == [["990101001001005"]] and "网格" in bad[0].message


def test_grids_without_a_type_column_are_reported_not_silently_community(tmp_path):
    from grids.io import grid_type_findings

    path = tmp_path / "grids.gpkg"
    _write(path, "grids", [{"code": "990101001001001", "name": "a"}], [_square(0)], crs="EPSG:4326")
    grids = read_grids(path)
    findings = grid_type_findings(grids).findings
    assert grids[0]["grid_type"] == "社区" and [f.kind for f in findings] == ["defaulted_value"]


# -- a bad lat is one error, the right one ----------------------------------------------------------

def test_a_bad_lat_gets_one_error_naming_lat(db, tmp_path):
    from cases.auth import create_user
    from cases.importer import import_file
    from cases.service import CaseService
    from cases.setup import seed_routing_rules
    from grids.store import load_city
    from tests.cases.test_importer import good, write_csv
    from tests.factories import tiny_city

    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    user = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    rep = import_file(CaseService(db), write_csv(tmp_path / "bad_lat.csv", [good(1, 纬度="北纬43度"),
                                                                           good(2, 纬度="")]), user)
    first, second = rep.rows
    assert [e["field"] for e in first.errors] == ["lat"] and "not a number" in first.errors[0]["message"]
    assert [e["field"] for e in second.errors] == ["lat"] and "同时给出" in second.errors[0]["message"]


# -- door and building numbers with suffixes -----------------------------------------------------

def test_door_and_building_suffixes_are_normalised_at_import_and_geocode(db, tmp_path):
    from grids.geocode import Gazetteer, geocode
    from grids.io import import_records, read_records
    from grids.store import load_city
    from tests.factories import X0, Y0, tiny_city

    city = tiny_city()
    city.addresses = []
    load_city(db, city, progress=lambda m: None)
    csv = tmp_path / "addresses.csv"
    csv.write_text("地址编码,标准地址,道路,门牌号,小区,楼栋,经度,纬度\n"
                   f"D1,测试市甲区东风街道向阳社区人民路709号,人民路,709号,,,{X0 + 0.004:.6f},{Y0 + 0.005:.6f}\n"
                   f"D2,测试市甲区东风街道向阳社区幸福小区3幢,,,幸福小区,3幢,{X0 + 0.006:.6f},{Y0 + 0.005:.6f}\n"
                   f"D3,测试市甲区东风街道向阳社区幸福小区5号楼,,,幸福小区,5号楼,{X0 + 0.014:.6f},{Y0 + 0.005:.6f}\n",
                   encoding="utf-8")
    report = import_records(db, "addresses", read_records("addresses", csv), commit=True)
    assert report.ok, report.to_dict()
    rows = db.fetchall("SELECT code, door_no, building FROM address ORDER BY code")
    assert [(r["door_no"], r["building"]) for r in rows] == [("709", ""), ("", "3"), ("", "5")]
    gen = db.fetchone("SELECT id FROM generation WHERE active")["id"]
    regions = db.fetchall("SELECT code, level, name, short_name, parent_code, kind FROM region WHERE generation = %s",
                          (gen,))
    roads = db.fetchall("SELECT name, county_code, aliases, old_names FROM road")
    addrs = db.fetchall("SELECT code, full_text, county_code, township_code, village_code, road, door_no, compound, "
                        "building, unit, grid_code, ST_X(geom) lon, ST_Y(geom) lat FROM address")
    gaz = Gazetteer.from_rows(regions, roads, addrs)
    for q, code in (("东风街道人民路709号", "D1"), ("向阳社区幸福小区3号楼", "D2"), ("幸福小区5栋", "D3")):
        res = geocode(gaz, q).to_dict()
        assert (res.get("matched") or {}).get("code") == code, (q, res)


# -- a city outside China; another city's file ------------------------------------------------------

def _lonlat_city(path, x0, y0):
    """One county/township/village/grid square of 0.01° at (x0, y0), in lon/lat."""
    sq = MultiPolygon([shapely.box(x0, y0, x0 + 0.01, y0 + 0.01)])
    _write(path, "regions", [{"code": c, "level": lv, "parent_code": p, "name": c} for c, lv, p in
                             [("990100", "city", ""), ("990101", "county", "990100"),
                              ("990101001", "township", "990101"), ("990101001001", "village", "990101001")]],
           [sq] * 4, crs="EPSG:4326")
    _write(path, "grids", [{"code": "990101001001001", "village_code": "990101001001", "name": "g",
                            "grid_type": "社区"}], [sq], crs="EPSG:4326", append=True)


def test_a_city_outside_china_imports_with_its_extent_and_another_citys_file_is_refused(dsn, db, tmp_path,
                                                                                        monkeypatch, capsys):
    from gis.cli import main

    monkeypatch.setenv("GRIDGOV_DATABASE_URL", dsn)
    nairobi = tmp_path / "nairobi.gpkg"
    _lonlat_city(nairobi, 36.80, -1.30)
    argv = ["import", "boundaries", "--grids", str(nairobi), "--commit", "--activate"]
    assert main(argv) != 0
    assert "--extent" in capsys.readouterr().err
    assert main([*argv, "--extent", "36.6,-1.5,37.1,-1.1"]) == 0
    assert db.fetchone("SELECT count(*) n FROM grid")["n"] == 1
    # the loaded city's own extent now guards every later file: a file of another city is refused
    elsewhere = tmp_path / "elsewhere.gpkg"
    _lonlat_city(elsewhere, 124.30, 43.10)
    assert main(["import", "boundaries", "--grids", str(elsewhere)]) != 0
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("gridgov: error")]
    assert len(errors) == 1 and "outside the city's extent" in errors[0]
