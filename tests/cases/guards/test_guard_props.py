"""Properties of the one guard: routing and reminders never pick a body the case accuses, and the SQL scope
(`case_scope`) agrees with `may_touch` for every user — over generated accusations."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases.auth import case_scope
from cases.guard import (
    blocked_handlers,
    may_touch,
    party_for_center,
    party_for_department,
    party_for_officer,
    party_for_recipient,
    party_for_user,
)
from cases.routing import default_rules, route
from cases.scheduler import remind_recipient, supervise_recipient
from tests.cases.guards.conftest import NOW, P1
from tests.factories import tiny_city

CITY = tiny_city()
DEPTS = CITY.departments
DEPT_BY_CODE = {d["code"]: d for d in DEPTS}
CATS = {c["code"]: c for c in CITY.categories}
RULES = [{**r, "id": i} for i, r in enumerate(default_rules(CITY.categories), 1)]
GRIDS = {g["code"]: g for g in CITY.grids}
OFFICER = {g: f"{g}-grid_officer" for g in GRIDS}
UNIT_POOL = sorted({*DEPT_BY_CODE, *(r["code"] for r in CITY.regions), *(c["code"] for c in CITY.centers), *GRIDS})
PERSON_POOL = sorted({s["code"] for s in CITY.staff} | {"张伟", "off1"})


def _case(grid, category, kind, units, persons, floor=None, escalation=None):
    v = GRIDS[grid]["village_code"]
    return {"grid_code": grid, "village_code": v, "township_code": v[:9], "county_code": v[:6],
            "category_code": category, "kind": kind, "channel": "hotline_12345", "accused_units": units,
            "accused_persons": persons, "guard_floor": floor, "escalation_level": escalation}


cases = st.builds(
    _case, st.sampled_from(sorted(GRIDS)), st.sampled_from(sorted(CATS)), st.sampled_from(["求决", "投诉", "举报"]),
    st.lists(st.sampled_from(UNIT_POOL), max_size=4, unique=True),
    st.lists(st.sampled_from(PERSON_POOL), max_size=2, unique=True),
    st.sampled_from([None, None, "village", "township", "county", "city"]),
    st.sampled_from([None, None, "township", "county"]))


@settings(max_examples=600, deadline=None)
@given(cases)
def test_routing_never_hands_a_case_to_what_it_accuses(case):
    d = route(case, RULES, DEPTS, CATS, chain={"officer_code": OFFICER[case["grid_code"]], "generation": 1},
              city_code="990100")
    routed = {**case, **d.to_dict()}
    assert not blocked_handlers(routed, DEPT_BY_CODE), d.explanation
    for code in [d.lead_department, *d.co_departments]:
        if code:
            assert may_touch(case, party_for_department(DEPT_BY_CODE[code]))
    if d.officer_code:
        assert may_touch(case, party_for_officer(d.officer_code, case["grid_code"]))
    if d.handler_region:
        assert may_touch(case, party_for_center(d.handler_region))
    if case["guard_floor"]:
        levels = ("grid", "village", "township", "county", "city")
        assert levels.index(d.handling_level) >= levels.index(case["guard_floor"])


@settings(max_examples=600, deadline=None)
@given(cases, st.sampled_from(["village", "township", "county", "city"]))
def test_reminders_never_go_to_what_the_case_accuses(case, level):
    d = route({**case, "escalation_level": level}, RULES, DEPTS, CATS,
              chain={"officer_code": OFFICER[case["grid_code"]]}, city_code="990100")
    routed = {**case, **d.to_dict()}

    def party_of(code):
        return party_for_department(DEPT_BY_CODE[code]) if code in DEPT_BY_CODE else party_for_recipient(code)

    for who in (remind_recipient(routed, party_of), supervise_recipient(routed, party_of)):
        if who is not None:
            assert may_touch(routed, party_of(who)), (who, routed["accused_units"], routed["accused_persons"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(UNIT_POOL + ["990101-ZJ", "990100-ZJ"]), max_size=3, unique=True),
       st.lists(st.sampled_from(PERSON_POOL + ["off2", "李娜", "zj"]), max_size=2, unique=True))
def test_sql_scope_is_may_touch(svc, city, units, persons):
    """case_scope(user) == jurisdiction AND may_touch(case, party_for_user(user)), for every user."""
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "物业问题", "category_code": "CJ01",
                    "lon": P1[0], "lat": P1[1]}, city["disp"], now=NOW)

    def visible(user):
        scope, params = case_scope(user)
        return svc.db.fetchone(f"SELECT count(*) AS n FROM case_record c WHERE c.id = %(cid)s AND {scope}",
                               {**params, "cid": c["id"]})["n"] == 1

    base = {name: visible(u) for name, u in city.items()}
    svc.db.execute("UPDATE case_record SET accused_units = %s, accused_persons = %s WHERE id = %s",
                   (units, persons, c["id"]))
    accused = {"accused_units": units, "accused_persons": persons}
    for name, u in city.items():
        assert visible(u) == (base[name] and may_touch(accused, party_for_user(u))), (name, units, persons)


@pytest.mark.parametrize("name", ["off1", "zj", "town1", "vill1", "county", "disp"])
def test_party_for_user_covers_what_an_accusation_can_name(city, name):
    u = city[name]
    p = party_for_user(u)
    assert u.username in p.persons and u.region_code in p.units and "ZZ" + u.region_code in p.units
    if u.staff_code:
        assert u.staff_code in p.persons
    if u.department_code:
        assert u.department_code in p.units
