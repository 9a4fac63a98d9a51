"""Excel exports (台账, 月度汇总) with openpyxl: Chinese headers, frozen header row, widths, formats.

`export_ledger` writes the cases a user may see (scoped by cases.auth.case_scope, reporter data masked
unless the user handles the case), streamed from a server-side cursor into a write-only workbook so a
large jurisdiction does not fill memory. Citizen text is always written as text, never as a formula.
`export_monthly_summary` writes one sheet per unit type (三率 and the other rates, composite, 四色码 and
its reason, ranked) from the month's stored snapshot, or computed live when there is none.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg2.extras
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from cases import reports
from cases.auth import User, case_scope, present_personal_data
from cases.calendar import TZ, to_local
from cases.deadlines import CHANNELS, PETITION_CHANNELS
from cases.rates import COLOURS, RateConfig
from cases.workflow import STATES, petition_outcome
from gis.errors import BadInput

_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_WRAP = Alignment(vertical="top", wrap_text=True)
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
PCT_FORMAT = "0.0%"
COLOUR_FILLS = {"green": "C6EFCE", "yellow": "FFEB9C", "orange": "F8CBAD", "red": "FFC7CE"}

# (header, width, key) of the 台账; key names a field of the presented row.
LEDGER_COLUMNS: list[tuple[str, int, str]] = [
    ("序号", 6, "_seq"), ("诉求编号", 20, "case_no"), ("渠道", 11, "channel_label"), ("诉求类型", 8, "kind"),
    ("问题类别", 14, "category_name"), ("标题", 30, "title"), ("诉求人", 10, "reporter_name"),
    ("联系电话", 14, "reporter_phone"), ("身份证号", 20, "reporter_id_no"), ("诉求地址", 30, "address_text"),
    ("县（市、区）", 12, "county_name"), ("乡镇（街道）", 12, "township_name"), ("村（社区）", 12, "village_name"),
    ("网格", 16, "grid_name"), ("网格编码", 17, "grid_code"), ("牵头部门", 20, "department_name"),
    ("办理状态", 9, "status_label"), ("接诉时间", 17, "received_at"), ("签收时限", 17, "sign_due_at"),
    ("签收时间", 17, "signed_at"), ("答复时限", 17, "reply_due_at"), ("答复时间", 17, "replied_at"),
    ("办结时间", 17, "closed_at"), ("是否超期", 8, "overdue_label"), ("群众评价", 9, "evaluation"),
    ("退回次数", 8, "returned_count"), ("重办次数", 8, "reopened_count"),
    # 领导包案 (seed 000: 责任领导、责任单位、办理时限、办理标准) and the 信访 outcome
    # (已息访办结 / 已有化解方案 / 正在办理)
    ("责任领导", 12, "package_leader"), ("责任单位", 16, "package_unit"), ("办理时限", 12, "package_target"),
    ("办理标准", 24, "package_standard"), ("化解情况", 12, "outcome"),
]
LEDGER_HEADERS = [h for h, _, _ in LEDGER_COLUMNS]
_DATETIME_KEYS = {"received_at", "sign_due_at", "signed_at", "reply_due_at", "replied_at", "closed_at"}

# filter name → SQL predicate on alias c (values bound; only these names are accepted)
LEDGER_FILTERS: dict[str, str] = {
    "status": "c.status = ANY(%(f_status)s)",
    "channel": "c.channel = ANY(%(f_channel)s)",
    "kind": "c.kind = ANY(%(f_kind)s)",
    "category": "c.category_code LIKE %(f_category)s",
    "grid_code": "c.grid_code = %(f_grid_code)s",
    "village_code": "c.village_code = %(f_village_code)s",
    "township_code": "c.township_code = %(f_township_code)s",
    "county_code": "c.county_code = %(f_county_code)s",
    "lead_department": "c.lead_department = %(f_lead_department)s",
}
_LIST_FILTERS = {"status", "channel", "kind"}

_LEDGER_SQL = """
SELECT c.id, c.case_no, c.channel, c.kind, c.category_code, cat.name AS category_name, c.title, c.anonymous,
       c.reporter_name, c.reporter_phone, c.reporter_id_no, c.address_text, c.grid_code, c.village_code,
       c.township_code, c.county_code, c.handling_level, c.handler_region, c.lead_department, c.co_departments,
       c.status, c.received_at, c.sign_due_at, c.signed_at, c.reply_due_at, c.replied_at, c.closed_at,
       c.evaluation, c.returned_count, c.reopened_count, c.accept_due_at, c.accepted_at, c.handle_due_at,
       c.deadline_profile, pk.leader AS package_leader, pk.unit AS package_unit,
       pk.target_date AS package_target, pk.standard AS package_standard, pk.case_id IS NOT NULL AS has_plan,
       rc.name AS county_name, rt.name AS township_name, rv.name AS village_name, g.name AS grid_name,
       d.name AS department_name
