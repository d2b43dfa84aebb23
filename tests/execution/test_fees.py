"""Fills found by a look-up (an answer lost then reconciled, a resting limit that filled
later) carry the commission Binance charged, read from GET /api/v3/myTrades?orderId=; the
bracket protects what the position received, not the gross quantity."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.execution.context import ExecContext
from app.execution.resting import follow_resting_orders
from app.models import Fill
from tests.execution.conftest import fault, ledger, orders, positions, run, set_price, submit

D = Decimal
pytestmark = pytest.mark.slow


def _fills(ctx: ExecContext, order_id: int) -> list[Fill]:
    with session_scope(ctx.sessions) as session:
        return list(session.scalars(select(Fill).where(Fill.order_id == order_id)))


def test_client_reads_an_orders_trades_with_their_commission(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    placed = ctx.client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                  quantity=D("0.01"), new_client_order_id="pk-fees-1")  # fmt: skip

    (trade,) = ctx.client.my_trades("BTCUSDT", placed.orderId)

    assert (trade.orderId, trade.price, trade.qty) == (placed.orderId, D("65000"), D("0.01"))
    assert trade.quoteQty == D("650") and trade.commissionAsset == "BTC"
    assert trade.commission == D("0.00001") and trade.id == placed.fills[0].tradeId
    assert ctx.client.my_trades("BTCUSDT", placed.orderId + 999) == []


def test_reconciled_market_entry_is_bracketed_net_of_its_commission(
    ctx: ExecContext, control: httpx.Client
) -> None:
    # The answer is lost (504 after executing): the entry is found by a look-up, which
    # lists no trades. The account already held BTC, so the free-balance cap cannot hide a
    # gross-sized bracket.
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_after", path="/api/v3/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")

    assert run(ctx, sid).status == "done"

    entry, oco = orders(ctx, sid)
    (fill,) = _fills(ctx, entry.id)
    assert (fill.qty, fill.fee, fill.fee_asset) == (D("0.01"), D("0.00001"), "BTC")
    assert not (entry.extra or {}).get("fees_unknown")
    (position,) = positions(ctx)
    assert position.quantity == D("0.00999")
    assert oco.quantity == D("0.00999")
    assert [e["quantity"] for e in ledger(control, kind="oco")] == ["0.00999"]


def test_resting_limit_fill_is_bracketed_net_of_its_commission(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", execution={"type": "limit", "price": "64000"},
                 take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, sid).status == "working"
    set_price(control, "BTCUSDT", "63900")
    control.post("/clock", json={"advance": 2}).raise_for_status()

    assert follow_resting_orders(ctx) == 1

    entry, oco = orders(ctx, sid)
    (fill,) = _fills(ctx, entry.id)
    assert (fill.qty, fill.fee, fill.price) == (D("0.01"), D("0.00001"), D("64000"))
    (position,) = positions(ctx)
    assert position.quantity == D("0.00999") and oco.quantity == D("0.00999")
