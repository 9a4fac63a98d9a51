-- The event log is evidence (issue 8). The app role may read and append case events, never update,
-- delete or truncate them (nor disable triggers: it owns no table). Each event carries `seq` (1, 2, … per
-- case), the hash of the previous event of its case and its own hash, computed here in a BEFORE INSERT
-- trigger so no service code can forget it; case_event_head keeps each case's last seq and hash, so a
-- deleted tail is noticed too. `./gridgov audit verify` recomputes everything.
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON case_event FROM gridgov_app;
GRANT SELECT, INSERT ON case_event TO gridgov_app;

ALTER TABLE case_event
    ADD COLUMN seq       integer,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash      bytea;

CREATE TABLE case_event_head (
    case_id bigint PRIMARY KEY,
    seq     integer NOT NULL,
    hash    bytea NOT NULL
);
REVOKE ALL ON case_event_head FROM gridgov_app;
GRANT SELECT ON case_event_head TO gridgov_app;

-- Version 1 of the digest: every column but `hash`, NULLs and empty strings told apart, the time as
-- epoch seconds (independent of the session's TimeZone), the previous hash last.
CREATE FUNCTION case_event_digest(e case_event) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(concat_ws('|', 'gridgov-event-v1', e.id, e.case_id, e.seq,
        extract(epoch FROM e.at)::text, quote_nullable(e.actor_id), quote_nullable(e.actor_role),
        quote_nullable(e.action), quote_nullable(e.from_state), quote_nullable(e.to_state),
        quote_nullable(e.reason), quote_nullable(e.data::text), encode(e.prev_hash, 'hex')), 'UTF8'))
$$;

-- Runs as the owner (SECURITY DEFINER): the app cannot write case_event_head itself. The head row lock
-- serialises appends per case, so the chain never forks under concurrent actions.
CREATE FUNCTION case_event_chain() RETURNS trigger
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
    UPDATE case_event_head SET seq = NEW.seq, hash = NEW.hash WHERE case_id = NEW.case_id;
    RETURN NEW;
END $$;

-- Chain the events already there (in id order per case), set-based: a running aggregate over each case's
-- events yields each hash from the previous one.
CREATE FUNCTION case_event_chain_step(prev bytea, e case_event, n integer) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    e.seq := n;
    e.prev_hash := coalesce(prev, '\x');
    RETURN case_event_digest(e);
END $$;
CREATE AGGREGATE case_event_chain_agg(case_event, integer) (SFUNC = case_event_chain_step, STYPE = bytea);

CREATE TEMP TABLE chained ON COMMIT DROP AS
SELECT id, case_id, n AS seq, h AS hash,
       coalesce(lag(h) OVER (PARTITION BY case_id ORDER BY n), '\x') AS prev_hash
FROM (SELECT id, case_id, n, case_event_chain_agg(e, n) OVER (PARTITION BY case_id ORDER BY n
                                                              ROWS UNBOUNDED PRECEDING) AS h
      FROM (SELECT e, e.id, e.case_id, (row_number() OVER (PARTITION BY e.case_id ORDER BY e.id))::integer AS n
            FROM case_event e) s) t;
ALTER TABLE case_event DISABLE TRIGGER case_event_no_update;
UPDATE case_event e SET seq = c.seq, prev_hash = c.prev_hash, hash = c.hash FROM chained c WHERE c.id = e.id;
INSERT INTO case_event_head (case_id, seq, hash)
    SELECT DISTINCT ON (case_id) case_id, seq, hash FROM chained ORDER BY case_id, seq DESC;
ALTER TABLE case_event ENABLE TRIGGER case_event_no_update;

ALTER TABLE case_event
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL;
CREATE UNIQUE INDEX case_event_seq_idx ON case_event (case_id, seq);

-- Named to fire after any other BEFORE INSERT trigger (they fire in name order), so it hashes the final row.
CREATE TRIGGER zz_case_event_chain BEFORE INSERT ON case_event
    FOR EACH ROW EXECUTE FUNCTION case_event_chain();
