"""The dashboard in a real browser: page load to chart drawn, bytes shipped, memory with it open.

Builds the household store of ``bench_store`` (one year of five registers at 10 s; the pages only
ask for recent periods, and ``bench_web`` shows the views cost the same on ten years) with
``bench_web``'s tariffs and events, then measures in one run, in Debian's headless Chromium driven
by Playwright:

* **page load**: each page opened by URL, ``--samples`` times cold (a new browser profile: nothing
  cached, logged in through the API first) and as many times warm (a new tab in the same
  profile: the files revalidated by ETag). Per load, from the navigation's start, the time to the
  page's data shown (the app's ``s0pcm:ready:<page>`` mark) and to its chart drawn (uPlot's first
  draw, ``s0pcm:chart``), beside the time its API requests took (first request sent to last
  answer received, from the browser's Resource Timing). "page / data" is how much longer the
  page took than the data it shows: loading and running the code, drawing. The server is the
  app as ``s0pcm serve`` runs it, in its own process, its clock at the end of the history.
* **bytes shipped**: every file of a cold load of all pages, as sent (gzip) and unpacked, from
  Resource Timing; our code, our styles and the vendored uPlot apart.
* **memory with the dashboard open**: the logger with the app in its loop (one process, as
  ``s0pcm run`` runs them) reading an emulated module (a record every 2 s) on a copy of the
  store: its RSS before any browser, then after a browser has opened every page and kept the live
  page open (its event stream) for 10 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS  # the browser as the tests run it

from bench.bench_store import REGISTERS, START, TZ, build, build_pool, percentile, quick_from_env
from bench.bench_web import prepare, rss_kib, server_process, write_config
from s0pcm.store.sqlite import SqliteStore
from s0pcm.web import set_password

PASSWORD: Final = "bench-page-password"  # noqa: S105 (a throwaway store's)
YEARS: Final = 1
FULL_SAMPLES, QUICK_SAMPLES = 20, 5
#: The crowd module of bench_web: a record every 2 s.
LIVE_INTERVAL: Final = 2.0
#: What the page reports after a load: marks and the API requests' span, in ms from navigation.
TIMINGS_JS: Final = """(page) => {
  const mark = (n) => performance.getEntriesByName(n)[0]?.startTime ?? null;
  const api = performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/'));
  const first = Math.min(...api.map((e) => e.startTime));
  const last = Math.max(...api.map((e) => e.responseEnd));
  return { ready: mark('s0pcm:ready:' + page), chart: mark('s0pcm:chart'),
           power: mark('s0pcm:power'), api: last - first };
}"""
FILES_JS: Final = """() => [
  ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource'),
].map((e) => ({ name: e.name, sent: e.encodedBodySize, size: e.decodedBodySize }))"""


#: What a page is timed to: its data shown, its chart drawn, or Live's power chart drawn.
WAIT: Final = {"ready": None, "chart": ".chart[data-drawn]", "power": "[data-power][data-drawn]"}


def pages(day: str) -> list[tuple[str, str, str]]:
    """(label, route, what it is timed to: a key of :data:`WAIT`) of each page measured,
    showing periods that end at ``day``."""
    return [
        ("live", "live", "ready"),
        ("live: power of the last 3 hours", "live", "power"),
        ("history: hours of a day", f"history?m=electricity&r=hour&d={day}", "chart"),
        ("history: days of a month", f"history?m=electricity&r=day&d={day}", "chart"),
        ("history: months of a year, compared",
         f"history?m=electricity&r=month&d={day}&c=1", "chart"),
        ("history: years", f"history?m=electricity&r=year&d={day}", "chart"),
        ("costs: days of a month", f"costs?r=day&d={day}", "chart"),
        ("device (health, events)", "device", "ready"),
    ]  # fmt: skip


def new_context(browser: Browser, url: str) -> BrowserContext:
    context = browser.new_context(
        locale="en-GB", timezone_id=str(TZ), viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(60_000)
    response = context.request.post(f"{url}/api/login", data={"password": PASSWORD})
    if not response.ok:
        raise RuntimeError(f"login: {response.status} {response.text()}")
    return context


def show(page: Page, url: str, route: str, key: str = "ready") -> str:
    """Go to ``route`` and wait for its data (and what ``key`` names); the page's name."""
    name = route.partition("?")[0]
    page.goto(f"{url}/#/{route}")
    page.wait_for_selector(f"main[data-ready='{name}']", state="attached")
    selector = WAIT[key]
    if selector is not None:
        page.wait_for_selector(selector, state="attached")
    return name


def load(context: BrowserContext, url: str, route: str, key: str) -> dict[str, float]:
    """Open ``route`` in a new tab of ``context``; its timings (ms)."""
    page = context.new_page()
    try:
        found: dict[str, float] = page.evaluate(TIMINGS_JS, show(page, url, route, key))
        return found
    finally:
        page.close()


