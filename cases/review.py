"""Township review (乡镇研判): per-grid counts and 三率 of a period from the `case_day_stats` aggregate.

The aggregate (cases/migrations/0060_case_day_stats.sql) keeps, per unit × category × day, the counts of
each rate's cohort on the day of its own instant, exactly as cases/rates.py defines them; a period's
rates are sums over its days, so a township × year answers from a few thousand rows instead of a join
over every case. For a calendar month the per-grid rates equal `reports.compute_month(..., 'grid')`
(tests/cases/test_review.py proves it); for other periods 解决率 counts closures before the end of the
reply-due month.

Who may review: the centers (city, county, township, village) and the admin, for units inside their
jurisdiction. The numbers are counts only; case lists (heat points, clusters) go through `case_scope`.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from cases.auth import User, case_scope
from cases.rates import Rate, RateConfig, UnitRates, composite_score, four_colour
from gis.errors import BadInput, Forbidden, NotFound

REVIEW_ROLES = ("admin", "city_center", "county_center", "township_center", "village_center")
COUNTS = ("received", "sign_cohort", "signed_ok", "returned", "forwarded", "reply_cohort", "resolved",
          "replied_on_time", "evaluated", "eval_sat", "eval_basic", "eval_unsat", "closed", "closed_clean",
          "reopened", "first_closed", "first_clean", "unevaluated")
MAX_DAYS = 400
MAX_POINTS = 20_000


def check_access(db, user: User, unit_code: str) -> dict:
    """The region row of a township/county/village the user may review (403/404 otherwise)."""
    if user.role not in REVIEW_ROLES:
        raise Forbidden("研判仅限各级综治中心 (review is for the centers)", field="role")
    if not isinstance(unit_code, str) or not unit_code.isdigit() or len(unit_code) not in (6, 9, 12):
        raise BadInput("unit must be a county, township or village code", field="unit")
    row = db.fetchone("SELECT code, name, level FROM region WHERE code = %s AND generation = "
                      "(SELECT id FROM generation WHERE active)", (unit_code,))
    if row is None or not unit_code.startswith(user.region_prefix):
        raise NotFound(f"no unit {unit_code} in your jurisdiction", field="unit")
    return row


def parse_period(start: str | None, end: str | None, month: str | None) -> tuple[dt.date, dt.date]:
    """[start, end) as dates: a month YYYY-MM, or from/to (inclusive end) YYYY-MM-DD."""
    try:
        if month:
            m = dt.datetime.strptime(month, "%Y-%m").date()
            nxt = dt.date(m.year + (m.month == 12), m.month % 12 + 1, 1)
            return m, nxt
        a = dt.date.fromisoformat(start or "")
        b = dt.date.fromisoformat(end or "") + dt.timedelta(days=1)
    except ValueError:
        raise BadInput("period: give month=YYYY-MM or from=YYYY-MM-DD&to=YYYY-MM-DD", field="month") from None
    if not (dt.date(2000, 1, 1) <= a < b <= dt.date(2101, 1, 1)) or (b - a).days > MAX_DAYS:
        raise BadInput(f"period must be 1..{MAX_DAYS} days between 2000 and 2100", field="from")
    return a, b


def previous_period(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period of the same length just before (the previous calendar month for a month)."""
    if start.day == 1 and end.day == 1 and (end.year * 12 + end.month) - (start.year * 12 + start.month) == 1:
        p = dt.date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)
        return p, start
    return start - (end - start), start


def _cat_filter(categories, params: dict) -> str:
    if not categories:
        return ""
    cats = [c for c in categories if c]
    for c in cats:
        if not (c.isalnum() and len(c) <= 20):
            raise BadInput(f"bad category code {c!r}", field="category")
    params["cats"] = [c + "%" for c in cats]
    return " AND category_code LIKE ANY(%(cats)s)"


