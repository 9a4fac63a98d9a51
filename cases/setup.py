"""Reference data for the loop: routing rules from the category taxonomy and the demo users."""

from __future__ import annotations

from cases.auth import create_user
from cases.routing import default_rules

DEMO_PASSWORD = "gridgov2026"


def seed_routing_rules(db) -> int:
    """Insert the default routing rules (one per top-level category, plus the seeds' rules) if none exist."""
    if db.fetchone("SELECT count(*) AS n FROM routing_rule")["n"]:
        return 0
    cats = db.fetchall("SELECT code, name, parent_code, dept_kind, min_level FROM category ORDER BY code")
    rules = default_rules(cats)
    with db.cursor() as cur:
        for r in rules:
            cur.execute("INSERT INTO routing_rule (priority, category_code, kind, channel, region_prefix, "
                        "handler_level, dept_kinds, note) VALUES (%(priority)s, %(category_code)s, %(kind)s, "
                        "%(channel)s, %(region_prefix)s, %(handler_level)s, %(dept_kinds)s, %(note)s)", r)
    return len(rules)


def seed_demo_users(db, password: str = DEMO_PASSWORD) -> list[dict]:
    """One user per role for the demo city (documented in the README); skipped when users exist."""
    if db.fetchone("SELECT count(*) AS n FROM app_user")["n"]:
        return []
    gen = "(SELECT id FROM generation WHERE active)"
    city = db.fetchone(f"SELECT code, name FROM region WHERE level = 'city' AND generation = {gen}")
    county = db.fetchone(f"SELECT code, name FROM region WHERE level = 'county' AND generation = {gen} "
                         "ORDER BY code LIMIT 1")
    township = db.fetchone(f"SELECT code, name FROM region WHERE level = 'township' AND parent_code = %s "
                           f"AND generation = {gen} ORDER BY code LIMIT 1", (county["code"],))
    village = db.fetchone(f"SELECT code, name FROM region WHERE level = 'village' AND parent_code = %s "
                          f"AND generation = {gen} ORDER BY code LIMIT 1", (township["code"],))
    # The grid with the most open cases its officer handles (then the busiest), so the phone demo has a work list.
    grid = db.fetchone(
        f"SELECT g.code, g.name, g.village_code FROM grid g LEFT JOIN case_record c ON c.grid_code = g.code "
        f"WHERE g.generation = {gen} GROUP BY g.code, g.name, g.village_code ORDER BY count(c.id) FILTER (WHERE "
        f"c.status NOT IN ('closed', 'rejected', 'merged') AND c.handling_level IN ('grid', 'village')) DESC, "
        f"count(c.id) DESC, g.code LIMIT 1")
    officer = db.fetchone("SELECT s.code, s.name FROM staff s JOIN staff_role r ON r.role = s.role "
                          "WHERE s.grid_code = %s AND r.is_officer LIMIT 1", (grid["code"],))
    dept = db.fetchone("SELECT code, name, region_code FROM department WHERE level = 'county' AND kind = '住建' "
                       "AND region_code = %s", (county["code"],)) or \
        db.fetchone("SELECT code, name, region_code FROM department ORDER BY code LIMIT 1")
    specs = [
        ("admin", "admin", city["code"], "系统管理员", {}),
        ("city", "city_center", city["code"], f"{city['name']}综治中心", {}),
        ("county", "county_center", county["code"], f"{county['name']}综治中心", {}),
        ("township", "township_center", township["code"], f"{township['name']}综治中心", {}),
        ("village", "village_center", village["code"], f"{village['name']}综治中心", {}),
        ("officer", "grid_officer", grid["village_code"], officer["name"] if officer else grid["name"],
         {"grid_code": grid["code"], "staff_code": officer and officer["code"]}),
        ("dept", "department", dept["region_code"], dept["name"], {"department_code": dept["code"]}),
        ("dispatcher", "dispatcher", city["code"], "12345受理员", {}),
    ]
    out = []
    for username, role, region, name, extra in specs:
        u = create_user(db, username, password, role, region, display_name=name, **extra)
        out.append(u.to_dict())
    return out
