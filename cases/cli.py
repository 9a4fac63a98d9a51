"""Case commands for `python -m gis`: users, tokens, routing rules, 12345 import, scheduler, rates, ledgers."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys

from gis.errors import BadInput, NotFound

RULE_FIELDS = ["id", "priority", "category_code", "kind", "channel", "region_prefix", "handler_level", "dept_kinds",
               "note", "active"]


def _rt(settings):
    from gis.cli import _runtime

    return _runtime(settings)


def _write_csv(path: str | None, fields: list[str], rows) -> None:
    """Rows as CSV (UTF-8 with BOM, which Excel opens correctly) to a file, or to stdout without a path."""
    out = open(path, "w", newline="", encoding="utf-8-sig") if path else sys.stdout
    try:
        w = csv.DictWriter(out, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    finally:
        if path:
            out.close()


def _user_by_name(db, username):
    from cases.auth import get_user

    row = db.fetchone("SELECT id FROM app_user WHERE username = %s", (username,))
    if row is None:
        raise NotFound(f"no user {username!r}")
    return get_user(db, row["id"])


def cmd_users(args, settings):
    from cases.auth import create_user, issue_token

    rt = _rt(settings)
    try:
        db = rt.db
        if args.action == "create":
            if not args.username or not args.role or not args.region:
                raise BadInput("users create needs --username --role --region (and --password)")
            password = args.password or sys.stdin.readline().strip()
            u = create_user(db, args.username, password, args.role, args.region, display_name=args.name or "",
                            grid_code=args.grid, department_code=args.department, staff_code=args.staff_code)
            print(json.dumps(u.to_dict(), ensure_ascii=False))
        elif args.action == "token":
            print(issue_token(db, _user_by_name(db, args.username), args.name or "cli"))
        else:
            for r in db.fetchall("SELECT username, role, region_code, grid_code, department_code, staff_code, "
                                 "display_name FROM app_user ORDER BY id"):
                print("\t".join(str(v or "") for v in r.values()))
    finally:
        rt.close()


def cmd_rules(args, settings):
    rt = _rt(settings)
    try:
        db = rt.db
        if args.action == "export":
            rows = db.fetchall("SELECT * FROM routing_rule ORDER BY priority, id")
            _write_csv(args.file, RULE_FIELDS, ({**{k: r[k] for k in RULE_FIELDS}, "dept_kinds": "|".join(
                r["dept_kinds"])} for r in rows))
        elif args.action == "import":
            if not args.file:
                raise BadInput("rules import needs a CSV file (as written by rules export)")
            _import_rules(db, args.file, args.commit)
        else:
            for r in db.fetchall("SELECT id, priority, category_code, kind, channel, handler_level, dept_kinds, note "
                                 "FROM routing_rule WHERE active ORDER BY priority, id"):
                print(f"#{r['id']:<4} p{r['priority']:<4} {r['category_code'] or '*':8} {r['kind'] or '*':4} "
                      f"{r['channel'] or '*':16} {r['handler_level']:9} {'|'.join(r['dept_kinds']):12} {r['note']}")
    finally:
        rt.close()


def _import_rules(db, path, commit: bool) -> None:
    """Replace the routing rules with a CSV's rows (checked first; all or nothing)."""
    from cases.routing import LEVELS

    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    cats = {r["code"] for r in db.fetchall("SELECT code FROM category")}
    errors, clean = [], []
    for i, r in enumerate(rows, start=2):
        level = (r.get("handler_level") or "").strip()
        if level not in LEVELS:
            errors.append(f"row {i}: handler_level {level!r} must be one of {', '.join(LEVELS)}")
        cat = (r.get("category_code") or "").strip() or None
        if cat and not any(c.startswith(cat) for c in cats):
            errors.append(f"row {i}: no category starts with {cat!r}")
        try:
            prio = int(r.get("priority") or 100)
        except ValueError:
            errors.append(f"row {i}: priority {r.get('priority')!r} is not an integer")
            prio = 100
        clean.append(dict(priority=prio, category_code=cat, kind=(r.get("kind") or "").strip() or None,
                          channel=(r.get("channel") or "").strip() or None,
                          region_prefix=(r.get("region_prefix") or "").strip() or None, handler_level=level,
                          dept_kinds=[k for k in (r.get("dept_kinds") or "").split("|") if k],
                          note=r.get("note") or "", active=(r.get("active") or "t").lower() in ("t", "true", "1")))
    if errors:
        raise BadInput(f"{len(errors)} bad rule rows, nothing changed: " + "; ".join(errors[:5]))
    if not commit:
        print(f"{len(clean)} rules are valid (dry run: use --commit to replace the rule table)")
        return
    with db.cursor() as cur:
        cur.execute("UPDATE routing_rule SET active = false")
        for r in clean:
            cur.execute("INSERT INTO routing_rule (priority, category_code, kind, channel, region_prefix, "
                        "handler_level, dept_kinds, note, active) VALUES (%(priority)s, %(category_code)s, %(kind)s,"
                        " %(channel)s, %(region_prefix)s, %(handler_level)s, %(dept_kinds)s, %(note)s, %(active)s)", r)
    print(f"replaced the routing rules with {len(clean)} rules")


