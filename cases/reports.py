"""Monthly 三率 reports per unit (月汇总): compute from case_record, snapshot as drafts, publish and freeze.

SQL fetches the month's relevant rows only (cases whose sign/reply due, evaluation, closure or
evaluation-window end falls in the month); `cases.rates` does every count, exactly. Published months
are frozen twice over: the `rate_snapshot_no_change` trigger refuses UPDATE/DELETE of a published row,
and `snapshot_month` refuses (Conflict, with the diff) to recompute a published month; `diff_month`
shows what a recomputation would change without writing anything.
"""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

from cases import rates as rates_mod
from cases.auth import User, case_scope
from cases.calendar import to_local
from cases.deadlines import BACKLOG_DAYS
from cases.rates import RateConfig, UnitRates, four_colour, month_bounds, rank
from gis.errors import BadInput, Conflict, Forbidden, NotFound

# unit type → case_record column (a whitelist: only these names are ever put into SQL)
UNIT_COLUMNS: dict[str, str] = {
    "grid": "grid_code",
    "village": "village_code",
    "township": "township_code",
    "county": "county_code",
    "department": "lead_department",
}
UNIT_TYPES = tuple(UNIT_COLUMNS)
UNIT_TYPE_LABELS: dict[str, str] = {
    "grid": "网格", "village": "村（社区）", "township": "乡镇（街道）", "county": "县（市、区）",
    "department": "事权部门",
}

# Fields rates.unit_rates reads, fetched for the month.
_FIELDS = ("c.id, c.status, c.received_at, c.dispatched_at, c.sign_due_at, c.signed_at, c.reply_due_at, "
           "c.accept_due_at, c.accepted_at, c.handle_due_at, "
           "c.replied_at, c.evaluated_at, c.closed_at, c.evaluation, c.returned_count, c.reopened_count, "
           "c.forwarded, c.solved, c.first_petition, c.eval_due_at, c.prior_evaluations, c.prior_evaluated_at")

# Cases that count in month [start, end): any cohort instant in the month. Merged duplicates (一稿多投)
# are counted once, on the case they were merged into. Every instant of a case comes at or after its receipt,
# so a case received after the month cannot count in it: `received_at < end` skips the later monthly
# partitions (migration 0090). There is no lower bound: a 积案 received long ago may close in the month.
_MONTH_WHERE = (
    "c.status <> 'merged' AND c.merged_into IS NULL AND c.received_at < %(end)s AND ("
    "(c.sign_due_at >= %(start)s AND c.sign_due_at < %(end)s) OR "
    "(c.reply_due_at >= %(start)s AND c.reply_due_at < %(end)s) OR "
    "(c.accept_due_at >= %(start)s AND c.accept_due_at < %(end)s) OR "
    "(c.handle_due_at >= %(start)s AND c.handle_due_at < %(end)s) OR "
    "(c.evaluated_at >= %(start)s AND c.evaluated_at < %(end)s) OR "
    "(c.closed_at >= %(start)s AND c.closed_at < %(end)s) OR "
    "(c.replied_at >= %(wstart)s AND c.replied_at < %(wend)s) OR "
    "(c.eval_due_at >= %(start)s AND c.eval_due_at < %(end)s) OR "
    "(cardinality(c.prior_evaluations) > 0 AND EXISTS (SELECT 1 FROM unnest(c.prior_evaluated_at) p(t) "
    "WHERE p.t >= %(start)s AND p.t < %(end)s)))"
)


def _check_unit_type(unit_type: str) -> str:
    if unit_type not in UNIT_COLUMNS:
        raise BadInput(f"unknown unit type {unit_type!r}; one of {', '.join(UNIT_TYPES)}", field="unit_type")
    return UNIT_COLUMNS[unit_type]


