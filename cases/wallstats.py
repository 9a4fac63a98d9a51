"""The command-center wall's numbers: KPIs, live-case counts per unit, clusters and points by map window.

Every query here reads `case_record` through `cases.auth.case_scope`, so a county operator's wall shows
their county and nothing else. Live layers read open cases only (`OPEN_SQL`, matching the partial indexes
of migration 0050), so their cost follows the number of open cases, not the size of the case table.
For the region roles (centers, dispatchers, admins) the KPI panel and the unit layers read the live aggregates
of migration 0095 (case_wall_open, case_wall_flow; the guard applies to their rows' accused units and
persons), so a refresh costs O(aggregate rows), not O(today's + open cases): a surge does not slow the wall.
Grid officers and departments, whose scope is not a region, count their cases directly.
The month's 三率 are the sums of the townships' exact numerators and denominators as `/api/rates` gives
them (cases.reports.compute_month), and the township 四色码 come from the same rows.
"""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction

from cases import workflow
from cases.auth import User, case_scope, guard_hides, region_prefix, region_scoped
from cases.calendar import TZ, to_local
from cases.case_reads import URGENCY_SQL
from cases.deadlines import CHANNELS
from cases.partitions import open_months
from gis.errors import BadInput, NotFound

# Open = not in a terminal state. Written exactly like the partial indexes' predicate (migration 0050).
OPEN_SQL = "c.status NOT IN ('closed', 'merged', 'rejected')"
assert set(workflow.TERMINAL_STATES) == {"closed", "merged", "rejected"}

# The instant an open case waits for next, as cases.service.next_due reports it (NULL when it waits for
# the citizen: replied/evaluated).
DUE_SQL = ("CASE WHEN c.status IN ('received', 'accepted') THEN c.accept_due_at "
           "WHEN c.status IN ('dispatched', 'returned') THEN c.sign_due_at "
           "WHEN c.status IN ('signed', 'handling', 'reopened') THEN coalesce(c.reply_due_at, c.handle_due_at) END")

# Status groups the wall colours by (the legend): label, statuses.
STATUS_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "intake": ("待受理", ("received", "accepted")),
    "sign": ("待签收", ("dispatched", "returned")),
    "handling": ("办理中", ("signed", "handling", "reopened")),
    "citizen": ("待评价", ("replied", "evaluated")),
}
GROUP_OF = {s: g for g, (_, states) in STATUS_GROUPS.items() for s in states}
# URGENCY_SQL (the key of case_urgency_idx) equals DUE_SQL wherever DUE_SQL is not null: a range of deadlines
# is read through that index. Migration 0095 keys case_wall_open by STATUS_GROUPS and the minute of DUE_SQL.

# unit level → (case column, boundary table filter); only these names are put into SQL
UNIT_LEVELS = {"county": "county_code", "township": "township_code", "grid": "grid_code"}
POINT_LIMIT = 3000
# where a unit's count is drawn: its centroid when inside, else a point surely on it
_LABEL_POINT = ("CASE WHEN ST_Covers(geom, ST_Centroid(geom)) THEN ST_Centroid(geom) "
                "ELSE ST_PointOnSurface(geom) END")
TREND_DAYS = 7


def event_labels() -> dict:
    """Chinese labels of the loop's states and actions, for the case history on the wall."""
    return {"states": dict(workflow.STATES), "actions": {"receive": "接诉登记", **workflow.ACTIONS}}


def _now(now: dt.datetime | None) -> dt.datetime:
    return to_local(now) if now else dt.datetime.now(TZ)


