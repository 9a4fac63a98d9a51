"""一次性化解率 counts the 求决 petitions that are the person's first 信访 (seed 000: "全系统求决类初次信访一次性化解率
98.72%"): intake marks them (case_record.first_petition, SQL function mark_first_petitions of migration 0072)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cases.auth import create_user
from cases.deadlines import PETITION_CHANNELS
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

MIGRATION = Path(__file__).resolve().parents[2] / "cases" / "migrations" / "0072_first_petition.sql"


@pytest.fixture
def intake(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)

    def go(channel, kind, phone=None, id_no=None):
        case = svc.intake({"channel": channel, "kind": kind, "category_code": "CJ01", "title": "诉求",
                           "reporter_name": "王某", "reporter_phone": phone, "reporter_id_no": id_no,
                           "lon": X0 + 0.004, "lat": Y0 + 0.005}, disp)
        return db.fetchone("SELECT first_petition FROM case_record WHERE id = %s", (case["id"],))["first_petition"]
    return go


def test_first_demand_petitions_are_marked_and_repeats_are_not(intake):
    assert intake("online_petition", "求决", phone="13800000001") is True      # the person's first 信访
    assert intake("online_petition", "求决", phone="13800000001") is False     # 重复信访: not 初次
    assert intake("letter", "求决", id_no="220302199001011234") is True
    assert intake("hotline_12345", "求决", phone="13800000002") is False       # not a 信访 channel
    assert intake("online_petition", "投诉", phone="13800000003") is False     # not 求决 ...
    assert intake("visit", "求决", phone="13800000003") is False               # ... and it makes the next a repeat


def test_the_backfill_uses_the_apps_petition_channels():
    sql = MIGRATION.read_text(encoding="utf-8")
    literal = re.search(r"ARRAY\[([^\]]*)\]\);\s*$", sql).group(1)
    assert sorted(x.strip().strip("'") for x in literal.split(",")) == sorted(PETITION_CHANNELS)
