"""The OpenAPI 3.0.3 document of the JSON API (/api/v1), built as a plain dict.

Kept by hand next to app/views/api.py; tests/app/protocols/test_api.py checks that every
/api/v1 route in the app's URL map appears here, so a new route cannot go undocumented.
"""

from __future__ import annotations

from app.models import SOURCES, STATUSES

OPENAPI_VERSION = "3.0.3"
ACTIONS = (
    "dispatch",
    "start",
    "submit",
    "verify_ok",
    "verify_fail",
    "reject",
    "mark_duplicate",
    "reopen",
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
DATETIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}


def _list_of(item: str) -> dict:
    return {
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "total": {"type": "integer", "description": "符合条件的总数 (不受 limit 影响)"},
            "limit": INT,
            "offset": INT,
        },
    }


def _schemas() -> dict:
    geocode = {
        "type": "object",
        "properties": {
            "method": _nullable(
                {**STR, "description": "coordinates, road, poi, intersection, manual, none, ..."}
            ),
            "confidence": _nullable({**NUM, "minimum": 0, "maximum": 1}),
            "candidates": {"type": "array", "items": {"type": "object"}},
        },
    }
    issue = {
        "type": "object",
        "required": [
            "id",
            "status",
            "category",
            "description",
            "address",
            "lon",
            "lat",
            "cell_code",
            "unit",
            "geocode",
            "deadline",
            "version",
        ],
        "properties": {
            "id": INT,
            "status": {"type": "string", "enum": list(STATUSES)},
            "status_label": STR,
            "category": _nullable({**STR, "description": "类别编码, 如 0302"}),
            "category_name": _nullable(STR),
            "description": STR,
            "address": _nullable(STR),
            "lon": _nullable({**NUM, "description": "WGS-84; null 表示待定位"}),
            "lat": _nullable({**NUM, "description": "WGS-84; null 表示待定位"}),
            "cell_code": _nullable({**STR, "description": "15 位网格编码"}),
            "unit": _nullable({**STR, "description": "责任单位名称"}),
            "unit_id": _nullable(INT),
            "geocode": geocode,
            "needs_placement": BOOL,
            "outside_grid": BOOL,
            "source": {"type": "string", "enum": list(SOURCES)},
            "found_at": DATETIME,
            "deadline": _nullable(DATE),
            "overdue": BOOL,
            "closed_at": _nullable(DATETIME),
            "rework_count": INT,
            "recurrence_of": _nullable({**INT, "description": "反弹: 此前已销号的问题 id"}),
            "duplicate_of": _nullable(INT),
            "version": {**INT, "description": "乐观锁版本号, 操作时回传"},
            "batch": _nullable({**INT, "description": "反馈批次 id"}),
            "batch_seq": _nullable({**STR, "description": "清单中的序号"}),
            "unit_source": _nullable({
                "type": "string", "enum": ["list", "category", "cell", "manual"],
                "description": "责任单位依据: 清单、类别主管单位、网格属地、手动"}),
            "listed_unit": _nullable({**STR, "description": "清单所写的责任单位"}),
            "routing_conflict": _nullable({
                "type": "object", "description": "清单单位与规则单位不一致",
                "properties": {"list": _nullable(STR), "category": _nullable(STR),
                               "cell": _nullable(STR)}}),
            "co_units": {"type": "array", "items": STR, "description": "协办单位名称"},
            "category_pending": {**BOOL, "description": "待分类"},
            "category_text": _nullable({**STR, "description": "原文所写的类别"}),
            "measures": _nullable({**STR, "description": "整改措施"}),
            "recheck_result": _nullable({"type": "string", "enum": ["passed", "failed"]}),
            "recheck_note": _nullable(STR),
            "created_at": DATETIME,
            "updated_at": _nullable(DATETIME),
        },
    }
    by_status = {
        "type": "object",
        "description": "按状态计数",
        "properties": {s: INT for s in STATUSES},
    }
    batch = {
        "type": "object",
        "required": ["id", "name", "source", "total", "by_status", "overdue"],
        "properties": {
            "id": INT,
            "name": STR,
            "source": STR,
            "received_on": _nullable(DATE),
            "total": INT,
            "by_status": by_status,
            "overdue": INT,
            "closed_on_time": INT,
        },
    }
    counted = {
        "type": "object",
        "properties": {"name": STR, "total": INT, "open": INT, "closed": INT, "overdue": INT},
    }
    batch_detail = {
        "allOf": [
            _ref("Batch"),
            {
                "type": "object",
                "properties": {
                    "by_unit": {"type": "array", "items": counted},
                    "by_category": {"type": "array", "items": counted},
                    "conflicts": {"type": "array", "items": {"type": "object"}},
                    "recheck": _nullable({"type": "object", "description": "最近一次州级复核"}),
                    "issues": {"type": "array", "items": {**INT, "description": "问题 id"}},
                },
            },
        ]
    }
    dispatch_result = {
        "type": "object",
        "required": ["dispatched", "per_unit", "skipped"],
        "properties": {
            "dispatched": INT,
            "per_unit": {"type": "object", "additionalProperties": INT},
            "skipped": {
                "type": "array",
                "items": {"type": "object", "properties": {"id": INT, "reason": STR}},
            },
        },
    }
    event = {
        "type": "object",
        "properties": {
            "id": INT,
            "action": STR,
            "at": DATETIME,
            "user": _nullable(STR),
            "from_status": _nullable(STR),
            "to_status": _nullable(STR),
            "note": _nullable(STR),
        },
    }
    photo = {
        "type": "object",
        "properties": {
            "id": INT,
            "kind": {"type": "string", "enum": ["before", "after"]},
            "url": STR,
            "width": INT,
            "height": INT,
            "created_at": DATETIME,
        },
    }
    issue_detail = {
        "allOf": [
            _ref("Issue"),
            {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": _ref("IssueEvent")},
                    "photos": {"type": "array", "items": _ref("Photo")},
                },
            },
        ],
    }
    issue_create = {
        "type": "object",
        "required": ["description"],
        "description": "address 或 lon/lat 至少提供其一",
        "properties": {
            "description": {**STR, "maxLength": 2000},
            "category": {**STR, "description": "类别编码, 如 0302"},
            "address": {**STR, "maxLength": 255},
            "lon": NUM,
            "lat": NUM,
            "coord_system": {
                "type": "string",
                "enum": ["wgs84", "gcj02", "bd09"],
                "default": "wgs84",
            },
            "source": {"type": "string", "enum": list(SOURCES), "default": "县级督查"},
            "found_at": DATETIME,
            "note": STR,
        },
    }
    accepted = {
        "type": "object",
        "description": "已上报，但问题归属其他责任单位, 上报人无权查看",
        "properties": {"id": INT, "status": STR, "message": STR},
    }
    action = {
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "note": {**STR, "description": "verify_fail 必填 (退回原因)"},
            "measures": {**STR, "description": (
                "submit: 整改措施 (必填, 除非已填写); 提交前问题须已有整改后照片, 否则 400")},
            "version": {**INT, "description": "读取时的 version; 已被他人修改则 409"},
        },
    }
    place = {
        "type": "object",
        "required": ["lon", "lat"],
        "properties": {
            "lon": NUM,
            "lat": NUM,
            "coord_system": {
                "type": "string",
                "enum": ["wgs84", "gcj02", "bd09"],
                "default": "wgs84",
            },
        },
    }
    cell = {
        "type": "object",
        "properties": {
            "id": INT,
            "code": {**STR, "pattern": "^[0-9]{15}$"},
            "grid_id": INT,
            "subdistrict_code": STR,
            "community_code": STR,
            "area_m2": NUM,
            "unit": _nullable(STR),
            "unit_id": _nullable(INT),
            "bbox": {"type": "array", "items": NUM, "minItems": 4, "maxItems": 4},
            "open_count": INT,
        },
    }
    cell_detail = {
        "allOf": [_ref("Cell"), {"type": "object", "properties": {"geometry": _ref("Geometry")}}]
    }
    geometry = {
        "type": "object",
        "description": "GeoJSON geometry (WGS-84)",
        "required": ["type", "coordinates"],
        "properties": {"type": STR, "coordinates": {"type": "array", "items": {}}},
    }
    feature_collection = {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["Feature"]},
                        "id": INT,
                        "geometry": _ref("Geometry"),
                        "properties": _ref("Cell"),
                    },
                },
            },
            "total": INT,
            "numberMatched": INT,
            "numberReturned": INT,
        },
    }
    unit = {
        "type": "object",
        "properties": {
            "id": INT,
            "name": STR,
            "kind": STR,
            "contact": _nullable(STR),
            "phone": _nullable(STR),
            "active": BOOL,
            "cell_count": INT,
            "open_count": INT,
        },
    }
    stop = {
        "type": "object",
        "properties": {
            "seq": INT,
            "issue_id": _nullable(INT),
            "lon": NUM,
            "lat": NUM,
            "label": _nullable(STR),
            "result": _nullable(STR),
            "remark": _nullable(STR),
        },
    }
    patrol = {
        "type": "object",
        "properties": {
            "id": INT,
            "name": STR,
            "mode": {"type": "string", "enum": ["walk", "drive"]},
            "status": STR,
            "inspector": _nullable(STR),
            "planned_for": _nullable(DATE),
            "length_m": NUM,
            "est_minutes": NUM,
            "stop_count": INT,
            "created_at": DATETIME,
        },
    }
    patrol_detail = {
        "allOf": [
            _ref("Patrol"),
            {
                "type": "object",
                "properties": {
                    "start": _nullable({"type": "array", "items": NUM}),
                    "order": {"type": "array", "items": _nullable(INT)},
                    "stops": {"type": "array", "items": _ref("Stop")},
                    "legs": _nullable(
                        {"type": "object", "description": "GeoJSON FeatureCollection"}
                    ),
                    "pdf_url": {**STR, "description": "打印用巡查路线单 (PDF)"},
                },
            },
        ]
    }
    patrol_create = {
        "type": "object",
        "description": "issue_ids 或 points 至少提供其一",
        "properties": {
            "issue_ids": {"type": "array", "items": INT},
            "points": {
                "type": "array",
                "items": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2},
            },
            "mode": {"type": "string", "enum": ["walk", "drive"], "default": "walk"},
            "start": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2},
        },
    }
    patrol_created = {
        "type": "object",
        "properties": {
            "id": INT,
            "order": {"type": "array", "items": {}},
            "length_m": NUM,
            "legs": {"type": "object", "description": "GeoJSON lines along roads"},
            "pdf_url": STR,
        },
    }
    report = {
        "type": "object",
        "properties": {
            "id": INT,
            "month": {**STR, "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "scope": STR,
            "published_at": DATETIME,
            "red_list": {"type": "array", "items": {}},
            "black_list": {"type": "array", "items": {}},
        },
    }
    error = {
        "type": "object",
        "required": ["error", "status"],
        "properties": {
            "error": {**STR, "description": "中文错误说明, 指明字段与取值"},
            "status": INT,
            "field": {**STR, "description": "出错的字段 (若适用)"},
        },
    }
    return {
        "Issue": issue,
        "IssueDetail": issue_detail,
        "IssueEvent": event,
        "Photo": photo,
        "IssueCreate": issue_create,
        "IssueAccepted": accepted,
        "IssueAction": action,
        "IssuePlace": place,
        "IssueList": _list_of("Issue"),
        "Cell": cell,
        "CellDetail": cell_detail,
        "CellList": _list_of("Cell"),
        "Geometry": geometry,
        "CellFeatureCollection": feature_collection,
        "Unit": unit,
        "UnitList": _list_of("Unit"),
        "Stop": stop,
        "Patrol": patrol,
        "PatrolDetail": patrol_detail,
        "PatrolList": _list_of("Patrol"),
        "PatrolCreate": patrol_create,
        "PatrolCreated": patrol_created,
        "Report": report,
        "ReportList": _list_of("Report"),
        "Batch": batch,
        "BatchList": _list_of("Batch"),
        "BatchDetail": batch_detail,
        "DispatchResult": dispatch_result,
        "Error": error,
    }


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
        "content": {"application/json": {"schema": _ref(schema_name)}},
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
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


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
                            "application/json": {"schema": _ref("CellList")},
                            "application/geo+json": {"schema": _ref("CellFeatureCollection")},
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
            "content": {"application/json": {"schema": _ref("Error")}},
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
            "schemas": _schemas(),
        },
    }
