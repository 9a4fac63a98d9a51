"""Browser harness for the surfaces: a live app on loopback and headless Debian Chromium driven by Playwright.

`live_app(db)` serves the app on a free loopback port; `browser` is one Chromium per test session
(Playwright's own browser download does not work here: we drive /usr/bin/chromium via executable_path);
`open_page(url, viewport=...)` opens a page that records console errors, page errors and every request
that tries to leave 127.0.0.1 (those are aborted and listed in `page.gg_external`).
"""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Debian's) for the session."""
    assert CHROMIUM, "chromium is not installed (./gridgov test installs it): browser tests never skip"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Open `url` in a fresh context; the page records errors and blocks requests leaving loopback."""
    contexts = []

    def _open(url: str, viewport=(1920, 1080), wait: str = "load", **ctx_kw):
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", **ctx_kw)
        contexts.append(ctx)
        page = ctx.new_page()
        page.gg_console_errors = []
        page.gg_external = []
        page.on("console", lambda m: m.type == "error" and page.gg_console_errors.append(m.text))
        page.on("pageerror", lambda e: page.gg_console_errors.append(str(e)))

        def guard(route):
            host = urlparse(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                page.gg_external.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        if url:
            page.goto(url, wait_until=wait)
        return page

    yield _open
    for ctx in contexts:
        ctx.close()


def login(page, base: str, username: str, password: str) -> dict:
    """Log `page`'s context in through the JSON API (cookie lands in the context)."""
    r = page.request.post(base + "/api/login", data={"username": username, "password": password},
                          headers={"Origin": base})
    assert r.ok, r.text()
    return r.json()
