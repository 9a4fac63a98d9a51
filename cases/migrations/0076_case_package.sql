-- 领导包案 (seeds 002, 004: "领导包案"、"一案一策"): a leader takes a hard or long-running case with a plan, a
-- responsible unit, a handling standard and a target date; the 台账 shows 责任领导, 责任单位, 办理时限 and
-- 办理标准 (seed 000 names these columns). 约访/下访 are `visit` events of the case. One current package per
-- case (a later `package` action replaces it; every assignment stays in the event log).
CREATE TABLE case_package (
    case_id     bigint PRIMARY KEY REFERENCES case_record (id),
    leader      text NOT NULL,
    unit        text NOT NULL,
    plan        text NOT NULL,
    standard    text NOT NULL DEFAULT '',
    target_date date NOT NULL,
    assigned_by bigint REFERENCES app_user (id),
    assigned_at timestamptz NOT NULL
);