def fetch_month_records(db, year: int, month: int, unit_type: str, config: RateConfig | None = None,
                        user: User | None = None) -> list[dict]:
    """The month's relevant case rows as rates.py records (unit in `unit`), scoped when a user is given."""
    col = _check_unit_type(unit_type)
    cfg = config or RateConfig()
    start, end = month_bounds(year, month)
    window = dt.timedelta(days=cfg.eval_window_days)
    params = {"start": start, "end": end, "wstart": start - window, "wend": end - window}
    where = [_MONTH_WHERE, f"c.{col} IS NOT NULL"]
    if user is not None:
        scope, sparams = case_scope(user)
        where.append(scope)
        params.update(sparams)
    rows = db.fetchall(f"SELECT {_FIELDS}, c.{col} AS unit FROM case_record c WHERE {' AND '.join(where)} "
                       f"ORDER BY c.id", params)
    for r in rows:
        r["dispatched"] = r["dispatched_at"] is not None
    return rows


def unit_names(db, unit_type: str) -> dict[str, str]:
    """Code → name of every unit of a type (regions and grids of the active generation, departments)."""
    _check_unit_type(unit_type)
    if unit_type == "department":
        rows = db.fetchall("SELECT code, name FROM department ORDER BY code")
    elif unit_type == "grid":
        # Older generations first so the active generation's name wins for codes kept across redraws.
        rows = db.fetchall("SELECT g.code, g.name FROM grid g JOIN generation n ON n.id = g.generation "
                           "ORDER BY n.active, g.generation, g.code")
    else:
        rows = db.fetchall("SELECT r.code, r.name FROM region r JOIN generation n ON n.id = r.generation "
                           "WHERE r.level = %s ORDER BY n.active, r.generation, r.code", (unit_type,))
    return {r["code"]: r["name"] for r in rows}


def _active_units(db, unit_type: str) -> list[str]:
    if unit_type == "department":
        return [r["code"] for r in db.fetchall("SELECT code FROM department ORDER BY code")]
    if unit_type == "grid":
        sql = "SELECT code FROM grid WHERE generation = (SELECT id FROM generation WHERE active) ORDER BY code"
        return [r["code"] for r in db.fetchall(sql)]
    sql = ("SELECT code FROM region WHERE level = %s AND generation = (SELECT id FROM generation WHERE active) "
           "ORDER BY code")
    return [r["code"] for r in db.fetchall(sql, (unit_type,))]


_PETITION_SQL = """
SELECT c.{col} AS unit,
  count(*) FILTER (WHERE c.channel = 'online_petition' AND c.received_at >= %(start)s AND c.received_at < %(end)s)
    AS online,
  count(*) FILTER (WHERE c.channel = 'online_petition' AND c.received_at >= %(start)s AND c.received_at < %(end)s
    AND EXISTS (SELECT 1 FROM case_record e WHERE e.reporter_key = c.reporter_key AND e.channel = ANY(%(chans)s)
                AND (e.received_at, e.id) < (c.received_at, c.id))) AS online_repeat,
  count(*) FILTER (WHERE c.received_at >= %(start)s AND c.received_at < %(end)s) AS received,
  count(*) FILTER (WHERE c.received_at >= %(start)s AND c.received_at < %(end)s
    AND EXISTS (SELECT 1 FROM case_record e WHERE e.reporter_key = c.reporter_key AND e.channel = ANY(%(chans)s)
                AND e.id <> c.id AND e.closed_at IS NOT NULL AND e.closed_at < c.received_at)) AS again,
  count(*) FILTER (WHERE c.received_at + %(backlog)s < %(end)s
    AND (c.closed_at IS NULL OR c.closed_at > c.received_at + %(backlog)s)) AS backlog,
  count(*) FILTER (WHERE c.received_at + %(backlog)s < %(end)s
    AND c.closed_at > c.received_at + %(backlog)s AND c.closed_at < %(end)s) AS backlog_resolved
FROM case_record c
WHERE c.channel = ANY(%(chans)s) AND c.status <> 'merged' AND c.merged_into IS NULL AND c.{col} IS NOT NULL
  AND c.received_at < %(end)s AND {scope}
GROUP BY 1
"""


