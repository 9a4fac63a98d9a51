"""Address text -> standard address (标准地址) -> grid: the hotline geocoding path, pure Python.

`Gazetteer.from_rows(regions, roads, addresses)` builds the indexes once; `geocode(gaz, text)`
parses operator input (regions, roads, compounds, door / building / unit numbers, filler), scores
the standard addresses and entities it could mean, and answers only as precisely as it is sure
of. A confident wrong grid is the worst answer: when two places fit equally well the result is
'ambiguous' and stops at the level they share. See docs/geocoding.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from gis.errors import BadInput
from grids.addrnorm import compound_variants, name_variants, normalize_text, strip_filler

# Answers with confidence >= this are "confident": the evaluation requires >= 99% of them to
# have the right grid.
CONFIDENT = 0.8

PRECISIONS = ("building", "door", "compound", "road", "village", "township", "county")
_REGION_LEVELS = ("village", "township", "county")
_CODE_FIELD = {"village": "village_code", "township": "township_code", "county": "county_code"}

PROVINCES = (
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省",
    "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省",
    "广东省", "海南省", "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
)

# Scoring weights (see docs/geocoding.md).
W_ROAD = 3.0
W_COMPOUND = 3.0
W_DOOR = 2.0
W_BUILDING = 2.0
W_UNIT = 0.5
W_REGION = {"county": 0.5, "township": 1.0, "village": 1.0}
P_REGION_CONFLICT = 2.0
P_NUMBER_CONFLICT = 1.5
TIE_DELTA = 0.35          # candidates this close to the best are indistinguishable
FUZZY_CUTOFF = 70.0       # rapidfuzz ratio below which a span is not a name
FUZZY_MARGIN = 8.0        # fuzzy matches this close to the best are kept as rivals
BASE_CONFIDENCE = {"building": 0.98, "door": 0.97, "compound": 0.95, "road": 0.93,
                   "village": 0.95, "township": 0.95, "county": 0.95}
UNKNOWN_FACTOR = 0.85     # per span of text left unexplained
VIA_FACTOR = {"name": 1.0, "alias": 0.99, "old_name": 0.98, "short": 0.99, "stripped": 0.97}

_NUMBER_RE = re.compile(
    r"(?P<bur>\d+)-(?P<uur>\d+)-(?P<rur>\d+)"
    r"|(?P<bld>\d+)号楼"
    r"|(?P<unit>\d+)单元"
    r"|(?P<room>\d+)(?:室|户)"
    r"|(?P<floor>\d+)层"
    r"|(?P<lou>\d+)楼"
    r"|(?P<door>\d+(?:-\d+)?)号"
)
_EDGE_CHARS = "在的是到去从就那这了呢啊吧和与及"


@dataclass(frozen=True)
class Hit:
    """One interpretation of a piece of the query: a region, road or compound, with quality."""

    kind: str          # province | city | county | township | village | road | compound
    key: tuple         # region: (code,), road: (county_code, name), compound: (village_code, name)
    quality: float     # 0..1
    via: str           # name | alias | old_name | short | fuzzy:NN
    text: str          # the query text it came from


@dataclass
class _Entity:
    """Summary of a road or compound: its addresses' grids, regions and a representative point."""

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


@dataclass
class _Parsed:
    normalized: str
    hits: list
    door: str | None = None
    building: str | None = None
    unit: str | None = None
    unknown: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class _Cand:
    kind: str                  # address | road | compound | region
    score: float
    matched: set
    conflicts: list
    qualities: list            # (quality, via) of the hits that the score used
    addr: int | None = None    # address index for kind 'address'
    entity: _Entity | None = None
    entity_keys: frozenset = frozenset()


@dataclass
class GeocodeResult:
    """Outcome of geocoding one text: status, precision, confidence, match, rivals, reasons."""

    query: str
    normalized: str
    status: str                # matched | ambiguous | not_found
    precision: str | None
    confidence: float
    matched: dict | None
    candidates: list
    explanation: list

    @property
    def grid_code(self) -> str | None:
        """The grid this answer routes to, or None when it is not sure of one."""
        return self.matched.get("grid_code") if self.matched else None

    @property
    def confident(self) -> bool:
        """True when the answer may be routed without an operator checking it."""
        return self.status == "matched" and self.confidence >= CONFIDENT

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {
            "query": self.query, "normalized": self.normalized, "status": self.status,
            "precision": self.precision, "confidence": round(self.confidence, 3),
            "grid_code": self.grid_code, "matched": self.matched,
            "candidates": self.candidates, "explanation": self.explanation,
        }


