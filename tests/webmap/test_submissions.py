"""Queued intake (POST /api/submissions, cases.queue) on real PostGIS: accepted at once with the case number and
the grid, registered by the writer exactly as POST /api/cases registers, idempotent, refused with the same 400s;
and the WSGI fast path (webmap.fastpath) answers exactly as the Flask route does."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from cases.auth import authenticate, create_token, create_user
from cases.queue import drain, start_writer
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

RECEIVED = "2026-11-02T09:30:00+08:00"
CASE = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "小区噪音扰民",
        "content": "<script>alert(1)</script>夜间施工", "reporter_name": "王小明", "reporter_phone": "13700001111",
        "lon": X0 + 0.004, "lat": Y0 + 0.005, "received_at": RECEIVED}
# what a registered case is, apart from its identity and number
SAME = ("channel", "kind", "category_code", "title", "content", "reporter_name", "reporter_phone", "grid_code",
        "generation", "village_code", "township_code", "county_code", "status", "received_at", "accepted_at",
        "dispatched_at", "handling_level", "handler_region", "lead_department", "co_departments", "officer_code",
        "routing", "near_boundary", "needs_pin", "deadline_profile", "sign_due_at", "reply_due_at",
        "accept_due_at", "handle_due_at", "submission_hash", "lon", "lat")


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", "password123", "dispatcher", "990100")
    create_user(db, "disp2", "password123", "dispatcher", "990100")
    create_user(db, "off1", "password123", "grid_officer", "990101001001", grid_code="990101001001001")
    create_user(db, "zj", "password123", "department", "990101", department_code="990101-ZJ")
    return create_app(settings=Settings(secret_key="test"), db=db)


def client(app, db, username, permissions=None):
    c = app.test_client()
    tok = create_token(db, authenticate(db, username, "password123"), "t", permissions=permissions)["token"]
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tok}"
    return c


def svc(app) -> CaseService:
    return app.extensions.setdefault("gridgov_cases", CaseService(app.extensions["gridgov_db"]))


def case_row(db, case_no):
    return db.fetchone("SELECT *, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM case_record WHERE case_no = %s",
                       (case_no,))


def queue_size(db) -> int:
    return db.fetchone("SELECT count(*) AS n FROM submission_queue")["n"]


def test_a_queued_submission_becomes_the_case_a_direct_intake_makes(app, db):
    d = client(app, db, "disp")
    r = d.post("/api/submissions", json={**CASE, "submission_key": "Q1"})
    assert r.status_code == 202, r.json
    acc = r.json
    assert acc["status"] == "queued" and acc["grid_code"] == "990101001001001" and acc["needs_pin"] is False
    assert acc["case_no"].startswith("GG20261102") and acc["submission_key"] == "Q1"
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert d.get("/api/submissions/Q1").json["status"] == "queued"
    assert case_row(db, acc["case_no"]) is None                      # not a case yet

    assert drain(svc(app)) == 1
    st = d.get("/api/submissions/Q1").json
    assert st["status"] == "registered" and st["case_no"] == acc["case_no"] and st["case_status"] == "dispatched"
    queued = case_row(db, acc["case_no"])
    assert queued["id"] == st["case_id"] and queued["submission_key"] == "Q1"
    # the same submission through POST /api/cases: the same case in every respect but its number
    direct = d.post("/api/cases", json={**CASE, "submission_key": "D1"})
    assert direct.status_code == 201, direct.json
    direct = case_row(db, direct.json["case_no"])
    assert {k: queued[k] for k in SAME} == {k: direct[k] for k in SAME}
    events = "SELECT action, actor_role, from_state, to_state, at FROM case_event WHERE case_id = %s ORDER BY seq"
    assert db.fetchall(events, (queued["id"],)) == db.fetchall(events, (direct["id"],))
    # the case holds the reporter's data now: the queue's copy is gone
    row = db.fetchone("SELECT payload, state, processed_at FROM submission_queue WHERE submission_key = 'Q1'")
    assert row["payload"] is None and row["state"] == "registered" and row["processed_at"] is not None
    # the officer of the grid sees it in the list, as any case
    o = app.test_client()
    o.post("/api/login", json={"username": "off1", "password": "password123"})
    assert queued["id"] in {c["id"] for c in o.get("/api/cases?open=1").json["cases"]}


def test_replays_conflicts_and_keys_of_direct_cases(app, db):
    d = client(app, db, "disp")
    first = d.post("/api/submissions", json={**CASE, "submission_key": "Q2"}).json
    again = d.post("/api/submissions", json={**CASE, "submission_key": "Q2"})
    assert again.status_code == 200 and again.json["duplicate_submission"] is True
    assert again.json["case_no"] == first["case_no"] and again.json["status"] == "queued"
    other = d.post("/api/submissions", json={**CASE, "title": "别的事", "submission_key": "Q2"})
    assert other.status_code == 409 and other.json["error"]["field"] == "submission_key"
    drain(svc(app))
    again = d.post("/api/submissions", json={**CASE, "submission_key": "Q2"})
    assert again.status_code == 200 and again.json["status"] == "registered"
    # another account reusing the key learns nothing of the first one's submission
    e = client(app, db, "disp2")
    r = e.post("/api/submissions", json={**CASE, "submission_key": "Q2"})
    assert r.status_code == 200 and r.json == {"duplicate_submission": True, "submission_key": "Q2"}
    assert e.get("/api/submissions/Q2").status_code == 404
    # a key a direct intake used: answered as POST /api/cases answers its replay, nothing queued
    direct = d.post("/api/cases", json={**CASE, "submission_key": "D2"}).json
    n = queue_size(db)
    r = d.post("/api/submissions", json={**CASE, "submission_key": "D2"})
    assert r.status_code == 200 and r.json["duplicate_submission"] is True and r.json["id"] == direct["id"]
    assert d.post("/api/submissions", json={**CASE, "title": "另一件", "submission_key": "D2"}).status_code == 409
    assert queue_size(db) == n
    # without a key the server makes one (every call is then a new submission)
    a = d.post("/api/submissions", json=CASE).json
    b = d.post("/api/submissions", json=CASE).json
    assert a["submission_key"] != b["submission_key"] and a["case_no"] != b["case_no"]


@pytest.mark.parametrize("change, field", [
    ({"title": None}, "title"), ({"category_code": "XX99"}, "category_code"), ({"lon": "abc"}, "lon"),
    ({"lon": X0 + 3.0}, "lon"), ({"kind": "闲聊"}, "kind"), ({"received_at": "昨天"}, "received_at"),
    ({"accused_units": "住建局"}, "accused_units")])
def test_bad_submissions_get_the_same_4xx_as_direct_intake_and_nothing_is_queued(app, db, change, field):
    d = client(app, db, "disp")
    body = {k: v for k, v in {**CASE, **change}.items() if v is not None}
    q = d.post("/api/submissions", json=body)
    direct = d.post("/api/cases", json=body)
    assert q.status_code == direct.status_code and 400 <= q.status_code < 500, (q.json, direct.json)
    assert q.json == direct.json and q.json["error"]["field"] == field
    assert queue_size(db) == 0


def test_a_point_outside_the_grids_waits_for_a_pin_as_a_direct_case_does(app, db):
    d = client(app, db, "disp")
    near = {**CASE, "lon": X0 - 0.01, "lat": Y0 + 0.005}          # 800 m west of the city's grids
    r = d.post("/api/submissions", json={**near, "submission_key": "P1"})
    assert r.status_code == 202 and r.json["grid_code"] is None and r.json["needs_pin"] is True
    drain(svc(app))
    direct = d.post("/api/cases", json={**near, "submission_key": "P2"}).json
    queued = case_row(db, r.json["case_no"])
    direct = case_row(db, direct["case_no"])
    assert queued["needs_pin"] and {k: queued[k] for k in SAME} == {k: direct[k] for k in SAME}


def test_the_fast_path_answers_as_the_flask_route_does(app, db, monkeypatch):
    """Every kind of answer, once through the WSGI fast path and once through Flask (fast path off): the same
    status and JSON (but for the keys, numbers and times each call makes), and the fast path really ran."""
    from webmap import fastpath

    ran = []
    real = fastpath.SubmissionFastPath._accept
    monkeypatch.setattr(fastpath.SubmissionFastPath, "_accept", lambda self, env: ran.append(1) or real(self, env))
    full = client(app, db, "disp")
    read_only = client(app, db, "disp", permissions=["read"])
    bad_token = app.test_client()
    bad_token.environ_base["HTTP_AUTHORIZATION"] = "Bearer ggt_not-a-token"
    dept = client(app, db, "zj")
    volatile = ("case_no", "received_at", "accepted_at", "href", "submission_key")

    def calls(tag):
        yield full, {"json": {**CASE, "submission_key": f"F-{tag}"}}                    # queued
        yield full, {"json": {**CASE, "submission_key": f"F-{tag}"}}                    # replay
        yield full, {"json": {**CASE, "title": "x", "submission_key": f"F-{tag}"}}      # conflict
        yield full, {"json": {**CASE, "title": ""}}                                     # bad field
        yield full, {"data": b"{not json", "content_type": "application/json"}          # not JSON
        yield full, {"json": [1, 2]}                                                    # not an object
        yield full, {"data": b'{"a": NaN}', "content_type": "application/json"}         # refused constant
        yield read_only, {"json": CASE}                                                 # token lacks intake
        yield bad_token, {"json": CASE}                                                 # unknown token
        yield dept, {"json": CASE}                                                      # role may not register

    def answers(tag):
        out = []
        for c, kw in calls(tag):
            r = c.post("/api/submissions", **kw)
            body = r.json
            if isinstance(body, dict):
                body = json.loads(json.dumps({k: v for k, v in body.items() if k not in volatile},
                                             ensure_ascii=False).replace(f"F-{tag}", "F-*"))
            out.append((r.status_code, body, r.headers.get("Cache-Control"),
                        r.headers.get("X-Content-Type-Options")))
        return out

    fast = answers("fast")
    assert len(ran) == 10
    app.config["SUBMISSIONS_FAST_PATH"] = False
    slow = answers("slow")
    assert len(ran) == 10
    assert [s for s, *_ in fast] == [202, 200, 409, 400, 400, 400, 400, 403, 401, 403]
    assert fast == slow


def test_the_writer_rejects_what_cannot_become_a_case_and_registers_the_rest(app, db):
    d = client(app, db, "disp")
    keys = [f"W{i}" for i in range(5)]
    for k in keys:
        assert d.post("/api/submissions", json={**CASE, "submission_key": k}).status_code == 202
    # after acceptance the city retires the category of one of them: it can no longer be registered as sent
    db.execute("UPDATE submission_queue SET payload = jsonb_set(payload, '{category_code}', '\"GONE\"') "
               "WHERE submission_key = 'W2'")
    assert drain(svc(app)) == 5
    states = {r["submission_key"]: r["state"] for r in db.fetchall("SELECT submission_key, state FROM "
                                                                    "submission_queue")}
    assert states == {**{k: "registered" for k in keys}, "W2": "rejected"}
    st = d.get("/api/submissions/W2").json
    assert st["status"] == "rejected" and st["error"]["field"] == "category_code" and "case_id" not in st
    assert db.fetchone("SELECT count(*) AS n FROM case_record WHERE submission_key = ANY(%s)", (keys,))["n"] == 4
    assert drain(svc(app)) == 0


def test_the_writer_commits_each_case_on_its_own(app, db, monkeypatch):
    """A case registered from the queue is committed before the writer takes the next one: a batch-long
    transaction would hold a hundred cases' aggregate rows and deadlock with direct intakes."""
    from cases import queue

    d = client(app, db, "disp")
    for k in ("C1", "C2", "C3"):
        d.post("/api/submissions", json={**CASE, "submission_key": k})
    seen = []
    real = queue._register

    def spy(svc_, cur, q, actor):
        # from another connection: what the writer has committed so far
        seen.append(db.fetchone("SELECT count(*) AS n FROM case_record WHERE submission_key IN ('C1', 'C2', "
                                "'C3')")["n"])
        return real(svc_, cur, q, actor)

    monkeypatch.setattr(queue, "_register", spy)
    assert drain(svc(app)) == 3
    assert seen == [0, 1, 2]