def petition_figures(db, year: int, month: int, unit_type: str, user: User | None = None,
                     backlog_days: int = BACKLOG_DAYS) -> dict[str, dict]:
    """The 信访 figures of the seeds per unit for a month, exactly (one person = one reporter key):

    - 重复网信率 `online_repeat`: 网上信访 received in M filed by a person with an earlier 信访 / 网上信访 received
      in M (seed 002: "全部网上信访件1159件，其中重复网信652件");
    - 再次信访率 `again`: 信访 received in M from a person whose earlier 信访 had been closed (the matter
      "倒流", seeds 002/004) / 信访 received in M;
    - 积案化解率 `backlog_resolution`: 信访 cases that became 积案 (open `backlog_days` after receipt) by the end
      of M and were closed by then / all that became 积案; `backlog_open` is what 化解清零 still has to do.
    """
    from cases.deadlines import PETITION_CHANNELS

    col = _check_unit_type(unit_type)
    start, end = month_bounds(year, month)
    params = {"start": start, "end": end, "chans": sorted(PETITION_CHANNELS),
              "backlog": dt.timedelta(days=backlog_days)}
    scope = "true"
    if user is not None:
        scope, sparams = case_scope(user)
        params.update(sparams)
    out = {}
    for r in db.fetchall(_PETITION_SQL.format(col=col, scope=scope), params):
        out[r["unit"]] = {
            "online_repeat": rates_mod.Rate(Fraction(r["online_repeat"]), r["online"]),
            "again": rates_mod.Rate(Fraction(r["again"]), r["received"]),
            "backlog_resolution": rates_mod.Rate(Fraction(r["backlog_resolved"]), r["backlog"]),
            "backlog_open": r["backlog"] - r["backlog_resolved"],
        }
    return out


_NO_PETITION = {"online_repeat": rates_mod.Rate(Fraction(0), 0), "again": rates_mod.Rate(Fraction(0), 0),
                "backlog_resolution": rates_mod.Rate(Fraction(0), 0), "backlog_open": 0}


def metrics_of(ur: UnitRates) -> dict:
    """JSON-safe metrics of a unit (each rate with exact numerator/denominator) plus the exact composite."""
    m = ur.to_dict()
    m.pop("unit", None)
    m["composite_exact"] = None if ur.composite is None else str(ur.composite)
    return m


def compute_month(db, year: int, month: int, unit_type: str, config: RateConfig | None = None,
                  user: User | None = None, *, thresholds=None, last_place_red: bool | None = None,
                  include_empty: bool | None = None, as_of: dt.datetime | None = None,
                  red_by_threshold: bool | None = None) -> list[dict]:
    """Rates of every unit of a type for a month, ranked by composite, with names and 四色码 (reasons).

    Each row: unit_type, unit_code, unit_name, rank, rates (exact UnitRates), metrics (JSON-safe),
    colour, colour_label, colour_reasons, colour_reason. Units without cases are listed (no data) when
    `include_empty` (default: only for the unscoped, official report, i.e. user is None). The last-ranked
    unit(s) are red (嘉兴: 排名末位赋红码) when `last_place_red` and more than one rank exists.
    Whatever is not given comes from the city's stored rate policy (cases.policy).
    """
    if config is None or thresholds is None or last_place_red is None or red_by_threshold is None:
        from cases.policy import load_rate_policy

        policy = load_rate_policy(db)
        config = config or policy.config
        thresholds = policy.thresholds if thresholds is None else thresholds
        last_place_red = policy.last_place_red if last_place_red is None else last_place_red
        red_by_threshold = policy.red_by_threshold if red_by_threshold is None else red_by_threshold
    cfg = config
    records = fetch_month_records(db, year, month, unit_type, cfg, user)
    by_unit = rates_mod.monthly_rates(records, year, month, "unit", cfg, as_of=as_of)
    if include_empty is None:
        include_empty = user is None
    if include_empty:
        for code in _active_units(db, unit_type):
            if code not in by_unit:
                by_unit[code] = rates_mod.unit_rates([], year, month, cfg, unit=code, as_of=as_of)
    names = unit_names(db, unit_type)
    petition = petition_figures(db, year, month, unit_type, user)
    ranked = rank(by_unit)
    ranks = [r for r, _ in ranked if r is not None]
    last = max(ranks) if ranks and max(ranks) > 1 else None
    out = []
    for r, ur in ranked:
        colour = four_colour(ur, thresholds, last_place=last_place_red and last is not None and r == last,
                             red_by_threshold=red_by_threshold)
        out.append({
            "unit_type": unit_type, "unit_code": ur.unit, "unit_name": names.get(ur.unit, ""), "rank": r,
            "rates": ur, "colour": colour.code, "colour_label": colour.label,
            "metrics": {**metrics_of(ur), **{k: v.to_dict() if isinstance(v, rates_mod.Rate) else v
                                             for k, v in petition.get(ur.unit, _NO_PETITION).items()}},
            "colour_reasons": list(colour.reasons), "colour_reason": "；".join(colour.reasons),
            "colour_consequence": colour.consequence,
        })
    return out


