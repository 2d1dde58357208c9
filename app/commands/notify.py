"""Notification commands: the daily reminders run and the event collector for a timer."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import with_appcontext

from app.cli import fail, run_service
from app.config import current_settings
from app.extensions import db
from app.services.notify import outbox
from app.services.notify.events import collect_events
from app.services.notify.reminders import send_reminders


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        fail(f"日期 {value!r} 无效 (应为 YYYY-MM-DD)")
    return None


def _echo_events(result: dict) -> None:
    click.echo(f"新派遣 {result['dispatched']}, 退回 {result['sent_back']}, "
               f"批次导入 {result['batch_imported']} (读取记录 {result['events']} 条)")


@click.command("send-reminders")
@click.option("--date", "day", default=None, help="按哪一天提醒 (YYYY-MM-DD, 默认县里的今天)")
@with_appcontext
def send_reminders_command(day: str | None) -> None:
    """Notify new events, remind of due and overdue problems, deliver the outbox (idempotent)."""
    today = _parse_date(day)
    settings = current_settings()
    _echo_events(run_service(collect_events, db.session, settings=settings))
    result = run_service(send_reminders, db.session, settings=settings, today=today)
    click.echo(f"{result['today']}: 即将到期提醒 {result['due_soon']}, "
               f"超期提醒 {result['overdue']} (到期截至 {result['due_by']})")
    sent = run_service(outbox.deliver_due, db.session, settings)
    click.echo(f"外发消息: 已发送 {sent['sent']} 条, 稍后重试 {sent['retry']} 条, "
               f"失败 {sent['failed']} 条")


@click.command("notify-events")
@with_appcontext
def notify_events_command() -> None:
    """Notify what was recorded since the last run (per minute, before ``send-outbox``)."""
    _echo_events(run_service(collect_events, db.session, settings=current_settings()))


commands = [send_reminders_command, notify_events_command]
