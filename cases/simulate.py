"""Run synthetic cases through the real loop in bulk: the same routing rules, deadline engine and
transition table as live intake, with the resulting case rows and events written by COPY.

Every lifecycle step of a generated case is applied with cases.workflow.apply (an illegal sequence
raises), routing comes from cases.routing.route over the city's routing_rule table, deadlines from
cases.deadlines. A seeded share of cases is returned once and re-dispatched, escalated after a
second return, or has its routing corrected (counted as forwarded), so every rate has data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from itertools import islice

from cases import routing as routing_mod
from cases import workflow
from cases.calendar import WorkCalendar
from cases.deadlines import PETITION_CHANNELS, channel_code, compute_deadlines
from cases.reporters import mark_first_petitions, reporter_identities, reporter_key
from gis.db import copy_rows

CASE_COLUMNS = [
    "id", "case_no", "submission_key", "channel", "kind", "category_code", "title", "content", "anonymous",
    "reporter_name", "reporter_phone", "reporter_id_no", "reporter_key", "address_text", "geom", "orig_crs", "orig_x",
    "orig_y", "grid_code", "generation", "village_code", "township_code", "county_code", "status", "emergency",
    "received_at", "accepted_at", "dispatched_at", "signed_at", "replied_at", "evaluated_at", "closed_at",
    "sign_due_at", "reply_due_at", "accept_due_at", "handle_due_at", "deadline_profile", "evaluation",
    "handling_level", "handler_region", "lead_department", "co_departments", "officer_code", "routing",
    "returned_count", "reopened_count", "forwarded", "solved", "updated_at", "eval_due_at",
]
EVENT_COLUMNS = ["case_id", "at", "actor_role", "action", "from_state", "to_state", "reason", "data"]


def _u(case_no: str, salt: str) -> float:
    """A deterministic uniform number in [0, 1) per case and purpose."""
    h = hashlib.blake2b((salt + case_no).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


class Simulator:
    """Holds the city's reference data; `run(case)` returns (case row, events)."""

    def __init__(self, ref: dict, officers: dict[str, str], generation: int, calendar: WorkCalendar | None = None,
                 eval_window_days: int = 7):
        self.ref = ref
        self.eval_window_days = eval_window_days  # the rate policy's window: a replied case's eval_due_at
        self.officers = officers
        self.generation = generation
        self.calendar = calendar or WorkCalendar()
        self._route_cache: dict[tuple, routing_mod.RoutingDecision] = {}

    @classmethod
    def from_db(cls, db, calendar: WorkCalendar | None = None) -> Simulator:
        """Load rules, departments, categories and officers of the active generation."""
        from cases.service import CaseService, load_calendar_overrides

        ref = CaseService(db).reference()
        calendar = calendar or WorkCalendar(overrides=load_calendar_overrides(db))
        gen = db.fetchone("SELECT id FROM generation WHERE active")["id"]
        officers = {r["grid_code"]: r["code"] for r in db.fetchall(
            "SELECT DISTINCT ON (s.grid_code) s.grid_code, s.code FROM staff s JOIN staff_role r ON r.role = s.role "
            "WHERE r.is_officer AND s.active ORDER BY s.grid_code, s.code")}
        from cases.policy import load_rate_policy

        return cls(ref, officers, gen, calendar, load_rate_policy(db).config.eval_window_days)

    def _route(self, case: dict, escalation_level: str | None = None) -> routing_mod.RoutingDecision:
        key = (case.get("grid_code"), case.get("category_code"), case["kind"], case["channel"], escalation_level)
        d = self._route_cache.get(key)
        if d is None:
            c = {**case, "escalation_level": escalation_level, "generation": self.generation}
            d = routing_mod.route(c, self.ref["rules"], self.ref["departments"], self.ref["categories"],
                                  chain={"generation": self.generation,
                                         "officer_code": self.officers.get(case.get("grid_code"))},
                                  city_code=self.ref["city_code"])
            self._route_cache[key] = d
        return d

    def run(self, g: dict) -> tuple[dict, list[tuple]]:
        """One generated case → its row and its events, replayed through the transition table."""
        case = dict(g)
        case["channel"] = channel_code(case["channel"])
        events: list[tuple] = []
        state = "received"
        cno = case["case_no"]

        def step(action, role, at, reason=None, data=None):
            nonlocal state
            t = workflow.apply(state, action, role, reason)
            events.append((at, role, t.event["kind"], state, t.new_state, t.event.get("reason"),
                           json.dumps(data or {}, ensure_ascii=False)))
            state = t.new_state

        decision = self._route(case)
        events.append((case["received_at"], "citizen", "receive", None, "received", None,
                       json.dumps({"channel": case["channel"]}, ensure_ascii=False)))
        handler_role = "grid_officer" if decision.handling_level in ("grid", "village") and decision.officer_code \
            else ("department" if decision.lead_department else "township_center")
        returned = reopened = 0
        forwarded = False
        if case.get("accepted_at"):
            step("accept", "dispatcher", case["accepted_at"])
        if case.get("dispatched_at"):
            step("dispatch", "dispatcher", case["dispatched_at"])
            r = _u(cno, "return")
            sign_at = case.get("signed_at")
            if sign_at and r < 0.06:
                # Returned once (wrong grid / not ours), re-dispatched; some are corrected (forwarded).
                gap = (sign_at - case["dispatched_at"]) / 3
                step("return", handler_role, case["dispatched_at"] + gap, "非本单位职责，申请退回")
                returned = 1
                if r < 0.02:
                    step("correct_routing", "dispatcher", case["dispatched_at"] + 2 * gap, "原派单有误，改派")
                    forwarded = True
                else:
                    step("dispatch", "dispatcher", case["dispatched_at"] + 2 * gap)
            if sign_at:
                step("sign", handler_role, sign_at)
                step("start", handler_role, sign_at)
        if case.get("replied_at"):
            step("reply", handler_role, case["replied_at"], data={"solved": case.get("evaluation") != "不满意"})
        if case.get("evaluated_at"):
            step("evaluate", "citizen", case["evaluated_at"], data={"evaluation": case["evaluation"]})
            if case["evaluation"] == "不满意" and _u(cno, "reopen") < 0.3 and not case.get("closed_at"):
                step("reopen", "citizen", case["evaluated_at"], "对答复不满意，要求重办")
                reopened = 1
        if case.get("closed_at"):
            step("close", "system", case["closed_at"])
        d = compute_deadlines(case["received_at"], case["channel"], case["kind"], case["emergency"], self.calendar,
                              accepted_at=case.get("accepted_at"), dispatched_at=case.get("dispatched_at"))
        f = d.as_fields()
        lon, lat = case.get("lon"), case.get("lat")
        row = {
            **case, "status": state, "generation": self.generation,
            "geom": f"SRID=4326;POINT({lon:.7f} {lat:.7f})" if lon is not None else None,
            "orig_crs": case.get("orig_crs") or ("EPSG:4326" if lon is not None else None),
            "orig_x": case.get("orig_x") if case.get("orig_x") is not None else lon,
            "orig_y": case.get("orig_y") if case.get("orig_y") is not None else lat,
            "reporter_key": None if case.get("anonymous") else reporter_key(case.get("reporter_phone"),
                                                                            case.get("reporter_id_no")),
            "sign_due_at": f.get("sign_due_at"), "reply_due_at": f.get("reply_due_at"),
            "accept_due_at": f.get("accept_due_at"), "handle_due_at": f.get("handle_due_at"),
            "deadline_profile": d.profile, "handling_level": decision.handling_level,
            "handler_region": decision.handler_region, "lead_department": decision.lead_department,
            "co_departments": decision.co_departments, "officer_code": decision.officer_code,
            "routing": json.dumps({"rule_id": decision.rule_id, "explanation": decision.explanation},
                                  ensure_ascii=False),
            "returned_count": returned, "reopened_count": reopened, "forwarded": forwarded,
            "solved": None if not case.get("replied_at") else case.get("evaluation") != "不满意",
            "updated_at": max(e[0] for e in events),
            "eval_due_at": case["replied_at"] + dt.timedelta(days=self.eval_window_days)
            if case.get("replied_at") else None,
        }
        return row, events


