"""The dashboard in a real browser: headless Chromium (Debian's) against real servers.

Pages are checked against the store itself (history totals), against the running logger and
emulator (live values, thresholds confirmed by the module's start-up header), in English and
Dutch, on a phone-sized screen; screenshots of every page go to ``docs/screenshots/``.

CI installs the Debian package ``chromium``; without it these tests fail (they never skip).
Nothing here waits a fixed time: every wait is for a condition, with generous timeouts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from s0pcm.calendar import Resolution
from s0pcm.emulator import Fault, Source, household
from s0pcm.store import Anchor, AnchorKind, open_store
from s0pcm.tools.backfill import backfill
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.mqtt import Broker
from tests.helpers.web import (
    METERS,
    NOW,
    TARIFFS,
    TZ,
    History,
    WebServer,
    copy_history,
    history_server,
    live_server,
    login,
)

SCREENSHOTS: Final = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGES: Final = ("live", "history", "costs", "device", "settings")
#: Generous: a slow CI machine, a Raspberry Pi.
WAIT: Final = 20_000
expect.set_options(timeout=WAIT)
DESKTOP: Final = {"width": 1280, "height": 800}
PHONE: Final = {"width": 375, "height": 740}


# -- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests need Debian's Chromium "
            "(apt-get install chromium)",
            pytrace=False,
        )
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A fresh profile in the logger's time zone, English unless said otherwise."""
    settings: dict[str, Any] = {"locale": "en-GB", "timezone_id": str(TZ), "viewport": DESKTOP}
    settings.update(options)
    context = browser.new_context(**settings)
    context.set_default_timeout(WAIT)
    return context


#: Script errors and console errors per page (a refused request shows as a console error too).
ERRORS: dict[Page, list[str]] = {}


def open_page(context: BrowserContext, *, at: float | None = None) -> Page:
    """A page whose script errors :func:`no_errors` reports; ``at`` fixes the browser's clock
    (the history servers' "now")."""
    page = context.new_page()
    errors = ERRORS.setdefault(page, [])
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    if at is not None:
        page.clock.set_fixed_time(at)
    return page


def no_errors(page: Page) -> None:
    errors = ERRORS.pop(page, [])
    assert not errors, errors


def log_in(context: BrowserContext, server: WebServer) -> str:
    """Log the browser profile in through the API (the session cookie is the profile's);
    returns the CSRF token."""
    response = context.request.post(f"{server.url}/api/login", data={"password": server.password})
    assert response.ok, response.text()
    csrf: str = response.json()["csrf"]
    return csrf


def show(page: Page, server: WebServer, route: str) -> None:
    """Open ``#/route`` and wait until the page has loaded its data."""
    page.goto(f"{server.url}/#/{route}")
    name = route.partition("?")[0]
    expect(page.locator(f"main[data-ready='{name}']")).to_be_attached()


def number(text: str) -> float:
    """The first number in ``text`` as shown in English (1,234.5)."""
    found = re.search(r"-?[\d,]+(?:\.\d+)?", text)
    assert found, text
    return float(found.group().replace(",", ""))


# -- live ------------------------------------------------------------------------------------------


def test_live_values_follow_the_module(browser: Browser, live_server: WebServer) -> None:
    """Each telegram updates the reading; the rate is a number while the module is there and
    "unavailable" (not 0) while it is unplugged."""
    live_server.rates[0] = 4.0  # register 1, "power": 4 pulses/s at 1000/kWh is 14.4 kW
    context = new_context(browser)
    log_in(context, live_server)
    page = open_page(context)
    show(page, live_server, "live")
    card = page.locator("[data-meter='power']")
    reading = card.locator("[data-reading]")
    expect(reading).to_have_attribute("data-reading", re.compile(r"\d"))
    first = reading.inner_text()
    expect(reading).not_to_have_text(first)  # an emulated telegram arrived and was counted
    expect(page.locator("[data-live-status]")).to_have_attribute("data-updates", re.compile(r"\d"))
    rate = card.locator("[data-rate]")
    expect(rate).to_have_text(re.compile(r"^[\d,.]+ W$"))
    page.wait_for_function(  # settles near 14.4 kW
        "e => e.dataset.rate !== '' && +e.dataset.rate > 10000 && +e.dataset.rate < 20000",
        arg=rate.element_handle(),
    )
    assert 10000 < number(rate.inner_text()) < 20000

    assert live_server.emulator is not None
    live_server.emulator.request(Fault.UNPLUG, duration=3.0)
    expect(rate).to_have_text("unavailable")
    expect(rate).to_have_attribute("data-rate", "")
    expect(rate).to_have_text(re.compile(r"^[\d,.]+ W$"), timeout=40_000)  # plugged back in
    no_errors(page)
    context.close()


def test_live_says_what_is_wrong_and_what_is_only_quiet(
    browser: Browser, live_server: WebServer
) -> None:
    """A fresh logger on its first day: no "yesterday" to compare with (no data, not 0); a
    meter without pulses is quiet ("no flow since"), not "unavailable"; whole litres have no
    decimals; an unplugged module is a banner that says so, gone when it is back."""
    live_server.rates[0] = 4.0  # power flows; gas and water stay quiet
    context = new_context(browser)
    log_in(context, live_server)
    page = open_page(context)
    show(page, live_server, "live")
    power, gas, water = (page.locator(f"[data-meter='{k}']") for k in ("power", "kast.2", "water"))
    expect(power.locator("[data-rate]")).to_have_text(re.compile(r"^[\d,.]+ W$"))
    expect(power.locator("[data-yday]")).to_have_text("No data yet")
    expect(gas.locator("[data-rate]")).to_have_text(re.compile(r"^No flow since \d\d:\d\d$"))
    expect(gas.locator("[data-rate]")).to_have_attribute("data-quiet", "true")
    expect(water.locator("[data-reading]")).to_have_text(re.compile(r"^\d+ L$"))
    expect(page.locator("[data-banner]")).to_have_count(0)

    assert live_server.emulator is not None
    live_server.emulator.request(Fault.UNPLUG, duration=4.0)
    banner = page.locator("[data-banner='unplugged']")
    expect(banner).to_contain_text("Module kast is not connected")
    expect(banner).to_contain_text("Nothing is lost")
    expect(power.locator("[data-rate]")).to_have_text("unavailable")  # not "quiet"
    expect(banner).to_have_count(0, timeout=40_000)  # plugged back in
    no_errors(page)
    context.close()


def test_live_power_over_the_last_hours(browser: Browser, live_server: WebServer) -> None:
    """Live draws the power and flow of the last hours (a point per record, from the logger's
    own rates) and keeps drawing as records come; /api/power holds the same points."""
    live_server.rates[0] = 4.0
    context = new_context(browser)
    log_in(context, live_server)
    page = open_page(context)
    show(page, live_server, "live")
    chart = page.locator("[data-power]")
    expect(chart).to_have_attribute("data-drawn", "1")
    first = int(chart.get_attribute("data-points") or 0)
    page.wait_for_function(
        "([e, n]) => +e.dataset.points > n + 5", arg=[chart.element_handle(), first]
    )
    expect(chart.locator(".u-legend")).to_contain_text("Power")
    doc = context.request.get(f"{live_server.url}/api/power?hours=1").json()
    watts = [v for _, v in next(m for m in doc["meters"] if m["key"] == "power")["points"]]
    assert len(watts) > 5
    known = [v for v in watts if v is not None][-5:]  # (the first records were before 4 /s)
    assert 10000 < sorted(known)[2] < 20000  # 14.4 kW, as on the card
    no_errors(page)
    context.close()


