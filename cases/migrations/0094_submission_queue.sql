-- Queued intake (issue 11, "intake near the database's ceiling"): a surge channel (a 12345 system's or a
-- mini-program's back end forwarding online matters) hands a submission over and gets its answer at once —
-- accepted, with the case number it will carry and the grid its point falls in — while a writer registers
-- the queued submissions as cases in batches (routing, deadlines, events, duplicate search: the same code as
-- POST /api/cases). GeoReport v2 (Open311) answers a POST the same way, with a token to resolve later.
--
-- The row is the receipt: the case number is allocated here from the same sequence as every case, so the
-- citizen's reference never changes; the personal data in `payload` is cleared once the case holds it.
CREATE TABLE submission_queue (
    id             bigserial PRIMARY KEY,
    submission_key text NOT NULL UNIQUE,
    case_no        text NOT NULL,
    user_id        bigint NOT NULL,   -- app_user.id; no foreign key: its check would KEY SHARE-lock the one
                                      -- user row every acceptance of a 12345 system's token comes from
    token_id       bigint,
    payload        jsonb,
    fingerprint    text NOT NULL,
    grid_code      text,
    received_at    timestamptz NOT NULL,
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    state          text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'registered', 'rejected')),
    case_id        bigint,
    result         jsonb,
    processed_at   timestamptz,
    CHECK ((state = 'queued') = (processed_at IS NULL)),
    CHECK (state <> 'registered' OR case_id IS NOT NULL)
);
-- the writer's batch: oldest queued first
CREATE INDEX submission_queue_pending_idx ON submission_queue (id) WHERE state = 'queued';
