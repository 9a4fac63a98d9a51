"""Open311 GeoReport v2 with a Chinese profile — the mapping between gridgov cases and GeoReport requests.
No Flask here: webmap/open311.py parses HTTP and formats JSON/XML.

Services are the category taxonomy. A request is a case: `service_request_id` is the case number, `status` is
open/closed, `expected_datetime` is the reply (or, for the regular 信访 regime, handling) deadline from the
deadline engine, `agency_responsible` the lead department or the handling level's 综治中心. Extensions (all
documented in docs/open311.md): `crs` for GCJ-02/BD-09 coordinates in and out, `grid_code`/`center_code`,
`status_zh`, `channel`/`channel_zh`, `kind`, `updates` (the event history) and `updated_after` paging.

Reads go through cases.auth.case_scope; reporter data is never returned (GeoReport has no field for it).
"""

from __future__ import annotations

import datetime as dt
import secrets

from cases import workflow
from cases.auth import User, case_scope
from cases.calendar import to_local
from cases.deadlines import CHANNELS, KINDS
from cases.partitions import received_at
from gis.coords import normalize_crs_name, wgs_to_bd, wgs_to_gcj
from gis.errors import BadInput, NotFound

OUT_CRS = ("EPSG:4326", "GCJ-02", "BD-09")
TOKEN_PREFIX = "o311_"
MAX_LIMIT = 1000
DEFAULT_KIND = "求决"
DEFAULT_CHANNEL = "hotline_12345"


def services(db) -> list[dict]:
    """Every category as a GeoReport service (metadata=true: see service_definition for the attributes)."""
    rows = db.fetchall("SELECT c.code, c.name, c.dept_kind, p.name AS parent FROM category c "
                       "LEFT JOIN category p ON p.code = c.parent_code ORDER BY c.code")
    return [{"service_code": r["code"], "service_name": r["name"],
             "description": f"{r['parent'] + ' / ' if r['parent'] else ''}{r['name']}", "metadata": True,
             "type": "realtime", "keywords": r["dept_kind"] or "", "group": r["parent"] or r["name"]} for r in rows]


def service_definition(db, code: str) -> dict:
    """The attributes a request of this service may carry (kind, emergency, anonymous)."""
    if not db.fetchone("SELECT 1 FROM category WHERE code = %s", (code,)):
        raise NotFound(f"unknown service_code {code!r}", field="service_code")
    return {"service_code": code, "attributes": [
        {"variable": True, "code": "kind", "datatype": "singlevaluelist", "required": False, "order": 1,
         "datatype_description": f"诉求类型，缺省 {DEFAULT_KIND}", "description": "诉求类型 (kind of request)",
         "values": [{"key": k, "name": k} for k in KINDS]},
        {"variable": True, "code": "emergency", "datatype": "singlevaluelist", "required": False, "order": 2,
         "datatype_description": "紧急诉求 (1 小时内到达一线，3 小时内处置)", "description": "紧急",
         "values": [{"key": "true", "name": "是"}, {"key": "false", "name": "否"}]},
        {"variable": True, "code": "anonymous", "datatype": "singlevaluelist", "required": False, "order": 3,
         "datatype_description": "匿名诉求：不保存诉求人信息", "description": "匿名",
         "values": [{"key": "true", "name": "是"}, {"key": "false", "name": "否"}]},
    ]}


def _flag(v, name: str) -> bool:
    if v is None or v == "":
        return False
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "是"):
        return True
    if s in ("false", "0", "no", "否"):
        return False
    raise BadInput(f"{name} must be true or false", field=name)


def submission(form: dict) -> dict:
    """A CaseService.intake submission from GeoReport POST fields (+ the profile's extensions)."""
    def get(name):
        v = form.get(name)
        return v.strip() if isinstance(v, str) else v

    code = get("service_code")
    if not code:
        raise BadInput("service_code is required", field="service_code")
    lat, lon, addr = get("lat"), get("long"), get("address_string")
    if (lat in (None, "")) != (lon in (None, "")):
        raise BadInput("lat and long must be given together", field="lat" if lat in (None, "") else "long")
    if lat in (None, "") and not addr and not get("address_id"):
        raise BadInput("a location is required: lat/long, address_string or address_id", field="lat")
    kind = get("attribute[kind]") or get("kind") or DEFAULT_KIND
    desc = get("description") or ""
    title = get("title") or (desc[:40] if desc else None)
    name = "".join(x for x in (get("last_name"), get("first_name")) if x) or None  # 姓 then 名
    sub = {"channel": get("channel") or DEFAULT_CHANNEL, "kind": kind, "category_code": code,
           "title": title or code, "content": desc, "reporter_name": name, "reporter_phone": get("phone"),
           "address_text": addr or get("address_id"), "crs": get("crs") or "EPSG:4326",
           "anonymous": _flag(get("attribute[anonymous]") or get("anonymous"), "anonymous"),
           "emergency": _flag(get("attribute[emergency]") or get("emergency"), "emergency"),
           "submission_key": get("submission_key") or TOKEN_PREFIX + secrets.token_urlsafe(18)}
    if lat not in (None, ""):
        sub.update(lon=lon, lat=lat)
    if get("requested_datetime"):
        sub["received_at"] = get("requested_datetime")
    return sub


