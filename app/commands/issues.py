"""Problem commands: import an inspection feedback list from a spreadsheet."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli import fail
from app.config import current_settings
from app.extensions import db
from app.services.core.errors import ServiceError
from app.services.imports.batching import dispatch_imported
from app.services.imports.rows import parse_received_on
from app.services.imports.sheet import import_file
from gis.errors import GisError


@click.command("import-issues")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="校验并定位全部行，然后回滚，不写入数据库")
@click.option("--skip-errors", is_flag=True, help="跳过有错误的行，只导入正确的行")
@click.option(
    "--source",
    default="州级交叉检查",
    show_default=True,
    help="清单中没有「来源」列时使用的问题来源",
)
@click.option(
    "--bulk/--per-row",
    "bulk",
    default=None,
    help="强制使用批量路径 (--bulk) 或逐行路径 (--per-row)；默认超过 2000 行且有经纬度列时批量",
)
@click.option("--received-on", default=None, help="清单收到日期 YYYY-MM-DD (默认今天)")
@click.option("--dispatch", is_flag=True, help="导入成功后立即派遣本批次的问题")
@with_appcontext
def import_issues_command(
    file: str,
    dry_run: bool,
    skip_errors: bool,
    source: str,
    bulk: bool | None,
    received_on: str | None,
    dispatch: bool,
) -> None:
    """Import a feedback list (.xlsx/.xls/.csv); print a summary of what happened."""
    path = Path(file)
    if not path.is_file():
        fail(f"文件不存在: {file}")
    try:
        _, result = import_file(
            db.session,
            None,
            path,
            source=source,
            skip_errors=skip_errors,
            dry_run=dry_run,
            bulk=bulk,
            received_on=parse_received_on(received_on),
            photo_dir=current_settings().photo_dir,
        )
    except (ServiceError, GisError) as exc:
        db.session.rollback()
        fail(str(exc))
    if dry_run or result.aborted:
        db.session.rollback()
    else:
        db.session.commit()
    for row, reason in result.rejected:
        click.echo(f"rejected 第{row}行: {reason.removeprefix(f'第{row}行: ')}")
    for row, reason in result.photo_errors:
        click.echo(f"photo 第{row}行: {reason}")
    if dry_run:
        click.echo("试运行 (--dry-run): 已校验和定位，未写入数据库")
    if result.batch_id is not None:
        by = result.by_unit_source
        click.echo(
            f"batch={result.batch_id} {result.batch_name}: "
            f"list={by.get('list', 0)} category={by.get('category', 0)} cell={by.get('cell', 0)} "
            f"conflicts={result.conflicts} pending_category={result.pending} photos={result.photos}"
        )
    dispatch_error = None
    if dispatch and not dry_run and not result.aborted and result.batch_id is not None:
        try:
            dispatch_imported(db.session, None, result)
        except (ServiceError, ImportError) as exc:
            db.session.rollback()
            dispatch_error = f"已导入，但派遣失败: {exc}"
        else:
            db.session.commit()
            click.echo(f"dispatched={result.dispatched}")
    click.echo(result.summary())
    if result.aborted:
        fail(f"{len(result.rejected)} 行有错误，未导入任何问题 (加 --skip-errors 只导入正确的行)")
    if dispatch_error:
        fail(dispatch_error)


commands = [import_issues_command]
