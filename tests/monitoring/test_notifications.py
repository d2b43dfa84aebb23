"""What the monitor's actions sound like to a trader: a pace cancel with what filled and what
was cancelled, the fill of a TWAP entry, and a take-profit's exit with its realised PnL;
delivered through Apprise to a JSON webhook over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from app.models import OrderStatus
from app.notify.service import Cooldowns, deliver
from tests.monitoring.desk import Desk
from tests.notify.receiver import Receiver, receiving

D = Decimal
BRACKET = {"take_profit": {"price": "70000"}, "stop_loss": {"stop_price": "60000"}}
INTERVAL = 5.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


def delivered(desk: Desk, receiver: Receiver, *kinds: str) -> list[dict[str, Any]]:
    settings = desk.ctx.settings.model_copy(
        update={"notify_urls": SecretStr(receiver.url()), "notify_events": list(kinds)}
    )
    deliver(desk.ctx.sessions, settings, cooldowns=Cooldowns())
    return receiver.messages


def cycle_until_ended(desk: Desk, order_id: int) -> None:
    for _ in range(20):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(order_id).status != OrderStatus.WORKING:
            return
    raise AssertionError("the algo did not end")


def test_a_pace_cancel_says_what_filled_and_that_the_rest_was_cancelled(
    desk: Desk, receiver: Receiver
) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    desk.advance(10)
    desk.cycle()
    desk.fill_ratio(entry.client_id, "0")  # children stop executing: it falls behind

    cycle_until_ended(desk, entry.order_id)

    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED and D(0) < order.executed_qty < D("0.3")
    executed, left = f"{order.executed_qty.normalize():f}", D("0.3") - order.executed_qty
    messages = delivered(desk, receiver, "pace_cancel", "entry_filled", "bracket_placed")
    bracket, cancel, filled = messages
    assert bracket["title"] == "[pacekeeper] Bracket placed: BTCUSDT"
    assert bracket["message"].startswith("oco SELL ")
    assert ": take-profit 70000, stop 60000 (" in bracket["message"]
    assert cancel["title"] == "[pacekeeper] Pace cancel: TWAP BUY BTCUSDT"
    assert cancel["type"] == "warning"
    first = cancel["message"].splitlines()[0]
    assert first.startswith("cancelled by the monitor (")  # with the judge's reason
    assert first.endswith(
        f"): {executed} of 0.3 filled at avg 65000; the remaining {left.normalize():f} was"
        " cancelled"
    )
    assert filled["title"] == f"[pacekeeper] Entry filled: BUY BTCUSDT {executed}"
    assert filled["message"].startswith(f"BUY {executed} of 0.3 BTCUSDT (twap) at avg 65000")


def test_an_algo_that_filled_nothing_is_cancelled_with_all_of_it_left(
    desk: Desk, receiver: Receiver
) -> None:
    entry = desk.entry(quantity="0.3", duration=60, limit_price="60000")  # out of reach

    cycle_until_ended(desk, entry.order_id)

    (cancel,) = delivered(desk, receiver, "pace_cancel", "entry_filled")
    first = cancel["message"].splitlines()[0]
    assert first.startswith("cancelled by the monitor (fill 0.00 < 0.5 × schedule ")
    assert first.endswith("): 0 of 0.3 filled; the remaining 0.3 was cancelled")


def test_a_twap_entrys_bracket_is_announced_once_and_its_take_profit_is_an_exit_with_pnl(
    desk: Desk, receiver: Receiver
) -> None:
    entry = desk.entry(quantity="0.3", duration=30, bracket=BRACKET)
    cycle_until_ended(desk, entry.order_id)
    (oco,) = desk.orders(kind="oco", status=OrderStatus.WORKING)
    assert oco.quantity is not None
    held = f"{oco.quantity.normalize():f}"
    pnl = oco.quantity * (D("70000") - D("65000"))

    desk.set_price("BTCUSDT", "70000")  # the take-profit (LIMIT_MAKER at 70000) fills
    assert desk.cycle().exits == 1

    bracket, message = delivered(desk, receiver, "bracket_placed", "exit")
    # Re-bracketed at each step the entry filled, but announced once: a resize is not news.
    assert len(desk.events("bracket")) >= 2
    assert bracket["title"] == "[pacekeeper] Bracket placed: BTCUSDT"
    assert message["title"] == (
        f"[pacekeeper] Exit filled: SELL BTCUSDT {held}, realised PnL +{pnl.normalize():f}"
    )
    assert message["message"].startswith(
        f"oco exit: {held} at 70000; realised PnL {pnl.normalize():f}; position closed\n"
    )
