"""Loading a city into PostGIS and reading its layers back."""

from grids.store import city_loaded, layer_geojson, load_city
from tests.factories import tiny_city


def test_load_city_creates_active_generation_and_layers(db):
    assert not city_loaded(db)
    gen = load_city(db, tiny_city(), source="test", progress=lambda m: None)
    assert gen == 1 and city_loaded(db)
    counts = db.fetchone("SELECT (SELECT count(*) FROM region) r, (SELECT count(*) FROM grid) g, "
                         "(SELECT count(*) FROM staff) s, (SELECT count(*) FROM address) a")
    assert counts == {"r": 6, "g": 3, "s": 11, "a": 3}
    fc = layer_geojson(db, "grid")
    assert [f["properties"]["code"] for f in fc["features"]] == [
        "990101001001001", "990101001001002", "990101002001001"]
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    twp = layer_geojson(db, "region", level="township", parent="990101")
    assert {f["properties"]["name"] for f in twp["features"]} == {"东风街道", "新河镇"}
    # every standard address lies in its grid, checked by PostGIS
    bad = db.fetchone("SELECT count(*) n FROM address a JOIN grid g ON g.code = a.grid_code "
                      "WHERE NOT ST_Covers(g.geom, a.geom)")
    assert bad["n"] == 0


def test_layers_of_an_old_generation_through_the_api(db):
    from gis.settings import Settings
    from grids.store import activate_generation, create_generation, write_boundaries
    from webmap import create_app

    city = tiny_city()
    load_city(db, city, source="test", progress=lambda m: None)
    with db.connection() as conn, conn.cursor() as cur:  # generation 2: the first grid only
        gen = create_generation(cur, "redraw")
        write_boundaries(cur, gen, city.regions, city.grids[:1])
        activate_generation(cur, gen)
    client = create_app(settings=Settings(), db=db, test_config={"TESTING": True}).test_client()
    assert len(client.get("/api/layers/grid").get_json()["features"]) == 1
    assert len(client.get("/api/layers/grid?generation=1").get_json()["features"]) == 3
    assert client.get("/api/layers/grid?generation=7").status_code == 404
    assert client.get("/api/layers/grid?generation=x").status_code == 400
