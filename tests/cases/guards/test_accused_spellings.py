"""Accused units and persons are found by every spelling people use, and kept away from the case.

The spellings are generated (region prefix × long/short/kind name × 局/委/办 suffix × noise), so a new
spelling rule in `cases.accused` is tested against all of them, end to end for a sample and purely for many.
"""
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases.accused import Directory, resolve
from cases.guard import blocked_handlers, may_touch, party_for_user
from gis.errors import NotFound
from tests.cases.guards.conftest import NOW, P1, P3
from tests.factories import tiny_city

PREFIXES = ("", "甲区", "测试市甲区", "测试市 甲区", "甲区的")
CORES = ("住建", "住房和城乡建设", "住房城乡建设")
SUFFIXES = ("局", "委", "办", "委员会", "办公室", "部门")
ZJ_SPELLINGS = ["".join(p) for p in itertools.product(PREFIXES, CORES, SUFFIXES)]


def _directory():
    c = tiny_city()
    users = [dict(username="off1", display_name="张伟", staff_code="990101001001001-grid_officer",
                  grid_code="990101001001001", region_code="990101001001")]
    return Directory.from_rows(c.regions, c.departments, c.centers, c.grids, c.staff, users)


DIRECTORY = _directory()


@pytest.mark.parametrize("spelling", ZJ_SPELLINGS)
def test_every_spelling_of_the_bureau_guards_it(spelling):
    res = resolve(DIRECTORY, [spelling], [])
    assert "990101-ZJ" in res.accused_units, (spelling, res.mentions)
    # without the region the county's bureau and the city's are both plausible: both guarded, flagged
    if not spelling.startswith(("甲区", "测试市")):
        assert "990100-ZJ" in res.accused_units and res.review and res.floor == "city"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZJ_SPELLINGS), st.sampled_from(["", " ", "　", "（", "的王科长", "工作人员", "吃拿卡要"]))
def test_noisy_spellings_still_guard_the_bureau(spelling, noise):
    text = spelling + noise
    res = resolve(DIRECTORY, [text], [])
    assert "990101-ZJ" in res.accused_units, (text, res.mentions)


# mention → identities that must be guarded (and the user that must not see the case)
BODIES = [
    ("东风街道", "990101001", "town1"), ("东风街道办", "990101001", "town1"),
    ("东风街道办事处", "990101001", "town1"), ("甲区东风街道办事处", "990101001", "town1"),
    ("东风街道综治中心", "ZZ990101001", "town1"), ("东风街道党工委", "990101001", "town1"),
    ("向阳社区居委会", "990101001001", "vill1"), ("向阳居委会", "990101001001", "vill1"),
    ("向阳社区居民委员会", "990101001001", "vill1"), ("东风街道向阳社区", "990101001001", "vill1"),
    ("向阳社区综治中心", "ZZ990101001001", "vill1"), ("柳树村委会", "990101002001", None),
    ("柳树村村民委员会", "990101002001", None), ("新河镇人民政府", "990101002", "town2"),
    ("供电局", "990101-GD", "gd"), ("甲区供电公司", "990101-GD", "gd"), ("国网甲区供电公司", "990101-GD", "gd"),
    ("甲区住建局", "990101-ZJ", "zj"), ("住建局", "990101-ZJ", "zj"), ("市住建局", "990100-ZJ", "cityzj"),
    ("测试市住建局", "990100-ZJ", "cityzj"), ("甲区住健局", "990101-ZJ", "zj"),
    ("甲区综治中心", "ZZ990101", "county"), ("甲区政府", "990101", "county"),
]
PERSONS = [("张伟", "off1"), ("990101001001001-grid_officer", "off1"), ("off1", "off1"), (" 张 伟 ", "off1"),
           ("李娜", "off2"), ("990101001001002-grid_officer", "off2")]


@pytest.mark.parametrize("mention,code,_user", BODIES)
def test_body_spellings_resolve(mention, code, _user):
    res = resolve(DIRECTORY, [mention], [])
    assert code in res.accused_units, (mention, res.mentions)


def _accuse(svc, city, units=(), persons=(), at=P1, **kw):
    sub = {"channel": "hotline_12345", "kind": "举报", "title": "举报工作人员吃拿卡要", "category_code": "CJ01",
           "lon": at[0], "lat": at[1], "reporter_name": "王小明", "reporter_phone": "13812345678",
           "accused_units": list(units), "accused_persons": list(persons), **kw}
    return svc.intake(sub, city["disp"], now=NOW)


