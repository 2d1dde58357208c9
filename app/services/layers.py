"""Store and load geometry layers (boundary, roads, pois, communities, ...)."""

from __future__ import annotations

import json

import geopandas as gpd
from shapely.geometry import shape
from sqlalchemy import select, update

from app.models import Feature, Layer
from app.services.errors import NotFoundError

LAYER_KINDS = (
    "boundary", "roads", "pois", "buildings", "communities", "subdistricts", "water",
    "addresses",
)
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
    session, gdf: gpd.GeoDataFrame, *, kind: str, name: str, source: str | None = None,
    replace: bool = True,
) -> Layer:
    """Store a layer (EPSG:4326); with ``replace`` older layers of that kind are retired."""
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    if replace:
        session.execute(update(Layer).where(Layer.kind == kind).values(active=False))
    layer = Layer(name=name, kind=kind, source=source, active=True)
    session.add(layer)
    session.flush()
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    rows = []
    for record, geom in zip(gdf[columns].to_dict("records"), gdf.geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        props = {k: _clean(v) for k, v in record.items()}
        feature = Feature(
            layer_id=layer.id,
            name=next((str(props[c]) for c in _NAME_COLUMNS if props.get(c)), None),
            code=str(props["code"]) if props.get("code") is not None else None,
            ftype=next((str(props[c]) for c in _TYPE_COLUMNS if props.get(c)), None),
            props=props,
        )
        feature.set_geometry(geom)
        rows.append(feature)
    session.add_all(rows)
    session.flush()
    return layer


def active_layer(session, kind: str) -> Layer | None:
    return session.execute(
        select(Layer).where(Layer.kind == kind, Layer.active.is_(True)).order_by(Layer.id.desc())
    ).scalars().first()


def load_layer_gdf(session, kind: str, *, required: bool = False) -> gpd.GeoDataFrame | None:
    """Return the active layer of a kind as a GeoDataFrame (EPSG:4326), or None."""
    layer = active_layer(session, kind)
    if layer is None:
        if required:
            msg = f"尚未导入{kind}图层"
            raise NotFoundError(msg)
        return None
    return layer_gdf(session, layer.id)


def layer_gdf(session, layer_id: int) -> gpd.GeoDataFrame:
    rows = session.execute(
        select(Feature.props, Feature.geom).where(Feature.layer_id == layer_id)
        .order_by(Feature.id)
    ).all()
    records = [dict(props or {}) for props, _ in rows]
    geoms = [shape(json.loads(g)) for _, g in rows]
    return gpd.GeoDataFrame(records, geometry=geoms, crs=4326)
