"""OGC API – Features (/ogc): landing page, conformance, collections and items as GeoJSON."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_login import current_user

from app.auth import user_from_bearer
from app.errors import answer_errors
from app.extensions import csrf, db
from app.services.core.errors import ValidationError
from app.services.protocols import ogc_collections, ogc_items, ogc_openapi

bp = Blueprint("ogc", __name__, url_prefix="/ogc")
# Read-only GETs; bearer tokens or the browser session. Nothing here changes state.
csrf.exempt(bp)

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
# Exception codes as OGC API services (pygeoapi, ldproxy) write them.
ERROR_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
}


def ogc_error(status: int, message: str, exc: Exception | None = None):
    """The OGC API exception body (``code``, ``description``); 401 also names the scheme."""
    response = jsonify(
        {
            "code": ERROR_CODES.get(status, "ServerError"),
            "description": message,
            "error": message,
            "status": status,
        }
    )
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sanigrid"'
    return response


answer_errors(bp, ogc_error)


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization")
    if header:
        # A client that sends a token means that token: a bad one is not rescued by a cookie.
        user = user_from_bearer(header)
    else:
        user = current_user if current_user.is_authenticated else None
    if user is None:
        return ogc_error(401, "请先登录，或提供 API 令牌 (Authorization: Bearer <token>)")
    g.ogc_user = user
    return None


def _check_format(*allowed: str) -> None:
    fmt = request.args.get("f")
    if fmt is not None and fmt not in allowed:
        msg = f"f 参数无效: 不支持的格式 {fmt!r}，可用 {', '.join(allowed)}"
        raise ValidationError(msg)


def _answer(data: dict, mimetype: str = JSON):
    response = jsonify(data)
    response.mimetype = mimetype
    return response


def _link(endpoint: str, rel: str, mimetype: str, title: str, **values) -> dict:
    return {
        "href": url_for(endpoint, _external=True, **values),
        "rel": rel,
        "type": mimetype,
        "title": title,
    }


def _collection_links(collection_id: str) -> list[dict]:
    return [
        _link("ogc.collection", "self", JSON, "集合信息", collection_id=collection_id, f="json"),
        _link(
            "ogc.items", "items", GEOJSON, "要素 (GeoJSON)", collection_id=collection_id, f="json"
        ),
    ]


@bp.get("/", strict_slashes=False)
def landing():
    """Return the landing page with links to the API, conformance and collections."""
    _check_format("json")
    return _answer(
        {
            "title": "创卫网格 SaniGrid OGC API – Features",
            "description": "责任网格、问题点与基础图层（WGS-84），供 QGIS / GDAL 读取",
            "links": [
                _link("ogc.landing", "self", JSON, "本页 (JSON)", f="json"),
                _link("ogc.api", "service-desc", OPENAPI, "OpenAPI 3.0 接口文档", f="json"),
                _link("ogc.conformance", "conformance", JSON, "符合的标准类", f="json"),
                _link("ogc.collections", "data", JSON, "集合列表", f="json"),
            ],
        }
    )


@bp.get("/conformance")
def conformance():
    """List the conformance classes this service implements."""
    _check_format("json")
    return _answer({"conformsTo": ogc_collections.CONFORMANCE})


@bp.get("/api")
def api():
    """Return the OpenAPI 3.0 description of this service."""
    _check_format("json")
    root = url_for("ogc.landing", _external=True).rstrip("/")
    collections = [c["id"] for c in ogc_collections.list_collections(db.session, g.ogc_user)]
    return _answer(ogc_openapi.build_openapi(root, collections), OPENAPI)


@bp.get("/collections")
def collections():
    """List the collections with the extent the caller may read."""
    _check_format("json")
    rows = ogc_collections.list_collections(db.session, g.ogc_user)
    for row in rows:
        row["links"] = _collection_links(row["id"])
    return _answer(
        {
            "links": [_link("ogc.collections", "self", JSON, "集合列表", f="json")],
            "collections": rows,
        }
    )


@bp.get("/collections/<collection_id>")
def collection(collection_id: str):
    """Describe one collection."""
    _check_format("json")
    data = ogc_collections.describe_collection(db.session, g.ogc_user, collection_id)
    data["links"] = _collection_links(collection_id)
    return _answer(data)


@bp.get("/collections/<collection_id>/items")
def items(collection_id: str):
    """Return one page of features as a GeoJSON FeatureCollection."""
    _check_format("json", "geojson")
    default = int(current_app.config.get("OGC_DEFAULT_LIMIT", ogc_items.DEFAULT_LIMIT))
    query = ogc_items.parse_item_query(collection_id, request.args, default_limit=default)
    page = ogc_items.query_items(db.session, g.ogc_user, collection_id, query)
    # Paging links repeat the query (never arbitrary arguments, which could clash with
    # url_for's own keywords).
    args = {
        k: request.args[k] for k in ("bbox", "bbox-crs", "crs", "datetime") if request.args.get(k)
    }
    args.update(query.filters)
    args["f"] = request.args.get("f") or "json"

    def page_link(rel: str, offset: int) -> dict:
        return _link(
            "ogc.items",
            rel,
            GEOJSON,
            rel,
            collection_id=collection_id,
            limit=page.limit,
            offset=offset,
            **args,
        )

    links = [page_link("self", page.offset)]
    if page.has_next:
        links.append(page_link("next", page.offset + page.limit))
    if page.has_prev:
        links.append(page_link("prev", max(0, page.offset - page.limit)))
    links.append(
        _link(
            "ogc.collection", "collection", JSON, "集合信息", collection_id=collection_id, f="json"
        )
    )
    return _answer(
        {
            "type": "FeatureCollection",
            "features": page.features,
            "numberMatched": page.matched,
            "numberReturned": page.returned,
            "timeStamp": ogc_items.timestamp(),
            "links": links,
        },
        GEOJSON,
    )


@bp.get("/collections/<collection_id>/items/<fid>")
def item(collection_id: str, fid: str):
    """Return one feature."""
    _check_format("json", "geojson")
    feature = ogc_items.get_item(db.session, g.ogc_user, collection_id, fid)
    feature["links"] = [
        _link(
            "ogc.item", "self", GEOJSON, "本要素", collection_id=collection_id, fid=fid, f="json"
        ),
        _link(
            "ogc.collection", "collection", JSON, "集合信息", collection_id=collection_id, f="json"
        ),
    ]
    return _answer(feature, GEOJSON)
