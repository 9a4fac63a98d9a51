"""Boundary generations: a redraw is imported inactive, activation re-locates open cases, old ones stay."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from gis.cli import main
from gis.errors import NotFound
from grids.generations import (
    activate_generation_and_relocate,
    find_grid_at,
    layer_geojson_at,
    list_generations,
    load_boundaries,
)
from grids.io import import_boundaries
from grids.store import load_city
from tests.factories import X0, Y0, sq, tiny_city

G1, G2, G3 = "990101001001001", "990101001001002", "990101002001001"


def _redraw():
    """tiny_city with the edge between grids 001 and 002 of 向阳社区 moved east by 0.002°."""
    c = copy.deepcopy(tiny_city())
    for g in c.grids:
        if g["code"] == G1:
            g["geom"] = sq(0, 0, 0.012, 0.01)
        elif g["code"] == G2:
            g["geom"] = sq(0.012, 0, 0.02, 0.01)
    return c


def _case(db, case_no, lon, lat, grid, status="dispatched", gen=1):
    db.execute(
        "INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom, grid_code, generation, "
        "village_code, township_code, county_code) VALUES (%s, '12345', '求决', 'test', %s, %s, "
        "ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s)",
        (case_no, status, datetime(2025, 3, 1, tzinfo=UTC), X0 + lon, Y0 + lat, grid, gen, grid[:12],
         grid[:9], grid[:6]))


def _case_row(db, case_no):
    return db.fetchone("SELECT grid_code, generation, village_code, township_code, county_code, version "
                       "FROM case_record WHERE case_no = %s", (case_no,))


@pytest.fixture
def city_with_cases(db):
    load_city(db, tiny_city(), source="test", progress=lambda m: None)
    _case(db, "C-NEAR-EDGE", 0.011, 0.005, G2)                     # moves to G1 in the redraw
    _case(db, "C-CLOSED", 0.0105, 0.005, G2, status="closed")        # closed: untouched
    _case(db, "C-MERGED", 0.0110, 0.006, G2, status="merged")        # merged: untouched
    _case(db, "C-STAYS", 0.005, 0.005, G1)                           # same grid, new generation
    _case(db, "C-RURAL", 0.03, 0.005, G3)
    _case(db, "C-OUTSIDE", 0.05, 0.005, G3)                          # outside every grid of the redraw
    return db


def test_redraw_is_inactive_until_activated(city_with_cases):
    db = city_with_cases
    c = _redraw()
    report, gen, relocation = import_boundaries(db, c.regions, c.grids, "redraw", commit=True)
    assert report.ok and gen == 2 and relocation is None
    gens = {g["id"]: g for g in list_generations(db)}
    assert gens[1]["active"] and not gens[2]["active"] and gens[2]["grids"] == 3
    assert _case_row(db, "C-NEAR-EDGE")["grid_code"] == G2


def test_activate_relocates_open_cases_near_the_moved_edge(city_with_cases):
    db = city_with_cases
    c = _redraw()
    _, gen, _ = import_boundaries(db, c.regions, c.grids, "redraw", commit=True)
    result = activate_generation_and_relocate(db, gen)
    assert result.moves == [{"case_no": "C-NEAR-EDGE", "old_grid": G2, "new_grid": G1, "old_generation": 1,
                             "new_generation": 2}]
    assert [o["case_no"] for o in result.outside] == ["C-OUTSIDE"]
    assert result.unchanged == 2  # C-STAYS, C-RURAL
    assert "C-NEAR-EDGE: 990101001001002 -> 990101001001001" in result.text()
    moved = _case_row(db, "C-NEAR-EDGE")
    assert moved == {"grid_code": G1, "generation": 2, "village_code": "990101001001", "township_code": "990101001",
                     "county_code": "990101", "version": 2}
    assert _case_row(db, "C-STAYS")["generation"] == 2 and _case_row(db, "C-STAYS")["version"] == 1
    for closed in ("C-CLOSED", "C-MERGED"):
        assert _case_row(db, closed)["grid_code"] == G2 and _case_row(db, closed)["generation"] == 1
    outside = _case_row(db, "C-OUTSIDE")
    assert outside["grid_code"] == G3 and outside["generation"] == 1
    audit = db.fetchall("SELECT case_no, from_grid, from_generation, to_grid, to_generation FROM case_relocation "
                        "ORDER BY case_no")
    assert audit == [
        {"case_no": "C-NEAR-EDGE", "from_grid": G2, "from_generation": 1, "to_grid": G1, "to_generation": 2},
        {"case_no": "C-OUTSIDE", "from_grid": G3, "from_generation": 1, "to_grid": None, "to_generation": 2}]
    assert db.fetchone("SELECT id FROM generation WHERE active")["id"] == 2
    ev = db.fetchall("SELECT c.case_no, e.action, e.data FROM case_event e JOIN case_record c ON c.id = e.case_id "
                     "WHERE e.action = 'relocate' ORDER BY c.case_no")
    assert [(e["case_no"], e["data"]["from_grid"], e["data"]["to_grid"]) for e in ev] == [
        ("C-NEAR-EDGE", G2, G1), ("C-OUTSIDE", G3, None)]


def test_old_generation_stays_queryable(city_with_cases):
    db = city_with_cases
    c = _redraw()
    _, gen, _ = import_boundaries(db, c.regions, c.grids, "redraw", commit=True, activate=True)
    assert find_grid_at(db, X0 + 0.011, Y0 + 0.005)["code"] == G1            # active = 2
    assert find_grid_at(db, X0 + 0.011, Y0 + 0.005, generation=1)["code"] == G2
    # on the shared edge the smallest code wins
    assert find_grid_at(db, X0 + 0.012, Y0 + 0.005)["code"] == G1
    _, old_grids = load_boundaries(db, 1)
    assert next(g for g in old_grids if g["code"] == G1)["geom"].bounds[2] == pytest.approx(X0 + 0.01)
    fc = layer_geojson_at(db, "grid", 1)
    assert [f["properties"]["code"] for f in fc["features"]] == [G1, G2, G3]
    assert len(layer_geojson_at(db, "region", 1, level="village")["features"]) == 2
    with pytest.raises(NotFound):
        activate_generation_and_relocate(db, 9)


def test_cli_generations_list_and_activate(city_with_cases, dsn, monkeypatch, capsys):
    monkeypatch.setenv("GRIDGOV_DATABASE_URL", dsn)
    c = _redraw()
    import_boundaries(city_with_cases, c.regions, c.grids, "redraw", commit=True)
    assert main(["generations", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "2" and out[1].split()[:2] == ["*", "1"]
    assert main(["generations", "activate", "2"]) == 0
    assert "moved C-NEAR-EDGE: 990101001001002 -> 990101001001001" in capsys.readouterr().out
    assert main(["validate", "--generation", "1"]) == 0
