"""The OpenAPI 3.0 document of the OGC API – Features service (/ogc), built as a plain dict."""

from __future__ import annotations

from app.services.protocols.ogc_collections import COLLECTIONS, filter_columns
from app.services.protocols.ogc_items import DEFAULT_LIMIT, MAX_LIMIT


def _param(
    name: str,
    schema: dict,
    description: str,
    *,
    where: str = "query",
    required: bool = False,
    **extra,
) -> dict:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
        **extra,
    }


def build_openapi(root: str, collection_ids: list[str]) -> dict:
    """The OpenAPI 3.0 document of the /ogc service (``root`` is its absolute URL)."""
    fmt = _param("f", {"type": "string", "enum": ["json"], "default": "json"}, "响应格式")
    limit = _param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "每页要素数",
        style="form",
        explode=False,
    )
    offset = _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "跳过的要素数")
    bbox = _param(
        "bbox",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "minx,miny,maxx,maxy（WGS-84 经纬度, CRS84）",
        style="form",
        explode=False,
    )
    json_doc = {
        "description": "JSON",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    geojson = {
        "description": "GeoJSON",
        "content": {"application/geo+json": {"schema": {"type": "object"}}},
    }
    errors = {
        "400": {"description": "参数无效"},
        "401": {"description": "未认证"},
        "404": {"description": "不存在"},
    }

    def get(summary: str, params: list, response: dict, op_id: str) -> dict:
        return {
            "get": {
                "summary": summary,
                "operationId": op_id,
                "parameters": params,
                "responses": {"200": response, **errors},
            }
        }

    paths = {
        "/": get("首页", [fmt], json_doc, "getLandingPage"),
        "/conformance": get("符合的标准类", [fmt], json_doc, "getConformance"),
        "/api": get("接口文档", [fmt], json_doc, "getApi"),
        "/collections": get("集合列表", [fmt], json_doc, "getCollections"),
    }
    for cid in collection_ids:
        spec = COLLECTIONS[cid]
        filters = [
            _param(name, {"type": "string"}, f"按 {name} 精确筛选")
            for name in filter_columns(spec)
        ]
        paths[f"/collections/{cid}"] = get(
            f"{spec.title}：集合信息", [fmt], json_doc, f"describe_{cid}"
        )
        if spec.source == "issues":
            filters.append(
                _param(
                    "datetime", {"type": "string"}, "发现时间：时刻或区间 start/end（.. 表示不限）"
                )
            )
        paths[f"/collections/{cid}/items"] = get(
            f"{spec.title}：要素", [fmt, bbox, limit, offset, *filters], geojson, f"get_{cid}"
        )
        paths[f"/collections/{cid}/items/{{featureId}}"] = get(
            f"{spec.title}：单个要素",
            [fmt, _param("featureId", {"type": "string"}, "要素 id", where="path", required=True)],
            geojson,
            f"get_{cid}_item",
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "创卫网格 SaniGrid OGC API – Features",
            "version": "1.0.0",
            "description": "需要 Authorization: Bearer <token> 或已登录的浏览器会话",
        },
        "servers": [{"url": root}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
