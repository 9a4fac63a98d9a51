"""Report and worker commands: the reminder scheduler, monthly rates/snapshots, Excel ledgers."""

from __future__ import annotations

import datetime as dt
import json

from gis.errors import BadInput


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))


def register(sub, runtime, parse_month) -> None:
    """Add scheduler, rates and ledger commands."""

    def _parse_now(text: str) -> dt.datetime:
        """--now: ISO date-time; without an offset it is Beijing time (as documented)."""
        from cases.calendar import to_local

        try:
            return to_local(dt.datetime.fromisoformat(text))
        except ValueError:
            raise BadInput(f"bad --now {text!r}: use an ISO date-time such as 2025-07-02T09:00",
                           field="now") from None

    def cmd_scheduler(args, settings):
        import time

        from cases.notify import LogNotifier
        from cases.scheduler import run_reminders
        from cases.service import CaseService

        if args.now and args.every:
            raise BadInput("--now and --every exclude each other")
        rt = runtime(settings)
        try:
            while True:
                now = _parse_now(args.now) if args.now else _now()
                summary = run_reminders(rt.db, now, LogNotifier())
                svc = CaseService(rt.db)
                summary["escalated_overdue"] = len(svc.escalate_overdue(now))
                summary["closed_unevaluated"] = len(svc.close_unevaluated(now))
                print(json.dumps(summary, ensure_ascii=False, default=str), flush=True)
                if not args.every:
                    break
                time.sleep(args.every)  # a worker: Ctrl-C / SIGTERM stops it between runs
        except KeyboardInterrupt:
            pass
        finally:
            rt.close()

    def cmd_intake_writer(args, settings):
        from cases.queue import BATCH, backlog, drain, run_writer
        from cases.service import CaseService

        rt = runtime(settings)
        try:
            svc = CaseService(rt.db)
            if args.once:   # drain what is queued now, then say what was done
                done = 0
                while True:
                    n = drain(svc, args.batch or BATCH)
                    if n is None:
                        raise BadInput("another intake writer holds the batch lock (serve runs one: "
                                       "GRIDGOV_INTAKE_WRITER=0 to run this one instead)")
                    if n == 0:
                        break
                    done += n
                print(json.dumps({"processed": done, **backlog(rt.db)}, default=str), flush=True)
                return
            import threading

            stop = threading.Event()
            try:
                run_writer(svc, stop, batch=args.batch or BATCH)
            except KeyboardInterrupt:
                stop.set()
        finally:
            rt.close()

    def cmd_rates(args, settings):
        from cases import reports

        y, m = parse_month(args.month)
        rt = runtime(settings)
        try:
            if args.action == "show":
                from cases.rates import fmt_pct

                for r in reports.compute_month(rt.db, y, m, args.unit):
                    ur, mt = r["rates"], r["metrics"]
                    print(f"{r['rank'] or '-':>4} {r['unit_code']:15} {r['unit_name'][:14]:14} "
                          f"响应率 {fmt_pct(ur.response.value):>6} 解决率 {fmt_pct(ur.resolution.value):>6} "
                          f"满意率 {fmt_pct(ur.satisfaction.value):>6} {r['colour_label']} {r['colour_reason']}")
                    if args.details:
                        # the seeds' other figures (issue 9): 参评满意率, 超期未评, 一次性化解率, 信访 repeat and 积案
                        print(" " * 5 + "  ".join(
                            f"{label} {fmt_pct(reports.exact(mt[key]))}" for key, label in (
                                ("participating_satisfaction", "参评满意率"), ("on_time", "按时办结率"),
                                ("one_time", "一次性化解率"), ("online_repeat", "重复网信率"), ("again", "再次信访率"),
                                ("backlog_resolution", "积案化解率")))
                              + f"  超期未评 {mt['overdue_unevaluated']} 件  积案未化解 {mt['backlog_open']} 件")
            elif args.action == "snapshot":
                print(json.dumps(reports.snapshot_month(rt.db, y, m), ensure_ascii=False, default=str))
            elif args.action == "publish":
                print(json.dumps(reports.publish_month(rt.db, y, m), ensure_ascii=False, default=str))
            else:
                if not args.out:
                    raise BadInput("rates export needs --out FILE.xlsx")
                from cases.ledger import export_monthly_summary

                print(json.dumps(export_monthly_summary(rt.db, y, m, args.out), ensure_ascii=False, default=str))
        finally:
            rt.close()

    def cmd_ledger(args, settings):
        from cases.cli import _user_by_name
        from cases.ledger import export_ledger

        rt = runtime(settings)
        try:
            user = _user_by_name(rt.db, args.as_user)
            start = dt.date.fromisoformat(args.start)
            end = dt.date.fromisoformat(args.end)
            print(json.dumps(export_ledger(rt.db, user, args.out, start, end), ensure_ascii=False, default=str))
        except ValueError as e:
            raise BadInput(f"bad date: {e}") from None
        finally:
            rt.close()

    def cmd_policy(args, settings):
        from cases.policy import (
            deadline_policy_dict,
            load_deadline_policy,
            load_rate_policy,
            save_deadline_policy,
            save_rate_policy,
        )

        deadlines = args.cmd_name == "deadline-policy"
        rt = runtime(settings)
        try:
            if args.action == "set":
                if not args.file:
                    raise BadInput(f"{args.cmd_name} set needs a JSON file")
                try:
                    with open(args.file, encoding="utf-8") as f:
                        value = json.load(f)
                except (OSError, ValueError) as e:
                    raise BadInput(f"cannot read {args.file}: {e}") from None
                (save_deadline_policy if deadlines else save_rate_policy)(rt.db, value)
            shown = (deadline_policy_dict(load_deadline_policy(rt.db)) if deadlines
                     else load_rate_policy(rt.db).to_dict())
            print(json.dumps(shown, ensure_ascii=False, indent=1))
        finally:
            rt.close()

    p = sub.add_parser("rate-policy", help="the city's rate policy: composite weights, 基本满意 weight, evaluation "
                                           "window, 四色码 thresholds (show, or set from a JSON file)")
    p.add_argument("action", choices=["show", "set"])
    p.add_argument("file", nargs="?")
    p.set_defaults(fn=cmd_policy, cmd_name="rate-policy")
    dp = sub.add_parser("deadline-policy", help="the city's deadline rules: 简易程序 for 信访 channels, 书记信箱 days, "
                                                "一天一催/三天一督 intervals, emergencies met by 处置反馈 "
                                                "(show, or set from a JSON file)")
    dp.add_argument("action", choices=["show", "set"])
    dp.add_argument("file", nargs="?")
    dp.set_defaults(fn=cmd_policy, cmd_name="deadline-policy")
    s = sub.add_parser("scheduler", help="send due reminders (一天一催) and supervision notices (三天一督) once")
    s.add_argument("--now", help="ISO date-time to run as (default: now)")
    s.add_argument("--every", type=int, help="keep running, once every N seconds (a worker process)")
    s.set_defaults(fn=cmd_scheduler)
    w = sub.add_parser("intake-writer", help="register queued submissions (POST /api/submissions) as cases: keep "
                                             "running (a worker), or --once")
    w.add_argument("--once", action="store_true", help="drain what is queued now and stop")
    w.add_argument("--batch", type=int, help="submissions per transaction (default 100)")
    w.set_defaults(fn=cmd_intake_writer)
    r = sub.add_parser("rates", help="monthly 三率 and 四色码: show, snapshot, publish (freezes), export xlsx")
    r.add_argument("action", choices=["show", "snapshot", "publish", "export"])
    r.add_argument("--month", required=True, help="YYYY-MM")
    r.add_argument("--unit", default="township", choices=["grid", "village", "township", "county", "department"])
    r.add_argument("--out")
    r.add_argument("--details", action="store_true",
                   help="show: also 参评满意率, 按时办结率, 一次性化解率, 重复网信率, 再次信访率, 积案化解率, "
                        "超期未评 and the open 积案 per unit")
    r.set_defaults(fn=cmd_rates)
    lg = sub.add_parser("ledger", help="export the case ledger (台账) a user may see to Excel")
    lg.add_argument("--as-user", required=True)
    lg.add_argument("--start", required=True)
    lg.add_argument("--end", required=True)
    lg.add_argument("--out", required=True)
    lg.set_defaults(fn=cmd_ledger)


def register_review(sub, runtime) -> None:
    """Add `review-png`: the township review of a month as a PNG for the meeting (headless Chromium)."""

    def cmd_review_png(args, settings):
        from cases.auth import get_user
        from gis.errors import NotFound
        from webmap.snapshot import review_png

        rt = runtime(settings)
        try:
            row = rt.db.fetchone("SELECT id FROM app_user WHERE username = %s", (args.as_user,))
            if row is None:
                raise NotFound(f"no user {args.as_user!r}")
            out = review_png(rt.db, get_user(rt.db, row["id"]), args.unit, args.month, args.out, settings=settings)
            print(f"wrote {out}")
        finally:
            rt.close()

    p = sub.add_parser("review-png", help="the township review of a month as a PNG (headless Chromium)")
    p.add_argument("--as-user", required=True, help="whose view (a center's account)")
    p.add_argument("--unit", required=True, help="township, county or village code")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(fn=cmd_review_png)

