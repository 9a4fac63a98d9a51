"""gridgov's command line: `python -m gis COMMAND` (the ./gridgov script wraps it).

Every error ends as one line on stderr and a non-zero exit; commands that write are explicit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gis.errors import GridgovError
from gis.settings import load_settings

CST = ZoneInfo(os.environ.get("GRIDGOV_TIMEZONE") or "Asia/Shanghai")   # the deployment's local time


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(f"[gridgov] {msg}", file=sys.stderr, flush=True)


class Progress:
    """Rate-limited progress for long loops: `step(done)` prints at most every `every` seconds."""

    def __init__(self, label: str, total: int | None = None, every: float = 2.0):
        self.label, self.total, self.every = label, total, every
        self.t0 = self.last = time.monotonic()

    def step(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        pct = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total:,}" if self.total else ""
        log(f"{self.label}: {done:,}{of}{pct}, {rate:,.0f}/s")


def _runtime(settings, migrate=True):
    from gis.runtime import open_database

    return open_database(settings, log=log, apply_migrations=migrate)


def cmd_config(args, settings):
    for k, v in settings.describe().items():
        print(f"{k} = {v}")


def cmd_db(args, settings):
    from gis.cluster import EmbeddedCluster

    if settings.database_url:
        from gis.db import check_connect
        from gis.settings import redact_dsn

        check_connect(settings.database_url).close()
        print(f"external database {redact_dsn(settings.database_url)} is reachable")
        return
    c = EmbeddedCluster(settings.data_dir, port=settings.db_port, run_as=settings.pg_user, log=log)
    if args.action == "start":
        print(c.start())
    elif args.action == "stop":
        c.stop()
    else:
        port = c.running_port()
        print(f"embedded cluster {c.pgdata}: " + (f"running on 127.0.0.1:{port}" if port else "stopped"))


def _with_dsns(settings, fn):
    """Run fn(app_dsn, owner_dsn, cluster), stopping the embedded server afterwards if we started it."""
    from gis.runtime import database_dsns

    dsn, owner_dsn, cluster = database_dsns(settings, log=log)
    try:
        return fn(dsn, owner_dsn, cluster)
    finally:
        if cluster is not None and cluster.started_here:
            cluster.stop()


def cmd_backup(args, settings):
    from gis.backup import backup

    size = _with_dsns(settings, lambda dsn, owner_dsn, cluster: backup(owner_dsn, args.file))
    print(f"backup written to {args.file} ({size:,} bytes, pg_dump custom format, mode 0600); "
          f"restore with: ./gridgov restore {args.file}")


def cmd_restore(args, settings):
    from gis.backup import restore
    from gis.errors import BadInput
    from gis.migrate import migrate

    def run(dsn, owner_dsn, cluster):
        if args.replace:
            if cluster is None:
                raise BadInput("--replace works on the embedded cluster only: with DATABASE_URL, restore into a "
                               "new empty database")
            log("dropping the current database (--replace)")
            cluster.recreate_database()
        restore(owner_dsn, args.file)
        migrate(owner_dsn, log=log)

    _with_dsns(settings, run)
    print(f"restored {args.file}; check the event log with: ./gridgov audit verify")


def cmd_migrate(args, settings):
    rt = _runtime(settings)
    rt.close()
    log("schema is up to date")


def _step_logger():
    """A progress callback for build_city that prints each step once and then at most every 2 s."""
    state = {"step": None, "t": 0.0}

    def cb(step, i=None, n=None):
        now = time.monotonic()
        if step != state["step"] or now - state["t"] > 2 or (n and i == n - 1):
            state.update(step=step, t=now)
            log(f"  {step}" + (f" {i + 1}/{n}" if i is not None and n else ""))

    return cb


def ensure_demo(rt, n_cases: int, seed: int, force: bool = False) -> None:
    """Build and load the demo city and a year of cases through the loop unless they are already there."""
    from cases.setup import DEMO_PASSWORD, seed_demo_users, seed_routing_rules
    from grids.store import city_loaded, load_city

    db = rt.db
    city = None
    if not city_loaded(db) or force:
        from fixtures.city import build_city

        log("building the demo city (四平市) …")
        t = time.monotonic()
        city = build_city(seed=seed, progress=_step_logger())
        log(f"built in {time.monotonic() - t:.1f}s: {city.summary()}")
        load_city(db, city, source=f"demo seed={seed}", progress=log)
    if seed_routing_rules(db):
        log("seeded the default routing rules")
    have = db.fetchone("SELECT count(*) AS n FROM case_record")["n"]
    if have == 0 and n_cases > 0:
        from cases.simulate import Simulator, load_simulated, publish_history
        from fixtures.cases import generate_cases
        from fixtures.city import build_city

        city = city or build_city(seed=seed)
        now = datetime.now(CST).replace(microsecond=0)
        start = now - timedelta(days=365)
        sim = Simulator.from_db(db, now=now)
        p = Progress("running a year of synthetic cases through the loop", n_cases)
        total = load_simulated(db, sim, generate_cases(city, n_cases, start, now, seed=seed, now=now),
                               progress=p.step)
        p.step(total, force=True)
        db.execute("SELECT analyze_table('case_record'), analyze_table('case_event')")
        # the months the city has already closed: frozen 三率 / 四色码 snapshots and their consequences
        publish_history(db, start, now, progress=log)
    else:
        log(f"reusing {have:,} cases already loaded")
    users = seed_demo_users(db)
    if users:
        log("demo users (password {}): {}".format(DEMO_PASSWORD, ", ".join(f"{u['username']} ({u['role_label']})"
                                                                        for u in users)))


def cmd_build_city(args, settings):
    rt = _runtime(settings)
    try:
        ensure_demo(rt, 0, args.seed or settings.seed)
    finally:
        rt.close()


def cmd_load_cases(args, settings):
    from cases.simulate import Simulator, load_simulated
    from fixtures.cases import generate_cases
    from fixtures.city import build_city

    rt = _runtime(settings)
    try:
        gen_row = rt.db.fetchone("SELECT id FROM generation WHERE active")
        if not gen_row:
            raise GridgovError("no city loaded: run `python -m gis build-city` first")
        city = build_city(seed=settings.seed)
        end = datetime.fromisoformat(args.end).replace(tzinfo=CST) if args.end else datetime.now(CST)
        start = datetime.fromisoformat(args.start).replace(tzinfo=CST) if args.start else end - timedelta(days=365)
        p = Progress("loading cases", args.n)
        total = load_simulated(rt.db, Simulator.from_db(rt.db, now=end),
                               generate_cases(city, args.n, start, end, seed=args.seed, now=end), progress=p.step)
        p.step(total, force=True)
    finally:
        rt.close()


def _start_intake_writer(dsn: str, settings):
    """Queued submissions (POST /api/submissions) are registered by a writer process beside the server, at a
    lower CPU priority (cases.queue); GRIDGOV_INTAKE_WRITER=0 leaves it to a separate `intake-writer`."""
    if not settings.intake_writer:
        return None
    from cases.queue import start_writer_process

    return start_writer_process(dsn)


def _stop_intake_writer(proc) -> None:
    if proc is not None and proc.is_alive():
        proc.terminate()
        proc.join(15)


def cmd_serve(args, settings, demo: bool = False):
    from gis.cluster import port_in_use

    if port_in_use(settings.port, settings.host if settings.host not in ("0.0.0.0", "") else "127.0.0.1"):
        raise GridgovError(f"port {settings.port} on {settings.host} is in use (is gridgov already running?): "
                           f"stop it or set GRIDGOV_PORT")
    rt = _runtime(settings)
    writer = None
    try:
        if demo:
            ensure_demo(rt, settings.demo_cases if args.cases is None else args.cases, settings.seed)
        if settings.server == "gunicorn":
            from gis.serve import run_gunicorn

            dsn = rt.db.dsn

            def make_app():
                from gis.db import Database
                from webmap import create_app
                from webmap.fastpath import warm

                app = create_app(settings=settings, db=Database(dsn, maxconn=settings.db_pool_max))
                warm(app)   # before this worker takes connections
                return app

            rt.db.close()   # the parent keeps no connections across the fork
            from webmap import priority

            priority.share_across_processes()   # every worker sees the reads in flight in all of them
            writer = _start_intake_writer(dsn, settings)
            run_gunicorn(settings, make_app, on_start=lambda: log(
                f"serving on http://{settings.host}:{settings.port} with gunicorn ({settings.workers} workers × "
                f"{settings.threads} threads; Ctrl-C stops; the embedded database stops too)"))
            return
        from webmap import create_app

        writer = _start_intake_writer(rt.db.dsn, settings)
        app = create_app(settings=settings, db=rt.db)
        from waitress import create_server

        from webmap.fastpath import warm

        warm(app)

        server = create_server(app, host=settings.host, port=settings.port, threads=settings.threads,
                               channel_timeout=settings.read_timeout,
                               cleanup_interval=max(1, settings.read_timeout // 3))
        def _stop(*_):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)  # also when started in the background with SIGINT ignored
        log(f"serving on http://{settings.host}:{settings.port}  (Ctrl-C stops; the embedded database stops too)")
        try:
            server.run()
        except (KeyboardInterrupt, OSError):
            pass
    except OSError as e:
        raise GridgovError(f"cannot serve on {settings.host}:{settings.port}: {e.strerror}") from None
    finally:
        _stop_intake_writer(writer)
        rt.close(stop_cluster=not args.keep_db)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridgov", description="gridgov — 网格化社会治理 GIS platform")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("config", help="print the settings (secrets redacted)").set_defaults(fn=cmd_config)
    d = sub.add_parser("db", help="manage the embedded PostgreSQL cluster")
    d.add_argument("action", choices=["start", "stop", "status"])
    d.set_defaults(fn=cmd_db)
    sub.add_parser("migrate", help="apply pending schema migrations").set_defaults(fn=cmd_migrate)
    bk = sub.add_parser("backup", help="write a backup of the database (pg_dump custom format) to FILE")
    bk.add_argument("file")
    bk.set_defaults(fn=cmd_backup)
    rs = sub.add_parser("restore", help="restore a backup FILE into an empty database")
    rs.add_argument("file")
    rs.add_argument("--replace", action="store_true", help="embedded cluster: drop the current database first")
    rs.set_defaults(fn=cmd_restore)
    b = sub.add_parser("build-city", help="build and load the demo city unless already loaded")
    b.add_argument("--seed", type=int)
    b.set_defaults(fn=cmd_build_city)
    lc = sub.add_parser("load-cases", help="generate and load N synthetic cases")
    lc.add_argument("--n", type=int, required=True)
    lc.add_argument("--seed", type=int, default=11)
    lc.add_argument("--start")
    lc.add_argument("--end")
    lc.set_defaults(fn=cmd_load_cases)
    for name, demo in (("serve", False), ("demo", True)):
        s = sub.add_parser(name, help="serve the web app" + (" with the demo city loaded" if demo else ""))
        s.add_argument("--cases", type=int, default=None, help="synthetic cases to load on first run")
        s.add_argument("--keep-db", action="store_true", help="leave the embedded database running on exit")
        s.set_defaults(fn=lambda a, st, demo=demo: cmd_serve(a, st, demo=demo))
    from gis.cli_ext import register

    register(sub)
    return p


def main(argv=None) -> int:
    """Entry point; returns the exit code."""
    import logging
    import warnings

    from cases.calendar import CalendarFallbackWarning

    warnings.formatwarning = lambda message, category, *a, **k: f"[gridgov] warning: {message}\n"
    warnings.simplefilter("once")
    warnings.simplefilter("ignore", CalendarFallbackWarning)  # the calendar logs it already
    logging.basicConfig(level=logging.WARNING, format="[gridgov] warning: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        args.fn(args, settings)
        return 0
    except GridgovError as e:
        print(f"gridgov: error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gridgov: interrupted", file=sys.stderr)
        return 130
