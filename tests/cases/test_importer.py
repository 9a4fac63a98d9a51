"""Batch import of a 12345 export: per-row report, nothing half-imported, idempotent re-import."""

from __future__ import annotations

import csv

import openpyxl
import pytest

from cases.auth import create_user
from cases.importer import import_file
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.errors import BadInput
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

HEADER = ["工单编号", "来源渠道", "诉求类型", "问题分类", "标题", "诉求内容", "诉求人", "联系电话", "是否匿名",
          "事发地址", "经度", "纬度", "受理时间"]


def good(i, **kw):
    row = {"工单编号": f"12345-2026-{i:04d}", "来源渠道": "12345热线", "诉求类型": "求决", "问题分类": "物业管理",
           "标题": f"物业问题{i}", "诉求内容": "楼道灯不亮", "诉求人": "张三", "联系电话": f"1390000{i:04d}",
           "是否匿名": "否", "事发地址": "", "经度": f"{X0 + 0.005:.6f}", "纬度": f"{Y0 + 0.005:.6f}",
           "受理时间": "2026-10-12 09:30"}
    row.update(kw)
    return row


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def env(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    user = create_user(db, "disp", "password123", "dispatcher", "990100")
    return CaseService(db), user, db


def test_bad_rows_are_reported_and_nothing_is_written(env, tmp_path):
    svc, user, db = env
    rows = [good(1), good(2, 诉求类型="闲聊"), good(3, 经度="abc"), good(1), good(5, 标题=""),
            good(6, 问题分类="不存在的分类"), good(7, 纬度="123.4"), good(8, 是否匿名="也许"),
            good(9, 受理时间="昨天下午")]
    rep = import_file(svc, write_csv(tmp_path / "bad.csv", rows), user, commit=True)
    assert not rep.ok and not rep.committed
    by_row = {r.row: r for r in rep.rows}
    assert by_row[2].status == "ok"
    expect = {3: "kind", 4: "lon", 5: "submission_key", 6: "title", 7: "category", 8: "lat", 9: "anonymous",
              10: "received_at"}
    for row, fieldname in expect.items():
        assert by_row[row].status == "rejected", (row, by_row[row])
        assert fieldname in [e["field"] for e in by_row[row].errors], (row, by_row[row].errors)
    assert db.fetchone("SELECT count(*) n FROM case_record")["n"] == 0
    text = rep.text()
    assert "row 3" in text and "nothing written" in text


def test_good_file_imports_all_then_reimport_is_idempotent(env, tmp_path):
    svc, user, db = env
    path = write_csv(tmp_path / "ok.csv", [good(i) for i in range(1, 6)])
    dry = import_file(svc, path, user, commit=False)
    assert dry.ok and not dry.committed and db.fetchone("SELECT count(*) n FROM case_record")["n"] == 0
    rep = import_file(svc, path, user, commit=True)
    assert rep.committed and rep.counts() == {"imported": 5}
    assert all(r.case_no for r in rep.rows)
    assert db.fetchone("SELECT count(*) n FROM case_record WHERE status = 'dispatched' "
                       "AND grid_code = '990101001001001'")["n"] == 5
    again = import_file(svc, path, user, commit=True)
    assert again.counts() == {"already_imported": 5}
    assert db.fetchone("SELECT count(*) n FROM case_record")["n"] == 5


def test_xlsx_and_missing_columns(env, tmp_path):
    svc, user, db = env
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    ws.append(list(good(1).values()))
    wb.save(tmp_path / "x.xlsx")
    rep = import_file(svc, tmp_path / "x.xlsx", user, commit=True)
    assert rep.committed and rep.counts() == {"imported": 1}
    wb = openpyxl.Workbook()
    wb.active.append(["标题", "内容"])
    wb.active.append(["a", "b"])
    wb.save(tmp_path / "y.xlsx")
    rep = import_file(svc, tmp_path / "y.xlsx", user, commit=True)
    assert not rep.ok and "工单编号" in rep.file_errors[0]
    with pytest.raises(BadInput, match="unsupported"):
        import_file(svc, tmp_path / "z.pdf", user) if (tmp_path / "z.pdf").write_text("x") else None
