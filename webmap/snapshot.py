"""PNG exports of pages for meetings: the township review rendered by headless Debian Chromium.

`review_png(db, user, unit, month, out)` serves the app in-process on a free loopback port, gives the
browser a one-day read-only API token of `user` (revoked afterwards), opens /review for the unit and
month, waits until every layer and table has arrived and writes a 1600×900 (or given) PNG.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from gis.errors import ConfigError, Unprocessable

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def review_png(db, user, unit: str, month: str, out, size=(1600, 900), settings=None) -> Path:
    """Render /review?unit=…&month=… as `user` into the PNG file `out`."""
    from urllib.parse import quote

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from cases.auth import create_token, list_tokens, revoke_token
    from cases.review import check_access, parse_period
    from gis.settings import Settings
    from webmap import create_app

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise ConfigError("chromium is not installed: apt-get install chromium")
    check_access(db, user, unit)
    parse_period(None, None, month)
    tok = create_token(db, user, "review-png", days=1, permissions=["read"])
    app = create_app(settings=settings or Settings(), db=db)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    out = Path(out)
    url = f"http://127.0.0.1:{srv.server_port}/review?unit={quote(unit)}&month={quote(month)}"
    failure: list[BaseException] = []

    def render():   # in its own thread: Playwright's sync API refuses to run inside another event loop
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
                try:
                    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="zh-CN",
                                              extra_http_headers={"Authorization": f"Bearer {tok['token']}"})
                    page = ctx.new_page()
                    page.goto(url)
                    page.wait_for_selector("body[data-ready]", timeout=120_000)
                    page.wait_for_timeout(800)   # heat canvas and chart animations settle
                    out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(out))
                finally:
                    browser.close()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(e)

    try:
        t = threading.Thread(target=render, name="review-png")
        t.start()
        t.join()
        if failure:
            e = failure[0]
            if isinstance(e, PlaywrightError):
                raise Unprocessable(f"the review page did not render: {str(e).splitlines()[0]}") from None
            raise e
    finally:
        srv.shutdown()
        for t in list_tokens(db, user):
            if t["name"] == "review-png" and not t["revoked"]:
                revoke_token(db, user, t["id"])
    return out