_COLS = ("c.id, c.case_no, c.submission_key, c.status, c.channel, c.kind, c.category_code, c.title, c.content, "
         "c.address_text, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.grid_code, c.handler_region, c.received_at, "
         "c.updated_at, c.closed_at, c.reply_due_at, c.handle_due_at, c.deadline_profile, cat.name AS service_name, "
         "d.name AS dept_name, ctr.code AS center_code, ctr.name AS center_name")
_FROM = ("case_record c LEFT JOIN category cat ON cat.code = c.category_code "
         "LEFT JOIN department d ON d.code = c.lead_department "
         "LEFT JOIN center ctr ON ctr.code = 'ZZ' || c.handler_region")


def _iso(v) -> str | None:
    return to_local(v).isoformat() if isinstance(v, dt.datetime) else v


def _out_point(lon, lat, crs: str) -> tuple:
    if lon is None:
        return None, None
    if crs == "GCJ-02":
        x, y = wgs_to_gcj(lon, lat)
        return float(x), float(y)
    if crs == "BD-09":
        x, y = wgs_to_bd(lon, lat)
        return float(x), float(y)
    return lon, lat


def out_crs(raw: str | None) -> str:
    """The coordinate system of returned lat/long: WGS84 (default), GCJ-02 or BD-09."""
    if not raw:
        return "EPSG:4326"
    name = normalize_crs_name(raw)
    if name not in OUT_CRS:
        raise BadInput("crs must be EPSG:4326 (WGS84), GCJ-02 or BD-09", field="crs")
    return name


def as_request(r: dict, crs: str = "EPSG:4326", updates: list | None = None) -> dict:
    """One case as a GeoReport request (spec fields first, then the profile's extensions)."""
    lon, lat = _out_point(r["lon"], r["lat"], crs)
    closed = r["status"] in workflow.TERMINAL_STATES
    expected = r["reply_due_at"] or r["handle_due_at"]
    out = {"service_request_id": r["case_no"], "status": "closed" if closed else "open",
           "status_notes": workflow.STATES.get(r["status"], r["status"]),
           "service_name": r["service_name"] or "", "service_code": r["category_code"] or "",
           "description": r["content"] or r["title"], "agency_responsible": r["dept_name"] or r["center_name"] or "",
           "service_notice": f"办理时限：{r['deadline_profile']}" if r["deadline_profile"] else "",
           "requested_datetime": _iso(r["received_at"]), "updated_datetime": _iso(r["updated_at"]),
           "expected_datetime": _iso(expected), "address": r["address_text"] or "", "address_id": "",
           "zipcode": "", "lat": lat, "long": lon, "media_url": "",
           # Chinese profile extensions
           "title": r["title"], "status_zh": workflow.STATES.get(r["status"], r["status"]), "state": r["status"],
           "channel": r["channel"], "channel_zh": CHANNELS.get(r["channel"], r["channel"]), "kind": r["kind"],
           "grid_code": r["grid_code"] or "", "center_code": r["center_code"] or "", "crs": crs}
    if updates is not None:
        out["updates"] = updates
    return out


def _updates(db, case_ids: list[int]) -> dict[int, list]:
    rows = db.fetchall("SELECT case_id, at, action, from_state, to_state, reason FROM case_event "
                       "WHERE case_id = ANY(%s) ORDER BY case_id, id", (case_ids,))
    out: dict[int, list] = {i: [] for i in case_ids}
    for e in rows:
        out[e["case_id"]].append({
            "datetime": _iso(e["at"]), "action": e["action"],
            "action_zh": workflow.EVENT_LABELS.get(e["action"])
            or workflow.STATES.get(e["to_state"] or "", e["action"]),
            "status": "closed" if e["to_state"] in workflow.TERMINAL_STATES else "open",
            "status_zh": workflow.STATES.get(e["to_state"] or "", e["to_state"] or ""), "note": e["reason"] or ""})
    return out


def _with_updates(db, rows: list[dict], crs: str, extensions: bool) -> list[dict]:
    ups = _updates(db, [r["id"] for r in rows]) if extensions and rows else {}
    return [as_request(r, crs, ups.get(r["id"]) if extensions else None) for r in rows]


def get_request(db, user: User | None, rid: str, crs: str = "EPSG:4326") -> dict:
    """One request the caller may see (by case number), with its update history."""
    if user is None or not rid or len(rid) > 40:
        raise NotFound(f"service request {rid} not found", field="service_request_id")
    scope, params = case_scope(user)
    params["rid"] = rid
    row = db.fetchone(f"SELECT {_COLS} FROM {_FROM} WHERE c.case_no = %(rid)s AND {scope}", params)
    if row is None:
        raise NotFound(f"service request {rid} not found", field="service_request_id")
    return _with_updates(db, [row], crs, True)[0]


