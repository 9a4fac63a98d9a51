-- The command-center wall reads live (open) cases by unit and by map window, and the last days' closures.
-- Open cases are a small share of all cases, so partial indexes keep those reads proportional to the open
-- cases, whatever the size of the case table. The predicate is written exactly as cases/wallstats.py
-- writes it (OPEN_SQL), so the planner can prove the index applies.
CREATE INDEX IF NOT EXISTS case_open_unit_idx ON case_record (township_code, grid_code)
    WHERE status NOT IN ('closed', 'merged', 'rejected');
CREATE INDEX IF NOT EXISTS case_open_geom_idx ON case_record USING gist (geom)
    WHERE status NOT IN ('closed', 'merged', 'rejected');
CREATE INDEX IF NOT EXISTS case_closed_at_idx ON case_record (closed_at) WHERE closed_at IS NOT NULL;
ANALYZE case_record;  -- fresh statistics, so the planner sees how few cases are open
