-- The deployment's local time zone (GRIDGOV_TIMEZONE; Asia/Shanghai unless a deployment says otherwise).
-- The app records it in app_setting 'time_zone' at start (and refuses a change once cases exist); the day
-- buckets of case_day_stats, the case number's date and the wall/review day series all use it, as the Python
-- side (cases.calendar.TZ) does.
CREATE FUNCTION gridgov_time_zone() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((SELECT value #>> '{}' FROM app_setting WHERE key = 'time_zone'), 'Asia/Shanghai')
$$;

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
           sum(r.sgn * x.reopened)::int reopened
    FROM (%1$s) r,
    LATERAL (VALUES
        ((r.received_at AT TIME ZONE %2$L)::date, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.dispatched_at IS NOT NULL THEN (r.sign_due_at AT TIME ZONE %2$L)::date END,
         0, 1, (r.signed_at IS NOT NULL AND r.signed_at <= r.sign_due_at)::int, (r.returned_count > 0)::int,
         r.forwarded::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ((r.reply_due_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 1,
         (r.closed_at IS NOT NULL
          AND r.closed_at < ((date_trunc('month', r.reply_due_at AT TIME ZONE %2$L) + interval '1 month')
                             AT TIME ZONE %2$L)
          AND coalesce(r.solved, r.evaluation IS DISTINCT FROM '不满意'))::int,
         (r.replied_at IS NOT NULL AND r.replied_at <= r.reply_due_at)::int, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.evaluation IS NOT NULL
              THEN (coalesce(r.evaluated_at, r.closed_at) AT TIME ZONE %2$L)::date END,
         0, 0, 0, 0, 0, 0, 0, 0, 1, (r.evaluation = '满意')::int, (r.evaluation = '基本满意')::int,
         (r.evaluation = '不满意')::int, 0, 0, 0),
        ((r.closed_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
         (r.returned_count = 0 AND r.reopened_count = 0)::int, (r.reopened_count > 0)::int)
    ) x(day, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved, replied_on_time,
        evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened)
    WHERE x.day IS NOT NULL AND r.status <> 'merged' AND r.merged_into IS NULL
    GROUP BY 1, 2, 3 $q$, src, gridgov_time_zone())
$f$;

-- The upsert only wraps the delta: it reads the zone through it, so it is no longer immutable either.
ALTER FUNCTION case_day_stats_upsert_sql(text) STABLE;
