"""Import of boundaries and reference tables from every documented format, export, and the CLI flow.

The example files are in tests/data/qinghe/ (清河市 990700, a city the platform has never seen;
regenerate with tests/data/make_examples.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyogrio
import pytest
import shapely

from gis.cli import main
from gis.errors import BadInput, Unprocessable
from grids.generations import load_boundaries
from grids.io import import_boundaries, import_records, read_grids, read_records, read_regions
from grids.validate import _Frame

DATA = Path(__file__).resolve().parents[1] / "data" / "qinghe"
GRID_CODES = ["990701001001001", "990701001001002", "990701001002001", "990701001002002", "990701002001001",
              "990701002001002"]


def _bounds(grids, code):
    return next(g for g in grids if g["code"] == code)["geom"].bounds


@pytest.fixture
def cli(dsn, monkeypatch):
    """Run `python -m gis …` in-process against the test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("GRIDGOV_DATABASE_URL", dsn)

    def run(*argv):
        return main([str(a) for a in argv])

    return run


def _counts(db):
    return db.fetchone("SELECT (SELECT count(*) FROM generation) gen, (SELECT count(*) FROM region) r, "
                       "(SELECT count(*) FROM grid) g, (SELECT count(*) FROM staff) s, "
                       "(SELECT count(*) FROM address) a")


# -- readers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, crs", [("grids.geojson", None), ("grids.gpkg", None), ("grids_shp.zip", None),
                                       ("grids_gcj02.geojson", "GCJ-02")])
def test_grid_formats_land_in_the_same_place(name, crs):
    grids = read_grids(DATA / name, crs=crs)
    assert [g["code"] for g in grids] == GRID_CODES
    assert {g["village_code"] for g in grids} == {"990701001001", "990701001002", "990701002001"}
    # 5e-7° ≈ 5 cm: GCJ-02 inverted exactly, Gauss-Kruger (EPSG:4548) densified and reprojected by pyproj (a
    # straight 2 km edge there bows by about 4 cm in lon/lat)
    assert _bounds(grids, "990701001001001") == pytest.approx((117.20, 36.60, 117.21, 36.61), abs=5e-7)
    assert _bounds(grids, "990701002001002") == pytest.approx((117.22, 36.61, 117.24, 36.62), abs=5e-7)


def test_gcj02_file_without_override_is_off_by_hundreds_of_metres():
    raw = read_grids(DATA / "grids_gcj02.geojson")  # read as WGS84: the GCJ-02 offset remains
    dx = raw[0]["geom"].bounds[0] - 117.20
    assert 0.004 < abs(dx) < 0.01


def test_regions_by_layer_and_by_level_column():
    by_layer = read_regions(DATA / "regions.gpkg")
    by_column = read_regions(DATA / "regions.geojson")  # Chinese column names and a 层级 column
    key = sorted((r["code"], r["level"], r["parent_code"], r["name"]) for r in by_layer)
    assert key == sorted((r["code"], r["level"], r["parent_code"], r["name"]) for r in by_column)
    assert {r["level"] for r in by_layer} == {"city", "county", "township", "village"}


def test_projected_crs_override_and_missing_crs(tmp_path):
    # a shapefile without .prj: refuses to guess, says what to pass
    shutil.unpack_archive(DATA / "grids_shp.zip", tmp_path, format="zip")
    (tmp_path / "grids.prj").unlink()
    with pytest.raises(BadInput, match="no CRS.*--crs"):
        read_grids(tmp_path / "grids.shp")
    grids = read_grids(tmp_path / "grids.shp", crs="EPSG:4548")
    assert _bounds(grids, "990701001001001") == pytest.approx((117.20, 36.60, 117.21, 36.61), abs=2e-7)
    with pytest.raises(BadInput, match="outside China"):
        read_grids(tmp_path / "grids.shp", crs="EPSG:4526")  # zone-prefixed eastings expected: lands far away


