"""The geocoder's index over regions, roads and standard addresses (pure Python, built once).

Names of every spelling (full, short, alias, 曾用名, stem without 村) go into one lexicon of `Hit`s;
standard addresses are indexed by their components: road, compound (小区), hamlet (自然村 / 屯),
group (村民小组) and door / building numbers. `grids.geocode` parses and scores against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gis.errors import BadInput
from grids.addrnorm import (
    compound_variants,
    group_number,
    is_hamlet_name,
    name_variants,
    normalize_text,
    township_stems,
    village_stems,
)

PROVINCES = (
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省",
    "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省",
    "广东省", "海南省", "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
)
REGION_LEVELS = ("village", "township", "county")
CODE_FIELD = {"village": "village_code", "township": "township_code", "county": "county_code"}
ENTITY_KINDS = ("road", "compound", "hamlet", "group")
# Quality of a spelling: the name itself is 1; others are a little less sure.
VIA_FACTOR = {"name": 1.0, "alias": 0.99, "old_name": 0.98, "short": 0.99, "stripped": 0.97, "stem": 0.97}
# Column order of Gazetteer.ids (interned component ids per address, for vectorised scoring).
COLUMNS = ("road", "compound", "hamlet", "group", "door", "building", "unit", "village", "township", "county")
COL = {c: i for i, c in enumerate(COLUMNS)}


@dataclass(frozen=True)
class Hit:
    """One interpretation of a piece of the query: a region, road, compound, hamlet or group, with quality."""

    kind: str          # province | city | county | township | village | road | compound | hamlet | group
    key: tuple         # region: (code,), road: (county_code, name), compound/hamlet: (village_code, name),
    #                    group: (village_code, number)
    quality: float     # 0..1
    via: str           # name | alias | old_name | short | stripped | stem | fuzzy:NN
    text: str          # the query text it came from


@dataclass
class Entity:
    """Summary of a road, compound, hamlet, group or region: its addresses' grids, regions and a point."""

    kind: str
    key: tuple
    label: str
    idxs: list = field(default_factory=list)
    grids: frozenset = frozenset()
    villages: frozenset = frozenset()
    townships: frozenset = frozenset()
    counties: frozenset = frozenset()
    lon: float = math.nan
    lat: float = math.nan
    all_codes: frozenset = frozenset()

    def codes(self, level: str) -> frozenset:
        """Region codes of one level its addresses lie in."""
        return self.villages if level == "village" else self.townships if level == "township" else self.counties


