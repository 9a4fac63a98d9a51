"""The township review's table as an Excel workbook for the monthly 研判 meeting."""

from __future__ import annotations

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

FORMULA_START = ("=", "+", "-", "@")


def safe(v):
    """A cell value that a spreadsheet will never run as a formula."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def _pct(v):
    return None if v is None else round(v, 4)


def review_workbook(data: dict) -> Workbook:
    """Sheet 网格研判: per grid this period and the previous one, with changes; sheet 说明: colour and reasons."""
    wb = Workbook()
    ws = wb.active
    ws.title = "网格研判"
    u, p, q = data["unit"], data["period"], data["previous"]
    ws.append([safe(f"{u['name']}（{u['code']}）网格研判表"), f"本期 {p['from']} 至 {p['to']}",
               f"上期 {q['from']} 至 {q['to']}"])
    ws["A1"].font = Font(bold=True, size=14)
    head = ["网格编码", "网格名称", "村（社区）", "本期件数", "上期件数", "增减", "响应率", "上期响应率",
            "解决率", "上期解决率", "满意率", "上期满意率", "综合得分", "上期综合得分"]
    ws.append(head)
    for c in ws[2]:
        c.font = Font(bold=True, color="FFFFFF")
        c.fill = PatternFill("solid", fgColor="1F4E79")
        c.alignment = Alignment(horizontal="center")
    for g in data["grids"]:
        r, pr = g["rates"], g["prev_rates"]
        ws.append([safe(g["grid_code"]), safe(g["grid_name"]), safe(g["village_name"] or ""), g["received"],
                   g["prev_received"], g["received"] - g["prev_received"], _pct(r["response"]),
                   _pct(pr["response"]), _pct(r["resolution"]), _pct(pr["resolution"]), _pct(r["satisfaction"]),
                   _pct(pr["satisfaction"]), r["composite"], pr["composite"]])
    t = data["totals"]
    ws.append(["合计", safe(u["name"]), "", t["received"], t["prev_received"], t["received"] - t["prev_received"],
               _pct(t["rates"]["response"]), _pct(t["prev_rates"]["response"]), _pct(t["rates"]["resolution"]),
               _pct(t["prev_rates"]["resolution"]), _pct(t["rates"]["satisfaction"]),
               _pct(t["prev_rates"]["satisfaction"]), t["rates"]["composite"], t["prev_rates"]["composite"]])
    for row in ws.iter_rows(min_row=3, min_col=7, max_col=12):
        for c in row:
            c.number_format = "0.0%"
    for row in ws.iter_rows(min_row=3, min_col=13, max_col=14):
        for c in row:
            c.number_format = "0.0"
    for col, w in zip("ABCDEFGHIJKLMN", (18, 16, 14, 9, 9, 7, 9, 10, 9, 10, 9, 10, 9, 11), strict=True):
        ws.column_dimensions[col].width = w
    ws.freeze_panes = "A3"
    notes = wb.create_sheet("说明")
    notes.append(["四色码", data["colour"]["label"]])
    for reason in data["colour"]["reasons"]:
        notes.append(["原因", safe(reason)])
    notes.append(["未定位到网格的件数", t["unlocated_to_grid"]])
    for c in data["categories"]:
        notes.append(["类别", safe(c["name"]), c["received"]])
    return wb
