"""A spot VP on Binance's own cadence and with the spot visibility lag (openOrders shows
nothing executed until the algo ends): the monitor still records its fills from subOrders
as they come and protects them before the VP finishes."""

from __future__ import annotations

from decimal import Decimal

from app.exchange.filters import Market
from app.execution.protection import held
from app.models import OrderStatus
from tests.monitoring.conftest import BINANCE
from tests.monitoring.desk import Desk

D = Decimal
PAPER_CADENCE = BINANCE
STEP = D("0.00001")  # BTCUSDT's spot step size


def test_a_lagging_spot_vp_is_protected_as_it_fills(desk: Desk) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(
        quantity="0.3", execution={"type": "vp", "urgency": "medium"},
        take_profit="70000", stop_loss="60000",
    )  # fmt: skip
    assert desk.run(sid).status == "working"
    (vp,) = desk.orders(kind="vp")
    protected_while_working = False
    for _ in range(40):
        desk.advance(5)
        desk.cycle()
        row = desk.order(vp.id)
        position = desk.position(vp.position_id)
        ocos = [o for o in desk.orders(kind="oco") if o.status == OrderStatus.WORKING]
        if row.status == OrderStatus.WORKING and held(position) > 0:
            # openOrders says 0 executed; the fills came from subOrders, and are protected.
            (listed,) = desk.ctx.client.algo_open_orders(Market.SPOT)
            assert listed.executedQty == 0
            assert ocos and ocos[0].quantity is not None
            assert D(0) <= held(position) - ocos[0].quantity < STEP  # rounded down to a step
            protected_while_working = True
        if row.status != OrderStatus.WORKING:
            break
    assert protected_while_working
    row = desk.order(vp.id)
    assert row.status == OrderStatus.FILLED and desk.fills_qty(vp.id) == D("0.3")
    (oco,) = [o for o in desk.orders(kind="oco") if o.status == OrderStatus.WORKING]
    assert held(desk.position(vp.position_id)) == D("0.3") * D("0.999")
    assert oco.quantity == D("0.2997")
