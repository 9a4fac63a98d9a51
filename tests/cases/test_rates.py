"""三率 and friends on a hand-made month, empty denominators, ranking, 四色码, and the 涟源 figures."""

import datetime as dt
from fractions import Fraction

import pytest

from cases.calendar import TZ
from cases.rates import (
    DEFAULT_THRESHOLDS,
    Rate,
    RateConfig,
    Threshold,
    fmt_pct,
    four_colour,
    monthly_rates,
    rank,
    status_shares,
    unit_rates,
)


def at(m, d, h=10):
    return dt.datetime(2026, m, d, h, tzinfo=TZ)


def case(cid, **kw):
    base = {"id": cid, "unit": "茅塘镇", "dispatched": True, "returned_count": 0, "reopened_count": 0,
            "forwarded": False, "signed_at": None, "sign_due_at": None, "replied_at": None,
            "reply_due_at": None, "evaluated_at": None, "closed_at": None, "evaluation": None}
    base.update(kw)
    return base


# March 2026, one township. Each line says what the case contributes.
MONTH = [
    # a: signed on time, replied on time, 满意, closed in March, clean
    case("a", first_petition=True,
         sign_due_at=at(3, 3), signed_at=at(3, 2), reply_due_at=at(3, 9), replied_at=at(3, 6),
         evaluation="满意", evaluated_at=at(3, 7), closed_at=at(3, 7)),
    # b: signed late, replied late, 基本满意, closed in March, returned once
    case("b", first_petition=True,
         sign_due_at=at(3, 3), signed_at=at(3, 4), reply_due_at=at(3, 10), replied_at=at(3, 12),
         evaluation="基本满意", evaluated_at=at(3, 13), closed_at=at(3, 13), returned_count=1),
    # c: signed on time, replied on time, 不满意 and reopened, closed again in March (not resolved)
    case("c", first_petition=True,
         sign_due_at=at(3, 5), signed_at=at(3, 5, 9), reply_due_at=at(3, 12), replied_at=at(3, 11),
         evaluation="不满意", evaluated_at=at(3, 14), closed_at=at(3, 20), reopened_count=1),
    # d: never signed (sign due in March), routing corrected, reply due in March, not replied
    case("d", sign_due_at=at(3, 20), forwarded=True, reply_due_at=at(3, 27)),
    # e: signed on time, replied on time, not evaluated: 超期未评 (window ends 28 Mar), closed unevaluated
    case("e", first_petition=True,
         sign_due_at=at(3, 18), signed_at=at(3, 17), reply_due_at=at(3, 25), replied_at=at(3, 21),
         closed_at=at(3, 30)),
    # f: not dispatched (answered at intake): only in the reply cohort; solved flag False though closed;
    #    never evaluated (window ends 23 Mar): 超期未评
    case("f", dispatched=False, reply_due_at=at(3, 16), replied_at=at(3, 16, 9), closed_at=at(3, 16, 11),
         solved=False),
    # g: February case: sign and reply due in February, evaluated 满意 in March
    case("g", sign_due_at=at(2, 24), signed_at=at(2, 24), reply_due_at=at(2, 27), replied_at=at(2, 27),
         evaluation="满意", evaluated_at=at(3, 2), closed_at=at(3, 2)),
    # h: April case (sign due in April): counts nowhere in March
    case("h", sign_due_at=at(4, 2), signed_at=at(4, 1)),
]


def ids(pred):
    return {c["id"] for c in MONTH if pred(c)}


def in_march(t):
    return t is not None and t.month == 3


