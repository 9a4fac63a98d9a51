-- 一次性化解率 as the seeds count it: "求决类初次信访一次性化解率98.72%" (seed 000), i.e. among the 求决 (demand)
-- petitions that are the person's first 信访, the share closed without a return or a reopening.
--
-- case_record.first_petition marks such a case. mark_first_petitions(ids, channels) sets it for the given
-- cases (the app passes cases.deadlines.PETITION_CHANNELS): kind 求决, a 信访 channel, not merged, and no
-- earlier 信访 case (any channel of the list, any kind) with the same reporter_key. Anonymous cases count as
-- first (nothing says otherwise). Intake calls it for each new case, the demo loader once per COPY chunk;
-- the backfill below marks existing databases. The aggregate gets first_closed / first_clean on the day of
-- closed_at, so the review and the monthly report compute the same 一次性化解率.
ALTER TABLE case_record ADD COLUMN first_petition boolean NOT NULL DEFAULT false;
ALTER TABLE case_day_stats ADD COLUMN first_closed integer NOT NULL DEFAULT 0,
                           ADD COLUMN first_clean  integer NOT NULL DEFAULT 0;

CREATE FUNCTION mark_first_petitions(ids bigint[], channels text[]) RETURNS integer LANGUAGE sql AS $$
    WITH marked AS (
        UPDATE case_record c SET first_petition = true
        WHERE c.id = ANY(ids) AND NOT c.first_petition AND c.kind = '求决' AND c.channel = ANY(channels)
          AND c.status <> 'merged' AND c.merged_into IS NULL
          AND (c.reporter_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM case_record e
                WHERE e.reporter_key = c.reporter_key AND e.channel = ANY(channels)
                  AND (e.received_at, e.id) < (c.received_at, c.id)))
        RETURNING 1)
    SELECT count(*)::int FROM marked
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
           sum(r.sgn * x.reopened)::int reopened, sum(r.sgn * x.first_closed)::int first_closed,
           sum(r.sgn * x.first_clean)::int first_clean
    FROM (%1$s) r,
    LATERAL (VALUES
        ((r.received_at AT TIME ZONE %2$L)::date, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.dispatched_at IS NOT NULL THEN (r.sign_due_at AT TIME ZONE %2$L)::date END,
         0, 1, (r.signed_at IS NOT NULL AND r.signed_at <= r.sign_due_at)::int, (r.returned_count > 0)::int,
         r.forwarded::int, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ((r.reply_due_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 1,
         (r.closed_at IS NOT NULL
          AND r.closed_at < ((date_trunc('month', r.reply_due_at AT TIME ZONE %2$L) + interval '1 month')
                             AT TIME ZONE %2$L)
          AND coalesce(r.solved, r.evaluation IS DISTINCT FROM '不满意'))::int,
         (r.replied_at IS NOT NULL AND r.replied_at <= r.reply_due_at)::int, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (CASE WHEN r.evaluation IS NOT NULL
              THEN (coalesce(r.evaluated_at, r.closed_at) AT TIME ZONE %2$L)::date END,
         0, 0, 0, 0, 0, 0, 0, 0, 1, (r.evaluation = '满意')::int, (r.evaluation = '基本满意')::int,
         (r.evaluation = '不满意')::int, 0, 0, 0, 0, 0),
        ((r.closed_at AT TIME ZONE %2$L)::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
         (r.returned_count = 0 AND r.reopened_count = 0)::int, (r.reopened_count > 0)::int,
         r.first_petition::int, (r.first_petition AND r.returned_count = 0 AND r.reopened_count = 0)::int)
    ) x(day, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved, replied_on_time,
        evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened, first_closed, first_clean)
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
         || 'first_clean = s.first_clean + EXCLUDED.first_clean'
$f$;


DROP INDEX case_day_stats_unit_idx;
CREATE INDEX case_day_stats_unit_idx ON case_day_stats (unit_code text_pattern_ops, day)
    INCLUDE (category_code, received, sign_cohort, signed_ok, returned, forwarded, reply_cohort, resolved,
             replied_on_time, evaluated, eval_sat, eval_basic, eval_unsat, closed, closed_clean, reopened,
             first_closed, first_clean);

-- Backfill (the update trigger carries the marks into case_day_stats).
SELECT mark_first_petitions(array(SELECT id FROM case_record WHERE kind = '求决' ORDER BY received_at, id),
                            ARRAY['leader_reception', 'letter', 'online_petition', 'visit']);
