"""Map core and service errors to HTTP in one place; Chinese error pages, no stack traces."""

from __future__ import annotations

import errno

from flask import Flask, jsonify, render_template, request
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


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        db.session.rollback()
        return render_error(exc.status, str(exc))

    @app.errorhandler(GisError)
    def _gis_error(exc: GisError):
        db.session.rollback()
        return render_error(400, str(exc))

    @app.errorhandler(StaleDataError)
    def _stale(exc):
        db.session.rollback()
        return render_error(409, "该问题已被他人修改，请刷新后重试")

    @app.errorhandler(OperationalError)
    def _db_down(exc):
        db.session.rollback()
        app.logger.error("database error: %s", exc)
        return render_error(503)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        message = MESSAGES.get(exc.code or 500)
        if exc.code == 400 and exc.description and "CSRF" in str(exc.description):
            message = "表单已过期或缺少安全令牌 (CSRF)，请刷新页面后重试"
        if exc.code == 429 and request.endpoint == "auth.login" and exc.description:
            # Flask-Limiter carries the login limit's own (Chinese) lockout message.
            message = str(exc.description)
        return render_error(exc.code or 500, message)

    @app.errorhandler(OSError)
    def _os_error(exc: OSError):
        db.session.rollback()
        if exc.errno in DISK_FULL:
            app.logger.error("disk full: %s", exc)
            return render_error(507)
        app.logger.exception("unhandled error")
        return render_error(500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error")
        return render_error(500)