def test_hand_made_month():
    r = unit_rates(MONTH, 2026, 3, unit="茅塘镇")
    w = RateConfig().basic_weight

    dispatched = ids(lambda c: c["dispatched"] and in_march(c["sign_due_at"]))
    signed_ok = {i for i in dispatched
                 if (c := next(x for x in MONTH if x["id"] == i))["signed_at"] and c["signed_at"] <= c["sign_due_at"]}
    assert dispatched == {"a", "b", "c", "d", "e"} and signed_ok == {"a", "c", "e"}
    assert r.response.value == Fraction(len(signed_ok), len(dispatched))

    reply_due = ids(lambda c: in_march(c["reply_due_at"]))
    resolved = {"a", "b", "e"}  # c: 不满意, d: open, f: solved=False
    assert reply_due == {"a", "b", "c", "d", "e", "f"}
    assert r.resolution.value == Fraction(len(resolved), len(reply_due))

    on_time = {"a", "c", "e", "f"}
    assert r.on_time.value == Fraction(len(on_time), len(reply_due))

    evaluated = {"a": "满意", "b": "基本满意", "c": "不满意", "g": "满意"}
    unevaluated = {"e", "f"}          # windows ended in March, never evaluated: 超期未评 counts against 满意率
    expected_sat = (sum(v == "满意" for v in evaluated.values())
                    + w * sum(v == "基本满意" for v in evaluated.values())) / (len(evaluated) + len(unevaluated))
    assert r.satisfaction.value == expected_sat == Fraction(2 + Fraction(4, 5), 6)
    assert r.participating_satisfaction.value == Fraction(3, 4)    # 参评满意率: those who evaluated

    closed = ids(lambda c: in_march(c["closed_at"]))
    assert closed == {"a", "b", "c", "e", "f", "g"}
    clean = {i for i in closed if next(x for x in MONTH if x["id"] == i)["returned_count"] == 0
             and next(x for x in MONTH if x["id"] == i)["reopened_count"] == 0}
    # 一次性化解率 counts the first 求决 petitions only (seed 000): a, b, c, e; f and g are closed but not in it
    first = {i for i in closed if next(x for x in MONTH if x["id"] == i).get("first_petition")}
    assert first == {"a", "b", "c", "e"}
    assert r.one_time.value == Fraction(len(clean & first), len(first)) == Fraction(2, 4)
    assert r.reopen_rate.value == Fraction(len({"c"}), len(closed))
    assert r.return_rate.value == Fraction(len({"b"}), len(dispatched))
    assert r.forwarding.value == Fraction(len({"d"}), len(dispatched))
    assert r.overdue_unevaluated == len({"e", "f"})  # replied 21 and 16 Mar, 7-day windows ended unevaluated

    wr, ws, wt = RateConfig().weights
    assert r.composite == (wr * r.response.value + ws * r.resolution.value + wt * r.satisfaction.value) / (
        wr + ws + wt)
    assert r.satisfaction.pct() == "46.7%" and r.response.pct() == "60.0%"


def test_satisfaction_weight_is_configurable():
    r = unit_rates(MONTH, 2026, 3, RateConfig(basic_weight=Fraction(1)))
    assert r.satisfaction.value == Fraction(3, 6)


def test_as_of_mid_month_resolution_and_unevaluated():
    r = unit_rates(MONTH, 2026, 3, as_of=at(3, 15))
    # by 15 Mar a, b and c were due and only a and b are closed; d, e and f are due later in the month and not
    # yet met, so they are not in the cohort yet (a running month is cut at as_of); e's window has not ended
    assert r.resolution.value == Fraction(2, 3) and r.overdue_unevaluated == 0
    # at the month's end all six are due
    assert unit_rates(MONTH, 2026, 3).resolution.denominator == 6


def test_empty_denominators_are_none():
    r = unit_rates([], 2026, 3)
    for name in ("response", "resolution", "satisfaction", "on_time", "return_rate", "reopen_rate",
                 "one_time", "forwarding"):
        assert getattr(r, name).value is None
        assert getattr(r, name).pct() == "—"
    assert r.composite is None and r.overdue_unevaluated == 0
    only_h = unit_rates([MONTH[-1]], 2026, 3)
    assert only_h.response.value is None


