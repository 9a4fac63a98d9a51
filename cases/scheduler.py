"""The reminder worker (一天一催，三天一督): scan open cases, record notifications, deliver them.

Run from a CLI or a timer, never inside a web request. Two phases, both batched:
1. scan — open cases with a milestone due within the reminder horizon or overdue are read in id order
   (keyset pages of `batch_size`); `cases.deadlines.reminders_due` decides the notices; each becomes a
   `notification` row keyed by the notice's `dedupe_key` (INSERT … ON CONFLICT DO NOTHING), so running
   twice the same day records nothing twice. A newly recorded 督办 also appends a `supervise` event to
   the case's log (actor role `system`).
2. deliver — unsent rows are handed to the Notifier one by one and stamped `sent_at`; a failed delivery
   stays unsent and is retried by the next run. Rows are locked with SKIP LOCKED, so two workers never
   deliver the same row.
Every run also makes the monthly partitions of the cases and events of the next months
(`cases.partitions.ensure_ahead`), so intake always has its month's partition.
Recipients: a 催办 goes to whoever handles the case (lead department, else the grid officer, else the
handling region's 综治中心); a 督办 goes to the 综治中心 one level above the handling level. Every recipient
passes the conflict-of-interest guard (`cases.guard.may_touch`): a unit or person the case accuses — or a
region under an accused one — is skipped for the next one up, and delivery checks the guard again (a case
can gain an accusation through a merge after its notice was recorded; such a notice is suppressed).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable

from cases.calendar import to_local
from cases.deadlines import MILESTONE_FIELDS, ReminderPolicy, reminders_due
from cases.guard import Party, may_touch, party_for_department, party_for_recipient
from cases.notify import Notifier
from cases.partitions import ensure_ahead, open_months
from cases.workflow import OPEN_STATES
from gis.errors import BadInput

log = logging.getLogger("gridgov.scheduler")

CENTER_PREFIX = "ZZ"  # center code = "ZZ" + region code (grids.store / factories)

_SCAN_FIELDS = ("c.id, c.case_no, c.status, c.handling_level, c.handler_region, c.lead_department, c.officer_code, "
                "c.grid_code, c.village_code, c.township_code, c.county_code, c.accused_units, c.accused_persons, "
                "c.dispatched_at, c.deadline_profile, "
                + ", ".join(f"c.{due}, c.{done}" for due, done in MILESTONE_FIELDS.values()))
# A milestone is open and within the horizon: due set, not done, due <= now + nearing.
_DUE_SOON = " OR ".join(f"(c.{due} IS NOT NULL AND c.{done} IS NULL AND c.{due} <= %(horizon)s)"
                        for due, done in MILESTONE_FIELDS.values())
# 一天一催、三天一督 from 交办 (seed 003): dispatched before today and not yet answered.
_DUE_SOON += " OR (c.dispatched_at < %(today)s AND c.replied_at IS NULL AND c.closed_at IS NULL)"

_LEVEL_ORDER = ("grid", "village", "township", "county", "city")
_UPPER = {"grid": "township", "village": "township", "township": "county", "county": "city", "city": "city"}


def _city_code(case: dict) -> str | None:
    county = case.get("county_code")
    return county[:4] + "00" if county and len(county) >= 4 else None


def _region_at(case: dict, level: str) -> str | None:
    if level == "city":
        return _city_code(case)
    return case.get(f"{level}_code")


def _allowed(case: dict, code: str | None, party_of) -> bool:
    return bool(code) and may_touch(case, party_of(code))


def remind_recipient(case: dict, party_of=party_for_recipient) -> str | None:
    """Who is reminded (催办): the lead department, else the grid officer, else the handling region's center —
    the first of them the guard allows; when the case accuses all of them, the supervising center."""
    level = case.get("handling_level")
    region = case.get("handler_region")
    candidates = [case.get("lead_department"), case.get("officer_code"),
                  CENTER_PREFIX + region if region and level not in ("grid", None) else None,
                  *(CENTER_PREFIX + case[f"{lv}_code"] for lv in ("village", "township", "county")
                    if case.get(f"{lv}_code"))]
    for code in candidates:
        if _allowed(case, code, party_of):
            return code
    return supervise_recipient(case, party_of) if any(candidates) else None


def supervise_recipient(case: dict, party_of=party_for_recipient) -> str | None:
    """Who supervises (督办): the 综治中心 one level above the handling level (village/grid → township), or the
    next one up the guard allows."""
    level = case.get("handling_level") if case.get("handling_level") in _UPPER else "village"
    upper = _UPPER[level]
    for lv in _LEVEL_ORDER[_LEVEL_ORDER.index(upper):]:
        code = _region_at(case, lv)
        if code and _allowed(case, CENTER_PREFIX + code, party_of):
            return CENTER_PREFIX + code
    return None


def recipient_parties(db) -> Callable[[str], Party]:
    """recipient code → guard Party: departments with their government's region, else by code."""
    depts = {r["code"]: r for r in db.fetchall("SELECT code, region_code FROM department")}

    def party_of(code: str) -> Party:
        return party_for_department(depts[code]) if code in depts else party_for_recipient(code)

    return party_of


