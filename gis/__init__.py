"""SaniGrid's geometry core: pure functions over shapely and geopandas.

Nothing here imports Flask, SQLAlchemy or the ``app`` package.
"""
