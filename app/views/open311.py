"""Open311 GeoReport v2 (/open311/v2): services and service requests, JSON or XML."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from flask import Blueprint, Response, abort, g, jsonify, request

from app.auth import user_from_bearer
from app.errors import answer_errors
from app.extensions import csrf, db
from app.services.protocols import open311 as service
from gis.xmltext import xml_text

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
# Token-authenticated (api_key or bearer), never by cookie, so CSRF does not apply.
csrf.exempt(bp)

FORMATS = ("json", "xml")
# XML element names of each list, per the spec: <services><service>, ...
XML_NAMES = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}


def _token_user():
    """Resolve the caller from the Authorization header (preferred), or ``api_key``.

    The header comes first: a bearer token, or Basic auth for clients that only know a
    base URL (``http://<token>:@host/open311/v2``; either half may carry the token).
    Open311 clients send ``api_key`` (the spec's name) as a form field on POST; on GET it
    sits in the query string, which is accepted but never logged (gunicorn.conf.py blanks
    it in the access log) and answered with a Warning header pointing to the header.
    """
    header = request.headers.get("Authorization")
    if header and header.lower().startswith("bearer "):
        return user_from_bearer(header)
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        for part in (basic.username, basic.password):
            user = user_from_bearer(f"Bearer {part}") if part else None
            if user is not None:
                return user
        return None
    key = request.form.get("api_key") if request.method == "POST" else None
    key = key or request.args.get("api_key")
    if key:
        return user_from_bearer(f"Bearer {key}")
    return None


def _to_xml(kind: str, rows: list[dict]) -> str:
    outer, inner = XML_NAMES[kind]
    root = ET.Element(outer)
    for row in rows:
        item = ET.SubElement(root, inner)
        for key, value in row.items():
            child = ET.SubElement(item, key)
            if value is not None:
                # Old rows may hold control characters: XML must stay well-formed.
                child.text = str(value).lower() if isinstance(value, bool) else xml_text(value)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")


def _answer(kind: str, rows: list[dict], fmt: str, status: int = 200):
    if fmt == "xml":
        return Response(_to_xml(kind, rows), status=status, mimetype="text/xml")
    response = jsonify(rows)
    response.status_code = status
    return response


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        abort(404)
    return fmt


def open311_error(status: int, message: str, exc: Exception | None = None):
    """The spec's error list ``[{"code", "description"}]``, in the request's format."""
    fmt = (request.view_args or {}).get("fmt")
    response = _answer(
        "errors",
        [{"code": status, "description": message}],
        fmt if fmt in FORMATS else "json",
        status,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sanigrid"'
    return response


answer_errors(bp, open311_error)


@bp.before_request
def _authenticate():
    user = _token_user()
    if user is None:
        return open311_error(401, "缺少或无效的 api_key / API 令牌")
    g.api_user = user
    return None


@bp.after_request
def _warn_key_in_url(response):
    """Tell a client that sent its token in the URL to use the Authorization header."""
    if request.args.get("api_key") and not request.headers.get("Authorization"):
        response.headers["Warning"] = (
            '299 sanigrid "api_key in the URL is accepted but deprecated: '
            'send Authorization: Bearer <token>"'
        )
    response.headers.setdefault("Cache-Control", "private, no-store")
    return response


def _base_url() -> str:
    return request.host_url


@bp.get("/services.<fmt>")
def services(fmt: str):
    """List the problem categories as Open311 services."""
    return _answer("services", service.list_services(db.session), _fmt(fmt))


@bp.get("/requests.<fmt>")
def list_requests(fmt: str):
    """List service requests (problems) the token's user may see."""
    fmt = _fmt(fmt)
    rows = service.list_requests(db.session, g.api_user, request.args, base_url=_base_url())
    return _answer("requests", rows, fmt)


@bp.get("/requests/<int:request_id>.<fmt>")
def get_request(request_id: int, fmt: str):
    """Show one service request (a one-item list, per the spec)."""
    fmt = _fmt(fmt)
    return _answer(
        "requests",
        service.get_request(db.session, g.api_user, request_id, base_url=_base_url()),
        fmt,
    )


@bp.post("/requests.<fmt>")
def create_request(fmt: str):
    """Create a service request from form fields."""
    fmt = _fmt(fmt)
    rows = service.create_request(db.session, g.api_user, request.form)
    db.session.commit()
    return _answer("requests", rows, fmt, 201)
