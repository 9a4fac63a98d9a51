-- The conflict-of-interest guard (cases/guard.py, cases/accused.py): how each accused mention was resolved,
-- the routing floor above every plausible accused body when a mention was ambiguous or unresolved, and the
-- dispatcher flag; the fingerprint of the submission (a replayed submission_key with other content is 409).
ALTER TABLE case_record
    ADD COLUMN accused_mentions jsonb,
    ADD COLUMN guard_floor      text CHECK (guard_floor IN ('grid', 'village', 'township', 'county', 'city')),
    ADD COLUMN guard_review     boolean NOT NULL DEFAULT false,
    ADD COLUMN submission_hash  text;
CREATE INDEX case_guard_review_idx ON case_record (guard_review) WHERE guard_review;
-- A notification recorded before its case gained an accusation (e.g. through a merge) is never delivered to
-- the accused: delivery re-checks the guard and marks it suppressed instead.
ALTER TABLE notification ADD COLUMN suppressed text;
