-- Photos (and later other files) attached to a case, for every channel: stored in the database as
-- re-encoded bytes (EXIF and GPS removed before they get here), read only through cases.attachments,
-- which scopes every read with cases.auth.case_scope. Append-only like the event log: a photo is evidence.

CREATE TABLE case_attachment (
    id            bigserial PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES case_record (id),
    mime          text NOT NULL CHECK (mime IN ('image/jpeg', 'image/png', 'image/webp')),
    bytes         bytea NOT NULL,
    size          integer NOT NULL CHECK (size > 0),
    width         integer NOT NULL,
    height        integer NOT NULL,
    -- SHA-256 of the bytes as uploaded: the same photo sent twice (a retried upload) is stored once
    source_sha256 text NOT NULL,
    file_name     text NOT NULL DEFAULT '',
    uploaded_by   bigint REFERENCES app_user (id),
    uploaded_role text NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, source_sha256)
);

CREATE INDEX case_attachment_case_idx ON case_attachment (case_id, id);

CREATE FUNCTION case_attachment_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_attachment is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER case_attachment_no_change BEFORE UPDATE OR DELETE ON case_attachment
    FOR EACH ROW EXECUTE FUNCTION case_attachment_append_only();
