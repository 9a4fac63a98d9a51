"""The OpenAPI document covers every route (an undocumented route fails here), and schemathesis exercises it
in-process with an API token: no 5xx, responses match their documented status codes, content types and schemas."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from cases.auth import create_user, issue_token
from cases.service import CaseService
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app
from webmap.openapi import EXCLUDED, OPERATIONS


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    disp = create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    CaseService(db).intake({"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "噪音",
                            "lon": X0 + 0.004, "lat": Y0 + 0.005}, disp)
    app = create_app(settings=Settings(secret_key="t"), db=db)
    app.config["GG_TOKEN"] = issue_token(db, disp, "schemathesis")
    return app


def test_every_route_is_documented(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules()} - EXCLUDED
    missing = sorted(endpoints - set(OPERATIONS))
    assert not missing, f"routes without an entry in webmap/openapi.py OPERATIONS: {missing}"
    doc = app.test_client().get("/api/openapi.json").json
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in EXCLUDED:
            continue
        from webmap.openapi import _path

        for m in rule.methods - {"HEAD", "OPTIONS"}:
            assert (_path(rule.rule)[0], m.lower()) in documented, (rule.rule, m)
    assert doc["paths"]["/api/cases/{case_id}"]["get"]["parameters"][0]["schema"]["type"] == "integer"
    assert doc["paths"]["/open311/v2/requests.{fmt}"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]


# Every operation is fuzzed, writes included (with a dispatcher's token: intake, actions, pins, tokens …);
# what they need beyond the schema (an existing case, a valid version) is checked by their own tests.
FUZZED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What must hold for any input: no 5xx, documented status codes and content types, bodies matching their
# schemas. (positive_data_acceptance is left out: many values are valid only if they exist — a category code,
# a case number — which a schema cannot say; those 4xx are checked by each interface's own tests.)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


def test_schemathesis_finds_no_server_errors_and_schema_violations(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    token = app.config["GG_TOKEN"]
    failures, fuzzed = [], []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method.upper() not in FUZZED_METHODS or op.path.startswith("/api/exports"):
            continue
        fuzzed.append(op.method.upper())

        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def run(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as e:  # noqa: BLE001 - collect every operation's failure, report them together
            failures.append(f"{op.method.upper()} {op.path}: {str(e)[:600]}")
    assert not failures, "\n\n".join(failures)
    assert fuzzed.count("POST") >= 6 and "DELETE" in fuzzed, fuzzed   # the writes were fuzzed too
