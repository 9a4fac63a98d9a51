"""A case row as every part of the service reads it: the columns, the JSON-ready form (Beijing-local times,
the next milestone for countdowns) and the clock."""

from __future__ import annotations

import datetime as dt

from cases import workflow
from cases.calendar import to_local

OPEN_STATES = tuple(sorted(workflow.OPEN_STATES))
CASE_COLUMNS = (
    "id, case_no, submission_key, channel, kind, category_code, title, content, anonymous, reporter_name, "
    "reporter_phone, reporter_id_no, address_text, ST_X(geom) AS lon, ST_Y(geom) AS lat, orig_crs, orig_x, orig_y, "
    "grid_code, generation, village_code, township_code, county_code, status, emergency, received_at, accepted_at, "
    "dispatched_at, signed_at, replied_at, evaluated_at, closed_at, sign_due_at, reply_due_at, accept_due_at, "
    "handle_due_at, deadline_profile, extended_days, evaluation, version, handling_level, handler_region, "
    "lead_department, co_departments, officer_code, routing, geocode, near_boundary, needs_pin, returned_count, "
    "reopened_count, forwarded, solved, complex, complex_reason, "
    "merged_into, accused_units, accused_persons, updated_at, reporter_key, "
    "accused_mentions, guard_floor, guard_review, eval_due_at"
)


def _now() -> dt.datetime:
    return to_local(dt.datetime.now(dt.UTC))


_NEXT_DUE = {"received": "accept_due_at", "accepted": "accept_due_at", "dispatched": "sign_due_at",
             "returned": "sign_due_at", "signed": "reply_due_at", "handling": "reply_due_at",
             "reopened": "reply_due_at"}


def next_due(row: dict, now: dt.datetime | None = None) -> dict:
    """The milestone the case waits for now, its due instant, and whether it is overdue (for countdowns)."""
    field = _NEXT_DUE.get(row.get("status"))
    due = row.get(field) if field else None
    if due is None and row.get("status") in ("signed", "handling", "reopened"):
        field, due = "handle_due_at", row.get("handle_due_at")
    if due is None:
        return {"next_milestone": None, "next_due_at": None, "overdue": False, "remaining_hours": None}
    now = to_local(now) if now else _now()
    remaining = (to_local(due) - now).total_seconds() / 3600
    return {"next_milestone": field.removesuffix("_due_at"), "next_due_at": to_local(due).isoformat(),
            "overdue": remaining < 0, "remaining_hours": round(remaining, 1)}


def _plain(row: dict) -> dict:
    out = next_due(row)
    for k, v in dict(row).items():
        if isinstance(v, dt.datetime):
            out[k] = to_local(v).isoformat()
        else:
            out[k] = v
    return out
