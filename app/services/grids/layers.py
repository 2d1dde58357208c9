"""Store and load geometry layers (boundary, roads, pois, communities, ...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import geopandas as gpd
import shapely
from shapely.geometry import shape
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.models import Feature, Layer, User
from app.services.core import audit
from app.services.core.errors import NotFoundError, ValidationError

LAYER_KINDS = (
    "boundary", "roads", "pois", "buildings", "communities", "subdistricts", "water",
    "addresses",
)
KIND_LABELS = {
    "boundary": "建成区边界",
    "roads": "道路",
    "pois": "兴趣点",
    "buildings": "建筑",
    "communities": "社区",
    "subdistricts": "街道/乡镇",
    "water": "河流水系",
    "addresses": "门牌地址",
    "grid": "网格",
}
# Columns copied to Feature's own fields; the rest go to props.
_NAME_COLUMNS = ("name", "street")
_TYPE_COLUMNS = ("type", "highway", "kind", "building")


def _clean(value):
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value


def store_layer(
    session: Session, gdf: gpd.GeoDataFrame, *, kind: str, name: str, source: str | None = None,
    replace: bool = True, active: bool = True,
    checkpoint: Callable[[], None] | None = None, chunk: int = 2000,
) -> Layer:
    """Store a layer (EPSG:4326); with ``replace`` older layers of that kind are retired.

    ``active=False`` stores it without touching the layers in use (see
    :func:`activate_layers`); ``checkpoint`` (e.g. the session's commit) is called after
    every ``chunk`` features, so a long import holds the database only briefly at a time.

    A ``pois`` layer stays a layer of points: a POI drawn as an area (a county's own
    school or market outlines) is stored at a point inside it, with the outline as WKT
    in ``props["footprint"]``, the form an OSM import gives (the geocoder reads it).
    """
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    if kind == "pois":
        gdf = _poi_points(gdf)
    if replace and active:
        session.execute(update(Layer).where(Layer.kind == kind).values(active=False))
    layer = Layer(name=name, kind=kind, source=source, active=active)
    session.add(layer)
    session.flush()
    layer_id = layer.id
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    rows = []
    for record, geom in zip(gdf[columns].to_dict("records"), gdf.geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        props = {k: _clean(v) for k, v in record.items()}
        feature = Feature(
            layer_id=layer_id,
            name=next((str(props[c]) for c in _NAME_COLUMNS if props.get(c)), None),
            code=str(props["code"]) if props.get("code") is not None else None,
            ftype=next((str(props[c]) for c in _TYPE_COLUMNS if props.get(c)), None),
            props=props,
        )
        feature.set_geometry(geom)
        rows.append(feature)
        if checkpoint is not None and len(rows) >= chunk:
            session.add_all(rows)
            session.flush()
            checkpoint()
            rows = []
    session.add_all(rows)
    session.flush()
    if checkpoint is not None:
        checkpoint()
    return session.get(Layer, layer_id)


def _poi_points(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return POIs as points; an area's outline moves to the ``footprint`` column."""
    geoms = gdf.geometry.to_numpy()
    areas = shapely.get_type_id(geoms) == 3
    areas |= shapely.get_type_id(geoms) == 6
    if not areas.any():
        return gdf
    gdf = gdf.copy()
    footprints = list(gdf["footprint"]) if "footprint" in gdf.columns else [None] * len(gdf)
    texts = shapely.to_wkt(geoms[areas], rounding_precision=7, trim=True)
    for i, text in zip(areas.nonzero()[0], texts, strict=True):
        footprints[int(i)] = str(text)
    points = geoms.copy()
    points[areas] = shapely.point_on_surface(geoms[areas])
    gdf["footprint"] = footprints
    return gdf.set_geometry(gpd.GeoSeries(points, index=gdf.index, crs=gdf.crs))


def activate_layers(session: Session, layer_ids: Sequence[int]) -> None:
    """Make stored layers the active ones of their kinds, all in the caller's transaction."""
    for layer_id in layer_ids:
        layer = session.get(Layer, layer_id)
        session.execute(
            update(Layer).where(Layer.kind == layer.kind, Layer.id != layer.id).values(active=False)
        )
        layer.active = True
    session.flush()


def delete_layers(session: Session, layer_ids: Sequence[int]) -> None:
    """Remove stored layers and their features (an import that failed half-way)."""
    if layer_ids:
        session.execute(delete(Feature).where(Feature.layer_id.in_(list(layer_ids))))
        session.execute(delete(Layer).where(Layer.id.in_(list(layer_ids))))
        session.flush()


def list_layers(session: Session) -> list[dict]:
    """Every stored layer with its kind's label and feature count, by kind, newest first."""
    counts = dict(
        session.execute(select(Feature.layer_id, func.count()).group_by(Feature.layer_id)).all()
    )
    layers = session.execute(select(Layer).order_by(Layer.kind, Layer.id.desc())).scalars()
    return [
        {
            "layer": layer,
            "label": KIND_LABELS.get(layer.kind, layer.kind),
            "features": int(counts.get(layer.id, 0)),
        }
        for layer in layers
    ]


def active_layer(session: Session, kind: str) -> Layer | None:
    """Return the active layer of a kind (the newest, should two be active), or None."""
    return session.execute(
        select(Layer).where(Layer.kind == kind, Layer.active.is_(True)).order_by(Layer.id.desc())
    ).scalars().first()


def load_layer_gdf(session: Session, kind: str, *, required: bool = False) -> gpd.GeoDataFrame | None:
    """Return the active layer of a kind as a GeoDataFrame (EPSG:4326), or None."""
    layer = active_layer(session, kind)
    if layer is None:
        if required:
            msg = f"尚未导入{kind}图层"
            raise NotFoundError(msg)
        return None
    return layer_gdf(session, layer.id)


def layer_gdf(session: Session, layer_id: int) -> gpd.GeoDataFrame:
    """Return a stored layer's features (their props as columns), EPSG:4326."""
    rows = session.execute(
        select(Feature.props, Feature.geom).where(Feature.layer_id == layer_id)
        .order_by(Feature.id)
    ).all()
    records = [dict(props or {}) for props, _ in rows]
    geoms = [shape(json.loads(g)) for _, g in rows]
    return gpd.GeoDataFrame(records, geometry=geoms, crs=4326)


# ------------------------------------------------------------------ OpenStreetMap files

# The layers an OSM extract fills, in the order they are stored (and reported).
OSM_KINDS = ("roads", "pois", "buildings", "water", "addresses")
OSM_SUFFIXES = (".osm", ".osm.gz", ".osm.bz2", ".osm.pbf", ".pbf")
# The other GIS files gis.layer_io reads (a zip holds a Shapefile).
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".zip", ".kml", ".kmz")


