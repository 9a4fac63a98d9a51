-- PostGIS itself. Applied by the migrator like any other migration.
CREATE EXTENSION IF NOT EXISTS postgis;
