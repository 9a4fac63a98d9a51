"""Screenshots of the grid officer's phone page (/m) at 390×844 against a served demo (not a test).

    DATABASE_URL=... GRIDGOV_PORT=5102 ./gridgov serve &
    .venv/bin/python -m bench.screens_mobile --base http://127.0.0.1:5102 --user officer

Writes docs/screenshot-mobile.png (the list) and docs/screenshot-mobile-case.png (the most urgent case).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="http://127.0.0.1:5102")
    ap.add_argument("--user", default="officer")
    ap.add_argument("--password", default="gridgov2026")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--case", type=int, help="case id for the detail shot (default: the first of the list)")
    ap.add_argument("--full", action="store_true", help="full-page shots instead of the 390×844 viewport")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(a.out)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=ARGS)
        ctx = b.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN",
                            timezone_id="Asia/Shanghai", is_mobile=True, has_touch=True)
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("response", lambda r: r.status >= 400 and errors.append(f"{r.status} {r.url}"))
        page.goto(a.base + "/m")
        page.fill("#login-user", a.user)
        page.fill("#login-pass", a.password)
        page.click("#login-submit")
        page.wait_for_selector(".m-item, .m-empty")
        page.wait_for_timeout(600)
        page.screenshot(path=str(out / "screenshot-mobile.png"), full_page=a.full)
        case_id = a.case
        if not case_id:  # the most urgent case the officer can act on (else the first of the list)
            cases = page.request.get(a.base + "/api/cases?open=1&limit=500").json()["cases"]
            workable = [c for c in cases if c["status"] in ("dispatched", "signed", "handling")
                        and c["handling_level"] in ("grid", "village")]
            case_id = (workable or cases)[0]["id"]
        page.goto(f"{a.base}/m#/case/{case_id}")
        page.wait_for_selector("#case-title")
        page.wait_for_timeout(1200)
        page.screenshot(path=str(out / "screenshot-mobile-case.png"), full_page=a.full)
        print("scrollWidth", page.evaluate("document.documentElement.scrollWidth"), "console errors", errors)
        b.close()


if __name__ == "__main__":
    main()
