"""Users, roles, jurisdiction and the one place every case read is scoped.

`case_scope(user)` returns the SQL predicate (with bound parameters) that every query touching
case_record passes through: jurisdiction by role, plus the conflict-of-interest guard — a 举报 that names
a unit or person is never visible to that unit or person, by any route. Personal data is shown only to
the roles handling the case (`can_see_personal_data`), masked for everyone else.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from cases.guard import party_for_user
from gis.errors import BadInput, Conflict, Forbidden, NotFound, Unauthorized
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


def user_columns(alias: str) -> str:
    """The columns a User is built from, qualified by a table alias (for joins)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in _USER_COLS.split(","))


user_from_row = _user


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


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A hash of a random password with the default method, checked for unknown usernames so that a
    login costs one password hash whether the user exists or not (no timing oracle)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_hex(16)))
    return _DUMMY_HASH[0]


def authenticate(db, username: str, password: str) -> User:
    """The user for a username/password pair, or Unauthorized (same message and cost either way)."""
    row = db.fetchone(f"SELECT {_USER_COLS}, password_hash FROM app_user WHERE username = %s AND active", (username,))
    ok = check_password_hash(row["password_hash"] if row else _dummy_hash(), password or "")
    if not row or not ok:
        raise Unauthorized("用户名或密码错误")
    return _user(row)


def get_user(db, user_id: int) -> User | None:
    """A user by id (None when missing or inactive)."""
    row = db.fetchone(f"SELECT {_USER_COLS} FROM app_user WHERE id = %s AND active", (user_id,))
    return _user(row) if row else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKEN_TOUCH_SECONDS = 60   # last_used_at of a token is at most this old while it is in use
TOKEN_PERMISSIONS = ("read", "intake", "act")  # read cases; register cases; act on cases (and pin)
TOKEN_MAX_DAYS = 365
# Roles whose jurisdiction is a region, so a token may narrow it to a region inside it.
_REGION_ROLES = frozenset({"admin", "city_center", "county_center", "township_center", "village_center",
                           "dispatcher"})


@dataclass(frozen=True)
class TokenUser(User):
    """A user acting through an API token: the owner's identity (so the accusation guard is the owner's)
    with the token's scope — possibly a narrower region and a subset of permissions."""

    token_id: int = 0
    permissions: tuple[str, ...] = TOKEN_PERMISSIONS
    scope_region: str | None = None

    @property
    def region_prefix(self) -> str:
        return region_prefix(self.scope_region) if self.scope_region else super().region_prefix


def _token_text(value, name: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{name} is required (text)", field=name)
    value = value.strip()
    if len(value) > max_len:
        raise BadInput(f"{name} is longer than {max_len} characters", field=name)
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise BadInput(f"{name} contains a control character or an invalid code point", field=name)
    return value


def create_token(db, user: User, name, days=90, region=None, permissions=None) -> dict:
    """A new API token (shown once; only its hash is stored) with an expiry and a scope that is a subset of
    the owner's: `region` a region code inside the owner's jurisdiction (center, dispatcher and admin roles),
    `permissions` a subset of TOKEN_PERMISSIONS. Tokens cannot mint tokens (refused here too)."""
    if isinstance(user, TokenUser):
        raise Forbidden("API tokens cannot create tokens: log in as a person", field="token")
    name = _token_text(name, "name", 100)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= TOKEN_MAX_DAYS:
        raise BadInput(f"days must be an integer 1..{TOKEN_MAX_DAYS}", field="days")
    if region is not None:
        region = _token_text(region, "region", 12)
        if not (region.isascii() and region.isdigit()):
            raise BadInput("region must be a region code (digits)", field="region")
        if user.role not in _REGION_ROLES or not region.startswith(user.region_prefix):
            raise Forbidden("a token's region must lie inside your own jurisdiction", field="region")
    perms = TOKEN_PERMISSIONS if permissions is None else permissions
    if not (isinstance(perms, (list, tuple)) and perms and all(p in TOKEN_PERMISSIONS for p in perms)):
        raise BadInput(f"permissions must be a non-empty list of {', '.join(TOKEN_PERMISSIONS)}", field="permissions")
    perms = [p for p in TOKEN_PERMISSIONS if p in perms]
    token = "ggt_" + secrets.token_urlsafe(32)
    row = db.fetchone(
        "INSERT INTO api_token (user_id, name, token_hash, expires_at, scope_region, permissions) "
        "VALUES (%s, %s, %s, now() + %s * interval '1 day', %s, %s) RETURNING id, expires_at",
        (user.id, name, _token_hash(token), days, region, perms))
    return {"id": row["id"], "token": token, "name": name, "expires_at": row["expires_at"].isoformat(),
            "region": region, "permissions": perms}


def issue_token(db, user: User, name: str, days: int = 90) -> str:
    """A new full-scope API token of `user` (the CLI's way); see create_token."""
    return create_token(db, user, name, days=days)["token"]


def list_tokens(db, user: User) -> list[dict]:
    """The user's tokens (never the secrets)."""
    rows = db.fetchall("SELECT id, name, created_at, expires_at, last_used_at, scope_region AS region, permissions, "
                       "revoked FROM api_token WHERE user_id = %s ORDER BY id", (user.id,))
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]


def revoke_token(db, user: User, token_id: int) -> None:
    """Revoke one of the user's tokens (NotFound for anyone else's); a token may revoke itself."""
    n = db.execute("UPDATE api_token SET revoked = true, revoked_at = coalesce(revoked_at, now()) "
                   "WHERE id = %s AND user_id = %s", (token_id, user.id))
    if n != 1:
        raise NotFound(f"no token {token_id} of yours")
    _token_cache.clear()   # this process forgets at once; others within TOKEN_CACHE_SECONDS


