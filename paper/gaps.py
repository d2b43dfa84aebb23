"""Price gaps (``POST /paper/gap``): a symbol jumps from one price straight to another.

Markets open far from where they closed (a weekend, a halt, a liquidation cascade) and no
trade happens at the prices in between. Every stop beyond the old price then triggers at the
new one: a STOP_LOSS (market) fills at the gapped price, while a STOP_LOSS_LIMIT whose limit
lies between the two prices triggers but cannot fill and rests as a limit order, leaving the
position unprotected while its OCO list still reads ``EXECUTING``. Resting limits in the gap
fill at their own price (they were in the book). The answer lists every order the jump
changed, so a scenario can assert on it directly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from paper.numbers import fmt8

if TYPE_CHECKING:
    from paper.engine import Engine


def jump(
    engine: Engine, symbol: str, to: Decimal, start: Decimal | None = None
) -> dict[str, object]:
    """Set ``start`` first (when given, firing what it fires), then jump to ``to``."""
    if start is not None:
        engine.set_price(symbol, start)
    before = _snapshot(engine, symbol)
    was = engine.price(symbol)
    engine.set_price(symbol, to)
    now_open = _snapshot(engine, symbol)
    # Orders open before the jump as they read now, then orders the jump opened (the limit
    # order a triggered USD-M STOP places, say).
    after = {key: _row(engine, *key) for key in before} | now_open
    changed = [row for key, row in after.items() if before.get(key) != row]
    return {"symbol": symbol, "from": fmt8(was), "to": fmt8(to), "changed": changed}


def _snapshot(engine: Engine, symbol: str) -> dict[tuple[str, int], dict[str, object]]:
    """What a client would read of every order open on ``symbol`` now."""
    keys = [
        *(("spot", order_id) for order_id in engine.spot.open[symbol]),
        *(("conditional", algo_id) for algo_id in engine.futures.conditional.open[symbol]),
        *(("futures", order_id) for order_id in engine.futures.open[symbol]),
    ]
    return {key: _row(engine, *key) for key in keys}


def _row(engine: Engine, kind: str, ident: int) -> dict[str, object]:
    if kind == "spot":
        order = engine.spot.orders[ident]
        return {
            "market": "spot",
            "orderId": order.order_id,
            "clientOrderId": order.client_order_id,
            "orderListId": order.list_id,
            "type": order.type,
            "side": order.side,
            "status": order.status,
            "isWorking": order.working,
            "executedQty": fmt8(order.executed),
        }
    if kind == "conditional":
        cond = engine.futures.conditional.conditionals[ident]
        return {
            "market": "usdm",
            "algoId": cond.algo_id,
            "clientAlgoId": cond.client_algo_id,
            "orderType": cond.order_type,
            "side": cond.side,
            "algoStatus": cond.status,
            "actualOrderId": cond.actual_order_id,
        }
    actual = engine.futures.orders[ident]
    return {
        "market": "usdm",
        "orderId": actual.order_id,
        "clientOrderId": actual.client_order_id,
        "type": actual.type,
        "side": actual.side,
        "status": actual.status,
        "executedQty": fmt8(actual.executed),
    }
