"""Resolving who a 举报 accuses: unit and person mentions → codes, the way the geocoder resolves addresses.

Pure Python over plain rows. `Directory.from_rows(...)` indexes every accusable unit and person under the
spellings people use for it:

- departments: the registered name, with or without the region prefix (市/县 names, short names such as
  铁西 for 铁西区), the common abbreviation (住房和城乡建设局 → 住建局), the department kind with a 局/委/办
  suffix (住建局, 住建委, 住建办), and the 局 ↔ 委 ↔ 办 variants of the registered name;
- regions: name and short name with the prefixes of the regions above, and their bodies — a 街道's
  办事处/街道办, a 镇/乡's (人民)政府, a 社区's 居委会/居民委员会, a 村's 村委会/村民委员会, a county's 政府;
- 综治中心 (center name, or any region spelling + 综治中心/综治办), grids (name, with prefixes);
- persons: staff codes and names, usernames, user display names and staff codes.

`resolve(directory, units, persons)` answers per mention: `resolved` (one body: every match shares one
anchor), `ambiguous` (several bodies), `partial` (found only inside a longer text, or by fuzzy spelling)
or `unresolved`. Every plausible unit's codes are stored with the mention text, so none of them can read
or handle the case. Anything but `resolved` flags the case for a dispatcher and sets a routing floor: the
level above every plausible unit (`floor`), so the case never lands on one of them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from cases.guard import CENTER_PREFIX, LEVELS, level_of, next_level

# Registered long forms and the short forms people say.
ABBREVIATIONS = (
    ("住房和城乡建设", "住建"), ("住房城乡建设", "住建"), ("人力资源和社会保障", "人社"), ("城市管理", "城管"),
    ("市场监督管理", "市场监管"), ("卫生健康", "卫健"), ("卫生和计划生育", "卫计"), ("交通运输", "交通"),
    ("农业农村", "农业"), ("生态环境", "环保"), ("自然资源", "自然资源"), ("公安", "公安"), ("民政", "民政"),
    ("教育", "教育"), ("水务", "水务"), ("信访", "信访"), ("应急管理", "应急"), ("综合行政执法", "综合执法"),
)
UNIT_SUFFIXES = ("局", "委", "办", "委员会", "办公室")
KIND_SUFFIXES = ("局", "委", "办", "部门", "公司")
REGION_SUFFIXES = ("满族自治县", "蒙古族自治县", "自治县", "县级市", "区", "县", "市", "街道", "镇", "乡", "社区", "村")
BODY_SUFFIXES = {
    "city": ("政府", "人民政府", "市委", "市政府"),
    "county": ("政府", "人民政府", "区委", "县委", "区政府", "县政府", "市政府"),
    "township": ("办事处", "街道办", "街道办事处", "办", "政府", "人民政府", "党委", "党工委"),
    "village": ("居委会", "居民委员会", "社区居委会", "社区居民委员会", "村委会", "村民委员会", "村委", "两委"),
}
CENTER_SUFFIXES = ("综治中心", "综治办", "综合治理中心", "社会治理中心")
LEVEL_WORDS = {"city": ("市", "本市", "市级", "市里"),
               "county": ("区", "县", "本区", "本县", "县级", "区级", "县里", "区里"),
               "township": ("镇", "乡", "街道", "乡镇")}
UNRESOLVED_FLOOR = "county"   # a mention that fits nobody: handled no lower than the county (举报 default)
MIN_CONTAINED = 3             # a spelling found inside a longer mention must be at least this long
FUZZY_CUTOFF = 75.0


_DROP = re.compile(r"[^\w-]")


def norm(text: str) -> str:
    """Canonical form of a mention: NFKC, lower case, no spaces or punctuation."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text or "").lower())


@dataclass(frozen=True)
class Body:
    """One accusable unit or person: identities to store, and the region and level it sits at."""

    key: str                     # kind:code
    kind: str                    # department | region | center | grid | staff | user
    code: str
    name: str
    anchor: str                  # region (or grid) code the body sits at
    level: str                   # its level (grid … city)
    unit_ids: tuple = ()         # what goes into accused_units
    person_ids: tuple = ()       # what goes into accused_persons

    def public(self) -> dict:
        return {"kind": self.kind, "code": self.code, "name": self.name, "level": self.level}


