"""What a trader hears: signals executed on the paper exchange over real HTTP, then their
notifications delivered through Apprise to a JSON webhook over real HTTP. Execution itself
never sends anything: every notification waits in the outbox for the delivery run."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from app import controls
from app.config import Settings
from app.db import session_scope
from app.execution.context import ExecContext
from app.execution.resting import follow_resting_orders
from app.notify.service import Cooldowns, deliver
from tests.execution.conftest import fault, positions, run, set_price, signal_row, submit
from tests.notify.receiver import Receiver, receiving

D = Decimal
pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


def delivered(ctx: ExecContext, receiver: Receiver, *kinds: str) -> list[dict[str, str]]:
    """Run delivery once for ``kinds`` (all when none); the messages the webhook received."""
    update: dict[str, object] = {"notify_urls": SecretStr(receiver.url())}
    if kinds:
        update["notify_events"] = list(kinds)
    settings: Settings = ctx.settings.model_copy(update=update)
    report = deliver(ctx.sessions, settings, cooldowns=Cooldowns())
    assert report.retrying == report.failed == 0, report
    return receiver.messages


def test_a_refusal_after_202_is_a_notification_not_a_request_from_the_worker(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    with session_scope(ctx.sessions) as session:
        controls.halt(session, reason="maintenance", by="admin-api")
    sid = submit(ctx, quantity="0.01", strategy="breakout-v2")

    outcome = run(ctx, sid)

    assert outcome.status == "refused"
    assert receiver.requests == []
    (message,) = delivered(ctx, receiver, "refused")
    assert message["title"] == "[pacekeeper] Signal refused: entry BUY BTCUSDT"
    assert message["type"] == "failure"
    body = message["message"].splitlines()
    assert body[0] == "Accepted (202), then refused: trading is halted: maintenance"
    sender_id = signal_row(ctx, sid).source_id  # the signal's own "id"
    assert body[1].startswith(f"signal {sender_id}, strategy breakout-v2, spot, ")
    assert body[1].endswith(" UTC")


def test_an_entry_the_exchange_rejects_is_notified_as_failed(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    set_price(control, "BTCUSDT", "65000")
    insufficient = "Account has insufficient balance for requested action."
    fault(control, action="fail_before", path="/api/v3/order", method="POST", status=400,
          code=-2010, msg=insufficient, count=1)  # fmt: skip

    assert run(ctx, submit(ctx, quantity="0.01")).status == "failed"

    (message,) = delivered(ctx, receiver)
    assert message["title"] == "[pacekeeper] Signal failed: entry BUY BTCUSDT"
    assert message["message"].startswith(
        "Accepted (202), then failed: rejected by the exchange: "
        "Account has insufficient balance for requested action. (code -2010)\n"
    )


def test_a_market_entry_notifies_its_fill_and_then_its_live_bracket(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")

    assert run(ctx, sid).status == "done"

    assert receiver.requests == []
    filled, bracket = delivered(ctx, receiver)
    assert filled["title"] == "[pacekeeper] Entry filled: BUY BTCUSDT 0.01"
    assert filled["type"] == "success"
    assert filled["message"].startswith(
        "BUY 0.01 BTCUSDT (market) at avg 65000; holding 0.00999 net of fees\n"
    )
    assert bracket["title"] == "[pacekeeper] Bracket placed: BTCUSDT"
    assert bracket["message"].startswith(
        "oco SELL 0.00999 BTCUSDT: take-profit 70000, stop 60000 (entry filled)\n"
    )


def test_an_exit_notifies_what_it_sold_and_the_realised_pnl(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")
    assert run(ctx, entry).status == "done"
    set_price(control, "BTCUSDT", "66000")

    assert run(ctx, submit(ctx, action="exit", side=None)).status == "done"

    (message,) = delivered(ctx, receiver, "exit")
    (position,) = positions(ctx)
    assert position.realized_pnl == D("0.00999") * (D("66000") - D("65000"))
    assert message["title"] == "[pacekeeper] Exit filled: SELL BTCUSDT 0.00999, realised PnL +9.99"
    assert message["message"].startswith(
        "market exit: 0.00999 at 66000; realised PnL 9.99; position closed\n"
    )


def test_a_resting_limit_entry_is_notified_when_it_fills(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", execution={"type": "limit", "price": "64000"})
    assert run(ctx, sid).status == "working"
    assert delivered(ctx, receiver, "entry_filled") == []

    set_price(control, "BTCUSDT", "63900")
    control.post("/clock", json={"advance": 2}).raise_for_status()
    assert follow_resting_orders(ctx) == 1

    (message,) = delivered(ctx, receiver, "entry_filled")
    assert message["title"] == "[pacekeeper] Entry filled: BUY BTCUSDT 0.01"
    assert message["message"].startswith("BUY 0.01 BTCUSDT (limit) at avg 64000")


def test_a_bracket_the_exchange_refuses_is_notified_as_unprotected(
    ctx: ExecContext, control: httpx.Client, receiver: Receiver
) -> None:
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_before", path="/api/v3/orderList/oco", method="POST", status=400,
          code=-1013, msg="Filter failure: MAX_NUM_ALGO_ORDERS", count=1)  # fmt: skip

    entry = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")
    assert run(ctx, entry).status == "done"

    (message,) = delivered(ctx, receiver, "unprotected", "bracket_placed")
    assert message["title"] == "[pacekeeper] UNPROTECTED position: BTCUSDT"
    assert message["type"] == "warning"
    assert message["message"].startswith(
        "unprotected: bracket rejected: Filter failure: MAX_NUM_ALGO_ORDERS (code -1013)\n"
    )
