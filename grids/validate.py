"""Validation of a city's governance geography (全市一张网): one seamless net, codes that nest.

`validate(regions, grids, staff, roles)` checks, level by level (city → county → township → village →
grid): codes (malformed, duplicate, not extending the parent's, unknown parent), geometry (invalid with
the reason, empty, sliver), the tiling of every parent by its children (gaps, overlaps between siblings,
children crossing the parent's boundary) and the grid people (grids without an officer, officers
without a grid). Areas are true m² anywhere in China (cylindrical equal-area centred on the data).
Inputs are plain dicts with shapely geometries in WGS84.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import shapely
from shapely.strtree import STRtree

LEVELS = ("city", "county", "township", "village", "grid")
LEVEL_LABEL = {"city": "市", "county": "县区", "township": "乡镇街道", "village": "村社区", "grid": "网格"}
CODE_LENGTH = {"city": 6, "county": 6, "township": 9, "village": 12, "grid": 15}
# How many leading digits of a child's code must equal its parent's (a county shares 4 with its city).
PREFIX_LENGTH = {"county": 4, "township": 6, "village": 9, "grid": 12}
PARENT_LEVEL = {"county": "city", "township": "county", "village": "township", "grid": "village"}

DEFAULT_TOL_M2 = 5.0          # gaps, overlaps and overhangs smaller than this are digitising noise
DEFAULT_SLIVER_WIDTH_M = 5.0  # a polygon nowhere wider than this is a sliver
DEFAULT_SLIVER_RATIO = 0.01   # Polsby-Popper 4πA/P² below this is a sliver (a 1:300 strip)
DEFAULT_TOL_WIDTH_M = 0.5     # gaps, overlaps and overhangs nowhere wider than this are reprojection noise
DEFAULT_OFFICER_ROLES = frozenset({"grid_officer"})

ERROR, WARNING = "error", "warning"


@dataclass
class Finding:
    """One problem: what, how bad, which codes, where (lon, lat) and how big (m²)."""

    kind: str
    severity: str
    codes: list[str]
    message: str
    location: list[float] | None = None
    area_m2: float | None = None


@dataclass
class Report:
    """The findings of one validation run and what was checked."""

    findings: list[Finding] = field(default_factory=list)
    checked: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(f.severity == ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity error."""
        return [f for f in self.findings if f.severity == ERROR]

    def add(self, kind, severity, codes, message, location=None, area_m2=None) -> None:
        """Append a finding (location rounded to ~1 cm, area to 0.01 m²)."""
        loc = [round(float(location[0]), 7), round(float(location[1]), 7)] if location is not None else None
        area = round(float(area_m2), 2) if area_m2 is not None else None
        self.findings.append(Finding(kind, severity, [str(c) for c in codes], message, loc, area))

    def extend(self, other: Report) -> Report:
        """Merge another report's findings and counts into this one."""
        self.findings.extend(other.findings)
        self.checked.update(other.checked)
        return self

    def counts(self) -> dict:
        """Findings per (kind, severity)."""
        return dict(Counter(f"{f.severity}:{f.kind}" for f in self.findings))

    def to_dict(self) -> dict:
        """Plain JSON-able form."""
        return {"ok": self.ok, "checked": self.checked, "counts": self.counts(),
                "findings": [asdict(f) for f in self.findings]}

    def to_json(self) -> str:
        """The report as JSON text (Chinese kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    def summary_lines(self) -> list[str]:
        """One line per finding: severity, kind, codes, message, where and how big."""
        out = []
        for f in self.findings:
            where = f" @ {f.location[0]:.6f},{f.location[1]:.6f}" if f.location else ""
            area = f" ({f.area_m2:,.1f} m²)" if f.area_m2 is not None else ""
            out.append(f"{f.severity.upper()} {f.kind} [{', '.join(f.codes)}]: {f.message}{where}{area}")
        return out

    def text(self) -> str:
        """Human-readable report: what was checked, the verdict, then one line per finding."""
        checked = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in self.checked.items())
        n_err = len(self.errors)
        n_warn = len(self.findings) - n_err
        verdict = "OK" if self.ok else "INVALID"
        head = f"validation {verdict}: {n_err} error(s), {n_warn} warning(s)" + (f"; checked {checked}" if checked
                                                                                 else "")
        return "\n".join([head, *self.summary_lines()])


# --------------------------------------------------------------------------------------------
# projection


class _Frame:
    """Cylindrical equal-area, true scale at the data's latitude: true m² areas, metres nearby.

    Set operations run in lon/lat (as PostGIS does on geometry columns); only measuring is projected.
    A cylindrical projection keeps meridians and parallels straight, so an edge that one polygon
    splits and its neighbour does not still coincides after projection (an azimuthal one would bend
    parallels and turn a zero-area sliver along a 2 km edge into ~50 m²).
    """

    def __init__(self, geoms):
        from pyproj import Transformer

        bounds = shapely.total_bounds(np.asarray([g for g in geoms if g is not None and not g.is_empty]
                                                 or [shapely.Point(105, 35)], dtype=object))
        lon0 = (bounds[0] + bounds[2]) / 2.0
        lat0 = (bounds[1] + bounds[3]) / 2.0
        proj = f"+proj=cea +lat_ts={lat0:.6f} +lon_0={lon0:.6f} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
        self._fwd = Transformer.from_crs("EPSG:4326", proj, always_xy=True)

    def project(self, geoms):
        def fn(c):
            x, y = self._fwd.transform(c[:, 0], c[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(np.asarray(geoms, dtype=object), fn)

    def area(self, geoms):
        """Areas in m² of WGS84 geometries."""
        return shapely.area(self.project(geoms))

    near = 1e-5  # "touching" distance in the frame's units (degrees here)

    def lonlat(self, geom) -> list[float] | None:
        """(lon, lat) of a point inside a geometry of this frame."""
        return _lonlat(geom)

    def point(self, xy: list[float] | None) -> list[float] | None:
        """A coordinate pair of this frame as (lon, lat)."""
        return xy


class _NativeFrame:
    """A projected (metric) delivery validated in its own CRS: set operations on the coordinates as delivered,
    so a tiling that is exact there (T-junction vertices on long straight edges) stays exact; locations are
    reported in lon/lat."""

    near = 1.0  # metres

    def __init__(self, crs: str):
        from pyproj import Transformer

        self._inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def project(self, geoms):
        return np.asarray(geoms, dtype=object)

    def area(self, geoms):
        return shapely.area(np.asarray(geoms, dtype=object))

    def point(self, xy: list[float] | None) -> list[float] | None:
        if xy is None:
            return None
        lon, lat = self._inv.transform(xy[0], xy[1])
        return [float(lon), float(lat)]

    def lonlat(self, geom) -> list[float] | None:
        return self.point(_lonlat(geom))


def metric_crs(crs: str | None) -> bool:
    """True for a projected CRS in metres (a delivery that can be validated as delivered)."""
    if not crs or crs in ("EPSG:4326", "GCJ-02", "BD-09"):
        return False
    from pyproj import CRS

    try:
        c = CRS.from_user_input(crs)
    except Exception:  # noqa: BLE001 - unknown CRS: validate in lon/lat
        return False
    return bool(c.is_projected) and all((a.unit_name or "").startswith("met") for a in c.axis_info)


def _lonlat(geom) -> list[float] | None:
    """(lon, lat) of a point inside a WGS84 geometry."""
    if geom is None or geom.is_empty:
        return None
    p = geom.representative_point()
    return [p.x, p.y]


# --------------------------------------------------------------------------------------------
# codes


def expected_level(code: str) -> str | None:
    """The level a well-formed code belongs to by its length (6 digits ending 00 → city)."""
    if not code.isdigit():
        return None
    if len(code) == 6:
        return "city" if code.endswith("00") else "county"
    return {9: "township", 12: "village", 15: "grid"}.get(len(code))


def _check_codes(report: Report, units: list[dict]) -> None:
    """Malformed, duplicate, unknown-parent and not-extending-parent codes."""
    by_level: dict[str, set[str]] = defaultdict(set)
    seen: Counter = Counter(u["code"] for u in units)
    for code, n in seen.items():
        if n > 1:
            levels = sorted({LEVEL_LABEL[u["level"]] for u in units if u["code"] == code})
            report.add("duplicate_code", ERROR, [code], f"编码 {code} 重复 {n} 次（{'/'.join(levels)}）")
    for u in units:
        by_level[u["level"]].add(u["code"])
    levels_present = {lvl for lvl, codes in by_level.items() if codes}
    all_codes = {u["code"]: u for u in units}
    for u in units:
        code, level, parent = u["code"], u["level"], u.get("parent_code")
        label = LEVEL_LABEL[level]
        want = CODE_LENGTH[level]
        if not code.isdigit() or len(code) != want or (level == "city" and not code.endswith("00")):
            extra = "，且以 00 结尾" if level == "city" else ""
            report.add("malformed_code", ERROR, [code],
                       f"{label}“{u.get('name', '')}”的编码 {code!r} 应为 {want} 位数字{extra}")
        elif level == "county" and code.endswith("00"):
            report.add("malformed_code", ERROR, [code],
                       f"县区“{u.get('name', '')}”的编码 {code} 以 00 结尾（那是市的编码）")
        if level == "city":
            continue
        plevel = PARENT_LEVEL[level]
        if not parent:
            if plevel in levels_present:
                report.add("unknown_parent", ERROR, [code], f"{label}“{u.get('name', '')}”({code}) 没有上级编码")
            continue
        p = all_codes.get(parent)
        if p is None or p["level"] != plevel:
            if plevel in levels_present or p is not None:
                what = "不存在" if p is None else f"是{LEVEL_LABEL[p['level']]}而不是{LEVEL_LABEL[plevel]}"
                report.add("unknown_parent", ERROR, [code, parent],
                           f"{label}“{u.get('name', '')}”({code}) 的上级 {parent} {what}")
            else:
                report.add("unknown_parent", WARNING, [code, parent],
                           f"{label} {code} 的上级{LEVEL_LABEL[plevel]} {parent} 不在导入数据中，未检查")
        n = PREFIX_LENGTH[level]
        if code[:n] != str(parent)[:n]:
            report.add("code_not_extending_parent", ERROR, [code, parent],
                       f"{label}编码 {code} 的前 {n} 位应与上级{LEVEL_LABEL[plevel]}编码 {parent} 相同")


# --------------------------------------------------------------------------------------------
# geometry


def _check_geometry(report: Report, units: list[dict], sliver_width_m: float, sliver_ratio: float,
                    frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Invalid, empty and sliver geometries; returns the WGS84 geometries made valid and their m² areas."""
    geoms = np.asarray([u["geom"] if u["geom"] is not None else shapely.Polygon() for u in units], dtype=object)
    valid = shapely.is_valid(geoms)
    fixed = geoms.copy()
    for i in np.flatnonzero(~valid):
        u = units[i]
        reason = shapely.is_valid_reason(geoms[i])
        loc = frame.point(_reason_location(reason)) or frame.lonlat(geoms[i])
        report.add("invalid_geometry", ERROR, [u["code"]],
                   f"{LEVEL_LABEL[u['level']]}“{u.get('name', '')}”({u['code']}) 的边界无效: {reason}", loc)
        fixed[i] = _areal(shapely.make_valid(geoms[i]))
    for i in np.flatnonzero(shapely.get_type_id(fixed) > 6):  # collections: keep the areal parts
        fixed[i] = _areal(fixed[i])
    proj = frame.project(fixed)
    area = shapely.area(proj)
    perim = shapely.length(proj)
    empty = shapely.is_empty(fixed) | (area <= 0)
    for i in np.flatnonzero(empty):
        u = units[i]
        report.add("empty_geometry", ERROR, [u["code"]], f"{LEVEL_LABEL[u['level']]} {u['code']} 的边界为空或面积为零")
    ratio = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-12) ** 2, 0.0)
    candidates = np.flatnonzero((~empty) & ((ratio < 0.2) | (area < 1e6)))  # only these can be thin
    shrunk_empty = np.zeros(len(units), dtype=bool)
    if len(candidates):
        shrunk_empty[candidates] = shapely.is_empty(shapely.buffer(proj[candidates], -sliver_width_m / 2.0))
    thin = (~empty) & (shrunk_empty | (ratio < sliver_ratio))
    for i in np.flatnonzero(thin):
        u = units[i]
        what = f"{LEVEL_LABEL[u['level']]}“{u.get('name', '')}”({u['code']})"
        why = (f"处处窄于 {sliver_width_m:g} m" if shrunk_empty[i] else "过于细长") + \
            f"，紧凑度 4πA/P² = {ratio[i]:.4f}"
        report.add("sliver", WARNING, [u["code"]], f"{what} 是细长碎片: {why}", frame.lonlat(fixed[i]), area[i])
    return fixed, area


