"""The monthly 通报 in a real browser: local assets only, readable on a desktop and a phone."""

import pytest

pytestmark = pytest.mark.browser


def test_monthly_report_renders_offline(web):
    web.login("leader")
    page = web.page
    page.goto(f"{web.base_url}/reports/?month=2026-10")
    page.wait_for_selector(".leaflet-container")
    assert "2026年10月考核通报" in page.locator(".notice-head h1").inner_text()
    assert page.locator("table.ranking tbody tr").count() == 29
    assert page.locator("tr.row-black").count() == 3
    assert page.locator("svg.chart").count() == 2
    web.screenshot("report_monthly")


def test_monthly_report_on_a_phone_scrolls_the_table_not_the_page(phone):
    phone.login("unit02")
    page = phone.page
    page.goto(f"{phone.base_url}/reports/?month=2026-10")
    page.wait_for_selector("table.ranking")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, "the page itself must not scroll sideways on a phone"
    phone.screenshot("report_monthly_phone")
