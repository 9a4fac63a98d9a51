"""Routing that explains itself: location → grid → officer and centers; category → department at a level.

Pure functions over plain data. The rule table is data (routing_rule), a city edits it. The chain is
*grid ∋ point × category → handling level → responsible body* (FixMyStreet's area × category), with the
tiers 村为主、乡镇兜底、县域止访 (a category's lowest allowed level), one lead department (牵头) and
co-handlers (协办), and the conflict-of-interest guard (`cases.guard.may_touch`): no unit or person a case
accuses — nor a region under an accused one — is ever its handler: not the center, not a department, not
the grid officer. A mention that could not be resolved to one body sets `guard_floor`, the level above
every plausible body.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cases.guard import accused_by, may_touch, party_for_center, party_for_department, party_for_officer

LEVELS = ("grid", "village", "township", "county", "city")
LEVEL_LABELS = {"grid": "网格", "village": "村（社区）", "township": "乡镇（街道）", "county": "县（市、区）",
                "city": "市"}


@dataclass
class RoutingDecision:
    handling_level: str
    handler_region: str | None
    lead_department: str | None
    co_departments: list[str]
    officer_code: str | None
    rule_id: int | None
    generation: int | None
    grid_code: str | None
    explanation: list[str] = field(default_factory=list)
    alternatives: list[dict] = field(default_factory=list)
    guarded: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data (shallow copies; dataclasses.asdict deep-copies and is slow on the intake path)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v) for f in fields(self)}


def level_index(level: str) -> int:
    """Position of a level from grid (0) to city (4)."""
    return LEVELS.index(level)


def higher(a: str, b: str) -> str:
    """The higher of two levels."""
    return a if level_index(a) >= level_index(b) else b


def rule_matches(rule: dict, case: dict) -> bool:
    """True when the rule's category prefix, kind, channel and region prefix all fit the case."""
    cat = case.get("category_code") or ""
    if rule.get("category_code") and not cat.startswith(rule["category_code"]):
        return False
    if rule.get("kind") and rule["kind"] != case.get("kind"):
        return False
    if rule.get("channel") and rule["channel"] != case.get("channel"):
        return False
    region = case.get("village_code") or case.get("township_code") or case.get("county_code") or ""
    if rule.get("region_prefix") and not region.startswith(rule["region_prefix"]):
        return False
    return True


def _specificity(rule: dict) -> tuple:
    return (rule.get("priority", 100), -len(rule.get("category_code") or ""), -bool(rule.get("kind")),
            -bool(rule.get("channel")), -len(rule.get("region_prefix") or ""), rule.get("id") or 0)


def region_at(case: dict, level: str, city_code: str | None) -> str | None:
    """The case's region code at a level (grid → its grid code)."""
    return {
        "grid": case.get("grid_code"), "village": case.get("village_code"), "township": case.get("township_code"),
        "county": case.get("county_code"), "city": city_code,
    }[level]


def find_department(departments: list[dict], kind: str, case: dict, level: str,
                    city_code: str | None) -> tuple[dict | None, list[dict]]:
    """The department of `kind` responsible for the case at (or nearest above) `level`, and the others seen.

    County-level handling uses the county's department, city-level the city's; a county without one
    falls back to the city's. A department the guard excludes (accused, or part of an accused government)
    is never chosen, nor one that returned the case often enough to escalate it (`returned_by`): an escalated
    case goes to the next level's unit, not back to the one that refused it (村为主、乡镇兜底、县域止访).
    """
    order = [lv for lv in ("township", "county", "city") if level_index(lv) >= level_index(higher(level, "township"))]
    seen = []
    for lv in order:
        region = region_at(case, lv, city_code)
        if not region:
            continue
        for d in departments:
            if d["kind"] != kind or d["region_code"] != region:
                continue
            if not may_touch(case, party_for_department(d)):
                seen.append({**d, "skipped": "被举报单位，回避"})
                continue
            if d["code"] in (case.get("returned_by") or ()):
                seen.append({**d, "skipped": "已多次退回，不再交其承办"})
                continue
            return d, seen
    return None, seen


