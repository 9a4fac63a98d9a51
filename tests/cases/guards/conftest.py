"""Fixtures for the access and loop guard tests: tiny city, one user per role, a second county's dispatcher."""
import datetime as dt

import pytest

from cases.auth import create_user as _create_user
from cases.service import CaseService
from cases.setup import seed_routing_rules
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

PW = "password123"


def create_user(*a, **kw):
    """Users for these tests hash with a cheap method: a dozen scrypt hashes per test would dominate the run."""
    return _create_user(*a, hash_method="pbkdf2:sha256:1000", **kw)
TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 3, 2, 10, tzinfo=TZ)  # a Monday


@pytest.fixture
def city(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    u = {}
    u["disp"] = create_user(db, "disp", PW, "dispatcher", "990100", "受理员")
    u["disp_other"] = create_user(db, "disp_other", PW, "dispatcher", "990102", "乙区受理员")
    u["admin"] = create_user(db, "admin", PW, "admin", "990100", "管理员")
    u["county"] = create_user(db, "county", PW, "county_center", "990101", "甲区综治中心")
    u["town1"] = create_user(db, "town1", PW, "township_center", "990101001", "东风街道综治中心")
    u["town2"] = create_user(db, "town2", PW, "township_center", "990101002", "新河镇综治中心")
    u["vill1"] = create_user(db, "vill1", PW, "village_center", "990101001001", "向阳社区综治中心")
    u["off1"] = create_user(db, "off1", PW, "grid_officer", "990101001001", "张伟", grid_code="990101001001001",
                            staff_code="990101001001001-grid_officer")
    u["off2"] = create_user(db, "off2", PW, "grid_officer", "990101001001", "李娜", grid_code="990101001001002",
                            staff_code="990101001001002-grid_officer")
    u["zj"] = create_user(db, "zj", PW, "department", "990101", "甲区住建局", department_code="990101-ZJ")
    u["gd"] = create_user(db, "gd", PW, "department", "990101", "甲区供电", department_code="990101-GD")
    u["cityzj"] = create_user(db, "cityzj", PW, "department", "990100", "市住建局", department_code="990100-ZJ")
    return u


@pytest.fixture
def svc(db, city):
    return CaseService(db)


@pytest.fixture
def app(db, city):
    from gis.settings import load_settings
    from webmap import create_app
    return create_app(settings=load_settings({}), db=db, test_config={"TESTING": True})


def client_for(app, username):
    c = app.test_client()
    r = c.post("/api/login", json={"username": username, "password": PW})
    assert r.status_code == 200, r.get_json()
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]  # what gg.api() sends
    return c


P1 = (X0 + 0.005, Y0 + 0.005)   # grid 990101001001001
P2 = (X0 + 0.015, Y0 + 0.005)   # grid 990101001001002
P3 = (X0 + 0.03, Y0 + 0.005)    # grid 990101002001001
