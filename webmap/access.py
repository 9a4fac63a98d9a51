"""Who may call which route: the declared rule table (see docs/intake-routing.md, "Access matrix").

`token_permission(endpoint, method)` says what an API token needs for a route: "public" (no login at
all), one of cases.auth.TOKEN_PERMISSIONS, or None (persons only: tokens are refused, e.g. minting tokens).
"""

from __future__ import annotations

# Routes that API tokens may use beyond reading (GET needs "read" unless listed here).
TOKEN_WRITE = {
    ("cases_api.intake", "POST"): "intake",
    ("cases_api.act", "POST"): "act",
    ("cases_api.pin", "POST"): "act",
    ("open311.post_request", "POST"): "intake",
}
# Routes only a person (session) may use, whatever the method.
PERSON_ONLY = frozenset({"cases_api.new_token", "cases_api.list_tokens_api", "cases_api.revoke_token_api",
                         "cases_api.logout", "cases_api.login"})


def token_permission(endpoint: str, method: str) -> str | None:
    """The permission an API token needs for this route and method (None: tokens are refused)."""
    if endpoint in PERSON_ONLY:
        return None
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    return TOKEN_WRITE.get((endpoint, method))
