-- Evaluations are evidence (seed 001: "是否得到了解决，最终还是要群众来检验"): a reopening used to erase the
-- citizen's 不满意 from the month it was given. The evaluation and its time move into prior_evaluations /
-- prior_evaluated_at when a case is reopened, and every rate (满意率, 参评满意率) and the day aggregate count
-- each one in its own month.
ALTER TABLE case_record ADD COLUMN prior_evaluations text[] NOT NULL DEFAULT '{}',
                        ADD COLUMN prior_evaluated_at timestamptz[] NOT NULL DEFAULT '{}';
CREATE INDEX case_prior_evaluations_idx ON case_record (id) WHERE cardinality(prior_evaluations) > 0;

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
        -- 响应率: the 签收 milestone, or 受理 for a case without one (信访 under the regular procedure)
        (CASE WHEN r.dispatched_at IS NOT NULL
              THEN (coalesce(r.sign_due_at, r.accept_due_at) AT TIME ZONE %2$L)::date END,
         0, 1, (CASE WHEN r.sign_due_at IS NOT NULL THEN r.signed_at IS NOT NULL AND r.signed_at <= r.sign_due_at
                     ELSE r.accepted_at IS NOT NULL AND r.accepted_at <= r.accept_due_at END)::int,
         (r.returned_count > 0)::int,
         r.forwarded::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        -- 解决率 / 按时办结率: the 答复 milestone, or the 办结 limit where there is none (信访, emergencies)
        ((coalesce(r.reply_due_at, r.handle_due_at) AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 1,
         (r.closed_at IS NOT NULL
          AND r.closed_at < ((date_trunc('month', coalesce(r.reply_due_at, r.handle_due_at) AT TIME ZONE %2$L)
                              + interval '1 month') AT TIME ZONE %2$L)
          AND coalesce(r.solved, r.evaluation IS DISTINCT FROM '不满意'))::int,
         (r.replied_at IS NOT NULL AND r.replied_at <= coalesce(r.reply_due_at, r.handle_due_at))::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
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
        UNION ALL
        -- evaluations given before a reopening stay in the month they were given (seed 001)
        SELECT (p.at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 0, 0, 0, 1, (p.ev = '满意')::int,
               (p.ev = '基本满意')::int, (p.ev = '不满意')::int, 0, 0, 0, 0, 0, 0
        FROM unnest(r.prior_evaluations, r.prior_evaluated_at) AS p(ev, at)
    ) x(day, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved, replied_on_time,
        evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened, first_closed, first_clean,
        unevaluated)
    WHERE x.day IS NOT NULL AND r.status <> 'merged' AND r.merged_into IS NULL
    GROUP BY 1, 2, 3 $q$, src, gridgov_time_zone())
$f$;


