"""类案 clustering is bounded: thousands of cases at one spot are one GROUP BY cell, not an O(n²) DBSCAN."""

from __future__ import annotations

import pytest

from cases.clusters import MAX_IDS, cell_clusters
from gis.errors import BadInput


def _insert(db, n, lon, lat, spread_deg=0.0, days_ago=1, prefix="A"):
    db.execute(f"""
        INSERT INTO case_record (case_no, channel, kind, title, status, received_at, geom)
        SELECT '{prefix}' || i, '12345热线', '求决', '供水', 'received', now() - interval '{days_ago} days'
               - (i % 5) * interval '1 hour',
               ST_SetSRID(ST_MakePoint({lon} + {spread_deg} * ((i * 7919) % 1000) / 1000.0,
                                       {lat} + {spread_deg} * ((i * 104729) % 1000) / 1000.0), 4326)
        FROM generate_series(1, {n}) i""")


def test_thousands_at_one_spot_are_one_bounded_cluster(db):
    _insert(db, 5000, 124.35, 43.15)                                  # 5,000 cases at one spot
    _insert(db, 40, 124.40, 43.17, spread_deg=0.001, prefix="B")       # a small 类案 about 5 km away
    _insert(db, 3, 124.50, 43.30, prefix="C")                          # too few to be a cluster
    _insert(db, 30, 124.35, 43.15, days_ago=200, prefix="D")           # same spot, far apart in time
    found = cell_clusters(db, "true", {}, eps_m=300, min_samples=5, window_days=30,
                          where=("c.received_at > now() - interval '100 days'",))
    assert [c["count"] for c in found] == [5000, 40]
    big = found[0]
    assert len(big["case_ids"]) == MAX_IDS and big["ids_truncated"]
    assert big["radius_m"] < 1 and big["hull"]["type"] == "Point"
    assert found[1]["radius_m"] < 300 and not found[1]["ids_truncated"]
    # the old cases at the same spot are their own cluster when the window reaches them
    found = cell_clusters(db, "true", {}, eps_m=300, min_samples=5, window_days=30)
    assert sorted(c["count"] for c in found) == [30, 40, 5000]


def test_cell_clusters_respect_scope_and_bad_parameters(db):
    _insert(db, 50, 124.35, 43.15)
    assert cell_clusters(db, "false", {}) == []
    with pytest.raises(BadInput):
        cell_clusters(db, "true", {}, eps_m=0)