def cmd_import_cases(args, settings):
    from cases.importer import import_file
    from cases.service import CaseService

    rt = _rt(settings)
    try:
        actor = _user_by_name(rt.db, args.as_user)
        rep = import_file(CaseService(rt.db), args.file, actor, commit=args.commit)
        print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1) if args.json else rep.text())
        if not rep.ok:
            raise BadInput(f"{rep.counts().get('rejected', 0)} rejected rows; nothing was imported")
    finally:
        rt.close()


CATEGORY_FIELDS = ["code", "name", "parent_code", "dept_kind", "min_level"]


def cmd_categories(args, settings):
    """The category taxonomy a city uses: list, export CSV, import CSV (checked, all or nothing)."""
    from cases.routing import LEVELS

    rt = _rt(settings)
    try:
        db = rt.db
        if args.action in ("list", "export"):
            rows = db.fetchall("SELECT code, name, parent_code, dept_kind, min_level FROM category ORDER BY code")
            _write_csv(args.file, CATEGORY_FIELDS, rows)
            return
        if not args.file:
            raise BadInput("categories import needs a CSV with columns " + ",".join(CATEGORY_FIELDS))
        with open(args.file, encoding="utf-8-sig", newline="") as f:
            rows = [{k: (r.get(k) or "").strip() or None for k in CATEGORY_FIELDS} for r in csv.DictReader(f)]
        codes = {r["code"] for r in db.fetchall("SELECT code FROM category")} | {r["code"] for r in rows if r["code"]}
        errors, seen = [], set()
        for i, r in enumerate(rows, start=2):
            if not r["code"] or not r["name"]:
                errors.append(f"row {i}: code and name are required")
            if r["code"] in seen:
                errors.append(f"row {i}: duplicate code {r['code']}")
            seen.add(r["code"])
            if r["parent_code"] and r["parent_code"] not in codes:
                errors.append(f"row {i}: unknown parent_code {r['parent_code']}")
            r["min_level"] = r["min_level"] or "village"
            if r["min_level"] not in LEVELS:
                errors.append(f"row {i}: min_level {r['min_level']!r} must be one of {', '.join(LEVELS)}")
            r["dept_kind"] = r["dept_kind"] or ""
        if errors:
            raise BadInput(f"{len(errors)} bad category rows, nothing changed: " + "; ".join(errors[:5]))
        if not args.commit:
            print(f"{len(rows)} categories are valid (dry run: use --commit)")
            return
        rows.sort(key=lambda r: (r["parent_code"] is not None, r["code"]))  # parents first
        with db.cursor() as cur:
            for r in rows:
                cur.execute("INSERT INTO category (code, name, parent_code, dept_kind, min_level) VALUES "
                            "(%(code)s, %(name)s, %(parent_code)s, %(dept_kind)s, %(min_level)s) ON CONFLICT (code) "
                            "DO UPDATE SET name = EXCLUDED.name, parent_code = EXCLUDED.parent_code, "
                            "dept_kind = EXCLUDED.dept_kind, min_level = EXCLUDED.min_level", r)
        print(f"loaded {len(rows)} categories")
        if args.seed_rules:
            from cases.setup import seed_routing_rules

            print(f"seeded {seed_routing_rules(db)} routing rules (only when the rule table was empty)")
    finally:
        rt.close()


