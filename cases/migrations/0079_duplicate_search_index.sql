-- The duplicate search of intake (cases.service.duplicate_query) asks for cases of the same category, within
-- the duplicate radius, received within ±duplicate_days: one GiST index over the point, the time and the
-- category (btree_gist supplies the GiST operator classes of timestamptz and text), so its cost is bounded
-- by the cases near the point in the window, not by the spot's history nor by a surge of the category
-- elsewhere (issue 11: intake fell from 292 to 74 req/s after 6,000 cases in one district). The point leads,
-- so the index serves every plain spatial query too and replaces the geometry-only index: no more indexes
-- for intake to maintain than before. btree_gist is a trusted extension: the owner role creates it.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX case_geom_time_idx ON case_record USING gist (geom, received_at, category_code);
DROP INDEX case_geom_idx;
