"""Patrol planning and the printed sheet in a real browser (Chromium's own print to PDF)."""

import re

import pytest

pytestmark = pytest.mark.browser


def _plan_sample(web, seed: str = "7") -> str:
    """Plan a mock 暗访 patrol through the form; return the detail page's URL."""
    page = web.page
    page.goto(f"{web.base_url}/patrols/")
    page.wait_for_selector(".plan-map .leaflet-container")
    page.check("input[name=selection][value=sample]")
    page.fill("input[name=seed]", seed)
    page.fill("input[name=name]", "浏览器暗访测试")
    page.click("button[type=submit].primary")
    # Planning builds the road graph and cell locator on first use: allow for it.
    page.wait_for_url(re.compile(r"/patrols/\d+$"), timeout=90_000)
    page.wait_for_selector(".route-map .leaflet-container")
    return page.url


def test_plan_map_click_adds_a_stop(web):
    web.login("inspector")
    page = web.page
    page.goto(f"{web.base_url}/patrols/")
    page.wait_for_selector(".plan-map .leaflet-container")
    page.locator(".plan-map .leaflet-container").click(position={"x": 200, "y": 200})
    value = page.input_value("textarea[name=points]")
    lon, lat = (float(v) for v in value.strip().split(","))
    assert 103 < lon < 104 and 22 < lat < 23
    assert page.is_checked("input[name=selection][value=points]")


def test_print_page_screenshots_and_prints_to_pdf(web, tmp_path):
    web.login("inspector")
    _plan_sample(web)
    page = web.page
    stops = page.locator(".stops-table tbody tr").count()
    assert stops >= 10
    assert page.locator(".route-map .patrol-num").count() == stops
    web.screenshot("patrol_detail")

    page.click("text=打印巡查单")
    page.wait_for_url(re.compile(r"/patrols/\d+/print$"))
    page.wait_for_selector("svg.route-sketch")
    assert page.locator(".sheet-table tbody tr").count() == stops
    assert page.locator("svg.route-sketch .stop-mark").count() == stops
    web.screenshot("patrol_print")

    page.emulate_media(media="print")
    assert not page.locator(".sheet-tools").is_visible()  # no buttons on paper
    target = tmp_path / "sheet.pdf"
    data = page.pdf(path=str(target), format="A4", print_background=True)
    assert target.exists() and target.stat().st_size > 10_000
    assert data.startswith(b"%PDF")


def test_results_page_fits_a_phone(phone):
    phone.login("inspector")
    _plan_sample(phone, seed="8")
    page = phone.page
    page.click("text=录入巡查结果")
    page.wait_for_selector(".stop-card")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    box = page.locator(".result-choices .choice").first.bounding_box()
    assert box["height"] >= 40  # big enough to tap
    phone.screenshot("patrol_results_phone")
