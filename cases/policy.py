"""The city's rate policy as data (table app_setting, key 'rate_policy'): composite weights (e.g. 10/45/45
or 30/35/35), the weight of 基本满意, the evaluation window, whether the last place is red, and the
四色码 thresholds. Missing keys keep the defaults of cases.rates."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from fractions import Fraction

from cases.deadlines import DEFAULT_DEADLINE_POLICY, PETITION_CHANNELS, DeadlinePolicy
from cases.rates import DEFAULT_THRESHOLDS, RATE_LABELS, RateConfig, Threshold
from gis.errors import BadInput

KEY = "rate_policy"
UNIT_TYPES = ("grid", "village", "township", "county", "department")   # as cases.reports.UNIT_COLUMNS


@dataclass(frozen=True)
class RatePolicy:
    config: RateConfig
    thresholds: tuple[Threshold, ...]
    last_place_red: bool
    red_by_threshold: bool = False   # seed 004: red is the last place only; a city may also make low rates red
    # whose colour sets a consequence in motion when a month is published (seed 004: 表扬 … 市领导直接约谈 are
    # for the units that carry 化解清零, not for 2,000 grids a month); every unit type is still coloured
    task_unit_types: tuple[str, ...] = ("township", "county", "department")

    def to_dict(self) -> dict:
        """JSON form (percentages as numbers)."""
        c = self.config
        return {"weights": list(c.weights), "basic_weight": str(c.basic_weight), "eval_window_days": c.eval_window_days,
                "renormalize": c.renormalize, "last_place_red": self.last_place_red,
                "red_by_threshold": self.red_by_threshold, "task_unit_types": list(self.task_unit_types),
                "thresholds": {t.metric: [float(t.green * 100), float(t.yellow * 100), float(t.orange * 100)]
                               for t in self.thresholds}}


DEFAULT = RatePolicy(RateConfig(), DEFAULT_THRESHOLDS, True)


def parse_policy(value: dict) -> RatePolicy:
    """Validate a policy dict (as stored or as given by an operator); BadInput says which key is wrong."""
    if not isinstance(value, dict):
        raise BadInput("rate policy must be a JSON object")
    unknown = set(value) - {"weights", "basic_weight", "eval_window_days", "renormalize", "last_place_red",
                            "red_by_threshold", "thresholds", "task_unit_types"}
    if unknown:
        raise BadInput(f"unknown rate policy keys: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    cfg = DEFAULT.config
    if "weights" in value:
        w = value["weights"]
        if not (isinstance(w, list) and len(w) == 3 and all(isinstance(x, int) and x >= 0 for x in w) and sum(w)):
            raise BadInput("weights must be three non-negative integers (响应率, 解决率, 满意率), e.g. [10, 45, 45]",
                           field="weights")
        cfg = replace(cfg, weights=tuple(w))
    if "basic_weight" in value:
        try:
            bw = Fraction(str(value["basic_weight"]))
        except (ValueError, ZeroDivisionError):
            raise BadInput("basic_weight must be a number between 0 and 1, e.g. 0.8 or 4/5",
                           field="basic_weight") from None
        if not 0 <= bw <= 1:
            raise BadInput("basic_weight must be between 0 and 1", field="basic_weight")
        cfg = replace(cfg, basic_weight=bw)
    if "eval_window_days" in value:
        d = value["eval_window_days"]
        if not (isinstance(d, int) and 1 <= d <= 90):
            raise BadInput("eval_window_days must be an integer 1..90", field="eval_window_days")
        cfg = replace(cfg, eval_window_days=d)
    if "renormalize" in value:
        cfg = replace(cfg, renormalize=bool(value["renormalize"]))
    thresholds = {t.metric: t for t in DEFAULT.thresholds}
    for metric, bounds in (value.get("thresholds") or {}).items():
        if metric not in RATE_LABELS or metric == "composite":
            raise BadInput(f"unknown threshold metric {metric!r}", field="thresholds")
        if not (isinstance(bounds, list) and len(bounds) == 3 and all(isinstance(b, (int, float)) for b in bounds)):
            raise BadInput(f"thresholds.{metric} must be [green, yellow, orange] in percent", field="thresholds")
        lower_better = metric in ("reopen_rate", "return_rate", "forwarding")
        g, y, o = (Fraction(str(b)) / 100 for b in bounds)
        if (not lower_better and not g >= y >= o) or (lower_better and not g <= y <= o):
            raise BadInput(f"thresholds.{metric} must be ordered green, yellow, orange", field="thresholds")
        thresholds[metric] = Threshold(metric, g, y, o, higher_is_better=not lower_better)
    tasks = value.get("task_unit_types", list(DEFAULT.task_unit_types))
    if not (isinstance(tasks, list) and all(t in UNIT_TYPES for t in tasks)):
        raise BadInput(f"task_unit_types must be a list of {', '.join(UNIT_TYPES)}", field="task_unit_types")
    return RatePolicy(cfg, tuple(thresholds.values()), bool(value.get("last_place_red", DEFAULT.last_place_red)),
                      bool(value.get("red_by_threshold", DEFAULT.red_by_threshold)),
                      tuple(t for t in UNIT_TYPES if t in tasks))


def load_rate_policy(db) -> RatePolicy:
    """The stored policy (defaults when none is stored)."""
    row = db.fetchone("SELECT value FROM app_setting WHERE key = %s", (KEY,))
    return parse_policy(row["value"]) if row else DEFAULT


def save_rate_policy(db, value: dict) -> RatePolicy:
    """Validate and store a policy; published months keep the figures they were published with."""
    policy = parse_policy(value)
    db.execute("INSERT INTO app_setting (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
               "value = EXCLUDED.value, updated_at = now()", (KEY, json.dumps(value, ensure_ascii=False)))
    return policy


# -- deadlines and supervision (app_setting 'deadline_policy') ----------------------------------------

DEADLINE_KEY = "deadline_policy"
_DEADLINE_KEYS = ("simple_petition_channels", "mailbox_days", "mailbox_roll", "emergency_met_by", "remind_every",
                  "supervise_every", "escalate_overdue_to")


def deadline_policy_dict(p: DeadlinePolicy) -> dict:
    """JSON form of a deadline policy."""
    return {"simple_petition_channels": sorted(p.simple_petition_channels), "mailbox_days": p.mailbox_days,
            "mailbox_roll": p.mailbox_roll, "emergency_met_by": p.emergency_met_by,
            "remind_every": p.remind_every, "supervise_every": p.supervise_every}


def parse_deadline_policy(value: dict) -> DeadlinePolicy:
    """Validate a deadline policy dict; missing keys keep the seeds' defaults (cases.deadlines.DeadlinePolicy)."""
    if not isinstance(value, dict):
        raise BadInput("deadline policy must be a JSON object")
    unknown = set(value) - set(_DEADLINE_KEYS)
    if unknown:
        raise BadInput(f"unknown deadline policy keys: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    p = DEFAULT_DEADLINE_POLICY
    if "simple_petition_channels" in value:
        chans = value["simple_petition_channels"]
        if not (isinstance(chans, list) and all(c in PETITION_CHANNELS for c in chans)):
            raise BadInput(f"simple_petition_channels must be a list of {', '.join(sorted(PETITION_CHANNELS))}",
                           field="simple_petition_channels")
        p = replace(p, simple_petition_channels=frozenset(chans))
    for key, lo, hi in (("mailbox_days", 1, 60), ("remind_every", 1, 30), ("supervise_every", 1, 30)):
        if key in value:
            v = value[key]
            if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                raise BadInput(f"{key} must be an integer {lo}..{hi}", field=key)
            p = replace(p, **{key: v})
    if "mailbox_roll" in value:
        if not isinstance(value["mailbox_roll"], bool):
            raise BadInput("mailbox_roll must be true or false", field="mailbox_roll")
        p = replace(p, mailbox_roll=value["mailbox_roll"])
    if "emergency_met_by" in value:
        if value["emergency_met_by"] not in ("reply", "close"):
            raise BadInput("emergency_met_by must be reply (处置反馈) or close (办结)", field="emergency_met_by")
        p = replace(p, emergency_met_by=value["emergency_met_by"])
    if "escalate_overdue_to" in value:
        if value["escalate_overdue_to"] not in ("", "township", "county", "city"):
            raise BadInput("escalate_overdue_to must be township, county, city or \"\" (never)",
                           field="escalate_overdue_to")
        p = replace(p, escalate_overdue_to=value["escalate_overdue_to"])
    return p


def load_deadline_policy(db) -> DeadlinePolicy:
    """The stored deadline policy (the seeds' defaults when none is stored)."""
    row = db.fetchone("SELECT value FROM app_setting WHERE key = %s", (DEADLINE_KEY,))
    return parse_deadline_policy(row["value"]) if row else DEFAULT_DEADLINE_POLICY


def save_deadline_policy(db, value: dict) -> DeadlinePolicy:
    """Validate and store a deadline policy; due instants already computed are recomputed at the case's next
    event (交办, 受理, 延期 …)."""
    policy = parse_deadline_policy(value)
    db.execute("INSERT INTO app_setting (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
               "value = EXCLUDED.value, updated_at = now()", (DEADLINE_KEY, json.dumps(value, ensure_ascii=False)))
    return policy
