"""Opening the database for a process: the configured server, or the embedded cluster.

`open_database(settings)` returns a Runtime holding the pool and (when embedded) the cluster, with
migrations applied. Migrations (and backups) run as the owner role; the pool connects as the app role,
which owns nothing and may not rewrite the event log. Nothing here runs at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.cluster import EmbeddedCluster
from gis.db import Database
from gis.errors import ConfigError
from gis.migrate import migrate
from gis.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cluster: EmbeddedCluster | None = None
    owner_dsn: str | None = None

    def close(self, stop_cluster: bool = True) -> None:
        """Close the pool; stop the embedded server too when asked and this process started it."""
        self.db.close()
        if stop_cluster and self.cluster is not None and self.cluster.started_here:
            self.cluster.stop()


def database_dsns(settings: Settings, log=print) -> tuple[str, str, EmbeddedCluster | None]:
    """(app DSN, owner DSN, cluster or None), starting the embedded cluster when no DATABASE_URL is set."""
    if settings.database_url:
        return settings.database_url, settings.migrate_url or settings.database_url, None
    cluster = EmbeddedCluster(settings.data_dir, port=settings.db_port, run_as=settings.pg_user, log=log)
    dsn = cluster.start()
    return dsn, cluster.owner_dsn, cluster


def open_database(settings: Settings, log=print, apply_migrations: bool = True) -> Runtime:
    """Connect (starting the embedded cluster when no DATABASE_URL is set) and migrate as the owner."""
    dsn, owner_dsn, cluster = database_dsns(settings, log=log)
    if apply_migrations:
        migrate(owner_dsn, log=log)
    db = Database(dsn, maxconn=settings.db_pool_max)
    if apply_migrations:
        try:
            record_time_zone(db, settings.timezone)
        except BaseException:
            db.close()
            if cluster is not None:
                cluster.stop()
            raise
    return Runtime(settings, db, cluster, owner_dsn)


def record_time_zone(db, zone: str) -> None:
    """Record the deployment's time zone (GRIDGOV_TIMEZONE) where the database's day buckets read it
    (gridgov_time_zone()); a different zone is refused once cases exist, since their days were counted in
    the old one."""
    row = db.fetchone("SELECT value #>> '{}' AS zone FROM app_setting WHERE key = 'time_zone'")
    stored = row["zone"] if row else "Asia/Shanghai"
    if row is not None and stored == zone:
        return
    if stored != zone and db.fetchone("SELECT EXISTS (SELECT 1 FROM case_record) AS any")["any"]:
        raise ConfigError(f"GRIDGOV_TIMEZONE is {zone} but this database's cases were recorded in {stored}: "
                          "set it back, or start a new database for the new zone")
    db.execute("INSERT INTO app_setting (key, value) VALUES ('time_zone', to_jsonb(%s::text)) ON CONFLICT (key) "
               "DO UPDATE SET value = EXCLUDED.value, updated_at = now()", (zone,))
