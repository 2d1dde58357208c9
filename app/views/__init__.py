"""Blueprints. Views are thin: parse input, call one service, render."""

import importlib
import pkgutil

from flask import Flask, url_for
from flask_login import current_user

from app.services.core.access import may

# (endpoint, label, permission) in menu order; entries whose blueprint is absent are skipped.
NAV = [
    ("issues.list_issues", "问题清单", "read"),
    ("batches.list_batches", "反馈批次", "read"),
    ("issues.new_issue", "上报问题", "report"),
    ("issues.placement_queue", "待定位", "place"),
    ("classify.queue", "待分类", "import"),
    ("issue_import.import_form", "导入清单", "import"),
    ("patrols.plan", "巡查规划", "plan_patrol"),
    ("grids.list_grids", "网格管理", "manage_grid"),
    ("units.my_area", "责任片区", "read"),
    ("reports.monthly", "考核通报", "read"),
    ("admin.users", "账号管理", "manage_users"),
    ("tables.holidays", "基础表", "manage_users"),
    ("notify_admin.settings", "消息通道", "manage_users"),
    ("setup.check", "系统初始化检查", "manage_users"),
]


def register_blueprints(app: Flask) -> None:
    # Every module in this package that defines ``bp`` is a blueprint: adding a page area
    # means adding one module, with no central list to edit.
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "bp"):
            app.register_blueprint(module.bp)

    @app.context_processor
    def _navigation():
        def nav_items():
            if not current_user.is_authenticated:
                return []
            items = []
            for endpoint, label, action in NAV:
                if endpoint in app.view_functions and may(current_user, action):
                    items.append({"url": url_for(endpoint), "label": label})
            return items

        return {"nav_items": nav_items}

    @app.after_request
    def _security_headers(response):
        # Every asset is local, so the policy can name 'self' only (no outside hosts).
        # Folium's generated map needs inline script and style.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "font-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; "
            "form-action 'self'; base-uri 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
