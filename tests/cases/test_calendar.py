"""Working days on the Chinese calendar: National Day and Spring Festival 2026, and an uncovered year."""

import datetime as dt
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases.calendar import TZ, CalendarFallbackWarning, WorkCalendar, end_of_day
from gis.errors import BadInput

D = dt.date


@pytest.fixture
def cal():
    return WorkCalendar()


def test_national_day_2026_and_makeup_days(cal):
    for d in range(1, 8):
        info = cal.day_info(D(2026, 10, d))
        assert not info.workday and info.kind == "holiday" and info.name == "国庆节"
    # 调休: Sunday 20 Sep and Saturday 10 Oct 2026 are workdays.
    for day in (D(2026, 9, 20), D(2026, 10, 10)):
        info = cal.day_info(day)
        assert info.workday and info.kind == "makeup" and info.name == "国庆节"
    assert cal.is_workday(D(2026, 10, 8)) and not cal.is_workday(D(2026, 10, 11))
    assert cal.day_info(D(2026, 9, 25)).name == "中秋"


def test_add_workdays_over_national_day(cal):
    # Received 30 Sep 10:00: day 1 is 8 Oct; 10 Oct (Sat, make-up) counts, 11 Oct (Sun) does not.
    start = dt.datetime(2026, 9, 30, 10, tzinfo=TZ)
    assert cal.add_workdays(start, 1) == end_of_day(D(2026, 10, 8))
    assert cal.add_workdays(start, 3) == end_of_day(D(2026, 10, 10))
    assert cal.add_workdays(start, 4) == end_of_day(D(2026, 10, 12))
    last, met = cal.workday_span(start, 4)
    assert [d.date for d in met if d.kind == "makeup"] == [D(2026, 10, 10)]
    assert [d.date for d in met if not d.workday] == [D(2026, 10, i) for i in (1, 2, 3, 4, 5, 6, 7, 11)]


def test_spring_festival_2026(cal):
    assert cal.is_workday(D(2026, 2, 14))  # Saturday make-up day
    assert cal.day_info(D(2026, 2, 14)).kind == "makeup"
    assert [cal.is_workday(D(2026, 2, d)) for d in range(15, 24)] == [False] * 9
    assert {cal.day_info(D(2026, 2, d)).name for d in range(15, 24)} == {"春节"}
    start = dt.datetime(2026, 2, 13, 16, tzinfo=TZ)
    assert cal.add_workdays(start, 1) == end_of_day(D(2026, 2, 14))
    assert cal.add_workdays(start, 2) == end_of_day(D(2026, 2, 24))
    names = {d.name for d in cal.holidays_skipped(start, cal.add_workdays(start, 2))}
    assert names == {"春节"}


def test_start_convention_weekend_after_hours_and_naive(cal):
    # Saturday receipt, Friday 23:00 receipt and Monday 08:00 receipt: counting starts the next workday.
    assert cal.add_workdays(dt.datetime(2026, 3, 7, 11, tzinfo=TZ), 1) == end_of_day(D(2026, 3, 9))
    assert cal.add_workdays(dt.datetime(2026, 3, 6, 23, tzinfo=TZ), 1) == end_of_day(D(2026, 3, 9))
    assert cal.add_workdays(dt.datetime(2026, 3, 9, 8), 1) == end_of_day(D(2026, 3, 10))
    # An aware UTC instant is converted: 2026-03-06 17:00Z is Saturday 01:00 in Beijing.
    utc = dt.datetime(2026, 3, 6, 17, tzinfo=dt.UTC)
    assert cal.add_workdays(utc, 1) == end_of_day(D(2026, 3, 9))


def test_workdays_between(cal):
    assert cal.workdays_between(D(2026, 9, 30), D(2026, 10, 12)) == 4  # 8, 9, 10(调休), 12 Oct
    assert cal.workdays_between(D(2026, 10, 12), D(2026, 9, 30)) == -4
    assert cal.workdays_between(D(2026, 10, 1), D(2026, 10, 1)) == 0


def test_add_hours_is_calendar_time(cal):
    start = dt.datetime(2026, 10, 1, 23, 30, tzinfo=TZ)
    assert cal.add_hours(start, 3) == dt.datetime(2026, 10, 2, 2, 30, tzinfo=TZ)


def test_add_days_rolls_past_rest_days(cal):
    due, rolled = cal.add_days(dt.datetime(2026, 9, 22, 10, tzinfo=TZ), 10)  # day 10 = 2 Oct
    assert due == end_of_day(D(2026, 10, 8))
    assert [d.date for d in rolled] == [D(2026, 10, i) for i in range(2, 8)]
    due, rolled = cal.add_days(dt.datetime(2026, 9, 22, 10, tzinfo=TZ), 10, roll_to_workday=False)
    assert due == end_of_day(D(2026, 10, 2)) and rolled == []


def test_uncovered_year_falls_back_with_a_warning(cal, caplog):
    with pytest.warns(CalendarFallbackWarning):
        assert cal.is_workday(D(2030, 1, 2))  # Wednesday
    assert not cal.is_workday(D(2030, 1, 5))  # Saturday
    assert cal.fallback_years == {2030}
    assert len(cal.warnings) == 1 and "2030" in cal.warnings[0]
    assert cal.day_info(D(2030, 1, 7)).source == "fallback"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per year, not on every day
        assert cal.add_workdays(dt.datetime(2030, 1, 4, 10, tzinfo=TZ), 1) == end_of_day(D(2030, 1, 7))


def test_crossing_into_an_uncovered_year_does_not_crash(cal):
    with pytest.warns(CalendarFallbackWarning):
        due = cal.add_workdays(dt.datetime(2026, 12, 30, 10, tzinfo=TZ), 5)
    assert due.date().year == 2027 and cal.fallback_years == {2027}


def test_overrides_win(cal):
    c = WorkCalendar(overrides={D(2027, 1, 1): (False, "元旦")})
    info = c.day_info(D(2027, 1, 1))
    assert info.kind == "holiday" and info.name == "元旦" and info.source == "override"


def test_bad_counts(cal):
    with pytest.raises(BadInput):
        cal.add_workdays(dt.datetime(2026, 1, 5, tzinfo=TZ), 0)
    with pytest.raises(BadInput):
        cal.add_days(dt.datetime(2026, 1, 5, tzinfo=TZ), -1)


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 10, 15)),
       n=st.integers(min_value=1, max_value=30))
def test_add_workdays_lands_on_the_nth_workday(start, n):
    cal = WorkCalendar()
    due = cal.add_workdays(start, n)
    assert cal.is_workday(due.date())
    assert cal.workdays_between(start.date(), due.date()) == n
    assert due.time() == dt.time(23, 59, 59) and due > start.replace(tzinfo=TZ)
