-- Cases (诉求件). Every case remembers the grid and the boundary generation that routed it.
-- Personal data (reporter_*) is only ever returned through the masking layer in cases/.
CREATE TABLE case_record (
    id             bigserial PRIMARY KEY,
    case_no        text UNIQUE NOT NULL,
    submission_key text UNIQUE,
    channel        text NOT NULL,
    kind           text NOT NULL,
    category_code  text REFERENCES category (code),
    title          text NOT NULL,
    content        text NOT NULL DEFAULT '',
    anonymous      boolean NOT NULL DEFAULT false,
    reporter_name  text,
    reporter_phone text,
    reporter_id_no text,
    address_text   text,
    geom           geometry(Point, 4326),
    orig_crs       text,
    orig_x         double precision,
    orig_y         double precision,
    grid_code      text,
    generation     integer REFERENCES generation (id),
    village_code   text,
    township_code  text,
    county_code    text,
    status         text NOT NULL,
    emergency      boolean NOT NULL DEFAULT false,
    received_at    timestamptz NOT NULL,
    accepted_at    timestamptz,
    dispatched_at  timestamptz,
    signed_at      timestamptz,
    replied_at     timestamptz,
    evaluated_at   timestamptz,
    closed_at      timestamptz,
    sign_due_at    timestamptz,
    reply_due_at   timestamptz,
    evaluation     text CHECK (evaluation IN ('满意', '基本满意', '不满意')),
    version        integer NOT NULL DEFAULT 1
);
CREATE INDEX case_geom_idx ON case_record USING gist (geom);
CREATE INDEX case_grid_idx ON case_record (grid_code);
CREATE INDEX case_township_idx ON case_record (township_code, received_at);
CREATE INDEX case_county_idx ON case_record (county_code, received_at);
CREATE INDEX case_received_idx ON case_record (received_at);
CREATE INDEX case_status_idx ON case_record (status);
