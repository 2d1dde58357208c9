"""The admin's tables: holidays (节假日), geocoder aliases (地名别名), categories (问题类别)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli import fail
from app.extensions import db
from app.models import today_local
from app.services.core.errors import ServiceError
from app.services.grids import geocoding
from app.services.tables import categories, workdays


def _read(file: str) -> tuple[bytes, str]:
    path = Path(file)
    if not path.is_file():
        fail(f"文件不存在: {file}")
    return path.read_bytes(), path.name


def _import(func, *args, **kwargs):
    """Run an all-or-nothing import; list every bad row, then exit with one line."""
    try:
        result = func(*args, **kwargs)
    except ServiceError as exc:
        db.session.rollback()
        for error in getattr(exc, "errors", [])[5:]:
            click.echo(error, err=True)  # the one-line reason names the first five
        fail(str(exc))
    db.session.commit()
    return result


@click.group("holidays")
def holidays_group() -> None:
    """Holiday and make-up workday table (节假日安排)."""


@holidays_group.command("import")
@click.argument("file")
@click.option("--year", required=True, help="年份，如 2027 (整年替换)")
@with_appcontext
def holidays_import(file: str, year: str) -> None:
    """Replace one year's holidays from a table (日期, 类型, 名称); all rows or none."""
    data, name = _read(file)
    result = _import(workdays.import_holiday_file, db.session, None, data, name, year)
    click.echo(
        f"{result['year']} 年节假日已更新: 放假 {result['holidays']} 天, "
        f"调休上班 {result['workdays']} 天"
    )


@holidays_group.command("list")
@with_appcontext
def holidays_list() -> None:
    """List the years with a holiday table; warn of this year or next if missing."""
    overview = workdays.calendar_overview(db.session, None, today=today_local())
    sources = {"chinese-calendar": "内置", "admin": "管理员录入"}
    for row in overview["years"]:
        source = sources.get(row["source"], row["source"]) if row["complete"] else "不完整"
        click.echo(
            f"{row['year']}  放假 {row['holidays']:>3} 天  调休上班 {row['workdays']:>2} 天  {source}"
        )
    for missing in overview["missing"]:
        click.echo(f"警告: {missing['message']}")


@click.group("aliases")
def aliases_group() -> None:
    """The geocoder's alias table (地名别名: 俗称 → 标准名称)."""


@aliases_group.command("import")
@click.argument("file")
@click.option("--replace", is_flag=True, help="替换全部现有别名 (默认合并)")
@with_appcontext
def aliases_import(file: str, replace: bool) -> None:
    """Merge aliases from a table (别名, 标准名称); all rows or none."""
    data, name = _read(file)
    result = _import(geocoding.import_aliases, db.session, None, data, name, replace=replace)
    click.echo(
        f"别名表已导入: 新增 {result['added']} 条, 修改 {result['changed']} 条, "
        f"共 {result['total']} 条"
    )


@aliases_group.command("list")
@with_appcontext
def aliases_list() -> None:
    """Print the alias table, one 别名<TAB>标准名称 a line."""
    for row in geocoding.list_aliases(db.session, None):
        note = "" if row["kind"] else "\t(图层中已无此名称)"
        click.echo(f"{row['alias']}\t{row['canonical']}{note}")


@click.command("import-categories")
@click.argument("file")
@click.option("--replace", is_flag=True,
              help="删除表中未列出的类别 (有问题使用的类别不能删除)")
@with_appcontext
def import_categories_command(file: str, replace: bool) -> None:
    """Add or update categories from a table (编码, 名称, 级别, 上级编码, 时限, 扣分, 职能部门)."""
    data, name = _read(file)
    result = _import(categories.import_categories, db.session, None, data, name, replace=replace)
    click.echo(
        f"类别表已导入: 新增 {result['added']} 个, 修改 {result['changed']} 个, "
        f"删除 {result['removed']} 个, 共 {result['total']} 个"
    )


@click.command("import-category-aliases")
@click.argument("file")
@click.option("--replace", is_flag=True, help="替换全部现有类别别名 (默认合并)")
@with_appcontext
def import_category_aliases_command(file: str, replace: bool) -> None:
    """Merge category synonyms from a table (别名, 类别编码); all rows or none."""
    data, name = _read(file)
    result = _import(categories.import_aliases, db.session, None, data, name, replace=replace)
    click.echo(
        f"类别别名表已导入: 新增 {result['added']} 条, 修改 {result['changed']} 条, "
        f"共 {result['total']} 条"
    )


commands = [holidays_group, aliases_group, import_categories_command,
            import_category_aliases_command]
