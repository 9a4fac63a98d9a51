"""Users, roles, jurisdiction and the one place every case read is scoped.

`case_scope(user)` returns the SQL predicate (with bound parameters) that every query touching
case_record passes through: jurisdiction by role, plus the conflict-of-interest guard — a 举报 that names
a unit or person is never visible to that unit or person, by any route. Personal data is shown only to
the roles handling the case (`can_see_personal_data`), masked for everyone else.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from cases.guard import party_for_user
from gis.errors import BadInput, Conflict, Unauthorized
from gis.privacy import mask_id_no, mask_name, mask_phone

ROLES = ("city_center", "county_center", "township_center", "village_center", "grid_officer", "department",
         "dispatcher", "admin")
ROLE_LABELS = {
    "city_center": "市综治中心", "county_center": "县级综治中心", "township_center": "乡镇（街道）综治中心",
    "village_center": "村（社区）综治中心", "grid_officer": "网格员", "department": "事权部门",
    "dispatcher": "受理派单员", "admin": "系统管理员",
}


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    region_code: str
    display_name: str = ""
    grid_code: str | None = None
    department_code: str | None = None
    staff_code: str | None = None

    @property
    def region_prefix(self) -> str:
        """The code prefix of the user's jurisdiction (a city code 220300 covers every 2203… code)."""
        return region_prefix(self.region_code)

    @property
    def identities(self) -> list[str]:
        """Unit identities an accusation could name (cases.guard.party_for_user): department, grid, own region
        and the regions above it up to the county, and their centers."""
        return sorted(party_for_user(self).units)

    @property
    def person_ids(self) -> list[str]:
        """Person identities an accusation could name: username, staff code, name."""
        return sorted(party_for_user(self).persons)

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role, "role_label": ROLE_LABELS[self.role],
                "region_code": self.region_code, "display_name": self.display_name, "grid_code": self.grid_code,
                "department_code": self.department_code}


def region_prefix(code: str) -> str:
    """The prefix every code inside a region starts with: a province-level code (xx0000, e.g. a municipality
    like 110000) covers its first 2 digits, a city (xxxx00) its first 4; other codes cover themselves."""
    if len(code) == 6 and code.endswith("0000"):
        return code[:2]
    if len(code) == 6 and code.endswith("00"):
        return code[:4]
    return code


def _user(row: dict) -> User:
    return User(id=row["id"], username=row["username"], role=row["role"], region_code=row["region_code"],
                display_name=row.get("display_name") or "", grid_code=row.get("grid_code"),
                department_code=row.get("department_code"), staff_code=row.get("staff_code"))


_USER_COLS = "id, username, role, region_code, display_name, grid_code, department_code, staff_code"


def create_user(db, username: str, password: str, role: str, region_code: str, display_name: str = "",
                grid_code: str | None = None, department_code: str | None = None,
                staff_code: str | None = None, hash_method: str | None = None) -> User:
    """Create a user with a hashed password (werkzeug's default, scrypt; tests may pass a cheaper
    `hash_method`); checks role and jurisdiction consistency."""
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; roles: {', '.join(ROLES)}", field="role")
    if not username or len(password) < 8:
        raise BadInput("username required and password of at least 8 characters", field="password")
    if role == "grid_officer" and not grid_code:
        raise BadInput("a grid officer needs a grid_code", field="grid_code")
    if role == "department" and not department_code:
        raise BadInput("a department handler needs a department_code", field="department_code")
    with db.cursor() as cur:
        cur.execute("SELECT 1 FROM app_user WHERE username = %s", (username,))
        if cur.fetchone():
            raise Conflict(f"user {username!r} already exists", field="username")
        cur.execute(
            f"INSERT INTO app_user (username, password_hash, role, region_code, display_name, grid_code, "
            f"department_code, staff_code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_USER_COLS}",
            (username, generate_password_hash(password, **({"method": hash_method} if hash_method else {})),
             role, region_code, display_name, grid_code,
             department_code, staff_code))
        return _user(cur.fetchone())


def authenticate(db, username: str, password: str) -> User:
    """The user for a username/password pair, or Unauthorized (same message either way)."""
    row = db.fetchone(f"SELECT {_USER_COLS}, password_hash FROM app_user WHERE username = %s AND active", (username,))
    if not row or not check_password_hash(row["password_hash"], password or ""):
        raise Unauthorized("用户名或密码错误")
    return _user(row)