def _assert_kept_away(svc, city, case_id, username):
    user = city[username]
    with pytest.raises(NotFound):
        svc.get(user, case_id)
    assert case_id not in [c["id"] for c in svc.list(user, limit=1000)]
    with pytest.raises(NotFound):
        svc.act(user, case_id, "sign", now=NOW)
    row = svc.db.fetchone("SELECT * FROM case_record WHERE id = %s", (case_id,))
    assert not may_touch(row, party_for_user(user))
    assert not blocked_handlers(row, svc.reference()["dept_by_code"]), row["routing"]["explanation"]
    assert row["lead_department"] != user.department_code or user.department_code is None
    assert row["officer_code"] is None or row["officer_code"] != user.staff_code


@pytest.mark.parametrize("mention,code,username", BODIES)
def test_accused_unit_by_any_spelling_never_handles_or_reads(svc, city, mention, code, username):
    for at in (P1, P3):
        c = _accuse(svc, city, units=[mention], at=at)
        row = svc.db.fetchone("SELECT accused_units FROM case_record WHERE id = %s", (c["id"],))
        assert code in row["accused_units"]
        if username:
            _assert_kept_away(svc, city, c["id"], username)


@pytest.mark.parametrize("mention,username", PERSONS)
def test_accused_person_by_name_or_staff_code_never_handles_or_reads(svc, city, mention, username):
    # a 投诉 at village level would go to the grid's officer: not when it names him
    for kind in ("举报", "投诉"):
        c = _accuse(svc, city, persons=[mention], kind=kind, at=P1 if username == "off1" else (P1[0] + 0.01, P1[1]))
        _assert_kept_away(svc, city, c["id"], username)
        for action in ("sign", "reply", "return", "progress"):
            with pytest.raises(NotFound):
                svc.act(city[username], c["id"], action, reason="x", data={"reply": "已处理"}, now=NOW)


def test_ambiguous_mention_goes_above_every_plausible_unit_and_is_flagged(svc, city):
    c = _accuse(svc, city, units=["住建局"])
    row = svc.db.fetchone("SELECT * FROM case_record WHERE id = %s", (c["id"],))
    assert row["guard_review"] and row["guard_floor"] == "city"
    assert row["handling_level"] == "city" and row["handler_region"] == "990100"
    assert row["lead_department"] is None
    assert {"990101-ZJ", "990100-ZJ"} <= set(row["accused_units"])
    for u in ("zj", "cityzj"):
        _assert_kept_away(svc, city, c["id"], u)
    seen = svc.get(city["disp"], c["id"])
    assert seen["guard_review"] is True  # the visible flag
    assert [e for e in seen["events"] if e["action"] == "guard_review"]
    assert c["id"] in [x["id"] for x in svc.list(city["disp"], guard_review=True)]
    # the dispatcher checks it: the floor goes, every plausible unit stays excluded
    svc.act(city["disp"], c["id"], "correct_routing", reason="核定：被举报单位为甲区住建局", now=NOW)
    row = svc.db.fetchone("SELECT * FROM case_record WHERE id = %s", (c["id"],))
    assert not row["guard_review"] and row["handling_level"] == "county"
    for u in ("zj", "cityzj"):
        _assert_kept_away(svc, city, c["id"], u)


def test_unresolved_mention_is_flagged_and_handled_no_lower_than_the_county(svc, city):
    c = _accuse(svc, city, units=["某某物业公司"], kind="投诉")
    row = svc.db.fetchone("SELECT * FROM case_record WHERE id = %s", (c["id"],))
    assert row["guard_review"] and row["guard_floor"] == "county" and row["handling_level"] == "county"
    assert row["accused_mentions"]["mentions"][0]["status"] == "unresolved"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(ZJ_SPELLINGS), st.sampled_from(["投诉", "举报", "求决"]))
def test_generated_spellings_end_to_end(svc, city, spelling, kind):
    c = _accuse(svc, city, units=[spelling], kind=kind)
    _assert_kept_away(svc, city, c["id"], "zj")


def test_users_create_sets_a_staff_code(db, dsn, city, monkeypatch):
    from cases.auth import get_user
    from gis.cli import main

    monkeypatch.setenv("GRIDGOV_DATABASE_URL", dsn)
    rc = main(["users", "create", "--username", "off9", "--password", "password123", "--role", "grid_officer",
               "--region", "990101001001", "--grid", "990101001001002", "--staff-code", "S-0009", "--name", "赵六"])
    assert rc == 0
    uid = db.fetchone("SELECT id FROM app_user WHERE username = 'off9'")["id"]
    assert get_user(db, uid).staff_code == "S-0009"
