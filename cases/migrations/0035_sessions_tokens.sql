-- Server-side sessions, login throttling and scoped, expiring API tokens (issue 8 §2).

-- A session cookie carries a random id; only its SHA-256 is stored. Logout ends the row, so an old
-- cookie is dead even though its signature is still valid.
CREATE TABLE auth_session (
    id_hash     text PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES app_user (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    ip          text
);
CREATE INDEX auth_session_user ON auth_session (user_id) WHERE ended_at IS NULL;

-- Failed logins, per username (known or not) and per client address; the throttle counts recent rows.
CREATE TABLE login_failure (
    id       bigserial PRIMARY KEY,
    username text NOT NULL,
    ip       text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_user ON login_failure (username, at);
CREATE INDEX login_failure_ip ON login_failure (ip, at);

-- Tokens: an expiry, a scope (a region inside the owner's jurisdiction, a subset of permissions) and
-- a revocation time.
ALTER TABLE api_token
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN scope_region text,
    ADD COLUMN permissions  text[] NOT NULL DEFAULT ARRAY['read', 'intake', 'act'],
    ADD COLUMN revoked_at   timestamptz;
UPDATE api_token SET expires_at = created_at + interval '365 days';
ALTER TABLE api_token ALTER COLUMN expires_at SET NOT NULL;
