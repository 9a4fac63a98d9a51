"""The case service: intake, routing, the closed loop with optimistic concurrency, scoped reads.

Handlers (web, CLI, importer, simulator) call these methods; they never touch case_record directly.
Every read goes through cases.auth.case_scope; every change appends to the event log in the same
transaction as the state change, and bumps `version` (optimistic concurrency: a stale version is told,
never overwritten).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extras

from cases import guard as guard_mod
from cases import routing as routing_mod
from cases import workflow
from cases.accused import Directory
from cases.accused import resolve as resolve_accused
from cases.auth import User, case_scope, region_prefix
from cases.calendar import WorkCalendar, to_local
from cases.case_reads import EVENT_VIEW_COLUMNS, CaseReads
from cases.case_rows import CASE_COLUMNS, OPEN_STATES, _now, _plain, next_due  # noqa: F401 - next_due: re-export
from cases.clusters import suggest_duplicates
from cases.deadlines import CHANNELS, KINDS, PETITION_CHANNELS, channel_code, compute_deadlines, extend
from cases.guard import may_touch, party_for_department, party_for_user
from cases.partitions import event_span, received_at, received_ats
from cases.reporters import link_reporter, mark_first_petitions, reporter_identities, reporter_key  # noqa: F401
from cases.sweeps import SystemSweeps
from gis.db import execute_prepared, rows_as_dicts
from gis.errors import BadInput, Conflict, Forbidden, NotFound, Unprocessable

# Submission fields whose content a replayed submission_key must repeat exactly (else 409).
FINGERPRINT_FIELDS = ("channel", "kind", "title", "content", "category_code", "anonymous", "emergency",
                      "address_text", "reporter_name", "reporter_phone", "reporter_id_no", "crs", "lon", "lat", "x",
                      "y", "accused_units", "accused_persons")


REFERENCE_TTL = 60.0  # seconds
PIN_ROLES = frozenset({"dispatcher", "admin", "city_center", "county_center", "township_center"})
PIN_STATES = frozenset({"received", "accepted", "returned"})
# Keys of action data that only the service itself sets.
RESERVED_DATA_KEYS = frozenset({"set", "from_level", "to_level", "auto", "routing_change"})
# Actions that belong to the case's handler (checked by CaseService._check_handler).
HANDLER_ACTIONS = frozenset({"sign", "return", "start", "progress", "request_extension", "reply", "escalate"})
# Roles that register cases (a department handles cases, it does not register them).
INTAKE_ROLES = frozenset({"dispatcher", "admin", "city_center", "county_center", "township_center", "village_center",
                          "grid_officer"})


@dataclass
class CaseConfig:
    """Tunable behaviour of the loop (a city's settings)."""

    boundary_m: float = 30.0          # closer than this to another grid → flagged for confirmation
    duplicate_radius_m: float = 250.0
    duplicate_days: int = 30
    return_escalation: int = workflow.DEFAULT_RETURN_ESCALATION
    geocode_confident: float = 0.8


def text_field(sub: dict, name: str, required: bool = False, max_len: int = 2000) -> str | None:
    """A text field of a submission, stripped; None when absent; BadInput for any other type or NUL."""
    v = sub.get(name)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise BadInput(f"{name} is required", field=name)
        return None
    if not isinstance(v, str):
        raise BadInput(f"{name} must be text", field=name)
    if "\x00" in v:
        raise BadInput(f"{name} contains a NUL character", field=name)
    v = v.strip()
    if len(v) > max_len:
        raise BadInput(f"{name} is longer than {max_len} characters", field=name)
    return v


def flag_field(sub: dict, name: str) -> bool:
    """A true/false field: JSON booleans (or absent); the strings "true"/"false" are accepted, nothing else."""
    v = sub.get(name)
    if v is None or isinstance(v, bool):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise BadInput(f"{name} must be true or false", field=name)


def int_field(data: dict, name: str, lo: int = 1, hi: int = 2**62) -> int:
    """A positive integer field (JSON number or digits), within [lo, hi]."""
    v = data.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, str)) or not (str(v).strip().isascii()
                                                                  and str(v).strip().isdigit()):
        raise BadInput(f"{name} must be an integer", field=name)
    v = int(str(v).strip())
    if not lo <= v <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}", field=name)
    return v


def submission_fingerprint(sub: dict) -> str:
    """A hash of what a submission says (validated fields; received_at only when the sender gave it), so a
    replayed submission_key can be told apart from a different submission reusing the key."""
    body = {k: sub.get(k) for k in FINGERPRINT_FIELDS if sub.get(k) not in (None, "", [], False)}
    if sub.get("received_at"):
        body["received_at"] = to_local(sub["received_at"]).isoformat()
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def load_calendar_overrides(db) -> dict:
    """Working-day overrides from the calendar_day table: {date: (is_workday, name)}."""
    rows = db.fetchall("SELECT day, is_workday, name FROM calendar_day")
    return {r["day"]: (r["is_workday"], r["name"]) for r in rows}


def _events_insert(case_id: int, at: dt.datetime, actor_id: int | None, events: list[tuple]) -> tuple[str, dict]:
    """The intake events of one case as one INSERT … RETURNING: one statement text per number of events, so a
    connection prepares it once (execute_prepared)."""
    params: dict = {"case_id": case_id, "at": at, "actor": actor_id}
    rows = []
    for i, (role, action, frm, to, reason, data) in enumerate(events):
        rows.append(f"(%(case_id)s::bigint, %(at)s::timestamptz, %(actor)s::bigint, %(role{i})s, %(action{i})s, "
                    f"%(from{i})s, %(to{i})s, %(reason{i})s, %(data{i})s::jsonb)")
        params.update({f"role{i}": role, f"action{i}": action, f"from{i}": frm, f"to{i}": to,
                       f"reason{i}": reason, f"data{i}": json.dumps(data, ensure_ascii=False, default=str)})
    return ("INSERT INTO case_event (case_id, at, actor_id, actor_role, action, from_state, to_state, reason, data) "
            f"VALUES {', '.join(rows)} RETURNING {EVENT_VIEW_COLUMNS}", params)