def test_live_without_records_says_the_logger_is_not_running(
    browser: Browser, web_history: History, tmp_path: Path
) -> None:
    """The dashboard alone (s0pcm serve), three hours after the last record: a banner asks
    whether the logger runs, instead of showing old numbers as if they were live."""
    later = dataclasses.replace(copy_history(web_history, tmp_path), now=NOW + 3 * 3600)
    with history_server(later) as server:
        context = new_context(browser)
        log_in(context, server)
        page = open_page(context, at=later.now)
        show(page, server, "live")
        banner = page.locator("[data-banner='nologger']")
        expect(banner).to_contain_text("No records since")
        expect(banner).to_contain_text("is the logger (s0pcm run) running?")
        no_errors(page)
        context.close()
    with history_server(web_history) as fresh:  # a record 4 s ago: no banner
        context = new_context(browser)
        log_in(context, fresh)
        page = open_page(context, at=NOW)
        show(page, fresh, "live")
        expect(page.locator("[data-live-status]")).to_contain_text("Showing what the logger")
        expect(page.locator("[data-banner]")).to_have_count(0)
        context.close()


def test_the_demo_is_a_priced_household(browser: Browser, tmp_path: Path) -> None:
    """`s0pcm demo` as a new user runs it: a Dutch contract is in place, so Live's costs and
    the Costs page are priced from the first day of its history (no "no tariffs" hint); its
    solar roof is a production meter with a feed-in tariff."""
    with running_demo(tmp_path, days=3) as url:
        context = new_context(browser)
        page = open_page(context)
        page.goto(f"{url}/#/live")
        today = page.locator("[data-summary='today'] .big")
        expect(today).to_have_text(re.compile(r"^€\s?[\d,.]+$"))
        year = page.locator("[data-summary='year'] .big")
        expect(year).to_have_text(re.compile(r"^€\s?[\d,.]+$"))
        page.goto(f"{url}/#/costs")
        expect(page.locator("main[data-ready='costs']")).to_be_attached()
        expect(page.locator("[data-total]")).to_have_text(re.compile(r"^€\s?[\d,.]+$"))
        expect(page.locator("[data-notariff]")).to_have_count(0)
        tariffs = context.request.get(f"{url}/api/tariffs").json()["tariffs"]
        assert {(t["kind"], t["direction"]) for t in tariffs} == {
            ("electricity", "consumption"), ("gas", "consumption"), ("water", "consumption"),
            ("electricity", "production"),  # the solar roof's feed-in compensation
        }  # fmt: skip
        # The solar inverter: a production meter, its production and compensation apart.
        breakdown = page.locator("section.costs table.breakdown")
        expect(breakdown.locator("tr[data-kind='electricity'] [data-produced]")).to_have_text(
            re.compile(r"kWh$")
        )
        page.goto(f"{url}/#/live")
        expect(page.locator("[data-meter='solar'][data-direction='production']")).to_be_visible()
        expect(page.locator("[data-summary='year'] li[data-produced]")).to_be_visible()
        no_errors(page)
        context.close()


@contextlib.contextmanager
def running_demo(tmp_path: Path, *, days: int) -> Iterator[str]:
    """`s0pcm demo` as a new user runs it (``days`` of history, a record every 0.5 s), until
    its dashboard is up; its URL."""
    import subprocess
    import sys

    from tests.helpers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "s0pcm", "demo", "--port", str(port), "--interval", "0.5",
         "--days", str(days), "--duration", "300", "--data", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Dashboard:"):
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_costs_without_tariffs_say_where_to_add_them(
    browser: Browser, web_history: History, tmp_path: Path
) -> None:
    fresh = copy_history(web_history, tmp_path)
    with open_store(str(fresh.database), tz=TZ) as store:
        store.set_state("_tariffs", {"currency": "EUR", "tariffs": []})
        store.commit()
    with history_server(fresh) as server:
        context = new_context(browser)
        log_in(context, server)
        page = open_page(context, at=NOW)
        show(page, server, "costs")
        expect(page.locator("[data-notariff]")).to_contain_text("No tariffs yet")
        no_errors(page)
        context.close()


# -- history ---------------------------------------------------------------------------------------

#: Resolution, a day in the period shown, buckets expected: the 23-hour day of the spring DST
#: change, March (31 days), 2026 (12 months), 2017-2026.
VIEWS: Final = [
    ("hour", "2026-03-29", 23),
    ("day", "2026-03-10", 31),
    ("month", "2026-02-01", 12),
    ("year", "2026-01-01", 10),
]


@pytest.fixture(scope="module")
def history_context(browser: Browser, web_server: WebServer) -> Iterator[BrowserContext]:
    context = new_context(browser)
    log_in(context, web_server)
    yield context
    context.close()


@pytest.mark.parametrize(("res", "day", "count"), VIEWS, ids=[v[0] for v in VIEWS])
def test_history_shows_what_the_store_holds(
    history_context: BrowserContext,
    web_server: WebServer,
    web_history: History,
    res: str,
    day: str,
    count: int,
) -> None:
    page = open_page(history_context, at=NOW)
    show(page, web_server, f"history?m=power&r={res}&d={day}&c=1")
    section = page.locator("section.hist:not([aria-busy])")
    expect(section.locator(".chart canvas")).to_be_attached()  # uPlot drew the chart
    start = float(section.get_attribute("data-start") or "nan")
    end = float(section.get_attribute("data-end") or "nan")
    with web_history.open() as store:
        series = store.series("power", start, end, Resolution(res))
        since = store.since("power")
    assert since is not None
    # The year view starts at the year logging began (not ten years back); every other view
    # keeps its whole axis. Rows are the buckets with data: none before logging or after now.
    assert len(series) == (1 if res == "year" else count)
    ends = [t for t, _ in series[1:]] + [end]
    data = [(t, n) for (t, n), e in zip(series, ends, strict=True) if t < NOW and e > since]
    rows = section.locator("table.data > tbody > tr")
    expect(rows).to_have_count(len(data))
    shown = [int(p or 0) for p in rows.evaluate_all("rs => rs.map(r => r.dataset.pulses)")]
    assert shown == [pulses for _, pulses in data]
    total = section.locator("[data-total]")
    pulses = sum(p for _, p in series)
    assert pulses > 0
    assert int(total.get_attribute("data-pulses") or -1) == pulses
    ppu = METERS["power"][3]
    assert number(total.inner_text()) == pytest.approx(pulses / ppu, abs=0.6)
    assert total.inner_text().endswith("kWh")
    # The readings at the period's boundaries, and the previous period beside it.
    r_start = float(
        section.locator("[data-reading-start]").get_attribute("data-reading-start") or 0
    )
    r_end = float(section.locator("[data-reading-end]").get_attribute("data-reading-end") or 0)
    if res in ("hour", "day"):
        with web_history.open() as store:
            assert r_end == pytest.approx(store.reading_at("power", min(end, NOW)) or 0, abs=1e-6)
            assert r_start == pytest.approx(store.reading_at("power", start) or 0, abs=1e-6)
    # The previous period: a number where it has data, "No data" (never 0) before logging.
    prev = section.locator("[data-prev-total]")
    expect(prev).to_have_text(re.compile(r"kWh$" if res in ("hour", "day") else r"^No data$"))
    expect(section.locator(".u-legend .u-series")).to_have_count(3)  # x, this and previous
    no_errors(page)
    page.close()


