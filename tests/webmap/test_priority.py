"""Reads first during a surge (webmap.priority): intake waits, boundedly, while the wall's, the officers' and
the review's reads are in flight, in any worker process; otherwise it does not wait at all."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from gis.errors import ConfigError
from gis.settings import Settings, load_settings
from webmap import priority


@pytest.fixture(autouse=True)
def fresh_gauge(monkeypatch):
    monkeypatch.setattr(priority, "_gauge", priority._LocalGauge())


class _App:
    def __init__(self, limit):
        self.config = {"READS_FIRST_SECONDS": limit}


def _env(method, path):
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


def _middleware(limit, gate: threading.Event, seen: list):
    def inner(environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"] == "/api/wall/kpi":
            gate.wait(10)                       # a read that takes its time
        seen.append((environ["PATH_INFO"], priority.reads_in_flight()))
        return [b"{}"]
    return priority.ReadsFirst(_App(limit), inner)


def test_intake_waits_while_a_wall_read_is_in_flight_and_not_otherwise(monkeypatch):
    waited = []
    real = priority.yield_to_reads
    monkeypatch.setattr(priority, "yield_to_reads", lambda s: waited.append(real(s)) or waited[-1])
    gate, seen = threading.Event(), []
    mw = _middleware(0.05, gate, seen)

    mw(_env("POST", "/api/submissions"), None)
    assert waited == [0.0]                                   # no reads: no wait at all
    reader = threading.Thread(target=mw, args=(_env("GET", "/api/wall/kpi"), None))
    reader.start()
    try:
        for _ in range(1000):
            if priority.reads_in_flight():
                break
            threading.Event().wait(0.001)
        assert priority.reads_in_flight()
        mw(_env("POST", "/api/submissions"), None)
        mw(_env("POST", "/api/cases"), None)
        assert all(w >= 0.05 for w in waited[1:]) and len(waited) == 3   # held back, up to the limit
        mw(_env("GET", "/api/health"), None)                 # not a priority read: not counted
        mw(_env("POST", "/api/tokens"), None)                # not intake: never waits
        assert len(waited) == 3
    finally:
        gate.set()
        reader.join(10)
    assert not priority.reads_in_flight()                    # the read ended: the count is back to 0
    mw(_env("POST", "/api/submissions"), None)
    assert waited[-1] == 0.0
    assert [p for p, _ in seen] == ["/api/submissions", "/api/submissions", "/api/cases", "/api/health",
                                    "/api/tokens", "/api/wall/kpi", "/api/submissions"]


def test_a_read_that_fails_still_leaves_the_count():
    def inner(environ, start_response):
        raise RuntimeError("boom")

    mw = priority.ReadsFirst(_App(0.05), inner)
    with pytest.raises(RuntimeError):
        mw(_env("GET", "/api/cases"), None)
    assert not priority.reads_in_flight()


def test_zero_turns_it_off():
    priority._gauge.add(1)
    assert priority.reads_in_flight()
    assert priority.yield_to_reads(0) == 0.0


def test_a_leftover_count_stops_holding_intake_back_when_reads_stop(monkeypatch):
    monkeypatch.setattr(priority, "STALE_SECONDS", 0.05)
    priority._gauge.add(1)                                   # a worker died in the middle of a read
    assert priority.reads_in_flight()
    threading.Event().wait(0.1)
    assert not priority.reads_in_flight()
    assert priority.yield_to_reads(0.05) == 0.0


def _child_read(started, release):
    priority._gauge.add(1)
    started.set()
    release.wait(10)
    priority._gauge.add(-1)


def test_the_gauge_is_shared_by_forked_workers():
    priority.share_across_processes()
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_child_read, args=(started, release))
    child.start()
    try:
        assert started.wait(10)
        assert priority.reads_in_flight()                    # a read in another worker process holds intake
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0 and not priority.reads_in_flight()


@pytest.mark.parametrize("raw", ["abc", "-1", "5000"])
def test_a_bad_setting_is_refused(raw):
    with pytest.raises(ConfigError, match="READS_FIRST_MS"):
        load_settings({"GRIDGOV_READS_FIRST_MS": raw})


def test_the_app_puts_it_outermost_with_the_setting(db):
    from webmap import create_app

    app = create_app(settings=Settings(secret_key="t", reads_first_ms=35), db=db)
    assert isinstance(app.wsgi_app, priority.ReadsFirst) and app.config["READS_FIRST_SECONDS"] == 0.035
    assert load_settings({}).reads_first_ms == 20
