"""GIS and data commands: layers, grids, problem import, reports. Thin adapters."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.cli import run_service
from app.extensions import db


@click.command("activate-grid")
@click.argument("grid_id", type=int)
@with_appcontext
def activate_grid_command(grid_id: int) -> None:
    """Make a stored grid the active one and re-assign problems to its cells."""
    from app.services.grids import activate_grid

    result = run_service(activate_grid, db.session, grid_id)
    click.echo(f"网格图层 {grid_id} 已启用: {result['reassigned']} 个问题重新归属网格, "
               f"{result['outside']} 个在网格外")


commands = [activate_grid_command]