# Days not yet over count only what has been met (cases.rates cuts a running month at now the same way, to the
# instant; here to the day): a milestone due today or later enters its cohort once met — a signed case is signed
# on time, a resolved one was replied on time — and an evaluation window not yet ended is not 超期未评.
# Today as an uncorrelated scalar subquery: evaluated once per statement (an InitPlan). Written inline, the
# STABLE gridgov_time_zone() (a lookup in app_setting) ran for every row and every FILTER: 9.4 s of the month's
# ranking over 290,000 aggregate rows at 10,000,000 cases.
_PAST = "day < (SELECT (now() AT TIME ZONE gridgov_time_zone())::date)"
_RUNNING = {"sign_cohort": "signed_ok", "reply_cohort": "resolved", "replied_on_time": "resolved",
            "returned": None, "forwarded": None, "unevaluated": None}


def _count_columns() -> str:
    """The summed COUNTS of case_day_stats, days not yet over counted as _RUNNING says."""
    def col(c):
        if c not in _RUNNING:
            return f"sum({c})::int AS {c}"
        met = _RUNNING[c]
        future = f" + coalesce(sum({met}) FILTER (WHERE NOT ({_PAST})), 0)" if met else ""
        return f"(coalesce(sum({c}) FILTER (WHERE {_PAST}), 0){future})::int AS {c}"
    return ", ".join(col(c) for c in COUNTS)


def unit_counts(db, prefix: str, start: dt.date, end: dt.date, categories=None) -> dict[str, dict]:
    """Summed counts per unit_code under `prefix` for [start, end)."""
    params = {"prefix": prefix + "%", "start": start, "end": end}
    cat = _cat_filter(categories, params)
    rows = db.fetchall(f"SELECT unit_code, {_count_columns()} FROM case_day_stats WHERE unit_code LIKE %(prefix)s "
                       f"AND day >= %(start)s AND day < %(end)s{cat} GROUP BY unit_code", params)
    return {r.pop("unit_code"): r for r in rows}


def rates_of(counts: dict, config: RateConfig, unit=None) -> UnitRates:
    """UnitRates from summed counts (the aggregate's columns), with the same exact fractions as rates.py."""
    c = {k: counts.get(k, 0) or 0 for k in COUNTS}
    response = Rate(Fraction(c["signed_ok"]), c["sign_cohort"])
    resolution = Rate(Fraction(c["resolved"]), c["reply_cohort"])
    satisfaction = Rate(c["eval_sat"] + config.basic_weight * c["eval_basic"], c["evaluated"] + c["unevaluated"])
    return UnitRates(
        unit=unit, response=response, resolution=resolution, satisfaction=satisfaction,
        on_time=Rate(Fraction(c["replied_on_time"]), c["reply_cohort"]),
        return_rate=Rate(Fraction(c["returned"]), c["sign_cohort"]),
        reopen_rate=Rate(Fraction(c["reopened"]), c["closed"]),
        one_time=Rate(Fraction(c["first_clean"]), c["first_closed"]),
        forwarding=Rate(Fraction(c["forwarded"]), c["sign_cohort"]), overdue_unevaluated=c["unevaluated"],
        composite=composite_score((response.value, resolution.value, satisfaction.value), config),
        counts=c, participating_satisfaction=Rate(Fraction(c["eval_sat"] + c["eval_basic"]), c["evaluated"]))


def _add(a: dict, b: dict) -> dict:
    return {k: (a.get(k, 0) or 0) + (b.get(k, 0) or 0) for k in COUNTS}


def _rate_json(ur: UnitRates) -> dict:
    def v(r):
        return None if r.value is None else float(r.value)
    return {"response": v(ur.response), "resolution": v(ur.resolution), "satisfaction": v(ur.satisfaction),
            "on_time": v(ur.on_time), "one_time": v(ur.one_time), "return_rate": v(ur.return_rate),
            "composite": None if ur.composite is None else float(ur.composite * 100),
            "display": {"response": ur.response.pct(), "resolution": ur.resolution.pct(),
                        "satisfaction": ur.satisfaction.pct()}}


