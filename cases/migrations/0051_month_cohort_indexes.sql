-- A month's 三率 (cases.reports.fetch_month_records, used by /api/rates, the wall and the monthly snapshot)
-- select the cases whose sign/reply due, evaluation, closure or evaluation-window end falls in the month.
-- Without these indexes that is a scan of the whole case table (4 s at 1,000,000 cases); with them a
-- BitmapOr over the month's ranges. Partial (NOT NULL) keeps them to the cases that have the instant.
CREATE INDEX IF NOT EXISTS case_sign_due_idx ON case_record (sign_due_at) WHERE sign_due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS case_reply_due_idx ON case_record (reply_due_at) WHERE reply_due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS case_evaluated_at_idx ON case_record (evaluated_at) WHERE evaluated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS case_replied_at_idx ON case_record (replied_at) WHERE replied_at IS NOT NULL;
ANALYZE case_record;
