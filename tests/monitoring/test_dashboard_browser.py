"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by
playwright) opens the page served by the receiver, takes the admin token, draws a working
TWAP's fills against its schedule, draws more as the monitor records them, cancels the algo
with its button, and shows the ended algo's execution quality as stored, VWAP included."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from app import controls
from app.db import session_scope
from app.execution.quality import Quality, measure, record_arrival, record_due
from app.main import create_app
from tests.api.conftest import add_order
from tests.conftest import TEST_ADMIN_TOKEN
from tests.monitoring.desk import Desk
from tests.support import ThreadedServer, wait_until

CHROMIUM = os.environ.get("PACEKEEPER_CHROMIUM") or shutil.which("chromium") or ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "install Debian's chromium (apt-get install chromium): .ci/run does"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


DRAWN = """([order, n]) => Number(
    document.querySelector(`tr[data-order="${order}"] svg.plot`)?.dataset.fills) === n"""
STATUS = """([order, status]) =>
    document.querySelector(`tr[data-order="${order}"]`)?.dataset.status === status"""


VWAP_SHOWN = """([order, vwap]) => document.querySelector(
    `tr[data-order="${order}"] td.quality [data-q="vwap"]`)?.textContent === vwap"""


def fills_drawn(page: Page, order_id: int) -> int:
    plot = page.locator(f'tr[data-order="{order_id}"] svg.plot')
    return int(plot.get_attribute("data-fills") or 0)


def shown_quality(page: Page, order_id: int) -> dict[str, str]:
    """Each figure of the algo's execution-quality cell, by its field."""
    figures = page.locator(f'tr[data-order="{order_id}"] td.quality [data-q]')
    return {str(figure.get_attribute("data-q")): figure.inner_text() for figure in figures.all()}


def assert_shows(shown: dict[str, str], stored: Quality) -> None:
    for name in ("arrival_price", "avg_price", "filled_qty", "fees_quote", "vwap",
                 "slippage_arrival_bps", "slippage_vwap_bps"):  # fmt: skip
        assert Decimal(shown[name]) == getattr(stored, name), name
    for step, seconds in stored.delays.items():
        figure = shown[step]
        assert (None if figure == "\N{EN DASH}" else float(figure)) == seconds, step


def test_the_dashboard_draws_an_algo_filling_and_cancels_it(desk: Desk, page: Page) -> None:
    desk.set_price("BTCUSDT", "65000")
    bought = desk.submit(quantity="0.01", take_profit="70000", stop_loss="60000")
    assert desk.run(bought).status == "done"
    entry = desk.entry(kind="twap", quantity="0.3", duration=600)
    with session_scope(desk.ctx.sessions) as session:  # as the entry's planning records it
        record_arrival(session, entry.signal_id, Decimal("64935"), "last price")
    desk.advance(90)
    desk.cycle()
    drawn_before = len(desk.fills(entry.order_id))
    assert drawn_before > 0
    server = ThreadedServer(create_app(desk.ctx.settings)).start()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(f"{server.url}/?every=1")
        page.fill("#token", TEST_ADMIN_TOKEN)
        page.click("#save-token")
        position = page.locator("#positions tr[data-position]")
        position.wait_for()
        cells = position.locator("td").all_inner_texts()
        assert cells[2:4] == ["BTCUSDT", "long"] and cells[6:8] == ["70000", "60000"]
        assert "ok" in (position.locator(".badge").get_attribute("class") or "")
        row = page.locator(f'tr[data-order="{entry.order_id}"]')
        row.wait_for()
        assert "spot twap" in row.inner_text()
        page.wait_for_function(DRAWN, arg=[entry.order_id, drawn_before])
        assert row.locator("svg.plot circle.child").count() == drawn_before
        assert row.locator("svg.plot line.schedule").count() == 1

        # The exchange slices on; the monitor records the new fills; the plot grows.
        desk.advance(180)
        desk.cycle()
        now_filled = len(desk.fills(entry.order_id))
        assert now_filled > drawn_before
        page.wait_for_function(DRAWN, arg=[entry.order_id, now_filled])
        assert fills_drawn(page, entry.order_id) == now_filled

        page.on("dialog", lambda dialog: dialog.accept())
        cancels = desk.count("DELETE", "/sapi/v1/algo/spot/order")
        row.get_by_role("button", name="Cancel").click()
        # Cancelled on the exchange at once; the monitor's next cycle records it as ended,
        # and the page keeps the ended algo, marked so.
        wait_until(lambda: desk.applied(cancels) == 1, timeout=20)
        desk.cycle()
        page.wait_for_function(STATUS, arg=[entry.order_id, "cancelled"])
        assert desk.order(entry.order_id).status == "cancelled"
        assert row.get_by_role("button", name="Cancel").count() == 0

        # Its execution quality: once the quality job has the window's VWAP from the paper's
        # klines, the page shows every figure as stored.
        assert record_due(desk.ctx) == 2  # the bracketed market entry's, and the TWAP's
        with session_scope(desk.ctx.sessions) as session:
            stored = measure(session, entry.signal_id)
        assert stored is not None and stored.vwap is not None
        assert stored.arrival_price == Decimal("64935") and stored.slippage_arrival_bps
        assert stored.slippage_vwap_bps is not None
        page.wait_for_function(VWAP_SHOWN, arg=[entry.order_id, format(stored.vwap, "f")])
        assert_shows(shown_quality(page, entry.order_id), stored)
        assert page.locator("#message").inner_text() == ""
        assert errors == []
    finally:
        server.stop()


HALT_SHOWN = """(text) => document.getElementById("halt-state")?.textContent === text"""


def test_the_account_filter_scopes_the_algos_and_the_kill_switch(
    desk: Desk, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_KEY", "alt-key")
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_SECRET", "alt-secret")
    settings = desk.ctx.settings.model_copy(update={"accounts": ["alt"]})
    with session_scope(desk.ctx.sessions) as session:
        default_algo = add_order(session, kind="twap", status="working").id
        alt_algo = add_order(session, kind="twap", symbol="ETHUSDT", status="working",
                             account="alt").id  # fmt: skip
        controls.halt(session, reason="alt under review", account="alt")
    server = ThreadedServer(create_app(settings)).start()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(f"{server.url}/?every=1")
        page.fill("#token", TEST_ADMIN_TOKEN)
        page.click("#save-token")
        page.locator(f'tr[data-order="{default_algo}"]').wait_for()
        alt_row = page.locator(f'tr[data-order="{alt_algo}"]')
        assert "spot twap (alt)" in alt_row.inner_text()
        page.wait_for_function(HALT_SHOWN, arg="running")  # not every account is halted

        page.fill("#filter-account", "alt")
        page.dispatch_event("#filter-account", "change")
        page.locator(f'tr[data-order="{default_algo}"]').wait_for(state="detached")
        assert alt_row.is_visible()
        page.wait_for_function(HALT_SHOWN, arg="HALTED")  # alt's own halt

        # Resume and Halt act on the account chosen, not on every account.
        page.click("#resume")
        page.wait_for_function(HALT_SHOWN, arg="running")
        with session_scope(desk.ctx.sessions) as session:
            assert controls.current_halt(session, "alt") is None
        page.fill("#halt-reason", "alt again")
        page.click("#halt")
        page.wait_for_function(HALT_SHOWN, arg="HALTED")
        with session_scope(desk.ctx.sessions) as session:
            again = controls.current_halt(session, "alt")
            assert again is not None and again.reason == "alt again"
            assert controls.current_halt(session) is None  # the others still trade
        assert errors == []
    finally:
        server.stop()
