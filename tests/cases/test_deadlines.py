"""Deadline profiles, explanations, extensions and 一天一催，三天一督 reminders."""

import datetime as dt

import pytest

from cases.calendar import TZ, WorkCalendar, end_of_day
from cases.deadlines import (
    PROFILES,
    DeadlinePolicy,
    ReminderPolicy,
    compute_deadlines,
    extend,
    reminders_due,
    select_profile,
)
from gis.errors import BadInput, Unprocessable

D = dt.date


def at(y, m, d, h=10, mi=0):
    return dt.datetime(y, m, d, h, mi, tzinfo=TZ)


@pytest.fixture
def cal():
    return WorkCalendar()


@pytest.mark.parametrize(("channel", "kind", "emergency", "profile"), [
    ("hotline_12345", "求决", False, "simple"),
    ("12345热线", "投诉", False, "simple"),
    ("grid_report", "求助", False, "simple"),
    ("mailbox", "建议", False, "mailbox"),
    ("书记信箱", "求决", False, "mailbox"),
    ("online_petition", "求决", False, "simple"),  # seed 002: 简易程序 unless 疑难复杂
    ("来信", "求决", False, "simple"),
    ("visit", "投诉", False, "simple"),
    ("leader_reception", "求决", False, "petition"),
    ("letter", "求决", True, "emergency"),
    ("hotline_12345", "求助", True, "emergency"),
])
def test_profile_selection(channel, kind, emergency, profile):
    assert select_profile(channel, kind, emergency).name == profile


def test_unknown_channel():
    with pytest.raises(BadInput):
        select_profile("pigeon", "求决", False)


def test_simple_procedure_over_national_day(cal):
    d = compute_deadlines(at(2026, 9, 30), "hotline_12345", "求决", False, cal, dispatched_at=at(2026, 9, 30, 11))
    assert d.profile == "simple"
    assert d.due("sign") == end_of_day(D(2026, 10, 8))
    assert d.due("reply") == end_of_day(D(2026, 10, 13))  # 8, 9, 10(调休), 12, 13
    reply = d.milestones["reply"]
    assert [x.date for x in reply.makeup] == [D(2026, 10, 10)]
    assert {x.name for x in reply.skipped if x.kind == "holiday"} == {"国庆节"}
    assert not reply.provisional
    text = reply.explanation
    assert "5 个工作日" in text and "国庆节" in text and "调休上班日 10-10" in text and "2026-10-13" in text
    assert d.as_fields() == {"sign_due_at": d.due("sign"), "reply_due_at": d.due("reply")}
    assert d.to_dict()["milestones"]["reply"]["explanation"] == text


def test_simple_procedure_before_dispatch_is_provisional(cal):
    d = compute_deadlines(at(2026, 3, 9), "hotline_12345", "求决", False, cal)
    assert d.milestones["sign"].provisional and "预估" in d.milestones["sign"].explanation
    assert d.due("sign") == end_of_day(D(2026, 3, 10))


def test_mailbox_ten_calendar_days_rolled_past_national_day(cal):
    # Seed 003 counts "10天" as written; a city that rolls past rest days says so (mailbox_roll).
    d = compute_deadlines(at(2026, 9, 22), "mailbox", "求决", False, cal, policy=DeadlinePolicy(mailbox_roll=True))
    assert compute_deadlines(at(2026, 9, 22), "mailbox", "求决", False, cal).due("reply") == end_of_day(D(2026, 10, 2))
    # Day 10 is 2 Oct, a holiday: the period ends on the first working day after the break.
    assert d.due("reply") == end_of_day(D(2026, 10, 8))
    m = d.milestones["reply"]
    assert [x.date for x in m.rolled] == [D(2026, 10, i) for i in range(2, 8)]
    assert "顺延" in m.explanation and "自然日" in m.explanation
    plain = compute_deadlines(at(2026, 3, 2), "mailbox", "求决", False, cal)
    assert plain.due("reply") == end_of_day(D(2026, 3, 12))


def test_petition_accept_15_handle_60_over_spring_festival(cal):
    d = compute_deadlines(at(2026, 2, 10), "letter", "求决", False, cal, accepted_at=at(2026, 2, 12),
                          complex_case=True)
    assert d.due("accept") == end_of_day(D(2026, 2, 25))
    assert d.due("handle") == end_of_day(D(2026, 4, 13))  # 60 days from 12 Feb = 13 Apr (Monday)
    assert {x.name for x in d.milestones["accept"].holidays} == {"春节"}


def test_emergency_hours(cal):
    d = compute_deadlines(at(2026, 10, 2, 23, 30), "hotline_12345", "求助", True, cal)
    assert d.due("sign") == at(2026, 10, 3, 0, 30)
    assert d.due("handle") == at(2026, 10, 3, 2, 30)
    assert "小时" in d.milestones["handle"].explanation


