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


def test_gunicorn_workers_serve_and_survive_each_other():
    base = tempfile.mkdtemp(prefix="gridgov-serve-")
    os.chmod(base, 0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRIDGOV_DATABASE_URL")}
    env.update(GRIDGOV_DATA_DIR=f"{base}/data", GRIDGOV_PORT=str(port), GRIDGOV_WORKERS="2", GRIDGOV_THREADS="2")
    proc = subprocess.Popen([sys.executable, "-m", "gis", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        health = _wait_health(url, proc)
        assert health["status"] == "ok"
        workers = _children(proc.pid)
        gworkers = [c for c in workers if "postgres" not in Path(f"/proc/{c}/cmdline").read_bytes().decode(
            errors="replace")]
        assert len(gworkers) == 2, workers              # two gunicorn workers under the serve process
        os.kill(gworkers[0], signal.SIGKILL)            # a worker dies: gunicorn replaces it ...
        time.sleep(1.5)
        for _ in range(10):                             # ... and the database is still there for all of them
            assert _get(url + "/api/health")["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            stop = subprocess.run([sys.executable, "-m", "gis", "db", "status"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
            subprocess.run(["rm", "-rf", base])
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    assert stop.stdout.strip().endswith("stopped"), stop.stdout   # the embedded server stopped with us