def test_tables_csv_and_xlsx_with_chinese_headers():
    csv_staff = read_records("staff", DATA / "staff.csv")
    xlsx_staff = read_records("staff", DATA / "staff.xlsx")
    assert [s["code"] for s in csv_staff] == [s["code"] for s in xlsx_staff]
    assert xlsx_staff[0]["role"] == "网格员" and xlsx_staff[0]["grid_code"] == GRID_CODES[0]
    centers = read_records("centers", DATA / "centers.csv")  # GCJ-02 per row
    city = next(c for c in centers if c["code"] == "ZZ990700")
    assert (city["lon"], city["lat"]) == pytest.approx((117.22, 36.61), abs=1e-7)
    assert city["orig_crs"] == "GCJ-02"
    deps = read_records("departments", DATA / "departments.xlsx")
    assert [d["kind"] for d in deps] == ["住建", "城管", "供电"]
    with pytest.raises(BadInput, match="missing column.*full_text"):
        read_records("addresses", DATA / "staff.csv")


# -- database ---------------------------------------------------------------------------------


def test_dry_run_writes_nothing(db):
    regions, grids = read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids.geojson")
    report, gen, _ = import_boundaries(db, regions, grids, "test")
    assert report.ok and gen is None
    assert _counts(db) == {"gen": 0, "r": 0, "g": 0, "s": 0, "a": 0}


def test_commit_of_invalid_data_is_refused_and_writes_nothing(db):
    regions, grids = read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids_with_gap.geojson")
    with pytest.raises(Unprocessable, match="nothing written") as e:
        import_boundaries(db, regions, grids, "test", commit=True, activate=True)
    assert e.value.details["counts"] == {"error:gap": 1}
    assert _counts(db) == {"gen": 0, "r": 0, "g": 0, "s": 0, "a": 0}


def test_cli_refuses_invalid_commit(cli, db, capsys):
    rc = cli("import", "boundaries", "--grids", DATA / "grids_with_gap.geojson", "--regions", DATA / "regions.gpkg",
             "--commit")
    err = capsys.readouterr().err
    assert rc == 2
    assert "gap [990701001001" in err and "nothing written" in err
    assert _counts(db)["gen"] == 0


def test_whole_flow_for_a_city_never_seen(cli, db, capsys, tmp_path):
    """清河市: dry run → commit → activate → reference tables → validate → export → re-import."""
    args = ("import", "boundaries", "--grids", DATA / "grids_shp.zip", "--regions", DATA / "regions.gpkg")
    assert cli(*args, "--json") == 0
    dry = json.loads(capsys.readouterr().out)
    # grids in Gauss-Krüger (densified, so their edges follow the true curve) against lon/lat regions: the
    # centimetre-wide slivers between the two are counted, not reported as gaps
    assert dry["checked"].pop("ignored_slivers", 0) <= 10
    assert dry["ok"] and dry["checked"] == {"city": 1, "county": 1, "township": 2, "village": 3, "grid": 6}
    assert _counts(db)["gen"] == 0
    assert cli(*args, "--commit") == 0
    assert "inactive" in capsys.readouterr().err
    assert cli("generations", "activate", "1") == 0
    assert "generation 1 active" in capsys.readouterr().out
    for kind, name in (("staff", "staff.xlsx"), ("centers", "centers.csv"), ("departments", "departments.xlsx"),
                       ("addresses", "addresses.csv")):
        assert cli("import", kind, DATA / name) == 0          # dry run
        assert cli("import", kind, DATA / name, "--commit") == 0, capsys.readouterr().err
    assert _counts(db) == {"gen": 1, "r": 7, "g": 6, "s": 12, "a": 4}
    # staff roles came from labels (网格员 → grid_officer); default roles were created
    assert db.fetchone("SELECT count(*) n FROM staff WHERE role = 'grid_officer'")["n"] == 6
    # addresses without grid_code were located by point-in-grid
    addr = {r["code"]: r for r in db.fetchall("SELECT code, grid_code, village_code, county_code FROM address")}
    assert addr["99070100100100002"]["grid_code"] == "990701001001002"
    assert addr["99070100200100001"]["grid_code"] == "990701002001002"
    assert addr["99070100100200001"]["village_code"] == "990701001002"
    capsys.readouterr()
    assert cli("validate", "--json") == 0
    v = json.loads(capsys.readouterr().out)
    assert v["ok"] and v["findings"] == [] and v["checked"]["staff"] == 12
    # export to GeoPackage, ogrinfo lists the layers, re-import gives the same codes and areas
    out = tmp_path / "qinghe.gpkg"
    assert cli("export", "--format", "gpkg", "--out", out) == 0
    listing = subprocess.run(["ogrinfo", "-ro", "-q", str(out)], capture_output=True, text=True, check=True).stdout
    for layer in ("city", "county", "township", "village", "grid", "center", "address"):
        assert f": {layer} (" in listing, listing
    again_regions, again_grids = read_regions(out), read_grids(out)
    regions, grids = load_boundaries(db)
    frame = _Frame([g["geom"] for g in grids])

    def summary(rows):
        return sorted((r["code"], round(float(frame.area([r["geom"]])[0]), 1)) for r in rows)

    assert summary(again_grids) == summary(grids)
    assert summary(again_regions) == summary(regions)
    assert [p for p in pyogrio.list_layers(out)[:, 0]] == ["city", "county", "township", "village", "grid", "center",
                                                           "address"]
    report, gen, _ = import_boundaries(db, again_regions, again_grids, "re-import", commit=True)
    assert report.ok and gen == 2
    # GeoJSON: one file per layer
    gj = tmp_path / "gj"
    assert cli("export", "--format", "geojson", "--out", gj, "--generation", "1") == 0
    assert sorted(p.name for p in gj.iterdir()) == sorted(
        f"{n}.geojson" for n in ("city", "county", "township", "village", "grid", "center", "address"))
    assert [g["code"] for g in read_grids(gj / "grid.geojson")] == GRID_CODES