def _day_start(t: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(t.date(), dt.time(), TZ)


def _scoped(user: User, *where: str) -> tuple[str, dict]:
    scope, params = case_scope(user)
    return " AND ".join([scope, *where]), params


def _scoped_open(db, user: User, *where: str) -> tuple[str, dict]:
    """As _scoped, for open cases: OPEN_SQL and the months that hold open cases (cases.partitions)."""
    months, mp = open_months(db)
    where_sql, params = _scoped(user, OPEN_SQL, months, *where)
    return where_sql, {**params, **mp}


def kpi(db, user: User, now: dt.datetime | None = None, live: bool | None = None) -> dict:
    """Today's intake by channel, open/overdue/due-within-24 h/emergency counts, the 7-day intake and
    closure trend and this month's top categories, over the cases the user may see. `live`: read the live
    aggregates (default: for region users) or count the cases directly (False; the reference in tests)."""
    live = _use_live(user, live)
    past = now is not None
    now = _now(now)
    day0 = _day_start(now)
    since = day0 - dt.timedelta(days=TREND_DAYS - 1)
    month0 = day0.replace(day=1)

    # today's channels, the 7-day intake and closure trend and the month's categories from one read
    if live:
        received = _live_flow(db, user, min(since, month0), now, past)
        counts = (_live_open(db, user, now) or [dict.fromkeys(_OPEN_METRICS, 0)])[0]
    else:
        received, counts = _direct_flow(db, user, min(since, month0), since, now), _direct_open(db, user, now)
    by_channel: dict = {}
    intake_by_day: dict = {}
    closed_by_day: dict = {}
    by_cat: dict = {}
    for r in received:
        if r["closed"]:
            closed_by_day[r["d"]] = closed_by_day.get(r["d"], 0) + r["closed"]
        if not r["n"]:
            continue
        if r["d"] == day0.date():
            by_channel[r["channel"]] = by_channel.get(r["channel"], 0) + r["n"]
        if r["d"] >= since.date():
            intake_by_day[r["d"]] = intake_by_day.get(r["d"], 0) + r["n"]
        if r["d"] >= month0.date():
            by_cat[r["cat"]] = by_cat.get(r["cat"], 0) + r["n"]
    today = [{"channel": k, "label": v, "count": by_channel.get(k, 0)} for k, v in CHANNELS.items()]
    today += [{"channel": k, "label": k, "count": n} for k, n in by_channel.items() if k not in CHANNELS]

    days = [(since + dt.timedelta(days=i)).date() for i in range(TREND_DAYS)]
    trend = [{"day": d.isoformat(), "intake": intake_by_day.get(d, 0), "closed": closed_by_day.get(d, 0)}
             for d in days]

    cats = _top_categories(db, by_cat)

    return {
        "as_of": now.isoformat(),
        "today": {"total": sum(by_channel.values()), "by_channel": today},
        "open": counts["open"], "overdue": counts["overdue"], "due_24h": counts["due_24h"],
        "emergency": counts["emergency"],
        "by_status": [{"group": g, "label": label, "count": counts[f"g_{g}"]}
                      for g, (label, _) in STATUS_GROUPS.items()],
        "trend": trend,
        "top_categories": cats,
        "month": month0.strftime("%Y-%m"),
    }


def _top_categories(db, counts: dict, limit: int = 8) -> list[dict]:
    """Counts per category code summed to their top-level category (未分类 for none or an unknown code),
    largest first, then by code."""
    rows = db.fetchall("SELECT code, name, parent_code FROM category")
    parent = {r["code"]: r["parent_code"] for r in rows}
    name = {r["code"]: r["name"] for r in rows}

    def root(code):
        seen = set()
        while code in parent and parent[code] is not None and code not in seen:
            seen.add(code)
            code = parent[code]
        return code if code in parent else None

    tops: dict = {}
    for code, n in counts.items():
        r = root(code)
        key = (r or "", name.get(r, "未分类") if r else "未分类")
        tops[key] = tops.get(key, 0) + n
    ranked = sorted(tops.items(), key=lambda kv: (-kv[1], kv[0][0]))[:limit]
    return [{"code": c, "name": nm, "count": n} for (c, nm), n in ranked]


def _direct_flow(db, user: User, lo: dt.datetime, since: dt.datetime, now: dt.datetime) -> list[dict]:
    """As _live_flow, counted over the case table: cases received since `lo` (one pass: in a surge today's cases
    are most of them) and cases closed since `since`, up to `now`."""
    where, p = _scoped(user, "c.received_at >= %(lo)s", "c.received_at <= %(now)s")
    p.update(lo=lo, now=now)
    rows = [{**r, "closed": 0} for r in db.fetchall(
        f"SELECT (c.received_at AT TIME ZONE (SELECT gridgov_time_zone()))::date AS d, c.channel, "
        f"c.category_code AS cat, count(*) AS n FROM case_record c WHERE {where} GROUP BY 1, 2, 3", p)]
    where, p = _scoped(user, "c.closed_at IS NOT NULL", "c.closed_at >= %(since)s", "c.closed_at <= %(now)s")
    p.update(since=since, now=now)
    return rows + [{**r, "channel": None, "cat": None, "n": 0} for r in db.fetchall(
        f"SELECT (c.closed_at AT TIME ZONE (SELECT gridgov_time_zone()))::date AS d, count(*) AS closed "
        f"FROM case_record c WHERE {where} GROUP BY 1", p)]


def _direct_open(db, user: User, now: dt.datetime) -> dict:
    """As _live_open for the whole scope, counted over the open cases of the case table."""
    where, p = _scoped_open(db, user)
    p.update(now=now, soon=now + dt.timedelta(hours=24))
    return db.fetchone(
        f"SELECT count(*) AS open, count(*) FILTER (WHERE {DUE_SQL} < %(now)s) AS overdue, "
        f"count(*) FILTER (WHERE {DUE_SQL} >= %(now)s AND {DUE_SQL} < %(soon)s) AS due_24h, "
        f"count(*) FILTER (WHERE c.emergency) AS emergency, "
        + ", ".join(f"count(*) FILTER (WHERE c.status IN ({', '.join(repr(s) for s in states)})) AS g_{g}"
                    for g, (_, states) in STATUS_GROUPS.items())
        + f" FROM case_record c WHERE {where}", p)


def _use_live(user: User, live: bool | None) -> bool:
    """The live aggregates serve region users (keyed by their scope); `live=False` forces the direct count."""
    return region_scoped(user) and live is not False


_OPEN_METRICS = ("open", "overdue", "due_24h", "emergency", *(f"g_{g}" for g in STATUS_GROUPS))


def _minute(t: dt.datetime) -> dt.datetime:
    """The whole minute `t` falls in: case_wall_open's due_minute bins (date_bin from 2000-01-01 UTC)."""
    return t.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)


