"""The base of every map: a Folium map whose every asset is served by this site.

Folium and branca name CDN hosts for Leaflet, jQuery, Bootstrap, awesome-markers and d3;
on a government intranet those requests fail, so each map instance is pointed at the
XStatic copies under /vendor and Bootstrap/awesome-markers are left out (only circle
markers are used). The county's own layers (boundary, water, roads) stand in for the
online base map, and :func:`render_map` turns a map into the parts a page embeds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import folium
from branca.element import Element, JavascriptLink, MacroElement
from jinja2 import Template

# Only what our maps use: no generated map script calls jQuery and no marker uses a
# Font Awesome icon, so neither is loaded (both are still served under /vendor).
LOCAL_JS = [("leaflet", "/vendor/leaflet/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/vendor/leaflet/leaflet.css")]
CLUSTER_JS = [("markerclusterjs", "/vendor/markercluster/leaflet.markercluster.js")]
CLUSTER_CSS = [
    ("markerclustercss", "/vendor/markercluster/MarkerCluster.css"),
    ("markerclusterdefaultcss", "/vendor/markercluster/MarkerCluster.Default.css"),
]
D3_LOCAL = "/vendor/d3/d3.js"
DENSITY_JS = "/static/js/density-map.js"

BOUNDARY_COLOUR = "#333333"
ROAD_COLOUR = "#7a7a7a"

Bounds = tuple[float, float, float, float]
"""``(min_lon, min_lat, max_lon, max_lat)`` in WGS-84."""


@dataclass
class MapParts:
    """The pieces of a rendered Folium map to embed in a Jinja page."""

    header: str
    html: str
    script: str
    map_id: str


def create_map(*, bounds: Bounds | None = None) -> folium.Map:
    """Create an empty Folium map with local assets and no online tiles.

    Parameters
    ----------
    bounds
        The extent to fit, or None for Folium's default view.

    Returns
    -------
    folium.Map
        The map, fitted to ``bounds``, with a plain background instead of tiles.
    """
    # Without a tile layer Leaflet cannot infer zoom limits, so they are set explicitly.
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True, zoom_start=14,
                   location=None if bounds is None else
                   [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2])
    m.options["maxZoom"] = 20
    m.options["minZoom"] = 10
    m.default_js = list(LOCAL_JS)
    m.default_css = list(LOCAL_CSS)
    if bounds is not None:
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    # A plain background instead of map tiles: the intranet has no tile server.
    m.get_root().header.add_child(Element(
        "<style>.leaflet-container{background:#f4f1ea;font-family:"
        "'Noto Sans CJK SC','Microsoft YaHei',sans-serif}</style>"))
    return m


def add_lines(m: folium.Map, fc: dict, *, name: str, colour: str = "#888888",
              weight: float = 1.2, tooltip_field: str | None = "name", show: bool = True) -> None:
    """Add a line layer (roads, rivers) with its features' names as tooltips.

    Parameters
    ----------
    m
        The map to draw on.
    fc
        A GeoJSON FeatureCollection of lines.
    name
        The layer's name in the layer control.
    colour, weight
        The line style.
    tooltip_field
        The property shown on hover, or None for no tooltip.
    show
        Whether the layer starts switched on.
    """
    tooltip = (folium.GeoJsonTooltip(fields=[tooltip_field], aliases=["名称"])
               if tooltip_field else None)
    folium.GeoJson(fc, name=name, show=show, tooltip=tooltip,
                   style_function=lambda f: {"color": colour, "weight": weight}).add_to(m)


def add_area(m: folium.Map, fc: dict, *, name: str, colour: str, fill: str | None = None,
             weight: float = 2.0, dash: str | None = None) -> None:
    """Add an outlined (and, with ``fill``, filled) area layer.

    Parameters
    ----------
    m
        The map to draw on.
    fc
        A GeoJSON FeatureCollection of polygons (lines in it are outlined, never filled).
    name
        The layer's name in the layer control.
    colour, fill, weight, dash
        The outline colour, the fill colour (None: no fill), the outline width and its
        SVG dash pattern.
    """
    folium.GeoJson(
        fc, name=name,
        # Only polygons are filled: Leaflet would fill the hull of a line (a river centreline).
        style_function=lambda f: {
            "color": colour, "weight": weight, "dashArray": dash, "fillColor": fill or colour,
            "fill": fill is not None and "Polygon" in f["geometry"]["type"],
            "fillOpacity": 0.5 if fill else 0},
    ).add_to(m)


def add_boundary(m: folium.Map, fc: dict | None, *, weight: float = 2.5) -> None:
    """Add the built-up area's boundary (建成区边界) as a dashed outline, if there is one."""
    if fc:
        add_area(m, fc, name="建成区边界", colour=BOUNDARY_COLOUR, weight=weight, dash="6 4")


