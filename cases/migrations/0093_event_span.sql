-- Each case's first and last event instant, in case_event_head (issue 11: a case's events at 10,000,000 cases).
--
-- case_event is partitioned by the month of the event's own `at` (0090), and every reader selects a case's
-- events by case_id alone, so each read (the phone's case page, the auto-escalation's count of returns, the
-- guard's "returned by") was planned over every month partition of the event log and each of its indexes.
-- The chain trigger already locks and updates the case's head row for every event; it now also keeps the
-- earliest and latest `at` of the case's events there, and readers name that span (cases.partitions.event_span),
-- so the planner keeps only the months the case's events are in. Exact, whatever instants the events carry.

ALTER TABLE case_event_head ADD COLUMN first_at timestamptz, ADD COLUMN last_at timestamptz;
UPDATE case_event_head h SET first_at = s.lo, last_at = s.hi
    FROM (SELECT case_id, min(at) AS lo, max(at) AS hi FROM case_event GROUP BY case_id) s
    WHERE s.case_id = h.case_id;

CREATE OR REPLACE FUNCTION case_event_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    h case_event_head%ROWTYPE;
BEGIN
    SELECT * INTO h FROM case_event_head WHERE case_id = NEW.case_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO case_event_head (case_id, seq, hash) VALUES (NEW.case_id, 0, '\x')
            ON CONFLICT (case_id) DO NOTHING;
        SELECT * INTO h FROM case_event_head WHERE case_id = NEW.case_id FOR UPDATE;
    END IF;
    NEW.seq := h.seq + 1;
    NEW.prev_hash := h.hash;
    NEW.hash := case_event_digest(NEW);
    UPDATE case_event_head SET seq = NEW.seq, hash = NEW.hash,
                               first_at = least(coalesce(h.first_at, NEW.at), NEW.at),
                               last_at = greatest(coalesce(h.last_at, NEW.at), NEW.at)
        WHERE case_id = NEW.case_id;
    RETURN NEW;
END $$;

-- No ANALYZE here: on a new, empty database it would record the table as empty, and the trigger's cached
-- plans would then scan it whole for every row of the first bulk load (tests/cases/test_scheduler.py
-- test_many_open_cases_in_batches went from 27 s to 76 s); autovacuum analyzes it once it has rows.