def _live_open(db, user: User, now: dt.datetime, col: str | None = None, parent: str | None = None) -> list[dict]:
    """Open cases of a region user's scope from case_wall_open, per `col` (a UNIT_LEVELS column; one row for the
    whole scope when None), in one statement: the aggregate's rows the user may see (scope key and guard on the
    rows' accused units and persons), plus the exact part of the current minute. Overdue = deadlines in minutes
    before now's minute + those of now's minute before now; due within 24 h likewise at both ends. Units with open
    cases only, by code."""
    minute = _minute(now)
    where, p = _scoped_open(db, user)
    p.update(now=now, m=minute, m24=minute + dt.timedelta(hours=24), now24=now + dt.timedelta(hours=24))
    w_unit = c_unit = ""
    if col:
        w_unit, c_unit = f" AND w.{col} <> ''", f" AND c.{col} IS NOT NULL"
        if parent:
            w_unit += f" AND w.{col} LIKE %(parent)s"
            c_unit += f" AND c.{col} LIKE %(parent)s"
            p["parent"] = parent + "%"
    code_w, code_c = (f"w.{col}", f"c.{col}") if col else ("''", "''")
    sql = (
        f"SELECT code, sum(n) AS open, "
        f"coalesce(sum(n) FILTER (WHERE due_minute < %(m)s), 0) + sum(x_over) AS overdue, "
        f"coalesce(sum(n) FILTER (WHERE due_minute >= %(m)s AND due_minute < %(m24)s), 0) + sum(x_soon) AS due_24h, "
        f"coalesce(sum(n) FILTER (WHERE emergency), 0) AS emergency, "
        + ", ".join(f"coalesce(sum(n) FILTER (WHERE grp = '{g}'), 0) AS g_{g}" for g in STATUS_GROUPS)
        + f" FROM ("
        # the aggregate's rows the user may see
        f"SELECT {code_w} AS code, w.grp, w.emergency, w.due_minute, w.n, 0 AS x_over, 0 AS x_soon "
        f"FROM case_wall_open w WHERE w.scope_key LIKE %(scope_prefix)s AND NOT {guard_hides('w')}{w_unit} "
        # the current minute's deadlines, exactly: those before now are overdue, not due; and the minute 24 h on
        f"UNION ALL SELECT {code_c}, NULL, false, 'infinity', 0, "
        f"({DUE_SQL} >= %(m)s AND {DUE_SQL} < %(now)s)::int, "
        f"({DUE_SQL} >= %(m24)s AND {DUE_SQL} < %(now24)s)::int - ({DUE_SQL} >= %(m)s AND {DUE_SQL} < %(now)s)::int "
        f"FROM case_record c WHERE {where}{c_unit} AND ({URGENCY_SQL} >= %(m)s AND {URGENCY_SQL} < %(now)s "
        f"OR {URGENCY_SQL} >= %(m24)s AND {URGENCY_SQL} < %(now24)s)"
        f") u GROUP BY code HAVING sum(n) > 0 ORDER BY code")
    return [{k: (int(v) if k in _OPEN_METRICS else v) for k, v in r.items()} for r in db.fetchall(sql, p)]