@dataclass
class Directory:
    """Every accusable body and the spellings that name it."""

    bodies: dict[str, Body] = field(default_factory=dict)
    spellings: dict[str, set[str]] = field(default_factory=dict)   # normalized spelling → body keys
    codes: dict[str, set[str]] = field(default_factory=dict)       # exact code → body keys
    _fuzzy: list[str] = field(default_factory=list)

    def _add(self, body: Body, names, codes=(), fuzzy: bool = True) -> None:
        self.bodies[body.key] = body
        for c in codes:
            if c:
                self.codes.setdefault(c, set()).add(body.key)
                self.codes.setdefault(norm(c), set()).add(body.key)
        for n in names:
            n = norm(n)
            if len(n) >= 2:
                if n not in self.spellings and fuzzy:
                    self._fuzzy.append(n)
                self.spellings.setdefault(n, set()).add(body.key)

    @classmethod
    def from_rows(cls, regions: list[dict], departments: list[dict], centers: list[dict] = (),
                  grids: list[dict] = (), staff: list[dict] = (), users: list[dict] = ()) -> Directory:
        """Index the bodies of one city (rows as the tables hold them)."""
        d = cls()
        by_code = {r["code"]: r for r in regions}

        def prefixes(code: str | None, depth: int = 2) -> list[str]:
            """The ways to say where a body is: '', its region (甲区, 铁西区, 铁西) and, with depth 2, the region
            above too (测试市甲区) — the nearest levels only, so the index stays small."""
            chain = []
            own = by_code.get(code or "", {}).get("level")
            while code and code in by_code and len(chain) < depth:
                chain.append(region_names(by_code[code]))
                code = by_code[code].get("parent_code")
            out, tails = [""], [""]
            for names in chain:  # nearest first: 甲区, then 测试市 + 甲区
                tails = [n + t for n in names for t in tails]
                out += tails
            out += LEVEL_WORDS.get(own, ())  # 市住建局, 区住建局, 县信访局
            return list(dict.fromkeys(out))

        for r in regions:
            names = region_names(r)
            level = r["level"]
            pre = prefixes(r.get("parent_code"), 1 if level == "village" else 2)
            bodies = [n + s for n in names for s in ("", *BODY_SUFFIXES.get(level, ()))]
            spell = [p + b for p in pre for b in bodies]
            code = r["code"]
            d._add(Body(f"region:{code}", "region", code, r["name"], code, level,
                        unit_ids=(code, CENTER_PREFIX + code, r["name"])), spell, (code,))
            cpre = pre if level != "village" else [""]
            cspell = [p + n + s for p in cpre for n in names for s in CENTER_SUFFIXES]
            ccode = CENTER_PREFIX + code
            d._add(Body(f"center:{ccode}", "center", ccode, r["name"] + "综治中心", code, level,
                        unit_ids=(ccode, code)), cspell, (ccode,))
        for c in centers:  # registered center names (may differ from region + 综治中心)
            key = f"center:{c['code']}"
            body = d.bodies.get(key) or Body(key, "center", c["code"], c["name"], c["region_code"],
                                             c.get("level") or level_of(c["region_code"]) or "county",
                                             unit_ids=(c["code"], c["region_code"]))
            pre = prefixes(by_code.get(c["region_code"], {}).get("parent_code"), 1)
            d._add(body, [p + c["name"] for p in pre] + [c["name"]], (c["code"],))
        for dept in departments:
            pre = prefixes(dept["region_code"])
            cores = department_cores(dept["name"], dept.get("kind") or "", [p for p in pre if p])
            d._add(Body(f"department:{dept['code']}", "department", dept["code"], dept["name"], dept["region_code"],
                        dept.get("level") or level_of(dept["region_code"]) or "county",
                        unit_ids=(dept["code"], dept["name"])),
                   [p + c for p in pre for c in cores] + [dept["name"]], (dept["code"],))
        for g in grids:
            d._add(Body(f"grid:{g['code']}", "grid", g["code"], g["name"], g["code"], "grid",
                        unit_ids=(g["code"], g["name"])), [g["name"]], (g["code"],), fuzzy=False)
        users_by_staff: dict[str, list[dict]] = {}
        for u in users:
            if u.get("staff_code"):
                users_by_staff.setdefault(u["staff_code"], []).append(u)
        for s in staff:
            linked = users_by_staff.get(s["code"], [])
            ids = (s["code"], s["name"], *(u["username"] for u in linked))
            d._add(Body(f"staff:{s['code']}", "staff", s["code"], s["name"], s.get("grid_code") or "",
                        "grid" if s.get("grid_code") else "village", person_ids=ids),
                   [s["name"]], (s["code"],), fuzzy=False)
        for u in users:
            ids = tuple(x for x in (u["username"], u.get("staff_code"), u.get("display_name")) if x)
            anchor = u.get("grid_code") or u.get("region_code") or ""
            d._add(Body(f"user:{u['username']}", "user", u["username"], u.get("display_name") or u["username"],
                        anchor, level_of(anchor) or "county", person_ids=ids),
                   [u.get("display_name") or ""], (u["username"], u.get("staff_code")), fuzzy=False)
        return d

    def lookup(self, mention: str) -> tuple[str, list[Body]]:
        """(how, bodies) for one mention: code | exact | partial (inside a longer text, containing it, or a near
        spelling) | none."""
        raw = mention.strip()
        n = norm(raw)
        keys = self.codes.get(raw) or self.codes.get(n)
        if keys:
            return "code", self._bodies(keys)
        keys = self.spellings.get(n)
        if keys:
            return "exact", self._bodies(keys)
        found: set[str] = set()
        if len(n) >= MIN_CONTAINED:  # every substring of the mention (a mention is at most 100 characters)
            inside = {n[i:j] for i in range(len(n)) for j in range(i + MIN_CONTAINED, len(n) + (i > 0))
                      if n[i:j] in self.spellings}
            if inside:
                longest = max(len(s) for s in inside)
                found = set().union(*(self.spellings[s] for s in inside if len(s) == longest))
        if not found and 2 <= len(n) <= 8:
            around = set().union(*(self.spellings[s] for s in self.spellings if len(s) > len(n) and n in s))
            if len(around) <= 200:
                found = around
        if len(n) >= 3 and self._fuzzy:  # a misspelt name (住健局): its near spellings are plausible too
            hits = process.extract(n, self._fuzzy, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=20)
            if hits:
                best = hits[0][1]
                found |= set().union(*(self.spellings[s] for s, score, _ in hits if score >= best - 4))
        if found:
            return "partial", self._bodies(found)
        return "none", []

    def _bodies(self, keys) -> list[Body]:
        return sorted((self.bodies[k] for k in keys), key=lambda b: b.key)


