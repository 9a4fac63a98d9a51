"""Calibration of the geocoder on the demo city's noisy benchmark (bench/geocode_eval): confident answers are
>= 99.5% right on the held-out half, no confident wrong grid among matchable and unmatchable queries, and matchable
rural queries get the right grid >= 95% of the time."""

from __future__ import annotations

import pytest

from bench.geocode_eval import choose_threshold, evaluate
from fixtures.city import build_city
from grids.geocode import CONFIDENT, Gazetteer


@pytest.fixture(scope="module")
def result():
    city = build_city()
    gaz = Gazetteer.from_rows(city.regions, city.roads, city.addresses)
    return evaluate(gaz, city, 800, seed=7)


def test_confident_answers_are_right_on_the_held_out_half(result):
    cal = result["calibration"]
    assert cal["chosen_on_half_a"] <= CONFIDENT          # the threshold in code is at least as strict
    assert cal["held_out_confident"] > 300
    assert cal["held_out_precision_at_threshold"] >= 0.995


def test_no_confident_wrong_grid_in_any_suite(result):
    for suite, st in result["suites"].items():
        assert st["confident_wrong"] == 0, (suite, result["wrong_confident"][:3])
    assert result["suites"]["unmatchable"]["n"] >= 150


def test_rural_and_urban_accuracy(result):
    assert result["suites"]["rural"]["accuracy_matchable"] >= 0.95
    assert result["suites"]["urban"]["accuracy_matchable"] >= 0.88
    # a place that is not in the gazetteer (unknown road / group / hamlet) is never answered with a grid
    by = result["by_noise"]["unmatchable"]
    assert by["unknown_road"]["grid_answered"] == 0 and by["unknown_group"]["grid_answered"] == 0
    # a village named in the wrong township is never a grid; an unknown village or 自然村 almost never (only
    # when it is one character from a real one of the same township, as a typo is — and then not confident)
    assert by["village_elsewhere"]["grid_answered"] == 0
    assert by["unknown_village"]["grid_answered"] <= 0.03 and by["unknown_hamlet"]["grid_answered"] <= 0.03


def test_every_confidence_bucket_means_what_it_says(result):
    """Reliability: answers with a grid are mostly right in every bucket, not only above the threshold (a
    0.6–0.7 bucket that was 28% right meant contradictions were still answered with a grid)."""
    for b in result["reliability"]:
        if b["n"] >= 20:
            assert b["right"] >= 0.9, result["reliability"]


def test_reliability_table_is_reported(result):
    top = result["reliability"][-1]
    assert top["n"] > 500 and top["right"] >= 0.995


class _R:
    def __init__(self, conf, grid):
        self.confidence, self.grid_code, self.status = conf, grid, "matched"


def test_choose_threshold_is_the_lowest_cut_that_keeps_precision():
    rows = [(None, None, None, None, "G", True, _R(0.97, "G"))] * 100 + \
        [(None, None, None, None, "G", True, _R(0.75, "X"))] + [(None, None, None, None, "G", True, _R(0.9, "G"))] * 5
    assert choose_threshold(rows) == 0.9
    assert choose_threshold(rows + [(None, None, None, None, "G", True, _R(0.99, "X"))] * 3) == 1.0
