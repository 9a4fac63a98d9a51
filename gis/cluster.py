"""The embedded PostgreSQL + PostGIS cluster gridgov manages when DATABASE_URL is unset.

Like pgserver: `initdb` a cluster under the data folder, start it on a loopback port, create the
database and stop it cleanly. PostgreSQL refuses to run as root, so when we are root the server runs as
an unprivileged OS user (`postgres` by default) that owns the cluster folder. Every failure ends in a
ConfigError with a one-line explanation.

Durability and trust (issue 8):
- `synchronous_commit = on`: a commit the app acknowledged is on disk (WAL flushed) before the answer.
- The port is chosen once and recorded in `data_dir/db_port`, so a restart after a crash reuses it and a
  running app's pool simply reconnects.
- Three roles, scram-sha-256 password authentication on loopback only: the bootstrap superuser `gridgov`
  (creates roles, the database and extensions), `gridgov_owner` (owns the database and its schema, runs
  migrations) and `gridgov_app` (what the app connects as: no ownership, no superuser, DML as granted by
  the migrations). Passwords are generated into `data_dir/pgpass` (0600, libpq's passfile format) and
  DSNs only name that file, so a DSN can be printed without revealing anything.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from gis.errors import ConfigError

SUPERUSER = "gridgov"
OWNER = "gridgov_owner"
APP = "gridgov_app"
DATABASE = "gridgov"
PASSFILE = "pgpass"
PORTFILE = "db_port"
CONF_MARKER = "# gridgov embedded defaults"


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


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password`, so the plain text never reaches the server."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def kv_dsn(**parts) -> str:
    """A libpq key=value DSN, values quoted when needed."""
    out = []
    for k, v in parts.items():
        v = str(v)
        if not v or any(c in v for c in " '\\"):
            v = "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{k}={v}")
    return " ".join(out)


def _memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return 2048


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory, between 256 MB and 4 GB (PostgreSQL's usual advice; the server
    touches pages only as it uses them). At 1,000,000 cases and more the case table's indexes stop fitting
    in the old fixed 256 MB and every intake read them from the OS cache."""
    return max(256, min(4096, _memory_mb() // 4))


class EmbeddedCluster:
    """A PostgreSQL cluster under `data_dir/pgdata`, started on loopback."""

    def __init__(self, data_dir: Path, port: int | None = None, run_as: str | None = None, log=print):
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.logfile = self.data_dir / "postgres.log"
        self.passfile = self.data_dir / PASSFILE
        self.portfile = self.data_dir / PORTFILE
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

    def _chown(self, path: Path) -> None:
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

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

    def postmaster_pid(self) -> int | None:
        """Process id of the running postmaster, or None."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    # -- secrets and settings ----------------------------------------------------------------
    def passwords(self) -> dict[str, str]:
        """Role → password from the data folder's passfile (created on first use, mode 0600)."""
        have: dict[str, str] = {}
        if self.passfile.exists():
            for line in self.passfile.read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 5 and not line.startswith("#"):
                    have[parts[3]] = parts[4]
        missing = [r for r in (SUPERUSER, OWNER, APP) if r not in have]
        if missing:
            for r in missing:
                have[r] = secrets.token_hex(24)
            text = "# gridgov embedded cluster passwords (libpq passfile); keep private\n" + "".join(
                f"*:*:*:{r}:{have[r]}\n" for r in (SUPERUSER, OWNER, APP))
            tmp = self.passfile.with_name(PASSFILE + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.passfile)
        return have

    def recorded_port(self) -> int | None:
        """The port this cluster ran on last (data_dir/db_port), or None."""
        try:
            return int(self.portfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _record_port(self, port: int) -> None:
        tmp = self.portfile.with_name(PORTFILE + ".tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, self.portfile)

    def _write_conf(self) -> None:
        """(Re)write gridgov's block at the end of postgresql.conf: durable commits, loopback, scram."""
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        if CONF_MARKER in text:
            text = text[:text.index(CONF_MARKER)].rstrip("\n") + "\n"
        text += (
            f"\n{CONF_MARKER} (rewritten on every start)\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 100\n"
            f"shared_buffers = {shared_buffers_mb()}MB\n"
            f"effective_cache_size = {max(512, _memory_mb() // 2)}MB\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "full_page_writes = on\n"
            "password_encryption = 'scram-sha-256'\n"
            "max_wal_size = 2GB\n"
            "timezone = 'Asia/Shanghai'\n"
            # JIT compiles every partition's expressions of a plan over the monthly partitions (migration 0090):
            # a month's 三率 took 27 s with it at 1,000,000 cases, 4 s without
            "jit = off\n"
        )
        conf.write_text(text)

    def _write_hba(self) -> None:
        (self.pgdata / "pg_hba.conf").write_text(
            "# gridgov: password (scram-sha-256) authentication on loopback only\n"
            "local   all   all                 scram-sha-256\n"
            "host    all   all   127.0.0.1/32  scram-sha-256\n"
            "host    all   all   ::1/128       scram-sha-256\n"
            "host    replication   all   127.0.0.1/32  scram-sha-256\n")

    # -- lifecycle ---------------------------------------------------------------------------
    def init(self) -> None:
        """initdb the cluster if it does not exist yet."""
        self._prepare_dir()
        if self.initialized:
            return
        if any(self.pgdata.iterdir()):
            raise ConfigError(f"{self.pgdata} exists but is not a PostgreSQL cluster: empty or remove it")
        self.log(f"initdb {self.pgdata}")
        pw = self.passwords()
        pwfile = self.data_dir / ".initdb-pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pw[SUPERUSER] + "\n")
        self._chown(pwfile)
        try:
            self._run([str(self.pg_bin / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
                       "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8",
                       "--no-sync"], timeout=180)
        finally:
            pwfile.unlink(missing_ok=True)
        # initdb --no-sync: flush the new cluster once so a crash right after start cannot lose it
        subprocess.run(["sync"], check=False)

    def _choose_port(self) -> int:
        if self.requested_port:
            if port_in_use(self.requested_port):
                raise ConfigError(f"port {self.requested_port} (GRIDGOV_DB_PORT) is in use by another "
                                  f"program: choose another port or unset GRIDGOV_DB_PORT")
            return self.requested_port
        recorded = self.recorded_port()
        if recorded and not port_in_use(recorded):
            return recorded
        port = free_port()
        if recorded:
            self.log(f"warning: recorded port {recorded} is taken by another program; moving to {port}")
        return port

    def start(self) -> str:
        """Start (or reuse) the server; returns the app's DSN for the gridgov database."""
        if not postgis_installed(self.pg_bin):
            raise ConfigError(
                "PostGIS is not installed for PostgreSQL "
                f"{self.pg_bin.parent.name}: run `apt-get install postgresql-{self.pg_bin.parent.name}-postgis-3`")
        live_before = self.running_port() if self.initialized else None
        if live_before is None and self.requested_port and port_in_use(self.requested_port):
            raise ConfigError(f"port {self.requested_port} (GRIDGOV_DB_PORT) is in use by another "
                              f"program: choose another port or unset GRIDGOV_DB_PORT")
        self.init()
        legacy = not self.passfile.exists()  # a cluster made before password auth: adopt it below
        pw = self.passwords()
        live = self.running_port()
        if live is not None:
            if self.requested_port and self.requested_port != live:
                raise ConfigError(f"the cluster in {self.pgdata} already runs on port {live}, "
                                  f"not the requested {self.requested_port}: stop it first")
            self.port = live
        else:
            self.port = self._choose_port()
            self._write_conf()
            if not legacy:
                self._write_hba()
            self._record_port(self.port)
            self.log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
            if self.run_as and not self.logfile.exists():
                self.logfile.touch()
                self._chown(self.logfile)
            self._pg_ctl_start()
            self.started_here = True
        if legacy:  # a cluster still on trust auth: set the passwords first, then switch to scram
            self.log("switching the embedded cluster to password (scram-sha-256) authentication")
            self._ensure_roles(pw, trust=True)
            self._write_hba()
            self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "reload"])
            time.sleep(0.5)
        self._ensure_roles(pw)
        self._ensure_database()
        return self.dsn

    def _pg_ctl_start(self) -> None:
        # After a crash, orphaned backends may hold the old shared memory for a moment: retry briefly.
        for attempt in range(3):
            try:
                self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
                           "-o", f"-p {self.port}", "-w", "-t", "60", "start"], timeout=90)
                return
            except ConfigError:
                if attempt == 2:
                    raise
                time.sleep(1.0)

    def _connect(self, dsn: str):
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                return psycopg2.connect(dsn, connect_timeout=5)
            except psycopg2.OperationalError as e:
                if "password authentication failed" in str(e) or time.monotonic() > deadline:
                    raise ConfigError(f"embedded PostgreSQL on port {self.port} does not accept connections: "
                                      f"{str(e).strip().splitlines()[0]}") from None
                time.sleep(0.2)

    def _ensure_roles(self, pw: dict[str, str], trust: bool = False) -> None:
        """Create the owner and app roles (and set every password) when missing."""
        dsn = kv_dsn(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres") if trust \
            else self.admin_dsn
        conn = self._connect(dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                if trust:
                    cur.execute(f'ALTER ROLE "{SUPERUSER}" PASSWORD %s', (scram_verifier(pw[SUPERUSER]),))
                for role in (OWNER, APP):
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                    if cur.fetchone() is None:
                        cur.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                                    f'NOREPLICATION NOBYPASSRLS PASSWORD %s', (scram_verifier(pw[role]),))
        finally:
            conn.close()

    def _ensure_database(self) -> None:
        """The gridgov database owned by the owner role, with PostGIS (a superuser-only extension)."""
        conn = self._connect(self.admin_dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (DATABASE,))
                row = cur.fetchone()
                if row is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{OWNER}"')
                elif row[0] != OWNER:
                    cur.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO "{OWNER}"')
        finally:
            conn.close()
        prepare_database(self.superuser_dsn(DATABASE))

    def recreate_database(self) -> None:
        """Drop the gridgov database (disconnecting everyone) and create it empty, with PostGIS."""
        conn = self._connect(self.admin_dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        finally:
            conn.close()
        self._ensure_database()

    def start_standby(self, data_dir: Path, port: int | None = None) -> EmbeddedCluster:
        """A hot standby of this running cluster under `data_dir`, streaming from it on loopback.

        A physical copy by pg_basebackup (same roles and passwords, `-R`: standby.signal and primary_conninfo
        written), started read-only on its own port. Read traffic (wall map, review) goes there through
        GRIDGOV_READ_DATABASE_URL = its `dsn`; see docs/scaling.md."""
        if self.port is None or self.running_port() is None:
            raise ConfigError("start the primary cluster before making a standby of it")
        standby = EmbeddedCluster(data_dir, port=port, run_as=self.run_as, log=self.log)
        standby._prepare_dir()                       # data_dir and an empty pgdata (0700) for the server's user
        if standby.initialized:
            raise ConfigError(f"{standby.pgdata} already holds a cluster: empty it or choose another folder")
        shutil.copyfile(self.passfile, standby.passfile)
        os.chmod(standby.passfile, 0o600)
        standby._chown(standby.passfile)
        conninfo = kv_dsn(host="127.0.0.1", port=self.port, user=SUPERUSER, passfile=standby.passfile)
        self.log(f"pg_basebackup from 127.0.0.1:{self.port} into {standby.pgdata}")
        standby._run([str(self.pg_bin / "pg_basebackup"), "-d", conninfo, "-D", str(standby.pgdata), "-R",
                      "-X", "stream", "-c", "fast"], timeout=900)
        standby.port = standby._choose_port()
        standby._record_port(standby.port)
        if standby.run_as and not standby.logfile.exists():
            standby.logfile.touch()
            standby._chown(standby.logfile)
        self.log(f"starting the standby on 127.0.0.1:{standby.port}")
        standby._pg_ctl_start()
        standby.started_here = True
        return standby

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown) if it runs."""
        if self.running_port() is None:
            return
        self.log("stopping PostgreSQL")
        self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"],
                  timeout=90)

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        return kv_dsn(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=dbname, passfile=self.passfile)

    def role_dsn(self, role: str, dbname: str = DATABASE) -> str:
        return kv_dsn(host="127.0.0.1", port=self.port, user=role, dbname=dbname, passfile=self.passfile)

    @property
    def admin_dsn(self) -> str:
        """The bootstrap superuser on the `postgres` database (cluster administration only)."""
        return self.superuser_dsn("postgres")

    @property
    def owner_dsn(self) -> str:
        """The owner role on the gridgov database: migrations, backups, maintenance."""
        return self.role_dsn(OWNER)

    @property
    def dsn(self) -> str:
        """The app role on the gridgov database."""
        return self.role_dsn(APP)


def prepare_database(superuser_dsn: str) -> None:
    """As superuser, in one database: PostGIS, and all objects a superuser-era install left owned by the
    superuser handed to the owner role (idempotent, cheap when nothing is left)."""
    import psycopg2

    conn = psycopg2.connect(superuser_dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            cur.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
            cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            # Tables, views and unlinked sequences of the app (not those of extensions) left by a
            # superuser-era install: give them to the owner role.
            cur.execute(
                "SELECT c.oid::regclass::text, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
                "   AND pg_get_userbyid(c.relowner) = %s"
                "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
                "                   AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))"
                " ORDER BY c.relkind = 'S'", (SUPERUSER,))
            for name, kind in cur.fetchall():
                what = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}[kind]
                cur.execute(f'ALTER {what} {name} OWNER TO "{OWNER}"')
            cur.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) = %s"
                "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass"
                "                   AND d.objid = p.oid AND d.deptype = 'e')", (SUPERUSER,))
            for (sig,) in cur.fetchall():
                cur.execute(f'ALTER FUNCTION {sig} OWNER TO "{OWNER}"')
    finally:
        conn.close()