def page_loads(browser: Browser, url: str, day: str, samples: int) -> list[list[str]]:
    """Per page: cold and warm p50/p95 to data shown and to chart drawn, and page / data."""
    rows = []
    for label, route, key in pages(day):
        cold: list[dict[str, float]] = []
        warm: list[dict[str, float]] = []
        for _ in range(samples):
            context = new_context(browser, url)
            try:
                cold.append(load(context, url, route, key))
                warm.append(load(context, url, route, key))
            finally:
                context.close()
        rows.append([
            label + {"chart": " (chart)", "power": " (chart)", "ready": " (data)"}[key],
            *(f"{v:.0f}" for v in _p50_p95([c[key] for c in cold])),
            *(f"{v:.0f}" for v in _p50_p95([w[key] for w in warm])),
            f"{statistics.median(w['api'] for w in warm):.1f}",
            f"{statistics.median(w[key] / w['api'] for w in warm):.1f}",
        ])  # fmt: skip
    return rows


def _p50_p95(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 0.95)


def bytes_shipped(browser: Browser, url: str, day: str) -> dict[str, tuple[int, int, int]]:
    """Per group of files: (files, bytes sent, bytes unpacked) over a cold load of every page."""
    context = new_context(browser, url)
    files: dict[str, tuple[int, int]] = {}
    try:
        page = context.new_page()
        for _, route, key in pages(day):
            show(page, url, route, key)
            for entry in page.evaluate(FILES_JS):
                path = entry["name"].removeprefix(url).split("?")[0].split("#")[0] or "/"
                if not path.startswith("/api/") and entry["sent"]:
                    files.setdefault(path, (entry["sent"], entry["size"]))
    finally:
        context.close()
    groups: dict[str, tuple[int, int, int]] = {}
    for path, (sent, size) in files.items():
        group = (
            "uPlot (vendored)" if "/vendor/" in path
            else "our JavaScript" if path.endswith(".js")
            else "our CSS" if path.endswith(".css")
            else "HTML and icon"
        )  # fmt: skip
        n, s, u = groups.get(group, (0, 0, 0))
        groups[group] = (n + 1, s + sent, u + size)
    return groups


def memory_with_dashboard(browser: Browser, directory: Path, day: str) -> tuple[int, int, int]:
    """RSS (KiB) of the logger+web process idle, with the dashboard open; its peak."""
    with server_process(directory, interval=LIVE_INTERVAL) as (url, pid):
        time.sleep(5.0)
        idle, _ = rss_kib(pid)
        context = new_context(browser, url)
        try:
            page = context.new_page()
            for _, route, key in [*pages(day)[1:], pages(day)[0]]:
                show(page, url, route, key)
            page.wait_for_selector("[data-live-status][data-updates]", state="attached")
            time.sleep(10.0)
            open_rss, hwm = rss_kib(pid)
        finally:
            context.close()
    return idle, open_rss, hwm


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(row, widths, strict=True))))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_page", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SAMPLES} loads a page")
    parser.add_argument("--samples", type=int, default=None, help="loads per page and cache state")
    args = parser.parse_args(argv if argv is not None else [])
    samples = args.samples or (QUICK_SAMPLES if args.quick or quick_from_env() else FULL_SAMPLES)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    first_hour = int(START.timestamp()) // 3600
    end_hour = int(START.replace(year=START.year + YEARS).timestamp()) // 3600
    end = end_hour * 3600.0
    day = datetime.fromtimestamp(end - 3600, TZ).date().isoformat()
    with tempfile.TemporaryDirectory(prefix="s0pcm-bench-page-") as tmp:
        work = Path(tmp)
        database = work / "history.db"
        build(database, build_pool(), first_hour, end_hour)
        prepare(database, first_hour, end_hour)
        with SqliteStore(database, tz=TZ) as store:
            set_password(store, PASSWORD)
        write_config(work, database)
        live = work / "live"
        live.mkdir()
        shutil.copy(database, live / "history.db")
        write_config(live, live / "history.db")
        print(
            f"{YEARS} year x {len(REGISTERS)} registers at 10 s, pages showing periods up to "
            f"{day}; Chromium {CHROMIUM}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs"
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                with server_process(work, now=end) as (url, _):
                    load(new_context(browser, url), url, "live", "ready")  # first start-up costs
                    rows = page_loads(browser, url, day, samples)
                    groups = bytes_shipped(browser, url, day)
                idle, open_rss, hwm = memory_with_dashboard(browser, live, day)
            finally:
                browser.close()
    print(f"\npage load, ms from navigation start ({samples} loads each, cold and warm)")
    table(["page (until)", "cold p50", "p95", "warm p50", "p95", "API ms", "page / data"], rows)
    print("\nbytes shipped for every page (cold load)")
    total = [0, 0, 0]
    group_rows = []
    for group, (n, sent, size) in sorted(groups.items()):
        group_rows.append([group, str(n), f"{sent:,}", f"{size:,}", f"{size / max(sent, 1):.1f}"])
        total = [total[0] + n, total[1] + sent, total[2] + size]
    group_rows.append(["total", str(total[0]), f"{total[1]:,}", f"{total[2]:,}",
                       f"{total[2] / max(total[1], 1):.1f}"])  # fmt: skip
    table(["files", "n", "sent (gzip)", "unpacked", "ratio"], group_rows)
    print(
        f"\nlogger+web process RSS: {idle / 1024:.1f} MiB before any browser, "
        f"{open_rss / 1024:.1f} MiB with the dashboard open (every page, then live for 10 s; "
        f"peak {hwm / 1024:.1f} MiB); ratio open / idle {open_rss / idle:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
