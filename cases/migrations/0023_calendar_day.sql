-- Working-day overrides: the State Council's holiday announcement for a year chinese-calendar does not
-- know yet (or a local change). A row wins over the library for its date.
CREATE TABLE calendar_day (
    day        date PRIMARY KEY,
    is_workday boolean NOT NULL,
    name       text,
    source     text NOT NULL DEFAULT ''
);
