"""`serve` runs gunicorn with several worker processes; a worker's death never stops the embedded database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from gis.cluster import free_port
from gis.errors import ConfigError
from gis.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _wait_health(base: str, proc, timeout: float = 90) -> dict:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        assert proc.poll() is None, proc.stderr.read()
        try:
            return _get(base + "/api/health")
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not come up")


def test_settings_choose_the_server():
    s = load_settings({"GRIDGOV_WORKERS": "3", "GRIDGOV_THREADS": "2"})
    assert (s.server, s.workers, s.threads) == ("gunicorn", 3, 2)
    assert load_settings({"GRIDGOV_SERVER": "Waitress"}).server == "waitress"
    with pytest.raises(ConfigError, match="GRIDGOV_SERVER"):
        load_settings({"GRIDGOV_SERVER": "apache"})
    with pytest.raises(ConfigError, match="WORKERS"):
        load_settings({"GRIDGOV_WORKERS": "0"})


@contextmanager
def _serving(**settings):
    """`python -m gis serve` on a free port with its own embedded database; yields (url, proc, result) and
    after the SIGINT stop fills result["db_status"] (what `db status` says) and result["returncode"]."""
    base = tempfile.mkdtemp(prefix="gridgov-serve-")
    os.chmod(base, 0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_DATABASE_URL")}
    env.update(GRIDGOV_DATA_DIR=f"{base}/data", GRIDGOV_PORT=str(port), GRIDGOV_WORKERS="2", GRIDGOV_THREADS="2",
               **{f"GRIDGOV_{k.upper()}": str(v) for k, v in settings.items()})
    proc = subprocess.Popen([sys.executable, "-m", "gis", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    result: dict = {"env": env}
    try:
        yield f"http://127.0.0.1:{port}", proc, result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            result["db_status"] = subprocess.run([sys.executable, "-m", "gis", "db", "status"], cwd=ROOT, env=env,
                                                 capture_output=True, text=True, timeout=60).stdout
            subprocess.run(["rm", "-rf", base])
            result["returncode"] = proc.returncode


def test_gunicorn_workers_serve_and_survive_each_other():
    with _serving() as (url, proc, result):
        health = _wait_health(url, proc)
        assert health["status"] == "ok"
        workers = _children(proc.pid)
        writer = [c for c in workers if Path(f"/proc/{c}/comm").read_text().strip() == "gridgov-writer"]
        gworkers = [c for c in workers if c not in writer and "postgres" not in Path(
            f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        assert len(gworkers) == 2, workers              # two gunicorn workers under the serve process
        assert len(writer) == 1 and os.getpriority(os.PRIO_PROCESS, writer[0]) == 10   # the queue's writer, niced
        os.kill(gworkers[0], signal.SIGKILL)            # a worker dies: gunicorn replaces it ...
        time.sleep(1.5)
        for _ in range(10):                             # ... and the database is still there for all of them
            assert _get(url + "/api/health")["status"] == "ok"
    assert result["returncode"] == 0, proc.stderr.read()[-2000:]
    assert result["db_status"].strip().endswith("stopped"), result["db_status"]   # stopped with us


def test_serve_registers_queued_submissions_with_its_writer():
    """`serve` runs the queue's writer beside the server: a submission handed over to POST /api/submissions is
    taken out of the queue (registered, or rejected with its reason: this database holds no city) without any
    other command; with GRIDGOV_INTAKE_WRITER=0 there is no writer process."""
    with _serving() as (url, proc, result):
        _wait_health(url, proc)
        env = result["env"]
        run = [sys.executable, "-m", "gis", "users"]
        cp = subprocess.run([*run, "create", "--username", "q", "--password", "password123", "--role", "dispatcher",
                             "--region", "990100"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        token = subprocess.run([*run, "token", "--username", "q"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=120).stdout.strip()
        req = urllib.request.Request(url + "/api/submissions", method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            data=json.dumps({"channel": "hotline_12345", "kind": "求决", "title": "路灯不亮",
                             "submission_key": "serve-1"}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
            accepted = json.loads(r.read())
        assert accepted["status"] == "queued" and accepted["case_no"].startswith("GG")
        state = None
        for _ in range(120):
            st = urllib.request.Request(url + "/api/submissions/serve-1", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(st, timeout=10) as r:
                state = json.loads(r.read())
            if state["status"] != "queued":
                break
            time.sleep(0.5)
        assert state["status"] in ("registered", "rejected"), state
        assert state["case_no"] == accepted["case_no"]
    assert result["returncode"] == 0, proc.stderr.read()[-2000:]
    with _serving(intake_writer=0) as (url, proc, result):
        _wait_health(url, proc)
        names = [Path(f"/proc/{c}/comm").read_text().strip() for c in _children(proc.pid)]
        assert "gridgov-writer" not in names, names


def _stall(port: int, payload: bytes):
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    return s


def _closed_by_server(s, within: float) -> bool:
    """True when the server closes (or resets) the socket within `within` seconds."""
    s.settimeout(within)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError:                                  # socket.timeout: still open
        return False


@pytest.mark.parametrize("server", ["gunicorn", "waitress"])
def test_half_sent_requests_do_not_stop_the_server(server):
    """Issue 8: 120 half-sent requests stopped the server answering and a Content-Length larger than the
    body hung a thread for ever. With a 2 s read timeout, 150 stalled clients (partial headers; a body
    shorter than announced) leave the server answering others at once, and each stalled socket is closed."""
    stalled = []
    with _serving(server=server, read_timeout=2) as (url, proc, result):
        port = int(url.rsplit(":", 1)[1])
        _wait_health(url, proc)
        for i in range(140):                         # headers never finished
            stalled.append(_stall(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * i))
        for _ in range(10):                          # a body shorter than its Content-Length
            stalled.append(_stall(port, b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"user"))
        t0 = time.monotonic()
        for _ in range(5):                           # everyone else is still served
            assert _get(url + "/api/health")["status"] == "ok"
        assert time.monotonic() - t0 < 15
        # every stalled socket is closed by the server within the read timeout (plus the sweep interval)
        deadline = time.monotonic() + 20
        open_ = list(stalled)
        while open_ and time.monotonic() < deadline:
            open_ = [s for s in open_ if not _closed_by_server(s, 0.05)]
            time.sleep(0.2)
        assert not open_, f"{len(open_)} of {len(stalled)} stalled connections still open after 20 s"
        assert _get(url + "/api/health")["status"] == "ok"
        for sock in stalled:
            sock.close()
    assert result["returncode"] == 0, proc.stderr.read()[-2000:]


def test_read_timeout_setting_is_bounded():
    assert load_settings({"GRIDGOV_READ_TIMEOUT": "7"}).read_timeout == 7
    with pytest.raises(ConfigError, match="READ_TIMEOUT"):
        load_settings({"GRIDGOV_READ_TIMEOUT": "0"})


def test_request_end_waits_for_headers_and_the_announced_body():
    from gis.serve import MAX_GATED_BODY, MAX_HEADER_BYTES, request_end
    head = b"POST /api/cases HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
    assert request_end(b"GET / HTTP/1.1\r\nHost: x\r\n") is None            # headers unfinished
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert request_end(get) == request_end(get + b"GET /next") == len(get)    # no body announced
    assert request_end(b"GET / HTTP/1.1\nHost: x\n\n") == 24                  # bare LF lines
    assert request_end(head + b"abc") is None                                 # body shorter than announced
    assert request_end(head + b"abcde") == len(head) + 5
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_end(chunked + b"5\r\nab") == len(chunked)                  # chunked: the parser reads it
    huge = f"POST / HTTP/1.1\r\nContent-Length: {MAX_GATED_BODY + 1}\r\n\r\n".encode()
    assert request_end(huge) == len(huge)                                     # not waited for: the app says 413
    assert request_end(b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER_BYTES + 1)) is not None
