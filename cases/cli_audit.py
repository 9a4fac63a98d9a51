"""`gridgov audit verify [--json]`: recompute the hash chain of every case's event log."""

from __future__ import annotations

import json

from gis.errors import Conflict


def cmd_audit(args, settings):
    from cases.audit import verify_event_log
    from gis.cli import _runtime

    rt = _runtime(settings)
    try:
        rep = verify_event_log(rt.db)
    finally:
        rt.close()
    print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=1) if args.json else rep.text())
    if not rep.ok:
        first = rep.problems[0]
        raise Conflict(f"the event log fails verification: {len(rep.problems)} problems, first: case "
                       f"{first.case_no or first.case_id}: {first.message}")


def register(sub) -> None:
    """Add the audit command to the gridgov CLI."""
    a = sub.add_parser("audit", help="verify the hash-chained case event log (exit 2 when tampered)")
    a.add_argument("action", choices=["verify"])
    a.add_argument("--json", action="store_true")
    a.set_defaults(fn=cmd_audit)