def is_osm_file(filename: str) -> bool:
    """Whether a file name is an OpenStreetMap extract (.osm, .osm.gz, .osm.pbf ...)."""
    return str(filename).lower().endswith(OSM_SUFFIXES)


def import_osm_file(
    session: Session,
    path: str | Path,
    *,
    user: User | None = None,
    progress: Callable[[str, float], None] | None = None,
    checkpoint: Callable[[], None] | None = None,
    staged: list[int] | None = None,
) -> dict:
    """Store every layer of an OpenStreetMap extract and derive a built-up boundary.

    Roads, POIs (with their other names), buildings, water and door plates
    (``addr:street`` + ``addr:housenumber`` on nodes and buildings) each become the
    active layer of their kind; complete ``boundary=administrative`` relations become
    the ``subdistricts`` layer (coded 001, 002 ... by name); the ``boundary`` layer is
    derived from roads and buildings, since exports rarely carry the built-up limit.

    Parameters
    ----------
    session : Session
        The database session (the caller commits).
    path : str or Path
        The OSM file.
    user : User, optional
        Who imports (None: the command line), for the audit log.
    progress : callable, optional
        Called as ``progress(stage, fraction)`` with a Chinese stage label and 0..1.
    checkpoint : callable, optional
        For a background import: the new layers are written inactive in chunks, with
        ``checkpoint()`` (the session's commit) after each, and switched on together
        at the end, so the database is never held for the whole import and nobody
        sees half of it. ``staged`` collects their ids for clean-up after a failure
        (:func:`delete_layers`).

    Returns
    -------
    dict
        ``layers`` (kind → feature count), ``layer_ids`` (kind → layer id) and
        ``warnings`` (Chinese sentences for skipped objects).

    Raises
    ------
    ValidationError
        If the file has no roads.
    LayerReadError
        If the file cannot be read.
    """
    from gis.osm import derive_builtup_boundary, read_osm  # loads osmium: only OSM imports need it

    def step(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    path = Path(path)
    step("读取 OSM 文件", 0.05)
    osm = read_osm(path)
    if not len(osm["roads"]):
        msg = f"OSM 文件 {path.name} 中没有道路 (highway)，无法建立图层"
        raise ValidationError(msg)
    # Everything slow but the writing is done before the first row is written.
    step("推导建成区边界", 0.2)
    outline = derive_builtup_boundary(osm["roads"], osm["buildings"])
    frames: list[tuple[str, gpd.GeoDataFrame, str]] = [
        (kind, osm[kind], f"{path.name} {KIND_LABELS[kind]}") for kind in OSM_KINDS
    ]
    frames.append((
        "boundary",
        gpd.GeoDataFrame(
            {"name": ["建成区范围 (由道路和建筑推导)"], "kind": ["builtup"]},
            geometry=[outline],
            crs=4326,
        ),
        f"{path.name} 建成区边界",
    ))
    admin = osm["boundary"]
    if len(admin) and "admin_level" in admin.columns:
        # Sub-districts and towns are admin_level 8 in China; a complete county (6) or
        # village (10) relation would otherwise be coded as a sub-district.
        level = admin["admin_level"].astype("Float64")
        admin = admin[(level == 8).fillna(False).to_numpy()]
    if len(admin):
        admin = admin.sort_values("name", na_position="last").reset_index(drop=True)
        admin["code"] = [f"{i:03d}" for i in range(1, len(admin) + 1)]
        frames.append(("subdistricts", admin, f"{path.name} 行政区划"))
    stored: dict[str, int] = {}
    layer_ids: dict[str, int] = {}
    source = f"osm:{path.name}"
    staged = staged if staged is not None else []
    for i, (kind, gdf, name) in enumerate(frames):
        if not len(gdf):
            continue
        label = KIND_LABELS[kind]
        step(f"保存{label} ({len(gdf)} 个)", 0.3 + 0.65 * i / len(frames))
        layer = store_layer(session, gdf, kind=kind, name=name, source=source,
                            active=checkpoint is None, checkpoint=checkpoint)
        staged.append(layer.id)
        stored[kind], layer_ids[kind] = len(gdf), layer.id
    if checkpoint is not None:
        activate_layers(session, list(layer_ids.values()))
    audit.record(session, user, "import_osm", f"{path.name}: {stored}")
    session.flush()
    step("完成", 1.0)
    return {"layers": stored, "layer_ids": layer_ids, "warnings": list(osm.warnings)}

