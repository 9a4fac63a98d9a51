-- 超期未评 counts against 满意率 (seed 002: "满意率较低。主要是网信超期未评件较多"), and every replied case gets an
-- evaluation window of its own.
--
-- case_record.eval_due_at is the end of the citizen's evaluation window, set when the case is replied
-- (replied_at + the rate policy's eval_window_days at that moment; cleared by a reopening). The scheduler sends
-- a 回访 reminder during the window and closes the case as 未评 after it. The aggregate counts `unevaluated` on
-- the day the window ends, when the case was not evaluated by the end of that month: the 满意率 denominator is
-- 参评 + 超期未评, in the monthly report (cases/rates.py) and in the review alike.
ALTER TABLE case_record ADD COLUMN eval_due_at timestamptz;
ALTER TABLE case_day_stats ADD COLUMN unevaluated integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION case_day_stats_delta_sql(src text) RETURNS text LANGUAGE sql STABLE AS $f$
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
           sum(r.sgn * x.reopened)::int reopened, sum(r.sgn * x.first_closed)::int first_closed,
           sum(r.sgn * x.first_clean)::int first_clean, sum(r.sgn * x.unevaluated)::int unevaluated
    FROM (%1$s) r,
    LATERAL (VALUES
        ((r.received_at AT TIME ZONE %2$L)::date, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.dispatched_at IS NOT NULL THEN (r.sign_due_at AT TIME ZONE %2$L)::date END,
         0, 1, (r.signed_at IS NOT NULL AND r.signed_at <= r.sign_due_at)::int, (r.returned_count > 0)::int,
         r.forwarded::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ((r.reply_due_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 1,
         (r.closed_at IS NOT NULL
          AND r.closed_at < ((date_trunc('month', r.reply_due_at AT TIME ZONE %2$L) + interval '1 month')
                             AT TIME ZONE %2$L)
          AND coalesce(r.solved, r.evaluation IS DISTINCT FROM '不满意'))::int,
         (r.replied_at IS NOT NULL AND r.replied_at <= r.reply_due_at)::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.evaluation IS NOT NULL
              THEN (coalesce(r.evaluated_at, r.closed_at) AT TIME ZONE %2$L)::date END,
         0, 0, 0, 0, 0, 0, 0, 0, 1, (r.evaluation = '满意')::int, (r.evaluation = '基本满意')::int,
         (r.evaluation = '不满意')::int, 0, 0, 0, 0, 0, 0),
        ((r.closed_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
         (r.returned_count = 0 AND r.reopened_count = 0)::int, (r.reopened_count > 0)::int,
         r.first_petition::int, (r.first_petition AND r.returned_count = 0 AND r.reopened_count = 0)::int, 0),
        -- 超期未评: the evaluation window ended that day and nobody evaluated by the end of its month
        (CASE WHEN r.eval_due_at IS NOT NULL THEN (r.eval_due_at AT TIME ZONE %2$L)::date END,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         (r.evaluation IS NULL OR coalesce(r.evaluated_at, r.closed_at)
            >= ((date_trunc('month', r.eval_due_at AT TIME ZONE %2$L) + interval '1 month') AT TIME ZONE %2$L))::int)
    ) x(day, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved, replied_on_time,
        evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened, first_closed, first_clean,
        unevaluated)
    WHERE x.day IS NOT NULL AND r.status <> 'merged' AND r.merged_into IS NULL
    GROUP BY 1, 2, 3 $q$, src, gridgov_time_zone())
$f$;

CREATE OR REPLACE FUNCTION case_day_stats_upsert_sql(src text) RETURNS text LANGUAGE sql STABLE AS $f$
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
         || 'reopened = s.reopened + EXCLUDED.reopened, first_closed = s.first_closed + EXCLUDED.first_closed, '
         || 'first_clean = s.first_clean + EXCLUDED.first_clean, unevaluated = s.unevaluated + EXCLUDED.unevaluated'
$f$;



DROP INDEX case_day_stats_unit_idx;
CREATE INDEX case_day_stats_unit_idx ON case_day_stats (unit_code text_pattern_ops, day)
    INCLUDE (category_code, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved,
             replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened,
             first_closed, first_clean, unevaluated);

-- Backfill: replied cases get the window the policy gives now (the update trigger fills `unevaluated`).
UPDATE case_record SET eval_due_at = replied_at + make_interval(days => coalesce(
    (SELECT (value ->> 'eval_window_days')::int FROM app_setting WHERE key = 'rate_policy'), 7))
WHERE replied_at IS NOT NULL;
