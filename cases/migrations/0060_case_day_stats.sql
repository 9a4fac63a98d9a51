-- Per unit × category × day counts for the township review (乡镇研判) and per-grid 三率, kept exact by
-- statement-level triggers on case_record (transition tables: one GROUP BY per statement, so COPY of a
-- million cases costs one aggregate pass, not a million upserts).
--
-- unit_code is the most precise unit a case is located to: its grid, else village, township, county
-- ('' when unlocated). Codes nest (a grid code extends its village's, which extends its township's), so
-- a township's rows are `unit_code LIKE township || '%'`.
--
-- Each count belongs to the day of its own cohort instant (Beijing time), mirroring cases/rates.py:
--   received                         day of received_at
--   sign_cohort, signed_ok,          day of sign_due_at, dispatched cases only
--   returned, forwarded
--   reply_cohort, resolved,          day of reply_due_at; resolved = closed before the end of the reply-due
--   replied_on_time                  month and (solved, or solved unset and not 不满意) — rates.is_resolved
--                                    with the month's end as the cut
--   evaluated, eval_sat, eval_basic, day of evaluated_at (closed_at when unset)
--   eval_unsat
--   closed, closed_clean, reopened   day of closed_at
-- Merged duplicates (一稿多投) count once, on their master: rows with status 'merged' or merged_into set
-- contribute nothing.
CREATE TABLE case_day_stats (
    unit_code       text    NOT NULL,
    category_code   text    NOT NULL,
    day             date    NOT NULL,
    received        integer NOT NULL DEFAULT 0,
    sign_cohort     integer NOT NULL DEFAULT 0,
    signed_ok       integer NOT NULL DEFAULT 0,
    returned        integer NOT NULL DEFAULT 0,
    forwarded       integer NOT NULL DEFAULT 0,
    reply_cohort    integer NOT NULL DEFAULT 0,
    resolved        integer NOT NULL DEFAULT 0,
    replied_on_time integer NOT NULL DEFAULT 0,
    evaluated       integer NOT NULL DEFAULT 0,
    eval_sat        integer NOT NULL DEFAULT 0,
    eval_basic      integer NOT NULL DEFAULT 0,
    eval_unsat      integer NOT NULL DEFAULT 0,
    closed          integer NOT NULL DEFAULT 0,
    closed_clean    integer NOT NULL DEFAULT 0,
    reopened        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_code, day, category_code)
);
-- A unit's rows for a period by an index-only scan (text_pattern_ops: LIKE 'code%' under any collation).
CREATE INDEX case_day_stats_unit_idx ON case_day_stats (unit_code text_pattern_ops, day)
    INCLUDE (category_code, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved,
             replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened);