def to_json(rows: list[dict]) -> list[dict]:
    """compute_month rows without the exact UnitRates object (for JSON answers)."""
    return [{k: v for k, v in r.items() if k != "rates"} for r in rows]


# -- snapshots ---------------------------------------------------------------------------------------

def _month_key(year: int, month: int) -> dt.date:
    month_bounds(year, month)  # validates
    return dt.date(year, month, 1)


def _lock_month(cur, key: dt.date) -> None:
    # One writer per month: snapshot and publish of the same month serialize here.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('rate_snapshot:' || %s))", (key.isoformat(),))


def _snapshot_rows(db, year, month, config, unit_types, as_of) -> list[dict]:
    rows = []
    for ut in unit_types:
        for r in compute_month(db, year, month, ut, config, as_of=as_of):
            metrics = dict(r["metrics"], rank=r["rank"], colour_reasons=r["colour_reasons"])
            rows.append({"unit_type": ut, "unit_code": r["unit_code"], "unit_name": r["unit_name"],
                         "metrics": metrics, "colour": r["colour"], "colour_reason": r["colour_reason"]})
    return rows


def _diff(stored: list[dict], fresh: list[dict]) -> dict:
    old = {(r["unit_type"], r["unit_code"]): r for r in stored}
    new = {(r["unit_type"], r["unit_code"]): r for r in fresh}
    changed = []
    for key in sorted(old.keys() & new.keys()):
        o, n = old[key], new[key]
        fields = {}
        for name in (*rates_mod.RATE_LABELS, "overdue_unevaluated", "rank"):
            ov, nv = _cmp_value(o["metrics"].get(name)), _cmp_value(n["metrics"].get(name))
            if ov != nv:
                fields[name] = {"old": ov, "new": nv}
        if o["colour"] != n["colour"]:
            fields["colour"] = {"old": o["colour"], "new": n["colour"]}
        if fields:
            changed.append({"unit_type": key[0], "unit_code": key[1], "changes": fields})
    return {"added": [{"unit_type": t, "unit_code": c} for t, c in sorted(new.keys() - old.keys())],
            "removed": [{"unit_type": t, "unit_code": c} for t, c in sorted(old.keys() - new.keys())],
            "changed": changed, "identical": not changed and old.keys() == new.keys()}


def _cmp_value(v):
    if isinstance(v, dict):  # a Rate: compare the exact parts
        return f"{v.get('numerator')}/{v.get('denominator')}"
    return v


def _stored(cur, key: dt.date, unit_types) -> list[dict]:
    cur.execute("SELECT unit_type, unit_code, unit_name, metrics, colour, colour_reason, published_at "
                "FROM rate_snapshot WHERE month = %s AND unit_type = ANY(%s)", (key, list(unit_types)))
    return list(cur.fetchall())


def _recompute(db, year, month, config, unit_types, as_of) -> tuple[dt.date, list[dict]]:
    """The month's key and freshly computed snapshot rows (unit types checked against the whitelist)."""
    for ut in unit_types:
        _check_unit_type(ut)
    return _month_key(year, month), _snapshot_rows(db, year, month, config, unit_types, as_of)


def diff_month(db, year: int, month: int, config: RateConfig | None = None, *, unit_types=UNIT_TYPES,
               as_of: dt.datetime | None = None) -> dict:
    """What recomputing a month would change against its stored snapshot; writes nothing."""
    key, fresh = _recompute(db, year, month, config, unit_types, as_of)
    with db.cursor() as cur:
        stored = _stored(cur, key, unit_types)
    published = any(r["published_at"] is not None for r in stored)
    return {"month": key.isoformat(), "published": published, **_diff(stored, fresh)}


