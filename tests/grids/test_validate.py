"""Validation of the governance geography: one small fixture per finding, built from squares."""

from __future__ import annotations

import copy

import pytest
from shapely.geometry import MultiPolygon, Polygon

from grids.validate import validate
from tests.factories import X0, Y0, sq, tiny_city

# 0.01° at lat 43.1 ≈ 811 m × 1,112 m ≈ 902,000 m²
CELL_M2 = 902_000


def _city():
    return copy.deepcopy(tiny_city())


def _kinds(report, severity=None):
    return sorted({f.kind for f in report.findings if severity is None or f.severity == severity})


def _one(report, kind):
    hits = [f for f in report.findings if f.kind == kind]
    assert hits, f"no {kind} finding in:\n{report.text()}"
    return hits[0]


def _grid(c, code):
    return next(g for g in c.grids if g["code"] == code)


def _region(c, code):
    return next(r for r in c.regions if r["code"] == code)


def test_clean_tiny_city_is_ok():
    c = _city()
    report = validate(c.regions, c.grids, staff=c.staff, roles=c.staff_roles)
    assert report.ok and report.findings == [], report.text()
    assert report.checked == {"city": 1, "county": 1, "township": 2, "village": 2, "grid": 3, "staff": 11}
    assert report.text().startswith("validation OK")


def test_two_squares_with_gap():
    c = _city()
    _grid(c, "990101001001002")["geom"] = sq(0.012, 0, 0.02, 0.01)  # 0.002° strip left uncovered
    report = validate(c.regions, c.grids)
    gap = _one(report, "gap")
    assert gap.severity == "error" and not report.ok
    assert gap.codes[0] == "990101001001"
    assert set(gap.codes[1:]) == {"990101001001001", "990101001001002"}
    assert gap.area_m2 == pytest.approx(CELL_M2 / 5, rel=0.01)
    lon, lat = gap.location
    assert X0 + 0.01 <= lon <= X0 + 0.012 and Y0 <= lat <= Y0 + 0.01
    assert "向阳社区" in gap.message
    assert _kinds(report) == ["gap"]


def test_two_squares_overlap():
    c = _city()
    _grid(c, "990101001001002")["geom"] = sq(0.008, 0, 0.02, 0.01)
    report = validate(c.regions, c.grids)
    ov = _one(report, "overlap")
    assert ov.codes == ["990101001001001", "990101001001002"]
    assert ov.area_m2 == pytest.approx(CELL_M2 / 5, rel=0.01)
    assert X0 + 0.008 <= ov.location[0] <= X0 + 0.01
    assert _kinds(report) == ["overlap"]


def test_shared_edge_is_neither_gap_nor_overlap():
    c = _city()
    # the same edge split differently on both sides (extra vertex) is still a clean tiling
    _grid(c, "990101001001001")["geom"] = MultiPolygon([Polygon([
        (X0, Y0), (X0 + 0.01, Y0), (X0 + 0.01, Y0 + 0.005), (X0 + 0.01, Y0 + 0.01), (X0, Y0 + 0.01)])])
    assert validate(c.regions, c.grids).ok


def test_bow_tie():
    c = _city()
    _grid(c, "990101001001001")["geom"] = Polygon([
        (X0, Y0), (X0 + 0.01, Y0 + 0.01), (X0 + 0.01, Y0), (X0, Y0 + 0.01), (X0, Y0)])
    report = validate(c.regions, c.grids)
    bad = _one(report, "invalid_geometry")
    assert bad.codes == ["990101001001001"] and bad.severity == "error"
    assert "Self-intersection[" in bad.message
    assert bad.location == pytest.approx([X0 + 0.005, Y0 + 0.005])


def test_grid_across_community_edge():
    c = _city()
    # grid 002 of 向阳社区 reaches 0.002° into 柳树村 (and over 柳树村's grid)
    _grid(c, "990101001001002")["geom"] = sq(0.01, 0, 0.022, 0.01)
    report = validate(c.regions, c.grids)
    out = _one(report, "outside_parent")
    assert out.codes == ["990101001001002", "990101001001"]
    assert out.area_m2 == pytest.approx(CELL_M2 / 5, rel=0.01)
    assert X0 + 0.02 <= out.location[0] <= X0 + 0.022
    assert "越出" in out.message
    assert "overlap" in _kinds(report)


