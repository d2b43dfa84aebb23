"""Spot VP (``POST /sapi/v1/algo/spot/newOrderVp``, Binance 2026-10-09) end to end: a signal
with ``execution.type: "vp"`` on spot is planned, placed on the paper exchange, followed by
the monitor like a spot TWAP (fills from subOrders, pace) and ends protected."""

from __future__ import annotations

from decimal import Decimal

from app.exchange.ids import client_algo_id
from app.execution.protection import held
from app.models import OrderStatus
from tests.monitoring.desk import Desk

D = Decimal
INTERVAL = 5.0


def test_a_spot_vp_entry_fills_and_ends_protected(desk: Desk) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(
        quantity="0.2", execution={"type": "vp", "urgency": "high"},
        take_profit="70000", stop_loss="60000",
    )  # fmt: skip
    outcome = desk.run(sid)
    assert outcome.status == "working", outcome.reason
    (vp,) = desk.orders(kind="vp")
    assert (vp.market, vp.client_id, vp.urgency) == ("spot", client_algo_id(sid, "entry"), "HIGH")
    (placed,) = desk.ledger(kind="spot_vp")
    assert (placed["client_id"], placed["quantity"]) == (vp.client_id, "0.2")

    for _ in range(6):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(vp.id).status != OrderStatus.WORKING:
            break

    vp = desk.order(vp.id)
    assert vp.status == OrderStatus.FILLED and vp.executed_qty == D("0.2")
    assert desk.fills_qty(vp.id) == D("0.2")
    position = desk.position(vp.position_id)
    assert position.quantity == D("0.2") * D("0.999")  # net of the base-asset fee
    (oco,) = [o for o in desk.orders(kind="oco") if o.status == OrderStatus.WORKING]
    assert oco.side == "SELL" and oco.quantity == held(position)
    # Protected as it filled (resized each cycle); the last OCO covers all of it.
    sent = desk.ledger(kind="oco")
    assert sent[-1]["client_id"] == oco.client_id and D(sent[-1]["quantity"]) == held(position)
    assert all(e["status"] != "EXECUTING" for e in sent[:-1])
    assert desk.signal(sid).status == "done"


def test_a_spot_vp_below_the_vp_minimum_is_refused_in_usdt(desk: Desk) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(quantity="0.1", execution={"type": "vp", "urgency": "low"})

    outcome = desk.run(sid)

    assert outcome.status == "refused" and outcome.reason is not None
    assert "10000 USDT" in outcome.reason and "6500" in outcome.reason
    assert desk.ledger(kind="spot_vp") == []
