"""Deadline profiles per channel and kind, due dates that explain themselves, extensions and reminders.

Profiles are plain data (PROFILES, SELECTION_RULES) so a city can load its own from a table. Units:
- "workday": n working days on the Chinese calendar, counted from the day after the start (see
  cases/calendar.py), due at the end (23:59:59) of the nth working day;
- "day": n calendar days from the day after the start, due 23:59:59 of day n; a last day that is a
  rest day rolls to the next working day (民法典 第二百零一、二百零三条);
- "hour": calendar hours (emergencies).
Sources are the seeds in /work/shared/seeds and the 信访工作条例; see docs/cases.md.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

from cases.calendar import DayInfo, WorkCalendar, to_local
from gis.errors import BadInput, Unprocessable

MILESTONE_LABELS = {"accept": "受理告知", "sign": "签收", "reply": "答复", "handle": "办结"}
# case_record-style field names of each milestone: (due field, done field)
MILESTONE_FIELDS = {
    "accept": ("accept_due_at", "accepted_at"),
    "sign": ("sign_due_at", "signed_at"),
    "reply": ("reply_due_at", "replied_at"),
    "handle": ("handle_due_at", "closed_at"),
}
UNIT_LABELS = {"workday": "个工作日", "day": "日（自然日）", "hour": "小时"}

CHANNELS: dict[str, str] = {
    "hotline_12345": "12345热线",
    "online_petition": "网上信访",
    "letter": "来信",
    "visit": "来访",
    "leader_reception": "领导接访",
    "mailbox": "书记信箱",
    "mini_program": "小程序",
    "grid_report": "网格员上报",
    "suggestion_box": "意见箱",
}
_CHANNEL_BY_LABEL = {v: k for k, v in CHANNELS.items()}
KINDS = ("求决", "投诉", "举报", "建议", "咨询", "求助")


@dataclass(frozen=True)
class Rule:
    """One milestone of a profile: `amount` units counted from `base` (received/accepted/dispatched)."""

    milestone: str
    amount: int
    unit: str
    base: str = "received"
    roll: bool = True  # "day" unit: a last day that is a rest day rolls to the next working day


@dataclass(frozen=True)
class Profile:
    """A named set of milestone rules with its source and extension policy."""

    name: str
    label: str
    rules: tuple[Rule, ...]
    source: str
    extend_milestone: str | None = None  # which milestone an approved extension moves
    max_extension: int | None = None  # total extension allowed, in that milestone's unit


PROFILES: dict[str, Profile] = {
    "simple": Profile(
        "simple", "简易程序",
        (Rule("sign", 1, "workday", "dispatched"), Rule("reply", 5, "workday", "dispatched")),
        "大兴区信访办 2021 法治政府建设报告：简易程序，责任单位1个工作日内签收、5个工作日内答复群众",
        extend_milestone="reply"),
    "mailbox": Profile(
        "mailbox", "书记信箱",
        (Rule("reply", 10, "day", "received", roll=False),),
        "《书记信箱来信办理规则》：办理时限为10天，无论到期问题有没有解决，都必须给来信人明确答复",
        extend_milestone="reply"),
    "petition": Profile(
        "petition", "信访事项",
        (Rule("accept", 15, "day", "received"), Rule("handle", 60, "day", "accepted")),
        "《信访工作条例》：收到之日起15日内书面告知是否受理；受理之日起60日内办结，经批准可延长不超过30日",
        extend_milestone="handle", max_extension=30),
    "emergency": Profile(
        "emergency", "紧急事项",
        (Rule("sign", 1, "hour", "received"), Rule("handle", 3, "hour", "received")),
        "嘉兴12345：急难愁盼事项1小时指令到达基层处置一线，3小时处置完毕报告反馈",
        extend_milestone=None),
}

PETITION_CHANNELS = frozenset({"online_petition", "letter", "visit", "leader_reception"})
BACKLOG_DAYS = 90   # a 信访 case still open this long after receipt is a 积案 (the backlog 化解清零 works down)


@dataclass(frozen=True)
class DeadlinePolicy:
    """The city's deadline and supervision rules (app_setting 'deadline_policy'); defaults are the seeds'.

    - simple_petition_channels: 信访 channels handled by 简易程序 unless flagged 疑难复杂 (seed 002:
      "除疑难复杂的信访事项外，实行信访事项简易程序办理，责任单位1个工作日内签收、5个工作日内答复群众");
    - mailbox_days / mailbox_roll: 书记信箱 "办理时限为10天" (seed 003), counted as written (no roll past
      rest days unless the city says so);
    - emergency_met_by: "reply" — the 3-hour limit is met by the handler's 处置反馈 (seed 004: "3小时处置完毕
      报告反馈"), "close" would wait for the citizen;
    - remind_every / supervise_every: 一天一催、三天一督 counted from the day of 交办 (seed 003);
    - escalate_overdue_to: a signed case whose reply is overdue goes up one level at a time — village →
      township → county — and stops at this level ("" = never by itself): 村为主、乡镇兜底、县域止访 (seed 000).
    """

    simple_petition_channels: frozenset[str] = frozenset({"online_petition", "letter", "visit"})
    mailbox_days: int = 10
    mailbox_roll: bool = False
    emergency_met_by: str = "reply"
    remind_every: int = 1
    supervise_every: int = 3
    escalate_overdue_to: str = "county"


DEFAULT_DEADLINE_POLICY = DeadlinePolicy()


def selection_rules(policy: DeadlinePolicy = DEFAULT_DEADLINE_POLICY) -> tuple:
    """First matching rule wins: (channels or None = any, kinds, emergency, 疑难复杂 flag — None = any, profile)."""
    return (
        (None, None, True, None, "emergency"),
        (frozenset({"mailbox"}), None, None, None, "mailbox"),
        (PETITION_CHANNELS, None, None, True, "petition"),
        (frozenset(policy.simple_petition_channels), None, None, False, "simple"),
        (PETITION_CHANNELS, None, None, None, "petition"),
        (None, None, None, None, "simple"),
    )


def profiles_for(policy: DeadlinePolicy = DEFAULT_DEADLINE_POLICY) -> dict[str, Profile]:
    """PROFILES with the city's settings applied (书记信箱 days and rolling)."""
    mb = PROFILES["mailbox"]
    if policy.mailbox_days == 10 and not policy.mailbox_roll:
        return PROFILES
    return {**PROFILES, "mailbox": replace(mb, rules=(Rule("reply", policy.mailbox_days, "day", "received",
                                                           roll=policy.mailbox_roll),))}


