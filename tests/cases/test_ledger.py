"""Excel exports read back with openpyxl: headers, frozen row, widths, formats, row counts, values,
scoping, masking, formula-safe text, and the monthly summary from live data and from a snapshot."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from cases import ledger, reports
from cases.auth import User
from gis.errors import BadInput
from tests.cases.test_reports import G1, G2, G3, T1, T2, at, insert_case, march  # noqa: F401 - fixture

PHONE = "13812345678"
ID_NO = "220302199001011234"

TOWNSHIP = User(id=1, username="twp", role="township_center", region_code=T1)
DISPATCHER = User(id=2, username="disp", role="dispatcher", region_code="990100")
OFFICER = User(id=3, username="off", role="grid_officer", region_code="990101001001", grid_code=G1)


@pytest.fixture
def ledger_cases(db, march):  # noqa: F811 - pytest fixture chaining
    # Personal data on two of the March cases; A1 is handled by the township (sees it), A2 by the village.
    db.execute("UPDATE case_record SET reporter_name = '李建国', reporter_phone = %s, reporter_id_no = %s, "
               "received_at = %s, category_code = 'CJ01' WHERE case_no IN ('2026-A1', '2026-A2')",
               (PHONE, ID_NO, at(3, 1)))
    insert_case(db, "2026-ANON", G2, status="dispatched", received_at=at(3, 2), anonymous=True,
                title="=HYPERLINK(\"http://x\",\"点我\")", sign_due_at=at(3, 3))
    insert_case(db, "2026-ACC", G1, status="dispatched", received_at=at(3, 2), kind="举报",
                accused_units=["ZZ" + T1], reporter_phone=PHONE)
    insert_case(db, "2026-B5", G3, status="dispatched", received_at=at(3, 3))
    return db


def read(path):
    wb = load_workbook(path)
    return wb, wb.worksheets[0]


def rows_by_case(ws):
    hdr = [c.value for c in ws[1]]
    return {r[hdr.index("诉求编号")]: dict(zip(hdr, r, strict=True)) for r in ws.iter_rows(min_row=2, values_only=True)}


def test_ledger_scoped_masked_and_formatted(db, ledger_cases, tmp_path):
    path = tmp_path / "台账.xlsx"
    out = ledger.export_ledger(db, TOWNSHIP, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31),
                               now=at(3, 31))
    wb, ws = read(path)
    assert ws.title == "诉求台账" and ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == ledger.LEDGER_HEADERS
    assert ws.column_dimensions["F"].width == 30  # 标题
    rows = rows_by_case(ws)
    # The township sees its own March receipts (A1, A2, ANON), not 新河镇's, not the accusation naming it.
    assert set(rows) == {"2026-A1", "2026-A2", "2026-ANON"} and out["rows"] == 3 == ws.max_row - 1
    a1, a2, anon = rows["2026-A1"], rows["2026-A2"], rows["2026-ANON"]
    assert (a1["诉求人"], a1["联系电话"], a1["身份证号"]) == ("李建国", PHONE, ID_NO)  # handled by the township
    assert (a2["诉求人"], a2["联系电话"], a2["身份证号"]) == ("李**", "138****5678", "2203**********1234")
    assert anon["诉求人"] == "匿名" and anon["联系电话"] is None
    assert a1["渠道"] == "12345热线" and a1["办理状态"] == "办结" and a1["问题类别"] == "物业管理"
    assert (a1["县（市、区）"], a1["乡镇（街道）"], a1["村（社区）"], a1["网格"]) == (
        "甲区", "东风街道", "向阳社区", "向阳社区第1网格")
    assert a1["牵头部门"] == "甲区住房和城乡建设局"
    assert a1["接诉时间"] == dt.datetime(2026, 3, 1, 10, 0)  # Beijing wall time
    assert a1["是否超期"] == "否" and a2["是否超期"] == "是" and anon["是否超期"] == "是"
    assert a2["退回次数"] == 1
    # Number formats and text safety.
    hdr = [c.value for c in ws[1]]
    row2 = ws[2]
    assert row2[hdr.index("接诉时间")].number_format == ledger.DATETIME_FORMAT
    title_cell = next(r[hdr.index("标题")] for r in ws.iter_rows(min_row=2) if r[1].value == "2026-ANON")
    assert title_cell.data_type == "s" and title_cell.value.startswith("=HYPERLINK")
    assert out["masked"] == 2  # A2 masked, ANON anonymous
    wb.close()


def test_ledger_other_users_and_filters(db, ledger_cases, tmp_path):
    path = tmp_path / "d.xlsx"
    ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    rows = rows_by_case(read(path)[1])
    assert {"2026-A1", "2026-A2", "2026-ACC", "2026-B5"} <= set(rows)
    assert rows["2026-A2"]["联系电话"] == PHONE  # the dispatcher handles intake: unmasked
    ledger.export_ledger(db, OFFICER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    # Grid 1 only; the accusation names the township center this officer's grid lies under: a subordinate
    # of an accused unit never sees the accusation (cases.guard).
    assert set(rows_by_case(read(path)[1])) == {"2026-A1", "2026-A2"}
    n = ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31),
                             {"status": "dispatched", "township_code": T2})["rows"]
    assert set(rows_by_case(read(path)[1])) == {"2026-B5"} and n == 1
    ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31), {"category": "CJ"})
    assert set(rows_by_case(read(path)[1])) == {"2026-A1", "2026-A2"}
    # An empty period still gives a valid file with its header row.
    assert ledger.export_ledger(db, DISPATCHER, path, dt.date(2025, 1, 1), dt.date(2025, 1, 31))["rows"] == 0
    assert read(path)[1].max_row == 1
    with pytest.raises(BadInput):
        ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31), {"1=1; --": "x"})
    with pytest.raises(BadInput):
        ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 1), dt.date(2026, 3, 31), {"status": "bogus"})
    with pytest.raises(BadInput):
        ledger.export_ledger(db, DISPATCHER, path, dt.date(2026, 3, 31), dt.date(2026, 3, 1) - dt.timedelta(days=1))


def test_monthly_summary_live_then_from_snapshot(db, march, tmp_path):  # noqa: F811
    path = tmp_path / "月度汇总.xlsx"
    out = ledger.export_monthly_summary(db, 2026, 3, path)
    assert out["sources"]["township"] == "live"
    wb = load_workbook(path)
    assert wb.sheetnames == ["网格", "村（社区）", "乡镇（街道）", "县（市、区）", "事权部门", "说明"]
    ws = wb["乡镇（街道）"]
    assert ws.freeze_panes == "A2" and [c.value for c in ws[1]] == ledger.SUMMARY_HEADERS
    hdr = ledger.SUMMARY_HEADERS
    first, second = ws[2], ws[3]
    assert (first[0].value, first[2].value, second[0].value, second[2].value) == (1, "新河镇", 2, "东风街道")
    resp = second[hdr.index("响应率")]
    assert resp.value == 0.5 and resp.number_format == ledger.PCT_FORMAT
    assert second[hdr.index("解决率")].value == 0.75
    assert first[hdr.index("满意率")].value == pytest.approx(0.6)     # B1's 超期未评 counts against it
    # 参评满意率 (seed 000's figure): 满意 and 基本满意 both count, beside the weighted 满意率
    rates = {r["unit_code"]: r["rates"] for r in reports.compute_month(db, 2026, 3, "township")}
    t2 = rates[first[1].value]
    ev = t2.counts
    assert first[hdr.index("参评满意率")].value == pytest.approx(
        (ev["evaluation_满意"] + ev["evaluation_基本满意"]) / ev["evaluated"])
    assert t2.participating_satisfaction.value >= t2.satisfaction.value
    assert first[hdr.index("超期未评（件）")].value == 1 and first[hdr.index("应签收（件）")].value == 3
    assert second[hdr.index("综合得分")].value == pytest.approx(65.75)
    assert (first[hdr.index("四色码")].value, second[hdr.index("四色码")].value) == ("橙", "红")
    assert second[hdr.index("原因")].value.endswith("排名末位")
    assert second[hdr.index("四色码")].fill.fgColor.rgb.endswith(ledger.COLOUR_FILLS["red"])
    # A department without cases: listed last, unranked, no data.
    dept = [[c.value for c in r] for r in wb["事权部门"].iter_rows(min_row=2)]
    assert dept[-1][1] == "990100-ZJ" and dept[-1][0] is None and dept[-1][3] == "—"
    assert dept[-1][hdr.index("四色码")] == "无数据"
    assert wb["网格"].max_row == 1 + 3
    wb.close()

    reports.snapshot_month(db, 2026, 3)
    reports.publish_month(db, 2026, 3)
    db.execute("UPDATE case_record SET signed_at = NULL WHERE case_no = '2026-A1'")  # after publishing
    out = ledger.export_monthly_summary(db, 2026, 3, path)
    assert set(out["sources"].values()) == {"published"}
    wb = load_workbook(path)
    ws = wb["乡镇（街道）"]
    assert ws[3][hdr.index("响应率")].value == 0.5  # the frozen figure, not the changed data
    notes = {r[0]: r[1] for r in wb["说明"].iter_rows(values_only=True)}
    assert notes["统计月份"] == "2026年3月" and notes["乡镇（街道）数据来源"] == "已发布（冻结）"
    wb.close()
