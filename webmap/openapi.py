"""The OpenAPI 3 document at /api/openapi.json: paths, methods and path parameters come from the app's url map,
summaries from the view docstrings, and what the code cannot say (query parameters, bodies, response schemas)
from OPERATIONS below, kept beside the routes. tests/interop/test_openapi.py fails for any route that has no
entry here (EXCLUDED lists the file-serving routes), and runs schemathesis against the document in-process.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify, request

from cases.case_reads import REGISTERS
from cases.workflow import STATES

bp = Blueprint("openapi", __name__)

EXCLUDED = frozenset({"map.static", "map.vendor"})  # static files

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                   "details": {}}}}}
OBJ = {"type": "object"}
ARR = {"type": "array"}
FEATURES = {"type": "object", "required": ["type", "features"], "properties": {
    "type": {"const": "FeatureCollection"}, "features": {"type": "array"}, "numberMatched": {"type": "integer"},
    "numberReturned": {"type": "integer"}, "links": {"type": "array"}}}
FEATURE = {"type": "object", "required": ["type", "geometry", "properties"],
           "properties": {"type": {"const": "Feature"}}}


def q(name: str, schema: dict | None = None, required: bool = False, desc: str = "") -> dict:
    """A query parameter."""
    return {"name": name, "in": "query", "required": required, "schema": schema or {"type": "string"},
            "description": desc}


def body(schema: dict, form: bool = False) -> dict:
    content = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"required": True, "content": content}


def ok(schema: dict | None = None, status: str = "200", types=("application/json",)) -> dict:
    return {status: {"description": "OK", "content": {t: {"schema": schema or OBJ} for t in types}}}


LONLAT = [q("lon", {"type": "number"}, desc="longitude (or x with crs)"), q("lat", {"type": "number"}),
          q("x", {"type": "number"}), q("y", {"type": "number"}), q("crs", desc="EPSG:4326 (default), GCJ-02, BD-09, "
                                                                          "EPSG:45xx …")]
ITEMS = [q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
         q("offset", {"type": "integer", "minimum": 0}), q("bbox", desc="minLon,minLat,maxLon,maxLat"),
         q("datetime", desc="instant, date or a/b interval")]
O311_REQUESTS = [q("api_key"), q("service_request_id"), q("service_code"), q("start_date"), q("end_date"),
                 q("status", {"type": "string", "enum": ["open", "closed", "open,closed"]}), q("crs"),
                 q("updated_after"), q("after_id", {"type": "integer", "minimum": 0}),
                 q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                 q("extensions", {"type": "string", "enum": ["true", "false"]})]
O311 = ("application/json", "text/xml")
EXPORT_TYPES = ("application/geopackage+sqlite3", "application/geo+json", "text/csv",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
FILE = {"type": "string", "format": "binary"}
SUB = {"type": "object", "required": ["channel", "kind", "title"], "properties": {
    "channel": {"type": "string"}, "kind": {"type": "string"}, "title": {"type": "string"},
    "category_code": {"type": "string"}, "content": {"type": "string"}, "lon": {"type": "number"},
    "lat": {"type": "number"}, "crs": {"type": "string"}, "address_text": {"type": "string"},
    "submission_key": {"type": "string"}, "anonymous": {"type": "boolean"}, "emergency": {"type": "boolean"},
    "reporter_name": {"type": "string"}, "reporter_phone": {"type": "string"}}}

WALL_BBOX = q("bbox", desc="west,south,east,north (WGS84)")

# endpoint → the parts of its operation the url map does not know (per method when a dict of methods).
OPERATIONS: dict[str, dict] = {
    "map.city_map": {"responses": ok({"type": "string"}, types=("text/html",)), "tags": ["pages"]},
    "map.health": {"responses": ok()},
    "openapi.openapi_json": {"responses": ok(), "security": []},
    "map.layer": {"parameters": [q("level"), q("generation", {"type": "integer"}), q("parent"),
                                 q("simplify", {"type": "number"})], "responses": ok(FEATURES)},
    "geo.api_locate": {"parameters": [*LONLAT, q("generation", {"type": "integer"})], "responses": ok()},
    "geo.api_geocode": {"parameters": [q("q", required=True), q("limit", {"type": "integer", "minimum": 0,
                                                                            "maximum": 20})], "responses": ok()},
    "geo.api_reverse": {"parameters": [*LONLAT, q("max_m", {"type": "number"})], "responses": ok()},
    "cases_api.login": {"requestBody": body({"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string"}, "password": {"type": "string"}}}), "responses": ok(), "security": []},
    "cases_api.logout": {"responses": ok()},
    "cases_api.me": {"responses": ok()},
    "cases_api.new_token": {"requestBody": body({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "days": {"type": "integer"}, "region": {"type": "string"},
        "permissions": {"type": "array", "items": {"type": "string"}}}}), "responses": ok(status="201")},
    "cases_api.list_tokens_api": {"responses": ok()},
    "cases_api.revoke_token_api": {"responses": ok()},
    "cases_api.intake": {"requestBody": body(SUB), "responses": {**ok(status="201"), **ok()}},
    "cases_api.queue_submission": {"requestBody": body(SUB), "responses": {**ok(status="202"), **ok()}},
    "cases_api.submission_status": {"responses": ok()},
    "cases_api.list_cases": {"parameters": [q("status", {"type": "string", "enum": sorted(STATES)}),
                                            q("open", {"type": "string", "enum": ["0", "1", "true"]}),
                                            q("needs_pin", {"type": "string", "enum": ["0", "1", "true"]}),
                                            q("order", {"type": "string", "enum": ["urgency", "newest"]}),
                                            q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                                            q("offset", {"type": "integer", "minimum": 0}),
                                            q("cursor", {"type": "string", "maxLength": 400}),
                                            q("register", {"type": "string",
                                                           "enum": list(REGISTERS)})],
                             "responses": ok({"type": "object", "required": ["cases", "next_cursor"], "properties": {
                                 "cases": ARR, "count": {"type": "integer"},
                                 "next_cursor": {"type": "string", "nullable": True}}})},
    "cases_api.get_case": {"responses": ok()},
    "cases_api.act": {"requestBody": body({"type": "object", "properties": {"reason": {"type": "string"},
                                                                            "version": {"type": "integer"}}}),
                      "responses": ok()},
    "cases_api.pin": {"requestBody": body({"type": "object", "properties": {
        "lon": {"type": "number"}, "lat": {"type": "number"}, "crs": {"type": "string"},
        "version": {"type": "integer"}}}), "responses": ok()},
    "cases_api.repeats": {"responses": ok()},
    "cases_api.clusters": {"parameters": [q("category"), q("region"), q("days", {"type": "integer"}),
                                          q("eps_m", {"type": "integer"}), q("min_samples", {"type": "integer"})],
                           "responses": ok()},
    "cases_api.rates": {"parameters": [q("month", required=True, desc="YYYY-MM"), q("unit")], "responses": ok()},
    "cases_api.colour_task_done": {"responses": ok()},
    "cases_api.colour_tasks": {"parameters": [q("month", desc="YYYY-MM"),
                                              q("open", {"type": "string", "enum": ["0", "1", "true"]})],
                               "responses": ok({"type": "object", "required": ["tasks"], "properties": {
                                   "tasks": ARR, "count": {"type": "integer"}}})},
    # the command-center wall (/wall): scoped aggregates for the page
    "wall.wall_page": {"responses": ok({"type": "string"}, types=("text/html",)), "tags": ["pages"]},
    "wall.context": {"responses": ok(), "tags": ["wall"]},
    "wall.kpi": {"responses": ok(), "tags": ["wall"]},
    "wall.month_rates": {"responses": ok(), "tags": ["wall"]},
    "wall.units": {"parameters": [q("level", {"type": "string", "enum": ["county", "township", "grid"]}),
                                  q("parent", desc="code prefix (digits)"), WALL_BBOX],
                   "responses": ok(), "tags": ["wall"]},
    "wall.cases_in_window": {"parameters": [q("bbox", required=True, desc="west,south,east,north (WGS84)"),
                                            q("zoom", {"type": "integer", "minimum": 0, "maximum": 22})],
                             "responses": ok(), "tags": ["wall"]},
    "wall.grid_cases": {"parameters": [q("limit", {"type": "integer", "minimum": 1, "maximum": 200})],
                        "responses": ok(), "tags": ["wall"]},
    "wall.centers": {"parameters": [q("levels", desc="comma-separated: city,county,township,village"), WALL_BBOX],
                     "responses": ok(), "tags": ["wall"]},
    # the grid officer's phone (/m) and case photos
    "mobile.page": {"responses": ok({"type": "string"}, types=("text/html",)), "tags": ["pages"]},
    "mobile.counts": {"responses": ok(), "tags": ["mobile"]},
    "mobile.case_bundle": {"responses": ok(), "tags": ["mobile"]},
    "attachments_api.list_attachments": {"responses": ok(), "tags": ["attachments"]},
    "attachments_api.upload": {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                               "responses": ok(status="201"), "tags": ["attachments"]},
    "attachments_api.download": {"responses": ok(FILE, types=("image/jpeg", "image/png", "image/webp")),
                                 "tags": ["attachments"]},
    # the township review (/review)
    "map.favicon": {"responses": {"204": {"description": "no icon"}}, "tags": ["pages"]},
    "review.page": {"responses": ok({"type": "string"}, types=("text/html",)), "tags": ["pages"]},
    "review.units": {"responses": ok(), "tags": ["review"]},
    **{f"review.{n}": {"parameters": [q("unit", required=True, desc="county, township or village code"),
                                      q("month", desc="YYYY-MM"), q("from", desc="YYYY-MM-DD"),
                                      q("to", desc="YYYY-MM-DD"), q("category")],
                       "responses": ok(), "tags": ["review"]} for n in ("summary", "heat", "clusters")},
    "review.cases_of": {"parameters": [q("ids", required=True, desc="case ids, comma-separated")],
                        "responses": ok(), "tags": ["review"]},
    "review.export_xlsx": {"parameters": [q("unit", required=True), q("month", desc="YYYY-MM")],
                           "responses": ok(FILE, types=("application/vnd.openxmlformats-officedocument."
                                                        "spreadsheetml.sheet",)), "tags": ["review"]},
    "exports.export_cases": {"parameters": [*ITEMS[2:], q("status"), q("grid_code")],
                             "responses": ok(FILE, types=EXPORT_TYPES)},
    "exports.export_grids": {"parameters": [q("generation", {"type": "integer"})],
                             "responses": ok(FILE, types=EXPORT_TYPES)},
    "exports.export_rates": {"parameters": [q("month", required=True, desc="YYYY-MM"), q("unit")],
                             "responses": ok(FILE, types=EXPORT_TYPES)},
    "ogcapi.landing": {"responses": ok(), "tags": ["OGC API Features"]},
    "ogcapi.conformance": {"responses": ok(), "tags": ["OGC API Features"]},
    "ogcapi.collections": {"responses": ok(), "tags": ["OGC API Features"]},
    "ogcapi.collection": {"responses": ok(), "tags": ["OGC API Features"]},
    "ogcapi.queryables": {"responses": ok(types=("application/schema+json",)), "tags": ["OGC API Features"]},
    "ogcapi.items": {"parameters": ITEMS, "responses": ok(FEATURES, types=("application/geo+json",)),
                     "tags": ["OGC API Features"]},
    "ogcapi.feature": {"responses": ok(FEATURE, types=("application/geo+json",)), "tags": ["OGC API Features"]},
    "open311.discovery": {"responses": ok(types=O311), "tags": ["Open311"]},
    "open311.services": {"responses": ok(ARR, types=O311), "tags": ["Open311"]},
    "open311.service_definition": {"responses": ok(types=O311), "tags": ["Open311"]},
    "open311.get_requests": {"parameters": O311_REQUESTS, "responses": ok(ARR, types=O311), "tags": ["Open311"]},
    "open311.post_request": {"requestBody": body({"type": "object", "required": ["service_code"], "properties": {
        "api_key": {"type": "string"}, "service_code": {"type": "string"}, "lat": {"type": "number"},
        "long": {"type": "number"}, "address_string": {"type": "string"}, "description": {"type": "string"},
        "crs": {"type": "string"}, "submission_key": {"type": "string"}}}, form=True),
        "responses": {**ok(ARR, types=O311, status="201"), **ok(ARR, types=O311)}, "tags": ["Open311"]},
    "open311.get_request": {"parameters": [q("api_key"), q("crs")], "responses": ok(ARR, types=O311),
                            "tags": ["Open311"]},
    "open311.get_token": {"parameters": [q("api_key")], "responses": ok(ARR, types=O311), "tags": ["Open311"]},
}

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-zA-Z_]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")


def _path(rule: str) -> tuple[str, list[dict]]:
    """/api/cases/<int:case_id> → /api/cases/{case_id} with its path parameters."""
    params = []

    def sub(m):
        conv, args, name = m.group("conv"), m.group("args"), m.group("name")
        schema = {"type": "string"}
        if conv == "int":
            schema = {"type": "integer", "minimum": 0}
        elif conv == "any":
            schema = {"type": "string", "enum": [a.strip().strip("'\"") for a in args.split(",")]}
        elif conv != "path":
            schema = {"type": "string", "pattern": "^[^/]+$"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(sub, rule), params


def document(app) -> dict:
    """The OpenAPI 3.0 document of every route of `app` (except EXCLUDED)."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in EXCLUDED:
            continue
        path, path_params = _path(rule.rule)
        extra = OPERATIONS.get(rule.endpoint, {})
        doc = (app.view_functions[rule.endpoint].__doc__ or rule.endpoint).strip().splitlines()[0]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op = {"operationId": f"{rule.endpoint}.{method.lower()}", "summary": doc,
                  "tags": extra.get("tags") or [rule.endpoint.split(".")[0]],
                  "parameters": [*path_params, *extra.get("parameters", [])],
                  "responses": {**extra.get("responses", ok()),
                                "4XX": {"description": "bad input, unauthorized, forbidden, not found, conflict …",
                                        "content": {"application/json": {"schema": ERROR},
                                                    "text/xml": {"schema": {"type": "string"}}}}}}
            if "requestBody" in extra:
                op["requestBody"] = extra["requestBody"]
            if "security" in extra:
                op["security"] = extra["security"]
            paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.0.3",
            "info": {"title": "gridgov 网格化社会治理 API", "version": "1",
                     "description": "JSON REST API, OGC API Features (/ogcapi) and Open311 GeoReport v2 "
                                    "(/open311/v2). Errors: {\"error\": {\"code\", \"message\", \"field\"}}."},
            "servers": [{"url": request.url_root.rstrip("/") if request else "/"}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                               "session": {"type": "apiKey", "in": "cookie", "name": "session"}}},
            "security": [{"bearer": []}, {"session": []}, {}],
            "paths": paths}


@bp.get("/api/openapi.json")
def openapi_json():
    """This document."""
    return jsonify(document(current_app))