def test_history_navigates_and_totals_per_kind(
    history_context: BrowserContext, web_server: WebServer, web_history: History
) -> None:
    """Previous / next move by a period; "per kind" totals all meters of a kind (gas here)."""
    page = open_page(history_context, at=NOW)
    show(page, web_server, "history?m=kind:gas&r=day&d=2026-03-30")
    title = page.locator(".ptitle")
    expect(title).to_have_text("March 2026")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()  # the future
    page.get_by_role("button", name="Previous").click()
    expect(title).to_have_text("February 2026")
    section = page.locator("section.hist:not([aria-busy])")
    # Logging began on 13 February: the days before it are no data, not rows of zeros.
    began = datetime.fromtimestamp(web_history.start, TZ)
    expect(section.locator("[data-began]")).to_contain_text(f"{began.day} February 2026")
    expect(section.locator("table.data > tbody > tr")).to_have_count(28 - began.day + 1)
    start = float(section.get_attribute("data-start") or "nan")
    end = float(section.get_attribute("data-end") or "nan")
    with web_history.open() as store:
        pulses = store.pulses("kast.2", start, end)
    value = float(section.locator("[data-total]").get_attribute("data-value") or "nan")
    assert value == pytest.approx(pulses / METERS["kast.2"][3], abs=1e-6)
    assert "#/history?" in page.url
    assert "d=2026-02" in page.url
    page.go_back()
    expect(title).to_have_text("March 2026")
    no_errors(page)
    page.close()


def test_history_opens_on_last_month_in_a_months_first_days(
    history_context: BrowserContext, web_server: WebServer
) -> None:
    """On 3 March the month so far is two bars: History opens on February (logged since the
    13th), and "Latest" goes to March; from the 7th on it opens on the month itself."""
    early = datetime(2026, 3, 3, 12, tzinfo=TZ).timestamp()
    for at, title in ((early, "February 2026"), (NOW, "March 2026")):
        page = open_page(history_context, at=at)
        show(page, web_server, "history")
        expect(page.locator(".ptitle")).to_have_text(title)
        if at == early:
            page.get_by_role("button", name="Latest").click()
            expect(page.locator(".ptitle")).to_have_text("March 2026")
            show(page, web_server, "history?r=hour")  # other views open on today
            expect(page.locator(".ptitle")).to_have_text("Tuesday, 3 March 2026")
        no_errors(page)
        page.close()


def test_history_compares_with_the_same_period_last_year(
    history_context: BrowserContext, web_server: WebServer
) -> None:
    """March against last March (not February), named so; before logging began that is no
    data, never zero; choosing "the previous period" goes back to February."""
    page = open_page(history_context, at=NOW)
    show(page, web_server, "history?m=power&r=day&d=2026-03-10")
    page.locator("[data-compare]").select_option("y")
    section = page.locator("section.hist:not([aria-busy])")
    expect(section.locator(".u-legend")).to_contain_text("March 2025")
    expect(section.locator("dl.totals")).to_contain_text("March 2025")
    expect(section.locator("[data-prev-total]")).to_have_text("No data")
    assert "c=y" in page.url
    page.locator("[data-compare]").select_option("1")
    expect(section.locator(".u-legend")).to_contain_text("February 2026")
    expect(section.locator("[data-prev-total]")).to_have_text(re.compile(r"kWh$"))
    no_errors(page)
    page.close()


def test_history_downloads_the_csv_that_s0pcm_export_writes(
    history_context: BrowserContext, web_server: WebServer, web_history: History
) -> None:
    """The period on screen as CSV: byte for byte what `s0pcm export` writes, its pulses the
    store's, no rows before logging began (13 February); and the readings per month."""
    import csv
    import io

    from click.testing import CliRunner

    from s0pcm.cli import main

    page = open_page(history_context, at=NOW)
    show(page, web_server, "history?m=power&r=day&d=2026-02-15")
    with page.expect_download() as got:
        page.locator("[data-download='csv']").click()
    download = got.value
    assert download.suggested_filename == "s0pcm-power-day-2026-02-01.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["export", "--config", str(web_history.config_path), "--meter", "power",
         "--from", "2026-02-01", "--to", "2026-03-01", "--resolution", "day"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert text.replace("\r\n", "\n") == result.output.replace("\r\n", "\n")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    began = datetime.fromtimestamp(web_history.start, TZ)
    assert rows[0][0].startswith(f"2026-02-{began.day:02}")
    with web_history.open() as store:
        first = datetime(2026, 2, began.day, tzinfo=TZ).timestamp()
        series = store.series("power", first, datetime(2026, 3, 1, tzinfo=TZ).timestamp(),
                              Resolution.DAY)  # fmt: skip
    assert [int(r[1]) for r in rows] == [n for _, n in series]
    with page.expect_download() as got:
        page.locator("[data-download='readings']").click()
    months = list(csv.reader(io.StringIO(Path(got.value.path()).read_text())))[1:]
    assert [r[0][:7] for r in months] == ["2026-02", "2026-03"]  # logged months, up to now
    no_errors(page)
    page.close()


def test_costs_show_the_servers_costs(
    history_context: BrowserContext, web_server: WebServer
) -> None:
    page = open_page(history_context, at=NOW)
    show(page, web_server, "costs?r=day&d=2026-03-30")
    section = page.locator("section.costs")
    expect(section.locator(".chart canvas")).to_be_attached()
    start, end = section.get_attribute("data-start"), section.get_attribute("data-end")
    doc = history_context.request.get(
        f"{web_server.url}/api/costs?start={start}&end={end}&resolution=day"
    ).json()
    total = sum(b["total"] or 0 for b in doc["buckets"] if b["start"] <= NOW)
    shown = section.locator("[data-total]")
    assert float(shown.get_attribute("data-total") or "nan") == pytest.approx(total, abs=1e-6)
    assert number(shown.inner_text().replace("€", "")) == pytest.approx(total, abs=0.006)
    gas = section.locator("tr[data-kind='gas'] [data-cost]")
    assert float(gas.get_attribute("data-cost") or "nan") > 0
    expect(section.locator("tr[data-kind='water']")).to_contain_text("\N{EN DASH}")  # no tariff
    no_errors(page)
    page.close()


