"""OGC API – Features (Part 1: Core, GeoJSON), read-only, at /ogcapi — what QGIS, ArcGIS and GDAL read.

Geography collections come from grids.features, cases from cases.features (scoped to the caller: a session
or `Authorization: Bearer ggt_…`; anonymous callers see no cases collection). Coordinates are CRS84.
Paging: `limit` + `offset`, with `next` links; `numberMatched` counts the whole query.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from gis.errors import BadInput

bp = Blueprint("ogcapi", __name__)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
GEOJSON = "application/geo+json"


def _db():
    return current_app.extensions["gridgov_db"]


def _user():
    from webmap.api_cases import current_user

    return current_user()


def _out(payload: dict, mimetype: str = "application/json", status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), status=status,
                    mimetype=mimetype)


def _root() -> str:
    return request.url_root.rstrip("/") + "/ogcapi"


def _check_f() -> None:
    f = request.args.get("f")
    if f not in (None, "", "json", "geojson"):
        raise BadInput("f must be json (only JSON is served)", field="f")


def _collection(cid: str):
    from cases.features import CASES
    from grids.features import collection

    if cid == "cases":
        if _user() is None:
            from gis.errors import Unauthorized

            raise Unauthorized("cases need a login or an API token (Authorization: Bearer …)")
        return CASES
    return collection(_db(), cid)


def _extent(c) -> tuple | None:
    from cases import features as cf
    from grids import features as gf

    return cf.extent(_db(), _user()) if c.id == "cases" else gf.extent(_db(), c)


def _describe(c) -> dict:
    base = f"{_root()}/collections/{c.id}"
    out = {"id": c.id, "title": c.title, "description": c.description, "itemType": "feature",
           "crs": [CRS84], "storageCrs": CRS84,
           "links": [{"href": base, "rel": "self", "type": "application/json", "title": c.title},
                     {"href": f"{base}/items", "rel": "items", "type": GEOJSON, "title": "items"},
                     {"href": f"{base}/queryables", "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                      "type": "application/schema+json", "title": "queryables"}]}
    ext = _extent(c)
    out["extent"] = {"spatial": {"bbox": [list(ext) if ext else [-180, -90, 180, 90]], "crs": CRS84}}
    if c.temporal:
        out["extent"]["temporal"] = {"interval": [[None, None]],
                                     "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return out


@bp.get("/ogcapi")
@bp.get("/ogcapi/")
def landing():
    """Landing page: links to conformance and collections."""
    _check_f()
    r = _root()
    return _out({"title": "gridgov 网格化社会治理 — OGC API Features",
                 "description": "Governance grids, regions, centers, standard addresses and (with a token) cases",
                 "links": [{"href": r, "rel": "self", "type": "application/json", "title": "this document"},
                           {"href": f"{r}/conformance", "rel": "conformance", "type": "application/json",
                            "title": "conformance"},
                           {"href": f"{r}/collections", "rel": "data", "type": "application/json",
                            "title": "collections"}]})


@bp.get("/ogcapi/conformance")
def conformance():
    """The conformance classes implemented."""
    _check_f()
    return _out({"conformsTo": CONFORMANCE})


@bp.get("/ogcapi/collections")
def collections():
    """Every collection the caller may read (cases only with a login or token)."""
    from cases.features import CASES
    from grids.features import collections as geo

    _check_f()
    cols = geo(_db()) + ([CASES] if _user() is not None else [])
    return _out({"links": [{"href": f"{_root()}/collections", "rel": "self", "type": "application/json"}],
                 "collections": [_describe(c) for c in cols]})


@bp.get("/ogcapi/collections/<cid>")
def collection(cid: str):
    """One collection's metadata with its extent."""
    _check_f()
    return _out(_describe(_collection(cid)))


@bp.get("/ogcapi/collections/<cid>/queryables")
def queryables(cid: str):
    """The properties usable as equality filters on items."""
    _check_f()
    c = _collection(cid)
    return _out({"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": f"{_root()}/collections/{cid}/"
                 "queryables", "type": "object", "title": c.title,
                 "properties": {p: {"title": p, "type": "string"} for p in c.props}},
                mimetype="application/schema+json")


@bp.get("/ogcapi/collections/<cid>/items")
def items(cid: str):
    """Features with bbox, datetime, limit/offset and property filters; numberMatched and next links."""
    from cases import features as cf
    from grids import features as gf

    _check_f()
    c = _collection(cid)
    q = gf.parse_query(request.args.to_dict(), c.props)
    feats, matched = cf.items(_db(), _user(), q) if c.id == "cases" else gf.items(_db(), c, q)
    base = f"{_root()}/collections/{cid}/items"
    args = request.args.to_dict()
    links = [{"href": f"{base}?{urlencode(args)}" if args else base, "rel": "self", "type": GEOJSON},
             {"href": f"{_root()}/collections/{cid}", "rel": "collection", "type": "application/json"}]
    if q.offset + len(feats) < matched:
        links.append({"href": f"{base}?{urlencode({**args, 'offset': q.offset + len(feats), 'limit': q.limit})}",
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if q.offset > 0:
        links.append({"href": f"{base}?{urlencode({**args, 'offset': max(0, q.offset - q.limit)})}",
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return _out({"type": "FeatureCollection", "features": feats, "numberMatched": matched,
                 "numberReturned": len(feats), "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "links": links}, mimetype=GEOJSON)


@bp.get("/ogcapi/collections/<cid>/items/<fid>")
def feature(cid: str, fid: str):
    """One feature by its id (a code; a case's numeric id)."""
    from cases import features as cf
    from grids import features as gf

    _check_f()
    c = _collection(cid)
    f = cf.item(_db(), _user(), fid) if c.id == "cases" else gf.item(_db(), c, fid)
    f["links"] = [{"href": f"{_root()}/collections/{cid}/items/{fid}", "rel": "self", "type": GEOJSON},
                  {"href": f"{_root()}/collections/{cid}", "rel": "collection", "type": "application/json"}]
    return _out(f, mimetype=GEOJSON)