def load_simulated(db, sim: Simulator, cases, chunk: int = 10_000, progress=None) -> int:
    """Run generated cases through the loop and COPY rows and events, one transaction per chunk."""
    total = 0
    it = iter(cases)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            break
        results = [sim.run(c) for c in batch]
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT nextval('case_record_id_seq') FROM generate_series(1, %s)", (len(results),))
            ids = [r[0] for r in cur.fetchall()]
            copy_rows(cur, "case_record", CASE_COLUMNS,
                      ([cid if col == "id" else row.get(col) for col in CASE_COLUMNS]
                       for cid, (row, _) in zip(ids, results, strict=True)))
            copy_rows(cur, "case_event", EVENT_COLUMNS,
                      ((cid, *ev) for cid, (_, evs) in zip(ids, results, strict=True) for ev in evs))
            # the reporters' identities, so later intake recognises them (one person across channels)
            idents = {i: row["reporter_key"] for row, _ in results if row.get("reporter_key")
                      for i in reporter_identities(row.get("reporter_phone"), row.get("reporter_id_no"))}
            cur.execute("INSERT INTO reporter_identity (ident, person_key) SELECT * FROM unnest(%s::text[], "
                        "%s::text[]) ON CONFLICT (ident) DO NOTHING", (list(idents), list(idents.values())))
            mark_first_petitions(cur, [cid for cid, (row, _) in zip(ids, results, strict=True)
                                       if row["kind"] == "求决" and row["channel"] in PETITION_CHANNELS])
        total += len(results)
        if progress:
            progress(total)
    return total


def year_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The year of synthetic history ending now."""
    return now - dt.timedelta(days=365), now
