-- Rural standard-address components and old names (issue 12).
-- 村民小组 and 自然村 are components of a rural standard address ("新发村窝堡屯三组12号"), like road and
-- compound are of an urban one. Regions keep their 曾用名 / 别名 (合村并组, 撤乡设镇): callers still say them.
ALTER TABLE address ADD COLUMN village_group text NOT NULL DEFAULT '';    -- 村民小组 number as digits ("3")
ALTER TABLE address ADD COLUMN natural_village text NOT NULL DEFAULT '';  -- 自然村 / 屯 (窝堡屯, 李家庄, 沈家浜)
ALTER TABLE region ADD COLUMN aliases text[] NOT NULL DEFAULT '{}';