def test_a_case_outside_the_tokens_region_answers_only_the_essentials(app, db):
    """As POST /api/cases: a token narrowed to one township hands over a point in the other; the case is
    registered, and where it stands says only that (no grid, department or level of another jurisdiction)."""
    c = app.test_client()
    tok = create_token(db, authenticate(db, "disp", "password123"), "t", region="990101001")["token"]
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tok}"
    other = {**CASE, "lon": X0 + 0.03, "lat": Y0 + 0.005, "submission_key": "V1"}   # township 990101002
    assert c.post("/api/submissions", json=other).status_code == 202
    drain(svc(app))
    st = c.get("/api/submissions/V1").json
    assert st["status"] == "registered" and st["visible"] is False
    assert not {"lead_department", "handling_level", "duplicates"} & set(st)
    direct = c.post("/api/cases", json={**other, "submission_key": "V2"}).json
    assert direct["visible"] is False


def test_only_the_submitter_reads_the_status_and_only_intake_roles_submit(app, db):
    d = client(app, db, "disp")
    d.post("/api/submissions", json={**CASE, "submission_key": "S1"})
    assert client(app, db, "disp2").get("/api/submissions/S1").status_code == 404
    z = client(app, db, "zj")          # a department handler does not register cases
    assert z.get("/api/submissions/S1").status_code == 403
    assert z.post("/api/submissions", json=CASE).status_code == 403
    o = client(app, db, "off1")        # a grid officer does (巡查上报), and reads only their own
    assert o.get("/api/submissions/S1").status_code == 404
    assert o.post("/api/submissions", json=CASE).status_code == 202
    assert app.test_client().post("/api/submissions", json=CASE).status_code == 401