def get_user(db, user_id: int) -> User | None:
    """A user by id (None when missing or inactive)."""
    row = db.fetchone(f"SELECT {_USER_COLS} FROM app_user WHERE id = %s AND active", (user_id,))
    return _user(row) if row else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db, user: User, name: str) -> str:
    """A new API token for machines; only its hash is stored, the token is shown once."""
    token = "ggt_" + secrets.token_urlsafe(32)
    db.execute("INSERT INTO api_token (user_id, name, token_hash) VALUES (%s, %s, %s)",
               (user.id, name, _token_hash(token)))
    return token


def user_for_token(db, token: str) -> User:
    """The user behind an API token, or Unauthorized."""
    row = db.fetchone(
        "UPDATE api_token t SET last_used_at = now() FROM app_user u WHERE t.token_hash = %s AND NOT t.revoked "
        "AND u.id = t.user_id AND u.active RETURNING u.id, u.username, u.role, u.region_code, u.display_name, "
        "u.grid_code, u.department_code, u.staff_code", (_token_hash(token),))
    if not row:
        raise Unauthorized("API token invalid or revoked")
    return _user(row)


# -- scoping: the one place ------------------------------------------------------------------------

def case_scope(user: User, alias: str = "c") -> tuple[str, dict]:
    """SQL predicate limiting case_record rows (as `alias`) to what `user` may read, with its parameters.

    Every query on cases includes it. Jurisdiction by role, then the conflict-of-interest guard: the SQL
    form of `cases.guard.may_touch(case, party_for_user(user))` — the same identities, the same overlap test
    (tests/cases/guards/test_guard_props.py checks that both agree).
    """
    a = alias
    p = {"scope_prefix": user.region_prefix + "%", "scope_ids": user.identities, "scope_persons": user.person_ids,
         "scope_grid": user.grid_code, "scope_dept": user.department_code}
    where_region = (f"coalesce({a}.village_code, {a}.township_code, {a}.county_code, {a}.handler_region, '') "
                    f"LIKE %(scope_prefix)s")
    if user.role in ("admin", "city_center", "county_center", "township_center", "village_center"):
        juris = where_region
    elif user.role == "dispatcher":
        # Unlocated cases waiting for a pin fall under the region the geocoder was sure of (county, or the
        # city through handler_region), so the same predicate covers the dispatcher's queue.
        juris = where_region
    elif user.role == "grid_officer":
        juris = f"{a}.grid_code = %(scope_grid)s"
    elif user.role == "department":
        juris = f"({a}.lead_department = %(scope_dept)s OR %(scope_dept)s = ANY({a}.co_departments))"
    else:
        juris = "false"
    guard = (f"NOT ({a}.accused_units && %(scope_ids)s::text[]) "
             f"AND NOT ({a}.accused_persons && %(scope_persons)s::text[])")
    return f"(({juris}) AND {guard})", p


def can_see_personal_data(user: User, case: dict) -> bool:
    """Only those handling the case see the reporter's name, phone and ID; everyone else sees them masked."""
    if user.role == "dispatcher":
        return True
    if user.role == "grid_officer":
        return case.get("grid_code") == user.grid_code and case.get("handling_level") in ("grid", "village")
    if user.role == "department":
        return case.get("lead_department") == user.department_code or \
            user.department_code in (case.get("co_departments") or [])
    if user.role in ("village_center", "township_center", "county_center"):
        return case.get("handler_region") == user.region_code
    return False


def present_personal_data(user: User, case: dict) -> dict:
    """The case with reporter fields masked unless the user handles it; marks `pii_masked`."""
    out = dict(case)
    out.pop("reporter_key", None)
    if case.get("anonymous"):
        out.update(reporter_name=None, reporter_phone=None, reporter_id_no=None, pii_masked=True)
        return out
    if can_see_personal_data(user, case):
        out["pii_masked"] = False
        return out
    out.update(reporter_name=mask_name(case.get("reporter_name")),
               reporter_phone=mask_phone(case.get("reporter_phone")) or case.get("reporter_phone"),
               reporter_id_no=mask_id_no(case.get("reporter_id_no")), pii_masked=True)
    return out