FEED_IN: Final = {
    "kind": "electricity", "direction": "production", "valid_from": "2026-03-01",
    "valid_to": None, "fixed_per_day": 0.0,
    "periods": [{"name": "all", "days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00",
                 "price": 0.08}],
}  # fmt: skip


def test_a_production_meter_and_net_consumption(
    browser: Browser, web_history: History, tmp_path: Path
) -> None:
    """A solar inverter's meter (set to production in Settings) is a production card on Live;
    Live's summary and the Costs page show what it made and earned apart, and the net; History
    has the net per kind, equal to the server's. In English and in Dutch, with no English left."""
    fresh = copy_history(web_history, tmp_path)
    with open_store(str(fresh.database), tz=TZ) as store:
        store.set_state("_tariffs", {**TARIFFS, "tariffs": [*TARIFFS["tariffs"], FEED_IN]})
        store.commit()
    with history_server(fresh) as server:
        context = new_context(browser)
        log_in(context, server)
        page = open_page(context, at=NOW)
        show(page, server, "settings")
        form = page.locator("form.meterset[data-meter='spare']")
        form.get_by_label("Kind").select_option("electricity")
        form.locator("[data-direction]").select_option("production")
        form.get_by_label("Enabled").check()
        form.get_by_role("button", name="Save").click()
        expect(form.locator(".msg")).to_have_text("Saved.")
        feed_in = page.locator("form[data-tariffs] fieldset.k-production")
        expect(feed_in.locator("legend")).to_have_text("Electricity (feed-in) 2026-03-01")
        expect(feed_in.locator("[data-tariff-direction]")).to_have_value("production")
        show(page, server, "live")
        card = page.locator("[data-meter='spare']")
        expect(card).to_have_attribute("data-direction", "production")
        expect(card.locator(".sub")).to_contain_text("production")
        month = page.locator("[data-summary='month'] li[data-produced]")
        expect(month).to_contain_text("Electricity, produced")
        expect(month).to_contain_text(re.compile("[-\N{MINUS SIGN}]€"))  # what it earned, taken off
        march = {"start": datetime(2026, 3, 1, tzinfo=TZ).timestamp(),
                 "end": datetime(2026, 4, 1, tzinfo=TZ).timestamp()}  # fmt: skip
        doc = context.request.get(
            f"{server.url}/api/costs?start={march['start']}&end={march['end']}&resolution=day"
        ).json()
        days = [b["by_kind"]["electricity"] for b in doc["buckets"] if b["start"] <= NOW]
        net = sum(d["net"] for d in days if d["net"] is not None)
        earned = sum(d["compensation"] or 0 for d in days)
        assert earned > 0
        assert net < sum(d["value"] or 0 for d in days)
        show(page, server, "costs?r=day&d=2026-03-30")
        row = page.locator("section.costs tr[data-kind='electricity']")
        assert float(row.locator("[data-net]").get_attribute("data-net") or "nan") == (
            pytest.approx(net, abs=1e-6)
        )
        comp = float(row.locator("[data-compensation]").get_attribute("data-compensation") or "0")
        assert comp == pytest.approx(earned, abs=1e-6)
        expect(page.locator("section.costs table.breakdown thead")).to_contain_text(
            "Feed-in compensation"
        )
        show(page, server, "history?m=net:electricity&r=day&d=2026-03-30")
        section = page.locator("section.hist:not([aria-busy])")
        total = float(section.locator("[data-total]").get_attribute("data-value") or "nan")
        assert total == pytest.approx(net, abs=1e-6)
        expect(section.locator("table.data thead")).to_contain_text("Net")
        # Per day of a month: the average weekday and weekend day, from the rows shown of the
        # whole days (not today so far).
        rows = section.locator("table.data > tbody > tr")
        starts = [float(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.start)")]
        values = [float(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.value)")]
        whole = [(t, v) for t, v in zip(starts, values, strict=True) if t <= NOW - 86400]
        assert len(whole) == len(starts) - 1
        starts, values = [t for t, _ in whole], [v for _, v in whole]
        we = [v for t, v in zip(starts, values, strict=True)
              if datetime.fromtimestamp(t + 43200, TZ).weekday() >= 5]  # fmt: skip
        wd = [v for t, v in zip(starts, values, strict=True)
              if datetime.fromtimestamp(t + 43200, TZ).weekday() < 5]  # fmt: skip
        assert float(section.locator("[data-weekend]").get_attribute("data-weekend") or "nan") == (
            pytest.approx(sum(we) / len(we), abs=1e-6)
        )
        assert float(section.locator("[data-weekday]").get_attribute("data-weekday") or "nan") == (
            pytest.approx(sum(wd) / len(wd), abs=1e-6)
        )
        # A year by month: the same averages, over the year's whole days (the server's).
        show(page, server, "history?m=power&r=month&d=2026-03-10")
        year = context.request.get(
            f"{server.url}/api/meters/power/consumption",
            params={"start": datetime(2026, 1, 1, 12, tzinfo=TZ).timestamp(),
                    "end": datetime(2026, 12, 31, 12, tzinfo=TZ).timestamp(),
                    "resolution": "day"},
        ).json()["buckets"]  # fmt: skip
        whole_days = [b for b in year if b["value"] is not None and b["end"] <= NOW]
        for attr, on_weekend in (("data-weekday", False), ("data-weekend", True)):
            vals = [b["value"] for b in whole_days
                    if (datetime.fromtimestamp(b["start"] + 43200, TZ).weekday() >= 5)
                    == on_weekend]  # fmt: skip
            shown_avg = page.locator(f"section.hist:not([aria-busy]) [{attr}]")
            assert float(shown_avg.get_attribute(attr) or "nan") == pytest.approx(
                sum(vals) / len(vals), abs=1e-6
            )
        show(page, server, "history?m=spare&r=day&d=2026-03-30")
        expect(page.locator("section.hist:not([aria-busy]) table.data thead")).to_contain_text(
            "Produced"
        )
        no_errors(page)
        context.close()
        # Dutch: the same pages, no English word of the dashboard's own.
        context = new_context(browser, locale="nl-NL")
        log_in(context, server)
        page = open_page(context, at=NOW)
        routes = ("live", "costs?r=day&d=2026-03-30", "history?m=net:electricity&r=day",
                  "history?m=spare&r=day", "settings")  # fmt: skip
        assert english_shown(page, server, routes) == {}
        show(page, server, "live")
        expect(page.locator("[data-meter='spare'] .sub")).to_contain_text("opwek")
        no_errors(page)
        context.close()


# -- device ----------------------------------------------------------------------------------------


def test_device_page(history_context: BrowserContext, web_server: WebServer) -> None:
    page = open_page(history_context, at=NOW)
    show(page, web_server, "device")
    card = page.locator("[data-module='kast']")
    expect(card).to_contain_text("V0.6")
    expect(card).to_contain_text("30/30/30/30/30 ms")
    expect(card).to_contain_text("388,000")
    events = page.locator("section.events tbody tr")
    expect(events.first).to_contain_text("Gap recovered")  # newest first
    expect(events).to_have_count(5)
    # Meters by name, not key; pulse counts as whole numbers.
    gap = events.first
    expect(gap.locator("[data-where]")).to_have_text("kast · Kast.2")  # the name, not "kast.2"
    expect(gap.locator("td.n")).to_have_text(re.compile(r"^[\d,]+$"))
    no_errors(page)
    page.close()


def test_device_and_settings_show_the_mqtt_link(
    browser: Browser, mqtt_broker: Broker, tmp_path: Path
) -> None:
    """Against a real Mosquitto: connected with the broker named and the outbox emptied; the
    broker killed: not connected, the problem in one line, messages waiting on disk; the
    broker back: connected and the outbox sent. Settings shows the same link."""
    with live_server(tmp_path, extra=mqtt_broker.toml()) as server:
        context = new_context(browser)
        log_in(context, server)
        page = open_page(context)
        show(page, server, "device")
        card = page.locator("[data-mqtt]")
        badge = card.locator("[data-connected]")
        expect(badge).to_have_attribute("data-connected", "true")
        expect(card).to_contain_text(f"{mqtt_broker.host}:{mqtt_broker.port}")
        expect(card.locator("[data-outbox]")).to_have_attribute("data-outbox", "0")
        expect(card).not_to_contain_text("never")  # something was sent

        mqtt_broker.kill()
        expect(badge).to_have_attribute("data-connected", "false")
        expect(card.locator("[data-mqtt-error]")).to_contain_text(str(mqtt_broker.port))
        # Records go on, and wait on disk. A locator, not an element handle: the card is drawn
        # again on each health event, and a handle taken before would never see the change.
        expect(card.locator("[data-outbox]")).not_to_have_attribute("data-outbox", "0")
        mqtt_broker.start()
        expect(badge).to_have_attribute("data-connected", "true", timeout=90_000)
        expect(card.locator("[data-mqtt-error]")).to_have_count(0)
        expect(card.locator("[data-outbox]")).to_have_attribute("data-outbox", "0")

        show(page, server, "settings")
        section = page.locator("section[aria-labelledby='s-mqtt']")
        expect(section.locator("[data-connected]")).to_have_attribute("data-connected", "true")
        expect(section).to_contain_text(f"{mqtt_broker.host}:{mqtt_broker.port}")
        no_errors(page)
        context.close()


def test_settings_say_when_mqtt_is_off(browser: Browser, fresh_server: WebServer) -> None:
    context = new_context(browser)
    log_in(context, fresh_server)
    page = open_page(context, at=NOW)
    show(page, fresh_server, "settings")
    section = page.locator("section[aria-labelledby='s-mqtt']")
    expect(section).to_contain_text("MQTT is off")
    expect(section.locator("[data-connected]")).to_have_count(0)
    no_errors(page)
    context.close()


# -- settings --------------------------------------------------------------------------------------


def test_first_run_without_a_password_says_how_to_set_one(
    browser: Browser, web_history: History, tmp_path: Path
) -> None:
    """A fresh install has no password: the login form says so and gives the command, and a
    login try says "no password yet", not "wrong password"."""
    fresh = copy_history(web_history, tmp_path)
    with open_store(str(fresh.database), tz=TZ) as store:
        doc = store.state("_auth") or {}
        doc.pop("password", None)
        store.set_state("_auth", doc)
        store.commit()
    with history_server(fresh) as server:
        context = new_context(browser)
        page = open_page(context, at=NOW)
        show(page, server, "settings")
        form = page.locator("form[data-login]")
        hint = form.locator("[data-nopassword]")
        expect(hint).to_contain_text("No password is set yet")
        expect(hint.locator("code")).to_have_text(re.compile(r"^s0pcm passwd --config "))
        page.get_by_label("Password").fill("anything")
        form.get_by_role("button", name="Log in").click()
        expect(form.locator(".msg")).to_have_text("No password is set yet (see above).")
        expect(form).not_to_contain_text("Wrong password")
        ERRORS[page].clear()  # the browser logs the refused login
        no_errors(page)
        context.close()


def test_settings_need_a_login(browser: Browser, fresh_server: WebServer) -> None:
    context = new_context(browser)
    page = open_page(context, at=NOW)
    url = fresh_server.url
    show(page, fresh_server, "settings")
    login_form = page.locator("form[data-login]")
    expect(login_form).to_be_visible()
    expect(page.locator("form[data-tariffs]")).to_have_count(0)
    page.get_by_label("Password").fill("not the password")
    login_form.get_by_role("button", name="Log in").click()
    expect(login_form.locator(".msg")).to_have_text("Wrong password.")
    ERRORS[page].clear()  # the browser logs the refused login
    # Writing without a session is refused, whatever the page does.
    refused = context.request.put(f"{url}/api/meters/power", data={"name": "Hacked"})
    assert refused.status in (401, 403)

    page.get_by_label("Password").fill(fresh_server.password)
    login_form.get_by_role("button", name="Log in").click()
    meter = page.locator("form[data-meter='power']")
    expect(meter).to_be_visible()
    # The session alone does not do: writes need the CSRF header the page sends.
    no_csrf = context.request.put(f"{url}/api/meters/power", data={"name": "Hacked"})
    assert no_csrf.status == 403

    meter.get_by_label("Name").fill("Stroom")
    meter.get_by_role("button", name="Save").click()
    expect(meter.locator(".msg")).to_have_text("Saved.")
    names = {m["key"]: m["name"] for m in context.request.get(f"{url}/api/meters").json()}
    assert names["power"] == "Stroom"

    tariffs = page.locator("form[data-tariffs]")
    gas = tariffs.locator("fieldset.k-gas")
    gas.get_by_label("Price per unit").fill("1.5")
    gas.get_by_label("Price per unit").blur()
    tariffs.get_by_role("button", name="Save").click()
    expect(tariffs.locator(".msg")).to_have_text("Saved.")
    doc = context.request.get(f"{url}/api/tariffs").json()
    assert [t["periods"][0]["price"] for t in doc["tariffs"] if t["kind"] == "gas"] == [1.5]

    reading = page.locator("form[data-reading-form]")
    reading.get_by_label("Meter", exact=True).select_option("kast.2")
    reading.get_by_label("Reading on the meter").fill("4321.5")
    reading.get_by_role("button", name="Save").click()
    expect(reading.locator(".msg")).to_have_text("Saved.")
    gas_now = context.request.get(f"{url}/api/meters/kast.2").json()
    assert gas_now["reading"] == pytest.approx(4321.5)

    # Tokens: made (shown once), listed with their expiry, revoked after a confirmation.
    tokens = page.locator("[data-tokens]")
    expect(tokens.locator("li[data-token]")).to_have_count(1)  # the tests' own
    made = page.locator("form[data-token-form]")
    made.get_by_label("Name").fill("grafana")
    made.get_by_label("Expires after (days)").select_option("30")
    made.get_by_role("button", name="Create").click()
    secret = made.locator("output.token code")
    expect(secret).to_have_text(re.compile(r"^s0pcm_"))
    token = secret.inner_text()
    expect(tokens.locator("li[data-token]")).to_have_count(2)
    grafana = tokens.locator("li[data-token]", has_text="grafana")
    expect(grafana).to_contain_text("expires")
    bearer = {"Authorization": f"Bearer {token}"}
    assert context.request.get(f"{url}/api/meters", headers=bearer).status == 200
    page.once("dialog", lambda dialog: dialog.accept())
    grafana.get_by_role("button", name="Revoke").click()
    expect(tokens.locator("li[data-token]")).to_have_count(1)
    assert context.request.get(f"{url}/api/meters", headers=bearer).status == 401

    page.locator("[data-logout]").click()
    expect(page.locator("form[data-login]")).to_be_visible()
    no_errors(page)
    context.close()


def test_the_tariff_editor_on_a_phone(browser: Browser, fresh_server: WebServer) -> None:
    """On a 390 px phone: every period's price and remove button on screen; a new tariff holds
    from the day logging began; one click makes the usual weekday peak/off-peak periods; the
    legend follows a change; an error names the tariff and period, not `tariffs[0].periods`."""
    context = new_context(browser, viewport={"width": 390, "height": 844})
    log_in(context, fresh_server)
    page = open_page(context, at=NOW)
    show(page, fresh_server, "settings")
    editor = page.locator("form[data-tariffs]")
    for row in editor.locator("table.periods tbody tr").all():
        for control in (row.get_by_label("Price"), row.get_by_role("button", name="Remove")):
            control.scroll_into_view_if_needed()
            box = control.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 390, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    began = datetime.fromtimestamp(fresh_server.history.start, TZ) if fresh_server.history else None
    assert began is not None
    expect(page.locator("[data-tariff-hint]")).to_contain_text(f"{began.day} February 2026")
    editor.get_by_role("button", name="Add tariff").click()
    new = editor.locator("fieldset.tariff").last
    expect(new.get_by_label("Valid from")).to_have_value(began.date().isoformat())
    new.locator("[data-peak-offpeak]").click()
    expect(new.locator("table.periods tbody tr")).to_have_count(3)
    new.get_by_label("Kind").select_option("gas")
    expect(new.locator("legend")).to_have_text(f"Gas {began.date().isoformat()}")
    # It overlaps the gas tariff there is: the server refuses, and says which one, in words.
    editor.get_by_role("button", name="Save").click()
    message = editor.locator(".msg").last
    expect(message).to_contain_text("Gas valid from 2026-02-13")
    expect(message).not_to_contain_text("tariffs[")
    ERRORS[page].clear()  # the browser logs the refused request
    no_errors(page)
    context.close()


def test_a_correction_asks_first_when_it_looks_wrong_and_can_be_undone(
    browser: Browser, fresh_server: WebServer
) -> None:
    """A reading ten times too low (a dropped digit) is not saved at once: the form says why
    and saves on a second click; the correction is listed and one click takes it back."""
    context = new_context(browser)
    log_in(context, fresh_server)
    page = open_page(context, at=NOW)
    show(page, fresh_server, "settings")
    url = fresh_server.url

    def reading() -> float:
        value: float = context.request.get(f"{url}/api/meters/power").json()["reading"]
        return value

    before = reading()
    form = page.locator("form[data-reading-form]")
    form.get_by_label("Meter", exact=True).select_option("power")
    form.get_by_label("Reading on the meter").fill(f"{before / 10:.3f}")
    form.get_by_role("button", name="Save").click()
    expect(form.locator("[data-odd-reading]")).to_contain_text("a digit too few or too many?")
    assert reading() == before  # not saved
    form.get_by_role("button", name="Save").click()
    expect(form.locator("[data-odd-reading]")).to_be_hidden()
    page.wait_for_function(
        f"async () => (await (await fetch('api/meters/power')).json()).reading < {before / 5}"
    )
    set_before = len(context.request.get(f"{url}/api/meters/power/readings").json()) - 1
    expect(page.locator("[data-readings] tbody tr")).to_have_count(set_before + 1)
    newest = page.locator("[data-readings] tbody tr").first  # newest first
    expect(newest).to_have_attribute("data-kind", "correction")
    newest.locator("[data-undo]").click()
    expect(page.locator("[data-readings] tbody tr")).to_have_count(set_before)
    assert reading() == pytest.approx(before, abs=1e-6)
    events = context.request.get(f"{url}/api/events?kind=correction").json()
    assert "taken back" in events[0]["detail"]
    no_errors(page)
    context.close()


def test_times_typed_are_the_loggers_local_time(browser: Browser, web_server: WebServer) -> None:
    """A reading's moment typed in New York means that wall-clock time where the logger is."""
    context = new_context(browser, timezone_id="America/New_York")
    log_in(context, web_server)
    page = open_page(context)
    show(page, web_server, "settings")
    for wall in ("2026-01-15T08:00", "2026-03-29T03:30", "2026-07-01T12:00"):
        got = page.evaluate("async (w) => (await import('./static/lib.js')).zoned(w)", wall)
        assert got == datetime.fromisoformat(wall).replace(tzinfo=TZ).timestamp()
    no_errors(page)
    context.close()


def test_periods_are_named_in_the_loggers_days(browser: Browser, web_server: WebServer) -> None:
    """A browser in Auckland, a logger in Amsterdam: the browser's 1 March is 28 February
    where the logger is, and a title once named the period by that (the demo, a logger on UTC,
    showed 2026's costs as "2025"). The title names the period the bars show."""
    context = new_context(browser, timezone_id="Pacific/Auckland")
    log_in(context, web_server)
    page = open_page(context, at=NOW)
    for route, title in (
        ("costs?r=month&d=2026-03-10", "2026"),
        ("history?m=power&r=day&d=2026-03-10", "March 2026"),
        ("history?m=power&r=hour&d=2026-03-10", "Tuesday, 10 March 2026"),
    ):
        show(page, web_server, route)  # fmt: skip
        expect(page.locator(".ptitle")).to_have_text(title)
    no_errors(page)
    context.close()


def test_thresholds_pending_until_the_module_confirms(
    browser: Browser, live_server: WebServer
) -> None:
    context = new_context(browser)
    log_in(context, live_server)
    page = open_page(context)
    show(page, live_server, "settings")
    form = page.locator("form.thresholds[data-module='kast']")
    state = form.locator("[data-threshold-state]")
    form.get_by_label("Register 2 (ms)").fill("40")
    form.get_by_role("button", name="Save").click()
    expect(state).to_have_attribute("data-threshold-state", "pending")
    expect(state).to_contain_text("T2=40;")

    # The module takes the command in the first seconds after a start-up, and its next start-up
    # header shows it: restart it until the page says so (twice, unless a start-up was missed).
    emulator, module = live_server.emulator, live_server.module
    assert emulator is not None
    assert module is not None
    for _ in range(4):
        emulator.request(Fault.RESTART)
        try:
            expect(state).to_have_attribute("data-threshold-state", "confirmed", timeout=8000)
            break
        except AssertionError:
            continue
    expect(state).to_have_attribute("data-threshold-state", "confirmed")
    assert module.thresholds[1] == 40
    expect(form.get_by_label("Register 2 (ms)")).to_have_value("40")
    no_errors(page)
    context.close()


# -- languages, phones, screenshots ----------------------------------------------------------------


def test_dutch_and_english(browser: Browser, web_server: WebServer) -> None:
    context = new_context(browser, locale="nl-NL")
    log_in(context, web_server)
    page = open_page(context, at=NOW)
    show(page, web_server, "history?m=power&r=day&d=2026-03-10")
    assert page.locator("html").get_attribute("lang") == "nl"
    nav = page.get_by_role("navigation")
    for label in ("Nu", "Historie", "Kosten", "Apparaat", "Instellingen"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(page.locator(".ptitle")).to_have_text("maart 2026")
    expect(page.get_by_label("Toon")).to_be_visible()
    total = page.locator("[data-total]")
    expect(total).to_have_text(re.compile(r"^[\d.]+,\d+ kWh$"))  # 1.234,5: Dutch numbers

    page.get_by_label("Taal").select_option("en")
    expect(nav.get_by_role("link", name="History")).to_be_visible()
    expect(page.locator(".ptitle")).to_have_text("March 2026")
    expect(total).to_have_text(re.compile(r"^[\d,]+\.\d+ kWh$"))
    assert page.locator("html").get_attribute("lang") == "en"
    page.reload()  # the choice is remembered over the browser's language
    expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    no_errors(page)
    context.close()


#: Every text node of the page (what a reader sees), trimmed, with the element it sits in.
TEXT_NODES: Final = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const n = walk.currentNode, text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || !el || el.closest('script, style, [hidden], .sr-only-none')) continue;
    out.push(text);
  }
  for (const el of document.querySelectorAll('[aria-label], [title], input[placeholder]'))
    out.push((el.getAttribute('aria-label') || el.getAttribute('title') || '').trim());
  return out.filter(Boolean);
}"""


def english_shown(page: Page, server: WebServer, routes: Iterable[str]) -> dict[str, list[str]]:
    """Per route, the text nodes (labels, tooltips) that are a word of the English catalogue
    the Dutch one says otherwise: only the routes that show any."""
    english: set[str] | None = None
    seen = {}
    for route in routes:
        show(page, server, route)
        if english is None:  # the catalogue, as the page has it
            catalogue = page.evaluate(
                "async () => { const { DICT } = await import('./static/i18n.js'); return DICT; }"
            )
            english = {
                v for k, v in catalogue["en"].items()
                if "{" not in v and v != catalogue["nl"].get(k) and len(v) > 2
            }  # fmt: skip
        found = [x for x in page.evaluate(TEXT_NODES) if x in english]
        if found:
            seen[route] = found
    return seen


def test_dutch_throughout(browser: Browser, fresh_server: WebServer) -> None:
    """In Dutch, no page shows an English word of the dashboard's own: every text node (and
    label and tooltip) is checked against the English catalogue, on every page, logged in,
    and the tariff editor's weekday names are Dutch."""
    context = new_context(browser, locale="nl-NL")
    log_in(context, fresh_server)
    page = open_page(context, at=NOW)
    routes = (
        *PAGES,
        "history?m=kind:gas&r=month&d=2026-03-01",
        "costs?r=month&d=2026-03-01",
    )
    seen = english_shown(page, fresh_server, routes)
    # The tariff editor's weekday names follow the language (they were made once, at load).
    show(page, fresh_server, "settings")
    weekdays = page.locator("form[data-tariffs] td.days label").first.inner_text()
    assert weekdays.strip() == "ma"
    assert seen == {}
    no_errors(page)
    context.close()


