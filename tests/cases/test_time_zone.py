"""Issue 10: a deployment sets its time zone and working calendar (GRIDGOV_TIMEZONE, GRIDGOV_CALENDAR) instead of
Asia/Shanghai and the State Council calendar being fixed. The database's day buckets (case_day_stats), the case
number's date and the Python side agree on the zone; a zone change once cases exist is refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from cases.auth import create_user
from cases.calendar import WorkCalendar
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.errors import BadInput, ConfigError
from gis.runtime import record_time_zone
from gis.settings import load_settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

ROOT = Path(__file__).resolve().parents[2]
BJ = dt.timezone(dt.timedelta(hours=8))


def test_settings_validate_zone_and_calendar():
    s = load_settings({"GRIDGOV_TIMEZONE": "Asia/Urumqi", "GRIDGOV_CALENDAR": "Weekends"})
    assert (s.timezone, s.calendar) == ("Asia/Urumqi", "weekends")
    assert (load_settings({}).timezone, load_settings({}).calendar) == ("Asia/Shanghai", "cn")
    with pytest.raises(ConfigError, match="GRIDGOV_TIMEZONE"):
        load_settings({"GRIDGOV_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="GRIDGOV_CALENDAR"):
        load_settings({"GRIDGOV_CALENDAR": "lunar"})


def test_weekends_calendar_ignores_the_state_council_holidays_but_keeps_imported_days():
    national_day = dt.date(2026, 10, 1)                       # Thursday, 国庆节
    assert not WorkCalendar().is_workday(national_day)
    plain = WorkCalendar(source="weekends")
    assert plain.is_workday(national_day) and plain.day_info(national_day).source == "weekends"
    assert not plain.is_workday(dt.date(2026, 10, 3))          # Saturday
    city = WorkCalendar({dt.date(2026, 10, 2): (False, "市庆")}, source="weekends")
    assert not city.is_workday(dt.date(2026, 10, 2)) and city.warnings == []
    with pytest.raises(BadInput, match="calendar"):
        WorkCalendar(source="lunar")


def test_day_buckets_and_case_numbers_follow_the_recorded_zone(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    assert db.fetchone("SELECT gridgov_time_zone() AS z")["z"] == "Asia/Shanghai"
    record_time_zone(db, "Asia/Urumqi")                        # UTC+6: an empty database may take any zone
    assert db.fetchone("SELECT gridgov_time_zone() AS z")["z"] == "Asia/Urumqi"
    # 01:30 on 1 March in Beijing is 23:30 on 28 February in Urumqi
    case = CaseService(db).intake({"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01",
                                   "title": "噪音", "lon": X0 + 0.004, "lat": Y0 + 0.005,
                                   "received_at": dt.datetime(2026, 3, 1, 1, 30, tzinfo=BJ)}, disp)
    assert case["case_no"].startswith("GG20260228"), case["case_no"]
    days = {r["day"] for r in db.fetchall("SELECT day FROM case_day_stats WHERE received > 0")}
    assert days == {dt.date(2026, 2, 28)}
    with pytest.raises(ConfigError, match="recorded in Asia/Urumqi"):
        record_time_zone(db, "Asia/Shanghai")                  # the counted days would no longer match
    record_time_zone(db, "Asia/Urumqi")                        # the same zone again is fine


def test_python_side_reads_the_zone_from_the_environment():
    code = ("from cases.calendar import TZ, to_local; import datetime as dt; "
            "print(TZ.key, to_local(dt.datetime(2026, 3, 1, 1, 30)).utcoffset())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "GRIDGOV_TIMEZONE": "Asia/Urumqi"})
    assert out.stdout.split() == ["Asia/Urumqi", "6:00:00"], out.stderr