def snapshot_month(db, year: int, month: int, config: RateConfig | None = None, *, unit_types=UNIT_TYPES,
                   as_of: dt.datetime | None = None) -> dict:
    """Write (or refresh) the month's draft rows in rate_snapshot; Conflict with the diff once published."""
    key, fresh = _recompute(db, year, month, config, unit_types, as_of)
    with db.cursor() as cur:
        _lock_month(cur, key)
        stored = _stored(cur, key, unit_types)
        if any(r["published_at"] is not None for r in stored):
            raise Conflict(f"{key:%Y年%m月} 的月度指标已发布，不能重算覆盖", field="month",
                           details={"month": key.isoformat(), **_diff(stored, fresh)})
        keep = {(r["unit_type"], r["unit_code"]) for r in fresh}
        removed = [(r["unit_type"], r["unit_code"]) for r in stored if (r["unit_type"], r["unit_code"]) not in keep]
        for ut, code in removed:
            cur.execute("DELETE FROM rate_snapshot WHERE month = %s AND unit_type = %s AND unit_code = %s",
                        (key, ut, code))
        for r in fresh:
            # The WHERE guard is belt and braces: a published row is never touched (and the trigger refuses).
            cur.execute(
                "INSERT INTO rate_snapshot (month, unit_type, unit_code, unit_name, metrics, colour, colour_reason, "
                "computed_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, now()) "
                "ON CONFLICT (month, unit_type, unit_code) DO UPDATE SET unit_name = EXCLUDED.unit_name, "
                "metrics = EXCLUDED.metrics, colour = EXCLUDED.colour, colour_reason = EXCLUDED.colour_reason, "
                "computed_at = EXCLUDED.computed_at WHERE rate_snapshot.published_at IS NULL",
                (key, r["unit_type"], r["unit_code"], r["unit_name"], json.dumps(r["metrics"], ensure_ascii=False),
                 r["colour"], r["colour_reason"]))
    return {"month": key.isoformat(), "written": len(fresh), "removed": len(removed),
            "by_unit_type": {ut: sum(r["unit_type"] == ut for r in fresh) for ut in unit_types}}


def publish_month(db, year: int, month: int, now: dt.datetime | None = None) -> dict:
    """Freeze a month's draft snapshot (published_at); NotFound without drafts, Conflict when already published."""
    from cases.policy import load_rate_policy

    key = _month_key(year, month)
    task_types = load_rate_policy(db).task_unit_types
    with db.cursor() as cur:
        _lock_month(cur, key)
        cur.execute("SELECT count(*) FILTER (WHERE published_at IS NULL) AS drafts, "
                    "count(*) FILTER (WHERE published_at IS NOT NULL) AS published FROM rate_snapshot "
                    "WHERE month = %s", (key,))
        n = cur.fetchone()
        if n["published"]:
            raise Conflict(f"{key:%Y年%m月} 的月度指标已发布", field="month")
        if not n["drafts"]:
            raise NotFound(f"{key:%Y年%m月} 尚无月度指标草稿，请先生成", field="month")
        cur.execute("UPDATE rate_snapshot SET published_at = coalesce(%s, now()) WHERE month = %s "
                    "AND published_at IS NULL", (now, key))
        count = cur.rowcount
        # each colour sets its consequence in motion (seed 004): one task per coloured unit of the types the
        # city's policy names (task_unit_types: counties, townships and departments by default), with a due date
        published = to_local(now) if now else to_local(dt.datetime.now(dt.UTC))
        cur.execute("INSERT INTO colour_task (month, unit_type, unit_code, unit_name, colour, consequence, reason, "
                    "due_date, created_at) SELECT month, unit_type, unit_code, unit_name, colour, "
                    "(%(cons)s::jsonb ->> colour), colour_reason, %(due)s, %(at)s FROM rate_snapshot "
                    "WHERE month = %(m)s AND colour IN ('green', 'yellow', 'orange', 'red') "
                    "AND unit_type = ANY(%(types)s) ON CONFLICT DO NOTHING",
                    {"cons": json.dumps(rates_mod.CONSEQUENCES, ensure_ascii=False), "m": key, "at": published,
                     "due": published.date() + dt.timedelta(days=CONSEQUENCE_DAYS),
                     "types": list(task_types)})
        tasks = cur.rowcount
    return {"month": key.isoformat(), "published": count, "tasks": tasks}


