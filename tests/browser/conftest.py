"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Every test fails if any request leaves 127.0.0.1: the county's intranet has no internet.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture(scope="session")
def live_server(demo_app):
    """Serve the demo app on a free loopback port in a background thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, demo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (apt-get install chromium); .ci/run does it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


class Page:
    """A Playwright page that records every request that is not to 127.0.0.1."""

    def __init__(self, context, base_url: str):
        self.context = context
        self.base_url = base_url
        self.outside: list[str] = []
        self.page = context.new_page()
        context.route("**/*", self._guard)

    def _guard(self, route):
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def login(self, username: str, password: str = "demo1234") -> None:
        self.page.goto(f"{self.base_url}/login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture()
def web(browser, live_server):
    context = browser.new_context(viewport={"width": 1366, "height": 860}, locale="zh-CN")
    page = Page(context, live_server)
    yield page
    context.close()
    assert page.outside == [], f"requests left 127.0.0.1: {page.outside}"


@pytest.fixture()
def phone(browser, live_server):
    context = browser.new_context(viewport={"width": 390, "height": 800}, locale="zh-CN",
                                  is_mobile=True, has_touch=True, device_scale_factor=2)
    page = Page(context, live_server)
    yield page
    context.close()
    assert page.outside == [], f"requests left 127.0.0.1: {page.outside}"
