"""系统初始化检查 on the command line: one line per check, ``--strict`` for scripts."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import db
from app.services.ops.setup_check import run_setup_check, strict_failures, summary


@click.command("check-setup")
@click.option("--strict", is_flag=True, help="缺少必需项时以状态码 1 退出")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@with_appcontext
def check_setup_command(strict: bool, as_json: bool) -> None:
    """Show what the county has loaded and what it lacks, one line per check."""
    checks = run_setup_check(db.session, county_code=current_app.config.get("COUNTY_CODE"))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], ensure_ascii=False, indent=1))
    else:
        for check in checks:
            count = "" if check.count is None else f" ({check.count})"
            fix = check.command or (f"页面 {check.link}" if check.status != "ready" and check.link
                                    else "")
            line = f"[{check.status_label}] {check.label}{count}: {check.detail}"
            click.echo(line + (f" → {fix}" if fix and check.status != "ready" else ""))
        counts = summary(checks)
        click.echo(f"就绪 {counts['ready']} 项，缺少 {counts['missing']} 项，警告 {counts['warning']} 项")
    failures = strict_failures(checks)
    if strict and failures:
        click.echo("缺少必需项: " + "、".join(c.label for c in failures), err=True)
        sys.exit(1)


commands = [check_setup_command]