def _date(raw: str, name: str) -> dt.datetime:
    try:
        v = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{name} must be a W3C date-time, e.g. 2025-03-01T00:00:00+08:00", field=name) from None
    if not 2000 <= v.year <= 2100:
        raise BadInput(f"{name} must be between the years 2000 and 2100", field=name)
    return to_local(v)


def _codes(raw: str, name: str) -> list[str]:
    vals = [x.strip() for x in raw.split(",") if x.strip()]
    if not vals or len(vals) > 100 or any(len(x) > 40 or "\x00" in x for x in vals):
        raise BadInput(f"{name} must be a comma-separated list of at most 100 codes", field=name)
    return vals


def list_requests(db, user: User | None, args: dict, now: dt.datetime | None = None) -> tuple[list[dict], dict | None]:
    """Requests the caller may see, filtered as GeoReport says; returns (requests, next-page args or None).

    Without `updated_after` the window is start_date..end_date on requested_datetime (default the last 90
    days, at most 90 days). With `updated_after` (extension) requests come in (updated_datetime, id) order after
    that instant — and after `after_id` at that instant — for incremental sync; the next page's arguments
    are returned."""
    crs = out_crs(args.get("crs"))
    extensions = str(args.get("extensions") or "").lower() in ("true", "1")
    limit = args.get("limit") or "1000"
    if not str(limit).isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    limit = int(limit)
    if user is None:  # GeoReport reads are public in the spec; citizens' cases are not
        return [], None
    scope, params = case_scope(user)
    where = [scope]
    if args.get("service_request_id"):
        where.append("c.case_no = ANY(%(ids)s)")
        params["ids"] = _codes(args["service_request_id"], "service_request_id")
    else:
        if args.get("service_code"):
            where.append("c.category_code = ANY(%(svc)s)")
            params["svc"] = _codes(args["service_code"], "service_code")
        if args.get("status"):
            sts = _codes(args["status"], "status")
            if not set(sts) <= {"open", "closed"}:
                raise BadInput("status must be open, closed or both", field="status")
            if sts == ["open"]:
                where.append("NOT (c.status = ANY(%(term)s))")
            elif sts == ["closed"]:
                where.append("c.status = ANY(%(term)s)")
            params["term"] = sorted(workflow.TERMINAL_STATES)
        if args.get("updated_after"):
            params["ua"] = _date(args["updated_after"], "updated_after")
            if args.get("after_id"):
                if not str(args["after_id"]).isdigit():
                    raise BadInput("after_id must be an integer", field="after_id")
                params["aid"] = int(args["after_id"])
                where.append("(c.updated_at, c.id) > (%(ua)s, %(aid)s)")
            else:
                where.append("c.updated_at > %(ua)s")
        if args.get("start_date") or args.get("end_date") or not args.get("updated_after"):
            now = to_local(now) if now else to_local(dt.datetime.now(dt.UTC))
            end = _date(args["end_date"], "end_date") if args.get("end_date") else None
            start = _date(args["start_date"], "start_date") if args.get("start_date") else None
            if start and end and end - start > dt.timedelta(days=90):
                raise BadInput("start_date..end_date may not span more than 90 days", field="end_date")
            if start is None:
                start = (end or now) - dt.timedelta(days=90)
            if end is None:
                end = start + dt.timedelta(days=90)
            if start > end:
                raise BadInput("start_date is after end_date", field="start_date")
            where.append("c.received_at BETWEEN %(sd)s AND %(ed)s")
            params.update(sd=start, ed=end)
    order = "c.updated_at, c.id" if args.get("updated_after") else "c.received_at DESC, c.id DESC"
    params["lim"] = limit
    rows = db.fetchall(f"SELECT {_COLS} FROM {_FROM} WHERE {' AND '.join(where)} ORDER BY {order} "
                       f"LIMIT %(lim)s", params)
    nxt = None
    if args.get("updated_after") and len(rows) == limit:
        last = rows[-1]
        nxt = {"updated_after": to_local(last["updated_at"]).isoformat(), "after_id": str(last["id"])}
    return _with_updates(db, rows, crs, extensions), nxt


def lookup_token(db, user: User | None, token: str) -> dict:
    """The request created for a POST token. Anyone holding a server-issued token (o311_…) may resolve it; a
    client-chosen submission key resolves only for a caller who may see the case."""
    if not token or len(token) > 100:
        raise NotFound("token not found", field="token")
    row = db.fetchone("SELECT id, case_no FROM case_record WHERE submission_key = %s", (token,))
    if row and not token.startswith(TOKEN_PREFIX):
        if user is None:
            row = None
        else:
            scope, params = case_scope(user)
            row = db.fetchone(f"SELECT c.id, c.case_no FROM case_record c WHERE c.id = %(id)s "
                              f"AND c.received_at = %(rat)s AND {scope}",
                              {**params, "id": row["id"], "rat": received_at(db, row["id"])})
    if row is None:
        raise NotFound("token not found", field="token")
    return {"service_request_id": row["case_no"], "token": token}