def test_every_profile_has_a_source():
    for p in PROFILES.values():
        assert p.source and p.rules


def test_extension_petition_max_30(cal):
    d = compute_deadlines(at(2026, 2, 10), "letter", "求决", False, cal, accepted_at=at(2026, 2, 12),
                          complex_case=True)
    e = extend(d, 20, cal)
    # 80 days from 12 Feb is 3 May, inside 劳动节 (1-5 May): rolled to 6 May.
    assert e.due("handle") == end_of_day(D(2026, 5, 6))
    assert {x.name for x in e.milestones["handle"].rolled} == {"劳动节"}
    assert e.extensions == (20,) and e.milestones["handle"].extended_by == 20
    assert "已延期 20" in e.milestones["handle"].explanation
    e2 = extend(e, 10, cal)
    assert e2.due("handle") == end_of_day(D(2026, 5, 13))
    with pytest.raises(Unprocessable):
        extend(e2, 1, cal)
    assert d.due("handle") == end_of_day(D(2026, 4, 13))  # the original is untouched


def test_extension_simple_in_working_days(cal):
    d = compute_deadlines(at(2026, 9, 30), "hotline_12345", "求决", False, cal, dispatched_at=at(2026, 9, 30))
    e = extend(d, 2, cal)
    assert e.due("reply") == end_of_day(D(2026, 10, 15))
    assert e.due("sign") == d.due("sign")


def test_emergency_cannot_be_extended_and_days_must_be_positive(cal):
    d = compute_deadlines(at(2026, 10, 2), "hotline_12345", "求助", True, cal)
    with pytest.raises(Unprocessable):
        extend(d, 1, cal)
    with pytest.raises(BadInput):
        extend(compute_deadlines(at(2026, 10, 2), "mailbox", "求决", False, cal), 0, cal)


def test_uncovered_year_deadline_carries_the_warning():
    c = WorkCalendar()
    with pytest.warns(UserWarning):
        d = compute_deadlines(at(2026, 12, 28), "hotline_12345", "求决", False, c)
    assert d.warnings and "2027" in d.warnings[0]


# -- reminders ----------------------------------------------------------------------------------

CASE = {"id": 7, "case_no": "LY-0007", "status": "handling",
        "sign_due_at": end_of_day(D(2026, 3, 10)), "signed_at": at(2026, 3, 10),
        "reply_due_at": end_of_day(D(2026, 3, 16)), "replied_at": None}


def _kinds(notices):
    return [(n.kind, n.milestone, n.overdue_days) for n in notices]


def test_no_reminder_far_from_due():
    assert reminders_due(CASE, at(2026, 3, 12)) == []


def test_reminder_when_nearing_due():
    ns = reminders_due(CASE, at(2026, 3, 16, 9))
    assert _kinds(ns) == [("remind", "reply", 0)] and "临近" in ns[0].message


def test_daily_reminder_and_supervision_every_third_overdue_day():
    """Not dispatched (no 交办 date): one 催办 a day while overdue, a 督办 per 3 FULL overdue days."""
    schedule = {}
    for day in range(17, 27):
        ns = reminders_due(CASE, at(2026, 3, day, 9))
        schedule[day] = _kinds(ns)
    assert schedule[17] == [("remind", "reply", 0)]
    assert schedule[18] == [("remind", "reply", 1)]
    assert schedule[19] == [("remind", "reply", 2)]  # 2 days 9 hours overdue: not yet 3 days
    assert schedule[20] == [("remind", "reply", 3), ("supervise", "reply", 3)]
    supervise_keys = set()
    for day in range(17, 27):
        for n in reminders_due(CASE, at(2026, 3, day, 9)):
            if n.kind == "supervise":
                supervise_keys.add(n.key)
    assert supervise_keys == {"LY-0007:reply:supervise:1", "LY-0007:reply:supervise:2",
                              "LY-0007:reply:supervise:3"}
    remind_keys = {n.key for day in range(17, 27) for n in reminders_due(CASE, at(2026, 3, day, 9))
                   if n.kind == "remind"}
    assert len(remind_keys) == 10  # one a day


def test_reminders_stop_when_done_or_terminal():
    assert reminders_due({**CASE, "replied_at": at(2026, 3, 18)}, at(2026, 3, 20)) == []
    assert reminders_due({**CASE, "status": "closed"}, at(2026, 3, 20)) == []


def test_policy_is_configurable():
    ns = reminders_due(CASE, at(2026, 3, 15, 9), ReminderPolicy(nearing=dt.timedelta(days=2)))
    assert _kinds(ns) == [("remind", "reply", 0)]
    ns = reminders_due(CASE, at(2026, 3, 19, 9), ReminderPolicy(supervise_every=2))
    assert ("supervise", "reply", 2) in _kinds(ns)