# Queued intake (webmap.fastpath) may answer a token from memory for at most this long: a revoked or expired
# token (or a deactivated owner) is refused within these seconds. Every other route checks every request.
TOKEN_CACHE_SECONDS = 2.0
_TOKEN_CACHE_MAX = 4096
_token_cache: dict[str, tuple[float, TokenUser]] = {}


def user_for_token(db, token: str, cache_seconds: float = 0.0) -> TokenUser:
    """The user behind a live API token (not revoked, not expired, owner active), or Unauthorized.
    `cache_seconds` > 0: an answer of the last that many seconds may be reused (never past the token's
    expiry); refusals are never cached."""
    if not (isinstance(token, str) and token.startswith("ggt_") and len(token) <= 100 and token.isascii()
            and token.isprintable()):
        raise Unauthorized("API token invalid or revoked")
    h = _token_hash(token)
    if cache_seconds > 0:
        hit = _token_cache.get(h)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    # A read, not an UPDATE: every request of a 12345 system comes with the same token, and an UPDATE of its
    # row per request serialised them all on one row lock (intake's p99 at 32 connections). last_used_at is
    # written at most once a minute per token.
    # Prepared (planned once per connection): planning this join costs ~6× running it.
    row = db.fetchone_prepared(
        "SELECT u.id, u.username, u.role, u.region_code, u.display_name, u.grid_code, u.department_code, "
        "u.staff_code, t.id AS token_id, t.permissions, t.scope_region, "
        "(t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => %(touch)s)) AS stale, "
        "extract(epoch FROM t.expires_at - now())::float8 AS left_s "
        "FROM api_token t JOIN app_user u ON u.id = t.user_id WHERE t.token_hash = %(h)s AND NOT t.revoked "
        "AND t.expires_at > now() AND u.active", {"touch": TOKEN_TOUCH_SECONDS, "h": h})
    if not row:
        raise Unauthorized("API token invalid, expired or revoked")
    if row.pop("stale"):
        # SKIP LOCKED: when another request is touching it right now, that one's write is enough
        db.execute("UPDATE api_token SET last_used_at = now() WHERE id = (SELECT id FROM api_token WHERE id = %s "
                   "AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s)) "
                   "FOR UPDATE SKIP LOCKED)", (row["token_id"], TOKEN_TOUCH_SECONDS))
    left = row.pop("left_s")
    base = _user(row)
    user = TokenUser(**{f: getattr(base, f) for f in base.__dataclass_fields__}, token_id=row["token_id"],
                     permissions=tuple(row["permissions"]), scope_region=row["scope_region"])
    if cache_seconds > 0:
        if len(_token_cache) >= _TOKEN_CACHE_MAX:
            _token_cache.clear()
        _token_cache[h] = (time.monotonic() + min(cache_seconds, left), user)
    return user


def user_as_accepted(db, user_id: int, token_id: int | None) -> User | None:
    """The user (through the token, with its scope) who handed over a queued submission, as they were when it
    was accepted: revoking the token or deactivating the user afterwards does not undo an acceptance
    (cases.queue). None when the user no longer exists."""
    if token_id is not None:
        row = db.fetchone(f"SELECT {user_columns('u')}, t.id AS token_id, t.permissions, t.scope_region "
                          "FROM api_token t JOIN app_user u ON u.id = t.user_id WHERE t.id = %s AND u.id = %s",
                          (token_id, user_id))
        if row:
            base = _user(row)
            return TokenUser(**{f: getattr(base, f) for f in base.__dataclass_fields__}, token_id=row["token_id"],
                             permissions=tuple(row["permissions"]), scope_region=row["scope_region"])
    row = db.fetchone(f"SELECT {_USER_COLS} FROM app_user WHERE id = %s", (user_id,))
    return _user(row) if row else None


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
    where_region = f"{SCOPE_KEY_SQL.format(a=a)} LIKE %(scope_prefix)s"
    if user.role in _REGION_ROLES:
        # (for the dispatcher: unlocated cases waiting for a pin fall under the region the geocoder was sure
        # of — county, or the city through handler_region — so the same predicate covers the pin queue)
        juris = where_region
    elif user.role == "grid_officer":
        juris = f"{a}.grid_code = %(scope_grid)s"
    elif user.role == "department":
        juris = f"({a}.lead_department = %(scope_dept)s OR %(scope_dept)s = ANY({a}.co_departments))"
    else:
        juris = "false"
    return f"(({juris}) AND NOT {guard_hides(a)})", p


# The key `case_scope` matches a region user's prefix against; the wall's live aggregates are keyed by it
# (cases/migrations/0095_wall_live_stats.sql).
SCOPE_KEY_SQL = "coalesce({a}.village_code, {a}.township_code, {a}.county_code, {a}.handler_region, '')"


def region_scoped(user: User) -> bool:
    """Whether `case_scope(user)` is the region prefix on SCOPE_KEY_SQL and the guard, nothing else."""
    return user.role in _REGION_ROLES


def guard_hides(alias: str = "c") -> str:
    """SQL true for a case the conflict-of-interest guard hides from the user of `case_scope`'s parameters
    (it names them or the user's units among the accused). accused_units/accused_persons are NOT NULL."""
    return (f"({alias}.accused_units && %(scope_ids)s::text[] "
            f"OR {alias}.accused_persons && %(scope_persons)s::text[])")


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
