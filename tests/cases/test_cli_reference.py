"""Reference data a new city loads from files through the CLI: categories and routing rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(dsn, *args):
    return subprocess.run([sys.executable, "-m", "gis", *args], cwd=ROOT, env={"DATABASE_URL": dsn,
                          "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)


def test_categories_and_rules_round_trip(dsn, db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,parent_code,dept_kind,min_level\nA,城建,,住建,township\nA01,物业,X,住建,street\n",
                   encoding="utf-8")
    cp = run(dsn, "categories", "import", str(bad), "--commit")
    assert cp.returncode == 2 and "unknown parent_code X" in cp.stderr and "min_level" in cp.stderr
    assert db.fetchone("SELECT count(*) n FROM category")["n"] == 0
    good = tmp_path / "good.csv"
    good.write_text("code,name,parent_code,dept_kind,min_level\nA01,物业,A,住建,village\nA,城建,,住建,township\n",
                    encoding="utf-8")
    cp = run(dsn, "categories", "import", str(good), "--commit", "--seed-rules")
    assert cp.returncode == 0, cp.stderr
    assert db.fetchall("SELECT code, parent_code FROM category ORDER BY code") == [
        {"code": "A", "parent_code": None}, {"code": "A01", "parent_code": "A"}]
    rules = db.fetchall("SELECT category_code, handler_level, dept_kinds FROM routing_rule WHERE category_code = 'A'")
    assert rules == [{"category_code": "A", "handler_level": "township", "dept_kinds": ["住建"]}]
    out = tmp_path / "rules.csv"
    assert run(dsn, "rules", "export", str(out)).returncode == 0
    text = out.read_text(encoding="utf-8-sig").replace(",township,", ",county,", 1)
    out.write_text(text, encoding="utf-8")
    cp = run(dsn, "rules", "import", str(out), "--commit")
    assert cp.returncode == 0, cp.stderr
    assert db.fetchone("SELECT handler_level FROM routing_rule WHERE active AND category_code = 'A'") == {
        "handler_level": "county"}
    out.write_text(text.replace(",county,", ",galaxy,", 1), encoding="utf-8")
    cp = run(dsn, "rules", "import", str(out), "--commit")
    assert cp.returncode == 2 and "handler_level" in cp.stderr
