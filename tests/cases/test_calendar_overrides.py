"""Holiday overrides loaded into the database drive the deadlines of a year the library does not know."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from cases.service import CaseService, load_calendar_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_overrides_table_changes_the_deadline(db):
    # 2027: chinese-calendar has no data, so 元旦 (Fri 1 Jan 2027) would count as a workday.
    svc = CaseService(db)
    before = svc.calendar.add_workdays(dt.datetime(2026, 12, 31, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))), 1)
    assert before.date() == dt.date(2027, 1, 1)
    db.execute("INSERT INTO calendar_day (day, is_workday, name, source) VALUES ('2027-01-01', false, '元旦', 't')")
    assert load_calendar_overrides(db) == {dt.date(2027, 1, 1): (False, "元旦")}
    svc = CaseService(db)
    after = svc.calendar.add_workdays(dt.datetime(2026, 12, 31, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))), 1)
    assert after.date() == dt.date(2027, 1, 4)  # Fri holiday, then the weekend


def test_calendar_import_cli_refuses_bad_rows(dsn, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,is_workday,name\n2027-01-01,false,元旦\n2027-13-01,false,x\n", encoding="utf-8")
    env = {"DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-m", "gis", "calendar", "import", str(bad), "--commit"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 2 and "row 3" in cp.stderr and "nothing loaded" in cp.stderr
    good = tmp_path / "good.csv"
    good.write_text("date,is_workday,name\n2027-01-01,false,元旦\n2027-02-20,true,春节调休\n", encoding="utf-8")
    cp = subprocess.run([sys.executable, "-m", "gis", "calendar", "import", str(good), "--commit"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    cp = subprocess.run([sys.executable, "-m", "gis", "calendar", "show", "--year", "2027"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)
    assert "2027-01-01 休 元旦 (override)" in cp.stdout and "2027-02-20 班 春节调休 (override)" in cp.stdout
    # the imported announcement covers 2027: no "weekends-only" warning any more (issue 9)
    assert "weekends-only" not in cp.stdout + cp.stderr, cp.stderr


BJ = dt.timezone(dt.timedelta(hours=8))


def test_fallback_warning_reaches_every_case_of_the_year_not_only_the_first():
    """Issue 9: the 2027 warning reached only the first case computed on a calendar (memoised days) and the
    API showed `warnings: []` for the rest."""
    from cases.calendar import WorkCalendar
    from cases.deadlines import compute_deadlines

    cal = WorkCalendar()
    for day in (4, 5, 6):
        d = compute_deadlines(dt.datetime(2027, 3, day, 10, tzinfo=BJ), "hotline_12345", "投诉", False, cal)
        assert len(d.warnings) == 1 and "2027" in d.warnings[0], d.warnings
        assert d.to_dict()["warnings"] == list(d.warnings)
    d = compute_deadlines(dt.datetime(2026, 3, 4, 10, tzinfo=BJ), "hotline_12345", "投诉", False, cal)
    assert d.warnings == ()                                   # 2026 is in the library
    covered = WorkCalendar(overrides={dt.date(2027, 1, 1): (False, "元旦")})
    d = compute_deadlines(dt.datetime(2027, 3, 4, 10, tzinfo=BJ), "hotline_12345", "投诉", False, covered)
    assert d.warnings == () and covered.day_info(dt.date(2027, 3, 4)).source == "override"


def test_a_running_service_picks_up_a_calendar_import(db, monkeypatch):
    """Issue 9: a running server ignored `calendar import` until restarted (a case got 签收 on a holiday just
    imported). The service reloads the overrides with its reference data (REFERENCE_TTL)."""
    import cases.service as service_mod

    svc = CaseService(db)
    start = dt.datetime(2027, 3, 4, 10, tzinfo=BJ)            # Thursday
    assert svc.calendar.add_workdays(start, 1).date() == dt.date(2027, 3, 5)
    svc.reference()
    db.execute("INSERT INTO calendar_day (day, is_workday, name, source) VALUES ('2027-03-05', false, '测试假日', 't')")
    monkeypatch.setattr(service_mod, "REFERENCE_TTL", 0.0)   # the TTL has passed
    svc.reference()
    assert svc.calendar.add_workdays(start, 1).date() == dt.date(2027, 3, 8)   # Fri off, then the weekend