def _live_flow(db, user: User, since: dt.datetime, now: dt.datetime, past: bool) -> list[dict]:
    """Cases received (`n`) and closed (`closed`) per local day × channel × category code from `since` (a local
    midnight) to `now`, over a region user's scope (the guard applied on the rows' accused units and persons),
    from case_wall_flow. `past`: `now` is a given instant, not the present, so the cases received or closed
    later that day are taken off (counted from the case table)."""
    _, p = case_scope(user)
    day0 = _day_start(now)
    p.update(lo=since.date(), today=day0.date(), now=now, tomorrow=day0 + dt.timedelta(days=1))
    sql = (f"SELECT w.day AS d, w.channel, w.category_code AS cat, w.received, w.closed FROM case_wall_flow w "
           f"WHERE w.day >= %(lo)s AND w.day <= %(today)s AND w.scope_key LIKE %(scope_prefix)s "
           f"AND NOT {guard_hides('w')}")
    if past:
        later, _ = _scoped(user, "c.received_at > %(now)s", "c.received_at < %(tomorrow)s")
        closed_later, _ = _scoped(user, "c.closed_at > %(now)s", "c.closed_at < %(tomorrow)s")
        sql += (f" UNION ALL SELECT %(today)s::date, c.channel, coalesce(c.category_code, ''), -1, 0 "
                f"FROM case_record c WHERE {later} "
                f"UNION ALL SELECT %(today)s::date, c.channel, coalesce(c.category_code, ''), 0, -1 "
                f"FROM case_record c WHERE {closed_later}")
    return db.fetchall(f"SELECT d, channel, cat, sum(received)::int AS n, sum(closed)::int AS closed "
                       f"FROM ({sql}) u GROUP BY 1, 2, 3", p)


