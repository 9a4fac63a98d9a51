"""The rate policy is data: weights, 基本满意 weight and 四色码 thresholds change the report."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cases.policy import DEFAULT, load_rate_policy, parse_policy, save_rate_policy
from gis.errors import BadInput


def test_parse_and_defaults():
    assert parse_policy({}) == DEFAULT
    p = parse_policy({"weights": [30, 35, 35], "basic_weight": "0.6",
                      "thresholds": {"satisfaction": [95, 90, 85]}, "last_place_red": False})
    assert p.config.weights == (30, 35, 35) and p.config.basic_weight == Fraction(3, 5)
    sat = next(t for t in p.thresholds if t.metric == "satisfaction")
    assert (sat.green, sat.orange) == (Fraction(95, 100), Fraction(85, 100)) and p.last_place_red is False


@pytest.mark.parametrize("bad,field", [({"weights": [1, 2]}, "weights"), ({"basic_weight": "2"}, "basic_weight"),
                                       ({"thresholds": {"satisfaction": [80, 90, 95]}}, "thresholds"),
                                       ({"colour": "pink"}, "colour"), ({"eval_window_days": 0}, "eval_window_days"),
                                       ({"task_unit_types": ["street"]}, "task_unit_types"),
                                       ({"task_unit_types": "township"}, "task_unit_types")])
def test_bad_policy_says_which_key(bad, field):
    with pytest.raises(BadInput) as e:
        parse_policy(bad)
    assert e.value.field == field


def test_policy_round_trip_in_database(db):
    assert load_rate_policy(db) == DEFAULT
    save_rate_policy(db, {"weights": [30, 35, 35]})
    assert load_rate_policy(db).config.weights == (30, 35, 35)
    with pytest.raises(BadInput):
        save_rate_policy(db, {"weights": "heavy"})
    assert load_rate_policy(db).config.weights == (30, 35, 35)  # a bad policy is never stored
