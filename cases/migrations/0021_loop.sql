-- The closed loop: users and jurisdiction, routing rules as data, the append-only event log,
-- notifications (reminders/supervision captured for a notifier), extensions and frozen monthly snapshots.

CREATE TABLE app_user (
    id              bigserial PRIMARY KEY,
    username        text UNIQUE NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    role            text NOT NULL CHECK (role IN ('city_center', 'county_center', 'township_center',
                        'village_center', 'grid_officer', 'department', 'dispatcher', 'admin')),
    -- jurisdiction: a region code (city/county/township/village); grid officers also have grid_code,
    -- department handlers department_code.
    region_code     text NOT NULL,
    grid_code       text,
    department_code text REFERENCES department (code),
    staff_code      text,
    password_hash   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_token (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES app_user (id),
    name         text NOT NULL,
    token_hash   text UNIQUE NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked      boolean NOT NULL DEFAULT false
);

-- Routing rules are data a city edits. A rule matches on category (prefix of the category code),
-- optionally kind and channel and a region prefix; the lowest priority number wins.
CREATE TABLE routing_rule (
    id            serial PRIMARY KEY,
    priority      integer NOT NULL DEFAULT 100,
    category_code text,
    kind          text,
    channel       text,
    region_prefix text,
    handler_level text NOT NULL CHECK (handler_level IN ('grid', 'village', 'township', 'county', 'city')),
    dept_kinds    text[] NOT NULL DEFAULT '{}',   -- lead first, then co-handlers (协办)
    note          text NOT NULL DEFAULT '',
    active        boolean NOT NULL DEFAULT true
);

ALTER TABLE case_record
    ADD COLUMN handling_level   text,
    ADD COLUMN handler_region   text,
    ADD COLUMN lead_department  text,
    ADD COLUMN co_departments   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN officer_code     text,
    ADD COLUMN routing          jsonb,
    ADD COLUMN geocode          jsonb,
    ADD COLUMN near_boundary    boolean NOT NULL DEFAULT false,
    ADD COLUMN needs_pin        boolean NOT NULL DEFAULT false,
    ADD COLUMN returned_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN forwarded        boolean NOT NULL DEFAULT false,
    ADD COLUMN solved           boolean,
    ADD COLUMN merged_into      bigint REFERENCES case_record (id),
    ADD COLUMN accused_units    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN accused_persons  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN accept_due_at    timestamptz,
    ADD COLUMN handle_due_at    timestamptz,
    ADD COLUMN deadline_profile text,
    ADD COLUMN extended_days    integer NOT NULL DEFAULT 0,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN reporter_key     text;   -- hash of the reporter's phone/ID, for repeat counting

CREATE INDEX case_reporter_key_idx ON case_record (reporter_key, received_at);
CREATE INDEX case_category_idx ON case_record (category_code, received_at);
CREATE INDEX case_lead_dept_idx ON case_record (lead_department);
CREATE INDEX case_needs_pin_idx ON case_record (needs_pin) WHERE needs_pin;

-- Append-only event log: one row per action, never updated or deleted.
CREATE TABLE case_event (
    id         bigserial PRIMARY KEY,
    case_id    bigint NOT NULL REFERENCES case_record (id),
    at         timestamptz NOT NULL DEFAULT now(),
    actor_id   bigint REFERENCES app_user (id),
    actor_role text NOT NULL,
    action     text NOT NULL,
    from_state text,
    to_state   text,
    reason     text,
    data       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_event_case_idx ON case_event (case_id, id);

CREATE FUNCTION case_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_event is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER case_event_no_update BEFORE UPDATE OR DELETE ON case_event
    FOR EACH ROW EXECUTE FUNCTION case_event_append_only();

CREATE TABLE extension_request (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES case_record (id),
    days        integer NOT NULL CHECK (days > 0),
    reason      text NOT NULL,
    requested_by bigint REFERENCES app_user (id),
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_by  bigint REFERENCES app_user (id),
    decided_at  timestamptz,
    approved    boolean
);

-- What the scheduler decided must be sent; the notifier delivers it. `dedupe_key` makes the
-- scheduler idempotent (one reminder per case per day, one supervision notice per 3-day step).
CREATE TABLE notification (
    id         bigserial PRIMARY KEY,
    case_id    bigint REFERENCES case_record (id),
    kind       text NOT NULL,
    recipient  text NOT NULL,
    message    text NOT NULL,
    dedupe_key text UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

-- Published monthly rates are frozen: recomputation writes a draft, never overwrites a published row.
CREATE TABLE rate_snapshot (
    month        date NOT NULL,
    unit_type    text NOT NULL,
    unit_code    text NOT NULL,
    unit_name    text NOT NULL DEFAULT '',
    metrics      jsonb NOT NULL,
    colour       text,
    colour_reason text,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (month, unit_type, unit_code)
);

CREATE FUNCTION rate_snapshot_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.published_at IS NOT NULL THEN
        RAISE EXCEPTION 'rate snapshot % % % is published and frozen', OLD.month, OLD.unit_type, OLD.unit_code;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER rate_snapshot_no_change BEFORE UPDATE OR DELETE ON rate_snapshot
    FOR EACH ROW EXECUTE FUNCTION rate_snapshot_frozen();
