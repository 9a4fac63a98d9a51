"""Class cases (类案) and duplicate suggestions, over plain data.

find_clusters is a spatio-temporal DBSCAN (ST-DBSCAN): two cases of the same category are neighbours
when they are within eps_m metres *and* window_days days of each other; core points need min_samples
neighbours (themselves included). Distances are measured in a local azimuthal equidistant projection
centred on the data (metres, true distance from the centre, < 0.1% error across a city), so no UTM
zone has to be picked and zone borders do not matter.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from cases.calendar import to_local
from gis.errors import BadInput

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Cluster:
    """One 类案 cluster: its cases, footprint and time span."""

    category_code: str | None
    case_ids: tuple
    count: int
    centroid: tuple[float, float]  # (lon, lat)
    bbox: tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat)
    hull: dict  # GeoJSON geometry (Polygon; Point/LineString when degenerate), lon/lat
    first_at: dt.datetime
    last_at: dt.datetime
    radius_m: float  # farthest case from the centroid

    @property
    def span_days(self) -> float:
        """Days between the first and last case."""
        return (self.last_at - self.first_at) / dt.timedelta(days=1)

    def to_dict(self) -> dict:
        """Plain-data (GeoJSON-ready) form."""
        return {"category_code": self.category_code, "case_ids": list(self.case_ids), "count": self.count,
                "centroid": list(self.centroid), "bbox": list(self.bbox), "hull": self.hull,
                "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat(),
                "span_days": self.span_days, "radius_m": self.radius_m}


def local_projection(lons, lats):
    """A pyproj Transformer WGS84 → azimuthal equidistant metres centred on the points' mean."""
    from pyproj import Transformer  # lazy: keeps importing this module cheap

    lon0, lat0 = float(np.mean(lons)), float(np.mean(lats))
    return Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", always_xy=True)


def _validate(points):
    rows = []
    for p in points:
        try:
            case_id, lon, lat, received_at, category = p
        except (TypeError, ValueError) as exc:
            raise BadInput("each point is (case_id, lon, lat, received_at, category_code)") from exc
        lon, lat = float(lon), float(lat)
        if not (-180 <= lon <= 180 and -90 <= lat <= 90) or math.isnan(lon) or math.isnan(lat):
            raise BadInput(f"case {case_id}: lon/lat out of range ({lon}, {lat})", field="points")
        rows.append((case_id, lon, lat, to_local(received_at), category))
    return rows


