"""The closed loop of a case (接诉 → 受理 → 交办 → 签收 → 办理 → 答复 → 评价 → 办结) as a state machine.

Pure data and functions: the DB layer loads the case's state, calls `apply`, writes the new state and
appends the returned event. Nothing is edited in place: every action, including the ones that keep the
state (progress, supervise, extension), yields an event.

Extensions (延期) are events, not a state: `approve_extension` keeps the case in `handling` and the
caller moves the deadlines with cases.deadlines.extend; the event kind is "extended".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gis.errors import BadInput, Conflict, Forbidden, Unprocessable

# -- states -------------------------------------------------------------------------------------

STATES: dict[str, str] = {
    "received": "接诉",
    "accepted": "受理",
    "rejected": "不予受理",
    "dispatched": "交办",
    "signed": "签收",
    "returned": "退回",
    "handling": "办理",
    "replied": "答复",
    "evaluated": "评价",
    "reopened": "重办",
    "closed": "办结",
    "merged": "已合并",
}
TERMINAL_STATES = frozenset({"rejected", "closed", "merged"})
OPEN_STATES = frozenset(STATES) - TERMINAL_STATES

# -- roles --------------------------------------------------------------------------------------

ROLES: dict[str, str] = {
    "city_center": "市综治中心",
    "county_center": "县级综治中心",
    "township_center": "乡镇（街道）综治中心",
    "village_center": "村（社区）综治中心",
    "grid_officer": "网格员",
    "department": "事权部门",
    "dispatcher": "受理派单员",
    "admin": "系统管理员",
    "citizen": "诉求人",
    "system": "系统",
}
_UPPER_CENTERS = frozenset({"city_center", "county_center", "township_center"})
_CENTERS = _UPPER_CENTERS | {"village_center"}
_INTAKE = frozenset({"dispatcher", "admin"}) | _UPPER_CENTERS
_HANDLERS = frozenset({"grid_officer", "department"}) | _CENTERS
_SUPERVISORS = _UPPER_CENTERS | {"admin", "system"}

# -- actions ------------------------------------------------------------------------------------

ACTIONS: dict[str, str] = {
    "accept": "受理",
    "reject": "不予受理",
    "dispatch": "交办（派单）",
    "sign": "签收",
    "return": "退回",
    "start": "开始办理",
    "progress": "办理进展",
    "request_extension": "申请延期",
    "approve_extension": "批准延期",
    "deny_extension": "驳回延期",
    "reply": "答复",
    "evaluate": "评价",
    "reopen": "重办",
    "close": "办结",
    "merge": "合并",
    "escalate": "上报升级",
    "supervise": "督办",
    "reassign": "改派",
    "correct_routing": "纠正派单（转办）",
    "mark_complex": "认定疑难复杂",
    "package": "领导包案",
    "visit": "约访/下访",
}

ACTION_ROLES: dict[str, frozenset[str]] = {
    "accept": _INTAKE,
    "reject": _INTAKE,
    "dispatch": _INTAKE | {"system"},
    "sign": _HANDLERS,
    "return": _HANDLERS,
    "start": _HANDLERS,
    "progress": _HANDLERS,
    "request_extension": _HANDLERS,
    "approve_extension": _UPPER_CENTERS | {"admin"},
    "deny_extension": _UPPER_CENTERS | {"admin"},
    "reply": _HANDLERS | {"dispatcher"},
    "evaluate": frozenset({"citizen", "dispatcher", "admin"}),
    "reopen": frozenset({"citizen"}) | _INTAKE,
    "close": _INTAKE | {"system"},
    "merge": _INTAKE,
    "escalate": _HANDLERS | {"dispatcher", "system"},
    "supervise": _SUPERVISORS,
    "reassign": _INTAKE,
    "correct_routing": _INTAKE,
    "mark_complex": _INTAKE,
    "package": _UPPER_CENTERS | {"admin"},               # a center assigns a leader (seeds 002, 004)
    "visit": _CENTERS | {"admin", "department"},         # the leader's 约访/下访, recorded by the center or unit
}

REASON_REQUIRED: frozenset[str] = frozenset({
    "return", "reject", "escalate", "reopen", "request_extension", "approve_extension",
    "deny_extension", "correct_routing", "mark_complex",
})

# Event kind recorded for an action when it differs from the action code.
EVENT_KINDS: dict[str, str] = {"approve_extension": "extended"}
EVENT_LABELS: dict[str, str] = {**ACTIONS, "extended": "延期", "guard_review": "回避待核", "merged_in": "并入",
                                "unified_reply": "统一答复", "pin": "人工定位"}

_IN_PROGRESS = ("dispatched", "signed", "handling", "returned", "reopened")
_MERGEABLE = ("received", "accepted", "dispatched", "signed", "returned", "handling", "reopened")

TRANSITIONS: dict[tuple[str, str], str] = {
    ("received", "accept"): "accepted",
    ("received", "reject"): "rejected",
    ("accepted", "dispatch"): "dispatched",
    ("accepted", "reply"): "replied",  # 即接即办: a 咨询 answered at intake
    ("returned", "dispatch"): "dispatched",
    ("reopened", "dispatch"): "dispatched",
    ("dispatched", "sign"): "signed",
    ("dispatched", "return"): "returned",
    ("signed", "start"): "handling",
    ("signed", "reply"): "replied",
    ("handling", "progress"): "handling",
    ("handling", "request_extension"): "handling",
    ("handling", "approve_extension"): "handling",
    ("handling", "deny_extension"): "handling",
    ("handling", "reply"): "replied",
    ("replied", "evaluate"): "evaluated",
    ("replied", "reopen"): "reopened",
    ("replied", "close"): "closed",  # evaluation window passed (超期未评) or no evaluation expected
    ("evaluated", "reopen"): "reopened",
    ("evaluated", "close"): "closed",
    ("closed", "reopen"): "reopened",
    ("returned", "reject"): "rejected",
    **{(s, "merge"): "merged" for s in _MERGEABLE},
    **{(s, "escalate"): "dispatched" for s in ("signed", "handling", "returned")},
    **{(s, "supervise"): s for s in (*_IN_PROGRESS, "replied")},
    **{(s, "reassign"): "dispatched" for s in ("dispatched", "returned", "signed", "handling")},
    **{(s, "correct_routing"): "dispatched" for s in ("dispatched", "returned", "signed", "handling")},
    # 疑难复杂 (seed 002): leaves 简易程序 for the regular 信访 regime; an event, the state stays.
    **{(s, "mark_complex"): s for s in ("received", "accepted", *_IN_PROGRESS)},
    # 领导包案 and its 约访/下访: events on an open case, the state stays
    **{(s, a): s for s in ("received", "accepted", *_IN_PROGRESS, "replied", "evaluated")
       for a in ("package", "visit")},
}


PETITION_OUTCOMES = ("已息访办结", "已有化解方案", "正在办理")


def petition_outcome(status: str, has_plan: bool) -> str | None:
    """The outcome a 信访 case is reported under (seed 000: "已息访办结3050件、已有化解方案1633件、正在办理299件"):
    closed → 已息访办结; a 包案 plan, or a reply awaiting the citizen → 已有化解方案; otherwise 正在办理.
    None for a merged or rejected case (counted on its master, or not a matter)."""
    if status in ("merged", "rejected"):
        return None
    if status == "closed":
        return "已息访办结"
    if has_plan or status in ("replied", "evaluated"):
        return "已有化解方案"
    return "正在办理"


@dataclass(frozen=True)
class Transition:
    """Result of a legal action: the new state and the event to append."""

    new_state: str
    event: dict = field(default_factory=dict)


def allowed_actions(case_state: str, role: str | None = None) -> list[str]:
    """Actions legal in a state (optionally only those the role may perform), in table order."""
    return [a for (s, a) in TRANSITIONS if s == case_state and (role is None or role in ACTION_ROLES[a])]


def apply(case_state: str, action: str, role: str, reason: str | None = None, *,
          pending_extension: bool | None = None) -> Transition:
    """Apply an action to a case state; raise BadInput/Conflict/Forbidden/Unprocessable when illegal.

    pending_extension, when known, guards approve/deny_extension (an extension must have been requested).
    """
    if action not in ACTIONS:
        raise BadInput(f"unknown action {action!r}", field="action",
                       details={"actions": sorted(ACTIONS)})
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}", field="role", details={"roles": sorted(ROLES)})
    if case_state not in STATES:
        raise Unprocessable(f"unknown case state {case_state!r}", field="state")
    new_state = TRANSITIONS.get((case_state, action))
    if new_state is None:
        allowed = allowed_actions(case_state)
        raise Conflict(
            f"action {action} ({ACTIONS[action]}) is not allowed in state {case_state} "
            f"({STATES[case_state]}); allowed: {', '.join(allowed) or 'none'}",
            field="action",
            details={"state": case_state, "action": action, "allowed_actions": allowed},
        )
    if role not in ACTION_ROLES[action]:
        raise Forbidden(
            f"role {role} ({ROLES[role]}) may not {action} ({ACTIONS[action]})",
            field="role",
            details={"action": action, "role": role, "allowed_roles": sorted(ACTION_ROLES[action])},
        )
    reason = reason.strip() if isinstance(reason, str) else None
    if action in REASON_REQUIRED and not reason:
        raise Unprocessable(f"action {action} ({ACTIONS[action]}) requires a reason", field="reason",
                            details={"state": case_state, "action": action})
    if action in ("approve_extension", "deny_extension") and pending_extension is False:
        raise Conflict("no pending extension request", field="action",
                       details={"state": case_state, "action": action})
    kind = EVENT_KINDS.get(action, action)
    event = {
        "kind": kind,
        "label": EVENT_LABELS[kind],
        "action": action,
        "from_state": case_state,
        "to_state": new_state,
        "role": role,
        "reason": reason or None,
        "forwarded": action == "correct_routing",
    }
    return Transition(new_state, event)


# -- tiered handling: 村为主、乡镇兜底、县域止访 -------------------------------------------------------

LEVELS: tuple[str, ...] = ("village", "township", "county", "city")
LEVEL_LABELS: dict[str, str] = {"village": "村（社区）", "township": "乡镇（街道）", "county": "县（市、区）",
                                "city": "市"}
DEFAULT_RETURN_ESCALATION = 2


def next_level(level: str) -> str:
    """The level a case escalates to: village → township → county → city."""
    if level not in LEVELS:
        raise BadInput(f"unknown level {level!r}", field="level", details={"levels": list(LEVELS)})
    i = LEVELS.index(level)
    if i == len(LEVELS) - 1:
        raise Unprocessable("a city-level case cannot escalate further", field="level")
    return LEVELS[i + 1]


def needs_auto_escalation(returned_count: int, threshold: int = DEFAULT_RETURN_ESCALATION) -> bool:
    """True when a case has been returned at least `threshold` times."""
    if threshold < 1:
        raise BadInput("escalation threshold must be at least 1", field="threshold")
    return returned_count >= threshold


def auto_escalate(case_state: str, level: str, returned_count: int,
                  threshold: int = DEFAULT_RETURN_ESCALATION) -> Transition | None:
    """Escalate as `system` when returned >= threshold times; None when not due or not possible."""
    if not needs_auto_escalation(returned_count, threshold) or level == LEVELS[-1]:
        return None
    if (case_state, "escalate") not in TRANSITIONS:
        return None
    target = next_level(level)
    t = apply(case_state, "escalate", "system",
              f"退回 {returned_count} 次（阈值 {threshold}），自动升级至{LEVEL_LABELS[target]}")
    return Transition(t.new_state, {**t.event, "from_level": level, "to_level": target, "auto": True})


def escalate(case_state: str, level: str, role: str, reason: str | None) -> Transition:
    """Manual escalation to the next level; the event records from_level and to_level."""
    target = next_level(level)
    t = apply(case_state, "escalate", role, reason)
    return Transition(t.new_state, {**t.event, "from_level": level, "to_level": target, "auto": False})
