"""The one Folium map builder and its layers, used by every page with a map.

``base`` makes the map (local assets, no online tiles), its base layers and its rendering
into :class:`~app.maps.base.MapParts`; ``cells`` colours cells (one open-problem density
scale, unit colours); ``problems`` draws problem markers and the point picker; ``routes``
draws patrol routes and stops; ``zones`` draws the grid check's zones, office-held cells and
findings. The package takes plain dicts and GeoJSON from the services: it runs no SQL and
imports no Flask.
"""