def route(case: dict, rules: list[dict], departments: list[dict], categories: dict[str, dict],
          chain: dict | None = None, city_code: str | None = None) -> RoutingDecision:
    """Decide who handles a case and record why.

    `case` has category_code, kind, channel, grid/village/township/county codes, accused_units,
    escalation_level (optional floor). `chain` is the locate() answer (officer, generation) when known.
    """
    chain = chain or {}
    explanation: list[str] = []
    cat = categories.get(case.get("category_code") or "") or {}
    matching = sorted((r for r in rules if r.get("active", True) and rule_matches(r, case)), key=_specificity)
    rule = matching[0] if matching else None
    gen = chain.get("generation") or case.get("generation")
    if case.get("grid_code"):
        explanation.append(f"位置落在网格 {case['grid_code']}（边界版本 {gen}）")
    else:
        explanation.append("位置未确定到网格：待人工定位")
    if rule:
        level = rule["handler_level"]
        kinds = list(rule.get("dept_kinds") or [])
        explanation.append(f"匹配规则 #{rule.get('id')}：{rule.get('note') or rule.get('category_code') or '通用'}"
                           f" → {LEVEL_LABELS[level]}" + (f"，部门 {'、'.join(kinds)}" if kinds else ""))
    else:
        level = "village"
        kinds = [cat["dept_kind"]] if cat.get("dept_kind") else []
        explanation.append("无匹配规则：按类别默认部门，村（社区）为主")
    min_level = cat.get("min_level")
    if min_level and min_level in LEVELS and level_index(min_level) > level_index(level):
        explanation.append(f"类别“{cat.get('name')}”最低办理层级为{LEVEL_LABELS[min_level]}")
        level = min_level
    floor = case.get("escalation_level")
    if floor and floor in LEVELS and level_index(floor) > level_index(level):
        explanation.append(f"已升级至{LEVEL_LABELS[floor]}")
        level = floor
    floor = case.get("guard_floor")
    if floor and floor in LEVELS and level_index(floor) > level_index(level):
        explanation.append(f"被举报对象待核（有歧义或未识别）：提级至{LEVEL_LABELS[floor]}，高于所有可能的被举报单位")
        level = floor
    if not case.get("grid_code") and level_index(level) < level_index("county"):
        # Without a location only a center that covers the whole area can take it.
        level = "county" if case.get("county_code") else "city"
        explanation.append(f"无网格定位，由{LEVEL_LABELS[level]}受理")
    guarded: list[str] = []
    officer = chain.get("officer_code")
    if officer and not may_touch(case, party_for_officer(officer, case.get("grid_code"))):
        guarded.append(officer)
        officer = None
        if level_index(level) < level_index("village"):
            level = "village"
        explanation.append("回避：被举报的网格员不参与办理")
    # The handling center: never one the guard excludes (an accused region, its center, or a region under
    # an accused one) — go up until one may touch the case.
    handler_region = region_at(case, level, city_code)
    while handler_region and not may_touch(case, party_for_center(handler_region)) and level != "city":
        guarded += accused_by(case, party_for_center(handler_region))[:1]
        explanation.append(f"回避：{LEVEL_LABELS[level]}（{handler_region}）与被举报单位有利害关系，提级")
        level = LEVELS[level_index(level) + 1]
        handler_region = region_at(case, level, city_code)
    if handler_region and not may_touch(case, party_for_center(handler_region)):
        explanation.append("回避：市级亦被举报，须报上级处理（待人工派单）")
        guarded.append(handler_region)
        handler_region = None
    lead, co, alternatives = None, [], []
    for kind in kinds:
        dept, seen = find_department(departments, kind, case, level, city_code)
        guarded += [s["code"] for s in seen if s.get("skipped") == "被举报单位，回避"]
        for s_ in seen:
            if s_.get("skipped") == "已多次退回，不再交其承办":
                explanation.append(f"{s_['name']}已多次退回，不再交其承办")
        if dept is None:
            explanation.append(f"未找到{kind}部门（{LEVEL_LABELS[level]}及以上）")
            continue
        if lead is None:
            lead = dept["code"]
            explanation.append(f"牵头部门：{dept['name']}")
        else:
            co.append(dept["code"])
            explanation.append(f"协办部门：{dept['name']}")
    if guarded:
        explanation.append(f"回避：被举报单位 {'、'.join(dict.fromkeys(guarded))} 不参与办理")
    officer = officer if level in ("grid", "village") else None
    if officer:
        explanation.append(f"网格员 {officer} 负责跟进")
    for r in matching[1:4]:
        alternatives.append({"rule_id": r.get("id"), "handler_level": r["handler_level"],
                             "dept_kinds": list(r.get("dept_kinds") or []), "note": r.get("note", "")})
    return RoutingDecision(level, handler_region, lead, co, officer, rule.get("id") if rule else None, gen,
                           case.get("grid_code"), explanation, alternatives, guarded)


def default_rules(categories: list[dict]) -> list[dict]:
    """Starting rules for a city: one per top-level category from its department kind and lowest level,
    plus the routing seen in the seeds (经济社会发展 → 政府办, 党的建设 → 党委办, 举报 → county)."""
    rules = []
    for c in categories:
        if c.get("parent_code"):
            continue
        level = c.get("min_level") or "village"
        kinds = [c["dept_kind"]] if c.get("dept_kind") else []
        rules.append(dict(priority=100, category_code=c["code"], kind=None, channel=None, region_prefix=None,
                          handler_level=level, dept_kinds=kinds, note=f"{c['name']}：{'、'.join(kinds) or '属地'}"))
    for c in categories:
        # Leaf categories whose own department differs from their parent's get their own rule.
        parent = next((p for p in categories if p["code"] == c.get("parent_code")), None)
        if parent and c.get("dept_kind") and c["dept_kind"] != parent.get("dept_kind"):
            rules.append(dict(priority=90, category_code=c["code"], kind=None, channel=None, region_prefix=None,
                              handler_level=c.get("min_level") or "village", dept_kinds=[c["dept_kind"]],
                              note=f"{c['name']}：{c['dept_kind']}"))
    rules.append(dict(priority=50, category_code=None, kind="举报", channel=None, region_prefix=None,
                      handler_level="county", dept_kinds=[], note="举报件由县级综治中心办理（回避被举报单位）"))
    return rules