-- The contributions of a set of case rows (sgn = +1 for new rows, -1 for old ones), one row per cohort.
CREATE FUNCTION case_day_stats_delta_sql(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    SELECT coalesce(r.grid_code, r.village_code, r.township_code, r.county_code, '') AS unit_code,
           coalesce(r.category_code, '') AS category_code, x.day,
           sum(r.sgn * x.received)::int received, sum(r.sgn * x.sign_cohort)::int sign_cohort,
           sum(r.sgn * x.signed_ok)::int signed_ok, sum(r.sgn * x.returned)::int returned,
           sum(r.sgn * x.forwarded)::int forwarded, sum(r.sgn * x.reply_cohort)::int reply_cohort,
           sum(r.sgn * x.resolved)::int resolved, sum(r.sgn * x.replied_on_time)::int replied_on_time,
           sum(r.sgn * x.evaluated)::int evaluated, sum(r.sgn * x.eval_sat)::int eval_sat,
           sum(r.sgn * x.eval_basic)::int eval_basic, sum(r.sgn * x.eval_unsat)::int eval_unsat,
           sum(r.sgn * x.closed)::int closed, sum(r.sgn * x.closed_clean)::int closed_clean,
           sum(r.sgn * x.reopened)::int reopened
    FROM (%s) r,
    LATERAL (VALUES
        ((r.received_at AT TIME ZONE 'Asia/Shanghai')::date, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.dispatched_at IS NOT NULL THEN (r.sign_due_at AT TIME ZONE 'Asia/Shanghai')::date END,
         0, 1, (r.signed_at IS NOT NULL AND r.signed_at <= r.sign_due_at)::int, (r.returned_count > 0)::int,
         r.forwarded::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ((r.reply_due_at AT TIME ZONE 'Asia/Shanghai')::date, 0, 0, 0, 0, 0, 1,
         (r.closed_at IS NOT NULL
          AND r.closed_at < ((date_trunc('month', r.reply_due_at AT TIME ZONE 'Asia/Shanghai') + interval '1 month')
                             AT TIME ZONE 'Asia/Shanghai')
          AND coalesce(r.solved, r.evaluation IS DISTINCT FROM '不满意'))::int,
         (r.replied_at IS NOT NULL AND r.replied_at <= r.reply_due_at)::int, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.evaluation IS NOT NULL
              THEN (coalesce(r.evaluated_at, r.closed_at) AT TIME ZONE 'Asia/Shanghai')::date END,
         0, 0, 0, 0, 0, 0, 0, 0, 1, (r.evaluation = '满意')::int, (r.evaluation = '基本满意')::int,
         (r.evaluation = '不满意')::int, 0, 0, 0),
        ((r.closed_at AT TIME ZONE 'Asia/Shanghai')::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
         (r.returned_count = 0 AND r.reopened_count = 0)::int, (r.reopened_count > 0)::int)
    ) x(day, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved, replied_on_time,
        evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
    WHERE x.day IS NOT NULL AND r.status <> 'merged' AND r.merged_into IS NULL
    GROUP BY 1, 2, 3 $q$, src)
$f$;

-- The upsert adding those contributions (run by EXECUTE in the trigger function itself: transition tables
-- are visible only there, not in functions it calls).
CREATE FUNCTION case_day_stats_upsert_sql(src text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT 'INSERT INTO case_day_stats AS s SELECT * FROM (' || case_day_stats_delta_sql(src) || ') d '
         || 'ON CONFLICT (unit_code, day, category_code) DO UPDATE SET '
         || 'received = s.received + EXCLUDED.received, sign_cohort = s.sign_cohort + EXCLUDED.sign_cohort, '
         || 'signed_ok = s.signed_ok + EXCLUDED.signed_ok, returned = s.returned + EXCLUDED.returned, '
         || 'forwarded = s.forwarded + EXCLUDED.forwarded, reply_cohort = s.reply_cohort + EXCLUDED.reply_cohort, '
         || 'resolved = s.resolved + EXCLUDED.resolved, '
         || 'replied_on_time = s.replied_on_time + EXCLUDED.replied_on_time, '
         || 'evaluated = s.evaluated + EXCLUDED.evaluated, eval_sat = s.eval_sat + EXCLUDED.eval_sat, '
         || 'eval_basic = s.eval_basic + EXCLUDED.eval_basic, eval_unsat = s.eval_unsat + EXCLUDED.eval_unsat, '
         || 'closed = s.closed + EXCLUDED.closed, closed_clean = s.closed_clean + EXCLUDED.closed_clean, '
         || 'reopened = s.reopened + EXCLUDED.reopened'
$f$;

CREATE FUNCTION case_day_stats_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE case_day_stats_upsert_sql('SELECT n.*, 1 AS sgn FROM new_rows n');
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE case_day_stats_upsert_sql('SELECT o.*, -1 AS sgn FROM old_rows o');
    ELSE
        EXECUTE case_day_stats_upsert_sql(
            'SELECT o.*, -1 AS sgn FROM old_rows o UNION ALL SELECT n.*, 1 FROM new_rows n');
    END IF;
    RETURN NULL;
END
$f$;

CREATE TRIGGER case_day_stats_ins AFTER INSERT ON case_record REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_day_stats_sync();
CREATE TRIGGER case_day_stats_upd AFTER UPDATE ON case_record REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_day_stats_sync();
CREATE TRIGGER case_day_stats_del AFTER DELETE ON case_record REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION case_day_stats_sync();

-- Backfill: existing databases get the same numbers the triggers would have kept.
DO $$ BEGIN EXECUTE case_day_stats_upsert_sql('SELECT c.*, 1 AS sgn FROM case_record c'); END $$;