FROM case_record c
LEFT JOIN category cat ON cat.code = c.category_code
LEFT JOIN grid g ON g.code = c.grid_code AND g.generation = c.generation
LEFT JOIN region rc ON rc.code = c.county_code AND rc.generation = (SELECT id FROM generation WHERE active)
LEFT JOIN region rt ON rt.code = c.township_code AND rt.generation = (SELECT id FROM generation WHERE active)
LEFT JOIN region rv ON rv.code = c.village_code AND rv.generation = (SELECT id FROM generation WHERE active)
LEFT JOIN department d ON d.code = c.lead_department
LEFT JOIN case_package pk ON pk.case_id = c.id
WHERE c.received_at >= %(start)s AND c.received_at < %(end)s AND {where}
ORDER BY c.received_at, c.id
"""


def _bounds(start, end) -> tuple[dt.datetime, dt.datetime]:
    """Dates are whole days, both inclusive; datetimes are [start, end)."""
    def conv(v, is_end):
        if isinstance(v, dt.datetime):
            return to_local(v)
        if isinstance(v, dt.date):
            return dt.datetime.combine(v + dt.timedelta(days=1 if is_end else 0), dt.time(), TZ)
        raise BadInput("start and end must be dates or datetimes", field="end" if is_end else "start")
    s, e = conv(start, False), conv(end, True)
    if e <= s:
        raise BadInput("end must be after start", field="end")
    return s, e


def _filters(filters: dict | None) -> tuple[list[str], dict]:
    where, params = [], {}
    for name, value in (filters or {}).items():
        if value in (None, "", [], ()):
            continue
        if name not in LEDGER_FILTERS:
            raise BadInput(f"unknown filter {name!r}; one of {', '.join(LEDGER_FILTERS)}", field=name)
        if name in _LIST_FILTERS:
            value = [value] if isinstance(value, str) else [str(v) for v in value]
            if name == "status" and not set(value) <= set(STATES):
                raise BadInput(f"unknown status in {value!r}", field="status")
        elif name == "category":
            value = str(value).replace("%", "").replace("_", r"\_") + "%"
        where.append(LEDGER_FILTERS[name])
        params[f"f_{name}"] = value
    return where, params


def _excel_time(v):
    """Excel has no time zones: Beijing wall time, naive."""
    if v is None:
        return None
    return to_local(v).replace(tzinfo=None)


def _overdue(row: dict, now: dt.datetime) -> bool | None:
    """Any milestone of the case's profile (受理告知, 签收, 答复, 办结 — 信访 cases have 受理/办结) done late, or
    past due and not done at export time; None for a merged or rejected case (no deadline of its own)."""
    from cases.deadlines import MILESTONE_FIELDS, done_field

    if row.get("status") in ("merged", "rejected"):
        return None
    for name, (due, _done) in MILESTONE_FIELDS.items():
        d, t = row.get(due), row.get(done_field(row, name))
        if d is not None and ((t is None and now > d) or (t is not None and t > d)):
            return True
    return False


def _cell(ws, value, number_format: str | None = None, font=None, fill=None, alignment=None):
    c = WriteOnlyCell(ws, value=value)
    if isinstance(value, str) and c.data_type == "f":
        c.data_type = "s"  # citizen text starting with "=" stays text, never a formula
    if number_format:
        c.number_format = number_format
    if font:
        c.font = font
    if fill:
        c.fill = fill
    if alignment:
        c.alignment = alignment
    return c


def _sheet(wb, title: str, columns: list[tuple[str, int]]):
    ws = wb.create_sheet(title)
    ws.freeze_panes = "A2"
    for i, (_, width) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.append([_cell(ws, h, font=_HEADER_FONT, fill=_HEADER_FILL) for h, _ in columns])
    return ws


def export_ledger(db, user: User, path, start, end, filters: dict | None = None, *,
                  now: dt.datetime | None = None) -> dict:
    """Write the 台账 (cases received in [start, end] the user may see) to an .xlsx file; returns counts."""
    if user is None:
        raise BadInput("a ledger is always exported on behalf of a user", field="user")
    s, e = _bounds(start, end)
    now = to_local(now or dt.datetime.now(dt.UTC))
    scope, params = case_scope(user)
    fwhere, fparams = _filters(filters)
    params.update(fparams, start=s, end=e)
    sql = _LEDGER_SQL.format(where=" AND ".join([scope, *fwhere]))
    wb = Workbook(write_only=True)
    ws = _sheet(wb, "诉求台账", [(h, w) for h, w, _ in LEDGER_COLUMNS])
    n = masked = 0
    with db.connection() as conn, conn.cursor(name=f"ledger_{uuid.uuid4().hex[:8]}",
                                              cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.itersize = 2000
        cur.execute(sql, params)
        for row in cur:
            n += 1
            p = present_personal_data(user, dict(row))
            masked += bool(p.get("pii_masked"))
            if row["anonymous"]:
                p["reporter_name"] = "匿名"
            p.update(_seq=n, channel_label=CHANNELS.get(row["channel"], row["channel"]),
                     status_label=STATES.get(row["status"], row["status"]),
                     overdue_label={True: "是", False: "否", None: "—"}[_overdue(row, now)],
                     outcome=petition_outcome(row["status"], row["has_plan"])
                     if row["channel"] in PETITION_CHANNELS else None)
            cells = []
            for _, _, key in LEDGER_COLUMNS:
                v = p.get(key)
                if key in _DATETIME_KEYS:
                    cells.append(_cell(ws, _excel_time(row[key]), DATETIME_FORMAT))
                else:
                    cells.append(_cell(ws, v))
            ws.append(cells)
    wb.save(path)
    return {"path": str(path), "rows": n, "masked": masked, "start": s.isoformat(), "end": e.isoformat()}


# -- monthly summary --------------------------------------------------------------------------------

# (header, width, kind, source) — kind: pct (a rate in metrics), int (a metrics/count value), text
SUMMARY_COLUMNS: list[tuple[str, int, str, str]] = [
    ("排名", 6, "int", "rank"), ("单位编码", 17, "text", "unit_code"), ("单位名称", 22, "text", "unit_name"),
    ("响应率", 9, "pct", "response"), ("解决率", 9, "pct", "resolution"), ("满意率", 9, "pct", "satisfaction"),
    ("参评满意率", 11, "pct", "participating_satisfaction"),
    ("按时办结率", 11, "pct", "on_time"), ("一次性化解率", 12, "pct", "one_time"),
    ("退回率", 9, "pct", "return_rate"), ("转办率", 9, "pct", "forwarding"), ("重办率", 9, "pct", "reopen_rate"),
    ("重复网信率", 11, "pct", "online_repeat"), ("再次信访率", 11, "pct", "again"),
    ("积案化解率", 11, "pct", "backlog_resolution"), ("积案未化解（件）", 15, "int", "backlog_open"),
    ("超期未评（件）", 13, "int", "overdue_unevaluated"), ("应签收（件）", 12, "count", "dispatched_due"),
    ("应答复（件）", 12, "count", "reply_due"), ("参评（件）", 10, "count", "evaluated"),
    ("办结（件）", 10, "count", "closed"), ("综合得分", 9, "score", "composite"),
    ("四色码", 8, "colour", "colour"), ("原因", 40, "text", "colour_reason"),
]
SUMMARY_HEADERS = [h for h, _, _, _ in SUMMARY_COLUMNS]


def _summary_rows(db, year, month, unit_type, config) -> tuple[list[dict], str]:
    stored = reports.get_snapshot(db, year, month, unit_type)
    if stored:
        return stored, stored[0]["state"]
    rows = reports.compute_month(db, year, month, unit_type, config)
    return rows, "live"


def _summary_cells(ws, row: dict) -> list:
    m = row["metrics"]
    cells = []
    for _, _, kind, src in SUMMARY_COLUMNS:
        if kind == "pct":
            v = (m.get(src) or {}).get("value")
            cells.append(_cell(ws, v, PCT_FORMAT) if v is not None else _cell(ws, "—"))
        elif kind == "score":
            v = m.get("composite")
            cells.append(_cell(ws, v, "0.0") if v is not None else _cell(ws, "—"))
        elif kind == "count":
            cells.append(_cell(ws, (m.get("counts") or {}).get(src, 0), "0"))
        elif kind == "int":
            v = row.get("rank") if src == "rank" else m.get(src)
            cells.append(_cell(ws, v, "0"))
        elif kind == "colour":
            code = row.get("colour")
            fill = PatternFill("solid", fgColor=COLOUR_FILLS[code]) if code in COLOUR_FILLS else None
            cells.append(_cell(ws, COLOURS.get(code, "无数据"), fill=fill))
        else:
            cells.append(_cell(ws, row.get(src) or "", alignment=_WRAP if src == "colour_reason" else None))
    return cells


def export_monthly_summary(db, year: int, month: int, path, config: RateConfig | None = None,
                           unit_types=reports.UNIT_TYPES) -> dict:
    """Write the 月度汇总: one sheet per unit type, ranked, with 三率, other rates, composite and 四色码."""
    if config is None:
        from cases.policy import load_rate_policy

        config = load_rate_policy(db).config
    cfg = config
    w = cfg.weights
    wb = Workbook(write_only=True)
    states = {}
    counts = {}
    for ut in unit_types:
        rows, state = _summary_rows(db, year, month, ut, config)
        states[ut] = state
        ws = _sheet(wb, reports.UNIT_TYPE_LABELS[ut], [(h, w) for h, w, _, _ in SUMMARY_COLUMNS])
        for r in rows:
            ws.append(_summary_cells(ws, r))
        counts[ut] = len(rows)
    notes = wb.create_sheet("说明")
    labels = {"published": "已发布（冻结）", "draft": "草稿（未发布）", "live": "实时计算（无快照）"}
    for line in (
        ["统计月份", f"{year}年{month}月"],
        *[[f"{reports.UNIT_TYPE_LABELS[ut]}数据来源", labels[states[ut]]] for ut in unit_types],
        ["口径", "响应率=按时签收/当月应签收；解决率=已解决/当月应答复；"
                 f"满意率=(满意+{float(cfg.basic_weight):g}×基本满意)/当月参评；"
                 "参评满意率=(满意+基本满意)/当月参评"],
        ["四色码", "取各项指标最差颜色（最差为橙码）；排名末位为红码"],
        ["综合得分", f"响应率×{w[0]}+解决率×{w[1]}+满意率×{w[2]}（权重），"
                 + ("缺项按其余指标折算" if cfg.renormalize else "任一指标无数据则不计分")],
    ):
        notes.append([_cell(notes, v) for v in line])
    wb.save(path)
    return {"path": str(path), "sheets": counts, "sources": states}
