-- 10,000,000 cases on one machine (issue 11): case_record and case_event are partitioned by month
-- (declarative RANGE partitioning), so a month's reads touch that month's partition and its indexes, and
-- old months can later be detached or archived whole. docs/scaling.md, "Monthly partitions", has the design.
--
-- * case_record is partitioned by received_at (the local month of the deployment's zone when this ran).
-- * case_event is partitioned by its own `at`. Every reader of the event log selects by case_id (detail,
--   registers, Open311 updates, audit), never by time, so no key would prune those reads, while `at` is
--   present on every insert (DEFAULT now()): no writer (intake, actions, scheduler, imports, the generator's
--   COPY, tests) has to carry the case's received_at, which a BEFORE trigger could not fill in (a row is
--   routed to its partition before the partition's BEFORE triggers run).
-- * A unique index of a partitioned table must contain the partition key, so global uniqueness of case_no
--   and submission_key, and the target of every foreign key to a case, move to case_key (id, case_no,
--   submission_key, received_at), kept by triggers on case_record: statement-level on INSERT and DELETE (one
--   set-based statement per INSERT or COPY) and a row trigger on UPDATE that fires only when one of the four
--   changes. The app may only read case_key.
-- * Month partitions are made ahead by case_partitions_ensure(since, through) (the scheduler runs it every
--   time; the generator and the importer for their date range first). A DEFAULT partition keeps any insert
--   from failing; when a month's partition is made while rows of that month sit in DEFAULT, they move to it
--   without firing the root's triggers (ids, hash chains and case_day_stats unchanged).
-- * Partitions belong to the owner and grant the app nothing: the app reaches them only through the
--   partitioned tables, whose privileges are the ones 0040/0041 granted.

LOCK TABLE case_record, case_event IN ACCESS EXCLUSIVE MODE;

-- The digest and the backfill aggregate take case_event's row type: they are recreated for the new table.
DROP AGGREGATE IF EXISTS case_event_chain_agg(case_event, integer);
DROP FUNCTION IF EXISTS case_event_chain_step(bytea, case_event, integer);
DROP FUNCTION case_event_digest(case_event);

-- Global identity of a case.
CREATE TABLE case_key (
    id             bigint PRIMARY KEY,
    case_no        text NOT NULL,
    submission_key text,
    received_at    timestamptz NOT NULL
);
INSERT INTO case_key (id, case_no, submission_key, received_at)
    SELECT id, case_no, submission_key, received_at FROM case_record;
ALTER TABLE case_key ADD CONSTRAINT case_key_case_no_key UNIQUE (case_no),
                     ADD CONSTRAINT case_key_submission_key_key UNIQUE (submission_key);
REVOKE ALL ON case_key FROM gridgov_app;
GRANT SELECT ON case_key TO gridgov_app;

-- The zone of the partition bounds, fixed now (the app refuses a zone change once cases exist).
DO $$ BEGIN
    EXECUTE format('CREATE FUNCTION case_partition_zone() RETURNS text LANGUAGE sql IMMUTABLE AS %L',
                   format('SELECT %L::text', gridgov_time_zone()));
END $$;

-- What the old tables had, to recreate on the new ones: indexes, foreign keys (those to case_record now
-- point at case_key), triggers and statistics (also whatever migrations before this one added).
CREATE TEMP TABLE part_ddl ON COMMIT DROP AS
SELECT 1 AS ord, t.relname::text AS tbl, i.relname::text AS name,
       pg_get_indexdef(x.indexrelid) AS def, x.indisprimary AS primary_key, x.indisunique AS is_unique
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname IN ('case_record', 'case_event') AND t.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 2, t.relname, c.conname, pg_get_constraintdef(c.oid), false, false
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE c.contype = 'f' AND t.relname IN ('case_record', 'case_event') AND t.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 3, t.relname, g.tgname, pg_get_triggerdef(g.oid), false, false
FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
WHERE NOT g.tgisinternal AND t.relname IN ('case_record', 'case_event') AND t.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 4, t.relname, s.stxname, pg_get_statisticsobjdef(s.oid), false, false
FROM pg_statistic_ext s JOIN pg_class t ON t.oid = s.stxrelid
WHERE t.relname IN ('case_record', 'case_event') AND t.relnamespace = 'public'::regnamespace;

-- Foreign keys of other tables to case_record(id) now reference case_key(id) (same names, same actions).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.conname, c.conrelid::regclass AS tbl, pg_get_constraintdef(c.oid) AS def
             FROM pg_constraint c
             WHERE c.contype = 'f' AND c.confrelid = 'case_record'::regclass
               AND c.conrelid NOT IN ('case_record'::regclass, 'case_event'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname,
                       replace(r.def, 'REFERENCES case_record(id)', 'REFERENCES case_key(id)'));
    END LOOP;
END $$;

ALTER TABLE case_record RENAME TO case_record_unpartitioned;
ALTER TABLE case_event RENAME TO case_event_unpartitioned;
ALTER SEQUENCE case_record_id_seq OWNED BY NONE;
ALTER SEQUENCE case_event_id_seq OWNED BY NONE;

CREATE TABLE case_record (LIKE case_record_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                          INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)
    PARTITION BY RANGE (received_at);
CREATE TABLE case_event (LIKE case_event_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                         INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)
    PARTITION BY RANGE (at);
ALTER SEQUENCE case_record_id_seq OWNED BY case_record.id;
ALTER SEQUENCE case_event_id_seq OWNED BY case_event.id;
CREATE TABLE case_record_default PARTITION OF case_record DEFAULT;
CREATE TABLE case_event_default PARTITION OF case_event DEFAULT;

-- A new partition: owned by the owner, nothing granted to the app (it goes through the partitioned table),
-- case_record's extended statistics (the planner estimates each partition from its own), and its indexes
-- named after the partitioned index they belong to (case_urgency_idx_p2026_10, not an expression-made name),
-- so plans read as before.
CREATE FUNCTION case_partition_prepare(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    suffix text := substr(part, strpos(part, '_p') + 1);
    r record;
BEGIN
    IF part LIKE '%\_default' THEN
        suffix := 'default';
    END IF;
    FOR r IN SELECT c.relname AS child, p.relname AS parent
             FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             JOIN pg_inherits i ON i.inhrelid = x.indexrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE x.indrelid = format('public.%I', part)::regclass
    LOOP
        IF r.child <> left(r.parent, 62 - length(suffix)) || '_' || suffix THEN
            EXECUTE format('ALTER INDEX %I RENAME TO %I', r.child, left(r.parent, 62 - length(suffix)) || '_' || suffix);
        END IF;
    END LOOP;
    EXECUTE format('REVOKE ALL ON %I FROM gridgov_app', part);
    IF part LIKE 'case\_record\_%' AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext WHERE stxname = part || '_scope_stats') THEN
        EXECUTE format('CREATE STATISTICS %I ON (coalesce(village_code, township_code, county_code, '
                       'handler_region, %L)) FROM %I', part || '_scope_stats', '', part);
    END IF;
END $$;
REVOKE ALL ON FUNCTION case_partition_prepare(text) FROM PUBLIC;
SELECT case_partition_prepare('case_record_default'), case_partition_prepare('case_event_default');

-- The partition of table `tbl` ('case_record' or 'case_event') for the month starting at `m` (local date),
-- made when missing; returns 1 when made. Rows of that month already in the DEFAULT partition are moved into
-- it: DEFAULT is detached, the month is filled as a plain table and attached, DEFAULT attached again — no
-- trigger of the partitioned table fires (the rows keep their ids, hashes and aggregate counts).
CREATE FUNCTION case_partition_month(tbl text, m date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part text := format('%s_p%s', tbl, to_char(m, 'YYYY_MM'));
    dflt text := tbl || '_default';
    col text := CASE tbl WHEN 'case_record' THEN 'received_at' WHEN 'case_event' THEN 'at' END;
    lo timestamptz := date_trunc('month', m::timestamp) AT TIME ZONE case_partition_zone();
    hi timestamptz := (date_trunc('month', m::timestamp) + interval '1 month') AT TIME ZONE case_partition_zone();
    waiting boolean;
BEGIN
    IF col IS NULL THEN
        RAISE EXCEPTION 'no monthly partitions for %', tbl;
    END IF;
    IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)', dflt, col, col)
        INTO waiting USING lo, hi;
    IF NOT waiting THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, tbl, lo, hi);
    ELSE
        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', tbl, dflt);
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE '
                       'INCLUDING COMPRESSION)', part, tbl);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE %I >= $1 AND %I < $2', part, dflt, col, col)
            USING lo, hi;
        EXECUTE format('DELETE FROM %I WHERE %I >= $1 AND %I < $2', dflt, col, col) USING lo, hi;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', tbl, part, lo, hi);
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I DEFAULT', tbl, dflt);
    END IF;
    PERFORM case_partition_prepare(part);
    RETURN 1;
