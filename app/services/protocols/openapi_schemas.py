"""The schemas (``components.schemas``) of the JSON API's OpenAPI document, kept by hand.

One schema per object the API answers with (Issue, Cell, Unit, Patrol, Report, Batch, ...),
as app/services/protocols/serializers.py writes them; the paths that use them are in
openapi.py.
"""

from __future__ import annotations

from app.models import SOURCES, STATUSES

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


def ref(name: str) -> dict:
    """A reference to a schema of this document."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    """The schema, allowing null."""
    return {**schema, "nullable": True}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
DATETIME = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}


def list_of(item: str) -> dict:
    """A page of items: ``{"items", "total", "limit", "offset"}``."""
    return {
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "total": {"type": "integer", "description": "符合条件的总数 (不受 limit 影响)"},
            "limit": INT,
            "offset": INT,
        },
    }


def build_schemas() -> dict:
    """Every schema of the JSON API by name."""
    geocode = {
        "type": "object",
        "properties": {
            "method": nullable(
                {**STR, "description": "coordinates, road, poi, intersection, manual, none, ..."}
            ),
            "confidence": nullable({**NUM, "minimum": 0, "maximum": 1}),
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
            "category": nullable({**STR, "description": "类别编码, 如 0302"}),
            "category_name": nullable(STR),
            "description": STR,
            "address": nullable(STR),
            "lon": nullable({**NUM, "description": "WGS-84; null 表示待定位"}),
            "lat": nullable({**NUM, "description": "WGS-84; null 表示待定位"}),
            "cell_code": nullable({**STR, "description": "15 位网格编码"}),
            "unit": nullable({**STR, "description": "责任单位名称"}),
            "unit_id": nullable(INT),
            "geocode": geocode,
            "needs_placement": BOOL,
            "outside_grid": BOOL,
            "source": {"type": "string", "enum": list(SOURCES)},
            "found_at": DATETIME,
            "deadline": nullable(DATE),
            "overdue": BOOL,
            "closed_at": nullable(DATETIME),
            "rework_count": INT,
            "recurrence_of": nullable({**INT, "description": "反弹: 此前已销号的问题 id"}),
            "duplicate_of": nullable(INT),
            "version": {**INT, "description": "乐观锁版本号, 操作时回传"},
            "batch": nullable({**INT, "description": "反馈批次 id"}),
            "batch_seq": nullable({**STR, "description": "清单中的序号"}),
            "unit_source": nullable({
                "type": "string", "enum": ["list", "category", "cell", "manual"],
                "description": "责任单位依据: 清单、类别主管单位、网格属地、手动"}),
            "listed_unit": nullable({**STR, "description": "清单所写的责任单位"}),
            "routing_conflict": nullable({
                "type": "object", "description": "清单单位与规则单位不一致",
                "properties": {"list": nullable(STR), "category": nullable(STR),
                               "cell": nullable(STR)}}),
            "co_units": {"type": "array", "items": STR, "description": "协办单位名称"},
            "category_pending": {**BOOL, "description": "待分类"},
            "category_text": nullable({**STR, "description": "原文所写的类别"}),
            "measures": nullable({**STR, "description": "整改措施"}),
            "recheck_result": nullable({"type": "string", "enum": ["passed", "failed"]}),
            "recheck_note": nullable(STR),
            "created_at": DATETIME,
            "updated_at": nullable(DATETIME),
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
            "received_on": nullable(DATE),
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
            ref("Batch"),
            {
                "type": "object",
                "properties": {
                    "by_unit": {"type": "array", "items": counted},
                    "by_category": {"type": "array", "items": counted},
                    "conflicts": {"type": "array", "items": {"type": "object"}},
                    "recheck": nullable({"type": "object", "description": "最近一次州级复核"}),
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
            "user": nullable(STR),
            "from_status": nullable(STR),
            "to_status": nullable(STR),
            "note": nullable(STR),
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
            ref("Issue"),
            {
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": ref("IssueEvent")},
                    "photos": {"type": "array", "items": ref("Photo")},
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
            "unit": nullable(STR),
            "unit_id": nullable(INT),
            "bbox": {"type": "array", "items": NUM, "minItems": 4, "maxItems": 4},
            "open_count": INT,
        },
    }
    cell_detail = {
        "allOf": [ref("Cell"), {"type": "object", "properties": {"geometry": ref("Geometry")}}]
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
                        "geometry": ref("Geometry"),
                        "properties": ref("Cell"),
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
            "contact": nullable(STR),
            "phone": nullable(STR),
            "active": BOOL,
            "cell_count": INT,
            "open_count": INT,
        },
    }
    stop = {
        "type": "object",
        "properties": {
            "seq": INT,
            "issue_id": nullable(INT),
            "lon": NUM,
            "lat": NUM,
            "label": nullable(STR),
            "result": nullable(STR),
            "remark": nullable(STR),
        },
    }
    patrol = {
        "type": "object",
        "properties": {
            "id": INT,
            "name": STR,
            "mode": {"type": "string", "enum": ["walk", "drive"]},
            "status": STR,
            "inspector": nullable(STR),
            "planned_for": nullable(DATE),
            "length_m": NUM,
            "est_minutes": NUM,
            "stop_count": INT,
            "created_at": DATETIME,
        },
    }
    patrol_detail = {
        "allOf": [
            ref("Patrol"),
            {
                "type": "object",
                "properties": {
                    "start": nullable({"type": "array", "items": NUM}),
                    "order": {"type": "array", "items": nullable(INT)},
                    "stops": {"type": "array", "items": ref("Stop")},
                    "legs": nullable(
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
        "IssueList": list_of("Issue"),
        "Cell": cell,
        "CellDetail": cell_detail,
        "CellList": list_of("Cell"),
        "Geometry": geometry,
        "CellFeatureCollection": feature_collection,
        "Unit": unit,
        "UnitList": list_of("Unit"),
        "Stop": stop,
        "Patrol": patrol,
        "PatrolDetail": patrol_detail,
        "PatrolList": list_of("Patrol"),
        "PatrolCreate": patrol_create,
        "PatrolCreated": patrol_created,
        "Report": report,
        "ReportList": list_of("Report"),
        "Batch": batch,
        "BatchList": list_of("Batch"),
        "BatchDetail": batch_detail,
        "DispatchResult": dispatch_result,
        "Error": error,
    }
