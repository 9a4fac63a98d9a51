"""Load harness: HTTP intake near the database's ceiling, beside pgbench on the same database, same run.

    .venv/bin/python -m bench.load_intake --dsn "<app DSN>" --pgbench-dsn "<owner DSN>" [--connections 8,32]
        [--seconds 20] [--paths queued,sync] [--drain-seconds 600]

Needs a database holding a city (e.g. the demo: `./gridgov build-city`, or a clone of it) and Debian's
`wrk` (apt-get install wrk). Loopback only, bounded in time. Steps:
1. pgbench (4 clients, --seconds; as --pgbench-dsn, which may create the scratch table): INSERT of a point +
   the `ST_Covers` grid lookup with the smallest-code tie-break into a scratch table — the database's ceiling
   for what intake must do at minimum;
2. `python -m gis serve` (gunicorn, --workers × --threads) on a free loopback port, a dispatcher token;
3. wrk POSTs each --paths at each --connections level (random points in one county, 12345 channel):
   `queued` is POST /api/submissions (accepted at once with its case number and grid, registered by the
   writer `serve` runs beside it: cases.queue), `sync` is POST /api/cases (the routed case in the answer);
4. the read endpoints (the officer's list, the wall's KPI panel and township layer; --read-connections readers
   each, --read-pause-ms between two reads of a reader) alone (before any measured intake) and while queued
   intake runs at 8 connections throughout (its own throughput then is reported too);
5. queued: how long the writer takes to register the backlog the run left (bounded by --drain-seconds);
6. the reads alone again, over the cases the run added (the wall counts today's and open cases).
Prints throughput and p50/p95/p99 (from wrk's Lua `done` hook) beside pgbench's TPS; writes JSON to
bench/out/. Cases it creates stay in the database (use a clone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGBIN = Path("/usr/lib/postgresql/15/bin")

WRK_DONE = """
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('GGJSON {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.2f, "p95_ms": %.2f, '
    .. '"p99_ms": %.2f, "max_ms": %.2f, "errors_status": %d, "errors_socket": %d}\\n',
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""

INTAKE_LUA = """
math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16) %% 1000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  local lon = %(x0).6f + math.random() * %(w).6f
  local lat = %(y0).6f + math.random() * %(h).6f
  local body = string.format('{"channel":"hotline_12345","kind":"求决","category_code":"%(cat)s",'
    .. '"title":"压测诉求","content":"load test","lon":%%.6f,"lat":%%.6f}', lon, lat)
  return wrk.format(nil, "%(path)s", nil, body)
end
"""

READ_LUA = """
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function() return wrk.format("GET", "%(path)s") end
"""
# a reader's pause between two reads (wrk's delay hook), in ms
READ_DELAY_LUA = """
delay = function() return %d end
"""

PGBENCH_SQL = """
\\set rx random(0, 1000000)
\\set ry random(0, 1000000)
INSERT INTO bench_intake (geom, grid_code) SELECT p, (SELECT code FROM grid WHERE generation = %(gen)d
  AND ST_Covers(geom, p) ORDER BY code LIMIT 1)
  FROM (SELECT ST_SetSRID(ST_MakePoint(%(x0).6f + :rx * %(w).9f / 1000000,
                                      %(y0).6f + :ry * %(h).9f / 1000000), 4326) p) s;
"""


PATHS = {"queued": "/api/submissions", "sync": "/api/cases"}


def log(msg):
    print(f"[load] {msg}", file=sys.stderr, flush=True)


def run_wrk(url, lua, connections, seconds, threads=2):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua + WRK_DONE)
    try:
        cp = subprocess.run(["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s",
                             "--timeout", "10s", "-s", f.name, url], capture_output=True, text=True,
                            timeout=seconds + 60)
    finally:
        os.unlink(f.name)
    m = re.search(r"GGJSON (\{.*\})", cp.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {cp.stdout[-800:]} {cp.stderr[-800:]}")
    return json.loads(m.group(1))


def run_pgbench(dsn_kv, params, clients, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(PGBENCH_SQL % params)
    try:
        cp = subprocess.run([str(PGBIN / "pgbench"), "-n", "-c", str(clients), "-j", str(min(clients, 2)),
                             "-T", str(seconds), "-f", f.name, dsn_kv],
                            capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(f.name)
    m = re.search(r"tps = ([\d.]+)", cp.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", cp.stdout)
    if not m:
        raise RuntimeError(f"pgbench failed: {cp.stdout[-800:]} {cp.stderr[-800:]}")
    return {"tps": float(m.group(1)), "latency_avg_ms": float(lat.group(1)) if lat else None, "clients": clients}


def _drain(db, limit_s: int) -> dict:
    """Wait (at most limit_s) for the writer to register what the run queued; its rate once arrivals stop."""
    def counts():
        return db.fetchone("SELECT count(*) FILTER (WHERE state = 'queued') AS left, count(*) FILTER (WHERE "
                           "state = 'registered' AND processed_at > %s) AS registered, count(*) FILTER (WHERE "
                           "state = 'rejected' AND processed_at > %s) AS rejected FROM submission_queue",
                           (start_at, start_at))

    start_at = db.fetchone("SELECT now() AS t")["t"]
    t0 = time.monotonic()
    c = counts()
    while c["left"] and time.monotonic() - t0 < limit_s:
        time.sleep(2)
        c = counts()
    secs = time.monotonic() - t0
    return {**c, "seconds": round(secs, 1), "per_second": round(c["registered"] / secs, 1) if secs else 0.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=os.environ.get("DATABASE_URL"), required=not os.environ.get("DATABASE_URL"))
    ap.add_argument("--pgbench-dsn", help="DSN that may create the scratch table (e.g. the owner's; default --dsn)")
    ap.add_argument("--connections", default="8,32")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: GRIDGOV_WORKERS)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--county", help="county code whose extent the points fill (default: the first county)")
    ap.add_argument("--paths", default="queued,sync", help="queued (POST /api/submissions), sync (POST /api/cases)")
    ap.add_argument("--drain-seconds", type=int, default=600, help="how long to wait for the writer's backlog")
    ap.add_argument("--read-connections", type=int, default=2, help="concurrent readers of each read endpoint")
    ap.add_argument("--read-pause-ms", type=int, default=100,
                    help="each reader's pause between two reads (a wall screen polls every 30 s, a phone when "
                         "its officer pulls: 2 readers every 100 ms are hundreds of screens; 0: back to back)")
    args = ap.parse_args(argv)
    if args.seconds > 300:
        ap.error("--seconds is bounded at 300")
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or set(paths) - set(PATHS):
        ap.error(f"--paths takes {', '.join(PATHS)}")
    sys.path.insert(0, str(ROOT))
    from cases.auth import create_user, issue_token
    from gis.cluster import free_port
    from gis.db import Database

    db = Database(args.dsn, maxconn=2)
    gen = db.fetchone("SELECT id FROM generation WHERE active")["id"]
    county = args.county or db.fetchone("SELECT code FROM region WHERE level='county' AND generation=%s "
                                        "ORDER BY code LIMIT 1", (gen,))["code"]
    ext = db.fetchone("SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM (SELECT "
                      "ST_Extent(geom) e FROM grid WHERE generation=%s AND code LIKE %s) s", (gen, county + "%"))
    cat = db.fetchone("SELECT code FROM category WHERE parent_code IS NOT NULL ORDER BY code LIMIT 1")["code"]
    n_cases = db.fetchone("SELECT count(*) n FROM case_record")["n"]
    params = {"x0": ext["x0"], "y0": ext["y0"], "w": ext["x1"] - ext["x0"], "h": ext["y1"] - ext["y0"],
              "gen": gen, "cat": cat}
    user = create_user(db, "load" + secrets.token_hex(3), secrets.token_urlsafe(12), "dispatcher", county[:4] + "00",
                       hash_method="pbkdf2:sha256:1000")
    token = issue_token(db, user, "load harness")
    bench_db = Database(args.pgbench_dsn or args.dsn, maxconn=1)
    bench_db.execute("CREATE TABLE IF NOT EXISTS bench_intake (id bigserial PRIMARY KEY, geom geometry(Point, 4326), "
               "grid_code text, at timestamptz DEFAULT now())")
    results = {"cases_before": n_cases, "county": county, "seconds": args.seconds}
    log(f"pgbench: INSERT + ST_Covers lookup, 4 clients, {args.seconds}s over {n_cases:,} cases")
    results["pgbench"] = run_pgbench(args.pgbench_dsn or args.dsn, params, 4, args.seconds)
    log(f"pgbench: {results['pgbench']}")

    port = free_port()
    env = dict(os.environ, DATABASE_URL=args.dsn, GRIDGOV_PORT=str(port), GRIDGOV_HOST="127.0.0.1")
    if args.workers:
        env["GRIDGOV_WORKERS"] = str(args.workers)
    if args.threads:
        env["GRIDGOV_THREADS"] = str(args.threads)
    srv = subprocess.Popen([sys.executable, "-m", "gis", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=2)
                break
            except OSError:
                if srv.poll() is not None:
                    raise RuntimeError(srv.stderr.read()[-2000:]) from None
                time.sleep(0.3)
        levels = [int(x) for x in args.connections.split(",")]
        reads = {"officer_list": "/api/cases?open=1&limit=50", "wall_kpi": "/api/wall/kpi",
                 "wall_townships": "/api/wall/units?level=township"}
        # warm every worker (gazetteer, reference caches, the queue's grid index): many new connections
        for p in paths:
            run_wrk(base, INTAKE_LUA % {**params, "token": token, "path": PATHS[p]}, max(levels), 2)
        for p in reads.values():
            run_wrk(base, READ_LUA % {"token": token, "path": p}, max(levels), 2)
        if "queued" in paths:
            # the warm-up queued thousands of submissions: let the writer register them first, so that
            # "alone" means alone (the writer's own effect on reads is measured below, during intake)
            results["warmup_drain"] = _drain(db, args.drain_seconds)
            log(f"warm-up backlog: {results['warmup_drain']}")
        # the reads alone, before any measured intake (and before the writer has a backlog)
        rc = results["read_connections"] = args.read_connections
        results["read_pause_ms"] = args.read_pause_ms
        read_lua = READ_LUA + (READ_DELAY_LUA % args.read_pause_ms if args.read_pause_ms > 0 else "")
        results["reads_alone"] = {k: run_wrk(base, read_lua % {"token": token, "path": p}, rc,
                                             max(5, args.seconds // 2)) for k, p in reads.items()}
        log(f"reads alone: {results['reads_alone']}")
        results["intake"] = {}
        for p in paths:
            results["intake"][p] = {}
            for c in levels:
                r = run_wrk(base, INTAKE_LUA % {**params, "token": token, "path": PATHS[p]}, c, args.seconds)
                r["share_of_pgbench"] = round(r["rps"] / results["pgbench"]["tps"], 3)
                results["intake"][p][c] = r
                log(f"{p} intake {c} connections: {r}")
        # reads while intake runs: wrk for intake (queued when measured: the surge path) in the background
        bg_path = "queued" if "queued" in paths else paths[0]
        results["reads_during_path"] = bg_path
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(INTAKE_LUA % {**params, "token": token, "path": PATHS[bg_path]} + WRK_DONE)
        read_s = max(5, args.seconds // 2)
        bg = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{len(reads) * (read_s + 1) + 2}s", "-s", f.name, base],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        results["reads_during_intake"] = {
            k: run_wrk(base, read_lua % {"token": token, "path": p}, rc, read_s) for k, p in reads.items()}
        out_bg, _ = bg.communicate(timeout=len(reads) * (read_s + 1) + 120)
        os.unlink(f.name)
        m = re.search(r"GGJSON (\{.*\})", out_bg)
        results["intake_during_reads"] = json.loads(m.group(1)) if m else None
        log(f"reads during intake: {results['reads_during_intake']}")
        if "queued" in paths:
            results["drain"] = _drain(db, args.drain_seconds)
            log(f"writer: {results['drain']}")
        # the reads again, alone, over what the surge left (the wall counts today's and open cases, which the
        # surge added): what the cases cost, apart from what the running intake costs
        results["reads_after"] = {k: run_wrk(base, read_lua % {"token": token, "path": p}, rc, read_s)
                                  for k, p in reads.items()}
        results["cases_after"] = db.fetchone("SELECT count(*) n FROM case_record")["n"]
        log(f"reads after: {results['reads_after']}")
    finally:
        os.killpg(srv.pid, signal.SIGINT)
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL)
        bench_db.execute("DROP TABLE IF EXISTS bench_intake")
        bench_db.close()
        db.close()
    print(f"cases in the table before the run: {n_cases:,}")
    print(f"pgbench INSERT + ST_Covers (4 clients): {results['pgbench']['tps']:,.0f} TPS")
    for p, levels in results["intake"].items():
        for c, r in levels.items():
            print(f"HTTP intake {p} ({PATHS[p]}), {c:>2} connections: {r['rps']:,.0f} req/s "
                  f"({r['share_of_pgbench']:.0%} of pgbench), p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, errors {r['errors_status'] + r['errors_socket']}")
    if "drain" in results:
        d = results["drain"]
        print(f"writer: {d['registered']:,} queued submissions registered in {d['seconds']:.0f} s "
              f"({d['per_second']:,.0f} cases/s), {d['left']:,} left, {d['rejected']:,} rejected")
    for k in results["reads_alone"]:
        a, b = results["reads_alone"][k], results["reads_during_intake"][k]
        c = results["reads_after"][k]
        print(f"read {k} ({rc} readers, {args.read_pause_ms} ms apart): "
              f"p50 {a['p50_ms']:.1f} / p99 {a['p99_ms']:.1f} ms alone, "
              f"p50 {b['p50_ms']:.1f} / p99 {b['p99_ms']:.1f} ms during intake, "
              f"p50 {c['p50_ms']:.1f} / p99 {c['p99_ms']:.1f} ms alone after ({results['cases_after']:,} cases)")
    bgr = results["intake_during_reads"]
    if bgr:
        print(f"{bg_path} intake at 8 connections while the reads ran: {bgr['rps']:,.0f} req/s, "
              f"p99 {bgr['p99_ms']:.1f} ms")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"load_intake_{n_cases}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
