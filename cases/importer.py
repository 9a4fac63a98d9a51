"""Batch import of a 12345 hotline export (CSV or XLSX): every row is checked first, a per-row report
says what was rejected and why, and nothing is written unless every row is good (one transaction).

Re-importing the same file is idempotent: rows whose 工单编号 (submission key) already exists are
reported as `already_imported` and skipped, never duplicated. Columns (Chinese or English headers)
are documented in docs/cases.md and COLUMNS below.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2.extras

from cases.partitions import ensure_partitions_cur
from gis.errors import BadInput, GridgovError

# canonical key → accepted headers (first is the documented Chinese header)
COLUMNS: dict[str, tuple[str, ...]] = {
    "submission_key": ("工单编号", "submission_key", "工单号", "编号"),
    "channel": ("来源渠道", "channel", "渠道"),
    "kind": ("诉求类型", "kind", "类型"),
    "category": ("问题分类", "category", "category_code", "分类"),
    "title": ("标题", "title", "诉求标题"),
    "content": ("诉求内容", "content", "内容"),
    "reporter_name": ("诉求人", "reporter_name", "姓名", "来电人"),
    "reporter_phone": ("联系电话", "reporter_phone", "电话", "来电号码"),
    "reporter_id_no": ("身份证号", "reporter_id_no", "证件号码"),
    "anonymous": ("是否匿名", "anonymous", "匿名"),
    "address_text": ("事发地址", "address_text", "地址"),
    "lon": ("经度", "lon", "x"),
    "lat": ("纬度", "lat", "y"),
    "crs": ("坐标系", "crs"),
    "received_at": ("受理时间", "received_at", "来电时间"),
    "emergency": ("是否紧急", "emergency", "紧急"),
    "accused_units": ("被举报单位", "accused_units"),
    "accused_persons": ("被举报人", "accused_persons"),
}
REQUIRED = ("submission_key", "channel", "kind", "title")
_TRUE = {"是", "1", "true", "yes", "y", "匿名", "紧急"}
_FALSE = {"", "否", "0", "false", "no", "n"}


@dataclass
class RowResult:
    row: int  # 1-based data row number as shown in a spreadsheet (header is row 1)
    submission_key: str | None
    status: str  # ok | rejected | already_imported | imported
    errors: list[dict] = field(default_factory=list)
    case_no: str | None = None

    def to_dict(self) -> dict:
        return {"row": self.row, "submission_key": self.submission_key, "status": self.status,
                "errors": self.errors, "case_no": self.case_no}


@dataclass
class ImportReport:
    path: str
    rows: list[RowResult]
    committed: bool = False
    file_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.file_errors and all(r.status != "rejected" for r in self.rows)

    def counts(self) -> dict:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "committed": self.committed, "counts": self.counts(),
                "file_errors": self.file_errors, "rows": [r.to_dict() for r in self.rows]}

    def text(self) -> str:
        lines = [f"{self.path}: {len(self.rows)} rows, " + ", ".join(f"{k} {v}" for k, v in self.counts().items())]
        lines += [f"  file: {e}" for e in self.file_errors]
        for r in self.rows:
            for e in r.errors:
                lines.append(f"  row {r.row} ({r.submission_key or '-'}): {e['field']}: {e['message']}")
        lines.append("committed" if self.committed else ("nothing written: fix the rows above" if not self.ok
                                                          else "dry run: nothing written (use --commit)"))
        return "\n".join(lines)


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a CSV (UTF-8, UTF-8-SIG or GB18030) or XLSX file as dicts of strings keyed by header."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise BadInput(f"file not found: {p}", field="path")
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(p, dtype=str, keep_default_na=False, engine="openpyxl")
        elif suffix in (".csv", ".txt"):
            for enc in ("utf-8-sig", "gb18030"):
                try:
                    df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding=enc)
                    break
                except UnicodeDecodeError:
                    continue
            else:
                raise BadInput(f"{p.name}: cannot decode as UTF-8 or GB18030", field="path")
        else:
            raise BadInput(f"{p.name}: unsupported file type {suffix!r} (use .csv or .xlsx)", field="path")
    except GridgovError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken file is bad input, reported on one line
        raise BadInput(f"{p.name}: cannot read: {str(e).splitlines()[0]}", field="path") from None
    return [{str(k).strip(): (v.strip() if isinstance(v, str) else v) for k, v in rec.items()}
            for rec in df.to_dict(orient="records")]


def _header_map(headers: list[str]) -> tuple[dict[str, str], list[str]]:
    lookup = {alias.lower(): key for key, aliases in COLUMNS.items() for alias in aliases}
    mapping, unknown = {}, []
    for h in headers:
        key = lookup.get(h.strip().lower())
        if key:
            mapping[h] = key
        else:
            unknown.append(h)
    return mapping, unknown


def _flag(value: str, fieldname: str, errors: list) -> bool:
    v = (value or "").strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    errors.append({"field": fieldname, "message": f"{value!r} is not 是/否"})
    return False


def _submission(raw: dict, categories: dict, names: dict, errors: list) -> dict:
    sub = {k: v for k, v in raw.items() if k in ("submission_key", "channel", "kind", "title", "content",
                                                 "reporter_name", "reporter_phone", "reporter_id_no",
                                                 "address_text", "crs") and v not in (None, "")}
    cat = (raw.get("category") or "").strip()
    if cat:
        code = cat if cat in categories else names.get(cat)
        if code is None:
            errors.append({"field": "category", "message": f"unknown category {cat!r}"})
        sub["category_code"] = code
    sub["anonymous"] = _flag(raw.get("anonymous", ""), "anonymous", errors)
    sub["emergency"] = _flag(raw.get("emergency", ""), "emergency", errors)
    for f in ("lon", "lat"):
        v = (raw.get(f) or "").strip()
        if v:
            try:
                sub[f] = float(v)
            except ValueError:
                errors.append({"field": f, "message": f"{v!r} is not a number"})
    given = {f for f in ("lon", "lat") if (raw.get(f) or "").strip()}
    if len(given) == 1:  # one of them missing (a value that is not a number was reported above)
        errors.append({"field": "lat" if "lon" in given else "lon", "message": "经度和纬度须同时给出"})
    t = (raw.get("received_at") or "").strip()
    if t:
        try:
            sub["received_at"] = dt.datetime.fromisoformat(t.replace("/", "-"))
        except ValueError:
            errors.append({"field": "received_at", "message": f"{t!r} is not a date-time (YYYY-MM-DD HH:MM)"})
    for f in ("accused_units", "accused_persons"):
        v = (raw.get(f) or "").strip()
        sub[f] = [x.strip() for x in v.replace("，", ",").replace("、", ",").split(",") if x.strip()] if v else []
    return sub


def import_file(service, path: str | Path, actor, commit: bool = False, now: dt.datetime | None = None
                ) -> ImportReport:
    """Check every row of a 12345 export; with commit=True and no rejected row, write all in one transaction."""
    rows = read_rows(path)
    report = ImportReport(str(path), [])
    if not rows:
        report.file_errors.append("the file has no data rows")
        return report
    mapping, unknown = _header_map(list(rows[0].keys()))
    missing = [COLUMNS[k][0] for k in REQUIRED if k not in mapping.values()]
    if missing:
        report.file_errors.append(f"missing required columns: {', '.join(missing)} "
                                  f"(unrecognised headers: {', '.join(unknown) or 'none'})")
        return report
    ref = service.reference()
    names = {c["name"]: code for code, c in ref["categories"].items()}
    existing = set()
    keys = [r.get(h) for r in rows for h, k in mapping.items() if k == "submission_key"]
    if keys:
        existing = {r["submission_key"] for r in service.db.fetchall(
            "SELECT submission_key FROM case_record WHERE submission_key = ANY(%s)", ([k for k in keys if k],))}
    seen: dict[str, int] = {}
    prepared = []
    for i, rec in enumerate(rows, start=2):
        raw = {mapping[h]: v for h, v in rec.items() if h in mapping}
        errors: list[dict] = []
        key = (raw.get("submission_key") or "").strip() or None
        res = RowResult(i, key, "ok", errors)
        report.rows.append(res)
        if key is None:
            errors.append({"field": "submission_key", "message": "工单编号 is empty"})
        elif key in seen:
            errors.append({"field": "submission_key", "message": f"duplicate of row {seen[key]} in this file"})
        else:
            seen[key] = i
        if key in existing:
            res.status = "already_imported"
            continue
        sub = _submission(raw, ref["categories"], names, errors)
        if not errors:
            try:
                prepared.append((res, service.prepare(sub, now)))
            except GridgovError as e:
                errors.append({"field": e.field or "-", "message": e.message})
        if errors:
            res.status = "rejected"
    if not report.ok or not commit:
        return report
    with service.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        # an export of past months: their partitions first (in this transaction, all or nothing)
        received = [prep["received"] for _, prep in prepared]
        if received:
            ensure_partitions_cur(cur, min(received), max(received))
        for res, prep in prepared:
            case_id, _state, _dups = service.write_prepared(cur, prep, actor)
            cur.execute("SELECT case_no FROM case_key WHERE id = %s", (case_id,))
            res.case_no = cur.fetchone()["case_no"]
            res.status = "imported"
    report.committed = True
    return report