END $$;
REVOKE ALL ON FUNCTION case_partition_month(text, date) FROM PUBLIC;

-- Month partitions of both tables covering [since, through], and of every month that has rows waiting in a
-- DEFAULT partition; returns how many were made. Callable by the app (the scheduler, the generator, the
-- importer); at most 25 years at once.
CREATE FUNCTION case_partitions_ensure(since timestamptz, through timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '30s' AS $$
DECLARE
    zone text := case_partition_zone();
    m_first date := date_trunc('month', since AT TIME ZONE zone)::date;
    m_last date := date_trunc('month', through AT TIME ZONE zone)::date;
    m date;
    n integer := 0;
BEGIN
    IF since IS NULL OR through IS NULL OR m_last < m_first THEN
        RETURN 0;
    END IF;
    IF m_last > m_first + interval '25 years' THEN
        RAISE EXCEPTION 'case partitions: % to % is more than 25 years at once', m_first, m_last;
    END IF;
    PERFORM pg_advisory_xact_lock(22030090);
    m := m_first;
    WHILE m <= m_last LOOP
        n := n + case_partition_month('case_record', m) + case_partition_month('case_event', m);
        m := (m + interval '1 month')::date;
    END LOOP;
    FOR m IN SELECT DISTINCT date_trunc('month', received_at AT TIME ZONE zone)::date FROM case_record_default
    LOOP
        n := n + case_partition_month('case_record', m);
    END LOOP;
    FOR m IN SELECT DISTINCT date_trunc('month', at AT TIME ZONE zone)::date FROM case_event_default
    LOOP
        n := n + case_partition_month('case_event', m);
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION case_partitions_ensure(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION case_partitions_ensure(timestamptz, timestamptz) TO gridgov_app;

-- Partitions for the months of the data there is (at most 25 years back) through three months ahead.
SELECT case_partitions_ensure(greatest(least((SELECT min(received_at) FROM case_record_unpartitioned),
                                             (SELECT min(at) FROM case_event_unpartitioned), now()),
                                       now() - interval '24 years'),
                              greatest((SELECT max(received_at) FROM case_record_unpartitioned),
                                       (SELECT max(at) FROM case_event_unpartitioned), now())
                              + interval '3 months');

-- The rows, as they are (no trigger exists yet on the new tables).
INSERT INTO case_record SELECT * FROM case_record_unpartitioned;
INSERT INTO case_event SELECT * FROM case_event_unpartitioned;
DROP TABLE case_record_unpartitioned, case_event_unpartitioned;

-- Keys, indexes (a unique index becomes a plain one: uniqueness is case_key's), foreign keys, triggers and
-- statistics, as they were.
ALTER TABLE case_record ADD CONSTRAINT case_record_pkey PRIMARY KEY (id, received_at);
ALTER TABLE case_event ADD CONSTRAINT case_event_pkey PRIMARY KEY (id, at);
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM part_ddl ORDER BY ord, tbl, name LOOP
        CONTINUE WHEN r.ord = 1 AND r.primary_key;
        IF r.ord = 1 THEN
            EXECUTE replace(r.def, 'CREATE UNIQUE INDEX ', 'CREATE INDEX ');
        ELSIF r.ord = 2 THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', r.tbl, r.name,
                           replace(r.def, 'REFERENCES case_record(id)', 'REFERENCES case_key(id)'));
        ELSE  -- triggers and statistics: their definitions name the table, captured before it was renamed
            EXECUTE r.def;
        END IF;
    END LOOP;
END $$;

-- The partitions' indexes, made just now, named after their partitioned index.
SELECT case_partition_prepare(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent IN ('case_record'::regclass, 'case_event'::regclass);

-- The event log's privileges (0041): the app reads and appends, nothing else.
REVOKE ALL ON case_event FROM gridgov_app;
GRANT SELECT, INSERT ON case_event TO gridgov_app;

-- Version 1 of the event digest (0041), unchanged, over the new row type.
CREATE FUNCTION case_event_digest(e case_event) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(concat_ws('|', 'gridgov-event-v1', e.id, e.case_id, e.seq,
        extract(epoch FROM e.at)::text, quote_nullable(e.actor_id), quote_nullable(e.actor_role),
        quote_nullable(e.action), quote_nullable(e.from_state), quote_nullable(e.to_state),
        quote_nullable(e.reason), quote_nullable(e.data::text), encode(e.prev_hash, 'hex')), 'UTF8'))
$$;
CREATE FUNCTION case_event_chain_step(prev bytea, e case_event, n integer) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    e.seq := n;
    e.prev_hash := coalesce(prev, '\x');
    RETURN case_event_digest(e);
END $$;
CREATE AGGREGATE case_event_chain_agg(case_event, integer) (SFUNC = case_event_chain_step, STYPE = bytea);

-- case_key follows case_record.
CREATE FUNCTION case_key_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO case_key (id, case_no, submission_key, received_at)
            SELECT id, case_no, submission_key, received_at FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM case_key k USING old_rows o WHERE k.id = o.id;
    ELSE  -- TRUNCATE
        DELETE FROM case_key;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION case_key_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE case_key SET id = NEW.id, case_no = NEW.case_no, submission_key = NEW.submission_key,
                        received_at = NEW.received_at
    WHERE id = OLD.id;
    RETURN NEW;
END $$;
CREATE TRIGGER case_key_ins AFTER INSERT ON case_record REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_key_sync();
CREATE TRIGGER case_key_del AFTER DELETE ON case_record REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_key_sync();
CREATE TRIGGER case_key_truncate AFTER TRUNCATE ON case_record
    FOR EACH STATEMENT EXECUTE FUNCTION case_key_sync();
-- BEFORE UPDATE row triggers fire on the row's partition even when the update moves it to another month.
CREATE TRIGGER case_key_upd BEFORE UPDATE ON case_record FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.case_no IS DISTINCT FROM NEW.case_no
          OR OLD.submission_key IS DISTINCT FROM NEW.submission_key OR OLD.received_at IS DISTINCT FROM NEW.received_at)
    EXECUTE FUNCTION case_key_update();

-- JIT compiles the expressions of every partition a plan touches: the month's petition figures at 1,000,000
-- cases took 13 s with it (11 s of compiling), 2 s without. Off for this database (the embedded cluster also
-- sets it in postgresql.conf); a deployment whose owner role does not own the database sets it itself.
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not set jit = off for database %: set it (ALTER DATABASE … SET jit = off)', current_database();
END $$;

ANALYZE case_key;
ANALYZE case_record;
ANALYZE case_event;