def test_a_revoked_token_stops_handing_over_at_once_in_this_process(app, db):
    user = authenticate(db, "disp", "password123")
    tok = create_token(db, user, "t")
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tok['token']}"
    assert c.post("/api/submissions", json=CASE).status_code == 202
    from cases.auth import revoke_token

    revoke_token(db, user, tok["id"])
    assert c.post("/api/submissions", json=CASE).status_code == 401


def test_the_writer_thread_drains_what_arrives(app, db):
    d = client(app, db, "disp")
    stop = start_writer(svc(app))
    try:
        keys = [f"T{i}" for i in range(3)]
        for k in keys:
            d.post("/api/submissions", json={**CASE, "submission_key": k})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(d.get(f"/api/submissions/{k}").json["status"] == "queued"
                                                  for k in keys):
            time.sleep(0.1)
        assert [d.get(f"/api/submissions/{k}").json["status"] for k in keys] == ["registered"] * 3
    finally:
        stop.set()


def test_the_case_is_received_when_the_submission_was(app, db):
    """Deadlines run from the acceptance, not from when the writer got to it."""
    d = client(app, db, "disp")
    body = {k: v for k, v in CASE.items() if k != "received_at"}
    acc = d.post("/api/submissions", json={**body, "submission_key": "R1"}).json
    db.execute("UPDATE submission_queue SET accepted_at = accepted_at - interval '2 hours' "
               "WHERE submission_key = 'R1'")
    time.sleep(0.05)
    drain(svc(app))
    row = case_row(db, acc["case_no"])
    assert row["received_at"] == dt.datetime.fromisoformat(acc["received_at"])


