"""Export a planned route for phone navigation apps: GPX 1.1 and KML 2.2 text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gis.errors import RoutingError
from gis.routing.plan import Route
from gis.xmltext import xml_text

_GPX_NS = "http://www.topografix.com/GPX/1/1"
_KML_NS = "http://www.opengis.net/kml/2.2"


def _stop_label(route: Route, rank: int, idx: int, stop_names: Sequence[str] | None) -> str:
    if stop_names is not None:
        if len(stop_names) != len(route.stops):
            msg = f"stop_names 个数 ({len(stop_names)}) 与巡查点个数 ({len(route.stops)}) 不一致"
            raise RoutingError(msg)
        return f"{rank}. {stop_names[idx]}"
    return f"{rank}. 巡查点 {idx + 1}"


def route_to_gpx(route: Route, *, name: str, stop_names: Sequence[str] | None = None) -> str:
    """Return the route as GPX 1.1: numbered ``<wpt>`` per stop and a ``<trk>`` of the legs.

    Parameters
    ----------
    route : Route
    name : str
        Track name shown in the navigation app.
    stop_names : sequence of str, optional
        One per stop as given to ``plan_route`` (indexed like ``route.stops``).
    """
    ET.register_namespace("", _GPX_NS)
    gpx = ET.Element(f"{{{_GPX_NS}}}gpx", {"version": "1.1", "creator": "SaniGrid 创卫网格"})
    meta = ET.SubElement(gpx, f"{{{_GPX_NS}}}metadata")
    ET.SubElement(meta, f"{{{_GPX_NS}}}name").text = xml_text(name)
    if route.start is not None:
        w = ET.SubElement(
            gpx,
            f"{{{_GPX_NS}}}wpt",
            {"lat": f"{route.start[1]:.7f}", "lon": f"{route.start[0]:.7f}"},
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = "0. 起点"
    for rank, idx in enumerate(route.order, start=1):
        lon, lat = route.stops[idx]
        w = ET.SubElement(gpx, f"{{{_GPX_NS}}}wpt", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = xml_text(
            _stop_label(route, rank, idx, stop_names)
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}desc").text = f"距道路 {route.snaps[idx].distance_m:.0f} 米"
    if route.end is not None:
        w = ET.SubElement(
            gpx, f"{{{_GPX_NS}}}wpt", {"lat": f"{route.end[1]:.7f}", "lon": f"{route.end[0]:.7f}"}
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = "终点"
    trk = ET.SubElement(gpx, f"{{{_GPX_NS}}}trk")
    ET.SubElement(trk, f"{{{_GPX_NS}}}name").text = xml_text(name)
    for leg in route.legs:
        seg = ET.SubElement(trk, f"{{{_GPX_NS}}}trkseg")
        for lon, lat in leg.coords:
            ET.SubElement(seg, f"{{{_GPX_NS}}}trkpt", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
    ET.indent(gpx)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(gpx, encoding="unicode")


def route_to_kml(route: Route, *, name: str, stop_names: Sequence[str] | None = None) -> str:
    """Return the route as KML 2.2: a numbered Placemark per stop and one per leg.

    Parameters
    ----------
    route : Route
    name : str
        Document name.
    stop_names : sequence of str, optional
        One per stop as given to ``plan_route`` (indexed like ``route.stops``).
    """
    ET.register_namespace("", _KML_NS)
    kml = ET.Element(f"{{{_KML_NS}}}kml")
    doc = ET.SubElement(kml, f"{{{_KML_NS}}}Document")
    ET.SubElement(doc, f"{{{_KML_NS}}}name").text = xml_text(name)
    ET.SubElement(doc, f"{{{_KML_NS}}}description").text = (
        f"{len(route.order)} 个巡查点, 全长 {route.length_m / 1000:.2f} 公里, "
        f"约 {route.est_minutes:.0f} 分钟"
    )

    def point(label: str, lon: float, lat: float) -> None:
        pm = ET.SubElement(doc, f"{{{_KML_NS}}}Placemark")
        ET.SubElement(pm, f"{{{_KML_NS}}}name").text = xml_text(label)
        pt = ET.SubElement(pm, f"{{{_KML_NS}}}Point")
        ET.SubElement(pt, f"{{{_KML_NS}}}coordinates").text = f"{lon:.7f},{lat:.7f},0"

    if route.start is not None:
        point("0. 起点", *route.start)
    for rank, idx in enumerate(route.order, start=1):
        point(_stop_label(route, rank, idx, stop_names), *route.stops[idx])
    if route.end is not None:
        point("终点", *route.end)
    for k, leg in enumerate(route.legs, start=1):
        pm = ET.SubElement(doc, f"{{{_KML_NS}}}Placemark")
        ET.SubElement(pm, f"{{{_KML_NS}}}name").text = f"第 {k} 段"
        ls = ET.SubElement(pm, f"{{{_KML_NS}}}LineString")
        ET.SubElement(ls, f"{{{_KML_NS}}}tessellate").text = "1"
        ET.SubElement(ls, f"{{{_KML_NS}}}coordinates").text = " ".join(
            f"{lon:.7f},{lat:.7f},0" for lon, lat in leg.coords
        )
    ET.indent(kml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(kml, encoding="unicode")