class CaseService(CaseReads, SystemSweeps):
    """Case operations over one Database, with cached reference data (rules, departments, categories)."""

    def __init__(self, db, config: CaseConfig | None = None, calendar: WorkCalendar | None = None):
        self.db = db
        self.config = config or CaseConfig()
        self._own_calendar = calendar is None      # ours follows `calendar import` (reloaded with the reference)
        self.calendar = calendar or WorkCalendar(overrides=load_calendar_overrides(db))
        self._ref = None
        self._ref_at = 0.0
        self._gazetteer = None
        self._directory = None
        self._dir_fingerprint = None
        self._deadline_policy = None

    # -- reference data -----------------------------------------------------------------------
    def reference(self) -> dict:
        """Categories, departments, routing rules and the city code (cached for REFERENCE_TTL seconds, so a
        running server picks up rules a city edits from the command line; invalidate() forces a reload)."""
        import time

        if self._ref is not None and time.monotonic() - self._ref_at > REFERENCE_TTL:
            self._ref = None
        if self._ref is None:
            self._ref_at = time.monotonic()
            self._deadline_policy = None
            if self._own_calendar:
                # a running server honours `calendar import` within REFERENCE_TTL (a case was signed on a
                # holiday that had just been imported)
                overrides = load_calendar_overrides(self.db)
                if overrides != self.calendar.overrides:
                    self.calendar = WorkCalendar(overrides=overrides)
            # The gazetteer is rebuilt only when the boundaries or the standard addresses changed.
            fp = self.db.fetchone("SELECT (SELECT id FROM generation WHERE active) AS gen, "
                                  "(SELECT count(*) FROM address) AS n, (SELECT max(code) FROM address) AS last")
            fingerprint = (fp["gen"], fp["n"], fp["last"])
            if fingerprint != getattr(self, "_gaz_fingerprint", None):
                self._gazetteer = None
                self._gaz_fingerprint = fingerprint
            cats = {r["code"]: r for r in self.db.fetchall("SELECT code, name, parent_code, dept_kind, min_level "
                                                           "FROM category")}
            depts = self.db.fetchall("SELECT code, name, kind, level, region_code FROM department ORDER BY code")
            rules = self.db.fetchall("SELECT * FROM routing_rule WHERE active ORDER BY priority, id")
            city = self.db.fetchone("SELECT code FROM region WHERE level = 'city' AND generation = "
                                    "(SELECT id FROM generation WHERE active)")
            self._ref = {"categories": cats, "departments": depts, "rules": rules,
                         "dept_by_code": {d["code"]: d for d in depts}, "city_code": city and city["code"],
                         "generation": fp["gen"]}
        return self._ref

    @property
    def deadline_policy(self):
        """The city's deadline policy (cases.policy; reloaded with the reference data)."""
        from cases.policy import load_deadline_policy

        self.reference()
        if self._deadline_policy is None:
            self._deadline_policy = load_deadline_policy(self.db)
        return self._deadline_policy

    def invalidate(self) -> None:
        """Forget cached reference data and the gazetteer."""
        self._ref = None
        self._deadline_policy = None
        self._gazetteer = None
        self._directory = None

    def gazetteer(self):
        """The address gazetteer of the standard addresses (rebuilt when boundaries or addresses change)."""
        self.reference()  # refreshes the fingerprint that decides whether the gazetteer is still current
        if self._gazetteer is None:
            from grids.geocode import Gazetteer
            from grids.store import gazetteer_rows

            self._gazetteer = Gazetteer.from_rows(*gazetteer_rows(self.db))
        return self._gazetteer

    # -- location -------------------------------------------------------------------------------
    def _resolve_location(self, sub: dict) -> dict:
        """Coordinates (any accepted CRS) or address text → grid chain, or a reason to wait for a pin."""
        from grids.locate import locate as _locate

        def locate(*a):
            # with the distance to the nearest other grid in the same statement (需确认 near a boundary)
            return _locate(self.db, *a, near_m=self.config.boundary_m)

        out = {"needs_pin": False, "geocode": None, "lon": None, "lat": None, "orig": None, "chain": None}
        x, y = sub.get("lon", sub.get("x")), sub.get("lat", sub.get("y"))
        if x is not None and y is not None:
            chain = locate(x, y, sub.get("crs") or "EPSG:4326")
            out.update(lon=chain["wgs84"]["lon"], lat=chain["wgs84"]["lat"], orig=chain["input"])
            if chain["status"] != "inside":
                out["needs_pin"] = True
                out["geocode"] = {"status": "outside", "nearest": chain.get("nearest")}
            else:
                out["chain"] = chain
            return out
        text = (sub.get("address_text") or "").strip()
        if not text:
            out["needs_pin"] = True
            out["geocode"] = {"status": "no_location"}
            return out
        from grids.geocode import geocode

        res = geocode(self.gazetteer(), text).to_dict()
        # components: what the geocoder recognised and what not (村: 未找到 新兴村), shown beside the case
        out["geocode"] = {k: res.get(k) for k in ("status", "precision", "confidence", "normalized", "components")}
        matched = res.get("matched") or {}
        if res.get("status") == "matched" and (res.get("confidence") or 0) >= self.config.geocode_confident \
                and matched.get("grid_code") and matched.get("lon") is not None:
            chain = locate(matched["lon"], matched["lat"])
            if chain["status"] == "inside":
                out.update(lon=matched["lon"], lat=matched["lat"], chain=chain)
                return out
        out["needs_pin"] = True
        # Keep the part of the chain the geocoder is sure of (e.g. the county).
        out["partial"] = {k: matched.get(k) for k in ("county_code", "township_code") if matched.get(k)}
        return out

    def _officer_code(self, grid_code: str | None) -> str | None:
        if not grid_code:
            return None
        row = self.db.fetchone("SELECT s.code FROM staff s JOIN staff_role r ON r.role = s.role "
                               "WHERE s.grid_code = %s AND r.is_officer AND s.active ORDER BY s.code LIMIT 1",
                               (grid_code,))
        return row and row["code"]

    # -- intake -------------------------------------------------------------------------------
    def _validate_submission(self, sub: dict) -> dict:
        """Type-check and normalise a submission at the service boundary: every bad field is a 400 naming it."""
        if not isinstance(sub, dict):
            raise BadInput("submission must be a JSON object")
        ch = channel_code(text_field(sub, "channel", required=True, max_len=40))
        kind = text_field(sub, "kind", required=True, max_len=10)
        if kind not in KINDS:
            raise BadInput(f"kind must be one of {'、'.join(KINDS)}", field="kind")
        title = text_field(sub, "title", required=True, max_len=200)
        cat = text_field(sub, "category_code", max_len=40)
        if cat and cat not in self.reference()["categories"]:
            raise BadInput(f"unknown category {cat!r}", field="category_code")
        out = {**sub, "channel": ch, "kind": kind, "title": title, "category_code": cat,
               "anonymous": flag_field(sub, "anonymous"), "emergency": flag_field(sub, "emergency"),
               "content": text_field(sub, "content", max_len=5000) or "",
               "submission_key": text_field(sub, "submission_key", max_len=100),
               "address_text": text_field(sub, "address_text", max_len=300),
               "reporter_name": text_field(sub, "reporter_name", max_len=50),
               "reporter_phone": text_field(sub, "reporter_phone", max_len=30),
               "reporter_id_no": text_field(sub, "reporter_id_no", max_len=30),
               "crs": text_field(sub, "crs", max_len=60)}
        for f in ("accused_units", "accused_persons"):
            v = sub.get(f) or []
            if not isinstance(v, list) or not all(isinstance(x, str) and 0 < len(x) <= 100 and "\x00" not in x
                                                  for x in v) or len(v) > 50:
                raise BadInput(f"{f} must be a list of at most 50 names or codes", field=f)
            out[f] = [x.strip() for x in v]
        received = sub.get("received_at")
        if isinstance(received, str):
            try:
                received = dt.datetime.fromisoformat(received)
            except ValueError:
                raise BadInput(f"received_at {received!r} is not an ISO date-time", field="received_at") from None
        elif received is not None and not isinstance(received, dt.datetime):
            raise BadInput("received_at must be an ISO date-time", field="received_at")
        if received is not None and not 2000 <= received.year <= 2100:
            raise BadInput("received_at must be between the years 2000 and 2100", field="received_at")
        out["received_at"] = to_local(received) if received else None
        out["fingerprint"] = submission_fingerprint(out)
        res = self.resolve_accused(out["accused_units"], out["accused_persons"])
        out.update(accused_units=res.accused_units, accused_persons=res.accused_persons,
                   accused_mentions=res.to_dict() if res.mentions else None, guard_floor=res.floor,
                   guard_review=res.review)
        return out

    def directory(self) -> Directory:
        """Every accusable unit and person with the spellings that name them (cases.accused), rebuilt when
        regions, departments, centers, grids, staff or users changed."""
        fp = self.db.fetchone(
            "SELECT (SELECT id FROM generation WHERE active) AS gen, (SELECT count(*) FROM department) AS nd, "
            "(SELECT max(code) FROM department) AS md, (SELECT count(*) FROM staff WHERE active) AS ns, "
            "(SELECT max(id) FROM staff) AS ms, (SELECT count(*) FROM app_user WHERE active) AS nu, "
            "(SELECT max(id) FROM app_user) AS mu, (SELECT count(*) FROM center) AS nc")
        fingerprint = tuple(fp.values())
        if self._directory is None or self._dir_fingerprint != fingerprint:
            gen = "(SELECT id FROM generation WHERE active)"
            self._directory = Directory.from_rows(
                self.db.fetchall("SELECT code, level, name, short_name, parent_code FROM region "
                                 f"WHERE generation = {gen}"),
                self.db.fetchall("SELECT code, name, kind, level, region_code FROM department"),
                self.db.fetchall("SELECT code, name, level, region_code FROM center"),
                self.db.fetchall(f"SELECT code, name, village_code FROM grid WHERE generation = {gen}"),
                self.db.fetchall("SELECT code, name, grid_code FROM staff WHERE active"),
                self.db.fetchall("SELECT username, display_name, staff_code, grid_code, region_code, department_code "
                                 "FROM app_user WHERE active"))
            self._dir_fingerprint = fingerprint
        return self._directory

    def resolve_accused(self, units: list[str], persons: list[str]):
        """Accused units and persons given by code, name, short name, alias or staff code → every plausible
        body's identities (cases.accused.resolve); ambiguous or unresolved mentions flag the case."""
        if not units and not persons:
            return resolve_accused(None, [], [])
        return resolve_accused(self.directory(), units, persons)

    def resolve_units(self, units: list[str]) -> list[str]:
        """Accused units resolved to the identities the guard compares (kept for callers of the old name)."""
        return self.resolve_accused(units, []).accused_units

    def _existing(self, actor: User | None, sub: dict) -> dict | None:
        """The case already registered under the submission's key, as the actor may see it, or None.

        A replay with other content is a 409 (the new content would be dropped silently). A replay of a
        case the actor cannot see reveals nothing of it: only `duplicate_submission: true`."""
        key = sub.get("submission_key")
        if not key:
            return None
        row = self.db.fetchone("SELECT id, case_no, status, submission_hash, channel, kind, title, content "
                               "FROM case_record WHERE submission_key = %s", (key,))
        if row is None:
            return None
        same = row["submission_hash"] == sub["fingerprint"] if row["submission_hash"] else \
            all(row[k] == sub.get(k) or (k == "content" and row[k] == (sub.get(k) or ""))
                for k in ("channel", "kind", "title", "content"))
        if not same:
            raise Conflict(f"submission_key {key!r} was already used for a different submission",
                           field="submission_key")
        if actor is not None:
            try:
                return {**self._read(actor, row["id"]), "duplicate_submission": True}
            except NotFound:
                pass
        return {"duplicate_submission": True, "submission_key": key}

    def prepare(self, sub: dict, now: dt.datetime | None = None, validated: bool = False) -> dict:
        """Validate, locate and route a submission without writing anything (raises on bad input)."""
        if not validated:
            sub = self._validate_submission(sub)
        now = to_local(now) if now else _now()
        ref = self.reference()
        # one statement (the locate, with the near-boundary distance), on its own: no transaction around it
        loc = self._resolve_location(sub)
        chain = loc["chain"] or {}
        grid = chain.get("grid") or {}
        codes = {"grid_code": grid.get("code"), "generation": grid.get("generation"),
                 "village_code": (chain.get("village") or {}).get("code"),
                 "township_code": (chain.get("township") or {}).get("code"),
                 "county_code": (chain.get("county") or {}).get("code")}
        if not codes["county_code"] and loc.get("partial"):
            codes.update({k: v for k, v in loc["partial"].items()})
        near = chain.get("near_other_grid_m") if codes["grid_code"] else None
        officer = next((p.get("code") for p in [chain.get("officer") or {}] if p.get("code")), None) \
            if chain else None
        case_for_routing = {**codes, "category_code": sub.get("category_code"), "kind": sub["kind"],
                            "channel": sub["channel"], "accused_units": sub.get("accused_units") or [],
                            "accused_persons": sub.get("accused_persons") or [], "guard_floor": sub.get("guard_floor")}
        decision = routing_mod.route(case_for_routing, ref["rules"], ref["departments"], ref["categories"],
                                     chain={"generation": codes["generation"], "officer_code": officer},
                                     city_code=ref["city_code"])
        if near is not None:
            decision.explanation.append(f"距相邻网格 {near:.0f} 米（< {self.config.boundary_m:g} 米），需确认")
        return {"sub": sub, "now": now, "received": sub["received_at"] or now, "loc": loc, "codes": codes,
                "near": near, "decision": decision}

    def intake(self, sub: dict, actor: User | None = None, now: dt.datetime | None = None,
               view: bool = True) -> dict:
        """Register a case from any channel; idempotent on submission_key. Returns the case (as the actor sees
        it) with `duplicate_submission`, `duplicates` (suggested, among cases the actor may see) and the routing
        explanation; with view=False only the essentials (id, case_no, status, grid, routing, duplicates).

        `actor` None is a citizen channel (mini-program, 12345 system through its own account uses a token);
        people registering cases must hold an intake role (INTAKE_ROLES)."""
        if actor is not None and actor.role not in INTAKE_ROLES:
            raise Forbidden(f"role {actor.role} does not register cases", field="role")
        sub = self._validate_submission(sub)
        existing = self._existing(actor, sub)
        if existing is not None:
            return existing
        # Location and routing first, outside the write transaction (they read through the pool).
        prep = self.prepare(sub, now, validated=True)
        try:
            with self.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                case_id, state, dups = self.write_prepared(cur, prep, actor)
                case_no = prep["case_no"]
        except psycopg2.errors.UniqueViolation:
            # The same submission arrived twice at the same moment: the other one won.
            existing = self._existing(actor, sub)
            if existing is None:
                raise
            return existing
        d = prep["decision"]
        out = {"id": case_id, "case_no": case_no, "status": state, "grid_code": prep["codes"]["grid_code"],
               "generation": prep["codes"]["generation"], "needs_pin": prep["loc"]["needs_pin"],
               "near_boundary": prep["near"] is not None, "lead_department": d.lead_department,
               "handling_level": d.handling_level, "routing": d.to_dict()}
        if view and actor:
            if prep["visible"]:
                out = self.case_view(actor, prep["row"], [dict(e) for e in prep["events"]], None,
                                     deadlines=prep["deadlines"])
            else:  # registered for another jurisdiction (or naming the actor): the essentials only
                out = {"id": case_id, "case_no": case_no, "status": state, "visible": False}
        return {**out, "duplicate_submission": False, "duplicates": dups}

    def write_prepared(self, cur, prep: dict, actor: User | None) -> tuple[int, str, list]:
        """Insert a prepared case with its intake events inside the caller's transaction.

        The intake steps (receive, and for a dispatcher accept + dispatch when the location is sure) are
        applied through the transition table in memory, then written as one row and one batch of events.
        """
        sub, loc, codes, near, decision, received = (prep["sub"], prep["loc"], prep["codes"], prep["near"],
                                                     prep["decision"], prep["received"])
        actor_role = actor.role if actor else "citizen"
        self._guard_handlers({**codes, "accused_units": sub.get("accused_units"),
                              "accused_persons": sub.get("accused_persons"), **decision.to_dict()})
        events = [(actor_role, "receive", None, "received", None,
                   {"channel": sub["channel"], "routing": decision.explanation})]
        if sub.get("guard_review"):
            # Flag for a dispatcher: who the accusation names could not be pinned to one body.
            events.append(("system", "guard_review", "received", "received",
                           "被举报对象有歧义或未识别，已提级并待派单员核定",
                           {"mentions": sub["accused_mentions"]["mentions"], "floor": sub.get("guard_floor")}))
        state = "received"
        stamps: dict[str, dt.datetime | None] = {"accepted_at": None, "dispatched_at": None}
        if actor is not None and actor.role in ("dispatcher", "admin", "city_center", "county_center",
                                                "township_center"):
            steps = [("accept", "accepted_at", {})]
            if not loc["needs_pin"] and near is None:
                steps.append(("dispatch", "dispatched_at", {"lead_department": decision.lead_department,
                                                            "handling_level": decision.handling_level}))
            for action, stamp, data in steps:
                t = workflow.apply(state, action, actor.role)
                events.append((actor.role, t.event["kind"], state, t.new_state, None, data))
                state = t.new_state
                stamps[stamp] = received
        rkey = None if sub["anonymous"] else link_reporter(cur, sub.get("reporter_phone"), sub.get("reporter_id_no"))
        dl = compute_deadlines(received, sub["channel"], sub["kind"], bool(sub.get("emergency")), self.calendar,
                               accepted_at=stamps["accepted_at"], dispatched_at=stamps["dispatched_at"],
                               policy=self.deadline_policy)
        prep["deadlines"] = dl   # the answer's deadlines: a new case has no extension, so these are the case's
        d = dl.as_fields()
        scope, scope_params = case_scope(actor) if actor is not None else ("false", {})
        execute_prepared(
            cur,
            "INSERT INTO case_record AS c (case_no, submission_key, channel, kind, category_code, title, content, "
            "anonymous, reporter_name, reporter_phone, reporter_id_no, reporter_key, address_text, geom, orig_crs, "
            "orig_x, orig_y, grid_code, generation, village_code, township_code, county_code, status, emergency, "
            "received_at, accepted_at, dispatched_at, handling_level, handler_region, lead_department, "
            "co_departments, officer_code, routing, geocode, near_boundary, needs_pin, accused_units, "
            "accused_persons, deadline_profile, sign_due_at, reply_due_at, accept_due_at, handle_due_at, "
            "accused_mentions, guard_floor, guard_review, submission_hash) VALUES "
            # a queued submission brings the number it was given on acceptance (cases.queue)
            "(COALESCE(%(case_no)s, 'GG' || to_char(%(received)s::timestamptz AT TIME ZONE gridgov_time_zone(), "
            "'YYYYMMDD') || lpad(nextval('case_no_seq')::text, 8, '0')), %(key)s, %(channel)s, %(kind)s, %(cat)s, "
            "%(title)s, "
            "%(content)s, %(anon)s, %(rname)s, %(rphone)s, %(rid)s, %(rkey)s, %(addr)s, CASE WHEN %(lon)s::float8 IS "
            "NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) END, %(ocrs)s, %(ox)s, %(oy)s, "
            "%(grid)s, %(gen)s, %(village)s, %(township)s, %(county)s, %(state)s, %(emerg)s, %(received)s, "
            "%(accepted)s, %(dispatched)s, %(level)s, %(hregion)s, %(lead)s, %(co)s, %(officer)s, %(routing)s, "
            "%(geocode)s, %(near)s, %(pin)s, %(au)s, %(ap)s, %(profile)s, %(sign_due)s, %(reply_due)s, "
            "%(accept_due)s, %(handle_due)s, %(mentions)s, %(gfloor)s, %(greview)s, %(shash)s) "
            # the row as a read shows it, and whether the actor may read it: the view without a read-back
            f"RETURNING {CASE_COLUMNS}, ({scope}) AS visible",
            {**scope_params, "case_no": prep.get("assigned_case_no"), "key": sub.get("submission_key"),
             "channel": sub["channel"], "kind": sub["kind"],
             "cat": sub.get("category_code"), "title": sub["title"], "content": sub.get("content") or "",
             "anon": sub["anonymous"],
             "rname": None if sub["anonymous"] else sub.get("reporter_name"),
             "rphone": None if sub["anonymous"] else sub.get("reporter_phone"),
             "rid": None if sub["anonymous"] else sub.get("reporter_id_no"),
             "rkey": rkey,
             "addr": sub.get("address_text"), "lon": loc["lon"], "lat": loc["lat"],
             "ocrs": (loc["orig"] or {}).get("crs"), "ox": (loc["orig"] or {}).get("x"),
             "oy": (loc["orig"] or {}).get("y"), "grid": codes["grid_code"], "gen": codes["generation"],
             "village": codes["village_code"], "township": codes["township_code"],
             "county": codes["county_code"], "state": state, "emerg": bool(sub.get("emergency")),
             "received": received, "accepted": stamps["accepted_at"], "dispatched": stamps["dispatched_at"],
             "level": decision.handling_level, "hregion": decision.handler_region,
             "lead": decision.lead_department, "co": decision.co_departments, "officer": decision.officer_code,
             "routing": json.dumps(decision.to_dict(), ensure_ascii=False),
             "geocode": json.dumps(loc["geocode"], ensure_ascii=False) if loc["geocode"] else None,
             "near": near is not None, "pin": loc["needs_pin"], "au": sub.get("accused_units") or [],
             "ap": sub.get("accused_persons") or [], "profile": dl.profile,
             "sign_due": d.get("sign_due_at"), "reply_due": d.get("reply_due_at"),
             "accept_due": d.get("accept_due_at"), "handle_due": d.get("handle_due_at"),
             "mentions": json.dumps(sub["accused_mentions"], ensure_ascii=False) if sub.get("accused_mentions")
             else None, "gfloor": sub.get("guard_floor"), "greview": bool(sub.get("guard_review")),
             "shash": sub.get("fingerprint")})
        row = dict(cur.fetchone())
        prep["visible"] = row.pop("visible")
        prep["row"] = row
        prep["case_no"] = row["case_no"]
        case_id = row["id"]
        if sub["kind"] == "求决" and sub["channel"] in PETITION_CHANNELS:
            mark_first_petitions(cur, [case_id])
        execute_prepared(cur, *_events_insert(case_id, received, actor.id if actor else None, events))
        prep["events"] = cur.fetchall()
        dups = self._duplicates(cur, case_id, {**codes, "category_code": sub.get("category_code"),
                                               "received_at": received, "lon": loc["lon"], "lat": loc["lat"],
                                               "title": sub["title"], "content": sub.get("content") or "",
                                               "anonymous": sub["anonymous"],
                                               "reporter_phone": sub.get("reporter_phone"),
                                               "reporter_key": rkey}, actor)
        return case_id, state, dups

    def _duplicates(self, cur, case_id: int, new: dict, actor: User | None) -> list[dict]:
        """Likely duplicates among the cases the actor may see (none for citizen channels)."""
        if actor is None:
            return []
        new = {**new, "id": case_id}
        with cur.connection.cursor() as tuples:   # up to 50 rows: plain dicts, not RealDictRow's per-field setitem
            execute_prepared(tuples, *self.duplicate_query(actor, case_id, new))  # planned once per connection
            cands = rows_as_dicts(tuples)
        if not cands:
            return []
        return suggest_duplicates(new, cands, radius_m=self.config.duplicate_radius_m,
                                  days=self.config.duplicate_days)

    def duplicate_query(self, actor: User, case_id: int, new: dict) -> tuple[str, dict]:
        """The candidate search of `_duplicates`: same reporter, or same category within the radius, received
        within ±duplicate_days, among the cases the actor may see. Both arms are bounded by an index that
        matches them (reporter_key + received_at; GiST category + geom + received_at, migration 0079)."""
        scope, scope_params = case_scope(actor)
        return (
            # MATERIALIZED: without it the planner walks the (category, received_at) index backwards for the
            # ORDER BY … LIMIT and reads every case of the category in the window to find the few nearby
            "WITH cand AS MATERIALIZED ("
            "SELECT c.id, c.case_no, c.received_at, c.category_code, c.title, c.content, c.anonymous, "
            "c.reporter_phone, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat FROM case_record c "
            f"WHERE {scope} AND c.id <> %(id)s AND c.status <> 'merged' "
            "AND c.received_at BETWEEN %(t)s::timestamptz - make_interval(days => %(days)s) "
            "AND %(t)s::timestamptz + make_interval(days => %(days)s) "
            "AND ((%(rkey)s::text IS NOT NULL AND c.reporter_key = %(rkey)s) OR (c.category_code = %(cat)s AND "
            "%(lon)s::float8 IS NOT NULL AND c.geom && ST_Expand(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), "
            "%(deg)s) AND ST_DWithin(c.geom::geography, "
            "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(r)s)))) "
            "SELECT * FROM cand ORDER BY received_at DESC LIMIT 50",
            {**scope_params, "id": case_id, "t": new["received_at"], "days": self.config.duplicate_days,
             "rkey": new["reporter_key"],
             "cat": new["category_code"], "lon": new["lon"], "lat": new["lat"],
             "r": self.config.duplicate_radius_m,
             "deg": self.config.duplicate_radius_m * 1.2 / (111_000.0 * max(math.cos(math.radians(new["lat"] or 0)),
                                                                           0.087))})

    def _set_deadlines(self, cur, case_id: int) -> None:
        month = received_at(cur, case_id)   # the case's own partition (cases.partitions)
        cur.execute("SELECT channel, kind, emergency, complex, received_at, accepted_at, dispatched_at, extended_days "
                    "FROM case_record WHERE id = %s AND received_at = %s", (case_id, month))
        r = cur.fetchone()
        d = self.deadlines_for(r)
        f = d.as_fields()
        cur.execute("UPDATE case_record SET sign_due_at = %s, reply_due_at = %s, accept_due_at = %s, "
                    "handle_due_at = %s, deadline_profile = %s WHERE id = %s AND received_at = %s",
                    (f.get("sign_due_at"), f.get("reply_due_at"), f.get("accept_due_at"), f.get("handle_due_at"),
                     d.profile, case_id, month))

    def deadlines_for(self, r: dict):
        """The deadlines of a case row (profile, milestones, explanation), extensions applied."""
        policy = self.deadline_policy
        d = compute_deadlines(r["received_at"], r["channel"], r["kind"], r["emergency"], self.calendar,
                              accepted_at=r.get("accepted_at"), dispatched_at=r.get("dispatched_at"),
                              complex_case=bool(r.get("complex")), policy=policy)
        if r.get("extended_days"):
            d = extend(d, int(r["extended_days"]), self.calendar, policy=policy)
        return d

    # -- the loop -------------------------------------------------------------------------------
    def _event(self, cur, case_id, actor: User | None, role: str, action: str, from_state, to_state, reason,
               data: dict, at: dt.datetime) -> None:
        cur.execute("INSERT INTO case_event (case_id, at, actor_id, actor_role, action, from_state, to_state, reason, "
                    "data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (case_id, at, actor.id if actor else None, role, action, from_state, to_state, reason,
                     json.dumps(data, ensure_ascii=False, default=str)))

    _STAMP = {"accept": "accepted_at", "dispatch": "dispatched_at", "sign": "signed_at", "reply": "replied_at",
              "evaluate": "evaluated_at", "close": "closed_at", "reassign": "dispatched_at",
              "correct_routing": "dispatched_at", "escalate": "dispatched_at"}

    def _apply(self, cur, case_id: int, actor: User | None, state: str, action: str, reason, data: dict,
               at: dt.datetime, role: str | None = None, updates: dict | None = None) -> str:
        """Apply one transition: new state, stamps, counters and routing `updates` (from _reroute only), plus
        its event — which records what the routing changed."""
        role = role or (actor.role if actor else "system")
        t = workflow.apply(state, action, role, reason)
        sets, params = ["status = %(to)s", "updated_at = %(at)s"], {"to": t.new_state, "at": at, "id": case_id}
        stamp = self._STAMP.get(action)
        if stamp:
            sets.append(f"{stamp} = %(at)s")
        if action in ("dispatch", "reassign", "correct_routing", "escalate"):
            sets.append("signed_at = NULL")
        if action == "return":
            sets.append("returned_count = returned_count + 1")
        if action == "reopen":
            sets += ["reopened_count = reopened_count + 1", "replied_at = NULL", "evaluated_at = NULL",
                     "evaluation = NULL", "closed_at = NULL", "solved = NULL", "eval_due_at = NULL",
                     # the citizen's verdict stays in the month it was given (seed 001)
                     "prior_evaluations = prior_evaluations || CASE WHEN evaluation IS NULL THEN '{}'::text[] "
                     "ELSE ARRAY[evaluation] END",
                     "prior_evaluated_at = prior_evaluated_at || CASE WHEN evaluation IS NULL THEN "
                     "'{}'::timestamptz[] ELSE ARRAY[coalesce(evaluated_at, closed_at, %(at)s)] END"]
        if action == "correct_routing":
            sets.append("forwarded = true")
        if action == "reply":
            # The handler may say whether it was solved; no default: "是否得到了解决，最终还是要群众来检验" (seed 001).
            sets.append("solved = %(solved)s")
            params["solved"] = data.get("solved")
            # the citizen's evaluation window (超期未评 after it counts against 满意率, seed 002)
            from cases.policy import load_rate_policy

            sets.append("eval_due_at = %(at)s + make_interval(days => %(window)s)")
            params["window"] = load_rate_policy(self.db).config.eval_window_days
        if action == "evaluate":
            ev = data.get("evaluation")
            if ev not in ("满意", "基本满意", "不满意"):
                raise BadInput("evaluation must be 满意, 基本满意 or 不满意", field="evaluation")
            sets.append("evaluation = %(ev)s")
            params["ev"] = ev
            if ev == "不满意":  # the citizen's verdict overrides the handler's "solved" (seed 001)
                sets.append("solved = false")
        if action == "merge":
            sets.append("merged_into = %(master)s")
            params["master"] = data["master_id"]
        # the month named: the case's statements are planned on its own partition (cases.partitions.received_at)
        params["rat"] = received_at(cur, case_id)
        if updates:
            cur.execute(f"SELECT {CASE_COLUMNS} FROM case_record WHERE id = %s AND received_at = %s",
                        (case_id, params["rat"]))
            self._guard_handlers({**cur.fetchone(), **updates})
        for col in ("handling_level", "handler_region", "lead_department", "co_departments", "officer_code",
                    "grid_code", "generation", "village_code", "township_code", "county_code", "category_code",
                    "routing", "needs_pin", "near_boundary", "accused_units", "accused_persons", "guard_floor",
                    "guard_review"):
            if col in (updates or {}):
                v = updates[col]
                sets.append(f"{col} = %(set_{col})s")
                params[f"set_{col}"] = json.dumps(v, ensure_ascii=False) if col == "routing" else v
        cur.execute(f"UPDATE case_record SET {', '.join(sets)} WHERE id = %(id)s AND received_at = %(rat)s", params)
        ev_data = dict(data)
        if updates:
            ev_data["routing_change"] = {k: v for k, v in updates.items() if k != "routing"}
        self._event(cur, case_id, actor, role, t.event["kind"], state, t.new_state, t.event.get("reason"),
                    {**ev_data, **{k: v for k, v in t.event.items() if k in ("from_level", "to_level", "auto")}}, at)
        return t.new_state

    @staticmethod
    def _lock_case(cur, user: User, case_id: int) -> dict:
        """The case row locked for update, if the user may see it (else NotFound, never a hint it exists)."""
        scope, params = case_scope(user)
        month = received_at(cur, case_id)   # names the case's month partition (cases.partitions)
        cur.execute(f"SELECT {CASE_COLUMNS} FROM case_record c WHERE c.id = %(cid)s AND c.received_at = %(rat)s "
                    f"AND {scope} FOR UPDATE", {**params, "cid": case_id, "rat": month})
        case = cur.fetchone()
        if case is None or not may_touch(case, party_for_user(user)):
            raise NotFound(f"case {case_id} not found")
        return case

    def act(self, user: User, case_id: int, action: str, reason: str | None = None,
            expected_version: int | None = None, data: dict | None = None, now: dt.datetime | None = None) -> dict:
        """Perform an action on a case the user can see; refuses illegal transitions and stale versions."""
        from cases.action_schema import validate as validate_action_data

        if data is not None and not isinstance(data, dict):
            raise BadInput("action data must be a JSON object")
        # Internal keys are never taken from a client: routing changes come only from _reroute.
        data = {k: v for k, v in (data or {}).items() if k not in RESERVED_DATA_KEYS}
        if reason is not None and not isinstance(reason, str):
            raise BadInput("reason must be text", field="reason")
        reason = text_field({"reason": reason}, "reason", max_len=1000)
        if expected_version is not None:
            expected_version = int_field({"version": expected_version}, "version", lo=0)
        for f in ("reply", "text", "evaluation", "grid_code", "category_code", "lead_department"):
            if f in data:
                data[f] = text_field(data, f, max_len=2000)
        now = to_local(now) if now else _now()
        ref = self.reference()
        try:
            with self.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                if action == "merge":
                    data["master_id"] = int_field(data, "master_id")
                    # Lock both cases in id order, so two cross merges cannot deadlock.
                    pair = [case_id, data["master_id"]]
                    cur.execute("SELECT id FROM case_record WHERE id = ANY(%s) AND received_at = ANY(%s) "
                                "ORDER BY id FOR UPDATE", (pair, received_ats(cur, pair)))
                case = self._lock_case(cur, user, case_id)
                data = validate_action_data(action, data)  # per-action fields and bounds, after the scope's 404
                if expected_version is not None and expected_version != case["version"]:
                    raise Conflict(f"case {case['case_no']} was changed by someone else (version {case['version']}, "
                                   f"you had {expected_version}): reload and try again", field="version",
                                   details={"version": case["version"], "status": case["status"]})
                self._check_handler(user, case, action)
                updates = self._prepare_action(cur, user, case, action, reason, data, ref, now)
                self._apply(cur, case_id, user, case["status"], action, reason, data, now, updates=updates)
                cur.execute("UPDATE case_record SET version = version + 1 WHERE id = %s AND received_at = %s "
                            "AND version = %s", (case_id, case["received_at"], case["version"]))
                if cur.rowcount != 1:  # cannot happen under FOR UPDATE, kept as a guard
                    raise Conflict("case changed concurrently: reload and try again", field="version")
                self._after_action(cur, user, case, action, reason, data, now)
        except (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure):
            raise Conflict("the case was changed at the same moment by someone else: reload and try again",
                           field="version") from None
        try:
            return self._read(user, case_id)
        except NotFound:
            # Committed, and the case left the actor's view (e.g. a 2nd return escalated it upwards): the
            # action is done, so answer with the committed result, minimal — never a 404.
            row = self.db.fetchone("SELECT id, case_no, status, version FROM case_record WHERE id = %s "
                                   "AND received_at = %s", (case_id, received_at(self.db, case_id)))
            return {**row, "status_label": workflow.STATES.get(row["status"], row["status"]), "action": action,
                    "committed": True, "moved_out": True}

    def _check_handler(self, user: User, case: dict, action: str) -> None:
        """Handling actions belong to the case's handler: its grid officer, lead (or co-) department, or center."""
        if action not in HANDLER_ACTIONS or user.role in ("admin", "dispatcher"):
            return
        lead = case.get("lead_department")
        ok = (
            (user.role == "grid_officer" and case.get("grid_code") == user.grid_code
             and (case.get("handling_level") in ("grid", "village") or not lead))
            or (user.role == "department" and (lead == user.department_code or (
                action == "progress" and user.department_code in (case.get("co_departments") or []))))
            or (user.role.endswith("_center") and case.get("handler_region") == user.region_code)
        )
        if not ok:
            raise Forbidden(f"case {case['case_no']} is handled by someone else: only its handler may {action}",
                            field="action")

    def _prepare_action(self, cur, user: User, case: dict, action: str, reason, data: dict, ref: dict, now):
        """Action-specific checks and side tables before the transition; returns routing updates (or None)."""
        case_id = case["id"]
        if action == "package":
            self._package(cur, user, case, data, now)
            return None
        if action == "escalate":
            level = case["handling_level"] or "village"
            target = workflow.next_level(level if level in workflow.LEVELS else "village")
            data.update(from_level=level, to_level=target)
            return self._reroute(case, ref, escalation_level=target, user=user)
        if action in ("correct_routing", "reassign") or (action == "dispatch" and data.get("grid_code")):
            return self._reroute(case, ref, override=data, user=user,
                                 review=action != "dispatch" and (case.get("guard_review") or any(
                                     data.get(f) for f in ("accused_units", "accused_persons"))))
        if action == "merge":
            self._check_master(cur, user, case, data)
        elif action == "mark_complex":
            # 疑难复杂 (seed 002: "除疑难复杂的信访事项外，实行信访事项简易程序办理"): 信访 cases only, once.
            if case["channel"] not in PETITION_CHANNELS:
                raise Unprocessable("only 信访 cases (网上信访、来信、来访、领导接访) can be flagged 疑难复杂",
                                    field="action")
            if case.get("complex"):
                raise Conflict(f"case {case['case_no']} is already flagged 疑难复杂", field="action")
            before = self.deadlines_for(case).profile
            cur.execute("UPDATE case_record SET complex = true, complex_reason = %s WHERE id = %s "
                        "AND received_at = %s", (reason, case_id, case["received_at"]))
            data.update(profile_before=before, profile_after="petition")
        elif action == "request_extension":
            data["days"] = int_field(data, "days", lo=1, hi=90)
            cur.execute("SELECT 1 FROM extension_request WHERE case_id = %s AND decided_at IS NULL", (case_id,))
            if cur.fetchone():
                raise Conflict("an extension request is already pending", field="days")
            cur.execute("INSERT INTO extension_request (case_id, days, reason, requested_by, requested_at) "
                        "VALUES (%s, %s, %s, %s, %s)", (case_id, data["days"], reason or "", user.id, now))
        elif action in ("approve_extension", "deny_extension"):
            cur.execute("SELECT id, days FROM extension_request WHERE case_id = %s AND decided_at IS NULL",
                        (case_id,))
            req = cur.fetchone()
            if req is None:
                raise Conflict("no pending extension request", field="action")
            approve = action == "approve_extension"
            if approve:  # validates the profile's maximum before anything is written
                self.deadlines_for({**case, "extended_days": case["extended_days"] + req["days"]})
            cur.execute("UPDATE extension_request SET decided_by = %s, decided_at = %s, approved = %s "
                        "WHERE id = %s", (user.id, now, approve, req["id"]))
            if approve:
                cur.execute("UPDATE case_record SET extended_days = extended_days + %s WHERE id = %s "
                            "AND received_at = %s", (req["days"], case_id, case["received_at"]))
            data["days"] = req["days"]
        elif action == "reply" and "solved" in data:
            data["solved"] = flag_field(data, "solved")
        return None

    @staticmethod
    def _package(cur, user: User, case: dict, data: dict, now) -> None:
        """领导包案: leader, responsible unit, plan (一案一策) and target date are required; the standard is
        optional. Replaces the case's current package; the event keeps every assignment."""
        missing = [f for f in ("leader", "unit", "plan", "target_date") if not (data.get(f) or "").strip()]
        if missing:
            raise BadInput(f"领导包案需要 {', '.join(missing)}", field=missing[0])
        target = dt.date.fromisoformat(data["target_date"])
        if target < to_local(case["received_at"]).date():
            raise BadInput("target_date is before the case was received", field="target_date")
        cur.execute("INSERT INTO case_package (case_id, leader, unit, plan, standard, target_date, assigned_by, "
                    "assigned_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (case_id) DO UPDATE SET "
                    "leader = EXCLUDED.leader, unit = EXCLUDED.unit, plan = EXCLUDED.plan, "
                    "standard = EXCLUDED.standard, target_date = EXCLUDED.target_date, "
                    "assigned_by = EXCLUDED.assigned_by, assigned_at = EXCLUDED.assigned_at",
                    (case["id"], data["leader"].strip(), data["unit"].strip(), data["plan"].strip(),
                     (data.get("standard") or "").strip(), target, user.id, now))

    def _after_action(self, cur, user: User, case: dict, action: str, reason, data: dict, now) -> None:
        case_id = case["id"]
        if action == "merge":
            self._event(cur, data["master_id"], user, user.role, "merged_in", None, None, reason,
                        {"case_id": case_id, "case_no": case["case_no"]}, now)
        if action == "return":
            self._auto_escalate(cur, case_id, user, now)
        if action == "reply":
            # 一稿多投: every case merged into this one gets the same, unified answer in its history.
            cur.execute(
                "INSERT INTO case_event (case_id, at, actor_id, actor_role, action, from_state, to_state, reason, "
                "data) SELECT m.id, %s, %s, %s, 'unified_reply', m.status, m.status, %s, %s FROM case_record m "
                "WHERE m.merged_into = %s",
                (now, user.id, user.role, reason, json.dumps({"master_id": case_id, "master_no": case["case_no"],
                                                              "reply": data.get("reply") or data.get("text")},
                                                             ensure_ascii=False), case_id))
        if action in ("dispatch", "accept", "approve_extension", "escalate", "reassign", "correct_routing",
                      "mark_complex"):
            self._set_deadlines(cur, case_id)

    def _auto_escalate(self, cur, case_id: int, user: User, now) -> None:
        """Escalate as `system` when the case was returned often enough at its current level."""
        cur.execute(f"SELECT {CASE_COLUMNS} FROM case_record WHERE id = %s AND received_at = %s",
                    (case_id, received_at(cur, case_id)))
        case = cur.fetchone()
        level = case["handling_level"] if case["handling_level"] in workflow.LEVELS else "village"
        # Returns since the last escalation: a case escalated once starts counting again at its new level.
        span, sp = event_span(cur, case_id)
        cur.execute(f"SELECT count(*) AS n FROM case_event WHERE case_id = %(id)s AND {span} AND action = 'return' "
                    f"AND id > coalesce((SELECT max(id) FROM case_event WHERE case_id = %(id)s AND {span} "
                    f"AND action = 'escalate'), 0)", {"id": case_id, **sp})
        returns_here = cur.fetchone()["n"]
        t = workflow.auto_escalate(case["status"], level, returns_here, self.config.return_escalation)
        if t is None:
            return
        case = {**case, "returned_by": self._returned_by(case_id, cur)}
        updates = self._reroute(case, self.reference(), escalation_level=t.event["to_level"])
        data = {"from_level": level, "to_level": t.event["to_level"], "auto": True}
        if case["returned_by"]:
            data["not_back_to"] = case["returned_by"]
        self._apply(cur, case_id, None, case["status"], "escalate", t.event["reason"], data, now, role="system",
                    updates=updates)
        self._set_deadlines(cur, case_id)

    _RETURNED_BY = ("SELECT u.department_code AS code FROM case_event e JOIN app_user u ON u.id = e.actor_id "
                    "WHERE e.case_id = %(cid)s AND {span} AND e.action = 'return' AND u.department_code IS NOT NULL "
                    "GROUP BY 1 HAVING count(*) >= %(n)s ORDER BY 1")

    def _returned_by(self, case_id: int, cur=None) -> list[str]:
        """Departments whose handlers returned the case as often as it takes to escalate it: routing never
        hands it back to them (seed 000: 村为主、乡镇兜底、县域止访 — the next level's unit takes it). `cur`
        reads inside the transaction that is writing the returns."""
        span, sp = event_span(cur if cur is not None else self.db, case_id, alias="e")
        sql, args = self._RETURNED_BY.format(span=span), {"cid": case_id, "n": self.config.return_escalation, **sp}
        if cur is not None:
            cur.execute(sql, args)
            rows = cur.fetchall()
        else:
            rows = self.db.fetchall(sql, args)
        return [r["code"] for r in rows]

    def _reroute(self, case: dict, ref: dict, escalation_level: str | None = None, override: dict | None = None,
                 user: User | None = None, review: bool = False):
        """Route a case again (escalation, correction, reassignment, dispatch to a grid, pin) and return the
        routing columns to update. Overrides must stay in the actor's jurisdiction and pass the guard;
        `review` is a dispatcher's check of a flagged accusation: the floor above all plausible accused bodies
        is lifted (they all stay excluded) and mentions it adds in `accused_units`/`accused_persons` are
        resolved and added (never removed)."""
        override = override or {}
        c = dict(case)
        if case.get("id") and "returned_by" not in c:
            c["returned_by"] = self._returned_by(case["id"])
        extra = {}
        if review:
            adds = {}
            for f in ("accused_units", "accused_persons"):
                v = override.get(f) or []
                if not isinstance(v, list) or len(v) > 50 or not all(
                        isinstance(x, str) and 0 < len(x.strip()) <= 100 and "\x00" not in x for x in v):
                    raise BadInput(f"{f} must be a list of at most 50 names or codes", field=f)
                adds[f] = [x.strip() for x in v]
            res = self.resolve_accused(adds["accused_units"], adds["accused_persons"])
            for f, new in (("accused_units", res.accused_units), ("accused_persons", res.accused_persons)):
                c[f] = list(dict.fromkeys([*(case.get(f) or []), *new]))
                extra[f] = c[f]
            c["guard_floor"] = res.floor if res.review else None
            extra.update(guard_floor=c["guard_floor"], guard_review=res.review)
        if override.get("grid_code"):
            g = self.db.fetchone(
                "SELECT g.code, g.generation, g.village_code, r.parent_code AS township_code, "
                "t.parent_code AS county_code FROM grid g JOIN region r ON r.code = g.village_code AND "
                "r.generation = g.generation JOIN region t ON t.code = r.parent_code AND t.generation = g.generation "
                "WHERE g.code = %s AND g.generation = (SELECT id FROM generation WHERE active)",
                (override["grid_code"],))
            if g is None:
                raise BadInput(f"unknown grid {override['grid_code']!r}", field="grid_code")
            self._check_jurisdiction(user, village_code=g["village_code"])
            if g["code"] in (case.get("accused_units") or []):
                raise Unprocessable("被举报的网格不得承办该件", field="grid_code")
            c.update(grid_code=g["code"], generation=g["generation"], village_code=g["village_code"],
                     township_code=g["township_code"], county_code=g["county_code"])
        if override.get("category_code"):
            if override["category_code"] not in ref["categories"]:
                raise BadInput(f"unknown category {override['category_code']!r}", field="category_code")
            c["category_code"] = override["category_code"]
        if escalation_level:
            c["escalation_level"] = escalation_level
        elif review and case.get("id"):
            # The level the guard's floor raised the case to goes with the floor; real escalations stay.
            span, sp = event_span(self.db, case["id"])
            row = self.db.fetchone(f"SELECT max(array_position(%(levels)s, data->>'to_level')) AS i FROM case_event "
                                   f"WHERE case_id = %(cid)s AND {span} AND action = 'escalate'",
                                   {"levels": list(routing_mod.LEVELS), "cid": case["id"], **sp})
            c["escalation_level"] = routing_mod.LEVELS[row["i"] - 1] if row and row["i"] else None
        elif case.get("handling_level") in ("township", "county", "city"):
            c["escalation_level"] = case["handling_level"]
        officer = self._officer_code(c.get("grid_code"))
        d = routing_mod.route(c, ref["rules"], ref["departments"], ref["categories"],
                              chain={"generation": c.get("generation"), "officer_code": officer},
                              city_code=ref["city_code"])
        if override.get("lead_department"):
            dept = ref["dept_by_code"].get(override["lead_department"])
            if dept is None:
                raise BadInput(f"unknown department {override['lead_department']!r}", field="lead_department")
            self._check_jurisdiction(user, department=dept)
            if not may_touch(c, party_for_department(dept)):
                raise Unprocessable("被举报单位不得承办该件", field="lead_department")
            d.lead_department = override["lead_department"]
            d.co_departments = [x for x in d.co_departments if x != d.lead_department]
            d.explanation.append(f"人工指定牵头部门：{dept['name']}")
        out = {"handling_level": d.handling_level, "handler_region": d.handler_region,
               "lead_department": d.lead_department, "co_departments": d.co_departments,
               "officer_code": d.officer_code, "routing": d.to_dict(), "needs_pin": not c.get("grid_code"),
               "near_boundary": False, **extra}
        for k in ("grid_code", "generation", "village_code", "township_code", "county_code", "category_code"):
            if override.get(k) or (k != "category_code" and override.get("grid_code")):
                out[k] = c.get(k)
        return out

    @staticmethod
    def _check_jurisdiction(user: User | None, village_code: str | None = None, department: dict | None = None):
        """Re-routing stays inside the actor's jurisdiction: a new location in it, a department of it or above it
        (a township may hand a case to its county's or the city's bureau, never to another county's)."""
        if user is None:
            return
        prefix = user.region_prefix
        if village_code is not None and not village_code.startswith(prefix):
            raise Forbidden("不得改派至本辖区以外的网格（请报上级改派）", field="grid_code")
        if department is not None:
            r = department["region_code"]
            if not (r.startswith(prefix) or user.region_code.startswith(region_prefix(r))):
                raise Forbidden("不得改派给本辖区以外的部门（请报上级改派）", field="lead_department")

    def _guard_handlers(self, case: dict) -> None:
        """The last check before any routing is written: no handler of the case may be one it accuses."""
        blocked = guard_mod.blocked_handlers(case, self.reference()["dept_by_code"])
        if blocked:
            raise Unprocessable("被举报单位或人员不得承办该件（回避）", field="lead_department")

    def _check_master(self, cur, user: User, case: dict, data: dict) -> None:
        """The master of a merge: visible to the user, open, and the guard holds both ways through the merge.

        The merged family (both cases and whatever was merged into either) will share one answer, so it shares
        one guard: the union of their accused units and persons. If that union accuses any handler of any
        family member — an accusation merged into a case its accused unit handles, or a case handled by the
        accused merged into the accusation — the merge is refused (409). Otherwise every member inherits the
        union, so no accused unit or person reads the unified reply through any of them."""
        master = data["master_id"]
        if master == case["id"]:
            raise BadInput("merge needs master_id of another case", field="master_id")
        scope, params = case_scope(user)
        cur.execute(f"SELECT id, status, case_no, received_at FROM case_record c WHERE c.id = %(mid)s "
                    f"AND c.received_at = %(mrat)s AND {scope}", {**params, "mid": master,
                                                                 "mrat": received_at(cur, master)})
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"master case {master} not found")
        if row["status"] in ("merged", "rejected"):
            raise Unprocessable(f"master case {master} is {row['status']}", field="master_id")
        cur.execute("SELECT id, accused_units, accused_persons, lead_department, co_departments, officer_code, "
                    "handler_region, grid_code, guard_review FROM case_record WHERE id = ANY(%(ids)s) "
                    "OR merged_into = ANY(%(ids)s) ORDER BY id", {"ids": [case["id"], master]})
        family = cur.fetchall()
        units = list(dict.fromkeys(x for m in family for x in m["accused_units"] or []))
        persons = list(dict.fromkeys(x for m in family for x in m["accused_persons"] or []))
        depts = self.reference()["dept_by_code"]
        for m in family:
            if (units or persons) and guard_mod.blocked_handlers(
                    {**m, "accused_units": units, "accused_persons": persons}, depts):
                raise Conflict("举报件不得与被举报单位或人员承办的案件合并（回避）：合并后统一答复会让被举报方看到",
                               field="master_id")
        if (row["received_at"], row["id"]) > (case["received_at"], case["id"]):
            # 一稿多投 (seed 003): "谁先收到谁负责办理" — the earliest received case is the master
            raise Unprocessable(f"一稿多投由最先收到的件负责办理：{case['case_no']} 先于 {row['case_no']} 收到，"
                                f"应将 {row['case_no']} 并入 {case['case_no']}", field="master_id")
        if not units and not persons:
            return
        cur.execute("UPDATE case_record SET accused_units = %s, accused_persons = %s, guard_review = guard_review "
                    "OR %s WHERE id = ANY(%s)", (units, persons, any(m["guard_review"] for m in family),
                                                 [m["id"] for m in family]))

    def pin(self, user: User, case_id: int, x, y, crs: str = "EPSG:4326", now=None,
            expected_version: int | None = None) -> dict:
        """Manual pin for a case waiting in the dispatcher queue (no location, or near a grid boundary): locate,
        route, recompute deadlines; then it can be dispatched. Only dispatchers and upper centers pin."""
        from grids.locate import locate

        if user.role not in PIN_ROLES:
            raise Forbidden(f"role {user.role} does not pin cases", field="role")
        if expected_version is not None:
            expected_version = int_field({"version": expected_version}, "version", lo=0)
        crs = text_field({"crs": crs}, "crs", max_len=60) or "EPSG:4326"
        chain = locate(self.db, x, y, crs)
        lon, lat, orig = chain["wgs84"]["lon"], chain["wgs84"]["lat"], chain["input"]
        if chain["status"] != "inside":
            raise Unprocessable("该点位于网格覆盖范围之外", field="lon", details={"nearest": chain.get("nearest")})
        ref = self.reference()
        now = to_local(now) if now else _now()
        with self.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            case = self._lock_case(cur, user, case_id)
            if expected_version is not None and expected_version != case["version"]:
                raise Conflict(f"case {case['case_no']} was changed by someone else: reload and try again",
                               field="version", details={"version": case["version"]})
            if not (case["needs_pin"] or case["near_boundary"]) or case["status"] not in PIN_STATES:
                raise Conflict(f"case {case['case_no']} is not waiting for a location ({case['status']})",
                               field="status")
            upd = self._reroute(case, ref, override={"grid_code": chain["grid"]["code"]}, user=user)
            self._guard_handlers({**case, **upd})
            cur.execute(
                "UPDATE case_record SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), orig_crs = %s, orig_x = %s, "
                "orig_y = %s, grid_code = %s, generation = %s, village_code = %s, township_code = %s, county_code = %s,"
                " handling_level = %s, handler_region = %s, lead_department = %s, co_departments = %s, "
                "officer_code = %s, routing = %s, needs_pin = false, near_boundary = false, version = version + 1, "
                "updated_at = %s WHERE id = %s",
                (lon, lat, orig["crs"], orig["x"], orig["y"], upd["grid_code"], upd["generation"], upd["village_code"],
                 upd["township_code"], upd["county_code"], upd["handling_level"], upd["handler_region"],
                 upd["lead_department"], upd["co_departments"], upd["officer_code"],
                 json.dumps(upd["routing"], ensure_ascii=False), now, case_id))
            self._event(cur, case_id, user, user.role, "pin", case["status"], case["status"], None,
                        {"grid_code": upd["grid_code"], "lon": lon, "lat": lat,
                         "routing_change": {k: v for k, v in upd.items() if k != "routing"}}, now)
            self._set_deadlines(cur, case_id)
        try:
            return self._read(user, case_id)
        except NotFound:  # pinned into another jurisdiction: it left this user's queue
            return {"id": case_id, "case_no": case["case_no"], "grid_code": upd["grid_code"], "moved_out": True}

    # -- reads ------------------------------------------------------------------------------------
def channel_choices() -> dict:
    """Channel codes and Chinese labels (for forms and docs)."""
    return dict(CHANNELS)