#: English words of the server's event details and refusals (none is a word of Dutch).
ENGLISH_WORDS: Final = re.compile(
    r"\b(the|set to|taken back|pulses|from now on|not counted|went|started|again|"
    r"recovered|reading|is in no period|cover|whole|lies|future)\b"
)


def test_event_details_and_refusals_in_dutch(browser: Browser, live_server: WebServer) -> None:
    """The event log in Dutch says what happened in Dutch, its numbers in Dutch format (the
    server's English words only in the tooltip), from events the real logger wrote for real
    faults and corrections; a refused tariff says why in Dutch, with a Dutch weekday."""
    assert live_server.emulator is not None
    live_server.rates[0] = 4.0
    context = new_context(browser, locale="nl-NL")
    csrf = log_in(context, live_server)
    url, headers = live_server.url, {"X-CSRF-Token": csrf}

    def kinds() -> set[str]:
        events = context.request.get(f"{url}/api/events?limit=200").json()
        return {e["kind"] for e in events}

    def wait_for(kind: str) -> None:
        deadline = time.monotonic() + 60
        while kind not in kinds():
            assert time.monotonic() < deadline, (kind, kinds())
            time.sleep(0.2)

    wait_for("startup")
    for fault, kind in ((Fault.GARBAGE, "rejected"), (Fault.RESTART, "startup"),
                        (Fault.UNPLUG, "disconnected")):  # fmt: skip
        live_server.emulator.request(fault)
        wait_for(kind)
    wait_for("connected")
    power = context.request.get(f"{url}/api/meters/power").json()

    def set_reading(reading: float, at: float) -> float:
        r = context.request.post(
            f"{url}/api/meters/power/reading", data={"reading": reading, "at": at},
            headers=headers,
        )  # fmt: skip
        assert r.ok, r.text()
        done: float = r.json()["at"]
        return done

    set_reading(24300.5, time.time() - 60)
    ppu = context.request.put(
        f"{url}/api/meters/power", data={"pulses_per_unit": power["pulses_per_unit"] * 2},
        headers=headers,
    )  # fmt: skip
    assert ppu.ok, ppu.text()
    deadline = time.monotonic() + 60  # the logger anchors the new constant at its next slot
    while not any("from now on" in e["detail"] for e in
                  context.request.get(f"{url}/api/events?kind=correction").json()):  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.2)
    again = set_reading(24400, time.time())  # after the constant's anchor (at a slot's start)
    undo = context.request.delete(f"{url}/api/meters/power/reading?at={again}", headers=headers)
    assert undo.ok, undo.text()
    page = open_page(context)
    show(page, live_server, "device")
    rows = page.locator("section.events tbody tr")
    expect(rows.locator("td.detail", has_text="Meterstand gezet op 24.300,5")).to_have_count(1)
    expect(rows.locator("td.detail", has_text="ongedaan gemaakt")).to_have_count(1)
    expect(rows.locator("td.detail", has_text="pulsen per kWh (was")).to_have_count(1)
    expect(rows.locator("td.detail", has_text="Verbinding met")).not_to_have_count(0)
    details = rows.locator("td.detail").evaluate_all("cs => cs.map(c => [c.textContent, c.title])")
    english = [(text, title) for text, title in details if ENGLISH_WORDS.search(text)]
    assert english == [], english
    assert any(text != title for text, title in details)  # the English stays in the tooltip
    # A tariff that leaves hours of the week without a price: refused, in Dutch.
    show(page, live_server, "settings")
    editor = page.locator("form[data-tariffs]")
    editor.get_by_role("button", name="Tarief toevoegen").click()
    new = editor.locator("fieldset.tariff").last
    end = new.get_by_label("Tot", exact=True)
    end.fill("07:00")
    end.blur()
    editor.get_by_role("button", name="Opslaan").click()
    message = editor.locator(".msg").last
    expect(message).to_contain_text("maandag 07:00\N{EN DASH}08:00 valt in geen tijdvak")
    assert not ENGLISH_WORDS.search(message.inner_text()), message.inner_text()
    ERRORS[page].clear()  # the browser logs the refused request
    no_errors(page)
    context.close()


