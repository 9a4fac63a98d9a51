"""领导包案 (seeds 002, 004: "领导包案"、"一案一策"): a center assigns a leader, a responsible unit, a plan, a standard
and a target date; 约访/下访 are recorded; the 台账 shows 责任领导, 责任单位, 办理时限, 办理标准 (seed 000) and the
信访 outcome 已息访办结 / 已有化解方案 / 正在办理 (seed 000: "已息访办结3050件、已有化解方案1633件、正在办理299件")."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from cases import ledger
from cases.auth import create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from cases.workflow import petition_outcome
from gis.errors import BadInput, Forbidden
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 14, 9, 0, tzinfo=TZ)
PLAN = {"leader": "张某（副区长）", "unit": "甲区住房和城乡建设局", "plan": "一案一策：约谈开发商，30日内完成维修",
        "standard": "问题解决、群众息访", "target_date": "2026-10-15"}


@pytest.fixture
def env(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    mk = lambda name, role, region, **kw: create_user(db, name, "password123", role, region,  # noqa: E731
                                                    hash_method="pbkdf2:sha256:1000", **kw)
    users = {"disp": mk("disp", "dispatcher", "990100"), "county": mk("cty", "county_center", "990101"),
             "zj": mk("zj", "department", "990101", department_code="990101-ZJ")}
    svc = CaseService(db)
    case = svc.intake({"channel": "online_petition", "kind": "求决", "category_code": "CJ01", "title": "小区漏水多年",
                       "reporter_name": "李某", "reporter_phone": "13812345678", "lon": X0 + 0.004,
                       "lat": Y0 + 0.005}, users["disp"], now=T0)
    return db, svc, users, case


def test_a_leader_takes_the_case_with_a_plan_and_records_visits(env, tmp_path):
    db, svc, users, case = env
    assert case["outcome"] == "正在办理"
    c = svc.act(users["county"], case["id"], "package", data=PLAN, now=T0)
    assert c["package"]["leader"] == PLAN["leader"] and c["package"]["target_date"] == "2026-10-15"
    assert c["outcome"] == "已有化解方案" and c["status"] == case["status"]          # the state stays
    c = svc.act(users["county"], case["id"], "visit", data={"kind": "下访", "text": "到小区现场查看"}, now=T0)
    assert c["events"][-1]["action"] == "visit" and c["events"][-1]["data"]["kind"] == "下访"
    out = ledger.export_ledger(db, users["county"], tmp_path / "l.xlsx", dt.date(2026, 9, 1), dt.date(2026, 9, 30))
    assert out["rows"] == 1
    ws = load_workbook(tmp_path / "l.xlsx")["诉求台账"]
    row = dict(zip(ledger.LEDGER_HEADERS, [c.value for c in ws[2]], strict=True))
    assert (row["责任领导"], row["责任单位"], row["办理标准"], row["化解情况"]) == (
        PLAN["leader"], PLAN["unit"], PLAN["standard"], "已有化解方案")
    assert row["办理时限"].date() == dt.date(2026, 10, 15)


def test_package_is_checked(env):
    _, svc, users, case = env
    with pytest.raises(BadInput) as e:
        svc.act(users["county"], case["id"], "package", data={**PLAN, "plan": " "}, now=T0)
    assert e.value.field == "plan"
    with pytest.raises(BadInput) as e:
        svc.act(users["county"], case["id"], "package", data={**PLAN, "target_date": "2026-13-01"}, now=T0)
    assert e.value.field == "target_date"
    with pytest.raises(BadInput):
        svc.act(users["county"], case["id"], "package", data={**PLAN, "target_date": "2026-01-01"}, now=T0)
    with pytest.raises(Forbidden):                     # a department does not assign leaders
        svc.act(users["zj"], case["id"], "package", data=PLAN, now=T0)


def test_petition_outcomes_as_the_seed_reports_them():
    assert petition_outcome("closed", False) == "已息访办结"
    assert petition_outcome("handling", True) == "已有化解方案"
    assert petition_outcome("replied", False) == "已有化解方案"
    assert petition_outcome("signed", False) == "正在办理"
    assert petition_outcome("merged", True) is None


def test_the_three_registers_are_views_of_the_case_list(env):
    """Seed 000's registers 预约登记、接访登记、矛盾纠纷排查 as views: cases with a 约访, visits and receptions, grid
    officers' dispute screening reports."""
    _, svc, users, case = env
    visit = svc.intake({"channel": "visit", "kind": "求决", "category_code": "CJ01", "title": "来访：工资拖欠",
                        "reporter_name": "赵某", "reporter_phone": "13900001111", "lon": X0 + 0.004,
                        "lat": Y0 + 0.005}, users["disp"], now=T0)
    svc.act(users["county"], case["id"], "visit", data={"kind": "约访"}, now=T0)

    def ids(register):
        return {c["id"] for c in svc.list_page(users["county"], register=register)[0]}
    assert ids("预约登记") == {case["id"]} and ids("接访登记") == {visit["id"]} and ids("矛盾纠纷排查") == set()
    with pytest.raises(BadInput):
        svc.list_page(users["county"], register="花名册")
