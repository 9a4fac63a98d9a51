"""Settings from the environment, one prefix: GRIDGOV_. Read only when `load_settings()` is called.

| variable                 | meaning                                                     | default        |
|--------------------------|-------------------------------------------------------------|----------------|
| DATABASE_URL / GRIDGOV_DATABASE_URL | use this PostgreSQL server instead of the embedded one (the app role) | unset |
| GRIDGOV_MIGRATE_URL      | the owner role's DSN for migrations/backup (with DATABASE_URL) | DATABASE_URL |
| GRIDGOV_DATA_DIR         | data folder (embedded cluster, caches)                      | ./var          |
| GRIDGOV_DB_PORT          | port for the embedded cluster (must be free if given)       | a free port    |
| GRIDGOV_DB_POOL_MAX      | connections in this process's pool                          | 8              |
| GRIDGOV_HOST / _PORT     | where the web app listens                                   | 127.0.0.1:5000 |
| GRIDGOV_SECRET_KEY       | session signing key                                         | random per data dir |
| GRIDGOV_CASES            | synthetic cases the demo loads                              | 60000          |
| GRIDGOV_SEED             | seed of the demo city and cases                             | 2203           |
| GRIDGOV_PG_USER          | OS user that runs the embedded server when we are root      | postgres       |
| GRIDGOV_TILE_URL         | intranet XYZ tile URL ({z}/{x}/{y}) under the maps          | none           |
| GRIDGOV_TILE_CRS         | wgs84, or gcj02 when the tiles are drawn in GCJ-02          | wgs84          |
| GRIDGOV_SECURE_COOKIES   | 1 behind HTTPS: session cookie `Secure` (`__Host-`), HSTS    | 0              |
| GRIDGOV_SERVER           | WSGI server of `serve`/`demo`: gunicorn or waitress         | gunicorn       |
| GRIDGOV_WORKERS          | gunicorn worker processes                                   | 2 × cores (≤ 8)|
| GRIDGOV_THREADS          | threads per worker (gunicorn gthread) or waitress threads   | 4              |
| GRIDGOV_READ_DATABASE_URL| a hot standby (streaming replica) for the wall map's and the  | (the primary)  |
|                          | review's reads; writes always go to DATABASE_URL            |                |
| GRIDGOV_TIMEZONE         | the city's local time zone (IANA name); recorded in the     | Asia/Shanghai  |
|                          | database at start, refused once cases exist under another   |                |
| GRIDGOV_CALENDAR         | working days: cn (State Council holidays) or weekends       | cn             |
|                          | (Mon–Fri); both take `calendar import` overrides            |                |
| GRIDGOV_READ_TIMEOUT     | seconds a client has to send a request's headers, and at    | 15             |
|                          | most between two reads of its body (slow clients are cut)   |                |
| GRIDGOV_INTAKE_WRITER    | 1: `serve` registers queued submissions (POST /api/         | 1              |
|                          | submissions) in its workers; 0: a separate `intake-writer`  |                |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from gis.errors import ConfigError

PREFIX = "GRIDGOV_"


@dataclass(frozen=True)
class Settings:
    """Process settings; build with load_settings() or directly in tests."""

    database_url: str | None = None
    migrate_url: str | None = None
    read_database_url: str | None = None   # a streaming replica for the wall map's and the review's reads
    data_dir: Path = Path("var")
    db_port: int | None = None
    db_pool_max: int = 8
    host: str = "127.0.0.1"
    port: int = 5000
    secret_key: str | None = field(default=None, repr=False)
    demo_cases: int = 60_000
    seed: int = 2203
    pg_user: str = "postgres"
    tile_url: str | None = None
    tile_crs: str = "wgs84"
    secure_cookies: bool = False
    server: str = "gunicorn"
    workers: int = field(default_factory=lambda: min(8, 2 * (os.cpu_count() or 1)))
    threads: int = 4
    read_timeout: int = 15
    timezone: str = "Asia/Shanghai"
    calendar: str = "cn"
    intake_writer: bool = True   # `serve` runs the queued-intake writer (cases.queue) in its workers
    reads_first_ms: int = 20     # intake waits at most this long while wall/officer/review reads run (webmap.priority)

    def with_overrides(self, **kw) -> Settings:
        """A copy with some fields replaced (the explicit test override)."""
        return replace(self, **kw)

    def describe(self) -> dict:
        """Settings safe to print: the DSN redacted, no secrets."""
        return {
            "database_url": redact_dsn(self.database_url) if self.database_url else "(embedded)",
            "migrate_url": redact_dsn(self.migrate_url) if self.migrate_url else "(same as database_url)"
            if self.database_url else "(embedded owner role)",
            "read_database_url": redact_dsn(self.read_database_url) if self.read_database_url else "(the primary)",
            "data_dir": str(self.data_dir),
            "db_port": self.db_port,
            "db_pool_max": self.db_pool_max,
            "host": self.host,
            "port": self.port,
            "secret_key": "***" if self.secret_key else "(generated)",
            "demo_cases": self.demo_cases,
            "seed": self.seed,
            "tile_url": redact_dsn(self.tile_url) if self.tile_url else "(none)",
            "tile_crs": self.tile_crs,
            "secure_cookies": self.secure_cookies,
            "server": f"{self.server} ({self.workers} workers × {self.threads} threads)"
            if self.server == "gunicorn" else f"{self.server} ({self.threads} threads)",
            "intake_writer": self.intake_writer,
            "reads_first_ms": self.reads_first_ms,
        }


def _int(env, name, default):
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not an integer") from None


def _flag(env, name) -> bool:
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{PREFIX}{name}={raw!r} is not a flag (use 1 or 0)")


def session_secret(settings: Settings) -> str:
    """GRIDGOV_SECRET_KEY, else a random key kept in the data folder (0600) so sessions survive restarts."""
    import secrets

    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key
    except OSError:
        return secrets.token_hex(32)  # an unwritable folder: sessions last as long as the process


def load_settings(env: dict | None = None) -> Settings:
    """Read settings from the environment (or the given mapping)."""
    env = os.environ if env is None else env
    url = env.get(PREFIX + "DATABASE_URL") or env.get("DATABASE_URL") or None
    s = Settings(
        database_url=url,
        migrate_url=env.get(PREFIX + "MIGRATE_URL") or None,
        read_database_url=env.get(PREFIX + "READ_DATABASE_URL") or None,
        data_dir=Path(env.get(PREFIX + "DATA_DIR") or "var").absolute(),
        db_port=_int(env, "DB_PORT", None),
        db_pool_max=_int(env, "DB_POOL_MAX", 8),
        host=env.get(PREFIX + "HOST") or "127.0.0.1",
        port=_int(env, "PORT", 5000),
        secret_key=env.get(PREFIX + "SECRET_KEY") or None,
        demo_cases=_int(env, "CASES", 60_000),
        seed=_int(env, "SEED", 2203),
        pg_user=env.get(PREFIX + "PG_USER") or "postgres",
        tile_url=env.get(PREFIX + "TILE_URL") or None,
        tile_crs=(env.get(PREFIX + "TILE_CRS") or "wgs84").strip().lower(),
        secure_cookies=_flag(env, "SECURE_COOKIES"),
        server=(env.get(PREFIX + "SERVER") or "gunicorn").strip().lower(),
        workers=_int(env, "WORKERS", min(8, 2 * (os.cpu_count() or 1))),
        threads=_int(env, "THREADS", 4),
        read_timeout=_int(env, "READ_TIMEOUT", 15),
        timezone=(env.get(PREFIX + "TIMEZONE") or "Asia/Shanghai").strip(),
        calendar=(env.get(PREFIX + "CALENDAR") or "cn").strip().lower(),
        intake_writer=_flag(env, "INTAKE_WRITER") if (env.get(PREFIX + "INTAKE_WRITER") or "").strip() else True,
        reads_first_ms=_int(env, "READS_FIRST_MS", 20),
    )
    if s.tile_crs not in ("wgs84", "gcj02"):
        raise ConfigError(f"{PREFIX}TILE_CRS must be wgs84 or gcj02, got {s.tile_crs!r}")
    if s.tile_url is not None and not (s.tile_url.startswith(("http://", "https://", "/"))
                                       and all(k in s.tile_url for k in ("{z}", "{x}", "{y}"))):
        raise ConfigError(f"{PREFIX}TILE_URL must be an http(s) or /path URL with {{z}}, {{x}} and {{y}}")
    if s.server not in ("gunicorn", "waitress"):
        raise ConfigError(f"{PREFIX}SERVER must be gunicorn or waitress, got {s.server!r}")
    if not 1 <= s.workers <= 64 or not 1 <= s.threads <= 256:
        raise ConfigError(f"{PREFIX}WORKERS must be 1..64 and {PREFIX}THREADS 1..256")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(s.timezone)
    except (ValueError, KeyError, OSError):
        raise ConfigError(f"{PREFIX}TIMEZONE must be an IANA time zone such as Asia/Shanghai, got {s.timezone!r}") \
            from None
    if s.calendar not in ("cn", "weekends"):
        raise ConfigError(f"{PREFIX}CALENDAR must be cn or weekends, got {s.calendar!r}")
    if not 0 <= s.reads_first_ms <= 1000:
        raise ConfigError(f"{PREFIX}READS_FIRST_MS must be 0..1000 milliseconds, got {s.reads_first_ms}")
    if not 1 <= s.read_timeout <= 600:
        raise ConfigError(f"{PREFIX}READ_TIMEOUT must be 1..600 seconds, got {s.read_timeout}")
    if s.db_pool_max < 1:
        raise ConfigError(f"{PREFIX}DB_POOL_MAX must be at least 1, got {s.db_pool_max}")
    if s.db_port is not None and not (1 <= s.db_port <= 65535):
        raise ConfigError(f"{PREFIX}DB_PORT must be 1..65535, got {s.db_port}")
    return s


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]+:)([^@]*)(@)")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact_dsn(dsn: str | None) -> str:
    """The DSN with any password replaced by ***."""
    if not dsn:
        return ""
    out = _PASSWORD_IN_URL.sub(r"\1***\3", dsn)
    return _PASSWORD_KV.sub(r"\1***", out)
