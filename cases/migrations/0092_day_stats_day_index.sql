-- case_day_stats by day (issue 11): the month's 四色码 ranking (cases.review.official_colour, when the month
-- has no snapshot yet) sums every unit's rows of the month; its only index led with unit_code, so it read the
-- whole aggregate: 12.2 s of the township review's 13.1 s at 1,000,000 cases (9.3 M aggregate rows, 4.2 GB at
-- 2,000,000 cases), growing with every year kept. With this index it reads the month's rows.
CREATE INDEX case_day_stats_day_idx ON case_day_stats (day);
-- No ANALYZE here: on a new, empty database it would record the table as empty, and the trigger's cached
-- plans would then scan it whole for every row of the first bulk load (tests/cases/test_scheduler.py
-- test_many_open_cases_in_batches went from 27 s to 76 s); autovacuum analyzes it once it has rows.
