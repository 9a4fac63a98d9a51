"""Handling actions belong to the case's handler."""
from tests.cases.guards.conftest import NOW, P1


def test_grid_officer_can_reply_for_township_department_case(svc, city):
    c = svc.intake({"channel": "hotline_12345", "kind": "求决", "title": "电压不稳", "category_code": "GD01",
                    "lon": P1[0], "lat": P1[1], "reporter_phone": "13812345678"}, city["disp"], now=NOW)
    assert c["handling_level"] == "township" and c["lead_department"] == "990101-GD"
    import pytest

    from gis.errors import Forbidden
    with pytest.raises(Forbidden, match="handled by someone else"):
        svc.act(city["off1"], c["id"], "sign", now=NOW)
    assert svc.act(city["gd"], c["id"], "sign", now=NOW)["status"] == "signed"  # its handler may