SELECTION_RULES = selection_rules()


def channel_code(channel: str) -> str:
    """Channel code from a code or its Chinese label (书记信箱 → mailbox)."""
    if channel in CHANNELS:
        return channel
    if channel in _CHANNEL_BY_LABEL:
        return _CHANNEL_BY_LABEL[channel]
    raise BadInput(f"unknown channel {channel!r}", field="channel", details={"channels": sorted(CHANNELS)})


def select_profile(channel: str, kind: str | None, emergency: bool, rules=SELECTION_RULES,
                   profiles: dict[str, Profile] | None = None, *, complex_case: bool = False) -> Profile:
    """The profile for (channel, kind, emergency, 疑难复杂), by the first matching selection rule."""
    profiles = PROFILES if profiles is None else profiles
    code = channel_code(channel)
    for channels, kinds, emerg, cplx, name in rules:
        if cplx is not None and bool(complex_case) != cplx:
            continue
        if channels is not None and code not in channels:
            continue
        if kinds is not None and kind not in kinds:
            continue
        if emerg is not None and bool(emergency) != emerg:
            continue
        return profiles[name]
    raise Unprocessable(f"no deadline profile for channel {channel!r}", field="channel")


@dataclass(frozen=True)
class Milestone:
    """One due instant with everything needed to explain it."""

    name: str
    label: str
    due_at: dt.datetime
    amount: int
    unit: str
    base: str
    start: dt.datetime
    provisional: bool  # base event not happened yet; counted from receipt, recomputed later
    skipped: tuple[DayInfo, ...] = ()  # weekends/holidays not counted (workday units)
    makeup: tuple[DayInfo, ...] = ()  # 调休 make-up workdays that were counted
    holidays: tuple[DayInfo, ...] = ()  # statutory holidays inside a calendar-day period
    rolled: tuple[DayInfo, ...] = ()  # rest days the last day was rolled past
    extended_by: int = 0

    @property
    def explanation(self) -> str:
        """Chinese one-paragraph explanation of the due instant."""
        base = {"received": "接诉", "accepted": "受理", "dispatched": "交办"}[self.base]
        counted_from = "接诉" if self.provisional else base
        parts = [f"{self.label}：自{counted_from}时间 {self.start:%Y-%m-%d %H:%M} 起"]
        if self.unit == "hour":
            parts.append(f" {self.amount} 小时（自然小时）")
        else:
            parts.append(f"，次日起算 {self.amount} {UNIT_LABELS[self.unit]}")
        if self.extended_by:
            parts.append(f"，已延期 {self.extended_by} {UNIT_LABELS[self.unit]}")
        parts.append(f"，截止 {self.due_at:%Y-%m-%d %H:%M}")
        if self.skipped:
            parts.append("；跳过 " + _days_text(self.skipped))
        if self.makeup:
            parts.append("；计入调休上班日 " + _days_text(self.makeup))
        if self.holidays:
            parts.append("；期间含法定节假日 " + _days_text(self.holidays))
        if self.rolled:
            parts.append("；末日为休息日，顺延过 " + _days_text(self.rolled))
        if self.provisional:
            parts.append(f"（尚未{base}，按接诉时间预估，{base}后重算）")
        return "".join(parts)

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {
            "name": self.name, "label": self.label, "due_at": self.due_at.isoformat(),
            "amount": self.amount, "unit": self.unit, "base": self.base,
            "start": self.start.isoformat(), "provisional": self.provisional,
            "skipped": [d.to_dict() for d in self.skipped],
            "makeup": [d.to_dict() for d in self.makeup],
            "holidays": [d.to_dict() for d in self.holidays],
            "rolled": [d.to_dict() for d in self.rolled],
            "extended_by": self.extended_by, "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Deadlines:
    """All milestones of one case under one profile."""

    profile: str
    profile_label: str
    source: str
    received_at: dt.datetime
    milestones: dict[str, Milestone]
    extensions: tuple[int, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def due(self, milestone: str) -> dt.datetime | None:
        """Due instant of a milestone, None when the profile has none."""
        m = self.milestones.get(milestone)
        return m.due_at if m else None

    def as_fields(self) -> dict[str, dt.datetime]:
        """case_record-style fields: sign_due_at, reply_due_at, accept_due_at, handle_due_at."""
        return {MILESTONE_FIELDS[k][0]: m.due_at for k, m in self.milestones.items()}

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {
            "profile": self.profile, "profile_label": self.profile_label, "source": self.source,
            "received_at": self.received_at.isoformat(),
            "milestones": {k: m.to_dict() for k, m in self.milestones.items()},
            "extensions": list(self.extensions), "warnings": list(self.warnings),
        }


def _days_text(days) -> str:
    return "、".join(f"{d.date:%m-%d}" + (f"({d.name})" if d.name else "(周末)" if d.kind == "weekend"
                                        else "") for d in days)


def _count(rule: Rule, start: dt.datetime, cal: WorkCalendar, extended_by: int = 0, *,
           provisional: bool, name_label: str) -> Milestone:
    n = rule.amount + extended_by
    kw = dict(name=rule.milestone, label=name_label, amount=rule.amount, unit=rule.unit, base=rule.base,
              start=start, provisional=provisional, extended_by=extended_by)
    if rule.unit == "hour":
        return Milestone(due_at=cal.add_hours(start, n), **kw)
    if rule.unit == "workday":
        last, met = cal.workday_span(start, n)
        skipped = tuple(d for d in met if not d.workday)
        makeup = tuple(d for d in met if d.kind == "makeup")
        return Milestone(due_at=cal.add_workdays(start, n), skipped=skipped, makeup=makeup, **kw)
    if rule.unit == "day":
        due, rolled = cal.add_days(start, n, roll_to_workday=rule.roll)
        holidays = tuple(d for d in cal.holidays_skipped(start, due) if d not in rolled)
        return Milestone(due_at=due, holidays=holidays, rolled=tuple(rolled), **kw)
    raise Unprocessable(f"unknown deadline unit {rule.unit!r}", field="unit")


def compute_deadlines(received_at: dt.datetime, channel: str, kind: str | None, emergency: bool,
                      calendar: WorkCalendar | None = None, *, accepted_at: dt.datetime | None = None,
                      dispatched_at: dt.datetime | None = None, profile: Profile | None = None,
                      complex_case: bool = False, policy: DeadlinePolicy | None = None) -> Deadlines:
    """Due instants of every milestone of the selected profile, each with its explanation."""
    cal = calendar or WorkCalendar()
    policy = policy or DEFAULT_DEADLINE_POLICY
    prof = profile or select_profile(channel, kind, emergency, selection_rules(policy), profiles_for(policy),
                                     complex_case=complex_case)
    received = to_local(received_at)
    bases = {"received": received,
             "accepted": to_local(accepted_at) if accepted_at else None,
             "dispatched": to_local(dispatched_at) if dispatched_at else None}
    out = {}
    for rule in prof.rules:
        start = bases.get(rule.base)
        provisional = start is None
        out[rule.milestone] = _count(rule, start or received, cal, provisional=provisional,
                                     name_label=MILESTONE_LABELS[rule.milestone])
    last = max([received, *(m.due_at for m in out.values())])
    return Deadlines(prof.name, prof.label, prof.source, received, out,
                     warnings=tuple(cal.warnings_for(received.date(), last.date())))


def extend(deadlines: Deadlines, days: int, calendar: WorkCalendar | None = None, *,
           milestone: str | None = None, policy: DeadlinePolicy | None = None) -> Deadlines:
    """New Deadlines with an approved extension of `days` (in the milestone's unit) applied."""
    if not isinstance(days, int) or days < 1:
        raise BadInput("extension must be a positive whole number of days", field="days")
    prof = profiles_for(policy or DEFAULT_DEADLINE_POLICY).get(deadlines.profile)
    target = milestone or (prof.extend_milestone if prof else None)
    if target is None or target not in deadlines.milestones:
        raise Unprocessable(f"profile {deadlines.profile} ({deadlines.profile_label}) allows no extension",
                            field="days")
    m = deadlines.milestones[target]
    if m.unit == "hour":
        raise Unprocessable("hour-based (emergency) deadlines cannot be extended", field="days")
    total = sum(deadlines.extensions) + days
    if prof and prof.max_extension is not None and total > prof.max_extension:
        raise Unprocessable(
            f"extension of {total} exceeds the maximum {prof.max_extension} for {prof.label}", field="days",
            details={"requested": days, "already": sum(deadlines.extensions), "max": prof.max_extension})
    cal = calendar or WorkCalendar()
    rule = next((r for r in prof.rules if r.milestone == m.name), None) if prof else None
    rule = Rule(m.name, m.amount, m.unit, m.base, roll=rule.roll if rule else True)
    new_m = _count(rule, m.start, cal, m.extended_by + days, provisional=m.provisional, name_label=m.label)
    return replace(deadlines, milestones={**deadlines.milestones, target: new_m},
                   extensions=(*deadlines.extensions, days))


# -- reminders: 一天一催，三天一督 ----------------------------------------------------------------------

@dataclass(frozen=True)
class ReminderPolicy:
    """一天一催、三天一督 (seed 003: "从交办当日起…'一天一催，三天一督'").

    From the day of 交办 (day 0) until the reply: a 催办 every `remind_every` days (day 1, 2, …) and a 督办 on
    days `supervise_every`, 2×, 3× … (3, 6, 9 …). Before 交办 or after the reply (a 信访 case's 受理告知 or
    办结 milestones): a 催办 a day within `nearing` of a due instant or past it, a 督办 once per
    `supervise_every` full days overdue. `emergency_met_by="reply"`: an emergency's 办结 milestone is met by
    the handler's 处置反馈 (the reply).
    """

    nearing: dt.timedelta = dt.timedelta(days=1)
    supervise_every: int = 3
    remind_every: int = 1
    emergency_met_by: str = "reply"

    @classmethod
    def from_policy(cls, policy: DeadlinePolicy) -> ReminderPolicy:
        return cls(supervise_every=policy.supervise_every, remind_every=policy.remind_every,
                   emergency_met_by=policy.emergency_met_by)


@dataclass(frozen=True)
class Notice:
    """A reminder (催办) or supervision (督办) that is due; `key` makes sending idempotent."""

    kind: str  # "remind" | "supervise"
    label: str
    case_id: object
    milestone: str
    due_at: dt.datetime | None
    overdue_days: int
    key: str
    message: str

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {"kind": self.kind, "label": self.label, "case_id": self.case_id,
                "milestone": self.milestone, "due_at": self.due_at.isoformat() if self.due_at else None,
                "overdue_days": self.overdue_days, "key": self.key, "message": self.message}


_TERMINAL = frozenset({"closed", "rejected", "merged"})


def done_field(case: dict, milestone: str, policy: ReminderPolicy | None = None) -> str:
    """The field that meets a milestone: an emergency's 办结 is met by the handler's 处置反馈 (reply) when the
    city says so (the default, seed 004), every other milestone by its own stamp."""
    policy = policy or ReminderPolicy()
    if (milestone == "handle" and case.get("deadline_profile") == "emergency"
            and policy.emergency_met_by == "reply"):
        return "replied_at"
    return MILESTONE_FIELDS[milestone][1]


def open_milestones(case: dict, policy: ReminderPolicy | None = None) -> list[tuple[str, dt.datetime]]:
    """(milestone, due) of every milestone with a due instant that is not met yet, earliest first."""
    out = []
    for name, (due_field, _done) in MILESTONE_FIELDS.items():
        due = case.get(due_field)
        if due is not None and case.get(done_field(case, name, policy)) is None:
            out.append((name, to_local(due)))
    return sorted(out, key=lambda x: x[1])


def overdue_text(due: dt.datetime, now: dt.datetime) -> str:
    """How overdue, truthfully: "已超期 2 天 0 小时", "已超期 5 小时" (whole hours, rounded down)."""
    hours = int((now - due) // dt.timedelta(hours=1))
    days, rest = divmod(hours, 24)
    return f"已超期 {days} 天 {rest} 小时" if days else f"已超期 {rest} 小时"


def _status_text(name: str, due: dt.datetime, now: dt.datetime) -> str:
    label = MILESTONE_LABELS[name]
    if now > due:
        return f"{label}期限 {due:%Y-%m-%d %H:%M} {overdue_text(due, now)}"
    hours = (due - now) / dt.timedelta(hours=1)
    return f"{label}期限 {due:%Y-%m-%d %H:%M}，剩余 {hours:.1f} 小时"


def reminders_due(case: dict, now: dt.datetime, policy: ReminderPolicy | None = None) -> list[Notice]:
    """Notices due now for one case: at most one 催办 a day, 督办 every third day from 交办 (see ReminderPolicy).

    Keys are stable (催办: per case and local date; 督办: per 交办 date and block of N days, or per milestone and
    block of N overdue days) so an hourly worker can deduplicate on them and never miss a supervision.
    """
    policy = policy or ReminderPolicy()
    if case.get("status") in _TERMINAL:
        return []
    now = to_local(now)
    case_id = case.get("case_no") or case.get("id")
    pending = open_milestones(case, policy)
    dispatched = case.get("dispatched_at")
    out: list[Notice] = []
    if dispatched is not None and case.get("replied_at") is None and case.get("closed_at") is None:
        day = (now.date() - to_local(dispatched).date()).days
        name, due = pending[0] if pending else ("reply", None)
        overdue = math.floor((now - due) / dt.timedelta(days=1)) if due and now > due else 0
        state = _status_text(name, due, now) if due else "尚未答复"
        if day >= 1 and day % policy.remind_every == 0:
            out.append(Notice("remind", "催办", case_id, name, due, overdue,
                              f"{case_id}:remind:{now.date().isoformat()}",
                              f"【催办】{case_id} 交办第 {day} 天，{state}"))
        block = day // policy.supervise_every
        if block >= 1:
            out.append(Notice("supervise", "督办", case_id, name, due, overdue,
                              f"{case_id}:supervise:{to_local(dispatched):%Y%m%d}:{block}",
                              f"【督办】{case_id} 交办第 {block * policy.supervise_every} 天未答复，{state}，"
                              f"第 {block} 次督办"))
        return out
    reminded = False
    for name, due in pending:
        label = MILESTONE_LABELS[name]
        if now > due:
            overdue = math.floor((now - due) / dt.timedelta(days=1))
            if not reminded:
                out.append(Notice("remind", "催办", case_id, name, due, overdue,
                                  f"{case_id}:remind:{now.date().isoformat()}",
                                  f"【催办】{case_id} {_status_text(name, due, now)}"))
                reminded = True
            block = overdue // policy.supervise_every
            if block >= 1:
                out.append(Notice("supervise", "督办", case_id, name, due, overdue,
                                  f"{case_id}:{name}:supervise:{block}",
                                  f"【督办】{case_id} {label}{overdue_text(due, now)}，第 {block} 次督办"))
        elif due - now <= policy.nearing and not reminded:
            hours = (due - now) / dt.timedelta(hours=1)
            out.append(Notice("remind", "催办", case_id, name, due, 0,
                              f"{case_id}:remind:{now.date().isoformat()}",
                              f"【催办】{case_id} {label}期限 {due:%Y-%m-%d %H:%M} 临近，剩余 {hours:.1f} 小时"))
            reminded = True
    return out
