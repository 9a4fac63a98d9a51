"""The dispatcher sees why: the geocoder's recognised / unknown components are stored with the case on intake
and shown in the case's JSON view and the intake (needs-pin) queue (real PostGIS, tiny city)."""

from __future__ import annotations

import datetime as dt

import pytest

from cases.auth import create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import tiny_city

T0 = dt.datetime(2026, 9, 14, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.fixture
def svc(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    return CaseService(db)


@pytest.fixture
def dispatcher(db, svc):
    return create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")


def _submit(svc, user, text):
    sub = dict(channel="12345热线", kind="求决", category_code="CJ01", title="饮水井坏了", content="村里的井坏了",
               reporter_name="李建国", reporter_phone="13812345678", address_text=text)
    return svc.intake(sub, user, now=T0)


def test_unknown_village_is_shown_and_waits_for_a_pin(svc, dispatcher):
    c = _submit(svc, dispatcher, "甲区新河镇红旗村三社5号")
    assert c["needs_pin"] is True and c["grid_code"] is None
    comps = c["geocode"]["components"]
    assert comps["村"] == "未找到 红旗村" and comps["乡镇"] == "新河镇" and comps["组"] == "3组"
    queue = svc.list(dispatcher, needs_pin=True)
    assert [q["geocode"]["components"]["村"] for q in queue if q["id"] == c["id"]] == ["未找到 红旗村"]


def test_known_rural_address_is_routed_with_its_components(svc, dispatcher):
    c = _submit(svc, dispatcher, "甲区新河镇柳树村第一村民小组5号")
    assert c["needs_pin"] is False and c["grid_code"] == "990101002001001"
    assert c["geocode"]["components"] == {"县": "甲区", "乡镇": "新河镇", "村": "柳树村", "组": "1组", "门牌": "5号"}
