-- The case list, most urgent first (cases.case_reads `_LIST_ORDERS['urgency']`), sorted every open case of
-- the caller's scope to return the first page: 90–190 ms for a city-wide dispatcher with 50,000 open cases,
-- worse while intake adds more (issue 11: the read endpoints must keep their p99 while intake runs). An index
-- on exactly that key over the open cases lets a page be read in order and stop after `limit` rows.
-- Keep the expression identical to _LIST_ORDERS['urgency'] (tests/cases/test_service.py checks the plan).
CREATE INDEX case_urgency_idx ON case_record ((coalesce(CASE WHEN status IN ('dispatched', 'returned') THEN sign_due_at
    WHEN status IN ('received', 'accepted') THEN coalesce(accept_due_at, received_at)
    WHEN status IN ('signed', 'handling', 'reopened') THEN coalesce(reply_due_at, handle_due_at) END,
    '9999-12-31T00:00:00Z'::timestamptz)), id)
    WHERE status <> ALL (ARRAY['closed', 'merged', 'rejected']);