def month_rates(db, user: User, now: dt.datetime | None = None) -> dict:
    """This month's 三率 over the user's townships (sums of /api/rates?unit=township) and the 四色码 of each
    township, the red and orange ones listed with their reasons."""
    from cases import reports

    now = _now(now)
    rows = reports.compute_month(db, now.year, now.month, "township", user=user)
    totals = {}
    for name in ("response", "resolution", "satisfaction"):
        num = sum((Fraction(getattr(r["rates"], name).numerator) for r in rows), Fraction(0))
        den = sum(getattr(r["rates"], name).denominator for r in rows)
        totals[name] = {"numerator": str(num), "denominator": den,
                        "value": None if den == 0 else float(num / den)}
    units = [{"code": r["unit_code"], "name": r["unit_name"], "rank": r["rank"], "colour": r["colour"],
              "colour_label": r["colour_label"], "reason": r["colour_reason"],
              "composite": r["metrics"]["composite"]} for r in rows]
    warn = sorted((u for u in units if u["colour"] in ("red", "orange")),
                  key=lambda u: (u["colour"] != "red", -(u["rank"] or 0)))
    return {"month": now.strftime("%Y-%m"), "rates": totals, "townships": units, "warn": warn}


def _check_code(value: str | None, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not (value.isdigit() and len(value) <= 20):
        raise BadInput(f"{field} must be a region or grid code (digits)", field=field)
    return value


def unit_counts(db, user: User, level: str, parent: str | None = None, bbox=None,
                now: dt.datetime | None = None, live: bool | None = None) -> list[dict]:
    """Open, overdue and emergency cases per county, township or grid the user may see (units with open
    cases only), each with a label point on the unit and, for townships, the area for the density. `live` as
    for kpi()."""
    if level not in UNIT_LEVELS:
        raise BadInput("level must be county, township or grid", field="level")
    parent = _check_code(parent, "parent")
    col = UNIT_LEVELS[level]
    now = _now(now)
    where, p = _scoped_open(db, user, f"c.{col} IS NOT NULL")
    p.update(now=now)
    if parent:
        where += f" AND c.{col} LIKE %(parent)s"
        p["parent"] = parent + "%"
    if level == "grid" and not parent and bbox is None:
        raise BadInput("grid counts need a parent township or a bbox", field="parent")
    if _use_live(user, live):
        counts = [{k: r[k] for k in ("code", "open", "overdue", "emergency")}
                  for r in _live_open(db, user, now, col=col, parent=parent)]
    else:
        counts = db.fetchall(
            f"SELECT c.{col} AS code, count(*) AS open, count(*) FILTER (WHERE {DUE_SQL} < %(now)s) AS overdue, "
            f"count(*) FILTER (WHERE c.emergency) AS emergency FROM case_record c WHERE {where} GROUP BY 1 ORDER BY 1",
            p)
    shapes = unit_shapes(db, level)
    rows = []
    for r in counts:
        shape = shapes.get(r["code"])
        if shape is None:
            continue
        if bbox is not None and not (bbox[0] <= shape["lon"] <= bbox[2] and bbox[1] <= shape["lat"] <= bbox[3]):
            continue
        rows.append({**r, **shape})
    return rows


_SHAPES: dict[tuple, dict] = {}


def unit_shapes(db, level: str) -> dict[str, dict]:
    """Name, label point and area (km², regions) of every unit of a level in the active generation; computed once
    per database and generation (boundaries of a generation never change)."""
    gen = db.fetchone("SELECT id FROM generation WHERE active")
    key = (getattr(db, "dsn", id(db)), gen["id"] if gen else None, level)
    hit = _SHAPES.get(key)
    if hit is not None:
        return hit
    if level == "grid":
        sql = (f"SELECT code, name, ST_X(p) AS lon, ST_Y(p) AS lat, NULL::float AS km2 FROM (SELECT code, name, "
               f"{_LABEL_POINT} AS p FROM grid WHERE generation = (SELECT id FROM generation WHERE active)) s")
        rows = db.fetchall(sql)
    else:
        sql = (f"SELECT code, name, ST_X(p) AS lon, ST_Y(p) AS lat, km2 FROM (SELECT code, name, {_LABEL_POINT} AS p, "
               f"ST_Area(geom::geography) / 1e6 AS km2 FROM region WHERE level = %s AND "
               f"generation = (SELECT id FROM generation WHERE active)) s")
        rows = db.fetchall(sql, (level,))
    out = {r["code"]: {"name": r["name"], "lon": round(r["lon"], 5), "lat": round(r["lat"], 5),
                       "km2": None if r["km2"] is None else round(r["km2"], 2)} for r in rows}
    if len(_SHAPES) > 64:
        _SHAPES.clear()
    _SHAPES[key] = out
    return out


def _bbox(bbox) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise BadInput("bbox must be four numbers: west,south,east,north", field="bbox") from None
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90) or any(map(math.isnan, (x0, y0, x1, y1))):
        raise BadInput("bbox must be west,south,east,north in degrees (WGS84)", field="bbox")
    return x0, y0, x1, y1