def add_water(m: folium.Map, fc: dict | None) -> None:
    """Add the rivers and water bodies (河流水系), if the county has that layer."""
    if fc:
        add_area(m, fc, name="河流水系", colour="#4a90c2", fill="#a6cee3", weight=1)


def add_roads(m: folium.Map, fc: dict | None, *, colour: str = ROAD_COLOUR, weight: float = 1.2,
              show: bool = True) -> None:
    """Add the road centrelines (道路), if the county has that layer.

    Parameters
    ----------
    m
        The map to draw on.
    fc
        The roads layer as GeoJSON, or None.
    colour, weight
        The line style: pages that draw something over the roads keep them pale.
    show
        Whether the layer starts switched on.
    """
    if fc:
        add_lines(m, fc, name="道路", colour=colour, weight=weight, show=show)


def create_base_map(bounds: Bounds | None, *, boundary_fc: dict | None = None,
                    roads_fc: dict | None = None) -> folium.Map:
    """Create a map with the boundary and the (hidden at first) roads of the grid pages."""
    m = create_map(bounds=bounds)
    add_boundary(m, boundary_fc)
    add_roads(m, roads_fc, show=False)
    return m


class MapScript(MacroElement):
    """Raw JavaScript that runs after every element added to the map before it."""

    _template = Template("{% macro script(this, kwargs) %}{{ this.code }}{% endmacro %}")

    def __init__(self, code: str):
        super().__init__()
        self._name = "MapScript"
        self.code = code


def load_density_script(m: folium.Map) -> None:
    """Load the site's map script (SaniGrid.loadDensity / loadIssues) once per page."""
    m.get_root().header.add_child(JavascriptLink(DENSITY_JS), name="density")


def pad_bounds(coords: Iterable[tuple[float, ...]], *, pad: float) -> Bounds | None:
    """Return the box around ``(lon, lat, ...)`` coordinates grown by ``pad`` degrees.

    Parameters
    ----------
    coords
        Points as ``(lon, lat)`` (further values are ignored).
    pad
        The margin on every side, in degrees.

    Returns
    -------
    Bounds or None
        The padded box, or None when there are no coordinates.
    """
    points = list(coords)
    if not points:
        return None
    lons, lats = [c[0] for c in points], [c[1] for c in points]
    return (min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad)


def geometry_bounds(geometry: dict) -> Bounds:
    """Return the box around a GeoJSON geometry's coordinates (any nesting)."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: list) -> None:
        if coords and isinstance(coords[0], (int, float)):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for part in coords:
                walk(part)

    walk(geometry["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def render_map(m: folium.Map) -> MapParts:
    """Render a map, with its layer control, into the strings a page embeds.

    Parameters
    ----------
    m
        The finished map.

    Returns
    -------
    MapParts
        Header (assets), HTML (the map's div), script and the map's JS name.
    """
    control = folium.LayerControl(collapsed=False).add_to(m)
    # On a phone the expanded layer list would cover the town; start it collapsed there.
    # Folium renders the layer control last, so the call waits for the script to finish.
    MapScript(f"setTimeout(function () {{ if (window.innerWidth < 720) "
              f"{{ {control.get_name()}.collapse(); }} }}, 0);").add_to(m)
    root = m.get_root()
    root.render()
    # branca's colormap adds d3 from a CDN while rendering; point that name local.
    if "d3" in root.header._children:
        root.header.add_child(JavascriptLink(D3_LOCAL), name="d3")
    return MapParts(header=root.header.render(), html=root.html.render(),
                    script=root.script.render(), map_id=m.get_name())