def test_community_across_township_edge():
    c = _city()
    _region(c, "990101001001")["geom"] = sq(0, 0, 0.025, 0.01)
    report = validate(c.regions, c.grids)
    out = [f for f in report.findings if f.kind == "outside_parent"]
    assert [f.codes for f in out] == [["990101001001", "990101001"]]
    assert out[0].area_m2 == pytest.approx(CELL_M2 / 2, rel=0.01)
    # the community is now bigger than its grids: a gap inside it as well
    assert any(f.kind == "gap" and f.codes[0] == "990101001001" for f in report.findings)


def test_duplicate_code():
    c = _city()
    c.grids.append(dict(_grid(c, "990101002001001")))
    report = validate(c.regions, c.grids)
    dup = _one(report, "duplicate_code")
    assert dup.codes == ["990101002001001"] and "重复 2 次" in dup.message


def test_malformed_code():
    c = _city()
    _grid(c, "990101002001001")["code"] = "99010100200100A"
    _region(c, "990101002")["code"] = "9901010020"
    report = validate(c.regions, c.grids)
    codes = sorted(f.codes[0] for f in report.findings if f.kind == "malformed_code")
    assert codes == ["9901010020", "99010100200100A"]
    assert "15 位数字" in next(f.message for f in report.findings if f.codes[0] == "99010100200100A")


def test_code_not_extending_parent():
    c = _city()
    g = _grid(c, "990101002001001")
    g["code"] = "990101001001009"  # a code of 向阳社区 on a grid of 柳树村
    report = validate(c.regions, c.grids)
    f = _one(report, "code_not_extending_parent")
    assert f.codes == ["990101001001009", "990101002001"]


def test_unknown_parent():
    c = _city()
    _grid(c, "990101002001001")["village_code"] = "990101002009"
    report = validate(c.regions, c.grids)
    f = _one(report, "unknown_parent")
    assert f.codes == ["990101002001001", "990101002009"] and f.severity == "error"


def test_sliver():
    c = _city()
    # a 0.00002° (≈ 1.6 m) wide grid carved out of 柳树村's single grid
    _grid(c, "990101002001001")["geom"] = sq(0.02002, 0, 0.04, 0.01)
    c.grids.append(dict(code="990101002001002", name="碎片", grid_type="乡村", village_code="990101002001",
                        geom=sq(0.02, 0, 0.02002, 0.01)))
    report = validate(c.regions, c.grids)
    f = _one(report, "sliver")
    assert f.codes == ["990101002001002"] and f.severity == "warning"
    assert 1_500 < f.area_m2 < 2_000
    assert report.ok  # a sliver is a warning: it does not block an import


def test_grid_without_officer():
    c = _city()
    staff = [s for s in c.staff if not (s["grid_code"] == "990101002001001" and s["role"] == "grid_officer")]
    report = validate(c.regions, c.grids, staff=staff, roles=c.staff_roles)
    f = _one(report, "grid_without_officer")
    assert f.codes == ["990101002001001"] and f.severity == "warning"
    assert _kinds(report) == ["grid_without_officer"]


def test_officer_without_grid():
    c = _city()
    staff = c.staff + [dict(code="X1", name="无格员", role="grid_officer", grid_code=""),
                       dict(code="X2", name="错格员", role="grid_officer", grid_code="990101009009009")]
    report = validate(c.regions, c.grids, staff=staff, roles=c.staff_roles)
    found = {tuple(f.codes): f.severity for f in report.findings if f.kind == "officer_without_grid"}
    assert found == {("X1",): "warning", ("X2", "990101009009009"): "error"}


def test_report_dict_and_text_say_where():
    c = _city()
    _grid(c, "990101001001002")["geom"] = sq(0.012, 0, 0.02, 0.01)
    report = validate(c.regions, c.grids)
    d = report.to_dict()
    assert d["ok"] is False and d["counts"] == {"error:gap": 1}
    f = d["findings"][0]
    assert set(f) == {"kind", "severity", "codes", "message", "location", "area_m2"}
    line = report.text().splitlines()[1]
    assert line.startswith("ERROR gap [990101001001") and " @ 124.31" in line and "m²" in line
