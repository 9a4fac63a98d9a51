"""Working days on the Chinese calendar (法定节假日 and 调休 make-up workdays).

Source of truth is the `chinesecalendar` package (import `chinese_calendar`), which knows the State
Council's holiday announcements for the years it ships (2004-2026 in version 1.11). For any other year
it raises NotImplementedError; we then fall back to "Monday-Friday are workdays", record a warning
(on the calendar, through `warnings` and through logging) and carry on. A city can load next year's
announcement before the library ships it by passing `overrides`.

Conventions (used by cases/deadlines.py, documented in docs/cases.md):
- All datetimes are China Standard Time (Asia/Shanghai). Aware datetimes are converted; naive ones are
  taken to be Beijing local time. Returned datetimes are aware (Asia/Shanghai).
- A period of n working days starts on the day after receipt ("开始的当日不计入", 民法典 第二百零一条):
  day 1 is the first working day strictly after the receipt date, so a case received on a Saturday,
  on a holiday, after hours or at 08:00 on a Tuesday all start counting on the next working day.
- The period ends at the end (24:00) of the nth working day, represented as 23:59:59 of that day;
  a case is overdue when now > due.
- Hours for emergencies are calendar hours (add_hours), not working hours.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

from gis.errors import BadInput

log = logging.getLogger(__name__)

# The deployment's local time (GRIDGOV_TIMEZONE, validated by gis.settings; China Standard Time by default)
# and its working calendar (GRIDGOV_CALENDAR: "cn" = the State Council holidays from chinese-calendar plus
# imported overrides, "weekends" = Monday–Friday plus imported overrides, for a city outside that calendar).
TZ = ZoneInfo(os.environ.get("GRIDGOV_TIMEZONE") or "Asia/Shanghai")
CALENDAR = (os.environ.get("GRIDGOV_CALENDAR") or "cn").strip().lower()
CALENDARS = ("cn", "weekends")
END_OF_DAY = dt.time(23, 59, 59)

# English names from the library -> Chinese names shown to users.
HOLIDAY_NAMES_ZH = {h.value: h.chinese for h in chinese_calendar.Holiday}


class CalendarFallbackWarning(UserWarning):
    """A year is outside the holiday data: weekends-only rules were used."""


@dataclass(frozen=True)
class DayInfo:
    """How one date was classified and why."""

    date: dt.date
    workday: bool
    kind: str  # "workday" | "weekend" | "holiday" | "makeup" (调休上班)
    name: str | None  # Chinese holiday name (国庆节), also on make-up days, None otherwise
    source: str  # "library" | "override" | "fallback"

    def to_dict(self) -> dict:
        """Plain-data form for JSON."""
        return {
            "date": self.date.isoformat(),
            "workday": self.workday,
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
        }


def to_local(value: dt.datetime) -> dt.datetime:
    """Aware datetime in the deployment's zone (TZ, Asia/Shanghai by default); naive input is local time."""
    if not isinstance(value, dt.datetime):
        raise BadInput(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=TZ)
    return value.astimezone(TZ)


def end_of_day(day: dt.date) -> dt.datetime:
    """The due instant of a day: 23:59:59 Beijing time (stands for 24:00)."""
    return dt.datetime.combine(day, END_OF_DAY, tzinfo=TZ)


