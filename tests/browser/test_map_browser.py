"""The density map in a real browser: drawn, coloured, local, role-scoped."""

import pytest

pytestmark = pytest.mark.browser


def _cell_fills(page) -> list[str]:
    # Cells are drawn on a canvas; read each cell's fill from its Leaflet layer.
    page.wait_for_function("window.SaniGrid && window.SaniGrid.cells")
    return page.evaluate(
        """() => { const fills = [];
        window.SaniGrid.cells.eachLayer(l => fills.push(l.options.fillColor));
        return fills; }"""
    )


def test_admin_map_draws_cells_in_several_colours(web):
    web.login("admin")
    page = web.page
    page.wait_for_selector(".leaflet-container")
    fills = _cell_fills(page)
    assert len(fills) > 1000, "the demo grid should be drawn"
    assert len(set(fills)) > 1, "cells must be coloured by open-problem density"
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator("svg, canvas").count() > 0
    web.screenshot("map_admin")


def test_unit_head_map_shows_only_own_cells(web, demo_app):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Cell, User

    with demo_app.app_context():
        user = db.session.execute(select(User).where(User.username == "unit02")).scalar()
        own = db.session.execute(
            select(func.count()).select_from(Cell).where(Cell.unit_id == user.unit_id)
        ).scalar()
    web.login("unit02")
    web.page.wait_for_selector(".leaflet-container")
    fills = _cell_fills(web.page)
    assert 0 < len(fills) == own
    web.screenshot("map_unit_head")


def test_map_on_a_phone(phone):
    phone.login("inspector")
    phone.page.wait_for_selector(".leaflet-container")
    box = phone.page.locator(".leaflet-container").bounding_box()
    assert box["width"] >= 380 and box["height"] > 400
    phone.screenshot("map_phone")
