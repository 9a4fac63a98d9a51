"""The officer's work list at a glance: 待签收 / 办理中 / 即将超期 / 已超期, counted in SQL over the user's scope.

The due instant of a case is the milestone it waits for now, as `cases.service.next_due` defines it:
acceptance notice while received/accepted, signing while dispatched/returned, the reply (else the
handling deadline) while signed/handling/reopened; replied and evaluated cases wait for the citizen.
"""

from __future__ import annotations

import datetime as dt

from cases import workflow
from cases.auth import User, case_scope
from cases.calendar import to_local
from cases.partitions import open_months
from gis.errors import BadInput

# SQL of the instant a case (alias c) waits for now; NULL when it waits for nobody's deadline.
NEXT_DUE_SQL = ("CASE WHEN c.status IN ('received', 'accepted') THEN c.accept_due_at "
                "WHEN c.status IN ('dispatched', 'returned') THEN c.sign_due_at "
                "WHEN c.status IN ('signed', 'handling', 'reopened') THEN coalesce(c.reply_due_at, c.handle_due_at) "
                "END")
GROUPS = {
    "pending_sign": ("待签收", "c.status = 'dispatched'"),
    "handling": ("办理中", "c.status IN ('signed', 'handling', 'reopened')"),
    "due_soon": ("即将超期", f"({NEXT_DUE_SQL}) >= %(now)s AND ({NEXT_DUE_SQL}) < %(soon)s"),
    "overdue": ("已超期", f"({NEXT_DUE_SQL}) < %(now)s"),
}
SOON_HOURS = 24


def counts(db, user: User, now: dt.datetime | None = None, soon_hours: int = SOON_HOURS) -> dict:
    """Open cases the user may see, counted per group in one scoped SQL pass; with labels for the page."""
    if not 1 <= soon_hours <= 24 * 30:
        raise BadInput("soon_hours must be 1..720", field="soon_hours")
    now = to_local(now) if now else to_local(dt.datetime.now(dt.UTC))
    scope, params = case_scope(user)
    months, mp = open_months(db)
    params.update(now=now, soon=now + dt.timedelta(hours=soon_hours), open=sorted(workflow.OPEN_STATES), **mp)
    cols = ", ".join(f"count(*) FILTER (WHERE {sql}) AS {name}" for name, (_, sql) in GROUPS.items())
    row = db.fetchone(f"SELECT count(*) AS open, {cols} FROM case_record c "
                      f"WHERE {scope} AND c.status = ANY(%(open)s) AND {months}", params)
    return {"counts": {k: int(v) for k, v in row.items()},
            "labels": {"open": "在办", **{k: label for k, (label, _) in GROUPS.items()}},
            "soon_hours": soon_hours, "as_of": now.isoformat()}