def test_the_writer_lowers_its_database_backends_priority_and_touches_nothing_else(app, db, monkeypatch):
    """In a surge the writer's cost is mostly in its PostgreSQL backend: the writer process renices it (a local
    server only), so acceptances keep their latency; a process that is not a backend, or a remote server, is
    never touched."""
    import os

    import cases.queue as queue

    d = client(app, db, "disp")
    d.post("/api/submissions", json={**CASE, "submission_key": "N1"})
    monkeypatch.setattr(queue, "_backend_nice", 7)
    monkeypatch.setattr(queue, "_reniced", set())
    seen = []
    real = queue._renice_backend
    monkeypatch.setattr(queue, "_renice_backend", lambda dsn, pid, nice: (seen.append(pid), real(dsn, pid, nice)))
    assert drain(svc(app)) == 1
    assert seen and all(os.getpriority(os.PRIO_PROCESS, pid) == 7 for pid in seen)   # the drain's own backend
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        other = cur.fetchone()[0]
    if other not in seen:
        assert os.getpriority(os.PRIO_PROCESS, other) == 0                          # other backends keep theirs
    mine = os.getpriority(os.PRIO_PROCESS, os.getpid())
    real(db.dsn, os.getpid(), mine + 3)                                              # not a backend: untouched
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == mine
    remote = db.dsn.replace("127.0.0.1", "10.9.8.7") if "127.0.0.1" in db.dsn else db.dsn + " host=10.9.8.7"
    pid = next(iter(seen))
    queue._reniced.clear()
    real(remote, pid, 15)                                                            # a remote server: untouched
    assert os.getpriority(os.PRIO_PROCESS, pid) == 7


def test_a_worker_is_warmed_before_it_takes_connections(app, db):
    """serve builds each worker's case service and grid index before the worker accepts (a cold worker made
    its first callers in a surge wait up to a second); the first acceptance then builds nothing."""
    from webmap.fastpath import warm

    assert "gridgov_cases" not in app.extensions
    warm(app)
    warmed = app.extensions["gridgov_cases"]
    gi = warmed._queue_grid_index
    assert gi.generation == db.fetchone("SELECT id FROM generation WHERE active")["id"]
    r = client(app, db, "disp").post("/api/submissions", json=CASE)
    assert r.status_code == 202 and r.json["grid_code"] == "990101001001001"
    assert app.extensions["gridgov_cases"] is warmed and warmed._queue_grid_index is gi


def test_warming_a_worker_without_boundaries_is_not_fatal(db):
    from webmap.fastpath import warm

    app = create_app(settings=Settings(secret_key="test"), db=db)
    warm(app)   # no generation loaded yet: the first acceptance builds what it needs later
    assert getattr(app.extensions.get("gridgov_cases"), "_queue_grid_index", None) is None
