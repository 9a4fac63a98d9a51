"""Run synthetic cases through the real loop in bulk: the same routing rules, deadline engine and
transition table as live intake, with the resulting case rows and events written by COPY.

Every lifecycle step of a generated case is applied with cases.workflow.apply (an illegal sequence
raises), routing comes from cases.routing.route over the city's routing_rule table, deadlines from
cases.deadlines. A seeded share of cases is returned once and re-dispatched, escalated after a
second return, or has its routing corrected (counted as forwarded), so every rate has data. A seeded
share of 信访 cases is flagged 疑难复杂 by the dispatcher (leaving 简易程序, seed 002), and half of those
get a leader (领导包案 with 一案一策, target date and 约访/下访, seeds 002/004), so the demo year's ledgers
and registers have them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from itertools import islice

from cases import routing as routing_mod
from cases import workflow
from cases.calendar import WorkCalendar, to_local
from cases.deadlines import PETITION_CHANNELS, channel_code, compute_deadlines
from cases.partitions import ensure_partitions
from cases.reporters import mark_first_petitions, reporter_identities, reporter_key
from gis.db import copy_rows

CASE_COLUMNS = [
    "id", "case_no", "submission_key", "channel", "kind", "category_code", "title", "content", "anonymous",
    "reporter_name", "reporter_phone", "reporter_id_no", "reporter_key", "address_text", "geom", "orig_crs", "orig_x",
    "orig_y", "grid_code", "generation", "village_code", "township_code", "county_code", "status", "emergency",
    "received_at", "accepted_at", "dispatched_at", "signed_at", "replied_at", "evaluated_at", "closed_at",
    "sign_due_at", "reply_due_at", "accept_due_at", "handle_due_at", "deadline_profile", "evaluation",
    "handling_level", "handler_region", "lead_department", "co_departments", "officer_code", "routing",
    "returned_count", "reopened_count", "forwarded", "solved", "updated_at", "eval_due_at", "complex",
    "complex_reason",
]
EVENT_COLUMNS = ["case_id", "at", "actor_role", "action", "from_state", "to_state", "reason", "data"]
PACKAGE_COLUMNS = ["case_id", "leader", "unit", "plan", "standard", "target_date", "assigned_at"]

COMPLEX_SHARE = 0.2     # of 信访 cases the dispatcher accepted: flagged 疑难复杂
PACKAGE_SHARE = 0.5     # of those: a leader takes the case (领导包案)
COMPLEX_REASONS = ("涉及多个部门职责交叉，需联合会商", "历史遗留问题，政策依据需逐级请示", "群体性诉求，涉及人数较多",
                   "涉法涉诉，需依法分类处理")
LEADERS = ("县委副书记", "县委常委、政法委书记", "副县长", "县人大常委会副主任", "县政协副主席")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"
PLANS = ("一案一策：召开联席会议明确责任部门，逐项核实诉求，依法依规提出化解方案并当面反馈",
         "一案一策：包案领导约见信访人，责任单位15日内提出处理意见，村（社区）做好稳控和帮扶",
         "一案一策：组织听证评议，对合理诉求限期解决，对不合理诉求做好思想疏导和教育")
STANDARDS = ("事要解决、案结事了、息诉罢访", "诉求合理的解决到位，诉求无理的思想教育到位，生活困难的帮扶救助到位")


def _u(case_no: str, salt: str) -> float:
    """A deterministic uniform number in [0, 1) per case and purpose."""
    h = hashlib.blake2b((salt + case_no).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


class Simulator:
    """Holds the city's reference data; `run(case)` returns (case row, events)."""

    def __init__(self, ref: dict, officers: dict[str, str], generation: int, calendar: WorkCalendar | None = None,
                 eval_window_days: int = 7, now: dt.datetime | None = None,
                 region_names: dict[str, str] | None = None):
        self.ref = ref
        self.now = now or dt.datetime.now(dt.UTC)   # nothing is simulated after this instant
        self.eval_window_days = eval_window_days  # the rate policy's window: a replied case's eval_due_at
        self.officers = officers
        self.generation = generation
        self.calendar = calendar or WorkCalendar()
        self._route_cache: dict[tuple, routing_mod.RoutingDecision] = {}
        self.region_names = region_names or {}   # township code → name, for the 包案 unit of township cases

    @classmethod
    def from_db(cls, db, calendar: WorkCalendar | None = None, now: dt.datetime | None = None) -> Simulator:
        """Load rules, departments, categories and officers of the active generation."""
        from cases.service import CaseService, load_calendar_overrides

        ref = CaseService(db).reference()
        calendar = calendar or WorkCalendar(overrides=load_calendar_overrides(db))
        gen = db.fetchone("SELECT id FROM generation WHERE active")["id"]
        officers = {r["grid_code"]: r["code"] for r in db.fetchall(
            "SELECT DISTINCT ON (s.grid_code) s.grid_code, s.code FROM staff s JOIN staff_role r ON r.role = s.role "
            "WHERE r.is_officer AND s.active ORDER BY s.grid_code, s.code")}
        from cases.policy import load_rate_policy

        townships = {r["code"]: r["name"] for r in db.fetchall(
            "SELECT code, name FROM region WHERE level = 'township' AND generation = %s", (gen,))}
        return cls(ref, officers, gen, calendar, load_rate_policy(db).config.eval_window_days, now, townships)

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
        complex_case = packaged = False
        if case.get("accepted_at"):
            step("accept", "dispatcher", case["accepted_at"])
            if case["channel"] in PETITION_CHANNELS and not case["emergency"] and _u(cno, "complex") < COMPLEX_SHARE:
                reason = COMPLEX_REASONS[int(_u(cno, "complex-reason") * len(COMPLEX_REASONS))]
                before = compute_deadlines(case["received_at"], case["channel"], case["kind"], case["emergency"],
                                           self.calendar).profile
                step("mark_complex", "dispatcher", case["accepted_at"], reason,
                     data={"profile_before": before, "profile_after": "petition"})
                case["complex"], case["complex_reason"] = True, reason
                complex_case = True
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
        if complex_case and _u(cno, "package") < PACKAGE_SHARE:
            packaged = self._package(case, decision, events, step)
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
                              accepted_at=case.get("accepted_at"), dispatched_at=case.get("dispatched_at"),
                              complex_case=complex_case)
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
            "complex": complex_case, "complex_reason": case.get("complex_reason"),
            "package": packaged or None,
        }
        return row, events

    def _package(self, case: dict, decision, events: list, step) -> dict | None:
        """领导包案 a day after the last step so far (before the reply), with up to two 约访/下访 after it."""
        cno = case["case_no"]
        last = max(e[0] for e in events)
        until = min(t for t in (case.get("replied_at"), case.get("closed_at"), self.now) if t is not None)
        at = last + dt.timedelta(days=1)
        if at >= until:
            return None
        leader = (SURNAMES[int(_u(cno, "leader-name") * len(SURNAMES))] + "某某（"
                  + LEADERS[int(_u(cno, "leader") * len(LEADERS))] + "）")
        dept = self.ref["dept_by_code"].get(decision.lead_department or "") or {}
        unit = dept.get("name") or self.region_names.get(case.get("township_code") or "", "乡镇") + "综治中心"
        pkg = {"leader": leader, "unit": unit, "plan": PLANS[int(_u(cno, "plan") * len(PLANS))],
               "standard": STANDARDS[int(_u(cno, "standard") * len(STANDARDS))],
               "target_date": (to_local(at) + dt.timedelta(days=30)).date().isoformat()}
        step("package", "county_center", at, data=pkg)
        for i, kind in enumerate(("约访", "下访")):
            t = at + dt.timedelta(days=2 + 3 * i, hours=2)
            if t >= until or _u(cno, "visit" + kind) < 0.3:
                break
            step("visit", "county_center", t, data={"kind": kind, "text": f"包案领导{kind}信访人，听取诉求、释法明理"})
        return {**pkg, "assigned_at": at}


