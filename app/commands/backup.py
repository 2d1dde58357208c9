"""Backup commands: a consistent snapshot of database and photos, and its restore."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli import fail, run_service
from app.config import current_settings
from app.extensions import db
from app.services.ops.backup import create_backup, restore_backup


@click.command("backup")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="备份目录 (默认 $BACKUP_DIR 或 instance/backups)",
)
@click.option("--dir", "as_dir", is_flag=True, help="写成目录而不是 .tar.gz")
@with_appcontext
def backup_command(out_dir: str | None, as_dir: bool) -> None:
    """Write a timestamped backup (database snapshot + photos + manifest.json)."""
    settings = current_settings()
    result = run_service(
        create_backup,
        db.session,
        out_dir=Path(out_dir) if out_dir else settings.backup_dir,
        photo_dir=settings.photo_dir,
        archive=not as_dir,
        env=os.environ,  # pg_dump runs in the command's environment (PATH, PGSSLMODE, ...)
        log=click.echo,
    )
    m = result.manifest
    click.echo(f"备份完成: {m['issues']} 条问题, {m['events']} 条处置记录, {m['photos']} 张照片")
    if m["missing_photos"]:
        click.echo(f"警告: {len(m['missing_photos'])} 张照片的文件在备份前已丢失", err=True)
    click.echo(str(result.path))


@click.command("restore")
@click.argument("path", type=click.Path())
@click.option("--yes", is_flag=True, help="不再询问，直接恢复")
@click.option("--force", is_flag=True, help="目标数据库不为空时也覆盖 (危险)")
@with_appcontext
def restore_command(path: str, yes: bool, force: bool) -> None:
    """Restore a backup into an empty database and verify it against its manifest."""
    url = db.engine.url.render_as_string(hide_password=True)
    if not yes and not click.confirm(f"把备份 {path} 恢复到 {url}?", default=False):
        fail("已取消")
    result = run_service(
        restore_backup,
        db.session,
        Path(path),
        photo_dir=current_settings().photo_dir,
        force=force,
        env=os.environ,
        log=click.echo,
    )
    counts = result.counts
    click.echo(
        f"恢复完成并已校验: {counts.get('issue', 0)} 条问题, "
        f"{counts.get('issue_event', 0)} 条处置记录, {result.photos} 张照片"
    )


commands = [backup_command, restore_command]