def review(db, user: User, unit_code: str, start: dt.date, end: dt.date, categories=None) -> dict:
    """Everything the review page shows except the map layers: per-grid table with the previous period,
    the unit's totals and 四色码 with reasons, the weekly trend and the categories."""
    from cases.policy import load_rate_policy

    unit = check_access(db, user, unit_code)
    policy = load_rate_policy(db)
    cfg = policy.config
    pstart, pend = previous_period(start, end)
    cur, prev = unit_counts(db, unit_code, start, end, categories), unit_counts(db, unit_code, pstart, pend,
                                                                                categories)
    grids = db.fetchall("SELECT g.code, g.name, g.village_code, r.name AS village_name FROM grid g "
                        "LEFT JOIN region r ON r.code = g.village_code AND r.generation = g.generation "
                        "WHERE g.generation = (SELECT id FROM generation WHERE active) AND g.code LIKE %s "
                        "ORDER BY g.code", (unit_code + "%",))
    rows, total, ptotal = [], {}, {}
    for g in grids:
        c, p = cur.get(g["code"], {}), prev.get(g["code"], {})
        ur, pr = rates_of(c, cfg, g["code"]), rates_of(p, cfg, g["code"])
        rows.append({"grid_code": g["code"], "grid_name": g["name"], "village_name": g["village_name"],
                     "received": ur.counts["received"], "prev_received": pr.counts["received"],
                     "rates": _rate_json(ur), "prev_rates": _rate_json(pr), "counts": ur.counts})
    grid_codes = {g["code"] for g in grids}
    for c in cur.values():
        total = _add(total, c)
    for c in prev.values():
        ptotal = _add(ptotal, c)
    unlocated = sum(c["received"] for code, c in cur.items() if code not in grid_codes)
    tr, ptr = rates_of(total, cfg, unit_code), rates_of(ptotal, cfg, unit_code)
    colour = official_colour(db, unit, end - dt.timedelta(days=1), policy)
    params = {"prefix": unit_code + "%", "start": start, "end": end}
    cat = _cat_filter(categories, params)
    weeks = db.fetchall(f"SELECT date_trunc('week', day)::date AS week, sum(received)::int AS received, "
                        f"sum(closed)::int AS closed FROM case_day_stats WHERE unit_code LIKE %(prefix)s AND "
                        f"day >= %(start)s AND day < %(end)s{cat} GROUP BY 1 ORDER BY 1", params)
    cats = db.fetchall(f"SELECT s.category_code, coalesce(k.name, '未分类') AS name, sum(s.received)::int AS "
                       f"received FROM case_day_stats s LEFT JOIN category k ON k.code = s.category_code "
                       f"WHERE s.unit_code LIKE %(prefix)s AND s.day >= %(start)s AND s.day < %(end)s{cat} "
                       f"GROUP BY 1, 2 HAVING sum(s.received) > 0 ORDER BY 3 DESC, 1 LIMIT 15", params)
    return {"unit": {"code": unit["code"], "name": unit["name"], "level": unit["level"]},
            "period": {"from": start.isoformat(), "to": (end - dt.timedelta(days=1)).isoformat()},
            "previous": {"from": pstart.isoformat(), "to": (pend - dt.timedelta(days=1)).isoformat()},
            "totals": {"received": tr.counts["received"], "prev_received": ptr.counts["received"],
                       "unlocated_to_grid": unlocated, "rates": _rate_json(tr), "prev_rates": _rate_json(ptr),
                       "counts": tr.counts},
            "colour": colour,
            "grids": rows,
            "weeks": [{"week": w["week"].isoformat(), "received": w["received"], "closed": w["closed"]}
                      for w in weeks],
            "categories": cats}


# 四色码 is assigned per calendar month over all units of a level (嘉兴: the last place is red), so a unit's
# colour is that of the month its period ends in, as the official monthly report gives it.
_LEVEL_DIGITS = {"county": 6, "township": 9, "village": 12}