def split_names(value) -> list[str]:
    """A list cell of names: a list/tuple/array, or text separated by ; ；、 , ，| ."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    s = str(value)
    for sep in ("；", "、", "，", ",", "|"):
        s = s.replace(sep, ";")
    return [p.strip() for p in s.split(";") if p.strip()]


class Gazetteer:
    """Normalised indexes over regions, roads and standard addresses, built once."""

    def __init__(self) -> None:
        self.regions: dict[str, dict] = {}
        self.addresses: list[dict] = []
        self.lexicon: dict[str, list[Hit]] = {}
        self.lex_lengths: dict[str, tuple[int, ...]] = {}   # first character -> name lengths, longest first
        self.entities: dict[tuple, Entity] = {}
        self.by_door: dict[tuple, list[int]] = {}            # (kind, *key, door) -> address indexes
        self.by_building: dict[tuple, list[int]] = {}        # (kind, *key, building) -> address indexes
        self.groups_in: dict[tuple, list[str]] = {}          # (region code, group no) -> village codes
        self.region_summary: dict[str, Entity] = {}
        self.children: dict[str, list[str]] = {}             # region code -> child region codes
        self.fuzzy_names: dict[str | None, list[str]] = {}
        self._pools: dict[tuple, list[str]] = {}
        self.norm: list[tuple] = []   # per address: (road, compound, hamlet, group) keys, door, building, unit
        self.addr_keys: list[frozenset] = []      # per address: its (kind, *key) entity keys
        self.addr_regions: list[tuple] = []       # per address: (village, township, county) codes
        self.ids: dict = {}           # interned keys/codes -> int, for vectorised scoring
        self.idarr = None
        self.lonlat = None
        self._tree = None
        self._transformer = None

    # ---------------------------------------------------------------- building
    @classmethod
    def from_rows(cls, regions: list[dict], roads: list[dict], addresses: list[dict]) -> Gazetteer:
        """Build the gazetteer from region, road and standard-address dicts."""
        gaz = cls()
        gaz._add_regions(regions)
        canon = gaz._add_roads(roads)
        gaz._add_addresses(addresses, canon)
        gaz._build_fuzzy()
        gaz._build_tree()
        lengths: dict[str, set] = {}
        for text in gaz.lexicon:
            lengths.setdefault(text[0], set()).add(len(text))
        gaz.lex_lengths = {ch: tuple(sorted(v, reverse=True)) for ch, v in lengths.items()}
        return gaz

    def _lex(self, text: str, hit: Hit) -> None:
        if len(text) < 2:
            return
        bucket = self.lexicon.setdefault(text, [])
        for i, old in enumerate(bucket):
            if old.kind == hit.kind and old.key == hit.key:
                if hit.quality > old.quality:
                    bucket[i] = hit
                return
        bucket.append(hit)

    def _add_regions(self, regions: list[dict]) -> None:
        for name in PROVINCES:
            for text in {normalize_text(name), normalize_text(name)[:-1]}:
                self._lex(text, Hit("province", (name,), 1.0, "name", text))
        for r in regions:
            code, level = str(r["code"]), r["level"]
            if level not in ("city", "county", "township", "village"):
                raise BadInput(f"unknown region level {level!r}", field="level")
            self.regions[code] = dict(r)
            if r.get("parent_code"):
                self.children.setdefault(str(r["parent_code"]), []).append(code)
            names = [(r["name"], "name")]
            if r.get("short_name"):
                names.append((r["short_name"], "short"))
            names += [(a, "alias") for a in split_names(r.get("aliases"))]
            for name, via in names:
                for text, q in name_variants(name, level):
                    v = via if q == 1.0 else "stripped"
                    self._lex(text, Hit(level, (code,), q * VIA_FACTOR[v], v, text))
                if level in ("village", "township"):
                    # "新发三组", "孤家子新发村": named without 村 / 镇; only read where the next word says so
                    for stem in (village_stems(name) if level == "village" else township_stems(name)):
                        self._lex(stem, Hit(level, (code,), VIA_FACTOR["stem"] * VIA_FACTOR[via], "stem", stem))

    def _add_roads(self, roads: list[dict]) -> dict[tuple, str]:
        canon: dict[tuple, str] = {}
        for road in roads:
            county = str(road["county_code"])
            name = normalize_text(road["name"])
            key = (county, name)
            self.entities.setdefault(("road",) + key, Entity("road", key, road["name"]))
            spellings = [(road["name"], "name")]
            spellings += [(a, "alias") for a in split_names(road.get("aliases"))]
            spellings += [(o, "old_name") for o in split_names(road.get("old_names"))]
            for text, via in spellings:
                t = normalize_text(text)
                canon.setdefault((county, t), name)
                self._lex(t, Hit("road", key, VIA_FACTOR[via], via, t))
        return canon

    def _entity(self, kind: str, key: tuple, label: str, i: int, variants) -> None:
        ent = self.entities.get((kind,) + key)
        if ent is None:
            ent = self.entities[(kind,) + key] = Entity(kind, key, label)
            for text, q in variants:
                self._lex(text, Hit(kind, key, q, "name" if q == 1.0 else "short", text))
        ent.idxs.append(i)

    def _add_addresses(self, addresses: list[dict], canon: dict[tuple, str]) -> None:
        lons, lats, ids = [], [], []

        def intern(value) -> int:
            if value is None:
                return -1
            return self.ids.setdefault(value, len(self.ids))

        for i, a in enumerate(addresses):
            self.addresses.append(a)
            county, village = str(a["county_code"]), str(a["village_code"])
            road_key = comp_key = hamlet_key = group_key = None
            if a.get("road"):
                rn = normalize_text(a["road"])
                rn = canon.get((county, rn), rn)
                road_key = (county, rn)
                self._entity("road", road_key, a["road"], i, [(rn, 1.0)])
            compound = (a.get("compound") or "").strip()
            hamlet = (a.get("natural_village") or "").strip()
            group = group_number(a.get("village_group") or "") if a.get("village_group") else None
            if compound and not road_key and not a.get("building"):
                # rural data often puts the 组 or the 屯 in the compound column
                if group is None and group_number(compound) is not None:
                    group, compound = group_number(compound), ""
                elif not hamlet and is_hamlet_name(normalize_text(compound)):
                    hamlet, compound = compound, ""
            if compound:
                comp_key = (village, normalize_text(compound))
                self._entity("compound", comp_key, compound, i, compound_variants(compound))
            if hamlet:
                hamlet_key = (village, normalize_text(hamlet))
                self._entity("hamlet", hamlet_key, hamlet, i, [(normalize_text(hamlet), 1.0)])
            if group is not None:
                group_key = (village, group)
                self._entity("group", group_key, f"{group}组", i, ())
            door = normalize_text(str(a.get("door_no") or "")).removesuffix("号") or None
            building = normalize_text(str(a.get("building") or "")) or None
            unit = normalize_text(str(a.get("unit") or "")) or None
            keys = (road_key, comp_key, hamlet_key, group_key)
            self.norm.append((keys, door, building, unit))
            self.addr_keys.append(frozenset((kind,) + key for kind, key in zip(ENTITY_KINDS, keys, strict=True)
                                            if key))
            self.addr_regions.append((village, str(a["township_code"]), county))
            ids.append([intern(road_key), intern(comp_key), intern(hamlet_key), intern(group_key), intern(door),
                        intern(building), intern(unit), intern(village), intern(str(a["township_code"])),
                        intern(county)])
            for kind, key in zip(ENTITY_KINDS, keys, strict=True):
                if key is None:
                    continue
                if door:
                    self.by_door.setdefault((kind,) + key + (door,), []).append(i)
                if building and kind in ("road", "compound"):
                    self.by_building.setdefault((kind,) + key + (building,), []).append(i)
            for level in REGION_LEVELS:
                code = str(a[CODE_FIELD[level]])
                summ = self.region_summary.get(code)
                if summ is None:
                    reg = self.regions.get(code, {})
                    summ = self.region_summary[code] = Entity(level, (code,), reg.get("name", code))
                summ.idxs.append(i)
            lon, lat = address_lonlat(a)
            lons.append(lon)
            lats.append(lat)
        self.lonlat = np.column_stack([lons, lats]) if lons else np.empty((0, 2))
        self.idarr = np.array(ids, dtype=np.int64).reshape(-1, len(COLUMNS))
        for ent in list(self.entities.values()) + list(self.region_summary.values()):
            self._summarise(ent)
        for code, reg in self.regions.items():
            if code not in self.region_summary and reg["level"] in REGION_LEVELS:
                summ = self.region_summary[code] = Entity(reg["level"], (code,), reg["name"])
                self._summarise(summ)
        for key, ent in self.entities.items():
            if key[0] == "group":
                village, number = key[1], key[2]
                for code in ("", village, *ent.townships, *ent.counties):
                    self.groups_in.setdefault((code, number), []).append(village)

    def _summarise(self, ent: Entity) -> None:
        addrs = [self.addresses[i] for i in ent.idxs]
        ent.grids = frozenset(str(a["grid_code"]) for a in addrs)
        ent.villages = frozenset(str(a["village_code"]) for a in addrs)
        ent.townships = frozenset(str(a["township_code"]) for a in addrs)
        ent.counties = frozenset(str(a["county_code"]) for a in addrs)
        if ent.kind in REGION_LEVELS and not addrs:
            chain = self.region_chain(ent.key[0])
            ent.villages = frozenset([chain["village"]]) if chain.get("village") else frozenset()
            ent.townships = frozenset([chain["township"]]) if chain.get("township") else frozenset()
            ent.counties = frozenset([chain["county"]]) if chain.get("county") else frozenset()
        if ent.kind == "road" and ent.counties == frozenset():
            ent.counties = frozenset([ent.key[0]])
        ent.all_codes = ent.villages | ent.townships | ent.counties
        if addrs:
            pts = self.lonlat[ent.idxs]
            centre = pts.mean(axis=0)
            # representative point: the address nearest the centroid (always on a real building)
            j = int(np.argmin(((pts - centre) ** 2).sum(axis=1)))
            ent.lon, ent.lat = float(pts[j, 0]), float(pts[j, 1])

    def region_chain(self, code: str) -> dict:
        """{level: code} of a region and its ancestors."""
        out, seen = {}, 0
        while code in self.regions and seen < 6:
            reg = self.regions[code]
            out[reg["level"]] = code
            code = str(reg.get("parent_code") or "")
            seen += 1
        return out

    def _build_fuzzy(self) -> None:
        names: dict[str | None, set] = {None: set()}
        for text, hits in self.lexicon.items():
            if len(text) < 3:
                continue
            for h in hits:
                if h.kind not in ("road", "compound", "hamlet", "township", "village") or h.via in ("stripped", "stem"):
                    continue
                names[None].add(text)
                for code in self.hit_regions(h):
                    names.setdefault(code, set()).add(text)
        self.fuzzy_names = {k: sorted(v) for k, v in names.items()}
        # the pools queries use (everywhere; a county; a township with the roads of its county), built now so
        # that the first query in a township is as fast as the next one
        self.fuzzy_pool((None,))
        for code, reg in self.regions.items():
            if reg["level"] == "county":
                self.fuzzy_pool((code,))
            elif reg["level"] == "township":
                self.fuzzy_pool(tuple(sorted({code, str(reg.get("parent_code") or "")})))

    def fuzzy_pool(self, scope: tuple) -> list[str]:
        """Sorted names to fuzzy-match against within region codes `scope` ((None,) = everywhere), cached."""
        pool = self._pools.get(scope)
        if pool is None:
            pool = self._pools[scope] = sorted({c for k in scope for c in self.fuzzy_names.get(k, ())})
        return pool

    def hit_regions(self, h: Hit) -> frozenset:
        """County and township codes a named thing lies in (for scoping fuzzy matches)."""
        if h.kind == "road":
            return frozenset([h.key[0]])
        if h.kind in ("compound", "hamlet"):
            ent = self.entities.get((h.kind,) + h.key)
            return (ent.counties | ent.townships) if ent else frozenset()
        chain = self.region_chain(h.key[0])
        return frozenset(chain[lvl] for lvl in ("county", "township") if lvl in chain)

    def _build_tree(self) -> None:
        from pyproj import Transformer
        from scipy.spatial import cKDTree

        if len(self.lonlat) == 0:
            return
        lon0, lat0 = (float(v) for v in self.lonlat.mean(axis=0))
        self._transformer = Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m",
            always_xy=True)
        x, y = self._transformer.transform(self.lonlat[:, 0], self.lonlat[:, 1])
        self._tree = cKDTree(np.column_stack([x, y]))

    # ---------------------------------------------------------------- helpers
    def region_name(self, code: str | None) -> str:
        """Display name of a region code ('' when unknown)."""
        if not code:
            return ""
        reg = self.regions.get(code, {})
        return reg.get("short_name") or reg.get("name", "") if reg.get("level") == "village" else reg.get("name", "")

    def nearest(self, lon: float, lat: float, max_distance_m: float) -> tuple[int, float] | None:
        """Index of and distance (m) to the nearest address within max_distance_m, or None."""
        if self._tree is None:
            return None
        x, y = self._transformer.transform(lon, lat)
        dist, idx = self._tree.query([x, y], k=1, distance_upper_bound=max_distance_m)
        if not math.isfinite(dist):
            return None
        return int(idx), float(dist)


def public_address(a: dict) -> dict:
    """JSON-ready copy of an address row: a shapely 'geom' becomes lon/lat."""
    out = {k: v for k, v in a.items() if k != "geom"}
    out["lon"], out["lat"] = address_lonlat(a)
    return out


def address_lonlat(a: dict) -> tuple[float, float]:
    """Point of an address row: 'lon'/'lat' keys, or a shapely point under 'geom'."""
    if a.get("lon") is not None and a.get("lat") is not None:
        return float(a["lon"]), float(a["lat"])
    geom = a.get("geom")
    if geom is None:
        raise BadInput(f"address {a.get('code')!r} has no lon/lat or geom", field="geom")
    return float(geom.x), float(geom.y)
