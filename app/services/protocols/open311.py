"""Open311 GeoReport v2 over the same problems and access rule as the JSON API.

Services are the problem categories (service_code = category code); service requests are
issues. The campaign's data is not public, so reads need a token too, and a unit head's
token sees only its own unit's requests. Spec: http://wiki.open311.org/GeoReport_v2
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models import OPEN_STATUSES, Category, Issue, User
from app.services.core import access, params
from app.services.core.errors import ValidationError
from app.services.issues.intake import IssueInput, create_issue
from app.services.protocols.serializers import default_photo_url, iso, issue_updated_at

MAX_REQUESTS = 1000
OPEN311_SOURCE = "群众投诉/12345"



def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def list_services(session) -> list[dict]:
    """Every reportable category: level-2 ones, and level-1 ones without children."""
    cats = list(session.execute(select(Category).order_by(Category.code)).scalars())
    names = {c.code: c.name for c in cats if c.level == 1}
    parents = {c.parent_code for c in cats if c.parent_code}
    services = []
    for cat in cats:
        if cat.level == 1 and cat.code in parents:
            continue
        group = names.get(cat.parent_code or cat.code, cat.name)
        services.append(
            {
                "service_code": cat.code,
                "service_name": cat.name,
                "description": f"{group} - {cat.name} (整改时限 {cat.deadline_days} 个工作日)"
                if cat.level > 1
                else f"{cat.name} (整改时限 {cat.deadline_days} 个工作日)",
                "metadata": False,
                "type": "realtime",
                "keywords": ",".join(dict.fromkeys([group, cat.name])),
                "group": group,
            }
        )
    return services


def request_to_dict(issue: Issue, *, base_url: str = "") -> dict:
    """An issue as a GeoReport v2 service request."""
    closed = issue.status not in OPEN_STATUSES
    last_note = next((e.note for e in reversed(issue.events) if e.note), None)
    notes = issue.status_label + (f": {last_note}" if last_note else "")
    photo = issue.photos[0] if issue.photos else None
    return {
        "service_request_id": issue.id,
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": issue.category.name if issue.category else None,
        "service_code": issue.category.code if issue.category else None,
        "description": issue.description,
        "agency_responsible": issue.unit.name if issue.unit else None,
        "service_notice": None,
        "requested_datetime": iso(issue.found_at),
        "updated_datetime": iso(issue_updated_at(issue)),
        "expected_datetime": f"{issue.deadline.isoformat()}T23:59:59" if issue.deadline else None,
        "address": issue.address,
        "address_id": None,
        "zipcode": None,
        "lat": issue.lat,
        "long": issue.lon,
        "media_url": base_url.rstrip("/") + default_photo_url(photo) if photo else None,
    }


def _loaded(stmt):
    return stmt.options(
        selectinload(Issue.category),
        selectinload(Issue.unit),
        selectinload(Issue.events),
        selectinload(Issue.photos),
    )


def list_requests(session, user: User, args: Mapping, *, base_url: str = "") -> list[dict]:
    """Service requests the user may see, newest first (at most 1000)."""
    access.require(user, "read")
    stmt = access.scope_issues(select(Issue), user)
    ids = params.parse_id_list(
        args.get("service_request_id"), name="service_request_id", max_items=MAX_REQUESTS
    )
    if ids:
        # Per the spec, an id list overrides every other filter.
        stmt = stmt.where(Issue.id.in_(ids))
    else:
        codes = _split(args.get("service_code"))
        if codes:
            known = set(
                session.execute(select(Category.code).where(Category.code.in_(codes))).scalars()
            )
            unknown = [c for c in codes if c not in known]
            if unknown:
                raise params.bad("service_code", ",".join(unknown), "没有这个类别编码")
            sub = select(Category.id).where(
                Category.code.in_(codes) | Category.parent_code.in_(codes)
            )
            stmt = stmt.where(Issue.category_id.in_(sub))
        start = end = None
        if args.get("start_date"):
            start = params.parse_datetime(args["start_date"], name="start_date")
            stmt = stmt.where(Issue.found_at >= start)
        if args.get("end_date"):
            end = params.parse_datetime(args["end_date"], name="end_date")
            stmt = stmt.where(Issue.found_at <= end)
        if start and end and start > end:
            raise params.bad("end_date", args["end_date"], "早于 start_date")
        statuses = _split(args.get("status"))
        bad = [s for s in statuses if s not in ("open", "closed")]
        if bad:
            raise params.bad("status", args.get("status"), "可选 open, closed")
        if set(statuses) == {"open"}:
            stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
        elif set(statuses) == {"closed"}:
            stmt = stmt.where(Issue.status.not_in(OPEN_STATUSES))
    stmt = _loaded(stmt.order_by(Issue.found_at.desc(), Issue.id.desc()).limit(MAX_REQUESTS))
    return [request_to_dict(i, base_url=base_url) for i in session.execute(stmt).scalars()]


def get_request(session, user: User, request_id: int, *, base_url: str = "") -> list[dict]:
    """One service request, as a one-item list (the spec's shape)."""
    issue = access.get_issue(session, user, request_id)
    return [request_to_dict(issue, base_url=base_url)]


def _form_text(form: Mapping, name: str, *, max_len: int) -> str | None:
    value = (form.get(name) or "").strip()
    if len(value) > max_len:
        msg = f"参数 {name} 过长 (超过 {max_len} 字)"
        raise ValidationError(msg)
    return value or None


def create_request(session, user: User, form: Mapping) -> list[dict]:
    """Create a service request from the spec's form fields through the intake service."""
    access.require(user, "report")
    code = _form_text(form, "service_code", max_len=10)
    if not code:
        msg = "参数 service_code 不能为空"
        raise ValidationError(msg)
    if session.execute(select(Category.id).where(Category.code == code)).scalar() is None:
        raise params.bad("service_code", code, "没有这个类别编码, 见 services.json")
    description = _form_text(form, "description", max_len=2000)
    if not description:
        msg = "参数 description 不能为空"
        raise ValidationError(msg)
    lat, lon = _form_text(form, "lat", max_len=40), _form_text(form, "long", max_len=40)
    address = _form_text(form, "address_string", max_len=255)
    if (lat is None) != (lon is None):
        msg = "参数 lat 和 long 必须同时提供"
        raise ValidationError(msg)
    if lat is None and not address:
        msg = "参数 lat/long 或 address_string 必须提供其一"
        raise ValidationError(msg)
    media_url = _form_text(form, "media_url", max_len=500)
    if media_url and not media_url.startswith(("http://", "https://")):
        raise params.bad("media_url", media_url, "应为 http(s) 网址")
    contact = " ".join(
        filter(
            None,
            (
                _form_text(form, k, max_len=60)
                for k in ("first_name", "last_name", "phone", "email")
            ),
        )
    )
    note = (
        "; ".join(
            filter(
                None,
                (
                    f"联系人: {contact}" if contact else None,
                    f"照片: {media_url}" if media_url else None,
                ),
            )
        )
        or None
    )
    try:
        issue = create_issue(
            session,
            user,
            IssueInput(
                description=description,
                category=code,
                address=address,
                lon=lon,
                lat=lat,
                # 群众投诉/12345 is the office's and inspectors' to enter; a unit head's
                # token files 自查 (inside its own cells), as on every other door.
                source=OPEN311_SOURCE
                if OPEN311_SOURCE in access.filing_sources(user)
                else access.default_source(user),
                extra={"note": note},
            ),
            via="open311",
        )
    except ValidationError as exc:
        # The intake service names fields in Chinese; say which Open311 parameter it was.
        text = str(exc)
        param = "lat/long" if any(w in text for w in ("经度", "纬度", "经纬度")) else None
        raise ValidationError(f"参数 {param}: {text}" if param else text) from None
    session.flush()
    return [
        {
            "service_request_id": issue.id,
            "service_notice": f"已受理, 整改期限 {iso(issue.deadline)}"
            if access.can_read_issue(user, issue)
            else "已受理",
            "account_id": None,
        }
    ]