def test_theme_toggle_and_keyboard(browser: Browser, web_server: WebServer) -> None:
    context = new_context(browser, color_scheme="light")
    log_in(context, web_server)
    page = open_page(context, at=NOW)
    show(page, web_server, "live")
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle = page.get_by_role("button", name="Dark mode")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(background) != light
    page.reload()  # remembered
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")

    # The keyboard alone: the skip link first, then the navigation; Enter follows a link.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("History")
    page.keyboard.press("Enter")
    expect(page.locator("main[data-ready='history']")).to_be_attached()
    page.keyboard.press("Tab")  # from the page's start into its controls
    expect(page.locator(":focus")).to_have_accessible_name("Meter")
    no_errors(page)
    context.close()


def test_phone_layout(browser: Browser, web_server: WebServer) -> None:
    context = new_context(browser, viewport=PHONE, device_scale_factor=2, has_touch=True)
    log_in(context, web_server)
    page = open_page(context, at=NOW)
    for name in PAGES:
        show(page, web_server, name)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{name} scrolls sideways: {width}"
    nav = page.get_by_role("navigation")
    for name, label in zip(PAGES, ("Live", "History", "Costs", "Device", "Settings"), strict=True):
        link = nav.get_by_role("link", name=label)
        box = link.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"] + 0.5
        assert box["y"] + box["height"] <= PHONE["height"] + 0.5  # on screen, at the bottom
        assert box["height"] >= 40  # big enough for a thumb
        link.tap()
        expect(page.locator(f"main[data-ready='{name}']")).to_be_attached()
        expect(link).to_have_attribute("aria-current", "page")
    no_errors(page)
    context.close()


