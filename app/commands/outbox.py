"""Outbox command: deliver the outside messages that are due (run every minute by a timer)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.config import current_settings
from app.extensions import db
from app.services.notify.outbox import deliver_due


@click.command("send-outbox")
@click.option("--limit", type=int, default=100, show_default=True, help="本次最多发送条数")
@with_appcontext
def send_outbox_command(limit: int) -> None:
    """Send due email and webhook messages once; failures wait and are retried later."""
    counts = deliver_due(db.session, current_settings(), limit=limit)
    if any(counts.values()):
        click.echo(f"外发消息: 已发送 {counts['sent']} 条, 稍后重试 {counts['retry']} 条, "
                   f"失败 {counts['failed']} 条")


commands = [send_outbox_command]