@dataclass
class ReverseResult:
    """Nearest standard address to a point and its distance in metres."""

    address: dict
    distance_m: float

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {"address": self.address, "distance_m": round(self.distance_m, 1)}


class Gazetteer:
    """Normalised indexes over regions, roads and standard addresses, built once."""

    def __init__(self) -> None:
        self.regions: dict[str, dict] = {}
        self.addresses: list[dict] = []
        self.lexicon: dict[str, list[Hit]] = {}
        self.lex_lengths: list[int] = []
        self.entities: dict[tuple, _Entity] = {}
        self.by_road_door: dict[tuple, list[int]] = {}
        self.by_road_building: dict[tuple, list[int]] = {}
        self.by_comp_door: dict[tuple, list[int]] = {}
        self.by_comp_building: dict[tuple, list[int]] = {}
        self.region_summary: dict[str, _Entity] = {}
        self.fuzzy_names: dict[str | None, list[str]] = {}
        self._norm: list[tuple] = []   # per address: (road_key, comp_key, door, building, unit)
        self._ids: dict = {}           # interned keys/codes -> int, for vectorised scoring
        self._idarr = None            # per address: road, comp, door, building, unit, village, township, county
        self._xy = None
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
        gaz.lex_lengths = sorted({len(k) for k in gaz.lexicon}, reverse=True)
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
            names = [(r["name"], "name")]
            if r.get("short_name"):
                names.append((r["short_name"], "short"))
            for name, via in names:
                for text, q in name_variants(name, level):
                    v = via if q == 1.0 else "stripped"
                    self._lex(text, Hit(level, (code,), q * VIA_FACTOR[v], v, text))

    def _add_roads(self, roads: list[dict]) -> dict[tuple, str]:
        canon: dict[tuple, str] = {}
        for road in roads:
            county = str(road["county_code"])
            name = normalize_text(road["name"])
            key = (county, name)
            self.entities.setdefault(("road",) + key, _Entity("road", key, road["name"]))
            spellings = [(road["name"], "name")]
            spellings += [(a, "alias") for a in road.get("aliases") or ()]
            spellings += [(o, "old_name") for o in road.get("old_names") or ()]
            for text, via in spellings:
                t = normalize_text(text)
                canon.setdefault((county, t), name)
                self._lex(t, Hit("road", key, VIA_FACTOR[via], via, t))
        return canon

    def _add_addresses(self, addresses: list[dict], canon: dict[tuple, str]) -> None:
        lons, lats, ids = [], [], []

        def intern(value) -> int:
            if value is None:
                return -1
            return self._ids.setdefault(value, len(self._ids))

        for i, a in enumerate(addresses):
            self.addresses.append(a)
            county, village = str(a["county_code"]), str(a["village_code"])
            road_key = comp_key = None
            if a.get("road"):
                rn = normalize_text(a["road"])
                rn = canon.get((county, rn), rn)
                road_key = (county, rn)
                ent = self.entities.get(("road",) + road_key)
                if ent is None:
                    ent = self.entities[("road",) + road_key] = _Entity("road", road_key, a["road"])
                    self._lex(rn, Hit("road", road_key, 1.0, "name", rn))
                ent.idxs.append(i)
            if a.get("compound"):
                cn = normalize_text(a["compound"])
                comp_key = (village, cn)
                ent = self.entities.get(("compound",) + comp_key)
                if ent is None:
                    ent = self.entities[("compound",) + comp_key] = _Entity(
                        "compound", comp_key, a["compound"])
                    for text, q in compound_variants(a["compound"]):
                        self._lex(text, Hit("compound", comp_key, q, "name" if q == 1.0 else "short", text))
                ent.idxs.append(i)
            door = normalize_text(str(a.get("door_no") or "")) or None
            building = normalize_text(str(a.get("building") or "")) or None
            unit = normalize_text(str(a.get("unit") or "")) or None
            self._norm.append((road_key, comp_key, door, building, unit))
            ids.append([intern(road_key), intern(comp_key), intern(door), intern(building), intern(unit),
                        intern(village), intern(str(a["township_code"])), intern(county)])
            if road_key and door:
                self.by_road_door.setdefault(road_key + (door,), []).append(i)
            if road_key and building:
                self.by_road_building.setdefault(road_key + (building,), []).append(i)
            if comp_key and door:
                self.by_comp_door.setdefault(comp_key + (door,), []).append(i)
            if comp_key and building:
                self.by_comp_building.setdefault(comp_key + (building,), []).append(i)
            for level in _REGION_LEVELS:
                code = str(a[_CODE_FIELD[level]])
                summ = self.region_summary.get(code)
                if summ is None:
                    reg = self.regions.get(code, {})
                    summ = self.region_summary[code] = _Entity(level, (code,), reg.get("name", code))
                summ.idxs.append(i)
            lon, lat = _lonlat(a)
            lons.append(lon)
            lats.append(lat)
        self._lonlat = np.column_stack([lons, lats]) if lons else np.empty((0, 2))
        self._idarr = np.array(ids, dtype=np.int64).reshape(-1, 8)
        for ent in list(self.entities.values()) + list(self.region_summary.values()):
            self._summarise(ent)
        for code, reg in self.regions.items():
            if code not in self.region_summary and reg["level"] in _REGION_LEVELS:
                summ = self.region_summary[code] = _Entity(reg["level"], (code,), reg["name"])
                self._summarise(summ)

    def _summarise(self, ent: _Entity) -> None:
        addrs = [self.addresses[i] for i in ent.idxs]
        ent.grids = frozenset(str(a["grid_code"]) for a in addrs)
        ent.villages = frozenset(str(a["village_code"]) for a in addrs)
        ent.townships = frozenset(str(a["township_code"]) for a in addrs)
        ent.counties = frozenset(str(a["county_code"]) for a in addrs)
        if ent.kind in _REGION_LEVELS and not addrs:
            code = ent.key[0]
            chain = self._region_chain(code)
            ent.villages = frozenset([chain["village"]]) if chain.get("village") else frozenset()
            ent.townships = frozenset([chain["township"]]) if chain.get("township") else frozenset()
            ent.counties = frozenset([chain["county"]]) if chain.get("county") else frozenset()
        if ent.kind == "road" and ent.counties == frozenset():
            ent.counties = frozenset([ent.key[0]])
        ent.all_codes = ent.villages | ent.townships | ent.counties
        if addrs:
            pts = self._lonlat[ent.idxs]
            centre = pts.mean(axis=0)
            # representative point: the address nearest the centroid (always on a real building)
            j = int(np.argmin(((pts - centre) ** 2).sum(axis=1)))
            ent.lon, ent.lat = float(pts[j, 0]), float(pts[j, 1])

    def _region_chain(self, code: str) -> dict:
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
                if h.kind not in ("road", "compound", "township", "village") or h.via == "stripped":
                    continue
                names[None].add(text)
                for county in self._hit_counties(h):
                    names.setdefault(county, set()).add(text)
        self.fuzzy_names = {k: sorted(v) for k, v in names.items()}

    def _hit_counties(self, h: Hit) -> frozenset:
        if h.kind == "road":
            return frozenset([h.key[0]])
        if h.kind == "compound":
            ent = self.entities.get(("compound",) + h.key)
            return ent.counties if ent else frozenset()
        chain = self._region_chain(h.key[0])
        return frozenset([chain["county"]]) if "county" in chain else frozenset()

    def _build_tree(self) -> None:
        from pyproj import Transformer
        from scipy.spatial import cKDTree

        if len(self._lonlat) == 0:
            return
        lon0, lat0 = (float(v) for v in self._lonlat.mean(axis=0))
        self._transformer = Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m",
            always_xy=True)
        x, y = self._transformer.transform(self._lonlat[:, 0], self._lonlat[:, 1])
        self._xy = np.column_stack([x, y])
        self._tree = cKDTree(self._xy)

    # ---------------------------------------------------------------- helpers
    def region_name(self, code: str | None) -> str:
        """Display name of a region code ('' when unknown)."""
        return self.regions.get(code, {}).get("name", "") if code else ""

    def address_summary(self, i: int) -> dict:
        """Codes of the address with index i, as an entity-like dict."""
        a = self.addresses[i]
        return {lvl: str(a[_CODE_FIELD[lvl]]) for lvl in _REGION_LEVELS}


