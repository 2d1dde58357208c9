"""Grid assignment and 责任片区 in a real browser: click-to-pick cells, phone layout."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Cell

pytestmark = pytest.mark.browser


def _active_grid_id(demo_app) -> int:
    from app.services.grids.cells import active_grid

    with demo_app.app_context():
        return active_grid(db.session).id


def test_click_cells_to_pick_and_assign(web, demo_app):
    grid_id = _active_grid_id(demo_app)
    web.login("admin")
    page = web.page
    page.goto(f"{web.base_url}/grids/{grid_id}/assign")
    page.wait_for_selector(".leaflet-container")
    page.wait_for_load_state("networkidle")
    layer = page.get_attribute("#cell-picker", "data-layer")
    # Pick a cell wholly in view and a point inside it (a cell's box centre can fall in
    # its neighbour), by its screen position like a user would.
    target = page.evaluate(
        """(name) => { const layer = window[name]; const map = layer._map;
        const inside = (p, ring) => { let c = false;
          for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
            const a = ring[i], b = ring[j];
            if ((a.lat > p.lat) !== (b.lat > p.lat) &&
                p.lng < (b.lng - a.lng) * (p.lat - a.lat) / (b.lat - a.lat) + a.lng) c = !c; }
          return c; };
        let pick = null, point = null;
        layer.eachLayer(l => {
          if (pick || !map.getBounds().contains(l.getBounds())) return;
          let ring = l.getLatLngs(); while (Array.isArray(ring[0])) ring = ring[0];
          const b = l.getBounds();
          for (let i = 1; i < 10 && !point; i++) for (let j = 1; j < 10 && !point; j++) {
            const p = L.latLng(b.getSouth() + (b.getNorth() - b.getSouth()) * i / 10,
                               b.getWest() + (b.getEast() - b.getWest()) * j / 10);
            if (inside(p, ring)) point = p; }
          if (point) pick = l; });
        const pt = map.latLngToContainerPoint(point);
        const box = map.getContainer().getBoundingClientRect();
        return {x: box.left + pt.x, y: box.top + pt.y, code: pick.feature.properties.code,
                unit: pick.feature.properties.unit}; }""",
        layer,
    )
    page.mouse.click(target["x"], target["y"])
    assert page.text_content("#picked-count") == "1"
    code = page.input_value("#picked-codes")
    assert code == target["code"]
    # A second click, later than a double-click would be, un-picks it.
    page.wait_for_timeout(700)
    page.mouse.click(target["x"], target["y"])
    assert page.text_content("#picked-count") == "0"
    page.wait_for_timeout(700)
    page.mouse.click(target["x"], target["y"])
    assert page.input_value("#picked-codes") == code
    # Hand it to the unit that already holds it, so the shared demo data stay as they were.
    with demo_app.app_context():
        cell = db.session.execute(
            select(Cell).where(Cell.grid_id == grid_id, Cell.code == code)
        ).scalar_one()
        unit_id = cell.unit_id
    if unit_id is None:
        pytest.skip("picked cell has no unit in the demo")
    page.select_option("select[name=unit_id]", str(unit_id))
    page.click("#cell-picker button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "已分配 1 个网格" in page.content()
    web.screenshot("grid_assign")


def test_unit_area_on_phone(phone, demo_app):
    phone.login("unit01")
    page = phone.page
    page.goto(f"{phone.base_url}/units/")
    page.wait_for_selector(".leaflet-container")
    assert page.locator(".area-facts div").count() == 4
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, "the 责任片区 page must not scroll sideways on a phone"
    phone.screenshot("unit_area_phone")
