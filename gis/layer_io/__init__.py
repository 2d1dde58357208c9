"""Layer files in and out, one module per direction.

- ``schema``: the layer kinds and the geometry types each accepts, the name and code
  columns, and the cleaning of property text.
- ``read``: ``read_layer`` reads GeoJSON, GeoPackage, (zipped) Shapefile, KML and KMZ as
  one of the project's layers, in EPSG:4326.
- ``write``: ``write_layer`` / ``layer_to_bytes`` write GeoJSON, GeoPackage, a zipped
  Shapefile or KML for download.
- ``kml``: KML both ways with xml.etree (``parse_kml``, ``kml_bytes``).

Import each name from the module that does the thing
(``from gis.layer_io.read import read_layer``); this package re-exports nothing.
"""