def load_simulated(db, sim: Simulator, cases, chunk: int = 10_000, progress=None) -> int:
    """Run generated cases through the loop and COPY rows and events, one transaction per chunk."""
    total = 0
    it = iter(cases)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            break
        results = [sim.run(c) for c in batch]
        # the months of these dates get their partitions before the rows come (historical loads included)
        ensure_partitions(db, min(row["received_at"] for row, _ in results),
                          max([row["received_at"] for row, _ in results] + [ev[0] for _, evs in results for ev in evs]))
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
            copy_rows(cur, "case_package", PACKAGE_COLUMNS,
                      ([cid, *(row["package"][k] for k in PACKAGE_COLUMNS[1:])]
                       for cid, (row, _) in zip(ids, results, strict=True) if row.get("package")))
            mark_first_petitions(cur, [cid for cid, (row, _) in zip(ids, results, strict=True)
                                       if row["kind"] == "求决" and row["channel"] in PETITION_CHANNELS])
        total += len(results)
        if progress:
            progress(total)
    return total


def year_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The year of synthetic history ending now."""
    return now - dt.timedelta(days=365), now


PUBLISH_LAG_DAYS = 10   # a month's 三率 and 四色码 are published this long after it ends (the evaluation window)


def publish_history(db, start: dt.datetime, now: dt.datetime, progress=None) -> list[dict]:
    """Snapshot and publish every whole month from `start` that ended PUBLISH_LAG_DAYS before `now`, as the
    city did month by month (each as of its publication day); the 四色码 tasks of all but the newest
    published month are marked done a few days after they were set (the 表扬 given, the 约谈 held)."""
    from cases.reports import publish_month, snapshot_month

    start, now = to_local(start), to_local(now)
    y, m = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    if start.day == 1 and start.hour == 0 and start.minute == 0:
        y, m = start.year, start.month
    out = []
    while True:
        ny, nm = (y, m + 1) if m < 12 else (y + 1, 1)
        published_at = dt.datetime(ny, nm, 1, 9, tzinfo=start.tzinfo) + dt.timedelta(days=PUBLISH_LAG_DAYS)
        if published_at > now:
            break
        snapshot_month(db, y, m, as_of=published_at)
        out.append(publish_month(db, y, m, now=published_at))
        if progress:
            progress(f"published {y}-{m:02d}: {out[-1]['published']} units, {out[-1]['tasks']} 四色码 tasks")
        y, m = ny, nm
    if out:
        db.execute("UPDATE colour_task SET done_at = created_at + make_interval(days => 2 + (id %% 7)::int) "
                   "WHERE month < %s AND done_at IS NULL", (dt.date.fromisoformat(out[-1]["month"]),))
    return out