VARIANTS: Final[list[tuple[str, dict[str, Any]]]] = [
    ("desktop-light", {"viewport": DESKTOP, "color_scheme": "light"}),
    ("desktop-dark", {"viewport": DESKTOP, "color_scheme": "dark"}),
    ("phone", {"viewport": PHONE, "color_scheme": "light", "device_scale_factor": 2}),
]


def give_history(server: WebServer, days: float) -> None:
    """Weeks of a household's history behind the live logger's first minutes (the emulator's
    own daily profiles), readings and tariffs: the live page as a household sees it."""
    assert server.daemon is not None
    daemon, now = server.daemon, time.time()
    meters = [m for m in server.config.meters if m.enabled]
    readings = {"electricity": 12345.678, "gas": 4567.89, "water": 123456.0}

    def fill() -> None:
        for m in meters:
            reading = readings.get(m.kind.value, 0.0)
            daemon.store.add_anchor(
                Anchor(
                    meter=m.key,
                    at=now - days * 86400,
                    reading=reading,
                    pulses_per_unit=m.pulses_per_unit,
                    kind=AnchorKind.INITIAL,
                )
            )
        sources = [
            (m, Source(household(m.kind.value, pulses_per_unit=m.pulses_per_unit, seed=7)))
            for m in meters
        ]
        backfill(daemon.store, sources, start=now - days * 86400, end=now)

    server.call(fill)
    with server.client() as client:
        login(client)
        client.put("/api/tariffs", json=TARIFFS).raise_for_status()


