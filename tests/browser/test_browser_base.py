"""The browser base itself: Debian's Chromium starts headless, renders a page from loopback, refuses the internet."""

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import Page

from tests.browser.conftest import VIEWPORT, OffMachineRequests, screenshot

PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>浏览器测试</title>
<body><h1>复核台 Review desk</h1><button id="go">确认 Confirm</button><p id="out"></p>
<img src="https://cdn.example.com/logo.png" alt="">
<script>document.getElementById('go').onclick = () => {
  document.getElementById('out').textContent = navigator.userAgent + ' ' + innerWidth + 'x' + innerHeight; };</script>
</body></html>"""


@pytest.fixture
def local_site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


async def test_chromium_renders_a_loopback_page_and_refuses_the_internet(
        page: Page, local_site: str, off_machine: OffMachineRequests) -> None:
    await page.goto(local_site)
    await page.keyboard.press("Tab")  # keyboard only: the button is the first thing focus reaches
    await page.keyboard.press("Enter")
    out = page.locator("#out")
    await out.wait_for()
    text = await out.text_content() or ""
    assert "HeadlessChrome" in text and f"{VIEWPORT['width']}x{VIEWPORT['height']}" in text
    for _ in range(100):
        if off_machine:
            break
        await asyncio.sleep(0.1)
    assert off_machine == ["https://cdn.example.com/logo.png"]
    path = await screenshot(page, "browser-base")
    assert path.stat().st_size > 1000
