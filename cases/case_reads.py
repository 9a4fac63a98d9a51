"""Reading cases: one case with its history, deadlines, package and outcome; the scoped, keyset-paged list;
repeat counts. Mixed into cases.service.CaseService (what a user may see is decided by cases.auth.case_scope)."""

from __future__ import annotations

import base64
import datetime as dt
import json

from cases import workflow
from cases.auth import User, case_scope, present_personal_data
from cases.case_rows import CASE_COLUMNS, OPEN_STATES, _plain
from cases.deadlines import BACKLOG_DAYS, CHANNELS, PETITION_CHANNELS
from cases.partitions import event_span, open_months, received_at
from gis.errors import BadInput, NotFound

# The three 信访 registers of seed 000 (预约登记、接访登记、矛盾纠纷排查) as views of the case list.
REGISTERS = {
    "接访登记": "c.channel IN ('visit', 'leader_reception')",
    "预约登记": "EXISTS (SELECT 1 FROM case_event e WHERE e.case_id = c.id AND e.action = 'visit' "
              "AND e.data->>'kind' = '约访')",
    "矛盾纠纷排查": "c.channel = 'grid_report'",
    # 领导包案 (seeds 002, 004) and 积案: 信访 still open BACKLOG_DAYS after receipt (cases.reports, 化解清零)
    "领导包案": "EXISTS (SELECT 1 FROM case_package p WHERE p.case_id = c.id)",
    "积案": (f"c.channel IN ({', '.join(repr(ch) for ch in sorted(PETITION_CHANNELS))}) AND c.status NOT IN "
           f"('closed', 'merged', 'rejected') AND c.received_at < now() - make_interval(days => {BACKLOG_DAYS})"),
}


EVENT_VIEW_COLUMNS = "at, actor_role, action, from_state, to_state, reason, data"