def find_clusters(points, eps_m: float = 300, min_samples: int = 5, window_days: float = 30
                  ) -> list[Cluster]:
    """类案: ST-DBSCAN per category over (case_id, lon, lat, received_at, category_code); largest first."""
    from scipy.sparse import csr_matrix
    from shapely.geometry import MultiPoint, mapping
    from sklearn.cluster import DBSCAN
    from sklearn.neighbors import NearestNeighbors

    if eps_m <= 0 or min_samples < 1 or window_days < 0:
        raise BadInput("eps_m > 0, min_samples >= 1 and window_days >= 0 are required")
    rows = _validate(points)
    if not rows:
        return []
    tr = local_projection([r[1] for r in rows], [r[2] for r in rows])
    by_cat: dict[object, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_cat[r[4]].append(i)
    clusters: list[Cluster] = []
    for cat, idx in by_cat.items():
        if len(idx) < min_samples:
            continue
        x, y = tr.transform([rows[i][1] for i in idx], [rows[i][2] for i in idx])
        xy = np.column_stack([x, y])
        t = np.array([rows[i][3].timestamp() for i in idx]) / 86400.0
        graph = NearestNeighbors(radius=eps_m).fit(xy).radius_neighbors_graph(xy, mode="distance")
        graph = graph.tocoo()
        keep = np.abs(t[graph.row] - t[graph.col]) <= window_days
        # Explicit tiny distances so that co-located cases (distance 0) stay stored neighbours.
        data = np.maximum(graph.data[keep], 1e-9)
        g = csr_matrix((data, (graph.row[keep], graph.col[keep])), shape=graph.shape)
        labels = DBSCAN(eps=eps_m, min_samples=min_samples, metric="precomputed").fit(g).labels_
        for lab in sorted(set(labels) - {-1}):
            members = [k for k, lab_k in enumerate(labels) if lab_k == lab]
            ids = tuple(rows[idx[k]][0] for k in members)
            mx, my = xy[members, 0].mean(), xy[members, 1].mean()
            clon, clat = tr.transform(mx, my, direction="INVERSE")
            lons = [rows[idx[k]][1] for k in members]
            lats = [rows[idx[k]][2] for k in members]
            times = [rows[idx[k]][3] for k in members]
            radius = float(np.max(np.hypot(xy[members, 0] - mx, xy[members, 1] - my)))
            hull = mapping(MultiPoint(list(zip(lons, lats, strict=True))).convex_hull)
            clusters.append(Cluster(
                category_code=cat, case_ids=ids, count=len(ids), centroid=(float(clon), float(clat)),
                bbox=(min(lons), min(lats), max(lons), max(lats)), hull=_plain(hull),
                first_at=min(times), last_at=max(times), radius_m=round(radius, 1)))
    clusters.sort(key=lambda c: (-c.count, str(c.category_code), str(c.case_ids[0])))
    return clusters


def _plain(geom: dict) -> dict:
    def conv(c):
        return [conv(x) for x in c] if isinstance(c, (list, tuple)) and c and isinstance(
            c[0], (list, tuple)) else [float(v) for v in c]
    return {"type": geom["type"], "coordinates": conv(geom["coordinates"])}


# -- duplicates ---------------------------------------------------------------------------------

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def _bigrams(text: str) -> set[str]:
    s = _NOISE.sub("", (text or "").lower())
    if len(s) < 2:
        return {s} if s else set()
    return {s[i:i + 2] for i in range(len(s) - 1)}


def similar_text(a: str, b: str) -> float:
    """Character-bigram Jaccard similarity in [0, 1] (punctuation and spaces ignored)."""
    x, y = _bigrams(a), _bigrams(b)
    if not x and not y:
        return 0.0
    return len(x & y) / len(x | y)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _phone(p) -> str | None:
    digits = re.sub(r"\D", "", p or "")
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None


def _text(case: dict) -> str:
    return f"{case.get('title') or ''} {case.get('content') or ''}"


def suggest_duplicates(new_case: dict, candidates, radius_m: float = 250, days: float = 30,
                       min_similarity: float = 0.3, limit: int = 10) -> list[dict]:
    """Ranked possible duplicates of a new case, each with a score in [0, 1] and Chinese reasons.

    A candidate qualifies when it was received within `days` of the new case and either has the same
    reporter phone, or the same category within radius_m with text similarity >= min_similarity.
    score = 0.5·same phone + 0.3·similarity + 0.2·proximity (1 - d/radius_m, same category only).
    """
    t0 = to_local(new_case["received_at"])
    phone0 = None if new_case.get("anonymous") else _phone(new_case.get("reporter_phone"))
    text0 = _text(new_case)
    out = []
    for c in candidates:
        if c.get("id") is not None and c.get("id") == new_case.get("id"):
            continue
        gap = abs((to_local(c["received_at"]) - t0) / dt.timedelta(days=1))
        if gap > days:
            continue
        reasons = []
        same_phone = phone0 is not None and not c.get("anonymous") and _phone(c.get("reporter_phone")) == phone0
        if same_phone:
            reasons.append(f"同一诉求人电话（{days:g}天内）")
        sim = similar_text(text0, _text(c))
        d = None
        if None not in (new_case.get("lon"), new_case.get("lat"), c.get("lon"), c.get("lat")):
            d = distance_m(new_case["lon"], new_case["lat"], c["lon"], c["lat"])
        same_cat = (new_case.get("category_code") is not None
                    and c.get("category_code") == new_case.get("category_code"))
        near = same_cat and d is not None and d <= radius_m
        place_match = near and sim >= min_similarity
        if place_match:
            reasons.append(f"同类别，相距 {d:.0f} 米")
            reasons.append(f"内容相似度 {sim:.2f}")
        if not (same_phone or place_match):
            continue
        proximity = (1 - d / radius_m) if near else 0.0
        score = 0.5 * same_phone + 0.3 * sim + 0.2 * proximity
        if same_phone and not place_match and sim > 0:
            reasons.append(f"内容相似度 {sim:.2f}")
        out.append({"id": c.get("id"), "case_no": c.get("case_no"), "score": round(score, 4),
                    "similarity": round(sim, 4), "distance_m": None if d is None else round(d, 1),
                    "days_apart": round(gap, 2), "reasons": reasons})
    out.sort(key=lambda r: (-r["score"], r["days_apart"], str(r["id"])))
    return out[:limit]


# -- bounded 类案 clustering over the database --------------------------------------------------------

MAX_CELLS = 50_000       # cells read per request: memory and time are bounded whatever the data
MAX_IDS = 200            # case ids listed per cluster (the count is exact)


def cell_clusters(db, scope_sql: str, params: dict, *, eps_m: float = 300, min_samples: int = 5,
                  window_days: float = 30, where: tuple[str, ...] = ()) -> list[dict]:
    """类案 clusters from a GROUP BY over space × time cells: bounded in memory and time.

    Cases are snapped in SQL to cells of `eps_m` metres (a local equirectangular scale at the data's
    latitude) × `window_days` days, per category, and counted there; cells of one category that touch
    (including diagonally, and in adjacent time windows) form a cluster, kept when it holds at least
    `min_samples` cases. Unlike DBSCAN inside the request (O(n²) memory when thousands of cases sit at
    one spot), the work is one indexed GROUP BY plus a connected-components pass over at most MAX_CELLS
    cells; a cluster lists at most MAX_IDS case ids and its exact count.
    """
    if eps_m <= 0 or window_days <= 0 or min_samples < 1:
        raise BadInput("eps_m, window_days and min_samples must be positive", field="eps_m")
    conds = " AND ".join((scope_sql, "c.geom IS NOT NULL", "c.status <> 'merged'", *where))
    lat0 = db.fetchone(f"SELECT avg(ST_Y(c.geom)) lat FROM (SELECT c.geom FROM case_record c WHERE {conds} "
                       f"LIMIT 1000) c", params)["lat"]
    if lat0 is None:
        return []
    p = dict(params, kx=111_320.0 * math.cos(math.radians(lat0)) / eps_m, ky=110_574.0 / eps_m,
             kt=1.0 / (window_days * 86400.0), lim=MAX_CELLS, nids=MAX_IDS)
    rows = db.fetchall(f"""
        SELECT floor(ST_X(c.geom) * %(kx)s)::bigint cx, floor(ST_Y(c.geom) * %(ky)s)::bigint cy,
               floor(extract(epoch FROM c.received_at) * %(kt)s)::bigint ct, c.category_code cat,
               count(*)::int n, sum(ST_X(c.geom)) sx, sum(ST_Y(c.geom)) sy,
               min(ST_X(c.geom)) x0, min(ST_Y(c.geom)) y0, max(ST_X(c.geom)) x1, max(ST_Y(c.geom)) y1,
               min(c.received_at) t0, max(c.received_at) t1, (array_agg(c.id ORDER BY c.id))[1:%(nids)s] ids
        FROM case_record c WHERE {conds}
        GROUP BY 1, 2, 3, 4 ORDER BY count(*) DESC LIMIT %(lim)s""", p)
    index = {(r["cat"], r["cx"], r["cy"], r["ct"]): i for i, r in enumerate(rows)}
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, r in enumerate(rows):
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dtt in (-1, 0, 1):
                    j = index.get((r["cat"], r["cx"] + dx, r["cy"] + dy, r["ct"] + dtt))
                    if j is not None and j > i:
                        a, b = find(i), find(j)
                        if a != b:
                            parent[b] = a
    groups: dict[int, list[dict]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[find(i)].append(r)
    out = []
    for cells in groups.values():
        n = sum(c["n"] for c in cells)
        if n < min_samples:
            continue
        lon, lat = sum(c["sx"] for c in cells) / n, sum(c["sy"] for c in cells) / n
        bbox = (min(c["x0"] for c in cells), min(c["y0"] for c in cells), max(c["x1"] for c in cells),
                max(c["y1"] for c in cells))
        ids = sorted(i for c in cells for i in c["ids"])[:MAX_IDS]
        first, last = min(c["t0"] for c in cells), max(c["t1"] for c in cells)
        radius = max(distance_m(lon, lat, x, y) for x in (bbox[0], bbox[2]) for y in (bbox[1], bbox[3]))
        hull = ({"type": "Point", "coordinates": [bbox[0], bbox[1]]} if bbox[0] == bbox[2] and bbox[1] == bbox[3]
                else {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]],
                                                          [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]})
        out.append({"category_code": cells[0]["cat"], "case_ids": ids, "count": n, "centroid": [lon, lat],
                    "bbox": list(bbox), "hull": hull, "first_at": first.isoformat(), "last_at": last.isoformat(),
                    "span_days": (last - first) / dt.timedelta(days=1), "radius_m": radius,
                    "ids_truncated": n > len(ids)})
    out.sort(key=lambda c: (-c["count"], c["first_at"]))
    return out
