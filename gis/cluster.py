"""The embedded PostgreSQL + PostGIS cluster gridgov manages when DATABASE_URL is unset.

Like pgserver: `initdb` a cluster under the data folder, start it on a free loopback port, create the
database and stop it cleanly. PostgreSQL refuses to run as root, so when we are root the server runs as
an unprivileged OS user (`postgres` by default) that owns the cluster folder. Every failure ends in a
ConfigError with a one-line explanation.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from gis.errors import ConfigError

SUPERUSER = "gridgov"
DATABASE = "gridgov"


def find_pg_bin() -> Path:
    """The folder holding initdb/pg_ctl/postgres (PostgreSQL 15 preferred)."""
    env = os.environ.get("GRIDGOV_PG_BIN")
    if env:
        if (Path(env) / "initdb").exists() and (Path(env) / "pg_ctl").exists():
            return Path(env)
        raise ConfigError(f"GRIDGOV_PG_BIN={env} does not hold initdb and pg_ctl")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_pg_major, reverse=True)
    candidates.sort(key=lambda p: 0 if "/15/" in p else 1)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise ConfigError(
        "PostgreSQL server binaries not found: install them with "
        "`apt-get install postgresql-15 postgresql-15-postgis-3` or set DATABASE_URL"
    )


def _pg_major(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def postgis_installed(pg_bin: Path) -> bool:
    """True when the PostGIS extension files exist for this PostgreSQL installation."""
    try:
        share = subprocess.run([str(pg_bin / "pg_config"), "--sharedir"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        share = f"/usr/share/postgresql/{pg_bin.parent.name}"
    return Path(share, "extension", "postgis.control").exists()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A currently free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedCluster:
    """A PostgreSQL cluster under `data_dir/pgdata`, started on loopback."""

    def __init__(self, data_dir: Path, port: int | None = None, run_as: str | None = None, log=print):
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.logfile = self.data_dir / "postgres.log"
        self.requested_port = port
        self.port: int | None = None
        self.started_here = False  # only the process that started the server stops it on exit
        self.log = log
        self.is_root = os.geteuid() == 0
        self.run_as = (run_as or "postgres") if self.is_root else None
        self.pg_bin = find_pg_bin()

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, args: list[str], check=True, timeout=120) -> subprocess.CompletedProcess:
        kw = {}
        if self.run_as:
            kw["user"] = self.run_as
            kw["group"] = pwd.getpwnam(self.run_as).pw_gid
            kw["env"] = {**os.environ, "HOME": str(self.data_dir)}
        try:
            cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=str(self.data_dir), **kw)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"{Path(args[0]).name} timed out after {timeout}s (see {self.logfile})") from None
        if check and cp.returncode != 0:
            msg = (cp.stderr or cp.stdout).strip().splitlines()
            tail = msg[-1] if msg else f"exit code {cp.returncode}"
            raise ConfigError(f"{Path(args[0]).name} failed: {tail} (log: {self.logfile})")
        return cp

    def _prepare_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"data folder {self.data_dir} is not writable: {e.strerror}") from None
        if self.run_as:
            try:
                pw = pwd.getpwnam(self.run_as)
            except KeyError:
                raise ConfigError(
                    f"running as root, but OS user {self.run_as!r} to run PostgreSQL does not exist "
                    f"(create it, or set GRIDGOV_PG_USER)") from None
            for p in (self.data_dir, self.pgdata):
                p.mkdir(exist_ok=True)
                os.chown(p, pw.pw_uid, pw.pw_gid)
            if self.logfile.exists():
                os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
            os.chmod(self.pgdata, 0o700)
            cp = subprocess.run(["test", "-w", str(self.pgdata)], user=pw.pw_uid, capture_output=True)
            if cp.returncode != 0:
                raise ConfigError(
                    f"OS user {self.run_as!r} cannot reach {self.pgdata}: make its parent folders "
                    f"traversable (chmod o+x) or choose another GRIDGOV_DATA_DIR")

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running_port(self) -> int | None:
        """Port of a live server on this cluster, or None."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port if port_in_use(port) else None

    # -- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        """initdb the cluster if it does not exist yet."""
        self._prepare_dir()
        if self.initialized:
            return
        if any(self.pgdata.iterdir()):
            raise ConfigError(f"{self.pgdata} exists but is not a PostgreSQL cluster: empty or remove it")
        self.log(f"initdb {self.pgdata}")
        self._run([str(self.pg_bin / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], timeout=180)
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write(
                "\n# gridgov embedded defaults\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 100\n"
                "shared_buffers = 256MB\n"
                "fsync = on\n"
                "synchronous_commit = off\n"
                "max_wal_size = 2GB\n"
                "timezone = 'Asia/Shanghai'\n"
            )

    def start(self) -> str:
        """Start (or reuse) the server; returns a DSN for the gridgov database."""
        if not postgis_installed(self.pg_bin):
            raise ConfigError(
                "PostGIS is not installed for PostgreSQL "
                f"{self.pg_bin.parent.name}: run `apt-get install postgresql-{self.pg_bin.parent.name}-postgis-3`")
        live_before = self.running_port() if self.initialized else None
        if live_before is None and self.requested_port and port_in_use(self.requested_port):
            raise ConfigError(f"port {self.requested_port} (GRIDGOV_DB_PORT) is in use by another "
                              f"program: choose another port or unset GRIDGOV_DB_PORT")
        self.init()
        live = self.running_port()
        if live is not None:
            if self.requested_port and self.requested_port != live:
                raise ConfigError(f"the cluster in {self.pgdata} already runs on port {live}, "
                                  f"not the requested {self.requested_port}: stop it first")
            self.port = live
        else:
            if self.requested_port:
                if port_in_use(self.requested_port):
                    raise ConfigError(f"port {self.requested_port} (GRIDGOV_DB_PORT) is in use by another "
                                      f"program: choose another port or unset GRIDGOV_DB_PORT")
                self.port = self.requested_port
            else:
                self.port = free_port()
            self.log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
            if self.run_as and not self.logfile.exists():
                self.logfile.touch()
                pw = pwd.getpwnam(self.run_as)
                os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
            self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
                       "-o", f"-p {self.port}", "-w", "-t", "60", "start"], timeout=90)
            self.started_here = True
        self._ensure_database()
        return self.dsn

    def _ensure_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(self.admin_dsn, connect_timeout=5)
                break
            except psycopg2.OperationalError as e:
                if time.monotonic() > deadline:
                    raise ConfigError(f"embedded PostgreSQL on port {self.port} does not accept connections: "
                                      f"{str(e).strip().splitlines()[0]}") from None
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown) if it runs."""
        if self.running_port() is None:
            return
        self.log("stopping PostgreSQL")
        self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"],
                  timeout=90)

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={DATABASE}"