class CaseReads:
    """get / list / list_page / repeat_counts of CaseService."""

    def _read(self, user: User | None, case_id: int) -> dict:
        if user is None:
            raise NotFound(f"case {case_id} not found")
        return self.get(user, case_id)

    def get(self, user: User, case_id: int) -> dict:
        """One case as the user may see it (scoped, personal data masked), with events and deadlines."""
        scope, params = case_scope(user)
        month = received_at(self.db, case_id)   # names the case's month partition (cases.partitions)
        row = None if month is None else self.db.fetchone(
            f"SELECT {CASE_COLUMNS} FROM case_record c WHERE c.id = %(cid)s AND c.received_at = %(rat)s AND {scope}",
            {**params, "cid": int(case_id), "rat": month})
        if row is None:
            raise NotFound(f"case {case_id} not found")
        span, sp = event_span(self.db, case_id)   # the months of its events (cases.partitions)
        events = self.db.fetchall(f"SELECT {EVENT_VIEW_COLUMNS} FROM case_event WHERE case_id = %(cid)s AND {span} "
                                  f"ORDER BY id", {"cid": case_id, **sp})
        pkg = self.db.fetchone("SELECT leader, unit, plan, standard, target_date, assigned_at FROM case_package "
                               "WHERE case_id = %s", (case_id,))
        return self.case_view(user, row, events, pkg)

    def case_view(self, user: User, row: dict, events: list[dict], pkg: dict | None, deadlines=None) -> dict:
        """The case as `get` shows it, from its row (CASE_COLUMNS), its events (EVENT_VIEW_COLUMNS, in order)
        and its package (intake builds it from what it has just written, without reading it back, and passes
        the deadlines it has just computed)."""
        out = present_personal_data(user, _plain(row))
        out["events"] = [_plain(e) for e in events]
        out["deadlines"] = (deadlines or self.deadlines_for(row)).to_dict()
        out["status_label"] = workflow.STATES.get(row["status"], row["status"])
        out["channel_label"] = CHANNELS.get(row["channel"], row["channel"])
        out["allowed_actions"] = workflow.allowed_actions(row["status"], user.role)
        out["package"] = {**_plain(pkg), "target_date": pkg["target_date"].isoformat()} if pkg else None
        out["outcome"] = workflow.petition_outcome(row["status"], pkg is not None) \
            if row["channel"] in PETITION_CHANNELS else None
        return out

    def list(self, user: User, status: str | None = None, open_only: bool = False, limit: int = 100,
             offset: int = 0, order: str = "urgency", needs_pin: bool | None = None,
             guard_review: bool | None = None) -> list[dict]:
        """Cases the user may see; `urgency` orders by the nearest due instant first; `guard_review` selects the
        accusations whose accused mentions wait for a dispatcher's check."""
        return self.list_page(user, status=status, open_only=open_only, limit=limit, offset=offset, order=order,
                              needs_pin=needs_pin, guard_review=guard_review)[0]

    def list_page(self, user: User, status: str | None = None, open_only: bool = False, limit: int = 100,
                  offset: int = 0, order: str = "urgency", needs_pin: bool | None = None,
                  guard_review: bool | None = None, cursor: str | None = None,
                  register: str | None = None) -> tuple[list[dict], str | None]:
        """One page of `list` and the cursor of the next (None on the last page).

        The cursor is the last row's sort key and id (keyset paging): a page never repeats or skips a case
        because cases were added or removed before it, unlike an offset."""
        if not 1 <= limit <= 1000:
            raise BadInput("limit must be 1..1000", field="limit")
        if order not in _LIST_ORDERS:
            raise BadInput("order must be urgency or newest", field="order")
        key, direction = _LIST_ORDERS[order]
        scope, params = case_scope(user)
        where = [scope]
        if status:
            if status not in workflow.STATES:
                raise BadInput(f"unknown status {status!r}", field="status")
            where.append("c.status = %(status)s")
            params["status"] = status
        if open_only:
            where.append("c.status = ANY(%(open)s)")
            params["open"] = list(OPEN_STATES)
        if needs_pin is not None:
            where.append("c.needs_pin = %(pin)s")
            params["pin"] = needs_pin
        if guard_review is not None:
            where.append("c.guard_review = %(greview)s")
            params["greview"] = guard_review
        if open_only or (status and status in OPEN_STATES) or register == "积案":
            months, mp = open_months(self.db)   # only the months holding open cases (cases.partitions)
            where.append(months)
            params.update(mp)
        if register is not None:
            if register not in REGISTERS:
                raise BadInput(f"register must be one of {', '.join(REGISTERS)}", field="register")
            where.append(REGISTERS[register])
        if cursor is not None:
            if offset:
                raise BadInput("give cursor or offset, not both", field="cursor")
            params["ckey"], params["cid"] = decode_cursor(cursor, order)
            where.append(f"({key}, c.id) {'>' if direction == 'ASC' else '<'} (%(ckey)s::timestamptz, %(cid)s)")
        params.update(limit=limit + 1, offset=offset)
        rows = self.db.fetchall(f"SELECT {CASE_COLUMNS}, {key} AS page_key FROM case_record c "
                                f"WHERE {' AND '.join(where)} ORDER BY {key} {direction}, c.id {direction} "
                                f"LIMIT %(limit)s OFFSET %(offset)s", params)
        nxt = encode_cursor(order, rows[limit - 1]["page_key"], rows[limit - 1]["id"]) if len(rows) > limit else None
        out = []
        for r in rows[:limit]:
            r.pop("page_key")
            out.append(present_personal_data(user, _plain(r)))
        # each row's 领导包案 (leader, unit, target date, standard) or None — one query per page
        pkgs = {p["case_id"]: p for p in self.db.fetchall(
            "SELECT case_id, leader, unit, standard, target_date FROM case_package WHERE case_id = ANY(%s)",
            ([r["id"] for r in out],))} if out else {}
        for r in out:
            p = pkgs.get(r["id"])
            r["package"] = {"leader": p["leader"], "unit": p["unit"], "standard": p["standard"],
                            "target_date": p["target_date"].isoformat()} if p else None
            r["status_label"] = workflow.STATES.get(r["status"], r["status"])
            r["channel_label"] = CHANNELS.get(r["channel"], r["channel"])
        return out, nxt

    def repeat_counts(self, user: User, case_id: int) -> dict:
        """重复信访: how many cases the same reporter filed, and how many merged into this case — counted only
        among the cases the user may see (a count over the whole city would tell what the scope hides)."""
        case = self.get(user, case_id)
        scope, params = case_scope(user)
        row = self.db.fetchone(
            f"SELECT (SELECT count(*) FROM case_record c WHERE c.reporter_key IS NOT NULL AND c.reporter_key = "
            f"(SELECT reporter_key FROM case_record WHERE id = %(id)s AND received_at = %(rat)s) AND {scope}) "
            f"AS by_person, "
            f"(SELECT count(*) FROM case_record c WHERE c.merged_into = %(id)s AND {scope}) AS merged_in",
            {**params, "id": case["id"], "rat": received_at(self.db, case["id"])})
        return {"by_person": row["by_person"], "merged_in": row["merged_in"]}


# Sort keys of the case list (never NULL, so a keyset cursor can compare them) and their direction.


# the instant the case waits for next (as next_due() reports it); waiting-for-evaluation and finished cases
# come after everything that still has a deadline. The key of case_urgency_idx (migration 0081): keep identical.
URGENCY_SQL = ("coalesce(CASE WHEN c.status IN ('dispatched', 'returned') THEN c.sign_due_at WHEN c.status IN "
               "('received', 'accepted') THEN coalesce(c.accept_due_at, c.received_at) WHEN c.status IN "
               "('signed', 'handling', 'reopened') THEN coalesce(c.reply_due_at, c.handle_due_at) END, "
               "'9999-12-31T00:00:00Z'::timestamptz)")
_LIST_ORDERS = {
    "urgency": (URGENCY_SQL, "ASC"),
    "newest": ("c.received_at", "DESC"),
}


def encode_cursor(order: str, key: dt.datetime, case_id: int) -> str:
    """An opaque page cursor: the order, the last row's sort key and id."""
    raw = json.dumps([order, key.isoformat(), case_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> tuple[dt.datetime, int]:
    """(sort key, id) of a cursor made by encode_cursor for the same order; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        o, key, case_id = json.loads(raw)
        key = dt.datetime.fromisoformat(key)
        if o != order or type(case_id) is not int or key.tzinfo is None or not 0 < case_id < 2**63:
            raise ValueError(o)
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput("cursor is not one this list gave (or was made for another order)",
                       field="cursor") from e
    return key, case_id
