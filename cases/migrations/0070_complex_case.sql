-- 疑难复杂 (seed 002): a 信访 case flagged complex by the dispatcher or a center leaves 简易程序
-- (签收 1 / 答复 5 working days) for the regular regime (受理告知 15 days, 办结 60 days). The flag and its
-- reason are on the case; the decision itself is a `mark_complex` event in case_event.
ALTER TABLE case_record ADD COLUMN IF NOT EXISTS complex boolean NOT NULL DEFAULT false;
ALTER TABLE case_record ADD COLUMN IF NOT EXISTS complex_reason text;
