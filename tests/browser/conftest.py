"""Browser tests: Playwright (the PyPI package) drives Debian's Chromium, headless, on loopback only.

Playwright never downloads a browser here: `make up` installs Debian's chromium when it is missing
(deploy/local/chromium.sh) and env.sh sets PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1. Every test gets a fresh
profile (a persistent context in its own temporary folder), a 1366x768 window and a guard that refuses any
request leaving the machine: the pages under test must load every asset from the project itself.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, Playwright, Route, async_playwright, expect

from shared.testing import ROOT

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}
SCREENSHOTS = Path(os.environ.get("MEDASSIST_RUN_DIR", ROOT / ".run")) / "screenshots"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# A shared 2-core machine: every expectation polls for its condition for up to 30 s, never a fixed sleep.
expect.set_options(timeout=30_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)  # they start services: not part of `make test-unit`


class OffMachineRequests(list[str]):
    """The URLs a page tried to fetch from outside the machine (each one refused)."""


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make up` as root, or apt-get install chromium")
    async with async_playwright() as pw:
        yield pw


@pytest.fixture
def off_machine() -> OffMachineRequests:
    return OffMachineRequests()


@pytest.fixture
async def browser(playwright: Playwright, tmp_path: Path, off_machine: OffMachineRequests
                  ) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile; a request to anything but loopback is aborted and recorded in `off_machine`."""
    context = await playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(30_000)  # a shared 2-core machine: generous waits, always on a condition

    async def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:", "about:")) or host in _LOOPBACK:
            await route.continue_()
        else:
            off_machine.append(route.request.url)
            await route.abort("addressunreachable")

    await context.route("**/*", guard)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(browser: BrowserContext) -> Page:
    return browser.pages[0] if browser.pages else await browser.new_page()


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-window PNG under .run/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