def test_screenshots(
    browser: Browser, web_server: WebServer, live_server: WebServer, tmp_path: Path
) -> None:
    """Every page in every variant, into docs/screenshots/: the live page from the running
    logger (with weeks of history behind it), the others from the fixed history."""
    # docs/screenshots/ only when asked (S0PCM_SCREENSHOTS=1): a test run leaves the tree clean.
    target = SCREENSHOTS if os.environ.get("S0PCM_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    live_server.rates[:3] = [0.35, 0.06, 0.25]  # 1260 W, 2.2 m³/h, 15 L/min
    give_history(live_server, days=40)
    routes = {"history": "history?m=power&r=day&c=1", "costs": "costs?r=day"}
    # The live pages last: by then the logger has seen enough pulses to know every rate.
    for server, names in ((web_server, PAGES[1:]), (live_server, PAGES[:1])):
        for variant, options in VARIANTS:
            context = new_context(browser, **options)
            log_in(context, server)
            page = open_page(context, at=NOW if server is web_server else None)
            for name in names:
                show(page, server, routes.get(name, name))
                if name == "live":
                    for key, unit in (("power", "W"), ("water", "L/min"), ("kast.2", "m³/h")):
                        rate = page.locator(f"[data-meter='{key}'] [data-rate]")
                        expect(rate).to_have_text(re.compile(f"{unit}$"), timeout=60_000)
                if name in ("live", "history", "costs"):
                    expect(page.locator(".chart canvas").first).to_be_attached()
                if name == "live":
                    expect(page.locator("[data-power]")).to_have_attribute("data-drawn", "1")
                path = target / f"{name}-{variant}.png"
                page.screenshot(path=str(path), full_page=variant != "phone")
                assert path.stat().st_size > 5000
            no_errors(page)
            context.close()


def test_screenshots_of_the_demo(browser: Browser, tmp_path: Path) -> None:
    """The demo's house (a Dutch contract, a solar roof) in English and Dutch: Live, the net
    electricity per day, and the costs per month with production and feed-in apart; into
    docs/screenshots/demo-*.png when asked."""
    target = SCREENSHOTS if os.environ.get("S0PCM_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    with running_demo(tmp_path, days=60) as url:
        routes = (("live", "live"), ("history", "history?m=net:electricity&r=day"),
                  ("costs", "costs?r=month"))  # fmt: skip
        for lang, locale in (("en", "en-GB"), ("nl", "nl-NL")):
            context = new_context(browser, locale=locale, color_scheme="light")
            page = open_page(context)
            for name, route in routes:
                page.goto(f"{url}/#/{route}")
                expect(page.locator(f"main[data-ready='{name}']")).to_be_attached()
                expect(page.locator(".chart canvas").first).to_be_attached()
                if name == "costs":
                    expect(page.locator("[data-produced]").first).to_have_text(re.compile("kWh$"))
                path = target / f"demo-{name}-{lang}.png"
                page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 5000
            no_errors(page)
            context.close()
