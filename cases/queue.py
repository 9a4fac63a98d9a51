"""Queued intake: accept a submission at once, register it as a case in batches (issue 11, "intake near the
database's ceiling").

POST /api/cases answers with the routed case (routing, deadlines, events, duplicate search): ~13 ms of work
per case, which bounds a 12345 center's intake in a surge (a flood, an epidemic: 嘉兴 took 150,000 online
matters in one). POST /api/submissions does only what the answer needs — validate (the same checks, the same
400s), locate the point in the in-process `GridIndex` of the active generation, allocate the case number from
the case sequence and append the submission to `submission_queue` in one statement — and answers 202 with
the case number, the grid and the submission key. The writer (`run_writer`, started by `serve`, or
`./gridgov intake-writer`) registers queued submissions through the same `CaseService.prepare` /
`write_prepared` as POST /api/cases, a batch per transaction, each in its own savepoint so one bad submission
is rejected (with its reason) without holding up the rest. GET /api/submissions/<key> tells the submitter
where it stands: queued, registered (with the case id, status, routing and suggested duplicates) or rejected.

Idempotent like POST /api/cases: a replay of a key with the same content answers with what the first call
got (200); with other content it is a 409; a key already used by a case registered directly is answered as
POST /api/cases would.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

from cases.auth import User, user_as_accepted
from cases.calendar import to_local
from cases.case_rows import _now
from gis.db import execute_prepared
from gis.errors import Conflict, Forbidden, GridgovError, NotFound

log = logging.getLogger("gridgov.queue")

KEY_PREFIX = "q_"
BATCH = 10     # a batch of 100 (~0.5 s of one core) stalled acceptances at 8 connections up to 1.2 s (p99 13 → 34 ms)
WRITER_LOCK = 0x67675154   # advisory lock: one writer batch at a time across the deployment
_MAX_M_PER_DEGREE = 112_000.0   # a degree of latitude is at most 111.7 km, of longitude at most 111.3 km
SURGE_DUTY = 0.2           # the writer's share of the time while submissions keep arriving
STATES_ZH = {"queued": "已受理，待登记", "registered": "已登记", "rejected": "未能登记"}
_index_lock = threading.Lock()

_ACCEPT_SQL = (
    "INSERT INTO submission_queue (submission_key, case_no, user_id, token_id, payload, fingerprint, grid_code, "
    "received_at) SELECT %(key)s, 'GG' || to_char(%(received)s::timestamptz AT TIME ZONE gridgov_time_zone(), "
    "'YYYYMMDD') || lpad(nextval('case_no_seq')::text, 8, '0'), %(user)s, %(token)s, %(payload)s, %(fp)s, "
    "%(grid)s, %(received)s "
    # a key a directly registered case already carries is answered as POST /api/cases answers a replay
    "WHERE NOT EXISTS (SELECT 1 FROM case_key WHERE submission_key = %(key)s) "
    "ON CONFLICT (submission_key) DO NOTHING RETURNING case_no, received_at, accepted_at")


def grid_index(svc):
    """The in-process point → grid index of the active generation (grids.bulk, persisted per generation;
    a new generation is picked up with the service's reference data)."""
    gen = svc.reference()["generation"]
    gi = getattr(svc, "_queue_grid_index", None)
    if gi is None or gi.generation != gen:
        with _index_lock:
            gi = getattr(svc, "_queue_grid_index", None)
            if gi is None or gi.generation != gen:
                from grids.bulk import GridIndex

                gi = svc._queue_grid_index = GridIndex.cached(svc.db, gen)
    return gi


def _grid_of(svc, sub: dict) -> str | None:
    """The grid of the submission's point (None without a point or outside every grid). A point that is not
    a point (bad numbers, projected metres as degrees, far outside the city) is the same 400 as POST
    /api/cases gives."""
    x, y = sub.get("lon", sub.get("x")), sub.get("lat", sub.get("y"))
    if x is None or y is None:
        return None
    from grids.locate import parse_point

    lon, lat, _ = parse_point(x, y, sub.get("crs") or "EPSG:4326")
    gi = grid_index(svc)
    code = gi.locate_one(lon, lat)
    if code:
        return code
    # Outside every grid: near the city it waits for a pin, far away it is a 400. A planar distance in degrees
    # times the longest metres a degree can be is never shorter than the true one, so "surely near" needs no
    # database; anything else is the database's locate to decide, exactly as POST /api/cases does.
    import shapely

    from grids.locate import MAX_DISTANCE_M, locate

    _, dist = gi.tree.query_nearest(shapely.Point(lon, lat), return_distance=True)
    if len(dist) and dist[0] * _MAX_M_PER_DEGREE < MAX_DISTANCE_M:
        return None
    locate(svc.db, x, y, sub.get("crs") or "EPSG:4326")
    return None


def _iso(v) -> str | None:
    return to_local(v).isoformat() if v is not None else None


def accept(svc, actor: User, raw: dict, now: dt.datetime | None = None) -> tuple[dict, int]:
    """Validate and queue a submission; (answer, HTTP status): 202 queued now, 200 a replay."""
    from cases.service import INTAKE_ROLES

    if actor is None or actor.role not in INTAKE_ROLES:
        raise Forbidden(f"role {getattr(actor, 'role', None)} does not register cases", field="role")
    sub = svc._validate_submission(raw)
    key = sub.get("submission_key") or KEY_PREFIX + secrets.token_urlsafe(18)
    grid = _grid_of(svc, sub)
    received = sub["received_at"] or (to_local(now) if now else _now())
    payload = {k: v for k, v in raw.items() if k != "submission_key"}
    params = {"key": key, "received": received, "user": actor.id, "token": getattr(actor, "token_id", None) or None,
              "payload": json.dumps(payload, ensure_ascii=False), "fp": sub["fingerprint"], "grid": grid}
    with svc.db.connection(autocommit=True) as conn, conn.cursor() as cur:
        execute_prepared(cur, _ACCEPT_SQL, params)
        row = cur.fetchone()
    if row is None:
        return _replay(svc, actor, sub, key), 200
    return {"status": "queued", "status_zh": STATES_ZH["queued"], "submission_key": key, "case_no": row[0],
            "received_at": _iso(row[1]), "accepted_at": _iso(row[2]), "grid_code": grid,
            "needs_pin": grid is None, "duplicate_submission": False, "href": f"/api/submissions/{key}"}, 202


def _replay(svc, actor: User, sub: dict, key: str) -> dict:
    row = svc.db.fetchone("SELECT user_id, fingerprint FROM submission_queue WHERE submission_key = %s", (key,))
    if row is None:   # the key belongs to a case registered through POST /api/cases
        existing = svc._existing(actor, {**sub, "submission_key": key})
        if existing is None:   # that case was deleted between the two statements
            raise Conflict(f"submission_key {key!r} is being registered; retry", field="submission_key")
        return existing
    if row["fingerprint"] != sub["fingerprint"]:
        raise Conflict(f"submission_key {key!r} was already used for a different submission", field="submission_key")
    if row["user_id"] != actor.id:   # another account's submission: nothing of it is revealed
        return {"duplicate_submission": True, "submission_key": key}
    return {**status(svc.db, actor, key), "duplicate_submission": True}


def status(db, actor: User, key: str) -> dict:
    """Where the actor's submission stands (only the account that handed it over may ask)."""
    if not key or len(key) > 100:
        raise NotFound("submission not found", field="submission_key")
    row = db.fetchone("SELECT submission_key, case_no, state, grid_code, received_at, accepted_at, processed_at, "
                      "case_id, result FROM submission_queue WHERE submission_key = %s AND user_id = %s",
                      (key, actor.id))
    if row is None:
        raise NotFound("submission not found", field="submission_key")
    out = {"submission_key": row["submission_key"], "case_no": row["case_no"], "status": row["state"],
           "status_zh": STATES_ZH[row["state"]], "grid_code": row["grid_code"],
           "received_at": _iso(row["received_at"]), "accepted_at": _iso(row["accepted_at"]),
           "processed_at": _iso(row["processed_at"])}
    result = row["result"] or {}
    if row["state"] == "registered":
        out.update({"case_id": row["case_id"], **result})
    elif row["state"] == "rejected":
        out["error"] = result.get("error")
    return out


# -- the writer ---------------------------------------------------------------------------------------
def _register(svc, cur, q: dict, actor: User) -> dict:
    """Register one queued submission inside the batch's transaction; the result the status answer shows."""
    sub = svc._validate_submission({**(q["payload"] or {}), "submission_key": q["submission_key"]})
    # the fingerprint stays the one the acceptance answered with (received_at only when the sender gave it);
    # the case is received when the submission was
    sub["received_at"] = to_local(q["received_at"])
    prep = svc.prepare(sub, validated=True)
    prep["assigned_case_no"] = q["case_no"]
    case_id, state, dups = svc.write_prepared(cur, prep, actor)
    if not prep["visible"]:
        # registered for another jurisdiction, or naming the submitter: the essentials only, as POST /api/cases
        return {"case_id": case_id, "case_status": state, "visible": False}
    d = prep["decision"]
    return {"case_id": case_id, "case_status": state, "grid_code": prep["codes"]["grid_code"],
            "needs_pin": prep["loc"]["needs_pin"], "near_boundary": prep["near"] is not None,
            "lead_department": d.lead_department, "handling_level": d.handling_level,
            "duplicates": dups}


def _error(e: BaseException) -> dict:
    if isinstance(e, GridgovError):
        return {"code": e.code, "message": str(e), "field": getattr(e, "field", None)}
    return {"code": "internal", "message": f"登记失败，请联系管理员 ({type(e).__name__})", "field": None}


def drain(svc, limit: int = BATCH) -> int | None:
    """Register up to `limit` queued submissions, oldest first, each in its own short transaction (the case,
    its events and aggregate rows, and the queue row's new state commit together). Returns how many were
    processed (registered or rejected), or None when another writer holds the lock.

    One transaction per case, not per batch: a batch transaction would hold the `case_day_stats` rows of a
    hundred cases until its end, and a direct intake touching two of them in another order deadlocks with it
    (seen under load: the direct intake was the victim). A case's own transaction is what POST /api/cases
    holds. A deadlock or serialization failure of one submission leaves it queued for the next round."""
    users: dict[tuple, User | None] = {}
    done = 0
    with svc.db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s) AS got, pg_backend_pid() AS pid", (WRITER_LOCK,))
        got, pid = (r := cur.fetchone())["got"], r["pid"]   # the lock is held across the commits below
        if _backend_nice:
            _renice_backend(svc.db.dsn, pid, _backend_nice)
        conn.commit()
        if not got:
            return None
        try:
            cur.execute("SELECT id FROM submission_queue WHERE state = 'queued' ORDER BY id LIMIT %s", (limit,))
            ids = [r["id"] for r in cur.fetchall()]
            conn.commit()
            for qid in ids:
                cur.execute("SELECT id, submission_key, case_no, user_id, token_id, payload, received_at "
                            "FROM submission_queue WHERE id = %s AND state = 'queued' FOR UPDATE SKIP LOCKED", (qid,))
                q = cur.fetchone()
                if q is None:
                    conn.commit()
                    continue
                who = (q["user_id"], q["token_id"])
                if who not in users:
                    users[who] = user_as_accepted(svc.db, *who)
                try:
                    _settle(svc, cur, q, users[who])
                    conn.commit()
                    done += 1
                except psycopg2.errors.TransactionRollbackError:
                    conn.rollback()   # deadlock victim or serialization failure: it stays queued
                    log.warning("queued submission %s will be retried (lock conflict)", q["submission_key"])
        finally:
            _unlock(conn, cur)
    return done


