"""Opening the database for a process: the configured server, or the embedded cluster.

`open_database(settings)` returns a Runtime holding the pool and (when embedded) the cluster, with
migrations applied. Nothing here runs at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.cluster import EmbeddedCluster
from gis.db import Database
from gis.migrate import migrate
from gis.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cluster: EmbeddedCluster | None = None

    def close(self, stop_cluster: bool = True) -> None:
        """Close the pool; stop the embedded server too when asked and this process started it."""
        self.db.close()
        if stop_cluster and self.cluster is not None and self.cluster.started_here:
            self.cluster.stop()


def open_database(settings: Settings, log=print, apply_migrations: bool = True) -> Runtime:
    """Connect (starting the embedded cluster when no DATABASE_URL is set) and migrate."""
    cluster = None
    if settings.database_url:
        dsn = settings.database_url
    else:
        cluster = EmbeddedCluster(settings.data_dir, port=settings.db_port, run_as=settings.pg_user, log=log)
        dsn = cluster.start()
    if apply_migrations:
        migrate(dsn, log=log)
    return Runtime(settings, Database(dsn, maxconn=settings.db_pool_max), cluster)
