-- 四色码 with consequences (seed 004): publishing a month's rates gives each coloured unit its consequence as a
-- task with a due date — 绿 予以表扬, 黄 信访局联合领导督导组推动, 橙 信访局联合督导组专项督查督办,
-- 红 推进会表态发言、市领导直接约谈 — listed for the centers whose jurisdiction holds the unit.
CREATE TABLE colour_task (
    id          bigserial PRIMARY KEY,
    month       date NOT NULL,
    unit_type   text NOT NULL,
    unit_code   text NOT NULL,
    unit_name   text NOT NULL DEFAULT '',
    colour      text NOT NULL CHECK (colour IN ('green', 'yellow', 'orange', 'red')),
    consequence text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    due_date    date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    UNIQUE (month, unit_type, unit_code)
);
CREATE INDEX colour_task_unit_idx ON colour_task (unit_code text_pattern_ops, month);