def test_composite_missing_component():
    no_eval = [c for c in MONTH if c["evaluation"] is None and not c["replied_at"]]
    assert unit_rates(no_eval, 2026, 3).composite is None
    r = unit_rates(no_eval, 2026, 3, RateConfig(renormalize=True))
    assert r.composite == (10 * r.response.value + 45 * r.resolution.value) / 55


def test_fmt_pct_rounds_half_up_only_for_display():
    assert fmt_pct(Fraction(1, 8)) == "12.5%"
    assert fmt_pct(Fraction(1, 8), 0) == "13%"
    assert fmt_pct(Fraction(2, 3), 2) == "66.67%"
    assert fmt_pct(None) == "—"
    assert Rate(Fraction(0), 5).value == 0 and Rate(Fraction(0), 0).value is None


def test_monthly_rates_groups_and_rank():
    recs = MONTH + [case(f"x{i}", unit="桥头河镇", sign_due_at=at(3, 3), signed_at=at(3, 2),
                         reply_due_at=at(3, 9), replied_at=at(3, 6), evaluation="满意",
                         evaluated_at=at(3, 7), closed_at=at(3, 7)) for i in range(3)]
    recs.append(case("y", unit="六亩塘镇", sign_due_at=at(4, 3)))
    by_unit = monthly_rates(recs, 2026, 3)
    assert set(by_unit) == {"茅塘镇", "桥头河镇", "六亩塘镇"}
    ranked = rank(by_unit)
    assert [(r, u.unit) for r, u in ranked] == [(1, "桥头河镇"), (2, "茅塘镇"), (None, "六亩塘镇")]
    assert by_unit["桥头河镇"].composite == 1


def test_rank_ties_share_a_place():
    recs = [case(f"{u}{i}", unit=u, sign_due_at=at(3, 3), signed_at=at(3, 2)) for u in "ABC" for i in range(2)]
    recs.append(case("C9", unit="C", sign_due_at=at(3, 3)))
    ranked = rank(monthly_rates(recs, 2026, 3), by="response")
    assert [(r, u.unit) for r, u in ranked] == [(1, "A"), (1, "B"), (3, "C")]


def test_four_colour_reasons():
    r = unit_rates(MONTH, 2026, 3)
    c = four_colour(r)
    # response 60% < 80%, resolution 50%, satisfaction 46.7%: below every bound; reopen 1/6 ≈ 16.7% → orange.
    # Seed 004: red is the last place in the ranking only, so the worst a unit's own rates give is orange
    assert c.code == "orange" and c.label == "橙" and c.consequence == "信访局联合督导组专项督查督办"
    assert four_colour(r, red_by_threshold=True).code == "red"      # a city's policy may say otherwise
    assert "满意率 46.7% 低于 90%" in c.reasons
    assert "响应率 60.0% 低于 95%" in c.reasons
    assert "重办率 16.7% 高于 5%" in c.reasons


@pytest.mark.parametrize(("satisfied", "colour"), [(19, "green"), (18, "yellow"), (17, "orange"), (15, "orange")])
def test_four_colour_thresholds(satisfied, colour):
    recs = [case(f"s{i}", evaluation="满意" if i < satisfied else "不满意", evaluated_at=at(3, 5))
            for i in range(20)]
    th = (Threshold("satisfaction", Fraction(95, 100), Fraction(90, 100), Fraction(85, 100)),)
    c = four_colour(unit_rates(recs, 2026, 3), th)
    assert c.code == colour
    if colour == "green":
        assert c.reasons == ("各项指标达标",)
    else:
        assert c.reasons == (f"满意率 {fmt_pct(Fraction(satisfied, 20))} 低于 95%",)


