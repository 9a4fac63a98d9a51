-- City-level settings that are data, not code (e.g. the rate policy: composite weights, 基本满意 weight,
-- evaluation window, 四色码 thresholds).
CREATE TABLE app_setting (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
