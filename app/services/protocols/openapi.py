"""The OpenAPI 3.0.3 document of the JSON API (/api/v1): its paths, built as a plain dict.

Kept by hand next to app/views/api.py; tests/app/protocols/test_api.py checks that every
/api/v1 route in the app's URL map appears here, so a new route cannot go undocumented.
The schemas the paths refer to are in openapi_schemas.py.
"""

from __future__ import annotations

from app.models import SOURCES, STATUSES
from app.services.protocols.openapi_schemas import BOOL, DATETIME, INT, STR, build_schemas, ref

OPENAPI_VERSION = "3.0.3"


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or STR,
    }


def _path_id(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": INT}


def _json(schema_name: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }


def _errors(*codes: int) -> dict:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
    }
    return {str(code): {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _body(schema_name: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": ref(schema_name)}}}


def _paths() -> dict:
    paging = [{"$ref": "#/components/parameters/limit"}, {"$ref": "#/components/parameters/offset"}]
    bbox = _query("bbox", "minlon,minlat,maxlon,maxlat (WGS-84)")
    unit = _query("unit", "责任单位 id 或名称")
    issue_filters = [
        _query(
            "status", "状态, 或 open (全部未结案)", {"type": "string", "enum": ["open", *STATUSES]}
        ),
        unit,
        _query("category", "类别编码 (一级编码含其二级类别)"),
        _query("source", "来源", {"type": "string", "enum": list(SOURCES)}),
        _query("cell", "15 位网格编码"),
        bbox,
        _query("overdue", "true: 只看超期未结案; false: 排除超期", BOOL),
        _query("updated_since", "只看此后有变化的问题 (ISO 8601)", DATETIME),
    ]
    issue_id = _path_id("issue_id", "问题 id")
    return {
        "/api/v1/openapi.json": {
            "get": {
                "tags": ["meta"],
                "summary": "本文档 (无需令牌)",
                "operationId": "getOpenapi",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.0 文档",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/v1/issues": {
            "get": {
                "tags": ["issues"],
                "summary": "问题列表",
                "operationId": "listIssues",
                "parameters": paging + issue_filters,
                "responses": {"200": _json("IssueList", "问题列表"), **_errors(400, 401)},
            },
            "post": {
                "tags": ["issues"],
                "summary": "上报问题",
                "operationId": "createIssue",
                "requestBody": _body("IssueCreate"),
                "responses": {
                    "201": _json("IssueDetail", "已创建"),
                    "202": _json("IssueAccepted", "已上报, 归属其他责任单位"),
                    **_errors(400, 401, 403),
                },
            },
        },
        "/api/v1/issues/{issue_id}": {
            "get": {
                "tags": ["issues"],
                "summary": "问题详情 (含处置记录和照片)",
                "operationId": "getIssue",
                "parameters": [issue_id],
                "responses": {"200": _json("IssueDetail", "问题详情"), **_errors(401, 404)},
            }
        },
        "/api/v1/issues/{issue_id}/actions": {
            "post": {
                "tags": ["issues"],
                "summary": "处置操作 (派遣、整改、提交、核查...)",
                "operationId": "actOnIssue",
                "parameters": [issue_id],
                "requestBody": _body("IssueAction"),
                "responses": {
                    "200": _json("IssueDetail", "操作后的问题"),
                    **_errors(400, 401, 403, 404, 409),
                },
            }
        },
        "/api/v1/issues/{issue_id}/place": {
            "post": {
                "tags": ["issues"],
                "summary": "手动定位待定位问题",
                "operationId": "placeIssue",
                "parameters": [issue_id],
                "requestBody": _body("IssuePlace"),
                "responses": {
                    "200": _json("IssueDetail", "定位后的问题"),
                    **_errors(400, 401, 403, 404, 409),
                },
            }
        },
        "/api/v1/issues/{issue_id}/photos": {
            "post": {
                "tags": ["issues"],
                "summary": "上传整改前/整改后照片 (提交核查前须有整改后照片)",
                "operationId": "addIssuePhotos",
                "parameters": [issue_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["kind", "version", "photo"],
                                "properties": {
                                    "kind": {"type": "string", "enum": ["before", "after"],
                                             "description": "before 整改前, after 整改后"},
                                    "version": {"type": "integer",
                                                "description": "问题当前的 version"},
                                    "note": {"type": "string"},
                                    "photo": {"type": "array",
                                              "items": {"type": "string", "format": "binary"}},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("IssueDetail", "上传后的问题"),
                    **_errors(400, 401, 403, 404, 409),
                },
            }
        },
        "/api/v1/issues/{issue_id}/photos/{photo_id}": {
            "get": {
                "tags": ["issues"],
                "summary": "问题照片文件 (已去除 EXIF)",
                "operationId": "getPhoto",
                "parameters": [issue_id, _path_id("photo_id", "照片 id")],
                "responses": {
                    "200": {
                        "description": "图片",
                        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(401, 404),
                },
            }
        },
        "/api/v1/cells": {
            "get": {
                "tags": ["cells"],
                "summary": "当前网格图层的单元网格",
                "operationId": "listCells",
                "parameters": paging
                + [
                    bbox,
                    unit,
                    _query("code", "网格编码 (15 位精确, 或更短的前缀)"),
                    _query(
                        "format",
                        "json (默认) 或 geojson",
                        {"type": "string", "enum": ["json", "geojson"]},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "网格列表或 GeoJSON FeatureCollection",
                        "content": {
                            "application/json": {"schema": ref("CellList")},
                            "application/geo+json": {"schema": ref("CellFeatureCollection")},
                        },
                    },
                    **_errors(400, 401),
                },
            }
        },
        "/api/v1/cells/{cell_id}": {
            "get": {
                "tags": ["cells"],
                "summary": "单元网格详情 (含几何)",
                "operationId": "getCell",
                "parameters": [_path_id("cell_id", "网格 id")],
                "responses": {"200": _json("CellDetail", "网格"), **_errors(401, 404)},
            }
        },
        "/api/v1/units": {
            "get": {
                "tags": ["units"],
                "summary": "责任单位列表",
                "operationId": "listUnits",
                "parameters": paging,
                "responses": {"200": _json("UnitList", "单位列表"), **_errors(400, 401)},
            }
        },
        "/api/v1/units/{unit_id}": {
            "get": {
                "tags": ["units"],
                "summary": "责任单位详情",
                "operationId": "getUnit",
                "parameters": [_path_id("unit_id", "单位 id")],
                "responses": {"200": _json("Unit", "单位"), **_errors(401, 404)},
            }
        },
        "/api/v1/patrols": {
            "get": {
                "tags": ["patrols"],
                "summary": "巡查列表",
                "operationId": "listPatrols",
                "parameters": paging,
                "responses": {"200": _json("PatrolList", "巡查列表"), **_errors(400, 401)},
            },
            "post": {
                "tags": ["patrols"],
                "summary": "规划巡查路线",
                "operationId": "createPatrol",
                "requestBody": _body("PatrolCreate"),
                "responses": {
                    "201": _json("PatrolCreated", "已规划的巡查"),
                    **_errors(400, 401, 403),
                },
            },
        },
        "/api/v1/patrols/{patrol_id}": {
            "get": {
                "tags": ["patrols"],
                "summary": "巡查详情 (含巡查点顺序)",
                "operationId": "getPatrol",
                "parameters": [_path_id("patrol_id", "巡查 id")],
                "responses": {"200": _json("PatrolDetail", "巡查"), **_errors(401, 404)},
            }
        },
        "/api/v1/reports": {
            "get": {
                "tags": ["reports"],
                "summary": "已发布的月度考核 (红黑榜)",
                "operationId": "listReports",
                "parameters": paging,
                "responses": {"200": _json("ReportList", "考核月份列表"), **_errors(400, 401)},
            }
        },
        "/api/v1/batches": {
            "get": {
                "tags": ["batches"],
                "summary": "反馈批次列表 (责任单位只计本单位的问题)",
                "operationId": "listBatches",
                "responses": {"200": _json("BatchList", "批次列表"), **_errors(401)},
            }
        },
        "/api/v1/batches/{batch_id}": {
            "get": {
                "tags": ["batches"],
                "summary": "反馈批次进度 (按状态、单位、类别, 单位冲突, 复核)",
                "operationId": "getBatch",
                "parameters": [_path_id("batch_id", "批次 id")],
                "responses": {"200": _json("BatchDetail", "批次进度"), **_errors(401, 404)},
            }
        },
        "/api/v1/batches/{batch_id}/dispatch": {
            "post": {
                "tags": ["batches"],
                "summary": "一键派遣整个批次 (管理员; 已派遣的不重复派遣)",
                "operationId": "dispatchBatch",
                "parameters": [_path_id("batch_id", "批次 id")],
                "responses": {
                    "200": _json("DispatchResult", "派遣结果"),
                    **_errors(401, 403, 404),
                },
            }
        },
    }


def build_openapi() -> dict:
    """Return the whole OpenAPI 3.0.3 document as a dict."""

    def response(description: str) -> dict:
        return {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "SaniGrid 创卫网格 API",
            "version": "1.0.0",
            "description": (
                "创卫网格化管理系统的 JSON API。所有接口 (本文档除外) 需要 "
                "`Authorization: Bearer <token>`; 令牌由 `flask --app app create-token "
                "USERNAME` 生成, 带有用户的角色和责任单位: 责任单位令牌只能看到本单位的"
                '网格和问题。列表返回 `{"items": [...], "total": N}`, 支持 limit '
                "(默认 50, 最大 500) 和 offset。坐标均为 WGS-84。"
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": n} for n in (
            "issues", "cells", "units", "patrols", "reports", "batches", "meta")],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "sg_..."}
            },
            "parameters": {
                "limit": _query(
                    "limit",
                    "每页条数 (1-500, 默认 50)",
                    {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                ),
                "offset": _query(
                    "offset", "跳过条数 (默认 0)", {"type": "integer", "minimum": 0, "default": 0}
                ),
            },
            "responses": {
                "BadRequest": response("参数或请求体有误 (指明字段与取值)"),
                "Unauthorized": response("缺少或无效的令牌"),
                "Forbidden": response("角色无权执行此操作"),
                "NotFound": response("对象不存在或无权查看"),
                "Conflict": response("已被他人修改 (version 过期) 或状态不允许"),
            },
            "schemas": build_schemas(),
        },
    }
