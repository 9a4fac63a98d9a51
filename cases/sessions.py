"""Server-side sessions and login throttling (no Flask here: the web layer passes ids and addresses).

- A login creates an `auth_session` row; the cookie carries only a random session id (the database keeps
  its SHA-256). Logout ends the row, so a copied or old cookie is dead although its signature is valid.
- Failed logins are counted per username (known or not) and per client address over a sliding window;
  past the limit the login answers 429 with `retry_after`, before any password is checked, the same way
  for every username. Unknown usernames cost one password hash like known ones (`cases.auth.authenticate`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from dataclasses import dataclass

from cases.auth import User, authenticate, user_columns, user_from_row
from gis.errors import BadInput, TooManyRequests, Unauthorized


@dataclass(frozen=True)
class LoginPolicy:
    """Throttle and session lifetime; the defaults are the city's unless it configures others."""

    user_failures: int = 5          # failed logins of one username within `window` → locked
    ip_failures: int = 30           # failed logins from one address within `window` → locked
    window: dt.timedelta = dt.timedelta(minutes=15)
    session_hours: int = 12         # absolute session lifetime


DEFAULT_POLICY = LoginPolicy()
MAX_USERNAME = 64
MAX_PASSWORD = 256


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def credential(value, name: str, max_len: int) -> str:
    """A username or password from a login body: text, bounded, printable (no NUL, no lone surrogate)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadInput(f"{name} must be text", field=name)
    if len(value) > max_len:
        raise BadInput(f"{name} is longer than {max_len} characters", field=name)
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise BadInput(f"{name} contains a control character or an invalid code point", field=name)
    return value


def check_throttle(db, username: str, ip: str, policy: LoginPolicy = DEFAULT_POLICY) -> None:
    """TooManyRequests when the username or the address has too many recent failures."""
    row = db.fetchone(
        "SELECT count(*) FILTER (WHERE username = %(u)s) AS nu, min(at) FILTER (WHERE username = %(u)s) AS first_u, "
        "count(*) FILTER (WHERE ip = %(ip)s) AS ni, min(at) FILTER (WHERE ip = %(ip)s) AS first_i "
        "FROM login_failure WHERE (username = %(u)s OR ip = %(ip)s) AND at > now() - %(w)s",
        {"u": username, "ip": ip, "w": policy.window})
    now = dt.datetime.now(dt.UTC)
    for n, first, limit in ((row["nu"], row["first_u"], policy.user_failures),
                            (row["ni"], row["first_i"], policy.ip_failures)):
        if n >= limit:
            wait = max(1, math.ceil((first + policy.window - now).total_seconds()))
            raise TooManyRequests(f"登录失败次数过多，请 {math.ceil(wait / 60)} 分钟后再试", retry_after=wait)


def login(db, username, password, ip: str, policy: LoginPolicy = DEFAULT_POLICY) -> tuple[User, str]:
    """Check the throttle and the password; (user, new session id) or Unauthorized/TooManyRequests."""
    username = credential(username, "username", MAX_USERNAME)
    password = credential(password, "password", MAX_PASSWORD)
    ip = (ip or "-")[:64]
    check_throttle(db, username, ip, policy)
    try:
        user = authenticate(db, username, password)
    except Unauthorized:
        db.execute("INSERT INTO login_failure (username, ip) VALUES (%s, %s)", (username, ip))
        raise
    db.execute("DELETE FROM login_failure WHERE username = %s", (username,))
    return user, create_session(db, user, ip, policy)


def create_session(db, user: User, ip: str | None = None, policy: LoginPolicy = DEFAULT_POLICY) -> str:
    """A new session of `user`; returns the id to put in the cookie (shown once, stored hashed)."""
    sid = secrets.token_urlsafe(32)
    db.execute("INSERT INTO auth_session (id_hash, user_id, expires_at, ip) VALUES (%s, %s, now() + %s, %s)",
               (_hash(sid), user.id, dt.timedelta(hours=policy.session_hours), ip))
    return sid


def session_user(db, sid) -> User | None:
    """The user of a live session id (not ended, not expired, user active), else None."""
    if not isinstance(sid, str) or not 20 <= len(sid) <= 100:
        return None
    # one round trip, planned once per connection: the session and its user (get_user's columns and rules)
    row = db.fetchone_prepared(f"SELECT {user_columns('u')} FROM auth_session s JOIN app_user u ON u.id = s.user_id "
                               "WHERE s.id_hash = %(h)s AND s.ended_at IS NULL AND s.expires_at > now() AND u.active",
                               {"h": _hash(sid)})
    return user_from_row(row) if row else None


def end_session(db, sid) -> None:
    """Logout: the session id is dead from now on."""
    if isinstance(sid, str) and sid:
        db.execute("UPDATE auth_session SET ended_at = now() WHERE id_hash = %s AND ended_at IS NULL", (_hash(sid),))


def end_all_sessions(db, user_id: int) -> int:
    """End every session of a user (deactivation, password change); returns how many were live."""
    with db.cursor() as cur:
        cur.execute("UPDATE auth_session SET ended_at = now() WHERE user_id = %s AND ended_at IS NULL", (user_id,))
        return cur.rowcount
