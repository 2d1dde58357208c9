"""Batch commands: dispatch a whole feedback batch in one step."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli import fail, run_service
from app.extensions import db
from app.services.batches.dispatch import acting_admin, dispatch_batch


@click.command("dispatch")
@click.option("--batch", "batch_id", required=True, help="反馈批次 id")
@click.option("--user", "username", default=None, help="以哪个账号派遣 (默认第一个管理员)")
@with_appcontext
def dispatch_command(batch_id: str, username: str | None) -> None:
    """Dispatch every dispatchable problem of a batch; print the counts per unit."""
    text = str(batch_id).strip()
    if not text.isdigit() or len(text) > 12 or not 1 <= int(text) <= 2**31 - 1:
        fail(f"批次 id {batch_id!r} 无效 (应为正整数)")
    user = run_service(acting_admin, db.session, username)
    result = run_service(dispatch_batch, db.session, user, int(text))
    for unit, count in sorted(result.per_unit.items()):
        click.echo(f"{unit}\t{count}")
    reasons: dict[str, int] = {}
    for row in result.skipped:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    for reason, count in sorted(reasons.items()):
        click.echo(f"跳过 ({reason})\t{count}")
    click.echo(f"dispatched {result.dispatched}, skipped {len(result.skipped)}")


commands = [dispatch_command]
