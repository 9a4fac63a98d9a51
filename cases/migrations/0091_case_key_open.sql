-- Which cases are open, in case_key (issue 11: the open-case lists at 10,000,000 cases).
--
-- Every open-case read (the officer's and the dispatcher's lists, the worklist counts, the wall map's open
-- layers, the scheduler's scans) names no month, so with months of partitions it was planned and merged over
-- every partition and each of its indexes: the officer's list p99 went from 27 ms at 17 partitions to 120 ms
-- at 41. Open cases sit in a few recent months (years-old cases are finished), so those reads now first read
-- the range of months that hold open cases from a small partial index of case_key and name it
-- (cases.partitions.open_months); the planner keeps only those partitions.
--
-- case_key.open = the case's status is not terminal (cases.workflow.TERMINAL_STATES; a test checks both
-- agree). Kept by the same owner triggers as case_key's other columns: the statement trigger on INSERT, and
-- the row trigger on UPDATE now also when a case enters or leaves a terminal state (a close, a reopen).

ALTER TABLE case_key ADD COLUMN open boolean NOT NULL DEFAULT false;   -- no rewrite (a constant default)
UPDATE case_key k SET open = true FROM case_record c
    WHERE c.id = k.id AND c.received_at = k.received_at AND c.status NOT IN ('closed', 'merged', 'rejected');
CREATE INDEX case_key_open_received ON case_key (received_at) WHERE open;

CREATE OR REPLACE FUNCTION case_key_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO case_key (id, case_no, submission_key, received_at, open)
            SELECT id, case_no, submission_key, received_at, status NOT IN ('closed', 'merged', 'rejected')
            FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM case_key k USING old_rows o WHERE k.id = o.id;
    ELSE  -- TRUNCATE
        DELETE FROM case_key;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION case_key_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE case_key SET id = NEW.id, case_no = NEW.case_no, submission_key = NEW.submission_key,
                        received_at = NEW.received_at,
                        open = NEW.status NOT IN ('closed', 'merged', 'rejected')
    WHERE id = OLD.id;
    RETURN NEW;
END $$;

DROP TRIGGER case_key_upd ON case_record;
-- BEFORE UPDATE row triggers fire on the row's partition even when the update moves it to another month.
CREATE TRIGGER case_key_upd BEFORE UPDATE ON case_record FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.case_no IS DISTINCT FROM NEW.case_no
          OR OLD.submission_key IS DISTINCT FROM NEW.submission_key OR OLD.received_at IS DISTINCT FROM NEW.received_at
          OR (OLD.status IN ('closed', 'merged', 'rejected')) IS DISTINCT FROM
             (NEW.status IN ('closed', 'merged', 'rejected')))
    EXECUTE FUNCTION case_key_update();

ANALYZE case_key;
