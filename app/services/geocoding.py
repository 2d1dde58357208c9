"""The county's offline geocoder, built from its own layers and alias table."""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.models import Layer, Setting
from app.services.layers import layer_gdf

_CACHE: dict[tuple, object] = {}
_LOCK = threading.Lock()
ALIAS_KEY = "geocode_aliases"


def aliases(session) -> dict[str, str]:
    row = session.get(Setting, ALIAS_KEY)
    return dict(row.value) if row else {}


def set_aliases(session, mapping: dict[str, str]) -> None:
    row = session.get(Setting, ALIAS_KEY) or Setting(key=ALIAS_KEY, value={})
    row.value = dict(mapping)
    session.add(row)
    session.flush()


def geocoder_for(session):
    """Return a Geocoder over the active layers (cached until a layer or alias changes)."""
    layers = {
        layer.kind: layer.id
        for layer in session.execute(
            select(Layer).where(Layer.active.is_(True)).order_by(Layer.id)
        ).scalars()
    }
    if "roads" not in layers:
        return None
    alias_map = aliases(session)
    county = session.get(Setting, "county")
    prefixes = tuple(
        str(county.value[k]) for k in ("county_name", "seat_name") if county and county.value.get(k)
    )
    key = (tuple(sorted(layers.items())), tuple(sorted(alias_map.items())), prefixes)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    from gis.geocode import Geocoder

    def gdf(kind):
        return layer_gdf(session, layers[kind]) if kind in layers else None

    geocoder = Geocoder.from_layers(
        roads=gdf("roads"), pois=gdf("pois"), communities=gdf("communities"),
        addresses=gdf("addresses"), aliases=alias_map, strip_prefixes=prefixes,
    )
    with _LOCK:
        _CACHE.clear()
        _CACHE[key] = geocoder
    return geocoder