CONSEQUENCE_DAYS = 10   # a colour's consequence (表扬 … 约谈) is due this many days after the month is published


TASK_ROLES = frozenset({"admin", "city_center", "county_center", "township_center"})


def complete_colour_task(db, user: User, task_id: int, now: dt.datetime | None = None) -> dict:
    """Mark a 四色码 consequence done (the 表扬 given, the 约谈 held): upper centers of the unit's jurisdiction;
    another jurisdiction's task answers 404, as one that does not exist; a task done before is 409."""
    if user.role not in TASK_ROLES:
        raise Forbidden(f"role {user.role} does not close 四色码 tasks", field="role")
    row = db.fetchone("UPDATE colour_task SET done_at = %s WHERE id = %s AND unit_code LIKE %s AND done_at IS NULL "
                      "RETURNING id", (now or dt.datetime.now(dt.UTC), task_id, user.region_prefix + "%"))
    if row is None:
        if db.fetchone("SELECT 1 AS x FROM colour_task WHERE id = %s AND unit_code LIKE %s",
                       (task_id, user.region_prefix + "%")) is None:
            raise NotFound(f"task {task_id} not found")
        raise Conflict(f"task {task_id} is already done", field="task_id")
    return next(t for t in colour_tasks(db, user) if t["id"] == task_id)


def colour_tasks(db, user: User, month: tuple[int, int] | None = None, open_only: bool = False) -> list[dict]:
    """The 四色码 consequences of the units in the user's jurisdiction, newest month first, red first."""
    where, params = ["unit_code LIKE %(prefix)s"], {"prefix": user.region_prefix + "%"}
    if month is not None:
        where.append("month = %(m)s")
        params["m"] = _month_key(*month)
    if open_only:
        where.append("done_at IS NULL")
    rows = db.fetchall(
        "SELECT id, month, unit_type, unit_code, unit_name, colour, consequence, reason, due_date, created_at, "
        f"done_at FROM colour_task WHERE {' AND '.join(where)} ORDER BY month DESC, "
        "array_position(ARRAY['red', 'orange', 'yellow', 'green'], colour), unit_type, unit_code LIMIT 2000", params)
    return [{**r, "month": r["month"].strftime("%Y-%m"), "colour_label": rates_mod.COLOURS[r["colour"]],
             "due_date": r["due_date"].isoformat(), "created_at": to_local(r["created_at"]).isoformat(),
             "done_at": to_local(r["done_at"]).isoformat() if r["done_at"] else None} for r in rows]


def get_snapshot(db, year: int, month: int, unit_type: str) -> list[dict]:
    """Stored snapshot rows of a month and unit type, ranked; each with `state` 草稿 (draft) or 已发布."""
    _check_unit_type(unit_type)
    key = _month_key(year, month)
    rows = db.fetchall(
        "SELECT month, unit_type, unit_code, unit_name, metrics, colour, colour_reason, computed_at, published_at "
        "FROM rate_snapshot WHERE month = %s AND unit_type = %s "
        "ORDER BY (metrics->>'rank')::int NULLS LAST, unit_code", (key, unit_type))
    for r in rows:
        r["rank"] = r["metrics"].get("rank")
        r["state"] = "published" if r["published_at"] is not None else "draft"
        r["state_label"] = "已发布" if r["published_at"] is not None else "草稿"
    return rows


def month_state(db, year: int, month: int) -> str | None:
    """'published', 'draft' or None (no snapshot) for a month."""
    row = db.fetchone("SELECT count(*) AS n, count(published_at) AS p FROM rate_snapshot WHERE month = %s",
                      (_month_key(year, month),))
    if not row["n"]:
        return None
    return "published" if row["p"] else "draft"


def exact(metric: dict) -> Fraction | None:
    """The exact value of a stored rate (metrics[name]) as a Fraction, None for an empty denominator."""
    if metric is None or not metric.get("denominator"):
        return None
    return Fraction(metric["numerator"]) / metric["denominator"]