def cmd_calendar(args, settings):
    """Load holiday/make-up-day overrides (the State Council announcement) or show a year's days off."""
    from cases.calendar import WorkCalendar
    from cases.service import load_calendar_overrides

    rt = _rt(settings)
    try:
        db = rt.db
        if args.action == "import":
            if not args.file:
                raise BadInput("calendar import needs a CSV file with columns date,is_workday,name")
            rows, errors = [], []
            with open(args.file, encoding="utf-8-sig", newline="") as f:
                for i, r in enumerate(csv.DictReader(f), start=2):
                    try:
                        day = dt.date.fromisoformat((r.get("date") or "").strip())
                    except ValueError:
                        errors.append(f"row {i}: date {r.get('date')!r} is not YYYY-MM-DD")
                        continue
                    flag = (r.get("is_workday") or "").strip().lower()
                    if flag not in ("true", "false", "1", "0", "是", "否", "班", "休"):
                        errors.append(f"row {i}: is_workday {r.get('is_workday')!r} must be true/false (班/休)")
                        continue
                    rows.append((day, flag in ("true", "1", "是", "班"), (r.get("name") or "").strip() or None))
            if errors:
                raise BadInput(f"{len(errors)} bad rows, nothing loaded: " + "; ".join(errors[:5]))
            if not args.commit:
                print(f"{len(rows)} calendar rows are valid (dry run: use --commit)")
                return
            with db.cursor() as cur:
                for day, work, name in rows:
                    cur.execute("INSERT INTO calendar_day (day, is_workday, name, source) VALUES (%s, %s, %s, %s) "
                                "ON CONFLICT (day) DO UPDATE SET is_workday = EXCLUDED.is_workday, "
                                "name = EXCLUDED.name, source = EXCLUDED.source", (day, work, name, args.file))
            print(f"loaded {len(rows)} calendar days")
        else:
            cal = WorkCalendar(overrides=load_calendar_overrides(db))
            year = args.year or dt.date.today().year
            d = dt.date(year, 1, 1)
            while d.year == year:
                info = cal.day_info(d)
                if info.kind in ("holiday", "makeup"):
                    print(f"{d} {'班' if info.workday else '休'} {info.name or ''} ({info.source})")
                d += dt.timedelta(days=1)
    finally:
        rt.close()


def _month(s: str) -> tuple[int, int]:
    try:
        d = dt.datetime.strptime(s, "%Y-%m")
    except ValueError:
        raise BadInput(f"month {s!r} must be YYYY-MM", field="month") from None
    return d.year, d.month


def register(sub) -> None:
    """Add the case commands to the gridgov CLI."""
    u = sub.add_parser("users", help="list/create users, issue API tokens")
    u.add_argument("action", choices=["list", "create", "token"])
    u.add_argument("--username")
    u.add_argument("--password", help="(or on stdin)")
    u.add_argument("--role")
    u.add_argument("--region")
    u.add_argument("--grid")
    u.add_argument("--department")
    u.add_argument("--name")
    u.add_argument("--staff-code", dest="staff_code",
                   help="the person's staff code (网格员编号), so an accusation naming it is kept from this user")
    u.set_defaults(fn=cmd_users)
    r = sub.add_parser("rules", help="routing rules: list, export CSV, import CSV (dry run unless --commit)")
    r.add_argument("action", choices=["list", "export", "import"])
    r.add_argument("file", nargs="?")
    r.add_argument("--commit", action="store_true")
    r.set_defaults(fn=cmd_rules)
    k = sub.add_parser("categories", help="category taxonomy: list, export CSV, import CSV (dry run unless --commit)")
    k.add_argument("action", choices=["list", "export", "import"])
    k.add_argument("file", nargs="?")
    k.add_argument("--commit", action="store_true")
    k.add_argument("--seed-rules", action="store_true", help="after import, create default routing rules if none")
    k.set_defaults(fn=cmd_categories)
    c = sub.add_parser("calendar", help="working-day calendar: show a year's holidays and make-up days, or import "
                                         "overrides (date,is_workday,name) from the State Council announcement")
    c.add_argument("action", choices=["show", "import"])
    c.add_argument("file", nargs="?")
    c.add_argument("--year", type=int)
    c.add_argument("--commit", action="store_true")
    c.set_defaults(fn=cmd_calendar)
    i = sub.add_parser("import-cases", help="import a 12345 export (CSV/XLSX); dry run unless --commit")
    i.add_argument("file")
    i.add_argument("--as-user", default="dispatcher", help="the dispatcher account the cases are registered by")
    i.add_argument("--commit", action="store_true")
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=cmd_import_cases)
    try:
        from cases import cli_reports
    except ImportError:
        return
    cli_reports.register(sub, _rt, _month)
    cli_reports.register_review(sub, _rt)