class WorkCalendar:
    """Chinese working-day calendar with a weekends-only fallback for uncovered years."""

    def __init__(self, overrides: dict[dt.date, tuple[bool, str | None]] | None = None, source: str | None = None):
        # overrides: date -> (is_workday, Chinese holiday name or None), e.g. loaded from a table.
        self.overrides = dict(overrides or {})
        self.source = source or CALENDAR
        if self.source not in CALENDARS:
            raise BadInput(f"working calendar must be one of {', '.join(CALENDARS)}, got {self.source!r}",
                           field="calendar")
        self.warnings: list[str] = []
        self._fallback_years: set[int] = set()
        self._fallback_msgs: dict[int, str] = {}
        # years the city loaded an announcement for: their other days follow the weekend rule, no warning
        self._override_years = {d.year for d in self.overrides}
        self._memo: dict[dt.date, DayInfo] = {}  # chinese_calendar validates every call: memoise per date

    # -- classification -------------------------------------------------------------------------

    def day_info(self, day: dt.date) -> DayInfo:
        """Classify a date: workday, weekend, holiday or make-up workday, with its source."""
        if isinstance(day, dt.datetime):
            day = to_local(day).date()
        hit = self._memo.get(day)
        if hit is None:
            hit = self._memo[day] = self._classify(day)
        return hit

    def _classify(self, day: dt.date) -> DayInfo:
        weekend = day.weekday() >= 5
        if day in self.overrides:
            workday, name = self.overrides[day]
            return DayInfo(day, workday, _kind(workday, weekend, name), name, "override")
        if self.source == "weekends":
            return DayInfo(day, not weekend, "weekend" if weekend else "workday", None, "weekends")
        try:
            workday = chinese_calendar.is_workday(day)
            _, english = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError as exc:
            if day.year in self._override_years:          # the imported announcement covers this year
                return DayInfo(day, not weekend, "weekend" if weekend else "workday", None, "override")
            self._note_fallback(day.year, str(exc))
            return DayInfo(day, not weekend, "weekend" if weekend else "workday", None, "fallback")
        name = HOLIDAY_NAMES_ZH.get(english, english) if english else None
        return DayInfo(day, workday, _kind(workday, weekend, name), name, "library")

    def is_workday(self, day: dt.date) -> bool:
        """True when the date is a working day (调休 make-up Saturdays count)."""
        return self.day_info(day).workday

    def _note_fallback(self, year: int, detail: str) -> None:
        if year in self._fallback_years:
            return
        self._fallback_years.add(year)
        msg = (f"no holiday data for {year} ({detail}); weekends-only working days used, "
               "load the State Council announcement as overrides")
        self._fallback_msgs[year] = msg
        self.warnings.append(msg)
        log.warning(msg)
        warnings.warn(msg, CalendarFallbackWarning, stacklevel=4)

    @property
    def fallback_years(self) -> frozenset[int]:
        """Years for which weekends-only rules were used."""
        return frozenset(self._fallback_years)

    def warnings_for(self, first: dt.date, last: dt.date) -> list[str]:
        """The fallback warning of every year in [first, last] that used weekends-only rules — for each
        computation that touched them, not only the first one (the memo would otherwise hide it)."""
        return [self._fallback_msgs[y] for y in range(first.year, last.year + 1) if y in self._fallback_msgs]

    # -- arithmetic -----------------------------------------------------------------------------

    def next_workday(self, day: dt.date) -> dt.date:
        """The first working day strictly after `day`."""
        d = day + dt.timedelta(days=1)
        for _ in range(366):
            if self.is_workday(d):
                return d
            d += dt.timedelta(days=1)
        raise BadInput(f"no working day within a year after {day}")  # only with absurd overrides

    def workday_span(self, start: dt.datetime, n: int) -> tuple[dt.date, list[DayInfo]]:
        """The nth working day after the start date and every non-working or make-up day met on the way."""
        if n < 1:
            raise BadInput("number of working days must be at least 1", field="n")
        day = to_local(start).date()
        noted: list[DayInfo] = []
        count = 0
        while count < n:
            day += dt.timedelta(days=1)
            info = self.day_info(day)
            if info.workday:
                count += 1
                if info.kind == "makeup":
                    noted.append(info)
            else:
                noted.append(info)
        return day, noted

    def add_workdays(self, start_dt: dt.datetime, n: int) -> dt.datetime:
        """Due instant of n working days from start_dt: 23:59:59 of the nth working day after its date."""
        last, _ = self.workday_span(start_dt, n)
        return end_of_day(last)

    def workdays_between(self, start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> int:
        """Working days d with start < d <= end (dates); negative when end is before start."""
        a = to_local(start).date() if isinstance(start, dt.datetime) else start
        b = to_local(end).date() if isinstance(end, dt.datetime) else end
        sign = 1
        if b < a:
            a, b, sign = b, a, -1
        count = 0
        d = a + dt.timedelta(days=1)
        while d <= b:
            count += self.is_workday(d)
            d += dt.timedelta(days=1)
        return sign * count

    def add_hours(self, start_dt: dt.datetime, hours: float) -> dt.datetime:
        """Calendar hours (emergencies run through nights, weekends and holidays)."""
        return to_local(start_dt) + dt.timedelta(hours=hours)

    def add_days(self, start_dt: dt.datetime, n: int, *, roll_to_workday: bool = True
                 ) -> tuple[dt.datetime, list[DayInfo]]:
        """Calendar-day period: ends 23:59:59 of day n after the start date, rolled to a working day.

        With roll_to_workday, a period whose last day is a rest day (weekend or holiday, 法定休假日)
        ends on the first working day after it (民法典 第二百零三条); the rolled days are returned.
        """
        if n < 1:
            raise BadInput("number of days must be at least 1", field="n")
        last = to_local(start_dt).date() + dt.timedelta(days=n)
        rolled: list[DayInfo] = []
        if roll_to_workday:
            info = self.day_info(last)
            while not info.workday:
                rolled.append(info)
                last += dt.timedelta(days=1)
                info = self.day_info(last)
        return end_of_day(last), rolled

    def holidays_skipped(self, start_dt: dt.datetime, end_dt: dt.datetime) -> list[DayInfo]:
        """Statutory holidays (with names) between two instants, by date, exclusive of the start date."""
        a = to_local(start_dt).date()
        b = to_local(end_dt).date()
        out = []
        d = a + dt.timedelta(days=1)
        while d <= b:
            info = self.day_info(d)
            if info.kind == "holiday":
                out.append(info)
            d += dt.timedelta(days=1)
        return out


def _kind(workday: bool, weekend: bool, name: str | None) -> str:
    if workday:
        return "makeup" if weekend else "workday"
    if weekend and not name:
        return "weekend"
    return "holiday"