def parse_bbox(raw: str | None):
    """'w,s,e,n' → a checked tuple (None when absent)."""
    if raw in (None, ""):
        return None
    return _bbox(raw.split(","))


def live_cases(db, user: User, bbox, zoom: int, point_zoom: int = 16, cell_px: int = 64,
               now: dt.datetime | None = None) -> dict:
    """Open cases inside a map window: clusters on a square grid of `cell_px` pixels below `point_zoom`,
    single points (at most POINT_LIMIT, most urgent first) from it on."""
    x0, y0, x1, y1 = _bbox(bbox)
    if not 0 <= zoom <= 22:
        raise BadInput("zoom must be 0..22", field="zoom")
    now = _now(now)
    where, p = _scoped_open(db, user, "c.geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)")
    p.update(x0=x0, y0=y0, x1=x1, y1=y1, now=now)
    if zoom >= point_zoom:
        p["limit"] = POINT_LIMIT
        rows = db.fetchall(
            f"SELECT c.id, round(ST_X(c.geom)::numeric, 6)::float AS lon, round(ST_Y(c.geom)::numeric, 6)::float "
            f"AS lat, c.status, c.emergency, coalesce({DUE_SQL} < %(now)s, false) AS overdue FROM case_record c "
            f"WHERE {where} ORDER BY {DUE_SQL} NULLS LAST, c.id LIMIT %(limit)s", p)
        for r in rows:
            r["group"] = GROUP_OF.get(r["status"], "handling")
        return {"kind": "points", "points": rows, "truncated": len(rows) == POINT_LIMIT}
    p["cell"] = cell_px * 360.0 / (256 * 2 ** zoom)
    rows = db.fetchall(
        f"SELECT count(*) AS n, round(avg(ST_X(c.geom))::numeric, 6)::float AS lon, "
        f"round(avg(ST_Y(c.geom))::numeric, 6)::float AS lat, "
        f"count(*) FILTER (WHERE {DUE_SQL} < %(now)s) AS overdue, count(*) FILTER (WHERE c.emergency) AS emergency "
        f"FROM case_record c WHERE {where} GROUP BY ST_SnapToGrid(c.geom, %(cell)s) ORDER BY n DESC", p)
    return {"kind": "clusters", "clusters": rows}


def grid_cases(db, user: User, grid_code: str, limit: int = 60, now: dt.datetime | None = None) -> dict:
    """A grid's cases the user may see: open ones, most urgent first, then the latest closed ones."""
    grid_code = _check_code(grid_code, "grid")
    now = _now(now)
    g = db.fetchone("SELECT code, name FROM grid WHERE code = %s ORDER BY generation DESC LIMIT 1", (grid_code,))
    if g is None:
        raise NotFound(f"grid {grid_code} not found", field="grid")
    where, p = _scoped(user, "c.grid_code = %(grid)s")
    p.update(grid=grid_code, now=now, limit=limit)
    rows = db.fetchall(
        f"SELECT c.id, c.case_no, c.title, c.status, c.emergency, c.received_at, c.channel, "
        f"coalesce(k.name, '') AS category, {DUE_SQL} AS due_at, ({OPEN_SQL}) AS is_open "
        f"FROM case_record c LEFT JOIN category k ON k.code = c.category_code WHERE {where} "
        f"ORDER BY ({OPEN_SQL}) DESC, CASE WHEN {OPEN_SQL} THEN {DUE_SQL} END NULLS LAST, c.received_at DESC, c.id "
        f"LIMIT %(limit)s", p)
    out = []
    for r in rows:
        due = r.pop("due_at")
        out.append({**r, "received_at": to_local(r["received_at"]).isoformat(),
                    "due_at": to_local(due).isoformat() if due else None,
                    "overdue": bool(r["is_open"] and due is not None and due < now),
                    "status_label": workflow.STATES.get(r["status"], r["status"]),
                    "channel_label": CHANNELS.get(r["channel"], r["channel"]),
                    "group": GROUP_OF.get(r["status"])})
    return {"grid": {"code": g["code"], "name": g["name"]}, "cases": out}


