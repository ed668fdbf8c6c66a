"""Load time of an admin UI page in Debian's chromium (Playwright, headless).

`page_load(url, password, route)` logs in once, then opens `url/route` `runs` times in
a fresh navigation and reads the browser's own clocks (ms from navigation start):

- `first_paint`: first contentful paint (the page frame, title, buttons);
- `api`: when the page's main list action answered (resource timing of its request);
- `ready`: when the page drew its content (the `ready:<route>` mark app.js sets);
- `ui`: ready minus api, the browser's own share (parse the JSON, build the table).

Used by the API bench for the Addresses page with 10,000 addresses; runnable alone against
a running `mailctl serve`:  .venv/bin/python bench/ui_paint.py URL PASSWORD [ROUTE] [ACTION]
"""

from __future__ import annotations

import statistics
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMINGS = """([route, action]) => {
  const api = performance.getEntriesByType('resource').filter((e) => e.name.endsWith(`/api/actions/${action}`));
  return {
    first_paint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    api: api.length ? api[api.length - 1].responseEnd : null,
    ready: performance.getEntriesByName(`ready:${route}`)[0]?.startTime ?? null,
  };
}"""


def page_load(url: str, password: str, route: str = "addresses", action: str = "list-addresses",
              runs: int = 5, timeout_ms: int = 120_000) -> list[dict[str, float]]:
    """Timings of `runs` loads of one page, each a dict of ms (see the module docstring)."""
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(timeout_ms)
        page = context.new_page()
        page.goto(f"{url}/")
        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#main[data-ready]")
        for _ in range(runs):
            page.goto(f"{url}/{route}")
            page.wait_for_selector(f"#main[data-ready='{route}']")
            t = page.evaluate(TIMINGS, [route, action])
            t["ui"] = t["ready"] - t["api"] if t["ready"] is not None and t["api"] is not None else None
            results.append(t)
        browser.close()
    return results


def median(results: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(results: list[dict[str, float]]) -> str:
    """One line: the medians of each timing."""
    return "  ".join(f"{k} {median(results, k):.0f} ms" for k in ("first_paint", "api", "ready", "ui")
                     if median(results, k) is not None)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    timings = page_load(sys.argv[1], sys.argv[2], *sys.argv[3:5])
    print(f"{sys.argv[3] if len(sys.argv) > 3 else 'addresses'} page, median of {len(timings)}: {report(timings)}")