def official_colour(db, unit: dict, day: dt.date, policy=None) -> dict:
    """The unit's 四色码 for the month of `day` as the city assigns it, with reasons, rank and source.

    The month's stored snapshot (draft or published) when there is one; else computed from case_day_stats
    over every unit of the same level, ranked, the last place red — equal to
    reports.compute_month(db, year, month, level) (tests/cases/test_review_colour.py)."""
    from cases import reports
    from cases.policy import load_rate_policy
    from cases.rates import COLOURS, rank

    level = unit["level"]
    month = f"{day.year}年{day.month}月"
    stored = reports.get_snapshot(db, day.year, day.month, level)
    for r in stored:
        if r["unit_code"] == unit["code"]:
            return {"code": r["colour"], "label": COLOURS.get(r["colour"], "无数据"),
                    "reasons": r["metrics"].get("colour_reasons") or [r["colour_reason"]], "rank": r["rank"],
                    "of": sum(x["rank"] is not None for x in stored), "month": month, "source": r["state_label"]}
    policy = policy or load_rate_policy(db)
    start = day.replace(day=1)
    end = dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    n = _LEVEL_DIGITS[level]
    rows = db.fetchall(f"SELECT left(unit_code, {n}) AS code, {_count_columns()} FROM case_day_stats "
                       f"WHERE length(unit_code) >= {n} AND day >= %s AND day < %s GROUP BY 1", (start, end))
    units = {r["code"]: rates_of(r, policy.config, r["code"]) for r in rows}
    ranked = rank(units)
    ranks = [r for r, _ in ranked if r is not None]
    last = max(ranks) if ranks and max(ranks) > 1 else None
    for r, ur in ranked:
        if ur.unit == unit["code"]:
            c = four_colour(ur, policy.thresholds, last_place=policy.last_place_red and last is not None and r == last,
                            red_by_threshold=policy.red_by_threshold)
            return {**c.to_dict(), "rank": r, "of": len(ranks), "month": month, "source": "实时计算"}
    return {"code": None, "label": "无数据", "reasons": ["本月无可考核数据"], "rank": None, "of": len(ranks),
            "month": month, "source": "实时计算"}


def _period_where(unit_code: str, start: dt.date, end: dt.date, categories, params: dict) -> list[str]:
    """Predicates on case_record `c`: located under the unit, received in [start, end), in the categories."""
    params.update(prefix=unit_code + "%", start=start, end=end)
    where = ["coalesce(c.grid_code, c.village_code, c.township_code, '') LIKE %(prefix)s",
             "c.received_at >= (%(start)s::date::timestamp AT TIME ZONE gridgov_time_zone())",
             "c.received_at < (%(end)s::date::timestamp AT TIME ZONE gridgov_time_zone())",
             "c.status <> 'merged'"]
    if categories:
        where.append(_cat_filter(categories, params).replace(" AND category_code", "c.category_code"))
    return where


def review_clusters(db, user: User, unit_code: str, start: dt.date, end: dt.date, categories=None) -> dict:
    """类案 of the unit and period among the cases the user may see (bounded cell clustering), named."""
    from cases.clusters import cell_clusters

    check_access(db, user, unit_code)
    scope, params = case_scope(user)
    where = _period_where(unit_code, start, end, categories, params)
    found = cell_clusters(db, scope, params, eps_m=300, min_samples=5, window_days=(end - start).days,
                          where=tuple(where))
    names = {r["code"]: r["name"] for r in db.fetchall("SELECT code, name FROM category")}
    for c in found:
        c["category_name"] = names.get(c["category_code"], "未分类")
    return {"clusters": found[:50], "count": len(found)}


def heat_points(db, user: User, unit_code: str, start: dt.date, end: dt.date, categories=None) -> dict:
    """Case points of the unit and period the user may see, with their week index (bounded)."""
    check_access(db, user, unit_code)
    scope, params = case_scope(user)
    where = _period_where(unit_code, start, end, categories, params)
    params["lim"] = MAX_POINTS + 1
    rows = db.fetchall(
        f"SELECT ST_Y(c.geom) lat, ST_X(c.geom) lon, ((c.received_at AT TIME ZONE (SELECT gridgov_time_zone()))::date "
        f"- %(start)s::date) / 7 AS week FROM case_record c WHERE {scope} AND c.geom IS NOT NULL "
        f"AND {' AND '.join(where)} ORDER BY c.id LIMIT %(lim)s", params)
    truncated = len(rows) > MAX_POINTS
    rows = rows[:MAX_POINTS]
    nweeks = max(1, -(-(end - start).days // 7))
    return {"points": [[round(r["lat"], 6), round(r["lon"], 6), int(r["week"])] for r in rows],
            "weeks": [(start + dt.timedelta(days=7 * i)).isoformat() for i in range(nweeks)],
            "truncated": truncated}