def _areal(geom):
    """The polygonal part of a geometry (make_valid can return lines and points too)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _reason_location(reason: str) -> list[float] | None:
    """The [x y] shapely puts in a validity reason (in the geometry's own coordinates, WGS84 here)."""
    if "[" not in reason:
        return None
    try:
        xs = reason[reason.index("[") + 1: reason.index("]")].split()
        return [float(xs[0]), float(xs[1])]
    except (ValueError, IndexError):
        return None


def _narrow(frame, pieces, width_m: float) -> np.ndarray:
    """True for pieces nowhere wider than width_m (digitising/reprojection slivers, whatever their area)."""
    pieces = np.asarray(pieces, dtype=object)
    if width_m <= 0 or len(pieces) == 0:
        return np.zeros(len(pieces), dtype=bool)
    return shapely.is_empty(shapely.buffer(frame.project(pieces), -width_m / 2.0))


def _check_tiling(report: Report, units: list[dict], geoms: np.ndarray, areas_m2: np.ndarray, tol_m2: float,
                  frame: _Frame, tol_width_m: float = 0.0) -> None:
    """Per level: overlaps between siblings, gaps in each parent, children crossing their parent. A piece must
    be larger than tol_m2 and somewhere wider than tol_width_m to count; narrower ones are counted in
    report.checked["ignored_slivers"]."""
    ignored = 0

    def real(pieces, areas) -> np.ndarray:
        nonlocal ignored
        big = np.asarray(areas) > tol_m2
        if not big.any():
            return np.flatnonzero(big)
        narrow = np.zeros(len(big), dtype=bool)
        narrow[big] = _narrow(frame, np.asarray(pieces, dtype=object)[big], tol_width_m)
        ignored += int(narrow.sum())
        return np.flatnonzero(big & ~narrow)
    idx_by_code = {}
    for i, u in enumerate(units):
        idx_by_code.setdefault((u["level"], u["code"]), i)
    usable = ~shapely.is_empty(geoms)
    for level in LEVELS:
        members = np.asarray([i for i, u in enumerate(units) if u["level"] == level and usable[i]], dtype=int)
        if len(members) == 0:
            continue
        label = LEVEL_LABEL[level]
        # overlaps between any two units of the level (siblings or cousins)
        tree = STRtree(geoms[members])
        a, b = tree.query(geoms[members], predicate="intersects")
        keep = a < b
        a, b = members[a[keep]], members[b[keep]]
        suspicious = set()  # units in a real overlap: their parents' gaps are computed exactly
        if len(a):
            inter = shapely.intersection(geoms[a], geoms[b])
            areas = frame.area(inter)
            for k in real(inter, areas):
                ua, ub = units[a[k]], units[b[k]]
                suspicious.update((ua.get("parent_code"), ub.get("parent_code")))
                report.add("overlap", ERROR, [ua["code"], ub["code"]],
                           f"{label} {ua['code']}“{ua.get('name', '')}”与 {ub['code']}“{ub.get('name', '')}”重叠",
                           frame.lonlat(inter[k]), areas[k])
        if level == "city":
            continue
        plevel = PARENT_LEVEL[level]
        children: dict[int, list[int]] = defaultdict(list)
        for i in members:
            p = idx_by_code.get((plevel, units[i].get("parent_code")))
            if p is not None and usable[p]:
                children[p].append(i)
        if not children:
            continue  # this level's parents were not imported: nothing to tile against
        # children crossing their parent's boundary
        ci = np.asarray([i for kids in children.values() for i in kids], dtype=int)
        pi = np.asarray([p for p, kids in children.items() for _ in kids], dtype=int)
        outside = shapely.difference(geoms[ci], geoms[pi])
        out_area = frame.area(outside)
        plabel = LEVEL_LABEL[plevel]
        for k in real(outside, out_area):
            u, p = units[ci[k]], units[pi[k]]
            suspicious.add(p["code"])
            report.add("outside_parent", ERROR, [u["code"], p["code"]],
                       f"{label} {u['code']}“{u.get('name', '')}”越出所属{plabel} "
                       f"{p['code']}“{p.get('name', '')}”的边界",
                       frame.lonlat(outside[k]), out_area[k])
        # gaps: the parent minus the union of its children
        for p in (i for i, u in enumerate(units) if u["level"] == plevel and usable[i]):
            kids = children.get(p)
            pu = units[p]
            if not kids:
                report.add("gap", ERROR, [pu["code"]],
                           f"{plabel} {pu['code']}“{pu.get('name', '')}”没有任何{label}（整个{plabel}未覆盖）",
                           frame.lonlat(geoms[p]), float(frame.area([geoms[p]])[0]))
                continue
            # fast path: children inside, not overlapping, and their areas add up to the parent's
            if pu["code"] not in suspicious and areas_m2[p] - float(np.sum(areas_m2[kids])) <= tol_m2:
                continue
            rest = shapely.difference(geoms[p], shapely.union_all(geoms[kids]))
            pieces = shapely.get_parts(rest)
            if len(pieces) == 0:
                continue
            piece_areas = frame.area(pieces)
            for k in real(pieces, piece_areas):
                piece, area = pieces[k], piece_areas[k]
                near = sorted(units[i]["code"] for i in kids if shapely.distance(geoms[i], piece) < frame.near)
                report.add("gap", ERROR, [pu["code"], *near],
                           f"{plabel} {pu['code']}“{pu.get('name', '')}”内有未被{label}覆盖的空隙",
                           frame.lonlat(piece), area)
    if ignored:
        report.checked["ignored_slivers"] = report.checked.get("ignored_slivers", 0) + ignored


# --------------------------------------------------------------------------------------------
# people


def _check_staff(report: Report, grid_codes: set[str], staff: list[dict], roles: list[dict] | None) -> None:
    """Grids with no officer, officers with no grid or an unknown one, unknown roles."""
    if roles:
        officer_roles = {r["role"] for r in roles if r.get("is_officer")}
        known_roles = {r["role"] for r in roles}
    else:
        officer_roles, known_roles = set(DEFAULT_OFFICER_ROLES), None
    staffed = set()
    for s in staff:
        code, role, grid = s.get("code", ""), s.get("role", ""), (s.get("grid_code") or "").strip()
        if known_roles is not None and role not in known_roles:
            report.add("unknown_role", ERROR, [code], f"人员 {code}“{s.get('name', '')}”的角色 {role!r} 未配置")
        if role in officer_roles:
            if not grid:
                report.add("officer_without_grid", WARNING, [code], f"网格员 {code}“{s.get('name', '')}”没有所属网格")
            elif grid not in grid_codes:
                report.add("officer_without_grid", ERROR, [code, grid],
                           f"网格员 {code}“{s.get('name', '')}”的网格 {grid} 不存在")
            else:
                staffed.add(grid)
        elif grid and grid not in grid_codes:
            report.add("unknown_grid", ERROR, [code, grid], f"人员 {code}“{s.get('name', '')}”的网格 {grid} 不存在")
    for g in sorted(grid_codes - staffed):
        report.add("grid_without_officer", WARNING, [g], f"网格 {g} 没有网格员")


def check_staff(grid_codes: set[str], staff: list[dict], roles: list[dict] | None = None) -> Report:
    """Staff-only checks against a set of grid codes (used by the staff import)."""
    report = Report(checked={"staff": len(staff)})
    _check_staff(report, set(grid_codes), staff, roles)
    return report


# --------------------------------------------------------------------------------------------


def validate(regions: list[dict], grids: list[dict], staff: list[dict] | None = None,
             roles: list[dict] | None = None, tol_m2: float = DEFAULT_TOL_M2,
             sliver_width_m: float = DEFAULT_SLIVER_WIDTH_M, sliver_ratio: float = DEFAULT_SLIVER_RATIO,
             tol_width_m: float = DEFAULT_TOL_WIDTH_M) -> Report:
    """Validate regions (dicts: code, level, parent_code, name, geom) and grids (code, village_code, name, geom).

    When every unit also carries `geom_native` in one metric `crs_native` (a projected delivery, see
    grids.io.read_layer), topology is checked on those coordinates as delivered; otherwise in lon/lat with
    areas measured in an equal-area frame."""
    report = Report()
    native = {x.get("crs_native") for x in [*regions, *grids]}
    crs = next(iter(native)) if len(native) == 1 else None
    use_native = bool(crs) and metric_crs(crs) and all(x.get("geom_native") is not None for x in [*regions, *grids])
    key = "geom_native" if use_native else "geom"
    units = [dict(code=str(r["code"]), level=r["level"], parent_code=r.get("parent_code") or None,
                  name=r.get("name", ""), geom=r[key]) for r in regions]
    units += [dict(code=str(g["code"]), level="grid", parent_code=g.get("village_code") or None,
                   name=g.get("name", ""), geom=g[key]) for g in grids]
    report.checked = {lvl: sum(1 for u in units if u["level"] == lvl) for lvl in LEVELS}
    report.checked = {k: v for k, v in report.checked.items() if v}
    _check_codes(report, units)
    if units:
        geoms = [u["geom"] for u in units]
        frame = _NativeFrame(crs) if use_native else _Frame(geoms)
        if use_native:
            report.checked["validated_in"] = crs
        fixed, areas = _check_geometry(report, units, sliver_width_m, sliver_ratio, frame)
        _check_tiling(report, units, fixed, areas, tol_m2, frame, tol_width_m)
    if staff is not None:
        report.checked["staff"] = len(staff)
        _check_staff(report, {str(g["code"]) for g in grids}, staff, roles)
    return report
