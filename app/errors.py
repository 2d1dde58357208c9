"""Map every error to HTTP in one place: Chinese error pages, protocol error bodies, no traces.

``describe_error`` is the one mapping from an error (service, geometry, database, HTTP) to
its status and the message a person reads. ``register`` answers with it as a page (or the
site's JSON for JSON clients); ``answer_errors`` is the bridge for the API, OGC and Open311
blueprints, which answer the same mapping in their own protocol's error body.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from markupsafe import escape
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.services.core.errors import ServiceError
from gis.errors import GisError

MESSAGES = {
    400: "请求有误",
    401: "请先登录",
    403: "没有权限执行此操作",
    404: "页面或对象不存在",
    405: "不支持的请求方法",
    409: "操作冲突",
    413: "上传的文件过大",
    429: "请求过于频繁，请稍后再试",
    500: "服务器内部错误",
    503: "数据库暂时不可用，请稍后重试",
    507: "服务器磁盘空间不足，本次提交未保存 (照片和问题都未写入)；请联系管理员清理磁盘后重试",
}
# A full disk or quota is the server's state, not a bug: say so instead of a bare 500.
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def wants_json() -> bool:
    path = request.path
    return (
        path.startswith(("/api/", "/open311/", "/ogc/"))
        or request.accept_mimetypes.best == "application/json"
    )


def render_error(status: int, message: str | None = None):
    message = message or MESSAGES.get(status, "出错了")
    if wants_json():
        return jsonify({"error": message, "status": status}), status
    try:
        return render_template("error.html", status=status, message=message), status
    except Exception:  # noqa: BLE001 - the page itself needs the database (user, menu)
        # When the database is down the full page cannot be drawn; a plain page still
        # tells the user what happened, in Chinese, without a stack trace.
        db.session.rollback()
        return PLAIN_ERROR.format(status=status, message=escape(message)), status


PLAIN_ERROR = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{status}</title></head><body style=\"font-family:sans-serif;text-align:center;"
    'padding:60px 20px"><h1 style="color:#b71c1c">{status}</h1><p>{message}</p>'
    '<p><a href="/">返回首页</a></p></body></html>'
)


def describe_error(exc: Exception) -> tuple[int, str]:
    """The HTTP status of an error and the message a person reads: the one mapping."""
    if isinstance(exc, ServiceError):
        return exc.status, str(exc)
    if isinstance(exc, GisError):
        return 400, str(exc)
    if isinstance(exc, StaleDataError):
        return 409, "该问题已被他人修改，请刷新后重试"
    if isinstance(exc, OperationalError):
        return 503, MESSAGES[503]
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        message = MESSAGES.get(status, "出错了")
        if status == 400 and exc.description and "CSRF" in str(exc.description):
            message = "表单已过期或缺少安全令牌 (CSRF)，请刷新页面后重试"
        if status == 429 and request.endpoint == "auth.login" and exc.description:
            # Flask-Limiter carries the login limit's own (Chinese) lockout message.
            message = str(exc.description)
        return status, message
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return 507, MESSAGES[507]
    return 500, MESSAGES[500]


def settle_error(exc: Exception) -> tuple[int, str]:
    """Roll back the failed request's session, log what is the server's fault, describe it."""
    status, message = describe_error(exc)
    if isinstance(exc, HTTPException):
        return status, message
    db.session.rollback()
    if status == 503:
        current_app.logger.error("database error: %s", exc)
    elif status == 507:
        current_app.logger.error("disk full: %s", exc)
    elif status == 500:
        current_app.logger.exception("unhandled error")
    return status, message


def register(app: Flask) -> None:
    """Answer every error the views do not handle themselves with a page or JSON."""

    @app.errorhandler(Exception)
    def _error(exc: Exception):
        return render_error(*settle_error(exc))


def answer_errors(bp: Blueprint, body: Callable[[int, str, Exception], Response]) -> None:
    """Answer every error raised under ``bp`` with ``body(status, message, error)``.

    The bridge from the views of one protocol (the JSON API, OGC API – Features, Open311)
    to the site's one error mapping: each protocol brings only its error body.
    """

    @bp.errorhandler(Exception)
    def _protocol_error(exc: Exception):
        return body(*settle_error(exc), exc)
