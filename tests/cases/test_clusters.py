"""类案 clusters on synthetic points, and duplicate suggestions."""

import datetime as dt
import math
import random

import pytest

from cases.calendar import TZ
from cases.clusters import distance_m, find_clusters, similar_text, suggest_duplicates
from gis.errors import BadInput

T0 = dt.datetime(2026, 9, 1, 9, tzinfo=TZ)
LON, LAT = 111.67, 27.69  # 涟源


def offset(lon, lat, east_m, north_m):
    """Point east/north of (lon, lat) by metres (small offsets)."""
    dlat = north_m / 111_320
    dlon = east_m / (111_320 * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat


def tight_cluster_plus_noise(seed=7):
    rng = random.Random(seed)
    pts = []
    for i in range(12):  # within 80 m, over 11 days
        lon, lat = offset(LON, LAT, rng.uniform(-80, 80), rng.uniform(-80, 80))
        pts.append((f"v{i}", lon, lat, T0 + dt.timedelta(days=i), "电压不稳定"))
    for i in range(15):  # scattered over ±5 km
        lon, lat = offset(LON, LAT, rng.uniform(-5000, 5000), rng.uniform(-5000, 5000))
        pts.append((f"n{i}", lon, lat, T0 + dt.timedelta(days=rng.randint(0, 20)), "电压不稳定"))
    return pts


def test_one_tight_cluster_and_noise():
    clusters = find_clusters(tight_cluster_plus_noise())
    assert len(clusters) == 1
    c = clusters[0]
    assert set(c.case_ids) == {f"v{i}" for i in range(12)} and c.count == 12
    assert c.category_code == "电压不稳定"
    assert distance_m(*c.centroid, LON, LAT) < 60
    assert c.radius_m < 120
    min_lon, min_lat, max_lon, max_lat = c.bbox
    assert min_lon < LON < max_lon and min_lat < LAT < max_lat
    assert c.hull["type"] == "Polygon"
    ring = c.hull["coordinates"][0]
    assert ring[0] == ring[-1] and all(min_lon <= x <= max_lon and min_lat <= y <= max_lat for x, y in ring)
    assert c.span_days == 11 and c.first_at == T0
    assert c.to_dict()["count"] == 12


def test_categories_are_clustered_separately():
    pts = [(f"a{i}", *offset(LON, LAT, i * 10, 0), T0, "安全饮水") for i in range(3)]
    pts += [(f"b{i}", *offset(LON, LAT, i * 10, 5), T0, "电压不稳定") for i in range(3)]
    assert find_clusters(pts, min_samples=5) == []
    assert len(find_clusters(pts, min_samples=3)) == 2


def test_time_window_splits_far_apart_cases():
    early = [(f"e{i}", *offset(LON, LAT, i * 5, 0), T0, "拆迁") for i in range(5)]
    late = [(f"l{i}", *offset(LON, LAT, i * 5, 0), T0 + dt.timedelta(days=90), "拆迁") for i in range(5)]
    clusters = find_clusters(early + late, window_days=30)
    assert sorted(len(c.case_ids) for c in clusters) == [5, 5]
    assert len(find_clusters(early + late, window_days=120)) == 1


def test_colocated_cases_form_a_cluster_with_a_point_hull():
    pts = [(f"p{i}", LON, LAT, T0, "安全饮水") for i in range(5)]
    (c,) = find_clusters(pts)
    assert c.hull["type"] == "Point" and c.radius_m == 0


def test_bad_input():
    assert find_clusters([]) == []
    with pytest.raises(BadInput):
        find_clusters([("x", 200, 27, T0, "c")])
    with pytest.raises(BadInput):
        find_clusters([("x", 111, 27)])
    with pytest.raises(BadInput):
        find_clusters([], eps_m=0)


def test_similar_text():
    assert similar_text("电压不稳定", "电压不稳定") == 1
    assert similar_text("电压不稳定，经常跳闸", "电压 不稳定 经常跳闸！") == 1  # punctuation/space ignored
    assert similar_text("电压不稳定", "安全饮水") == 0
    assert 0 < similar_text("小区电压不稳定经常跳闸", "电压不稳，天天跳闸") < 1
    assert similar_text("", "") == 0


NEW = {"id": 100, "received_at": T0, "lon": LON, "lat": LAT, "category_code": "电压不稳定",
       "title": "小区电压不稳定", "content": "晚上经常跳闸，电器烧坏", "reporter_phone": "138 0000 1111"}


def cand(cid, **kw):
    base = {"id": cid, "received_at": T0 - dt.timedelta(days=3), "lon": LON, "lat": LAT,
            "category_code": "电压不稳定", "title": "", "content": "", "reporter_phone": None}
    base.update(kw)
    return base


def test_suggest_duplicates_ranked_with_reasons():
    lon100, lat100 = offset(LON, LAT, 100, 0)
    lon400, lat400 = offset(LON, LAT, 400, 0)
    cands = [
        cand(1, reporter_phone="+86 13800001111", title="还是电压问题"),  # same phone
        cand(2, lon=lon100, lat=lat100, title="电压不稳定", content="晚上经常跳闸"),  # near + similar
        cand(3, lon=lon400, lat=lat400, title="电压不稳定", content="晚上经常跳闸"),  # too far
        cand(4, title="路灯不亮", content="晚上很黑"),  # near, dissimilar
        cand(5, category_code="安全饮水", title="小区电压不稳定", content="晚上经常跳闸"),  # other category
        cand(6, reporter_phone="13800001111", received_at=T0 - dt.timedelta(days=45)),  # too old
        cand(100, reporter_phone="13800001111"),  # itself
        cand(7, lon=lon100, lat=lat100, title="小区电压不稳定", content="晚上经常跳闸，电器烧坏",
             reporter_phone="13800001111"),  # everything
    ]
    out = suggest_duplicates(NEW, cands)
    assert [r["id"] for r in out] == [7, 1, 2]
    assert "同一诉求人电话（30天内）" in out[0]["reasons"]
    assert any(x.startswith("同类别，相距 100 米") for x in out[2]["reasons"])
    assert any(x.startswith("内容相似度") for x in out[2]["reasons"])
    assert out[0]["score"] > out[1]["score"] > out[2]["score"]


def test_anonymous_cases_do_not_match_on_phone():
    out = suggest_duplicates({**NEW, "anonymous": True}, [cand(1, reporter_phone="13800001111")])
    assert out == []