_backend_nice = 0          # set in the writer process: renice its PostgreSQL backends too
_reniced: set[int] = set()


def _renice_backend(dsn: str, pid: int, nice: int) -> None:
    """Lower the CPU priority of the writer's PostgreSQL backend when the server runs on this machine (the
    embedded cluster): the writer's cost is mostly in its backend, and at nice 0 that backend took CPU from
    the acceptances (max latency at 8 connections 1.2 s → 65 ms once reniced). Only a process that is a
    PostgreSQL backend of a loopback or socket connection is touched; anything else is left alone, silently
    (a remote database, no permission)."""
    if pid in _reniced:
        return
    _reniced.add(pid)
    import os

    from psycopg2.extensions import parse_dsn

    host = parse_dsn(dsn).get("host") or ""
    if host not in ("", "localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if not f.read().startswith(b"postgres"):
                return
        if os.getpriority(os.PRIO_PROCESS, pid) < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        pass


def _unlock(conn, cur) -> None:
    """Give the writer lock back; if that fails the connection is closed (the server then drops the lock) so
    no pooled connection can keep it."""
    try:
        conn.rollback()
        cur.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        conn.commit()
    except psycopg2.Error:
        conn.close()


def _settle(svc, cur, q: dict, actor: User | None) -> None:
    """Register one queued submission, or reject it with the reason, inside the caller's transaction."""
    cur.execute("SAVEPOINT queued_one")
    try:
        if actor is None:
            raise Forbidden("the account that handed this submission over no longer exists")
        result = _register(svc, cur, q, actor)
        cur.execute("RELEASE SAVEPOINT queued_one")
        cur.execute("UPDATE submission_queue SET state = 'registered', case_id = %s, result = %s, "
                    "payload = NULL, processed_at = now() WHERE id = %s",
                    (result.pop("case_id"), json.dumps(result, ensure_ascii=False, default=str), q["id"]))
    except psycopg2.errors.UniqueViolation:
        # registered directly (POST /api/cases, an import) with the same key since it was accepted
        cur.execute("ROLLBACK TO SAVEPOINT queued_one")
        _settle_replayed(cur, q)
    except (GridgovError, psycopg2.DataError, psycopg2.IntegrityError, ValueError, TypeError, KeyError) as e:
        # this submission cannot become a case
        cur.execute("ROLLBACK TO SAVEPOINT queued_one")
        if not isinstance(e, GridgovError):
            log.exception("queued submission %s rejected", q["submission_key"])
        cur.execute("UPDATE submission_queue SET state = 'rejected', result = %s, processed_at = now() "
                    "WHERE id = %s", (json.dumps({"error": _error(e)}, ensure_ascii=False), q["id"]))


def _settle_replayed(cur, q: dict) -> None:
    cur.execute("SELECT q.fingerprint, c.id, c.submission_hash, c.status FROM submission_queue q "
                "LEFT JOIN case_record c ON c.submission_key = q.submission_key WHERE q.id = %s", (q["id"],))
    r = cur.fetchone()
    if r["id"] is not None and r["submission_hash"] == r["fingerprint"]:
        cur.execute("UPDATE submission_queue SET state = 'registered', case_id = %s, payload = NULL, result = %s, "
                    "processed_at = now() WHERE id = %s",
                    (r["id"], json.dumps({"case_status": r["status"], "duplicate_submission": True}), q["id"]))
        return
    err = {"code": "conflict", "field": "submission_key",
           "message": f"submission_key {q['submission_key']!r} was already used for a different submission"}
    cur.execute("UPDATE submission_queue SET state = 'rejected', result = %s, processed_at = now() WHERE id = %s",
                (json.dumps({"error": err}, ensure_ascii=False), q["id"]))


def backlog(db) -> dict:
    """The queue's backlog: how many wait and since when."""
    return db.fetchone("SELECT count(*) AS queued, min(accepted_at) AS oldest FROM submission_queue "
                       "WHERE state = 'queued'")


def _newest(db) -> int:
    return db.fetchone("SELECT coalesce(max(id), 0) AS n FROM submission_queue")["n"]


def run_writer(svc, stop: threading.Event, idle: float = 0.25, batch: int = BATCH,
               surge_duty: float = SURGE_DUTY) -> None:
    """Drain the queue until `stop` is set: a batch after a batch while there is work, a short sleep when
    the queue is empty or another writer holds the lock; a lost database is waited out, never fatal.

    While submissions keep arriving (a surge), acceptances come first: the writer works at most
    `surge_duty` of the time (a batch of t seconds is followed by a pause of t·(1/duty − 1)), and the backlog
    waits in the queue with its case numbers already given; once arrivals stop it drains at full speed."""
    newest = None
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            n = drain(svc, batch)
            arrived = newest is not None and _newest(svc.db) > newest
            newest = _newest(svc.db)
        except (psycopg2.Error, GridgovError) as e:
            log.warning("intake writer: %s; retrying", str(e).splitlines()[0] if str(e) else type(e).__name__)
            stop.wait(2.0)
            continue
        if not n:
            stop.wait(idle)
        elif arrived and 0 < surge_duty < 1:
            stop.wait((time.monotonic() - t0) * (1 / surge_duty - 1))


def start_writer(svc) -> threading.Event:
    """Run the writer in a daemon thread of this process (tests); returns the event that stops it."""
    stop = threading.Event()
    threading.Thread(target=run_writer, args=(svc, stop), name="gridgov-intake-writer", daemon=True).start()
    return stop


def _writer_process(dsn: str, nice: int) -> None:
    import os
    import signal

    from cases.service import CaseService
    from gis.db import Database

    global _backend_nice
    os.nice(nice)   # acceptances first: in a surge the backlog waits, the callers do not
    _backend_nice = nice
    try:
        with open("/proc/self/comm", "w") as f:   # `ps` and tests tell it from the server's workers
            f.write("gridgov-writer")
    except OSError:
        pass
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db = Database(dsn, maxconn=3)
    try:
        run_writer(CaseService(db), stop)
    finally:
        db.close()


def start_writer_process(dsn: str, nice: int = 10):
    """The writer as a child process at a lower CPU priority (`serve` starts one; with gunicorn the workers
    then spend the CPU on acceptances and reads while the writer takes what is left). Forked before the
    server's own connections exist in the caller's use; the child opens its own and never touches the
    parent's. Returns the multiprocessing.Process (terminate() stops it)."""
    import multiprocessing

    proc = multiprocessing.get_context("fork").Process(target=_writer_process, args=(dsn, nice),
                                                       name="gridgov-intake-writer", daemon=True)
    proc.start()
    return proc