def jurisdiction(db, user: User) -> dict:
    """The region the user's wall opens on: its name, level and bounding box (the whole city for admins)."""
    code = user.region_code
    row = db.fetchone(
        "SELECT code, name, level, ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, ST_YMax(geom) y1 "
        "FROM region WHERE code = %s AND generation = (SELECT id FROM generation WHERE active)", (code,))
    if row is None and user.grid_code:
        row = db.fetchone(
            "SELECT code, name, 'grid' AS level, ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, "
            "ST_YMax(geom) y1 FROM grid WHERE code = %s AND generation = (SELECT id FROM generation WHERE active)",
            (user.grid_code,))
    if row is None:
        row = db.fetchone(
            "SELECT code, name, level, ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, ST_YMax(geom) y1 "
            "FROM region WHERE level = 'city' AND generation = (SELECT id FROM generation WHERE active) "
            "AND code LIKE %s ORDER BY code LIMIT 1", (region_prefix(code) + "%",))
    if row is None:
        row = db.fetchone(
            "SELECT code, name, level, ST_XMin(geom) x0, ST_YMin(geom) y0, ST_XMax(geom) x1, ST_YMax(geom) y1 "
            "FROM region WHERE level = 'city' AND generation = (SELECT id FROM generation WHERE active) LIMIT 1")
    if row is None:
        raise NotFound("尚未加载城市数据")
    city = db.fetchone("SELECT name FROM region WHERE level = 'city' AND generation = "
                       "(SELECT id FROM generation WHERE active) ORDER BY code LIMIT 1")
    return {"code": row["code"], "name": row["name"], "level": row["level"], "city": city["name"] if city else "",
            "bbox": [row["x0"], row["y0"], row["x1"], row["y1"]]}


def centers(db, user: User, levels: tuple[str, ...], bbox=None) -> list[dict]:
    """综治中心 of the given levels inside the user's jurisdiction (optionally a map window)."""
    bad = set(levels) - {"city", "county", "township", "village"}
    if bad or not levels:
        raise BadInput("levels must be among city, county, township, village", field="levels")
    p = {"levels": list(levels), "prefix": region_prefix(user.region_code) + "%"}
    where = ["level = ANY(%(levels)s)"]
    if user.role not in ("admin", "dispatcher"):
        # a center above the user's region stays visible (the county center on a township's wall)
        where.append("(region_code LIKE %(prefix)s OR region_code = ANY(%(above)s))")
        code = user.region_code
        p["above"] = [code[:4] + "00", code[:6], code[:9]]
    if bbox is not None:
        x0, y0, x1, y1 = _bbox(bbox)
        p.update(x0=x0, y0=y0, x1=x1, y1=y1)
        where.append("geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)")
    rows = db.fetchall(f"SELECT code, name, level, round(ST_X(geom)::numeric, 5)::float AS lon, "
                       f"round(ST_Y(geom)::numeric, 5)::float AS lat FROM center WHERE {' AND '.join(where)} "
                       f"ORDER BY level, code LIMIT 3000", p)
    return rows