def test_red_is_the_last_place_only_as_seed_004_says():
    """Seed 004: "凡是化解清零排名末位的赋予'红码',在推进会表态发言,由市领导直接约谈" — red is the last place
    in the ranking, and each colour names its consequence (绿 表扬, 黄 督导组推动, 橙 专项督查督办, 红 约谈).
    (A unit ranked 42 of 44 was red on invented thresholds.)"""
    dreadful = [case(f"d{i}", evaluation="不满意", evaluated_at=at(3, 5)) for i in range(10)]
    c = four_colour(unit_rates(dreadful, 2026, 3))
    assert c.code == "orange" and c.to_dict()["consequence"] == "信访局联合督导组专项督查督办"
    last = four_colour(unit_rates(dreadful, 2026, 3), last_place=True)
    assert last.code == "red" and last.consequence == "推进会表态发言，市领导直接约谈"
    good = four_colour(unit_rates([case("g", evaluation="满意", evaluated_at=at(3, 5))], 2026, 3))
    assert (good.code, good.consequence) == ("green", "予以表扬")


def test_four_colour_last_place_and_no_data():
    good = [case("g1", evaluation="满意", evaluated_at=at(3, 5))]
    assert four_colour(unit_rates(good, 2026, 3)).code == "green"
    c = four_colour(unit_rates(good, 2026, 3), last_place=True)
    assert c.code == "red" and "排名末位" in c.reasons
    empty = four_colour(unit_rates([], 2026, 3), DEFAULT_THRESHOLDS)
    assert empty.code is None and empty.label == "无数据"


# -- 涟源: 4,982 matters since July: 3,050 closed, 1,633 with a resolution plan, 299 in progress -----

LIANYUAN = {"已息访办结": 3050, "已有化解方案": 1633, "正在办理": 299}


def test_lianyuan_counts_add_up():
    assert sum(LIANYUAN.values()) == 4982


def test_lianyuan_shares_and_rates_on_a_synthetic_set():
    recs = [{"status": k} for k, n in LIANYUAN.items() for _ in range(n)]
    shares = status_shares(recs)
    total = sum(LIANYUAN.values())
    for k, n in LIANYUAN.items():
        assert shares[k][0] == n and shares[k][1].value == Fraction(n, total)
    assert shares["已息访办结"][1].pct() == "61.2%"
    assert shares["已有化解方案"][1].pct() == "32.8%"
    assert shares["正在办理"][1].pct() == "6.0%"

    # 3,050 closed in one month: one-time resolution 98.72% means 3,011 closed without return/reopen;
    # 参评满意率 99.38% (w = 1): 1,600 满意 of 1,610 evaluated.
    closed, clean = LIANYUAN["已息访办结"], 3011
    evaluated, satisfied = 1610, 1600
    month = []
    for i in range(closed):
        month.append(case(f"l{i}", first_petition=True, closed_at=at(8, 20), reopened_count=0 if i < clean else 1,
                          evaluation=("满意" if i < satisfied else "不满意") if i < evaluated else None,
                          evaluated_at=at(8, 19) if i < evaluated else None))
    r = unit_rates(month, 2026, 8, RateConfig(basic_weight=Fraction(1)))
    assert r.one_time.value == Fraction(clean, closed) and r.one_time.pct(2) == "98.72%"
    assert r.satisfaction.value == Fraction(satisfied, evaluated) and r.satisfaction.pct(2) == "99.38%"


def test_participating_satisfaction_is_the_seeds_figure():
    """Seed 000 (涟源): "责任单位参评满意率99.38%" — 满意 and 基本满意 both count over all who evaluated; the
    weighted 满意率 (基本满意 at 0.8) stays beside it under its own name."""
    recs = [case(f"e{i}", evaluation="满意" if i < 1200 else "基本满意" if i < 1282 else "不满意",
                 evaluated_at=at(3, 5)) for i in range(1290)]
    r = unit_rates(recs, 2026, 3)
    assert r.participating_satisfaction.value == Fraction(1282, 1290)
    assert r.participating_satisfaction.pct(2) == "99.38%"
    assert r.satisfaction.value == (1200 + Fraction(4, 5) * 82) / 1290
    assert r.to_dict()["participating_satisfaction"]["display"] == "99.4%"
