-- The wall's counts kept live (issue 11: "the wall map's read endpoints keep their p99 while intake runs").
-- The KPI panel (cases.wallstats.kpi) and the unit layers (wallstats.unit_counts) counted every case received
-- today and every open case of the user's scope on each 30-second refresh: O(today's cases + open cases), so
-- a surge slowed them with its own cases (597 ms for the KPI after a 107,000-case day). Two aggregates, kept
-- exact by statement-level triggers on case_record (transition tables, as case_day_stats), make a refresh cost
-- O(rows of the aggregate), which a surge barely grows: its cases fall into a few units × minutes × channels.
--
-- Both are keyed by the scope key of cases.auth.case_scope for the region roles,
-- coalesce(village_code, township_code, county_code, handler_region, ''), and by the case's accused units and
-- persons ('{}' for nearly every case), so `scope_key LIKE prefix AND NOT (accused_units && ids OR
-- accused_persons && persons)` selects exactly the cases `case_scope` lets a region user see, the
-- conflict-of-interest guard included: the answer equals the direct count (tests/webmap/test_wall_live_stats.py).
--
-- case_wall_open: open cases (not closed, merged or rejected) per unit × status group × emergency × the minute
--   their next deadline falls in (DUE_SQL of wallstats, binned to whole minutes; 'infinity' when the case
--   waits for the citizen). Overdue at `now` = the minutes before now's minute + the cases of now's minute due
--   before now, counted exactly from the case table through case_urgency_idx (one minute of deadlines; with
--   hour bins that was an hour of a surge's deadlines: 55 ms a refresh after a 100,000-case surge).
-- case_wall_flow: cases received and cases closed per local day × scope key × channel × category
--   (today's intake by channel, the 7-day intake and closure trend, the month's categories).
-- Rows whose counts return to zero are deleted by the trigger that zeroes them, so case_wall_open holds the
-- open situation only, not every minute that ever had an open case.
-- Partitions detached or moved by case_partition_month fire no trigger: the counts stay (an archived month
-- has no open cases; its days stay in the flow, as they happened).

CREATE TABLE case_wall_open (
    scope_key       text COLLATE "C" NOT NULL,
    county_code     text COLLATE "C" NOT NULL,
    township_code   text COLLATE "C" NOT NULL,
    grid_code       text COLLATE "C" NOT NULL,
    grp             text NOT NULL,
    emergency       boolean NOT NULL,
    due_minute      timestamptz NOT NULL,
    accused_units   text[] NOT NULL,
    accused_persons text[] NOT NULL,
    n               integer NOT NULL,
    PRIMARY KEY (scope_key, township_code, grid_code, county_code, grp, emergency, due_minute, accused_units,
                 accused_persons)
);

CREATE TABLE case_wall_flow (
    day             date NOT NULL,
    scope_key       text COLLATE "C" NOT NULL,
    channel         text NOT NULL,
    category_code   text NOT NULL,
    accused_units   text[] NOT NULL,
    accused_persons text[] NOT NULL,
    received        integer NOT NULL,
    closed          integer NOT NULL,
    PRIMARY KEY (day, scope_key, channel, category_code, accused_units, accused_persons)
);

-- The contributions of a set of case rows (sgn = +1 for new rows, -1 for old ones) to each aggregate.
-- Keep the status groups and the deadline as cases/wallstats.py writes them (STATUS_GROUPS, DUE_SQL).
CREATE FUNCTION case_wall_open_delta_sql(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    SELECT coalesce(r.village_code, r.township_code, r.county_code, r.handler_region, '') AS scope_key,
           coalesce(r.county_code, '') AS county_code, coalesce(r.township_code, '') AS township_code,
           coalesce(r.grid_code, '') AS grid_code,
           CASE WHEN r.status IN ('received', 'accepted') THEN 'intake'
                WHEN r.status IN ('dispatched', 'returned') THEN 'sign'
                WHEN r.status IN ('signed', 'handling', 'reopened') THEN 'handling'
                WHEN r.status IN ('replied', 'evaluated') THEN 'citizen' ELSE r.status END AS grp,
           coalesce(r.emergency, false) AS emergency,
           coalesce(date_bin('1 minute',
               CASE WHEN r.status IN ('received', 'accepted') THEN r.accept_due_at
                    WHEN r.status IN ('dispatched', 'returned') THEN r.sign_due_at
                    WHEN r.status IN ('signed', 'handling', 'reopened') THEN coalesce(r.reply_due_at, r.handle_due_at) END,
               timestamptz '2000-01-01 00:00:00+00'), 'infinity') AS due_minute,
           r.accused_units, r.accused_persons, sum(r.sgn)::int AS n
    FROM (%s) r
    WHERE r.status NOT IN ('closed', 'merged', 'rejected')
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 HAVING sum(r.sgn) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9 $q$, src)
$f$;

CREATE FUNCTION case_wall_flow_delta_sql(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    SELECT x.day, coalesce(r.village_code, r.township_code, r.county_code, r.handler_region, '') AS scope_key,
           r.channel, coalesce(r.category_code, '') AS category_code, r.accused_units, r.accused_persons,
           sum(r.sgn * x.received)::int AS received, sum(r.sgn * x.closed)::int AS closed
    FROM (%s) r CROSS JOIN (SELECT gridgov_time_zone() AS tz) z,
    LATERAL (VALUES ((r.received_at AT TIME ZONE z.tz)::date, 1, 0),
                    ((r.closed_at AT TIME ZONE z.tz)::date, 0, 1)) x(day, received, closed)
    WHERE x.day IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.sgn * x.received) <> 0 OR sum(r.sgn * x.closed) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6 $q$, src)
