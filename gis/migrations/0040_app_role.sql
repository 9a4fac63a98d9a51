-- Database roles (issue 8): migrations run as the owner role (this file's executor); the app connects as
-- gridgov_app (embedded cluster) or a login role that is a member of it (DATABASE_URL deployments). The app
-- role owns nothing: it gets the DML each table allows, granted here and by default for later tables.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridgov_app') THEN
        BEGIN
            CREATE ROLE gridgov_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role gridgov_app does not exist and % may not create it: create it first '
                            '(README, "Database roles")', current_user;
        END;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO gridgov_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gridgov_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO gridgov_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gridgov_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO gridgov_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM gridgov_app;

-- ANALYZE needs ownership (PostgreSQL 15 has no pg_maintain): after a bulk load the app asks the owner
-- to refresh a table's statistics, for tables of this schema only.
CREATE FUNCTION analyze_table(tbl text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF to_regclass(format('public.%I', tbl)) IS NULL THEN
        RAISE EXCEPTION 'no table %', tbl;
    END IF;
    EXECUTE format('ANALYZE public.%I', tbl);
END $$;
REVOKE ALL ON FUNCTION analyze_table(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analyze_table(text) TO gridgov_app;