def region_names(r: dict) -> list[str]:
    """A region's own spellings: name, short name, and the name without its 区/县/镇/街道 suffix."""
    out = [r["name"], r.get("short_name") or ""]
    for n in list(out):
        for suf in sorted(REGION_SUFFIXES, key=len, reverse=True):
            if n.endswith(suf) and len(n) - len(suf) >= 2:
                out.append(n[: -len(suf)])
                break
    return [x for x in dict.fromkeys(out) if x]


def department_cores(name: str, kind: str, prefixes: list[str]) -> list[str]:
    """A department's name without its region prefix, its abbreviations and 局/委/办 variants."""
    cores = {name}
    for p in sorted(prefixes, key=len, reverse=True):
        if name.startswith(p) and len(name) > len(p) + 1:
            cores.add(name[len(p):])
            break
    for c in list(cores):
        for long, short in ABBREVIATIONS:
            if long in c:
                cores.add(c.replace(long, short))
    for c in list(cores):
        for suf in UNIT_SUFFIXES:
            if c.endswith(suf):
                stem = c[: -len(suf)]
                if len(stem) >= 2:
                    cores.update(stem + s for s in UNIT_SUFFIXES)
                break
    if kind:
        cores.update(kind + s for s in KIND_SUFFIXES)
        for long, short in ABBREVIATIONS:
            if kind == long or kind == short:
                cores.update(x + s for x in (long, short) for s in KIND_SUFFIXES)
    return sorted(cores)


@dataclass
class Resolution:
    """What a case accuses, resolved: identities to store, per-mention answers, review flag and floor."""

    accused_units: list[str]
    accused_persons: list[str]
    mentions: list[dict]
    review: bool
    floor: str | None

    def to_dict(self) -> dict:
        return {"mentions": self.mentions, "review": self.review, "floor": self.floor}


def resolve(directory: Directory | None, units: list[str], persons: list[str]) -> Resolution:
    """Resolve unit and person mentions; every plausible body's identities are kept (see module doc)."""
    acc_units = list(units)
    acc_persons = list(persons)
    mentions, floor = [], None
    for as_, texts in (("unit", units), ("person", persons)):
        for text in texts:
            how, bodies = directory.lookup(text) if directory is not None else ("none", [])
            anchors = {(b.anchor, b.level) for b in bodies}
            if not bodies:
                status = "unresolved"
            elif how in ("code", "exact") and len(anchors) == 1:
                status = "resolved"
            elif how in ("code", "exact"):
                status = "ambiguous"
            else:
                status = "partial"
            for b in bodies:
                acc_units += b.unit_ids
                acc_persons += b.person_ids
            if status != "resolved":
                above = [next_level(lv) for _, lv in anchors] or [UNRESOLVED_FLOOR]
                top = max(above, key=LEVELS.index)
                floor = top if floor is None else max(floor, top, key=LEVELS.index)
            mentions.append({"text": text, "as": as_, "status": status, "via": how,
                             "matches": [b.public() for b in bodies[:20]], "more": max(0, len(bodies) - 20)})
    return Resolution(list(dict.fromkeys(x for x in acc_units if x)), list(dict.fromkeys(x for x in acc_persons if x)),
                      mentions, any(m["status"] != "resolved" for m in mentions), floor)
