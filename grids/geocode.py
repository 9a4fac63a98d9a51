"""Address text -> standard address (标准地址) -> grid: the hotline geocoding path, pure Python.

`Gazetteer.from_rows(regions, roads, addresses)` (grids.gazetteer) builds the indexes once;
`geocode(gaz, text)` parses operator input — regions, roads, compounds, 自然村, 村民小组, door /
building / unit numbers, landmarks, filler — scores the standard addresses and entities it could
mean, and answers only as precisely as it is sure of. A confident wrong grid is the worst answer:
when two places fit equally well the result is 'ambiguous'; a name that is not in the gazetteer
stops the answer at the level that is known; anything unrecognised, corrected or contradicted keeps
the confidence below CONFIDENT by construction. See docs/geocoding.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from gis.errors import BadInput
from grids.addrnorm import normalize_text, place_kind, starts_with_landmark, strip_filler, strip_landmarks
from grids.gazetteer import COL, ENTITY_KINDS, REGION_LEVELS, Entity, Gazetteer, Hit, public_address

__all__ = ["CONFIDENT", "Gazetteer", "GeocodeResult", "ReverseResult", "geocode", "reverse_geocode"]

# Answers with confidence >= this are "confident" (routed without an operator checking). Chosen on
# the benchmark's calibration half so that confident answers are >= 99.5% right (bench/geocode_eval).
CONFIDENT = 0.8

PRECISIONS = ("building", "door", "compound", "group", "hamlet", "road", "village", "township", "county")
_CODE_FIELD = {"village": "village_code", "township": "township_code", "county": "county_code"}

# Scoring weights (see docs/geocoding.md).
W_ENTITY = {"road": 3.0, "compound": 3.0, "hamlet": 3.0, "group": 2.0}
W_DOOR = 2.0
W_BUILDING = 2.0
W_UNIT = 0.5
W_REGION = {"county": 0.5, "township": 1.0, "village": 1.0}
P_REGION_CONFLICT = 2.0
P_NUMBER_CONFLICT = 1.5
P_PART_CONFLICT = 1.5      # the address lies in another group / hamlet than the one stated
TIE_DELTA = 0.35           # candidates this close to the best are indistinguishable
FUZZY_CUTOFF = 70.0        # rapidfuzz ratio below which a span is not a name (whole gazetteer)
FUZZY_CUTOFF_SCOPED = 60.0  # ... within the stated township / county (one wrong character of three)
FUZZY_MARGIN = 8.0         # fuzzy matches this close to the best are kept as rivals
BASE_CONFIDENCE = {"building": 0.98, "door": 0.97, "compound": 0.95, "group": 0.95, "hamlet": 0.95,
                   "road": 0.93, "village": 0.95, "township": 0.95, "county": 0.95}
# Structural caps: below CONFIDENT whatever the scores say.
CONFLICT_CAP = 0.6         # a stated component contradicts the answer (wrong township, door not there)
DOUBT_CAP = 0.7            # a fuzzy correction, an unknown name or text nobody understood
UNKNOWN_FACTOR = 0.85      # per stray single character
# Where an unknown name of a kind stops the answer (the answer may not be finer than this level).
_UNKNOWN_STOPS = {"county": "city", "township": "county", "village": "township", "group": "village",
                  "hamlet": "village", "road": "village"}

_NUMBER_RE = re.compile(
    r"(?P<bur>\d+)-(?P<uur>\d+)-(?P<rur>\d+)"
    r"|(?P<group>\d+)组"
    r"|(?P<bld>\d+)号楼"
    r"|(?P<unit>\d+)单元"
    r"|(?P<room>\d+)(?:室|户)"
    r"|(?P<floor>\d+)层"
    r"|(?P<lou>\d+)楼"
    r"|(?P<door>\d+(?:-\d+)?)号"
)
_FUZZY_KINDS = ("road", "compound", "hamlet", "township", "village")
_GROUP_AT = re.compile(r"\d+组")
_EDGE_CHARS = "在的是到去从就那这了呢啊吧和与及"
_LABELS = {"province": "省", "city": "市", "county": "县", "township": "乡镇", "village": "村", "hamlet": "自然村",
           "group": "组", "road": "道路", "compound": "小区"}


@dataclass
class _Parsed:
    normalized: str
    hits: list
    door: str | None = None
    building: str | None = None
    unit: str | None = None
    group: str | None = None
    unknown: list = field(default_factory=list)     # (span, kind hint or None)
    unknown_places: list = field(default_factory=list)   # (kind, span): names not in the gazetteer
    corrected: list = field(default_factory=list)   # (span, name, score)
    stray: list = field(default_factory=list)       # text nobody understood
    landmarks: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class _Cand:
    kind: str                  # address | road | compound | hamlet | group | region
    score: float
    matched: set
    conflicts: list
    qualities: list            # (quality, via) of the hits that the score used
    addr: int | None = None    # address index for kind 'address'
    entity: Entity | None = None
    entity_keys: frozenset = frozenset()


class GeocodeResult:
    """Outcome of geocoding one text: status, precision, confidence, match; rivals, reasons and components
    (村: 新发村 / 村: 未找到 新兴村 / 组: 3组 …) are worked out when first read (routing needs only the grid)."""

    __slots__ = ("query", "normalized", "status", "precision", "confidence", "matched", "_detail", "_done")

    def __init__(self, query: str, normalized: str, status: str, precision: str | None, confidence: float,
                 matched: dict | None, detail) -> None:
        self.query, self.normalized, self.status, self.precision = query, normalized, status, precision
        self.confidence, self.matched, self._detail, self._done = confidence, matched, detail, None

    def _details(self) -> tuple[list, list, dict]:
        if self._done is None:
            self._done = self._detail()
            self._detail = None
        return self._done

    @property
    def candidates(self) -> list:
        """Rival answers (up to `limit`), best first."""
        return self._details()[0]

    @property
    def explanation(self) -> list:
        """Why: what was read, corrected, ignored, and why the answer stops where it does."""
        return self._details()[1]

    @property
    def components(self) -> dict:
        """Each component of the query for the dispatcher: its name, or 未找到 / 纠正 / 不符 …"""
        return self._details()[2]

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
            "grid_code": self.grid_code, "matched": self.matched, "components": self.components,
            "candidates": self.candidates, "explanation": self.explanation,
        }

    def __repr__(self) -> str:
        return (f"GeocodeResult(status={self.status!r}, precision={self.precision!r}, "
                f"confidence={self.confidence}, grid_code={self.grid_code!r}, query={self.query!r})")


@dataclass
class ReverseResult:
    """Nearest standard address to a point and its distance in metres."""

    address: dict
    distance_m: float

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return {"address": self.address, "distance_m": round(self.distance_m, 1)}


# -------------------------------------------------------------------- parsing
def _stem_context(gaz: Gazetteer, s: str, end: int, kind: str) -> bool:
    """A village named without 村 is only read before a group, a hamlet or a landmark ('新发三组'); a
    township without 镇/乡 only before a village, hamlet, road or compound ('孤家子新发村')."""
    if end >= len(s):
        return False
    if kind == "village" and (_GROUP_AT.match(s, end) or starts_with_landmark(s, end)):
        return True
    follow = ("hamlet",) if kind == "village" else ("village", "hamlet", "road", "compound")
    for length in gaz.lex_lengths.get(s[end], ()):
        hits = gaz.lexicon.get(s[end:end + length])
        if hits and any(h.kind in follow and (h.via != "stem" or kind == "township") for h in hits):
            return True
    return False


def _tokenise(gaz: Gazetteer, s: str) -> tuple[list[tuple[int, int, list]], list[tuple[int, int]]]:
    """Forward maximum matching of lexicon names; returns (start, end, hits) tokens and the gaps."""
    tokens, gaps = [], []
    i, n, gap_start = 0, len(s), 0
    lexicon, lengths = gaz.lexicon, gaz.lex_lengths
    while i < n:
        ch = s[i]
        if ch.isdigit() and i > 0 and s[i - 1].isdigit():
            i += 1
            continue
        found = None
        for length in lengths.get(ch, ()):
            if length > n - i:
                continue
            hits = lexicon.get(s[i:i + length])
            if hits is None:
                continue
            end = i + length
            if s[end - 1].isdigit() and end < n and s[end].isdigit():
                continue
            if hits[0].via == "stem" or any(h.via == "stem" for h in hits):
                hits = [h for h in hits if h.via != "stem" or _stem_context(gaz, s, end, h.kind)]
                if not hits:
                    continue
            found = (end, hits)
            break
        if found:
            if gap_start < i:
                gaps.append((gap_start, i))
            tokens.append((i, found[0], found[1]))
            i = found[0]
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
    for _, _, hits in tokens:
        p.hits.extend(hits)
    for start, end in gaps:
        gap, removed = strip_filler(s[start:end])
        if removed:
            p.notes.append("ignored filler: " + " ".join(removed))
        gap, marks = strip_landmarks(gap)
        p.landmarks.extend(marks)
        pos = 0
        rest: list[tuple[str, str | None]] = []
        for m in _NUMBER_RE.finditer(gap):
            g = m.groupdict()
            rest.append((gap[pos:m.start()], "village" if g["group"] else None))
            pos = m.end()
            if g["bur"]:
                p.building, p.unit = p.building or g["bur"], p.unit or g["uur"]
                p.notes.append(f"ignored room {g['rur']}")
            elif g["group"]:
                p.group = p.group or str(int(g["group"]))
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
        rest.append((gap[pos:], None))
        for piece, hint in rest:
            chunks = piece.split()
            for k, chunk in enumerate(chunks):
                chunk = chunk.strip(_EDGE_CHARS + "-#")
                if chunk:
                    p.unknown.append((chunk, hint if k == len(chunks) - 1 else None))
    return p


def _fuzzy(gaz: Gazetteer, p: _Parsed) -> None:
    """Match unknown spans (typos, missing characters) against names; classify what stays unknown."""
    towns = [h.key[0] for h in p.hits if h.kind == "township"]
    # within the stated township (and the roads of its county) one wrong character of three is still a name
    scope = towns + [str(gaz.regions[t].get("parent_code") or "") for t in towns] \
        or [h.key[0] for h in p.hits if h.kind == "county"]
    cutoff = FUZZY_CUTOFF_SCOPED if towns else FUZZY_CUTOFF
    choices = None
    for span, hint in p.unknown:
        kind = hint or place_kind(span)
        # two characters are matched only when they look like a name ('西路' for 铁西路)
        if len(span) < (2 if kind in _UNKNOWN_STOPS else 3) or span.isdigit():
            if kind in _UNKNOWN_STOPS and len(span) >= 2:
                p.unknown_places.append((kind, span))
            else:
                p.stray.append(span)
            continue
        if choices is None:
            choices = gaz.fuzzy_pool(tuple(sorted(set(scope))) if scope else (None,))
        found = process.extract(span, choices, scorer=fuzz.ratio, score_cutoff=cutoff, limit=8)
        best = found[0][1] if found else 0.0
        kept = []
        for choice, score, _ in found:
            if score < best - FUZZY_MARGIN:
                break
            for h in gaz.lexicon[choice]:
                if h.kind in _FUZZY_KINDS and h.via not in ("stripped", "stem") \
                        and _plausible_correction(gaz, h, span, choice, towns):
                    kept.append((choice, score, Hit(h.kind, h.key, h.quality * score / 100.0,
                                                    f"fuzzy:{int(score)}", span)))
        if not kept:
            # nothing within reach of a typo: a place we do not know, not a misspelt one
            if kind in _UNKNOWN_STOPS:
                p.unknown_places.append((kind, span))
            else:
                p.stray.append(span)
            continue
        p.hits.extend(h for _, _, h in kept)
        p.corrected.append((span, kept[0][0], kept[0][1]))
        p.notes.append(f"corrected '{span}' -> '{kept[0][0]}' ({int(kept[0][1])}%)")


def _plausible_correction(gaz: Gazetteer, h: Hit, span: str, choice: str, towns: list) -> bool:
    """Whether `choice` (a name of h) can be what a caller who wrote `span` meant.

    Villages, 自然村 and townships are short: a typo is one character written, added or lost in place
    (edit distance 1; 2 for names of six characters or more), never a name sharing a character elsewhere
    (明月村 is not 路明村). A village or 自然村 outside the township the caller named is another place, not a
    correction. Roads and compounds keep the ratio match (longer names, urban typing)."""
    if h.kind not in ("village", "hamlet", "township"):
        return True
    if Levenshtein.distance(span, choice) > (2 if len(choice) >= 6 else 1):
        return False
    if towns and h.kind in ("village", "hamlet"):
        return bool(gaz.hit_regions(h) & set(towns))
    return True


# -------------------------------------------------------------------- scoring
def _region_constraints(p: _Parsed) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for h in p.hits:
        if h.kind in REGION_LEVELS:
            d = out.setdefault(h.kind, {})
            d[h.key[0]] = max(d.get(h.key[0], 0.0), h.quality)
    return out


def _group_hits(gaz: Gazetteer, p: _Parsed, regions: dict, hits: list[Hit]) -> list[Hit]:
    """The stated 村民小组 in the villages it can belong to (stated village, hamlet's village, or region)."""
    n = p.group
    villages: list[str] = []
    if "village" in regions:
        villages = list(regions["village"])
    elif any(h.kind == "hamlet" for h in hits):
        villages = sorted({h.key[0] for h in hits if h.kind == "hamlet"})
    else:
        for level in ("township", "county"):
            if level in regions:
                villages = sorted({v for code in regions[level] for v in gaz.groups_in.get((code, n), ())})
                break
        else:
            villages = sorted(gaz.groups_in.get(("", n), ()))
    out = [Hit("group", (v, n), 1.0, "name", f"{n}组") for v in villages if ("group", v, n) in gaz.entities]
    if villages and not out:
        p.unknown_places.append(("group", f"{n}组"))
    return out


def _entity_hits(gaz: Gazetteer, p: _Parsed, regions: dict) -> list[Hit]:
    """Road/compound/hamlet/group hits, best quality per entity, narrowed by the stated regions if possible."""
    best: dict[tuple, Hit] = {}
    for h in p.hits:
        if h.kind in ("road", "compound", "hamlet"):
            k = (h.kind,) + h.key
            if k in gaz.entities and (k not in best or h.quality > best[k].quality):
                best[k] = h
    hits = list(best.values())
    if regions and len(hits) > 0:
        wanted = list(regions.values())
        narrowed = [h for h in hits
                    if all(not gaz.entities[(h.kind,) + h.key].all_codes.isdisjoint(codes) for codes in wanted)]
        if narrowed:
            hits = narrowed
    if p.group:
        hits += _group_hits(gaz, p, regions, hits)
    return hits


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


def _preselect(gaz: Gazetteer, p: _Parsed, by_kind: dict, doors: list, regions: dict, idxs: set,
               limit: int) -> list[int]:
    """Vectorised first pass: keep the addresses that can tie for best, plus a few runner-ups."""
    if len(idxs) <= 48:
        return sorted(idxs)
    ids = gaz.ids
    idx = np.fromiter(idxs, dtype=np.int64)
    arr = gaz.idarr[idx]
    score = np.zeros(len(idx))

    def best_of(col: int, qmap: dict) -> np.ndarray:
        best = np.zeros(len(idx))
        for key, q in qmap.items():
            best = np.maximum(best, np.where(arr[:, col] == ids.get(key, -2), q, 0.0))
        return best

    for kind, qmap in by_kind.items():
        score += W_ENTITY[kind] * best_of(COL[kind], {k: h.quality for k, h in qmap.items()})
    if p.door:
        score += (W_DOOR + P_NUMBER_CONFLICT) * best_of(COL["door"], {d: 1.0 for d in doors}) - P_NUMBER_CONFLICT
    if p.building:
        score += (W_BUILDING + P_NUMBER_CONFLICT) * best_of(COL["building"], {p.building: 1.0}) - P_NUMBER_CONFLICT
    for level in REGION_LEVELS:
        if level in regions:
            score += (W_REGION[level] + P_REGION_CONFLICT) * best_of(COL[level], regions[level]) - P_REGION_CONFLICT
    if p.unit:
        score += np.where(arr[:, COL["unit"]] == ids.get(p.unit, -2), W_UNIT, 0.0)
    keep = score >= score.max() - TIE_DELTA - W_UNIT - P_PART_CONFLICT - 1e-9
    order = np.argsort(-score, kind="stable")[: limit + 3]
    keep[order] = True
    return sorted(int(i) for i in idx[keep])


def _candidates(gaz: Gazetteer, p: _Parsed, hits: list[Hit], regions: dict, limit: int = 5) -> list[_Cand]:
    by_kind: dict[str, dict] = {}
    for h in hits:
        by_kind.setdefault(h.kind, {})[h.key] = h
    doors = [p.door] if p.door else []
    if p.door and "-" in p.door:
        doors.append(p.door.split("-")[0])
    idxs: set[int] = set()
    for h in hits:
        # the most specific keys only: entity+door, compound+building; road+building only without a door
        ek = (h.kind,) + h.key
        for d in doors:
            idxs.update(gaz.by_door.get(ek + (d,), ()))
        if p.building and (h.kind == "compound" or not p.door):
            idxs.update(gaz.by_building.get(ek + (p.building,), ()))
    cands = []
    stated_kinds = [(j, kind, by_kind[kind], {k[0] for k in by_kind[kind]} if kind in ("group", "hamlet") else ())
                    for j, kind in enumerate(ENTITY_KINDS) if kind in by_kind]
    region_items = [(("village", "township", "county").index(lvl), lvl, wanted) for lvl, wanted in regions.items()]
    for i in _preselect(gaz, p, by_kind, doors, regions, idxs, limit):
        keys, door, building, unit = gaz.norm[i]
        c = _Cand("address", 0.0, set(), [], [], addr=i, entity_keys=gaz.addr_keys[i])
        for j, kind, stated, villages in stated_kinds:
            key = keys[j]
            h = stated.get(key) if key else None
            if h is not None:
                c.score += W_ENTITY[kind] * h.quality
                c.matched.add(kind)
                c.qualities.append((h.quality, h.via))
            elif key is not None and key[0] in villages:
                c.score -= P_PART_CONFLICT      # same village, another group / hamlet than the one stated
                c.conflicts.append(kind)
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
        codes = gaz.addr_regions[i]
        for j, level, wanted in region_items:
            q = wanted.get(codes[j])
            if q:
                c.score += W_REGION[level] * q
                c.matched.add(level)
            else:
                c.score -= P_REGION_CONFLICT
                c.conflicts.append(level)
        cands.append(c)
    reached = set().union(*(c.entity_keys for c in cands)) if cands else set()
    for h in hits:
        if (h.kind,) + h.key in reached:
            continue          # its address candidates already speak for it (and score higher)
        ent = gaz.entities[(h.kind,) + h.key]
        c = _Cand(h.kind, W_ENTITY[h.kind] * h.quality, {h.kind}, [], [(h.quality, h.via)], entity=ent,
                  entity_keys=frozenset([(h.kind,) + h.key]))
        # a number the caller gave that this entity lacks: answer at entity level, unsure
        c.conflicts += [f"{n} not found" for n, v in (("door", p.door), ("building", p.building)) if v]
        _score_regions({lvl: ent.codes(lvl) for lvl in REGION_LEVELS}, regions, c)
        cands.append(c)
    if regions:
        cands += _region_fallback(gaz, regions, "village")
    return cands


def _region_fallback(gaz: Gazetteer, regions: dict, finest: str) -> list[_Cand]:
    """The finest stated region level (not finer than `finest`) as the fallback answer."""
    out = []
    for level in REGION_LEVELS[REGION_LEVELS.index(finest):] if finest in REGION_LEVELS else ():
        if level not in regions:
            continue
        for code, q in regions[level].items():
            ent = gaz.region_summary.get(code)
            if ent is None:
                continue
            c = _Cand("region", 0.0, set(), [], [(q, "name")], entity=ent, entity_keys=frozenset([("region", code)]))
            _score_regions({lvl: ent.codes(lvl) for lvl in REGION_LEVELS}, regions, c)
            out.append(c)
        break
    return out


def _key(gaz: Gazetteer, c: _Cand, level: str):
    """Identity of what candidate c denotes at a precision level (None: not determined)."""
    if c.addr is not None:
        keys, door, _, _ = gaz.norm[c.addr]
        a = gaz.addresses[c.addr]
        if level == "building":
            return a["code"] if "building" in c.matched else None
        if level == "door":
            return (keys, door) if "door" in c.matched else None
        if level in ENTITY_KINDS:
            return keys[ENTITY_KINDS.index(level)] if level in c.matched else None
        return str(a[_CODE_FIELD[level]])
    ent = c.entity
    if c.kind == "region" and PRECISIONS.index(level) < PRECISIONS.index(ent.kind):
        return None           # never finer than the region the caller named
    if level in ENTITY_KINDS:
        return ent.key if c.kind == level else None
    if level in REGION_LEVELS:
        codes = ent.codes(level)
        return next(iter(codes)) if len(codes) == 1 else None
    return None


def _codes(gaz: Gazetteer, c: _Cand, level: str) -> frozenset:
    if c.addr is not None:
        return frozenset([str(gaz.addresses[c.addr][_CODE_FIELD[level]])])
    return c.entity.codes(level)


def _grids(gaz: Gazetteer, c: _Cand) -> frozenset:
    if c.addr is not None:
        return frozenset([str(gaz.addresses[c.addr]["grid_code"])])
    return c.entity.grids


def _label(gaz: Gazetteer, c: _Cand) -> str:
    if c.addr is not None:
        return gaz.addresses[c.addr]["full_text"]
    ent = c.entity
    if ent.kind in ENTITY_KINDS:
        where = "".join(gaz.region_name(next(iter(s))) for s in (ent.townships, ent.villages) if len(s) == 1)
        return f"{where}{ent.label}"
    return ent.label


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


def _confidence(precision: str, top: _Cand, runner: _Cand | None, p: _Parsed) -> float:
    conf = BASE_CONFIDENCE[precision]
    doubt = bool(p.unknown_places or p.corrected or any(len(s) >= 2 for s in p.stray))
    for q, via in top.qualities:
        if via.startswith("fuzzy"):
            conf *= max(0.0, 1.0 - 1.3 * (1.0 - q))
            doubt = True
        else:
            conf *= q
    if runner is not None:
        gap = top.score - runner.score
        if gap < 1.5:
            conf *= 0.55 + 0.3 * gap
    if top.conflicts:
        conf = min(conf, CONFLICT_CAP)
    if doubt:
        conf = min(conf, DOUBT_CAP)
    conf *= UNKNOWN_FACTOR ** min(sum(1 for s in p.stray if len(s) < 2), 3)
    return max(0.0, min(1.0, conf))


# -------------------------------------------------------------------- public API
def geocode(gaz: Gazetteer, text: str, limit: int = 5) -> GeocodeResult:
    """Match free address text to a standard address / entity / region, abstaining when unsure."""
    if not isinstance(text, str):
        raise BadInput("address text must be a string", field="text")
    if len(text) > 500:
        raise BadInput("address text is too long (max 500 characters)", field="text")
    p = _parse(gaz, text)
    if p.unknown:
        _fuzzy(gaz, p)
    regions = _region_constraints(p)
    hits = _entity_hits(gaz, p, regions)
    stop = None
    if p.unknown_places:
        # a name not in the gazetteer: answer no finer than the level above it, never with a grid
        stop = max((_UNKNOWN_STOPS[k] for k, _ in p.unknown_places),
                   key=lambda lvl: ("village", "township", "county", "city").index(lvl))
        cands = _region_fallback(gaz, regions, stop) if stop != "city" else []
    else:
        cands = _candidates(gaz, p, hits, regions, limit)
    if not cands:
        def detail_none():
            why = _explain(p) + ["no region, road or compound recognised" if not p.unknown_places
                                 else "the named place is not in the gazetteer; nothing known to answer with"]
            return [], why, _components(gaz, p, None, hits)
        return GeocodeResult(text, p.normalized, "not_found", None, 0.0, None, detail_none)

    cands.sort(key=lambda c: (-c.score, c.kind != "address"))
    best = cands[0].score
    tied = [c for c in cands if c.score >= best - TIE_DELTA]
    # drop entity fallbacks that a tied address already specialises
    addr_keys = set().union(*(c.entity_keys for c in tied if c.addr is not None))
    tied = [c for c in tied if c.addr is not None or not (c.entity_keys & addr_keys)]
    top = tied[0]
    tied_ids = {id(c) for c in tied}
    covered = set().union(*(c.entity_keys for c in tied))
    runner = next((c for c in cands if id(c) not in tied_ids
                   and (c.addr is not None or not (c.entity_keys & covered))), None)

    precision, ambiguous = None, False
    for level in PRECISIONS:
        keys = {_key(gaz, c, level) for c in tied}
        if level not in REGION_LEVELS and keys == {None}:
            continue          # the query did not reach this level
        if len(keys) == 1 and None not in keys:
            precision = level
            break
        if level not in REGION_LEVELS or len(keys - {None}) > 1:
            ambiguous = True

    stated = {k for k, v in (("door", p.door), ("building", p.building), ("group", p.group)) if v}
    stated |= {h.kind for h in hits if h.kind in ENTITY_KINDS and not h.via.startswith("fuzzy")}
    missing = stated - top.matched if stop is None else set()   # below an unknown name nothing is judged
    grids = frozenset().union(*(_grids(gaz, c) for c in tied))
    # a named group / hamlet / road / compound the answer does not contain is a place we do not know: no grid
    # a place named in a region it is not in: the caller got one of the two wrong and we cannot tell which
    region_conflict = any(c in REGION_LEVELS for c in top.conflicts)
    grid_code = next(iter(grids)) if len(grids) == 1 and stop is None and not (missing & set(ENTITY_KINDS)) \
        and not region_conflict else None
    matched = _matched(gaz, precision, tied, grid_code) if precision is not None else None
    status = "ambiguous" if ambiguous else ("matched" if precision else "not_found")
    if ambiguous:
        confidence = 0.4 if precision else 0.0
    elif precision:
        confidence = _confidence(precision, top, runner, p)
        if missing:
            # the answer leaves out something the caller said (a group this village lacks, a door not there)
            confidence = min(confidence, CONFLICT_CAP)
    else:
        confidence = 0.0

    def detail():
        why = _explain(p)
        if ambiguous:
            why.append(f"{len(tied)} places fit equally well; answering only at {precision or 'no'} level")
        elif precision and missing:
            why.append("not found in the answer: " + ", ".join(sorted(missing)))
        if stop is not None:
            names = "、".join(span for _, span in p.unknown_places)
            why.append(f"not in the gazetteer: {names}; answering at {precision or 'no'} level, no grid")
        if top.conflicts:
            why.append("conflicting: " + ", ".join(top.conflicts))
        if region_conflict and len(grids) == 1 and stop is None:
            why.append("the place named is not in the region named; no grid chosen")
        if precision and grid_code is None and stop is None and precision not in ("building", "door"):
            why.append(f"{precision} spans several grids; no grid chosen")
        shown = [c for c in cands if c is not top][: max(0, limit)]
        return [_cand_dict(gaz, c) for c in shown], why, _components(gaz, p, top, hits, missing)

    return GeocodeResult(text, p.normalized, status, precision, round(confidence, 4), matched, detail)


def _explain(p: _Parsed) -> list[str]:
    explanation = []
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
    for label, value in (("group", p.group), ("door", p.door), ("building", p.building), ("unit", p.unit)):
        if value:
            explanation.append(f"{label}: {value}")
    if p.landmarks:
        explanation.append("landmark: " + " ".join(p.landmarks))
    explanation.extend(p.notes)
    unknown = [span for _, span in p.unknown_places] + p.stray
    if unknown:
        explanation.append("not understood: " + " ".join(unknown))
    return explanation


def _components(gaz: Gazetteer, p: _Parsed, top: _Cand | None, hits: list[Hit], missing=frozenset()) -> dict:
    """What the dispatcher sees: each component of the query, recognised (name) or not (未找到 …)."""
    out: dict[str, str] = {}
    conflicts = set(top.conflicts) if top else set()
    conflicts |= {f"{m} not found" if m in ("door", "building") else m for m in missing}
    used = {}
    if top is not None:
        if top.addr is not None:
            keys = gaz.norm[top.addr][0]
            used = {kind: key for kind, key in zip(ENTITY_KINDS, keys, strict=True) if key}
        elif top.entity is not None and top.kind in ENTITY_KINDS:
            used = {top.kind: top.entity.key}
    for h in p.hits + [h for h in hits if h.kind == "group"]:
        label = _LABELS[h.kind]
        if h.kind in ("province", "city"):
            value = h.text
        elif h.kind in REGION_LEVELS:
            reg = gaz.regions.get(h.key[0], {})
            value = reg.get("short_name") or reg.get("name", h.text) if h.kind == "village" else reg.get("name", h.text)
            if h.via == "alias":
                value += f"（曾用名 {h.text}）"
            if h.kind in conflicts:
                value = f"不符 {value}"
        else:
            if h.kind in used and used[h.kind] != h.key and label in out:
                continue
            value = gaz.entities[(h.kind,) + h.key].label
            if h.via in ("alias", "old_name"):
                value += f"（{'别名' if h.via == 'alias' else '曾用名'} {h.text}）"
            if h.kind in conflicts:
                value = f"不符 {value}"
        if h.via.startswith("fuzzy"):
            value = f"纠正 {h.text}→{value}"
        if label in out and out[label] != value and (h.kind not in used or used[h.kind] != h.key):
            continue
        out[label] = value
    if p.group and ("组" not in out or "group" in missing):
        out["组"] = f"{p.group}组" if "group" not in missing else f"未找到 {p.group}组"
    for kind, span in p.unknown_places:
        out[_LABELS[kind]] = f"未找到 {span}"
    for label, value, suffix in (("门牌", p.door, "号"), ("楼栋", p.building, "号楼"), ("单元", p.unit, "单元")):
        if value:
            bad = {"门牌": "door", "楼栋": "building"}.get(label)
            out[label] = f"{value}{suffix}" + (" 不符" if bad and ({bad, f"{bad} not found"} & conflicts) else "")
    if p.landmarks:
        out["地标"] = "、".join(p.landmarks)
    if p.stray:
        out["未识别"] = " ".join(p.stray)
    return out


def _matched(gaz: Gazetteer, precision: str, tied: list[_Cand], grid_code: str | None) -> dict:
    top = tied[0]
    sure = {}
    for level in REGION_LEVELS:
        codes = frozenset().union(*(_codes(gaz, c, level) for c in tied))
        sure[_CODE_FIELD[level]] = next(iter(codes)) if len(codes) == 1 else None
    if precision in ("building", "door") and top.addr is not None:
        out = public_address(gaz.addresses[top.addr])
        out["kind"] = "address"
        out["grid_code"] = grid_code
        if len({c.addr for c in tied}) > 1:
            out["kind"] = "door"
            out["addresses"] = sorted(gaz.addresses[c.addr]["code"] for c in tied if c.addr is not None)
        return out
    if precision in ENTITY_KINDS:
        ent = next((c.entity for c in tied if c.entity is not None and c.kind == precision), None)
        if ent is None:
            key = gaz.norm[top.addr][0][ENTITY_KINDS.index(precision)]
            ent = gaz.entities[(precision,) + key]
        name = ent.label if precision in ("road", "compound") else _label(gaz, _Cand(precision, 0, set(), [], [],
                                                                                    entity=ent))
        lon, lat, code = ent.lon, ent.lat, None
    else:
        code = sure[_CODE_FIELD[precision]]
        summ = gaz.region_summary.get(code)
        name = gaz.regions.get(code, {}).get("name", "")
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
    got = gaz.nearest(lon, lat, max_distance_m)
    if got is None:
        return None
    return ReverseResult(public_address(gaz.addresses[got[0]]), got[1])