def test_addresses_outside_every_grid_are_refused(db, tmp_path):
    regions, grids = read_regions(DATA / "regions.gpkg"), read_grids(DATA / "grids.geojson")
    import_boundaries(db, regions, grids, "test", commit=True, activate=True)
    bad = tmp_path / "addr.csv"
    bad.write_text("地址编码,标准地址,经度,纬度\n1,清河市某处,117.30,36.60\n", encoding="gbk")
    records = read_records("addresses", bad)
    report = import_records(db, "addresses", records)
    assert [f.kind for f in report.findings] == ["outside_grid"] and "第 2 行" in report.findings[0].message
    with pytest.raises(Unprocessable):
        import_records(db, "addresses", records, commit=True)
    assert _counts(db)["a"] == 0


def test_import_of_5000_grids_is_complete(db):
    """5,000 grids of 100 m squares in 50 villages validate and land whole (speed: bench/import_grids.py)."""
    from shapely.geometry import box

    x0, y0, d = 117.0, 36.0, 0.001
    regions = [dict(code="990800", level="city", name="快市", parent_code=None, geom=box(x0, y0, x0 + 0.1, y0 + 0.05)),
               dict(code="990801", level="county", name="快区", parent_code="990800",
                    geom=box(x0, y0, x0 + 0.1, y0 + 0.05)),
               dict(code="990801001", level="township", name="快镇", parent_code="990801",
                    geom=box(x0, y0, x0 + 0.1, y0 + 0.05))]
    grids = []
    for v in range(50):
        vx = x0 + (v % 10) * 0.01
        vy = y0 + (v // 10) * 0.01
        vcode = f"990801001{v + 1:03d}"
        regions.append(dict(code=vcode, level="village", name=f"村{v}", parent_code="990801001",
                            geom=box(vx, vy, vx + 0.01, vy + 0.01)))
        for k in range(100):
            gx, gy = vx + (k % 10) * d, vy + (k // 10) * d
            grids.append(dict(code=f"{vcode}{k + 1:03d}", name=f"网格{k}", grid_type="乡村", village_code=vcode,
                              geom=shapely.MultiPolygon([box(gx, gy, gx + d, gy + d)])))
    report, gen, _ = import_boundaries(db, regions, grids, "big", commit=True)
    assert report.ok, report.text()
    assert db.fetchone("SELECT count(*) n FROM grid WHERE generation = %s", (gen,))["n"] == 5000
