-- Every read of cases is limited by cases.auth.case_scope, whose region test is
-- `coalesce(village_code, township_code, county_code, handler_region, '') LIKE '<prefix>%'`. Without statistics
-- on that expression the planner guessed it keeps 0.5% of the rows even for a city center, whose prefix keeps
-- them all, and sorted 12,600 open cases for a 50-row page instead of reading case_urgency_idx in order (37 ms
-- instead of 0.16 ms). Extended statistics on the expression (PostgreSQL 14+) give it the real prefix shares.
CREATE STATISTICS case_scope_region_stats ON (coalesce(village_code, township_code, county_code, handler_region, ''))
    FROM case_record;
ANALYZE case_record;
