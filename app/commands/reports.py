"""Assessment commands: the monthly report (通报), optionally published."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from app.cli import fail, run_service
from app.extensions import db
from app.services.assessment import months, scoring
from app.services.assessment import publish as publishing
from app.services.core.errors import ServiceError

JSON_ROW_KEYS = (
    "unit",
    "score",
    "rank",
    "received",
    "closed",
    "closed_on_time",
    "on_time_rate",
    "rework_rate",
    "recurrence_rate",
    "overdue_open",
    "deductions",
    "due",
    "closed_rate",
    "rework_events",
    "recurrences",
    "movement",
    "list",
    "interview",
)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


@click.command("report")
@click.option("--month", required=True, help="考核月份 YYYY-MM")
@click.option("--publish", is_flag=True, help="发布 (冻结) 该月考核结果")
@click.option("--reason", default=None, help="重新发布已发布月份时必须填写的原因")
@click.option("--json", "as_json", is_flag=True, help="只输出 JSON")
@click.option(
    "--scope",
    type=click.Choice(["unit", "subdistrict", "community"]),
    default="unit",
    show_default=True,
)
@with_appcontext
def report_command(
    month: str, publish: bool, reason: str | None, as_json: bool, scope: str
) -> None:
    """Print (and optionally publish) a month's ranking, red list and black list."""
    try:
        months.parse_month(month)
    except ServiceError as exc:
        fail(str(exc))
    if publish:
        run_service(publishing.publish_month, db.session, None, month, scope=scope, reason=reason)
    try:
        data = publishing.load_report(db.session, month, scope)
    except ServiceError as exc:
        db.session.rollback()
        fail(str(exc))
    if as_json:
        out = {
            "month": data["month"],
            "ranking": [{k: row.get(k) for k in JSON_ROW_KEYS} for row in data["ranking"]],
            "red_list": data["red_list"],
            "black_list": data["black_list"],
        }
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    state = f"已发布 {data['published_at']}" if data["published"] else "未发布 (实时计算)"
    click.echo(f"{data['month']} {scoring.SCOPES[scope]}考核  [{state}]")
    click.echo(
        f"{'名次':>4}  {'得分':>7}  {'受理':>4} {'销号':>4} {'按期率':>7} {'返工率':>7} "
        f"{'反弹率':>7} {'超期':>4} {'扣分':>7}  名称"
    )
    for row in data["ranking"]:
        mark = {"red": " [红榜]", "black": " [黑榜]"}.get(row.get("list") or "", "")
        if row.get("interview"):
            mark += " [约谈]"
        click.echo(
            f"{row['rank']:>4}  {row['score']:>7.2f}  {row['received']:>4} "
            f"{row['closed']:>4} {_pct(row['on_time_rate']):>7} "
            f"{_pct(row['rework_rate']):>7} {_pct(row['recurrence_rate']):>7} "
            f"{row['overdue_open']:>4} {row['deductions']:>7.2f}  {row['unit']}{mark}"
        )
    click.echo(f"红榜: {'、'.join(data['red_list']) or '无'}")
    click.echo(f"黑榜: {'、'.join(data['black_list']) or '无'}")


commands = [report_command]
