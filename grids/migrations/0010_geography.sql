-- Governance geography: regions, grids, people, centers, departments, addresses.
-- Codes are identities (统计用区划代码): county 6 digits, township 9, village/community 12,
-- grid = community code + 3-digit sequence (15). The city is the 6-digit code ending in "00".
-- Boundaries are versioned by generation (MapIt style): every committed boundary import is a
-- new generation, exactly one generation is active at a time, old ones stay queryable.

CREATE TABLE generation (
    id           integer PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    active       boolean NOT NULL DEFAULT false,
    source       text NOT NULL,
    note         text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX generation_one_active ON generation (active) WHERE active;

CREATE TABLE region (
    code        text NOT NULL,
    generation  integer NOT NULL REFERENCES generation (id),
    level       text NOT NULL CHECK (level IN ('city', 'county', 'township', 'village')),
    name        text NOT NULL,
    short_name  text NOT NULL DEFAULT '',
    parent_code text,
    -- 街道/镇/乡 for townships, 社区/村 for villages, 区/县/县级市 for counties
    kind        text NOT NULL DEFAULT '',
    urban       boolean NOT NULL DEFAULT false,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (code, generation)
);
CREATE INDEX region_geom_idx ON region USING gist (geom);
CREATE INDEX region_parent_idx ON region (parent_code, generation);
CREATE INDEX region_level_idx ON region (level, generation);

CREATE TABLE grid (
    code         text NOT NULL,
    generation   integer NOT NULL REFERENCES generation (id),
    name         text NOT NULL,
    grid_type    text NOT NULL CHECK (grid_type IN ('社区', '乡村', '专属')),
    village_code text NOT NULL,
    geom         geometry(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (code, generation)
);
CREATE INDEX grid_geom_idx ON grid USING gist (geom);
CREATE INDEX grid_village_idx ON grid (village_code, generation);

-- The grid's people: its full-time officer (网格员) and the configured chiefs (一格三长 /
-- 网格长 + 村民代表). Which chief roles exist is configuration (staff_role).
CREATE TABLE staff_role (
    role       text PRIMARY KEY,
    label      text NOT NULL,
    applies_to text NOT NULL CHECK (applies_to IN ('社区', '乡村', '专属', 'all')),
    is_officer boolean NOT NULL DEFAULT false,
    sort       integer NOT NULL DEFAULT 0
);

CREATE TABLE staff (
    id        bigserial PRIMARY KEY,
    code      text UNIQUE NOT NULL,
    name      text NOT NULL,
    phone     text NOT NULL DEFAULT '',
    role      text NOT NULL REFERENCES staff_role (role),
    grid_code text,
    active    boolean NOT NULL DEFAULT true
);
CREATE INDEX staff_grid_idx ON staff (grid_code);

-- 综治中心 at every level, a point with a jurisdiction (region code).
CREATE TABLE center (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    level       text NOT NULL CHECK (level IN ('city', 'county', 'township', 'village')),
    region_code text NOT NULL,
    phone       text NOT NULL DEFAULT '',
    geom        geometry(Point, 4326) NOT NULL
);
CREATE INDEX center_region_idx ON center (region_code);
CREATE INDEX center_geom_idx ON center USING gist (geom);

-- Departments (事权部门) with their jurisdiction: a region code at county or city level
-- (some at township). `kind` is the functional type (住建, 城管, ...) routing rules refer to.
CREATE TABLE department (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    level       text NOT NULL CHECK (level IN ('city', 'county', 'township', 'village')),
    region_code text NOT NULL,
    phone       text NOT NULL DEFAULT ''
);
CREATE INDEX department_kind_idx ON department (kind, region_code);

-- Roads (with aliases and old names) and standard addresses (标准地址, 一标三实).
CREATE TABLE road (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    county_code text NOT NULL,
    aliases     text[] NOT NULL DEFAULT '{}',
    old_names   text[] NOT NULL DEFAULT '{}',
    geom        geometry(LineString, 4326),
    UNIQUE (name, county_code)
);

CREATE TABLE address (
    code          text PRIMARY KEY,
    full_text     text NOT NULL,
    county_code   text NOT NULL,
    township_code text NOT NULL,
    village_code  text NOT NULL,
    road          text NOT NULL DEFAULT '',
    door_no       text NOT NULL DEFAULT '',
    compound      text NOT NULL DEFAULT '',   -- 小区 / 屯 / 组
    building      text NOT NULL DEFAULT '',   -- building number as digits ("3" for 3号楼)
    unit          text NOT NULL DEFAULT '',
    grid_code     text NOT NULL,
    geom          geometry(Point, 4326) NOT NULL
);
CREATE INDEX address_geom_idx ON address USING gist (geom);
CREATE INDEX address_grid_idx ON address (grid_code);
CREATE INDEX address_village_idx ON address (village_code);

-- Hierarchical, data-driven category taxonomy. `dept_kind` names the department type that
-- handles it; `min_level` is the lowest level allowed to handle it (村为主、乡镇兜底、县域止访).
CREATE TABLE category (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    parent_code text REFERENCES category (code),
    dept_kind   text NOT NULL DEFAULT '',
    min_level   text NOT NULL DEFAULT 'village'
        CHECK (min_level IN ('grid', 'village', 'township', 'county', 'city'))
);
