"""Offline geocoding of Chinese addresses against the county's own layers.

Inspection lists name places by roads, crossings, door plates and landmarks. The
county has no online geocoder it may rely on (and online ones answer in GCJ-02), so
``Geocoder`` indexes the county's roads, POIs, communities and door plates once, in the
local UTM zone, and then answers many queries fast. One module per stage:

- ``layers``: ``index_layers`` turns the layers into name → geometry tables and door
  plates (footprints, plates, aliases, grouping, checks).
- ``names``: ``NameIndex`` matches a query to a known name (fuzzy, aliases, ties: ``Match``).
- ``place``: the placement rules: crossings and their corners, road middles, POI gates
  and edges, house numbers.
- ``result``: ``GeocodeResult``, the ``CONFIDENCE`` of each method and ``QUEUE_BELOW``.
- ``geocoder``: ``Geocoder`` (``from_layers``, ``match_name``, ``geocode_address``) and
  ``geocode_address``.

Import each name from the module that does the thing
(``from gis.geocode.geocoder import Geocoder``); this package re-exports nothing.

Confidence of each method (before the name-match factor below)
--------------------------------------------------------------
The app treats a result below 0.6 as 待定位 (queued for manual placement).

============================  ==========  =============================================
method                        confidence  placed at
============================  ==========  =============================================
``intersection`` + corner     0.92        15 m into the named corner's block, along the
                                          bisector of the two roads there
``intersection`` + side       0.80        15 m along the road arm on that side
``intersection``              0.80        2 m off the crossing into the block that holds
                                          the north-east direction (deterministic, so
                                          the point is not on a cell edge)
``house_number`` exact        0.95        the door plate
``house_number`` interpolated 0.85 / 0.70 between the nearest plates of the same parity
                                          (0.70 when they are > 20 numbers apart)
``house_number`` extrapolated 0.60 / 0.45 beyond the last plate (0.45 when > 6 away)
``segment``                   0.82        midway along the road between its crossings
``poi`` (内, 门 or nothing)   0.90 / 0.85 the POI; a gate moves it toward that side
``poi`` (旁, 门口, 对面 ...)  0.72        the POI (the problem is *near* it); for an
                                          area, 2 m inside its edge facing the nearest
                                          named road (后面/后门: the far edge)
``alias``                     as ``poi``  a POI or road reached through an alias
``community``                 0.50        a point inside the community polygon
``road``                      0.45        the middle of the road (no door plates)
``road`` (short lane)         0.62        the middle of a road shorter than 300 m,
                                          named alone ("营盘巷", "海棠坡沿线")
``none``                      0           nothing (lon/lat None)
============================  ==========  =============================================

A POI mapped as an area (a polygon, or a point with a ``footprint`` WKT column as
:func:`gis.osm.read_osm` and the stored ``pois`` layer carry it) is placed like a
named building footprint: a plain name at a point inside it, a gate or side
(北门, 东侧) 2 m inside the edge on that side, 对面/门口/旁 2 m inside the edge that
faces the nearest named road within 120 m, 后面 the opposite edge. Without a road
that near, 对面/后面 stay at the point inside.

Each fuzzy name match multiplies the confidence by ``0.75 + 0.25 * (score - 60) / 40``
(exact names: 1); when two names tie, the result is multiplied by 0.6 and both are
listed as candidates, so a tie always falls below 0.6.
"""
