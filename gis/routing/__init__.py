"""Patrol routing over the county seat's real road network, one module per stage.

- ``graph``: ``build_road_graph`` nodes the road lines in the local UTM zone and keeps the
  largest (strongly) connected part (``RoadGraph``).
- ``snap``: ``snap_points`` puts every stop on the nearest road edge (``Snap``).
- ``search``: one Dijkstra search per stop; ``distance_matrix`` and the leg geometry.
- ``tour``: ``solve_tour`` orders a distance matrix (iterated 2-opt + Or-opt local search).
- ``plan``: ``plan_route`` plans one patrol (``Route``); ``split_route`` shares a large stop
  set among several inspectors.
- ``export``: ``route_to_gpx`` / ``route_to_kml`` for phone navigation apps.

Import each name from the module that does the thing
(``from gis.routing.plan import plan_route``); this package re-exports nothing.
"""
