"""POIs drawn as areas survive the database: stored as points, placed by their outline."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, box

from app.models import Feature
from app.services.grids.layers import active_layer, import_osm_file, load_layer_gdf, store_layer
from gis.geocode.geocoder import Geocoder
from gis.osm import read_osm

AREAS = Path(__file__).parents[2] / "fixtures" / "landmark_areas_town.osm"
SCHOOL = box(117.2060, 28.3053, 117.2090, 28.3075)
MARKET = box(117.2060, 28.3010, 117.2100, 28.3045)
COURTYARD = box(117.2075, 28.3020, 117.2085, 28.3030)


def _stored_geocoder(session) -> Geocoder:
    # The layers as app.services.grids.geocoding.geocoder_for reads them (layer_gdf).
    return Geocoder.from_layers(
        roads=load_layer_gdf(session, "roads"), pois=load_layer_gdf(session, "pois")
    )


def _to_utm(geocoder: Geocoder, lon: float, lat: float) -> Point:
    return Point(*Transformer.from_crs(4326, geocoder.crs, always_xy=True).transform(lon, lat))


def _east_edge_m(geocoder: Geocoder, lon: float, lat: float) -> float:
    minx, miny, maxx, maxy = MARKET.bounds
    edge = LineString([_to_utm(geocoder, maxx, miny), _to_utm(geocoder, maxx, maxy)])
    return _to_utm(geocoder, lon, lat).distance(edge)


def test_osm_import_stores_area_pois_as_points_with_their_outline(session) -> None:
    import_osm_file(session, AREAS)
    layer = active_layer(session, "pois")
    features = session.query(Feature).filter_by(layer_id=layer.id).all()
    assert {f.shape.geom_type for f in features} == {"Point"}
    school = next(f for f in features if (f.props or {}).get("osm_id") == "way/300")
    assert shapely.from_wkt(school.props["footprint"]).equals(SCHOOL)
    stored = _stored_geocoder(session)
    osm = read_osm(AREAS)
    direct = Geocoder.from_layers(roads=osm["roads"], pois=osm["pois"])
    for text in (
        "城关中学北门",
        "一中北门",
        "城关中学对面",
        "城南农贸市场东侧",
        "城南农贸市场后面",
    ):
        a, b = stored.geocode_address(text), direct.geocode_address(text)
        assert (a.method, a.confidence) == (b.method, b.confidence), text
        pa, pb = _to_utm(stored, a.lon, a.lat), _to_utm(stored, b.lon, b.lat)
        assert math.hypot(pa.x - pb.x, pa.y - pb.y) < 0.5, text


def test_county_polygon_poi_layer_is_stored_as_points_and_placed_by_edges(session) -> None:
    osm = read_osm(AREAS)
    store_layer(session, osm["roads"], kind="roads", name="道路")
    county = gpd.GeoDataFrame(
        {"name": ["城南农贸市场", "县客运站"], "type": ["农贸市场", "车站"]},
        geometry=[MARKET.difference(COURTYARD), Point(117.2030, 28.3040)],
        crs=4326,
    )
    layer = store_layer(session, county, kind="pois", name="县兴趣点")
    features = {f.name: f for f in session.query(Feature).filter_by(layer_id=layer.id)}
    market = features["城南农贸市场"]
    assert market.shape.geom_type == "Point"
    assert MARKET.difference(COURTYARD).contains(market.shape)
    assert shapely.from_wkt(market.props["footprint"]).equals(MARKET.difference(COURTYARD))
    assert features["县客运站"].props.get("footprint") is None
    geocoder = _stored_geocoder(session)
    east = geocoder.geocode_address("城南农贸市场东侧")
    assert east.method == "poi" and east.confidence == pytest.approx(0.85)
    assert 1.5 < _east_edge_m(geocoder, east.lon, east.lat) < 2.5
    station = geocoder.geocode_address("县客运站门口")
    assert (station.lon, station.lat) == (117.203, 28.304)


def test_import_layer_takes_a_polygon_poi_file(runner, session, tmp_path) -> None:
    """`import-layer --kind pois` with markets drawn as areas, as a county's own layer comes."""
    path = tmp_path / "重点场所.geojson"
    gpd.GeoDataFrame(
        {"name": ["城南农贸市场"], "type": ["农贸市场"]},
        geometry=[MARKET.difference(COURTYARD)], crs=4326,
    ).to_file(path, driver="GeoJSON")
    result = runner.invoke(args=["import-layer", str(path), "--kind", "pois"])
    assert result.exit_code == 0, result.output
    feature = session.query(Feature).filter(Feature.name == "城南农贸市场").one()
    assert feature.shape.geom_type == "Point" and feature.props.get("footprint")
