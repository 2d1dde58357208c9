"""The one map builder: Folium maps whose every asset is served by this site.

Folium and branca name CDN hosts for Leaflet, jQuery, Bootstrap, awesome-markers and d3;
on a government intranet those requests fail, so each map instance is pointed at the
XStatic copies under /vendor and Bootstrap/awesome-markers are left out (only circle
markers are used).
"""

from __future__ import annotations

from dataclasses import dataclass

import folium
from branca.colormap import StepColormap
from branca.element import Element, JavascriptLink, MacroElement
from folium import plugins
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

# Open-problem density classes (problems per cell); colour-blind-safe yellow→red.
DENSITY_BINS = [0, 1, 2, 4, 7, 1000]
DENSITY_COLOURS = ["#e8f5e9", "#fee08b", "#fdae61", "#f46d43", "#a50026"]
STATUS_COLOURS = {
    "reported": "#6a3d9a",
    "dispatched": "#1f78b4",
    "rectifying": "#ff7f00",
    "submitted": "#33a02c",
    "closed": "#999999",
}
ATTRIBUTION = "底图: 本县图层 (无在线底图)"


@dataclass
class MapParts:
    """The pieces of a rendered Folium map to embed in a Jinja page."""

    header: str
    html: str
    script: str
    map_id: str


def new_map(*, bounds: tuple[float, float, float, float] | None = None) -> folium.Map:
    """An empty Folium map with local assets and no online tiles."""
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


def density_colormap() -> StepColormap:
    cmap = StepColormap(DENSITY_COLOURS, index=DENSITY_BINS[:-1] + [10], vmin=0, vmax=10,
                        caption="未销号问题数 / 网格")
    cmap.default_js = [("d3", D3_LOCAL)]
    return cmap


def density_colour(count: int) -> str:
    """The fill for a cell with ``count`` open problems (the legend's classes)."""
    for upper, colour in zip(DENSITY_BINS[1:], DENSITY_COLOURS, strict=True):
        if count < upper:
            return colour
    return DENSITY_COLOURS[-1]


def add_lines(m: folium.Map, fc: dict, *, name: str, colour: str = "#888888",
              weight: float = 1.2, tooltip_field: str | None = "name", show: bool = True) -> None:
    tooltip = (folium.GeoJsonTooltip(fields=[tooltip_field], aliases=["名称"])
               if tooltip_field else None)
    folium.GeoJson(fc, name=name, show=show, tooltip=tooltip,
                   style_function=lambda f: {"color": colour, "weight": weight}).add_to(m)


def add_area(m: folium.Map, fc: dict, *, name: str, colour: str, fill: str | None = None,
             weight: float = 2.0, dash: str | None = None) -> None:
    folium.GeoJson(
        fc, name=name,
        # Only polygons are filled: Leaflet would fill the hull of a line (a river centreline).
        style_function=lambda f: {
            "color": colour, "weight": weight, "dashArray": dash, "fillColor": fill or colour,
            "fill": fill is not None and "Polygon" in f["geometry"]["type"],
            "fillOpacity": 0.5 if fill else 0},
    ).add_to(m)


class MapScript(MacroElement):
    """Raw JavaScript that runs after every element added to the map before it."""

    _template = Template("{% macro script(this, kwargs) %}{{ this.code }}{% endmacro %}")

    def __init__(self, code: str):
        super().__init__()
        self._name = "MapScript"
        self.code = code


def add_remote_density(m: folium.Map, *, cells_url: str, counts_url: str, fit: bool = True,
                       name: str = "责任网格 (问题密度)") -> None:
    """Cells fetched as compact GeoJSON and drawn on canvas, coloured by open counts.

    The page stays small however many cells the county has; the data comes gzip-compressed
    and cached from /map (app/views/mapdata.py).
    """
    import json

    group = folium.FeatureGroup(name=name).add_to(m)
    density_colormap().add_to(m)
    m.get_root().header.add_child(JavascriptLink("/static/js/density-map.js"), name="density")
    options = {"cellsUrl": cells_url, "countsUrl": counts_url, "bins": DENSITY_BINS,
               "colours": DENSITY_COLOURS, "fit": fit}
    MapScript(
        f"SaniGrid.loadDensity(Object.assign({json.dumps(options)}, "
        f"{{map: {m.get_name()}, group: {group.get_name()}}}));"
    ).add_to(m)


def add_remote_issues(m: folium.Map, *, url: str, name: str = "问题点位") -> None:
    """Problem markers fetched from /map/issues.geojson into a marker cluster."""
    import json

    cluster = plugins.MarkerCluster(name=name, options={"maxClusterRadius": 40,
                                                        "chunkedLoading": True})
    cluster.default_js = list(CLUSTER_JS)
    cluster.default_css = list(CLUSTER_CSS)
    cluster.add_to(m)
    m.get_root().header.add_child(JavascriptLink("/static/js/density-map.js"), name="density")
    MapScript(
        f"SaniGrid.loadIssues({{url: {json.dumps(url)}, colours: {json.dumps(STATUS_COLOURS)}, "
        f"cluster: {cluster.get_name()}}});"
    ).add_to(m)


def render_parts(m: folium.Map) -> MapParts:
    """Render a map into header/html/script strings for embedding in a page."""
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
