"""重复信访: one person is one person across channels (issue 9). A petitioner who gives the ID number on a letter
and only the phone on the hotline had two reporter keys; identities (ID, phone) now link to one person key."""

from __future__ import annotations

import pytest

from cases.auth import create_user
from cases.reporters import reporter_identities, reporter_key
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

ID, PHONE, PHONE2 = "220302199001011234", "13800001111", "13900002222"


@pytest.fixture
def env(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    svc = CaseService(db)

    def intake(channel="hotline_12345", kind="投诉", phone=None, id_no=None):
        return svc.intake({"channel": channel, "kind": kind, "category_code": "CJ01", "title": "诉求",
                           "reporter_name": "王某", "reporter_phone": phone, "reporter_id_no": id_no,
                           "lon": X0 + 0.004, "lat": Y0 + 0.005}, disp)
    return db, svc, disp, intake


def _key(db, case):
    return db.fetchone("SELECT reporter_key FROM case_record WHERE id = %s", (case["id"],))["reporter_key"]


def test_one_petitioner_across_channels_is_one_person(env):
    db, svc, disp, intake = env
    letter = intake("letter", "求决", phone=PHONE, id_no=ID)             # ID and phone together
    hotline = intake("hotline_12345", phone=PHONE)                       # the phone only
    online = intake("online_petition", id_no=ID.lower())                 # the ID only (any case)
    new_phone = intake("visit", "求决", phone=PHONE2, id_no=ID)          # a new phone joins the person
    later = intake("hotline_12345", phone=PHONE2)
    keys = {_key(db, c) for c in (letter, hotline, online, new_phone, later)}
    assert keys == {reporter_key(PHONE, ID)}
    assert svc.repeat_counts(disp, later["id"])["by_person"] == 5
    # the visit is a 求决 petition, but not the person's first 信访: not in 一次性化解率's cohort
    assert db.fetchone("SELECT first_petition FROM case_record WHERE id = %s", (new_phone["id"],))["first_petition"] \
        is False


def test_two_known_identities_in_one_case_join_two_persons(env):
    db, svc, disp, intake = env
    by_phone = intake(phone=PHONE)
    by_id = intake("letter", id_no=ID)
    assert _key(db, by_phone) != _key(db, by_id)
    both = intake("visit", phone=PHONE, id_no=ID)                        # now we know they are one person
    assert _key(db, by_phone) == _key(db, by_id) == _key(db, both)
    assert svc.repeat_counts(disp, by_phone["id"])["by_person"] == 3
    persons = db.fetchall("SELECT DISTINCT person_key FROM reporter_identity WHERE ident = ANY(%s)",
                          (reporter_identities(PHONE, ID),))
    assert len(persons) == 1


def test_anonymous_and_unidentified_cases_have_no_person(env):
    db, _, _, intake = env
    assert _key(db, intake()) is None
    assert reporter_identities(None, None) == [] and reporter_identities(" 138-0000-1111 ", None) == [
        reporter_key("13800001111", None)]


def test_the_backfill_hashes_identities_as_the_app_does(env):
    """Migration 0073 links the identities of existing cases in SQL; its hashes must be the app's."""
    from pathlib import Path

    db, _, _, intake = env
    case = intake(phone=PHONE, id_no=ID)
    db.execute("DELETE FROM reporter_identity")
    sql = (Path(__file__).resolve().parents[2] / "cases/migrations/0073_reporter_identity.sql").read_text()
    db.execute(sql[sql.index("INSERT INTO reporter_identity"):])
    rows = db.fetchall("SELECT ident, person_key FROM reporter_identity ORDER BY ident")
    assert sorted(r["ident"] for r in rows) == sorted(reporter_identities(" 138 0000 1111", ID.lower() + " "))
    assert {r["person_key"] for r in rows} == {_key(db, case)}
