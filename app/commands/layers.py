"""Layer and grid commands: import OSM and GIS files, make, activate, export and hand out grids."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli import fail, run_service
from app.config import current_settings
from app.extensions import db
from app.services.core.errors import ServiceError
from app.services.grids.assign import assign_from_table
from app.services.grids.build import make_grid
from app.services.grids.export import export_cli_grid, format_for_path
from app.services.grids.layers import KIND_LABELS, import_osm_file
from app.services.grids.uploads import IMPORT_KINDS, import_layer
from app.services.grids.versions import GridCheckError, activate
from gis.errors import GisError


def _existing(file: str) -> Path:
    path = Path(file)
    if not path.is_file():
        fail(f"文件不存在: {file}")
    return path


@click.command("import-osm")
@click.argument("file")
@with_appcontext
def import_osm_command(file: str) -> None:
    """Import roads, POIs, buildings, water, door plates and a built-up boundary from OSM."""
    result = run_service(import_osm_file, db.session, _existing(file))
    for kind, count in result["layers"].items():
        click.echo(
            f"{KIND_LABELS.get(kind, kind)} ({kind}): {count} 个要素, "
            f"图层 {result['layer_ids'][kind]}"
        )
    for warning in result["warnings"]:
        click.echo(f"提醒: {warning}")


@click.command("import-layer")
@click.argument("file")
@click.option("--kind", type=click.Choice(IMPORT_KINDS), required=True, help="图层类型")
@click.option(
    "--crs",
    "source_crs",
    type=click.Choice(["wgs84", "gcj02", "bd09"]),
    default="wgs84",
    show_default=True,
    help="文件坐标所用的坐标系",
)
@click.option("--name", default=None, help="图层名称 (默认取文件名)")
@with_appcontext
def import_layer_command(file: str, kind: str, source_crs: str, name: str | None) -> None:
    """Import a GeoJSON/GPKG/Shapefile(zip)/KML file as one layer; a grid is checked first."""
    path = _existing(file)
    try:
        layer = import_layer(db.session, path, kind, source_crs, name=name,
                             county_code=current_settings().county_code)
    except GridCheckError as exc:
        db.session.rollback()
        for finding in exc.report["findings"]:
            if finding["blocking"]:
                click.echo(f"[{finding['label']}] {finding['message']}", err=True)
        fail(str(exc))
    except (ServiceError, GisError) as exc:
        db.session.rollback()
        fail(str(exc))
    db.session.commit()
    if kind == "grid":
        click.echo(f"网格图层 {layer.id} 已导入 (未启用): {layer.cell_count} 个网格")
    else:
        click.echo(f"图层 {layer.id} ({kind}) 已导入: {len(layer.features)} 个要素")


@click.command("make-grid")
@click.option(
    "--method",
    type=click.Choice(["block", "square", "h3"]),
    required=True,
    help="block 街区法 / square 方格 / h3 六边形",
)
@click.option("--boundary", "boundary_name", default=None, help="用哪个边界/街道/社区的名称")
@click.option("--target-area", type=float, default=None, help="街区法目标面积 (平方米)")
@click.option("--size", type=float, default=None, help="方格边长 (米)")
@click.option("--resolution", type=int, default=None, help="H3 分辨率 (7–13)")
@click.option("--name", default=None, help="网格图层名称")
@with_appcontext
def make_grid_command(
    method: str,
    boundary_name: str | None,
    target_area: float | None,
    size: float | None,
    resolution: int | None,
    name: str | None,
) -> None:
    """Build, code and check a grid; store it inactive; print its id on the last line."""
    grid = run_service(
        make_grid, db.session, method, boundary_name, target_area, size, resolution, name=name,
        county_code=current_settings().county_code,
    )
    click.echo(
        f"网格图层已生成 (未启用): {grid.cell_count} 个网格; {grid.params['check']['summary']}"
    )
    zones = grid.params.get("zones") or {}
    if zones:
        click.echo(
            f"社区 {zones['communities']} 个, 片区(临时) {zones['provisional']} 个 "
            f"(最大 {zones['largest']} 个网格)"
        )
    settled = grid.params.get("settled") or {}
    if settled:
        click.echo(
            f"责任单位: {settled['carried']} 个网格沿用原网格的单位, "
            f"{settled['held']} 个未分配网格由属地街道(乡镇)兜底"
        )
    click.echo(f"启用: flask --app app activate-grid {grid.id}")
    click.echo(grid.id)


@click.command("activate-grid")
@click.argument("grid_id", type=int)
@with_appcontext
def activate_grid_command(grid_id: int) -> None:
    """Check a stored grid, make it the active one and re-assign problems to its cells."""
    result = run_service(activate, db.session, None, grid_id,
                         county_code=current_settings().county_code)
    click.echo(
        f"网格图层 {grid_id} 已启用: {result['reassigned']} 个问题重新归属网格, "
        f"{result['outside']} 个在网格外"
    )


@click.command("export-grid")
@click.argument("grid_id", type=int)
@click.argument("file")
@with_appcontext
def export_grid_command(grid_id: int, file: str) -> None:
    """Write a grid version to FILE; the format follows the extension (.geojson .gpkg .zip .kml)."""
    fmt = run_service(format_for_path, file)
    data = run_service(export_cli_grid, db.session, grid_id, fmt)
    path = Path(file)
    try:
        path.write_bytes(data)
    except OSError as exc:
        fail(f"无法写入 {file}: {exc.strerror}")
    click.echo(f"网格图层 {grid_id} 已导出到 {path} ({fmt}, {len(data)} 字节)")


@click.command("assign-cells")
@click.argument("file")
@click.option("--grid", "grid_id", type=int, default=None, help="网格图层 (默认: 启用中的)")
@with_appcontext
def assign_cells_command(file: str, grid_id: int | None) -> None:
    """Assign cells to units from a CSV/XLSX with columns code,unit (all rows or none)."""
    count = run_service(assign_from_table, db.session, _existing(file), grid_id=grid_id)
    click.echo(f"已分配 {count} 个网格")


commands = [
    import_osm_command,
    import_layer_command,
    make_grid_command,
    activate_grid_command,
    export_grid_command,
    assign_cells_command,
]
