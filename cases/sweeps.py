"""What the scheduler does to cases as `system`: overdue escalation (村为主、乡镇兜底、县域止访) and closing
replied cases whose evaluation window ended (超期未评). Mixed into cases.service.CaseService; run by
`./gridgov scheduler`, never inside a web request."""

from __future__ import annotations

import datetime as dt

import psycopg2.extras

from cases import routing as routing_mod
from cases import workflow
from cases.calendar import to_local
from cases.case_rows import CASE_COLUMNS
from cases.partitions import open_months, received_at


class SystemSweeps:
    """escalate_overdue / close_unevaluated of CaseService."""

    def _sweep(self, find: str, params: dict, order: str, limit: int, step) -> list[int]:
        """The scheduler's system actions: each case `find` selects (a `SELECT id FROM case_record WHERE …`) is
        locked, checked again and handed to `step(cur, case)` in its own transaction; returns the ids done."""
        done = []
        months, mp = open_months(self.db, alias="case_record")   # the sweeps read open cases only
        for row in self.db.fetchall(f"{find} AND {months} ORDER BY {order} LIMIT %(lim)s",
                                    {**params, **mp, "lim": limit}):
            with self.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                month = received_at(cur, row["id"])   # the case's own partition (cases.partitions)
                cur.execute(f"{find} AND id = %(id)s AND received_at = %(rat)s FOR UPDATE",
                            {**params, "id": row["id"], "rat": month})
                if cur.fetchone() is None:            # answered or moved meanwhile
                    continue
                cur.execute(f"SELECT {CASE_COLUMNS} FROM case_record WHERE id = %s AND received_at = %s",
                            (row["id"], month))
                step(cur, cur.fetchone())
            done.append(row["id"])
        return done

    def escalate_overdue(self, now: dt.datetime, limit: int = 1000) -> list[int]:
        """村为主、乡镇兜底、县域止访 (seed 000): a signed case whose reply is overdue goes up one level — village →
        township → county — as `system`, with new deadlines from the escalation, and stops at the policy's
        `escalate_overdue_to` (county). Run by the scheduler; returns the ids escalated (at most `limit`)."""
        stop = self.deadline_policy.escalate_overdue_to
        if not stop:
            return []
        below = [lv for lv in ("grid", *workflow.LEVELS)
                 if routing_mod.level_index(lv) < routing_mod.level_index(stop)]

        def step(cur, case):
            level = case["handling_level"] if case["handling_level"] in workflow.LEVELS else "village"
            target = workflow.next_level(level)
            due = case["reply_due_at"] or case["handle_due_at"]
            reason = (f"超期未答复（应于 {to_local(due):%Y-%m-%d %H:%M} 前），"
                      f"自动升级至{routing_mod.LEVEL_LABELS[target]}")
            case = {**case, "returned_by": self._returned_by(case["id"], cur)}
            updates = self._reroute(case, self.reference(), escalation_level=target)
            self._apply(cur, case["id"], None, case["status"], "escalate", reason,
                        {"from_level": level, "to_level": target, "auto": True, "overdue": True}, now,
                        role="system", updates=updates)
            self._set_deadlines(cur, case["id"])

        return self._sweep("SELECT id FROM case_record WHERE status IN ('signed', 'handling') AND replied_at IS NULL "
                           "AND coalesce(reply_due_at, handle_due_at) < %(now)s AND handling_level = ANY(%(below)s)",
                           {"now": now, "below": below}, "coalesce(reply_due_at, handle_due_at), id", limit, step)

    def close_unevaluated(self, now: dt.datetime, limit: int = 5000) -> list[int]:
        """评价期满未评价: a replied case whose evaluation window (eval_due_at) has ended is closed by `system`,
        unevaluated — it counts as 超期未评 against 满意率 (seed 002). Run by the scheduler."""
        def step(cur, case):
            self._apply(cur, case["id"], None, "replied", "close",
                        f"评价期满（{to_local(case['eval_due_at']):%Y-%m-%d %H:%M}）未评价，按超期未评办结",
                        {"unevaluated": True}, now, role="system")

        return self._sweep("SELECT id FROM case_record WHERE status = 'replied' AND eval_due_at < %(now)s",
                           {"now": now}, "eval_due_at, id", limit, step)
