"""三率 and friends per unit per month, from plain case records; exact fractions, rounded only for display.

A record is a dict with case_record fields (status, received_at, sign_due_at, signed_at, reply_due_at,
replied_at, evaluated_at, closed_at, evaluation) plus: dispatched (bool), returned_count,
reopened_count, forwarded (bool: routing corrected), solved (optional bool) and a unit key.

Each rate has its own cohort (denominator) within the month M = [first day 00:00, next month 00:00)
Beijing time; an empty denominator gives None, never 0 or 100. Definitions (also in docs/cases.md):
- 响应率 response     = dispatched, sign due in M, signed_at <= sign_due_at / dispatched, sign due in M
                        (a case without a 签收 milestone — 信访 under the regular procedure — by its 受理:
                        accept_due_at / accepted_at)
- 退回率 return_rate  = same cohort, returned_count > 0 / same cohort
- 转办率 forwarding   = same cohort, forwarded / same cohort
- 解决率 resolution   = reply due in M (handle_due_at where there is no 答复 milestone: 信访 办结 60 days,
                        emergencies' 3 hours) and resolved by as_of / reply due in M, where resolved means
                        closed_at <= as_of and (solved is True, or solved is unset and evaluation is not 不满意)
- 按时办结率 on_time   = reply due in M, replied_at <= reply_due_at / reply due in M
  For a running month (as_of, or now, before the month's end) a milestone due later in the month enters its
  cohort only once it is met: the wall's month-to-date 解决率 read 50% on 2 December because every case due
  later that month counted as unresolved.
- 满意率 satisfaction = (满意 + w·基本满意) / (evaluated in M (evaluated_at in M; closed_at if unset)
                        + 超期未评 in M) — seed 002: "满意率较低。主要是网信超期未评件较多"
- 参评满意率 participating_satisfaction = (满意 + 基本满意) / evaluated in M (the seeds' figure)
  Evaluations a reopening set aside (prior_evaluations / prior_evaluated_at) count in their own month.
- 一次性化解率 one_time = first_petition cases (求决, the person's first 信访) closed in M with returned_count == 0
                        and reopened_count == 0 / first_petition cases closed in M (seed 000)
- 重办率 reopen_rate  = closed in M with reopened_count > 0 / closed in M
- 超期未评 overdue_unevaluated (a count) = replied, evaluation window (eval_due_at, else replied_at + N days)
                        ended in M and by as_of, and not evaluated by as_of (the month's end, or now
                        for the running month)
- composite = Σ wᵢ·rateᵢ / Σ wᵢ over (响应率, 解决率, 满意率), ×100 for a score
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from cases.calendar import TZ, to_local
from gis.errors import BadInput

EVALUATIONS = ("满意", "基本满意", "不满意")

RATE_LABELS: dict[str, str] = {
    "response": "响应率",
    "resolution": "解决率",
    "satisfaction": "满意率",
    "participating_satisfaction": "参评满意率",
    "on_time": "按时办结率",
    "return_rate": "退回率",
    "reopen_rate": "重办率",
    "one_time": "一次性化解率",
    "forwarding": "转办率",
    "composite": "综合得分",
}


@dataclass(frozen=True)
class Rate:
    """An exact ratio; value is None when the denominator is empty."""

    numerator: Fraction
    denominator: int

    @property
    def value(self) -> Fraction | None:
        """The exact ratio, or None for an empty denominator."""
        if self.denominator == 0:
            return None
        return Fraction(self.numerator) / self.denominator

    def pct(self, digits: int = 1) -> str:
        """Percent string rounded half-up for display ('82.1%'), '—' when empty."""
        return fmt_pct(self.value, digits)

    def to_dict(self) -> dict:
        """Plain-data form for JSON (value as float for charts, exact parts kept)."""
        v = self.value
        return {"numerator": str(self.numerator), "denominator": self.denominator,
                "value": None if v is None else float(v), "display": self.pct()}


def fmt_pct(value: Fraction | None, digits: int = 1) -> str:
    """Format a fraction as a percentage, rounding half up only here; None → '—'."""
    if value is None:
        return "—"
    scale = 100 * 10 ** digits
    v = Fraction(value) * scale
    sign = "-" if v < 0 else ""
    v = abs(v)
    q = (2 * v.numerator + v.denominator) // (2 * v.denominator)
    whole, frac = divmod(q, 10 ** digits)
    return f"{sign}{whole}.{frac:0{digits}d}%" if digits else f"{sign}{whole}%"


@dataclass(frozen=True)
class RateConfig:
    """Tunable parts of the definitions."""

    basic_weight: Fraction = Fraction(4, 5)  # weight of 基本满意 in 满意率
    eval_window_days: int = 7  # days after the reply the citizen has to evaluate
    weights: tuple[int, int, int] = (10, 45, 45)  # composite: 响应率, 解决率, 满意率
    renormalize: bool = False  # composite over the available rates when some are None


@dataclass(frozen=True)
class UnitRates:
    """All rates of one unit in one month."""

    unit: object
    response: Rate
    resolution: Rate
    satisfaction: Rate
    on_time: Rate
    return_rate: Rate
    reopen_rate: Rate
    one_time: Rate
    forwarding: Rate
    overdue_unevaluated: int
    composite: Fraction | None
    counts: dict = field(default_factory=dict)
    # 参评满意率 as the seeds report it (seed 000: "责任单位参评满意率99.38%"): (满意 + 基本满意) / 参评,
    # beside the weighted 满意率 above
    participating_satisfaction: Rate = Rate(Fraction(0), 0)

    def rate(self, name: str) -> Fraction | None:
        """A rate's exact value by name (composite included)."""
        if name == "composite":
            return self.composite
        return getattr(self, name).value

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        out = {"unit": self.unit, "overdue_unevaluated": self.overdue_unevaluated, "counts": self.counts}
        for name in RATE_LABELS:
            if name != "composite":
                out[name] = getattr(self, name).to_dict()
        out["composite"] = None if self.composite is None else float(self.composite * 100)
        return out


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month in Beijing time."""
    if not 1 <= month <= 12:
        raise BadInput("month must be 1-12", field="month")
    start = dt.datetime(year, month, 1, tzinfo=TZ)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=TZ)
    return start, end


def _t(rec: dict, key: str) -> dt.datetime | None:
    v = rec.get(key)
    return None if v is None else to_local(v)


def is_resolved(rec: dict, as_of: dt.datetime) -> bool:
    """Closed by as_of and either flagged solved, or (no flag) not evaluated 不满意."""
    closed = _t(rec, "closed_at")
    if closed is None or closed > as_of:
        return False
    solved = rec.get("solved")
    if solved is not None:
        return bool(solved)
    return rec.get("evaluation") != "不满意"


def unit_rates(records, year: int, month: int, config: RateConfig | None = None, *,
               unit: object = None, as_of: dt.datetime | None = None) -> UnitRates:
    """All rates of one set of records (one unit) for a month, exactly."""
    cfg = config or RateConfig()
    start, end = month_bounds(year, month)
    # what is known: the month's end, or now for a running month (an evaluation window that ends later this
    # month is not 超期未评 yet: the wall's month-to-date 满意率 read 34.9% instead of ~85% on 2 December)
    cut = min(end, to_local(as_of) if as_of is not None else to_local(dt.datetime.now(dt.UTC)))

    def in_m(t):
        return t is not None and start <= t < end

    sign_c = ret = fwd = signed_ok = 0
    due_c = resolved = on_time = 0
    eval_c = 0
    sat_num = Fraction(0)
    evals = {e: 0 for e in EVALUATIONS}
    closed_c = clean = reopened = first_c = first_clean = 0
    overdue_unevaluated = 0
    window = dt.timedelta(days=cfg.eval_window_days)
    for rec in records:
        sign_due, responded = _t(rec, "sign_due_at"), _t(rec, "signed_at")
        if sign_due is None:  # 信访 under the regular procedure: 受理 is its response (no 签收 milestone)
            sign_due, responded = _t(rec, "accept_due_at"), _t(rec, "accepted_at")
        # a running month counts a milestone due later in it only once it is met (it cannot have failed yet)
        if rec.get("dispatched") and in_m(sign_due) and (sign_due <= cut or (responded is not None
                                                                             and responded <= cut)):
            sign_c += 1
            signed_ok += responded is not None and responded <= sign_due
            ret += (rec.get("returned_count") or 0) > 0
            fwd += bool(rec.get("forwarded"))
        reply_due = _t(rec, "reply_due_at") or _t(rec, "handle_due_at")  # 办结 limit where no 答复 milestone
        replied = _t(rec, "replied_at")
        if in_m(reply_due) and (reply_due <= cut or is_resolved(rec, cut)):
            due_c += 1
            resolved += is_resolved(rec, cut)
            on_time += replied is not None and replied <= reply_due
        ev = rec.get("evaluation")
        evaluated = _t(rec, "evaluated_at") or (_t(rec, "closed_at") if ev else None)
        # evaluations given before a reopening count in the month they were given (seed 001)
        given = [(ev, evaluated)] + [(e, to_local(t)) for e, t in zip(rec.get("prior_evaluations") or (),
                                                                     rec.get("prior_evaluated_at") or (), strict=True)]
        for e, t in given:
            if e is None or not in_m(t):
                continue
            if e not in EVALUATIONS:
                raise BadInput(f"unknown evaluation {e!r}", field="evaluation")
            eval_c += 1
            evals[e] += 1
            sat_num += 1 if e == "满意" else cfg.basic_weight if e == "基本满意" else 0
        closed = _t(rec, "closed_at")
        if in_m(closed):
            closed_c += 1
            r, o = rec.get("returned_count") or 0, rec.get("reopened_count") or 0
            clean += r == 0 and o == 0
            reopened += o > 0
            if rec.get("first_petition"):
                first_c += 1
                first_clean += r == 0 and o == 0
        if replied is not None:
            wend = _t(rec, "eval_due_at") or replied + window
            if in_m(wend) and wend <= cut and (ev is None or evaluated is None or evaluated >= cut):
                overdue_unevaluated += 1

    response = Rate(Fraction(signed_ok), sign_c)
    resolution = Rate(Fraction(resolved), due_c)
    satisfaction = Rate(sat_num, eval_c + overdue_unevaluated)
    composite = composite_score((response.value, resolution.value, satisfaction.value), cfg)
    counts = {"dispatched_due": sign_c, "signed_on_time": signed_ok, "reply_due": due_c,
              "resolved": resolved, "replied_on_time": on_time, "evaluated": eval_c,
              **{f"evaluation_{k}": v for k, v in evals.items()}, "closed": closed_c,
              "closed_clean": clean, "reopened": reopened, "returned": ret, "forwarded": fwd,
              "first_closed": first_c, "first_clean": first_clean}
    return UnitRates(
        unit=unit, response=response, resolution=resolution, satisfaction=satisfaction,
        on_time=Rate(Fraction(on_time), due_c), return_rate=Rate(Fraction(ret), sign_c),
        reopen_rate=Rate(Fraction(reopened), closed_c), one_time=Rate(Fraction(first_clean), first_c),
        forwarding=Rate(Fraction(fwd), sign_c), overdue_unevaluated=overdue_unevaluated,
        composite=composite, counts=counts,
        participating_satisfaction=Rate(Fraction(evals["满意"] + evals["基本满意"]), eval_c))


def composite_score(values, config: RateConfig | None = None) -> Fraction | None:
    """Weighted mean of (响应率, 解决率, 满意率) as a fraction of 1; None if any (or all) missing."""
    cfg = config or RateConfig()
    pairs = [(w, v) for w, v in zip(cfg.weights, values, strict=True)]
    avail = [(w, v) for w, v in pairs if v is not None]
    if not avail or (len(avail) < len(pairs) and not cfg.renormalize):
        return None
    total = sum(w for w, _ in avail)
    if total == 0:
        return None
    return sum((Fraction(w) * v for w, v in avail), Fraction(0)) / total


def monthly_rates(records, year: int, month: int, unit_field: str = "unit",
                  config: RateConfig | None = None, *, as_of: dt.datetime | None = None
                  ) -> dict[object, UnitRates]:
    """Rates per unit (grouped by record[unit_field]) for a month."""
    groups: dict[object, list[dict]] = defaultdict(list)
    for rec in records:
        groups[rec.get(unit_field)].append(rec)
    return {u: unit_rates(recs, year, month, config, unit=u, as_of=as_of) for u, recs in groups.items()}


def rank(units, by: str = "composite") -> list[tuple[int | None, UnitRates]]:
    """Competition ranking (1, 2, 2, 4) by a rate, best first; units without a value last, rank None."""
    items = list(units.values()) if isinstance(units, dict) else list(units)
    scored = sorted((u for u in items if u.rate(by) is not None), key=lambda u: (-u.rate(by), str(u.unit)))
    out: list[tuple[int | None, UnitRates]] = []
    prev, prev_rank = None, 0
    for i, u in enumerate(scored, start=1):
        v = u.rate(by)
        r = prev_rank if v == prev else i
        out.append((r, u))
        prev, prev_rank = v, r
    out.extend((None, u) for u in sorted((u for u in items if u.rate(by) is None), key=lambda u: str(u.unit)))
    return out


def status_shares(records, field_name: str = "status") -> dict[str, tuple[int, Rate]]:
    """Count and share of each value of a field (e.g. 办结 / 有化解方案 / 正在办理) over all records."""
    counts: dict[str, int] = defaultdict(int)
    for rec in records:
        counts[rec.get(field_name)] += 1
    total = sum(counts.values())
    return {k: (n, Rate(Fraction(n), total)) for k, n in counts.items()}


# -- 四色码 ---------------------------------------------------------------------------------------

COLOURS = {"green": "绿", "yellow": "黄", "orange": "橙", "red": "红"}
_ORDER = ("green", "yellow", "orange", "red")


@dataclass(frozen=True)
class Threshold:
    """Bounds of one metric: at or beyond `green` is green, then yellow, orange, else red."""

    metric: str
    green: Fraction
    yellow: Fraction
    orange: Fraction
    higher_is_better: bool = True


DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("response", Fraction(95, 100), Fraction(90, 100), Fraction(80, 100)),
    Threshold("resolution", Fraction(90, 100), Fraction(80, 100), Fraction(70, 100)),
    Threshold("satisfaction", Fraction(90, 100), Fraction(85, 100), Fraction(80, 100)),
    Threshold("reopen_rate", Fraction(5, 100), Fraction(10, 100), Fraction(20, 100), higher_is_better=False),
)


# What each colour sets in motion (seed 004, 嘉兴 "四色码"工作法): "凡是化解清零任务完成好的赋予'绿码',予以表扬;
# …办理质量有瑕疵成效慢的赋予'黄码',由信访局联合领导督导组推动; …回流多动作慢的赋予'橙码',由信访局联合督导组专项
# 督查督办; …排名末位的赋予'红码',在推进会表态发言,由市领导直接约谈。"
CONSEQUENCES = {"green": "予以表扬", "yellow": "信访局联合领导督导组推动",
                "orange": "信访局联合督导组专项督查督办", "red": "推进会表态发言，市领导直接约谈"}


@dataclass(frozen=True)
class Colour:
    """A 四色码 with the reasons and the consequence it sets in motion, in Chinese."""

    code: str | None  # green/yellow/orange/red, None when there is no data
    label: str
    reasons: tuple[str, ...]

    @property
    def consequence(self) -> str | None:
        """What the colour sets in motion (seed 004)."""
        return CONSEQUENCES.get(self.code) if self.code else None

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {"code": self.code, "label": self.label, "reasons": list(self.reasons),
                "consequence": self.consequence}


def _level(v: Fraction, t: Threshold) -> str:
    ok = (lambda bound: v >= bound) if t.higher_is_better else (lambda bound: v <= bound)
    for code, bound in (("green", t.green), ("yellow", t.yellow), ("orange", t.orange)):
        if ok(bound):
            return code
    return "red"


def four_colour(unit_rates: UnitRates, thresholds=DEFAULT_THRESHOLDS, *, last_place: bool = False,
                digits: int = 1, red_by_threshold: bool = False) -> Colour:
    """四色码 of a unit: the worst colour over the thresholds, with reasons.

    As seed 004 defines it, red is the last place in the ranking (排名末位) and nothing else: a rate below
    every bound is orange (slow, many returns) unless the city's policy sets `red_by_threshold`."""
    worst = None
    reasons: list[str] = []
    for t in thresholds:
        v = unit_rates.rate(t.metric)
        if v is None:
            continue
        lvl = _level(v, t)
        if lvl == "red" and not red_by_threshold:
            lvl = "orange"
        worst = lvl if worst is None else max(worst, lvl, key=_ORDER.index)
        if lvl != "green":
            label = RATE_LABELS.get(t.metric, t.metric)
            word = "低于" if t.higher_is_better else "高于"
            reasons.append(f"{label} {fmt_pct(v, digits)} {word} {_bound(t.green)}")
    if last_place:
        worst = "red"
        reasons.append("排名末位")
    if worst is None:
        return Colour(None, "无数据", ("本月无可考核数据",))
    if worst == "green" and not reasons:
        reasons.append("各项指标达标")
    return Colour(worst, COLOURS[worst], tuple(reasons))


def _bound(f: Fraction) -> str:
    v = Fraction(f) * 100
    return f"{v.numerator}%" if v.denominator == 1 else fmt_pct(f, 1)
