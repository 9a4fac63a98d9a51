"""The data each loop action accepts: a schema per action (field → type and bounds).

`validate(action, data)` runs before anything is locked or written: an unknown action or field, a wrong
type, a string out of bounds or with control characters, or data larger than `MAX_DATA_BYTES` serialised
is a BadInput naming the field — so no oversized or unexpected data reaches the append-only event log.
To let an action take a new field, add it to ACTION_FIELDS (and say what it means in docs/cases.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from cases import workflow
from gis.errors import BadInput

MAX_DATA_BYTES = 8 * 1024
_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,39}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def text(max_len: int) -> Callable:
    def check(name, v):
        if not isinstance(v, str):
            raise BadInput(f"{name} must be text", field=name)
        if len(v) > max_len:
            raise BadInput(f"{name} is longer than {max_len} characters", field=name)
        if _CONTROL.search(v):
            raise BadInput(f"{name} contains a control character or an invalid code point", field=name)
        return v
    return check


def code(name, v):
    if not (isinstance(v, str) and _CODE.fullmatch(v)):
        raise BadInput(f"{name} must be a code (letters, digits, . _ -; at most 40)", field=name)
    return v


def integer(lo: int, hi: int) -> Callable:
    def check(name, v):
        if isinstance(v, str) and v.isascii() and v.strip().isdigit():
            v = int(v.strip())
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise BadInput(f"{name} must be an integer {lo}..{hi}", field=name)
        return v
    return check


def flag(name, v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise BadInput(f"{name} must be true or false", field=name)


def one_of(*values: str) -> Callable:
    def check(name, v):
        if v not in values:
            raise BadInput(f"{name} must be one of {', '.join(values)}", field=name)
        return v
    return check


def day(name, v):
    import datetime as dt

    try:
        return dt.date.fromisoformat(v).isoformat() if isinstance(v, str) and len(v) == 10 else _bad_day(name)
    except ValueError:
        return _bad_day(name)


def _bad_day(name):
    raise BadInput(f"{name} must be a date YYYY-MM-DD", field=name)


NOTE = {"text": text(2000)}
ROUTING = {"grid_code": code, "lead_department": code, "category_code": code, **NOTE}
ACTION_FIELDS: dict[str, dict[str, Callable]] = {
    "accept": NOTE, "reject": NOTE, "sign": NOTE, "return": NOTE, "start": NOTE, "progress": NOTE,
    "close": NOTE, "escalate": NOTE, "supervise": NOTE, "reopen": NOTE,
    "approve_extension": NOTE, "deny_extension": NOTE,
    "request_extension": {"days": integer(1, 90), **NOTE},
    "reply": {"reply": text(2000), "solved": flag, **NOTE},
    "evaluate": {"evaluation": one_of("满意", "基本满意", "不满意"), **NOTE},
    "merge": {"master_id": integer(1, 2**63 - 1), **NOTE},
    "dispatch": ROUTING, "reassign": ROUTING, "correct_routing": ROUTING,
    "package": {"leader": text(100), "unit": text(100), "plan": text(2000), "standard": text(500),
                "target_date": day, **NOTE},
    "visit": {"kind": one_of("约访", "下访", "接访"), **NOTE},
}


def validate(action, data) -> dict:
    """The action's data checked against its schema (a new dict; values normalised), or BadInput."""
    if not isinstance(action, str) or action not in workflow.ACTIONS:
        raise BadInput(f"unknown action {str(action)[:40]!r}", field="action")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput("action data must be a JSON object")
    fields = ACTION_FIELDS.get(action, NOTE)
    out = {}
    for name, value in data.items():
        check = fields.get(name)
        if check is None:
            shown = str(name)[:40]
            raise BadInput(f"{action} takes no field {shown!r} (fields: {', '.join(sorted(fields)) or 'none'})",
                           field=shown)
        if value is not None:
            out[name] = check(name, value)
    if len(json.dumps(out, ensure_ascii=False, default=str).encode()) > MAX_DATA_BYTES:
        raise BadInput(f"action data larger than {MAX_DATA_BYTES // 1024} KB", field="data")
    return out
