"""Who may call which route: the declared rule table (documented in docs/intake-routing.md, "Access matrix").

Every (endpoint, method) of the app has a Rule; tests/webmap/test_access_matrix.py enumerates the url map ×
every role × a case inside / outside the user's jurisdiction × accused / not accused and checks each answer
against these rules — a route without a rule fails that test. Fields:

- `auth`: "public" (anyone), "login" (a person's session or an API token), "person" (a session only:
  API tokens are refused, e.g. minting tokens).
- `roles`: the roles that may use it (None: every logged-in role); any other role gets 403 — for every
  case alike, so a 403 says nothing about the case.
- `case`: the route names a case (`<case_id>`): a case outside the user's scope (jurisdiction, or an
  accusation naming the user's unit or person) answers 404, exactly as a case that does not exist.
- `lists_cases`: the answer lists cases/aggregates computed only over the user's scope.
- `personal`: the answer may carry reporter data: shown only to the case's handlers, masked otherwise,
  and never cached (`Cache-Control: no-store`).
- `token`: the permission an API token needs ("read", "intake", "act"), or None when tokens are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from cases.review import REVIEW_ROLES as _REVIEW
from cases.service import INTAKE_ROLES, PIN_ROLES

REVIEW_ROLES = frozenset(_REVIEW)


@dataclass(frozen=True)
class Rule:
    auth: str = "login"
    roles: frozenset[str] | None = None
    case: bool = False
    lists_cases: bool = False
    personal: bool = False
    token: str | None = "read"


PUBLIC = Rule(auth="public", token="public")
PERSON = Rule(auth="person", token=None)

RULES: dict[tuple[str, str], Rule] = {
    # pages and static files (pages show no case data until the browser calls the APIs)
    ("map.city_map", "GET"): PUBLIC,
    ("map.static", "GET"): PUBLIC,
    ("map.vendor", "GET"): PUBLIC,
    ("map.health", "GET"): PUBLIC,
    # geography: public reference data (grids, regions, standard addresses), no personal data
    ("map.layer", "GET"): PUBLIC,
    ("geo.api_locate", "GET"): PUBLIC,
    ("geo.api_geocode", "GET"): PUBLIC,
    ("geo.api_reverse", "GET"): PUBLIC,
    # sessions and tokens
    ("cases_api.login", "POST"): Rule(auth="public", token=None),
    ("cases_api.logout", "POST"): Rule(auth="public", token=None),
    ("cases_api.me", "GET"): Rule(personal=True),
    ("cases_api.new_token", "POST"): PERSON,
    ("cases_api.list_tokens_api", "GET"): PERSON,
    ("cases_api.revoke_token_api", "DELETE"): PERSON,
    # cases
    ("cases_api.intake", "POST"): Rule(roles=frozenset(INTAKE_ROLES), personal=True, token="intake"),
    # queued intake (cases.queue): the answer carries no reporter data; the status only the submitter's own
    ("cases_api.queue_submission", "POST"): Rule(roles=frozenset(INTAKE_ROLES), personal=True, token="intake"),
    ("cases_api.submission_status", "GET"): Rule(roles=frozenset(INTAKE_ROLES), personal=True, token="intake"),
    ("cases_api.list_cases", "GET"): Rule(lists_cases=True, personal=True),
    ("cases_api.get_case", "GET"): Rule(case=True, personal=True),
    ("cases_api.act", "POST"): Rule(case=True, personal=True, token="act"),
    ("cases_api.pin", "POST"): Rule(roles=frozenset(PIN_ROLES), case=True, personal=True, token="act"),
    ("cases_api.repeats", "GET"): Rule(case=True),
    ("cases_api.clusters", "GET"): Rule(lists_cases=True),
    ("cases_api.rates", "GET"): Rule(lists_cases=True),
    ("cases_api.colour_tasks", "GET"): Rule(lists_cases=True),   # units in the user's jurisdiction only
    ("cases_api.colour_task_done", "POST"): Rule(roles=frozenset({"admin", "city_center", "county_center",
                                                                 "township_center"}), token="act"),
    # the grid officer's phone (webmap/mobile.py) and case photos (webmap/api_attachments.py)
    ("mobile.page", "GET"): PUBLIC,  # the login form or the page shell; data comes from the APIs below
    ("mobile.counts", "GET"): Rule(lists_cases=True),
    ("mobile.case_bundle", "GET"): Rule(case=True, personal=True),
    ("attachments_api.list_attachments", "GET"): Rule(case=True),
    ("attachments_api.upload", "POST"): Rule(case=True, token="act"),  # handler, upper centers, registrant
    ("attachments_api.download", "GET"): Rule(case=True),
    # open interfaces (issue 10): OGC API Features — geography public, the `cases` collection needs a login or a
    # token and is scoped and masked in cases/features.py; Open311 reads are public but show no request
    # without a key; exports are scoped and masked like the case list
    **{(f"ogcapi.{e}", "GET"): PUBLIC for e in ("landing", "conformance", "collections", "collection",
                                               "queryables", "items", "feature")},
    **{(f"open311.{e}", "GET"): PUBLIC for e in ("discovery", "services", "service_definition", "get_requests",
                                                "get_request", "get_token")},
    ("open311.post_request", "POST"): Rule(roles=frozenset(INTAKE_ROLES), personal=True, token="intake"),
    ("exports.export_cases", "GET"): Rule(lists_cases=True, personal=True),
    ("exports.export_grids", "GET"): Rule(),
    ("exports.export_rates", "GET"): Rule(lists_cases=True),
    ("openapi.openapi_json", "GET"): PUBLIC,
    # the command-center wall: the page is public (it shows its login form), its data is scoped aggregates
    ("wall.wall_page", "GET"): PUBLIC,
    ("wall.context", "GET"): Rule(personal=True),
    ("wall.kpi", "GET"): Rule(lists_cases=True),
    ("wall.month_rates", "GET"): Rule(lists_cases=True),
    ("wall.units", "GET"): Rule(lists_cases=True),
    ("wall.cases_in_window", "GET"): Rule(lists_cases=True),
    ("wall.grid_cases", "GET"): Rule(lists_cases=True),
    ("wall.centers", "GET"): Rule(),
    # the township review (/review): centers only, units inside the jurisdiction; counts, scoped case points
    ("map.favicon", "GET"): PUBLIC,
    ("review.page", "GET"): PUBLIC,
    ("review.units", "GET"): Rule(roles=REVIEW_ROLES),
    ("review.summary", "GET"): Rule(roles=REVIEW_ROLES, lists_cases=True),
    ("review.heat", "GET"): Rule(roles=REVIEW_ROLES, lists_cases=True),
    ("review.clusters", "GET"): Rule(roles=REVIEW_ROLES, lists_cases=True),
    ("review.cases_of", "GET"): Rule(roles=REVIEW_ROLES, lists_cases=True),
    ("review.export_xlsx", "GET"): Rule(roles=REVIEW_ROLES, lists_cases=True),
}


def rule_for(endpoint: str, method: str) -> Rule | None:
    """The declared rule of a route (None when the route has none: the access-matrix test fails)."""
    return RULES.get((endpoint, "GET" if method == "HEAD" else method))


def token_permission(endpoint: str, method: str) -> str | None:
    """The permission an API token needs for this route and method (None: tokens are refused).
    Routes without a rule: reading needs "read", anything else is for persons only."""
    rule = rule_for(endpoint, method)
    if rule is None:
        return "read" if method in ("GET", "HEAD", "OPTIONS") else None
    return rule.token