def _public(a: dict) -> dict:
    """JSON-ready copy of an address row: a shapely 'geom' becomes lon/lat."""
    out = {k: v for k, v in a.items() if k != "geom"}
    out["lon"], out["lat"] = _lonlat(a)
    return out


def _lonlat(a: dict) -> tuple[float, float]:
    """Point of an address row: 'lon'/'lat' keys, or a shapely point under 'geom'."""
    if a.get("lon") is not None and a.get("lat") is not None:
        return float(a["lon"]), float(a["lat"])
    geom = a.get("geom")
    if geom is None:
        raise BadInput(f"address {a.get('code')!r} has no lon/lat or geom", field="geom")
    return float(geom.x), float(geom.y)


# -------------------------------------------------------------------- parsing
def _tokenise(gaz: Gazetteer, s: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """Forward maximum matching of lexicon names; returns name tokens and the gaps between them."""
    tokens, gaps = [], []
    i, n, gap_start = 0, len(s), 0
    while i < n:
        if s[i].isdigit() and i > 0 and s[i - 1].isdigit():
            i += 1
            continue
        found = 0
        for length in gaz.lex_lengths:
            if length > n - i:
                continue
            piece = s[i:i + length]
            if piece in gaz.lexicon:
                if piece[-1].isdigit() and i + length < n and s[i + length].isdigit():
                    continue
                found = length
                break
        if found:
            if gap_start < i:
                gaps.append((gap_start, i))
            tokens.append((i, i + found, s[i:i + found]))
            i += found
            gap_start = i
        else:
            i += 1
    if gap_start < n:
        gaps.append((gap_start, n))
    return tokens, gaps


def _parse(gaz: Gazetteer, text: str) -> _Parsed:
    s = normalize_text(text)
    p = _Parsed(normalized=s, hits=[])
    tokens, gaps = _tokenise(gaz, s)
    for _, _, piece in tokens:
        p.hits.extend(gaz.lexicon[piece])
    for start, end in gaps:
        gap, removed = strip_filler(s[start:end])
        if removed:
            p.notes.append("ignored filler: " + " ".join(removed))
        pos = 0
        rest = []
        for m in _NUMBER_RE.finditer(gap):
            rest.append(gap[pos:m.start()])
            pos = m.end()
            g = m.groupdict()
            if g["bur"]:
                p.building, p.unit = p.building or g["bur"], p.unit or g["uur"]
                p.notes.append(f"ignored room {g['rur']}")
            elif g["bld"]:
                p.building = p.building or g["bld"]
            elif g["unit"]:
                p.unit = p.unit or g["unit"]
            elif g["lou"]:
                if p.building is None:
                    p.building = g["lou"]
                else:
                    p.notes.append(f"ignored floor {g['lou']}")
            elif g["door"]:
                p.door = p.door or g["door"]
            else:
                p.notes.append("ignored " + m.group(0))
        rest.append(gap[pos:])
        for chunk in " ".join(rest).split():
            chunk = chunk.strip(_EDGE_CHARS + "-#")
            if chunk:
                p.unknown.append(chunk)
    return p


def _fuzzy(gaz: Gazetteer, p: _Parsed) -> list[str]:
    """Match unknown spans (typos, missing characters) against names; return spans still unknown."""
    counties = {h.key[0] for h in p.hits if h.kind == "county"}
    pool_keys = list(counties) if counties else [None]
    still = []
    for span in p.unknown:
        if len(span) < 3 or span.isdigit():
            still.append(span)
            continue
        choices = sorted({c for k in pool_keys for c in gaz.fuzzy_names.get(k, ())})
        found = process.extract(span, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=8)
        if not found:
            still.append(span)
            continue
        best = found[0][1]
        for choice, score, _ in found:
            if score < best - FUZZY_MARGIN:
                break
            for h in gaz.lexicon[choice]:
                if h.kind in ("road", "compound", "township", "village") and h.via != "stripped":
                    p.hits.append(Hit(h.kind, h.key, h.quality * score / 100.0,
                                      f"fuzzy:{int(score)}", span))
        p.notes.append(f"corrected '{span}' -> '{found[0][0]}' ({int(best)}%)")
    return still


# -------------------------------------------------------------------- scoring
def _region_constraints(p: _Parsed) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for h in p.hits:
        if h.kind in _REGION_LEVELS:
            d = out.setdefault(h.kind, {})
            d[h.key[0]] = max(d.get(h.key[0], 0.0), h.quality)
    return out


def _entity_hits(gaz: Gazetteer, p: _Parsed, regions: dict) -> list[Hit]:
    """Road and compound hits, best quality per entity, narrowed by the stated regions if possible."""
    best: dict[tuple, Hit] = {}
    for h in p.hits:
        if h.kind in ("road", "compound"):
            k = (h.kind,) + h.key
            if k in gaz.entities and (k not in best or h.quality > best[k].quality):
                best[k] = h
    hits = list(best.values())
    if regions and hits:
        def fits(h: Hit) -> bool:
            ent = gaz.entities[(h.kind,) + h.key]
            return all(not ent.all_codes.isdisjoint(codes) for codes in regions.values())
        narrowed = [h for h in hits if fits(h)]
        if narrowed:
            hits = narrowed
    return hits


def _ent_codes(ent: _Entity, level: str) -> frozenset:
    return {"village": ent.villages, "township": ent.townships, "county": ent.counties}[level]


def _score_regions(codes_by_level: dict, regions: dict, cand: _Cand) -> None:
    for level, wanted in regions.items():
        codes = codes_by_level[level]
        common = [wanted[c] for c in codes if c in wanted]
        if common:
            cand.score += W_REGION[level] * max(common)
            cand.matched.add(level)
        else:
            cand.score -= P_REGION_CONFLICT
            cand.conflicts.append(level)


def _preselect(gaz: Gazetteer, p: _Parsed, road_q: dict, comp_q: dict, doors: list, regions: dict,
               idxs: set, limit: int) -> list[int]:
    """Vectorised first pass: keep the addresses that can tie for best, plus a few runner-ups."""
    if len(idxs) <= 48:
        return sorted(idxs)
    ids = gaz._ids
    idx = np.fromiter(idxs, dtype=np.int64)
    arr = gaz._idarr[idx]
    score = np.zeros(len(idx))

    def add_q(col: int, qmap: dict, weight: float, penalty: float) -> None:
        nonlocal score
        best = np.zeros(len(idx))
        for key, q in qmap.items():
            k = ids.get(key, -2)
            best = np.maximum(best, np.where(arr[:, col] == k, q, 0.0))
        score += weight * best
        if penalty:
            score -= np.where(best > 0, 0.0, penalty)

    add_q(0, {k: h.quality for k, h in road_q.items()}, W_ROAD, 0.0)
    add_q(1, {k: h.quality for k, h in comp_q.items()}, W_COMPOUND, 0.0)
    if p.door:
        add_q(2, {d: 1.0 for d in doors}, W_DOOR + P_NUMBER_CONFLICT, 0.0)
        score -= P_NUMBER_CONFLICT
    if p.building:
        add_q(3, {p.building: 1.0}, W_BUILDING + P_NUMBER_CONFLICT, 0.0)
        score -= P_NUMBER_CONFLICT
    for level, col in (("village", 5), ("township", 6), ("county", 7)):
        if level in regions:
            add_q(col, regions[level], W_REGION[level] + P_REGION_CONFLICT, 0.0)
            score -= P_REGION_CONFLICT
    if p.unit:
        score += np.where(arr[:, 4] == ids.get(p.unit, -2), W_UNIT, 0.0)
    keep = score >= score.max() - TIE_DELTA - W_UNIT - 1e-9
    order = np.argsort(-score, kind="stable")[: limit + 3]
    keep[order] = True
    return sorted(int(i) for i in idx[keep])


def _candidates(gaz: Gazetteer, p: _Parsed, hits: list[Hit], regions: dict, limit: int = 5) -> list[_Cand]:
    road_q = {h.key: h for h in hits if h.kind == "road"}
    comp_q = {h.key: h for h in hits if h.kind == "compound"}
    doors = [p.door] if p.door else []
    if p.door and "-" in p.door:
        doors.append(p.door.split("-")[0])
    idxs: set[int] = set()
    for h in hits:
        # the most specific keys only: road+door, compound+building, compound+door;
        # road+building only when the caller gave no door
        for d in doors:
            idxs.update((gaz.by_road_door if h.kind == "road" else gaz.by_comp_door).get(h.key + (d,), ()))
        if p.building and (h.kind == "compound" or not p.door):
            idxs.update((gaz.by_road_building if h.kind == "road" else gaz.by_comp_building)
                        .get(h.key + (p.building,), ()))
    cands = []
    for i in _preselect(gaz, p, road_q, comp_q, doors, regions, idxs, limit):
        road_key, comp_key, door, building, unit = gaz._norm[i]
        c = _Cand("address", 0.0, set(), [], [], addr=i,
                  entity_keys=frozenset(k for k in (("road",) + road_key if road_key else None,
                                                    ("compound",) + comp_key if comp_key else None) if k))
        if road_key in road_q:
            h = road_q[road_key]
            c.score += W_ROAD * h.quality
            c.matched.add("road")
            c.qualities.append((h.quality, h.via))
        if comp_key in comp_q:
            h = comp_q[comp_key]
            c.score += W_COMPOUND * h.quality
            c.matched.add("compound")
            c.qualities.append((h.quality, h.via))
        if p.door:
            if door in doors:
                c.score += W_DOOR
                c.matched.add("door")
            else:
                c.score -= P_NUMBER_CONFLICT
                c.conflicts.append("door")
        if p.building:
            if building == p.building:
                c.score += W_BUILDING
                c.matched.add("building")
            else:
                c.score -= P_NUMBER_CONFLICT
                c.conflicts.append("building")
        if p.unit and unit:
            c.score += W_UNIT if unit == p.unit else -W_UNIT
        a = gaz.addresses[i]
        _score_regions({lvl: (str(a[_CODE_FIELD[lvl]]),) for lvl in _REGION_LEVELS}, regions, c)
        cands.append(c)
    for h in hits:
        ent = gaz.entities[(h.kind,) + h.key]
        c = _Cand(h.kind, (W_ROAD if h.kind == "road" else W_COMPOUND) * h.quality, {h.kind}, [],
                  [(h.quality, h.via)], entity=ent, entity_keys=frozenset([(h.kind,) + h.key]))
        # a number the caller gave that this road/compound lacks: answer at entity level, unsure
        c.conflicts += [f"{n} not found" for n, v in (("door", p.door), ("building", p.building)) if v]
        _score_regions({lvl: _ent_codes(ent, lvl) for lvl in _REGION_LEVELS}, regions, c)
        cands.append(c)
    if regions:
        # the finest stated region level, as the fallback answer
        for level in _REGION_LEVELS:
            if level in regions:
                for code, q in regions[level].items():
                    ent = gaz.region_summary.get(code)
                    if ent is None:
                        continue
                    c = _Cand("region", 0.0, set(), [], [(q, "name")], entity=ent,
                              entity_keys=frozenset([("region", code)]))
                    _score_regions({lvl: _ent_codes(ent, lvl) for lvl in _REGION_LEVELS}, regions, c)
                    cands.append(c)
                break
    return cands


def _key(gaz: Gazetteer, c: _Cand, level: str):
    """Identity of what candidate c denotes at a precision level (None: not determined)."""
    if c.addr is not None:
        road_key, comp_key, door, _, _ = gaz._norm[c.addr]
        a = gaz.addresses[c.addr]
        if level == "building":
            return a["code"] if "building" in c.matched else None
        if level == "door":
            if "door" not in c.matched:
                return None
            return ("road",) + road_key + (door,) if road_key else ("compound",) + comp_key + (door,)
        if level == "compound":
            return comp_key if "compound" in c.matched else None
        if level == "road":
            return road_key if "road" in c.matched else None
        return str(a[_CODE_FIELD[level]])
    ent = c.entity
    if c.kind == "region" and PRECISIONS.index(level) < PRECISIONS.index(ent.kind):
        return None           # never finer than the region the caller named
    if level in ("compound", "road"):
        return ent.key if c.kind == level else None
    if level in _REGION_LEVELS:
        codes = _ent_codes(ent, level)
        return next(iter(codes)) if len(codes) == 1 else None
    return None


def _codes(gaz: Gazetteer, c: _Cand, level: str) -> frozenset:
    if c.addr is not None:
        return frozenset([str(gaz.addresses[c.addr][_CODE_FIELD[level]])])
    return _ent_codes(c.entity, level)


def _grids(gaz: Gazetteer, c: _Cand) -> frozenset:
    if c.addr is not None:
        return frozenset([str(gaz.addresses[c.addr]["grid_code"])])
    return c.entity.grids


def _label(gaz: Gazetteer, c: _Cand) -> str:
    if c.addr is not None:
        return gaz.addresses[c.addr]["full_text"]
    ent = c.entity
    where = "".join(gaz.region_name(next(iter(s))) for s in (ent.townships, ent.villages) if len(s) == 1)
    return f"{where}{ent.label}" if ent.kind in ("road", "compound") else ent.label


def _why(c: _Cand) -> str:
    parts = [f"{m} matched" for m in PRECISIONS if m in c.matched]
    parts += [f"{m} conflicts" for m in c.conflicts]
    parts += [f"via {v}" for _, v in c.qualities if v != "name"]
    return ", ".join(parts) or "region only"


def _cand_dict(gaz: Gazetteer, c: _Cand) -> dict:
    grids = _grids(gaz, c)
    return {
        "kind": c.kind, "label": _label(gaz, c),
        "code": gaz.addresses[c.addr]["code"] if c.addr is not None else (
            c.entity.key[0] if c.kind == "region" else None),
        "grid_code": next(iter(grids)) if len(grids) == 1 else None,
        "score": round(c.score, 3), "why": _why(c),
    }


def _confidence(precision: str, top: _Cand, runner: _Cand | None, still_unknown: int) -> float:
    conf = BASE_CONFIDENCE[precision]
    for q, via in top.qualities:
        if via.startswith("fuzzy"):
            conf *= max(0.0, 1.0 - 1.3 * (1.0 - q))
        else:
            conf *= q
    if runner is not None:
        gap = top.score - runner.score
        if gap < 1.5:
            conf *= 0.55 + 0.3 * gap
    if top.conflicts:
        conf = min(conf, 0.6)
    # text we could not explain may be a misread name next to a token we did read
    conf *= UNKNOWN_FACTOR ** min(still_unknown, 3)
    return max(0.0, min(1.0, conf))


# -------------------------------------------------------------------- public API
def geocode(gaz: Gazetteer, text: str, limit: int = 5) -> GeocodeResult:
    """Match free address text to a standard address / entity / region, abstaining when unsure."""
    if not isinstance(text, str):
        raise BadInput("address text must be a string", field="text")
    if len(text) > 500:
        raise BadInput("address text is too long (max 500 characters)", field="text")
    p = _parse(gaz, text)
    explanation = []
    still = _fuzzy(gaz, p) if p.unknown else []
    seen: dict[tuple, int] = {}
    for h in p.hits:
        if not h.via.startswith("fuzzy"):
            seen[(h.kind, h.text, h.via)] = seen.get((h.kind, h.text, h.via), 0) + 1
    for (kind, text_, via), count in seen.items():
        if kind in ("province", "city"):
            explanation.append(f"{kind}: {text_} (ignored, single-city gazetteer)")
        else:
            explanation.append(f"{kind}: {text_}" + ("" if via == "name" else f" ({via})")
                               + (f" ({count} places)" if count > 1 else ""))
    for label, value in (("door", p.door), ("building", p.building), ("unit", p.unit)):
        if value:
            explanation.append(f"{label}: {value}")
    explanation.extend(p.notes)
    if still:
        explanation.append("not understood: " + " ".join(still))

    regions = _region_constraints(p)
    hits = _entity_hits(gaz, p, regions)
    cands = _candidates(gaz, p, hits, regions, limit)
    if not cands:
        explanation.append("no region, road or compound recognised")
        return GeocodeResult(text, p.normalized, "not_found", None, 0.0, None, [], explanation)

    cands.sort(key=lambda c: (-c.score, c.kind != "address"))
    best = cands[0].score
    tied = [c for c in cands if c.score >= best - TIE_DELTA]
    # drop entity fallbacks that a tied address already specialises
    addr_keys = set().union(*(c.entity_keys for c in tied if c.addr is not None)) if tied else set()
    tied = [c for c in tied if c.addr is not None or not (c.entity_keys & addr_keys)]
    top = tied[0]
    tied_ids = {id(c) for c in tied}
    covered = set().union(*(c.entity_keys for c in tied))
    runner = next((c for c in cands if id(c) not in tied_ids
                   and (c.addr is not None or not (c.entity_keys & covered))), None)

    precision, ambiguous = None, False
    for level in PRECISIONS:
        keys = {_key(gaz, c, level) for c in tied}
        if level not in _REGION_LEVELS and keys == {None}:
            continue          # the query did not reach this level
        if len(keys) == 1 and None not in keys:
            precision = level
            break
        if level not in _REGION_LEVELS or len(keys - {None}) > 1:
            ambiguous = True

    grids = frozenset().union(*(_grids(gaz, c) for c in tied))
    grid_code = next(iter(grids)) if len(grids) == 1 else None
    matched = None
    if precision is not None:
        matched = _matched(gaz, precision, tied, grid_code)
    status = "ambiguous" if ambiguous else ("matched" if precision else "not_found")
    if ambiguous:
        confidence = 0.4 if precision else 0.0
        explanation.append(f"{len(tied)} places fit equally well; answering only at {precision or 'no'} level")
    elif precision:
        confidence = _confidence(precision, top, runner, len(still))
    else:
        confidence = 0.0
    if top.conflicts:
        explanation.append("conflicting: " + ", ".join(top.conflicts))
    if precision and grid_code is None and precision not in ("building", "door"):
        explanation.append(f"{precision} spans several grids; no grid chosen")
    shown = [c for c in cands if c is not top][: max(0, limit)]
    return GeocodeResult(text, p.normalized, status, precision, round(confidence, 4), matched,
                         [_cand_dict(gaz, c) for c in shown], explanation)


def _matched(gaz: Gazetteer, precision: str, tied: list[_Cand], grid_code: str | None) -> dict:
    top = tied[0]
    sure = {}
    for level in _REGION_LEVELS:
        codes = frozenset().union(*(_codes(gaz, c, level) for c in tied))
        sure[_CODE_FIELD[level]] = next(iter(codes)) if len(codes) == 1 else None
    if precision in ("building", "door") and top.addr is not None:
        out = _public(gaz.addresses[top.addr])
        out["kind"] = "address"
        out["grid_code"] = grid_code
        if len({c.addr for c in tied}) > 1:
            out["kind"] = "door"
            out["addresses"] = sorted(gaz.addresses[c.addr]["code"] for c in tied if c.addr is not None)
        return out
    if precision in ("compound", "road"):
        ent = next((c.entity for c in tied if c.entity is not None and c.kind == precision), None)
        if ent is None:
            key = gaz._norm[top.addr][1 if precision == "compound" else 0]
            ent = gaz.entities[(precision,) + key]
        name = ent.label
        lon, lat, code = ent.lon, ent.lat, None
    else:
        code = sure[_CODE_FIELD[precision]]
        summ = gaz.region_summary.get(code)
        name = gaz.region_name(code)
        lon, lat = (summ.lon, summ.lat) if summ else (math.nan, math.nan)
    out = {"kind": precision, "code": code, "name": name, "grid_code": grid_code,
           "lon": None if math.isnan(lon) else lon, "lat": None if math.isnan(lat) else lat}
    out.update(sure)
    return out


def reverse_geocode(gaz: Gazetteer, lon: float, lat: float, max_distance_m: float = 200) -> ReverseResult | None:
    """Nearest standard address to (lon, lat) within max_distance_m metres, or None."""
    try:
        lon, lat, max_distance_m = float(lon), float(lat), float(max_distance_m)
    except (TypeError, ValueError) as exc:
        raise BadInput("lon, lat and max_distance_m must be numbers") from exc
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadInput("lon/lat out of range (expects WGS84 lon, lat)", field="lon")
    if not math.isfinite(max_distance_m) or max_distance_m < 0:
        raise BadInput("max_distance_m must be a non-negative number", field="max_distance_m")
    if gaz._tree is None:
        return None
    x, y = gaz._transformer.transform(lon, lat)
    dist, idx = gaz._tree.query([x, y], k=1, distance_upper_bound=max_distance_m)
    if not math.isfinite(dist):
        return None
    return ReverseResult(_public(gaz.addresses[int(idx)]), float(dist))