$f$;

-- The trigger function, generated with the delta SQL as static statements (PL/pgSQL keeps their plans for the
-- session; transition tables are visible only in the trigger function itself). Whoever redefines a delta
-- function calls case_wall_install_sync() afterwards.
CREATE FUNCTION case_wall_install_sync() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp AS $i$
DECLARE
    srcs text[] := ARRAY['SELECT n.*, 1 AS sgn FROM new_rows n', 'SELECT o.*, -1 AS sgn FROM old_rows o',
                         'SELECT o.*, -1 AS sgn FROM old_rows o UNION ALL SELECT n.*, 1 FROM new_rows n'];
    parts text[] := '{}';
    s text;
BEGIN
    FOREACH s IN ARRAY srcs LOOP
        parts := parts || format($b$
        FOR zero_open IN WITH up AS (
            INSERT INTO case_wall_open AS t SELECT * FROM (%s) d
            ON CONFLICT (scope_key, township_code, grid_code, county_code, grp, emergency, due_minute, accused_units,
                         accused_persons)
            DO UPDATE SET n = t.n + EXCLUDED.n RETURNING t.*)
            SELECT * FROM up WHERE up.n = 0
        LOOP
            DELETE FROM case_wall_open WHERE scope_key = zero_open.scope_key AND township_code = zero_open.township_code
                AND grid_code = zero_open.grid_code AND county_code = zero_open.county_code AND grp = zero_open.grp
                AND emergency = zero_open.emergency AND due_minute = zero_open.due_minute
                AND accused_units = zero_open.accused_units AND accused_persons = zero_open.accused_persons AND n = 0;
        END LOOP;
        FOR zero_flow IN WITH up AS (
            INSERT INTO case_wall_flow AS t SELECT * FROM (%s) d
            ON CONFLICT (day, scope_key, channel, category_code, accused_units, accused_persons)
            DO UPDATE SET received = t.received + EXCLUDED.received, closed = t.closed + EXCLUDED.closed
            RETURNING t.*)
            SELECT * FROM up WHERE up.received = 0 AND up.closed = 0
        LOOP
            DELETE FROM case_wall_flow WHERE day = zero_flow.day AND scope_key = zero_flow.scope_key AND channel = zero_flow.channel
                AND category_code = zero_flow.category_code AND accused_units = zero_flow.accused_units
                AND accused_persons = zero_flow.accused_persons AND received = 0 AND closed = 0;
        END LOOP$b$, case_wall_open_delta_sql(s), case_wall_flow_delta_sql(s));
    END LOOP;
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION case_wall_sync() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    zero_open case_wall_open;
    zero_flow case_wall_flow;
BEGIN
    -- generated by case_wall_install_sync() from case_wall_open_delta_sql() and case_wall_flow_delta_sql():
    -- do not edit
    IF TG_OP = 'INSERT' THEN%s;
    ELSIF TG_OP = 'DELETE' THEN%s;
    ELSIF TG_OP = 'UPDATE' THEN%s;
    ELSE  -- TRUNCATE
        DELETE FROM case_wall_open;
        DELETE FROM case_wall_flow;
    END IF;
    RETURN NULL;
END
$body$$f$, parts[1], parts[2], parts[3]);
END
$i$;

SELECT case_wall_install_sync();

CREATE TRIGGER case_wall_ins AFTER INSERT ON case_record REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_wall_sync();
CREATE TRIGGER case_wall_upd AFTER UPDATE ON case_record REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_wall_sync();
CREATE TRIGGER case_wall_del AFTER DELETE ON case_record REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_wall_sync();
CREATE TRIGGER case_wall_truncate AFTER TRUNCATE ON case_record
    FOR EACH STATEMENT EXECUTE FUNCTION case_wall_sync();

-- The cases already there.
DO $$ BEGIN
    EXECUTE 'INSERT INTO case_wall_open SELECT * FROM (' || case_wall_open_delta_sql(
        'SELECT c.*, 1 AS sgn FROM case_record c WHERE c.status NOT IN (''closed'', ''merged'', ''rejected'')') || ') d';
    EXECUTE 'INSERT INTO case_wall_flow SELECT * FROM (' || case_wall_flow_delta_sql(
        'SELECT c.*, 1 AS sgn FROM case_record c') || ') d';
END $$;

ANALYZE case_wall_open, case_wall_flow;
