"""GIS layers, the grid (build, versions, assignment, export), the geocoder and the map payloads."""
