"""Command-line interface: `flask --app app <command>`. Thin: parse, call a service, print."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from sqlalchemy import inspect

from app import commands
from app.extensions import db
from app.services.core.errors import ServiceError
from app.services.core.passwords import find_user, issue_token
from app.services.ops.seed import DEMO_PASSWORD, seed_demo
from app.services.tables.accounts import create_user
from app.services.tables.standard import load_standard_tables
from gis.errors import GisError


def fail(message: str) -> None:
    """Exit non-zero with a one-line reason."""
    click.echo(f"错误: {message}", err=True)
    sys.exit(1)


def run_service(func, *args, **kwargs):
    """Call a service in a transaction; turn its errors into a one-line exit."""
    try:
        result = func(*args, **kwargs)
        db.session.commit()
        return result
    except (ServiceError, GisError) as exc:
        db.session.rollback()
        fail(str(exc))


def _upgrade_schema() -> None:
    upgrade(directory=str(Path(current_app.root_path).parent / "migrations"))


def ensure_schema() -> bool:
    """Create the schema when the database has none (or upgrade an Alembic one); True if run."""
    tables = set(inspect(db.engine).get_table_names())
    if tables and "alembic_version" not in tables:
        return False  # a schema made by create_all (tests, old installs): leave it as it is
    _upgrade_schema()
    return True


@click.command("init-db")
@click.option("--schema-only", is_flag=True,
              help="只建表，不载入标准表 (用于恢复备份前的空数据库)")
@with_appcontext
def init_db(schema_only: bool) -> None:
    """Create or upgrade the schema, then load the standard tables (idempotent)."""
    _upgrade_schema()
    if schema_only:
        click.echo("数据库结构已就绪 (未载入标准表)")
        return
    added = run_service(load_standard_tables, db.session, Path(current_app.config["LAYERS_DIR"]))
    click.echo(
        f"标准表已载入: 新增类别 {added['categories']} 个, 类别别名 {added['aliases']} 个, "
        f"节假日年份 {added['calendar_years']} 个, 默认设置 {added['settings']} 项"
    )
    click.echo("数据库已就绪")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Load the demo county seat if the database holds none (creates the schema if missing)."""
    if ensure_schema():
        click.echo("数据库结构已就绪")
    result = run_service(seed_demo, db.session, Path(current_app.config["DEMO_DIR"]),
                         county_code=current_app.config["COUNTY_CODE"], log=click.echo)
    if not result["seeded"]:
        click.echo("演示数据已存在，未重复载入")
        return
    click.echo(f"演示县城已载入: {result['cells']} 个网格, {result['issues']} 条历史问题")
    click.echo(f"演示账号 (密码均为 {DEMO_PASSWORD}):")
    for username, role, unit in result["accounts"][:6]:
        click.echo(f"  {username:<10} {role:<10} {unit}")
    if len(result["accounts"]) > 6:
        click.echo(f"  ... unit01-unit{len(result['accounts']) - 3:02d} 为各责任单位账号")


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "inspector", "unit_head", "leader"]),
              required=True)
@click.option("--password", required=True)
@click.option("--unit", "unit_name", default=None, help="责任单位名称 (unit_head 必填)")
@with_appcontext
def create_user_command(username: str, role: str, password: str, unit_name: str | None) -> None:
    """Create a user account."""
    user = run_service(create_user, db.session, username=username, role=role,
                       password=password, unit_name=unit_name)
    click.echo(f"已创建用户 {user.username} ({role})")


@click.command("create-token")
@click.argument("username")
@click.option("--name", default=None)
@with_appcontext
def create_token_command(username: str, name: str | None) -> None:
    """Create an API token for a user; the token is printed alone on the last line."""
    user = find_user(db.session, username)
    if user is None:
        fail(f"用户 {username} 不存在")
    token = issue_token(db.session, user, name=name)
    db.session.commit()
    click.echo(f"API token for {username} (shown once, keep it safe):")
    click.echo(token)


def register_cli(app: Flask) -> None:
    for command in (init_db, seed_demo_command, create_user_command, create_token_command):
        app.cli.add_command(command)
    # Each module of app/commands contributes its ``commands``; no central list to edit.
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            app.cli.add_command(command)
