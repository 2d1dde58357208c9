"""A deterministic, SYNTHETIC county seat in a mountain valley of south-west China.

One module per stage, run in order by ``town.generate_demo_town``:

- ``data``: the town's names and vocabularies, the name pools (``gis/data/demo_town.json``)
  and ``read_categories`` (the category table in ``layers/categories.csv``).
- ``geometry``: the valley frame, boundary, river, streets and the sub-district/community
  partition.
- ``places``: door plates along the main streets (``Streets``) and the named POIs.
- ``units``: the responsible units.
- ``problems``: the cross-inspection workbook rows with their truth, and the history.
- ``town``: ``generate_demo_town`` and the ``DemoTown`` it returns.

Import each name from the module that does the thing
(``from gis.demo_town.town import generate_demo_town``); this package re-exports nothing.
"""
