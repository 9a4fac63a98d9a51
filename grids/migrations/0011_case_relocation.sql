-- Audit of case re-location when a new boundary generation is activated: which case moved from
-- which grid (and generation) to which. Append-only. No foreign key to case_record: cases are
-- created by a later migration (0020) and this log must outlive any case clean-up.
CREATE TABLE case_relocation (
    id              bigserial PRIMARY KEY,
    case_id         bigint NOT NULL,
    case_no         text NOT NULL,
    from_grid       text,
    from_generation integer,
    to_grid         text,           -- NULL: the case lies outside the new coverage and kept its grid
    to_generation   integer NOT NULL REFERENCES generation (id),
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_relocation_case_idx ON case_relocation (case_id, at);
CREATE INDEX case_relocation_generation_idx ON case_relocation (to_generation);
