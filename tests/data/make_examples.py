"""Regenerate the small example import files in tests/data/qinghe/ (run: .venv/bin/python tests/data/make_examples.py).

清河市 (990700) is a fictional city the platform has never seen: one district 河东区 (990701), two
townships, three villages/communities and six grids, squares of 0.01° near lon 117.20, lat 36.60:

    lat +0.02 +-------------+-------------+---------------------------+
              | 春晖 ..002001 | 春晖 ..002002 |  柳营村 990701002001002     |
    lat +0.01 +-------------+-------------+---------------------------+
              | 滨河 ..001001 | 滨河 ..001002 |  柳营村 990701002001001     |
    lat  0    +-------------+-------------+---------------------------+
             lon 0        +0.01         +0.02                        +0.04
    (临河街道 990701001 = the left half, 柳营镇 990701002 = the right half)

Every format of docs/import-formats.md is represented: regions as a GeoPackage with one layer per
level, grids as GeoJSON (Chinese column names), as a zipped Shapefile in CGCS2000 Gauss-Kruger
CM 117E (EPSG:4548) and as GeoJSON in GCJ-02; staff/centers/departments/addresses as CSV and XLSX.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import MultiPolygon, box

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gis.coords import wgs_to_gcj  # noqa: E402

OUT = Path(__file__).with_name("qinghe")
LON0, LAT0 = 117.20, 36.60


def sq(x0, y0, x1, y1):
    return MultiPolygon([box(LON0 + x0, LAT0 + y0, LON0 + x1, LAT0 + y1)])


REGIONS = [
    dict(code="990700", level="city", name="清河市", parent_code=None, kind="市", urban=1, geom=sq(0, 0, 0.04, 0.02)),
    dict(code="990701", level="county", name="河东区", parent_code="990700", kind="区", urban=1,
         geom=sq(0, 0, 0.04, 0.02)),
    dict(code="990701001", level="township", name="临河街道", parent_code="990701", kind="街道", urban=1,
         geom=sq(0, 0, 0.02, 0.02)),
    dict(code="990701002", level="township", name="柳营镇", parent_code="990701", kind="镇", urban=0,
         geom=sq(0.02, 0, 0.04, 0.02)),
    dict(code="990701001001", level="village", name="滨河社区", parent_code="990701001", kind="社区", urban=1,
         geom=sq(0, 0, 0.02, 0.01)),
    dict(code="990701001002", level="village", name="春晖社区", parent_code="990701001", kind="社区", urban=1,
         geom=sq(0, 0.01, 0.02, 0.02)),
    dict(code="990701002001", level="village", name="柳营村", parent_code="990701002", kind="村", urban=0,
         geom=sq(0.02, 0, 0.04, 0.02)),
]
GRIDS = [
    dict(code="990701001001001", name="滨河社区第一网格", grid_type="社区", village_code="990701001001",
         geom=sq(0, 0, 0.01, 0.01)),
    dict(code="990701001001002", name="滨河社区第二网格", grid_type="社区", village_code="990701001001",
         geom=sq(0.01, 0, 0.02, 0.01)),
    dict(code="990701001002001", name="春晖社区第一网格", grid_type="社区", village_code="990701001002",
         geom=sq(0, 0.01, 0.01, 0.02)),
    dict(code="990701001002002", name="春晖社区第二网格", grid_type="社区", village_code="990701001002",
         geom=sq(0.01, 0.01, 0.02, 0.02)),
    dict(code="990701002001001", name="柳营村第一网格", grid_type="乡村", village_code="990701002001",
         geom=sq(0.02, 0, 0.04, 0.01)),
    dict(code="990701002001002", name="柳营村第二网格", grid_type="乡村", village_code="990701002001",
         geom=sq(0.02, 0.01, 0.04, 0.02)),
]
NAMES = ["赵春燕", "钱卫东", "孙丽华", "李建国", "周晓明", "吴秀兰",
         "郑海涛", "王桂芝", "冯志强", "陈玉梅", "褚红军", "卫淑珍"]


def gdf(rows, crs="EPSG:4326"):
    return gpd.GeoDataFrame([{k: v for k, v in r.items() if k != "geom"} for r in rows],
                            geometry=[r["geom"] for r in rows], crs=crs)


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_xlsx(path, header, rows):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for r in rows:
        ws.append(list(r))
    wb.save(path)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    # regions: one GeoPackage layer per level (English columns)
    for level in ("city", "county", "township", "village"):
        pyogrio.write_dataframe(gdf([r for r in REGIONS if r["level"] == level]), OUT / "regions.gpkg", layer=level,
                                driver="GPKG")
    # regions again as one GeoJSON layer with a level column (Chinese columns)
    zh = gdf(REGIONS).rename(columns={"code": "编码", "name": "名称", "level": "层级", "parent_code": "上级编码",
                                      "kind": "类别", "urban": "城镇"})
    pyogrio.write_dataframe(zh, OUT / "regions.geojson", driver="GeoJSON")
    # grids: GeoJSON with Chinese column names
    g = gdf(GRIDS).rename(columns={"code": "编码", "name": "名称", "grid_type": "网格类型",
                                   "village_code": "所属社区编码"})
    pyogrio.write_dataframe(g, OUT / "grids.geojson", driver="GeoJSON")
    # grids: GeoPackage layer "grid"
    pyogrio.write_dataframe(gdf(GRIDS), OUT / "grids.gpkg", layer="grid", driver="GPKG")
    # grids: zipped Shapefile in CGCS2000 / 3-degree Gauss-Kruger CM 117E (metres)
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / "grids.shp"
        pyogrio.write_dataframe(gdf(GRIDS).to_crs("EPSG:4548"), shp, driver="ESRI Shapefile", encoding="UTF-8")
        with zipfile.ZipFile(OUT / "grids_shp.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(Path(tmp).iterdir()):
                z.write(p, p.name)
    # grids: GeoJSON whose coordinates are GCJ-02 (what a 高德-digitised file holds)
    def to_gcj(c):
        x, y = wgs_to_gcj(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    gcj = [dict(r, geom=shapely.transform(r["geom"], to_gcj)) for r in GRIDS]
    pyogrio.write_dataframe(gdf(gcj), OUT / "grids_gcj02.geojson", driver="GeoJSON")
    # an invalid redraw: grid 990701001001002 shrunk, leaving a 0.002° gap in 滨河社区
    bad = [dict(r) for r in GRIDS]
    bad[1]["geom"] = sq(0.012, 0, 0.02, 0.01)
    pyogrio.write_dataframe(gdf(bad), OUT / "grids_with_gap.geojson", driver="GeoJSON")

    staff = []
    names = iter(NAMES)
    for gr in GRIDS:
        staff.append((f"{gr['code']}-01", next(names), "13800000000", "grid_officer", gr["code"]))
        staff.append((f"{gr['code']}-02", next(names), "13900000000", "grid_chief", gr["code"]))
    write_csv(OUT / "staff.csv", ["code", "name", "phone", "role", "grid_code"], staff)
    # the same people in XLSX with Chinese headers and role labels
    labels = {"grid_officer": "网格员", "grid_chief": "网格长"}
    write_xlsx(OUT / "staff.xlsx", ["人员编码", "姓名", "手机", "角色", "所属网格编码"],
               [(c, n, p, labels[r], gr) for c, n, p, r, gr in staff])
    # centers: points in GCJ-02 (from a 高德 map pick), declared per row
    centers = []
    for r in REGIONS:
        pt = r["geom"].representative_point()
        x, y = wgs_to_gcj(pt.x, pt.y)
        centers.append(("ZZ" + r["code"], r["name"] + "综治中心", r["level"], r["code"], "0531-8000000",
                        f"{float(x):.7f}", f"{float(y):.7f}", "GCJ-02"))
    write_csv(OUT / "centers.csv", ["code", "name", "level", "region_code", "phone", "lon", "lat", "crs"], centers)
    write_xlsx(OUT / "departments.xlsx", ["部门编码", "名称", "部门类型", "层级", "辖区编码", "电话"], [
        ("990701-ZJ", "河东区住房和城乡建设局", "住建", "county", "990701", "0531-8100000"),
        ("990701-CG", "河东区城市管理局", "城管", "county", "990701", "0531-8200000"),
        ("990700-GD", "国网清河供电公司", "供电", "city", "990700", "95598"),
    ])
    addresses = [
        ("99070100100100001", "清河市河东区临河街道滨河路1号滨河小区1号楼", "滨河路", "1", "滨河小区", "1", "",
         LON0 + 0.005, LAT0 + 0.005, "990701001001001"),
        ("99070100100100002", "清河市河东区临河街道滨河路9号滨河小区5号楼", "滨河路", "9", "滨河小区", "5", "",
         LON0 + 0.015, LAT0 + 0.004, ""),  # grid computed by point-in-grid
        ("99070100100200001", "清河市河东区临河街道春晖路2号春晖家园3号楼2单元", "春晖路", "2", "春晖家园", "3", "2",
         LON0 + 0.004, LAT0 + 0.016, ""),
        ("99070100200100001", "清河市河东区柳营镇柳营村二组15号", "", "15", "二组", "", "",
         LON0 + 0.03, LAT0 + 0.015, ""),
    ]
    write_csv(OUT / "addresses.csv",
              ["code", "full_text", "road", "door_no", "compound", "building", "unit", "lon", "lat", "grid_code"],
              [(*a[:7], f"{a[7]:.7f}", f"{a[8]:.7f}", a[9]) for a in addresses])
    print(f"wrote {', '.join(sorted(p.name for p in OUT.iterdir()))} to {OUT}")


if __name__ == "__main__":
    main()