def _notification_rows(case: dict, now: dt.datetime, policy: ReminderPolicy, party_of=party_for_recipient
                       ) -> list[tuple]:
    out = []
    for n in reminders_due(case, now, policy):
        recipient = remind_recipient(case, party_of) if n.kind == "remind" else supervise_recipient(case, party_of)
        if recipient is None:
            recipient = "unassigned"
        out.append((case["id"], n.kind, recipient, n.message, n.key, now, n.milestone, n.overdue_days,
                    case["status"]))
    return out


def _stored_policy(db) -> ReminderPolicy:
    from cases.policy import load_deadline_policy

    return ReminderPolicy.from_policy(load_deadline_policy(db))


def scan(db, now: dt.datetime, policy: ReminderPolicy | None = None, *, batch_size: int = 5000) -> dict:
    """Phase 1: record due notifications of all open cases (idempotent); returns counts."""
    policy = policy or _stored_policy(db)
    now = to_local(now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    months, mp = open_months(db)
    params = {"open": sorted(OPEN_STATES), "horizon": now + policy.nearing, "after": 0, "limit": batch_size,
              "today": today, **mp}
    summary = {"scanned": 0, "notices": 0, "inserted": 0, "duplicates": 0, "remind": 0, "supervise": 0}
    party_of = recipient_parties(db)
    while True:
        with db.cursor(dict_rows=False) as cur:
            cur.execute(f"SELECT {_SCAN_FIELDS} FROM case_record c WHERE c.status = ANY(%(open)s) AND {months} "
                        f"AND c.id > %(after)s AND ({_DUE_SOON}) ORDER BY c.id LIMIT %(limit)s", params)
            names = [d[0] for d in cur.description]
            cases = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            if not cases:
                break
            params["after"] = cases[-1]["id"]
            rows = [r for c in cases for r in _notification_rows(c, now, policy, party_of)]
            summary["scanned"] += len(cases)
            summary["notices"] += len(rows)
            if rows:
                # One statement per batch: arrays bound as values, unnested server-side.
                cur.execute(
                    "INSERT INTO notification (case_id, kind, recipient, message, dedupe_key, created_at) "
                    "SELECT u.case_id, u.kind, u.recipient, u.message, u.dedupe_key, %s FROM unnest("
                    "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                    "AS u(case_id, kind, recipient, message, dedupe_key) "
                    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind, dedupe_key",
                    (now, *(list(col) for col in zip(*(r[:5] for r in rows), strict=True))))
                inserted = cur.fetchall()
                summary["inserted"] += len(inserted)
                by_key = {r[4]: r for r in rows}
                events = []
                for nid, kind, key in inserted:
                    summary[kind] += 1
                    if kind == "supervise":
                        r = by_key[key]
                        data = {"notification_id": nid, "milestone": r[6], "overdue_days": r[7],
                                "recipient": r[2], "auto": True}
                        events.append((r[0], r[8], r[3], json.dumps(data, ensure_ascii=False)))
                if events:
                    cur.execute(
                        "INSERT INTO case_event (case_id, at, actor_role, action, from_state, to_state, reason, data) "
                        "SELECT u.case_id, %s, 'system', 'supervise', u.state, u.state, u.reason, u.data::jsonb "
                        "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS u(case_id, state, reason, "
                        "data)", (now, *(list(col) for col in zip(*events, strict=True))))
        if len(cases) < batch_size:
            break
    summary["duplicates"] = summary["notices"] - summary["inserted"]
    if summary["inserted"] >= 10_000:
        # Fresh statistics so delivery pages by the primary key instead of re-sorting the backlog.
        db.execute("SELECT analyze_table('notification')")
    return summary


REVISIT_BEFORE = dt.timedelta(days=2)   # 回访 this long before the evaluation window ends


def revisit(db, now: dt.datetime, *, batch_size: int = 5000) -> int:
    """回访: a replied case whose evaluation window ends within REVISIT_BEFORE gets one reminder to whoever
    handled it to call the citizen back for the evaluation (超期未评 counts against 满意率, seed 002); the
    guard picks the recipient as for 催办. Idempotent (one per case and window); returns the notices recorded."""
    now = to_local(now)
    party_of = recipient_parties(db)
    months, mp = open_months(db)
    params = {"now": now, "soon": now + REVISIT_BEFORE, "after": 0, "limit": batch_size, **mp}
    recorded = 0
    while True:
        with db.cursor(dict_rows=False) as cur:
            cur.execute(f"SELECT {_SCAN_FIELDS}, c.eval_due_at FROM case_record c WHERE c.status = 'replied' "
                        f"AND {months} AND c.eval_due_at > %(now)s AND c.eval_due_at <= %(soon)s AND c.id > %(after)s "
                        "ORDER BY c.id LIMIT %(limit)s", params)
            names = [d[0] for d in cur.description]
            cases = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            if not cases:
                break
            params["after"] = cases[-1]["id"]
            rows = [(c["id"], "revisit", remind_recipient(c, party_of) or "unassigned",
                     f"回访提醒：案件 {c['case_no']} 已答复，评价期至 {to_local(c['eval_due_at']):%Y-%m-%d %H:%M} 止，"
                     "请回访群众并请其评价", f"revisit:{c['id']}:{c['eval_due_at'].isoformat()}") for c in cases]
            cur.execute("INSERT INTO notification (case_id, kind, recipient, message, dedupe_key, created_at) "
                        "SELECT u.*, %s FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                        "AS u ON CONFLICT (dedupe_key) DO NOTHING",
                        (now, *(list(col) for col in zip(*rows, strict=True))))
            recorded += cur.rowcount
        if len(cases) < batch_size:
            break
    return recorded


def deliver(db, notifier: Notifier, now: dt.datetime, *, batch_size: int = 1000) -> dict:
    """Phase 2: hand every unsent notification to the notifier and stamp sent_at; failures stay unsent."""
    now = to_local(now)
    sent = failed = suppressed = 0
    after = 0
    party_of = recipient_parties(db)
    while True:
        with db.cursor(dict_rows=False) as cur:
            cur.execute("SELECT id, case_id, kind, recipient, message, dedupe_key, created_at FROM notification "
                        "WHERE sent_at IS NULL AND id > %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (after, batch_size))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            if not rows:
                break
            after = rows[-1]["id"]
            # one statement per batch of up to batch_size cases: planned over every month once, which costs less
            # than naming their months (`received_at = ANY(...)` of one busy day makes the planner scan that
            # day's cases and test each against the whole id array: 27 s → 76 s for 40,000 notices)
            cur.execute("SELECT id, case_no, accused_units, accused_persons FROM case_record WHERE id = ANY(%s)",
                        (list({r["case_id"] for r in rows if r["case_id"] is not None}),))
            cases = {row[0]: {"case_no": row[1], "accused_units": row[2], "accused_persons": row[3]}
                     for row in cur.fetchall()}
            blocked = [r["id"] for r in rows if r["case_id"] in cases
                       and not may_touch(cases[r["case_id"]], party_of(r["recipient"]))]
            if blocked:
                cur.execute("UPDATE notification SET sent_at = %s, suppressed = '回避：收件人为被举报单位或人员' "
                            "WHERE id = ANY(%s)", (now, blocked))
                suppressed += len(blocked)
            rows = [r for r in rows if r["id"] not in set(blocked)]
            for r in rows:
                r["case_no"] = (cases.get(r["case_id"]) or {}).get("case_no")
            done = []
            for r in rows:
                try:
                    notifier.send(r)
                except Exception as e:  # noqa: BLE001 - one bad delivery must not stop the others
                    failed += 1
                    log.warning("notification %s (%s → %s) not delivered: %s", r["id"], r["kind"], r["recipient"],
                                type(e).__name__)
                else:
                    done.append(r["id"])
            if done:
                cur.execute("UPDATE notification SET sent_at = %s WHERE id = ANY(%s)", (now, done))
            sent += len(done)
        if len(rows) + len(blocked) < batch_size:
            break
    return {"sent": sent, "failed": failed, "suppressed": suppressed}


def run_reminders(db, now: dt.datetime, notifier: Notifier, policy: ReminderPolicy | None = None, *,
                  batch_size: int = 5000) -> dict:
    """Scan open cases for 催办/督办 due at `now`, record them once, deliver unsent ones; returns a summary."""
    if now is None or now.tzinfo is None:
        raise BadInput("now must be a timezone-aware datetime", field="now")
    if batch_size < 1:
        raise BadInput("batch_size must be positive", field="batch_size")
    t0 = time.monotonic()
    # the months ahead exist before their cases arrive (monthly partitions, migration 0090)
    made = ensure_ahead(db, now)
    summary = scan(db, now, policy or _stored_policy(db), batch_size=batch_size)
    summary["revisit"] = revisit(db, now, batch_size=batch_size)
    summary.update(deliver(db, notifier, now))
    summary["partitions_made"] = made
    summary["seconds"] = round(time.monotonic() - t0, 3)
    summary["now"] = to_local(now).isoformat()
    log.info("reminders: %s", summary)
    return summary
