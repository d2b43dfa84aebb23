"""Open brackets: when a take-profit or stop-loss leg fills, record the exit and close the
position with its realised result.

The execution layer places a bracket as (``app/execution/planning.py``):

* spot, both levels: an OCO order list (``kind="oco"``); one ``openOrderList`` call per cycle,
  and for a list that left it, the list and each leg (``GET /api/v3/order``) to see which leg
  filled (Binance expires the other leg itself; both are kept on the row's ``extra``);
* spot, one level: a TAKE_PROFIT_LIMIT or STOP_LOSS_LIMIT order; ``openOrders`` per symbol
  (weight 6; all symbols, weight 80, when that is cheaper), then the order that left it;
* USD-M: TAKE_PROFIT_MARKET / STOP_MARKET conditional orders with closePosition
  (``kind="conditional"``, one row per leg); ``openAlgoOrders`` per symbol, then the leg that
  ended and the order it triggered. The monitor cancels the sibling leg itself.

Exits are recorded as one fill per exchange order (order queries carry no trades, so no
commission: exit fees are not in the realised PnL); ``apply_exit_fills`` computes the
position's realised result and closes it when only the bracket's rounding dust is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from sqlalchemy import select, update

from app.exchange.errors import AlreadyDone
from app.exchange.models import Order as VenueOrder
from app.execution.context import ExecContext
from app.execution.journal import event, exit_filled
from app.execution.positions import aggregate_fill, apply_exit_fills, record_fills
from app.models import Order, OrderStatus, Position
from app.monitoring.algos import compare_and_set, qty
from app.monitoring.lock import LockLost, SingleFlight

log = logging.getLogger(__name__)

ZERO = Decimal(0)
SPOT_LEG_KINDS = ("take_profit_limit", "stop_loss_limit", "stop_loss")
BRACKET_KINDS = ("oco", "conditional", *SPOT_LEG_KINDS)
OPEN_CONDITIONAL = ("NEW", "TRIGGERING")
# One openOrders call for every symbol costs as much as this many single-symbol calls.
ALL_SYMBOLS_WEIGHT, ONE_SYMBOL_WEIGHT = 80, 6


@dataclass(frozen=True)
class Bracket:
    order_id: int
    signal_id: str | None
    position_id: int
    kind: str
    symbol: str
    client_id: str
    venue_id: int | None


@dataclass(frozen=True)
class Exit:
    """What one exchange order of a bracket executed."""

    venue_order_id: int
    qty: Decimal
    quote: Decimal
    time_ms: int | None


@dataclass
class BracketResult:
    checked: int = 0
    exits: int = 0
    errors: int = 0


def watch_brackets(ctx: ExecContext, flight: SingleFlight) -> BracketResult:
    """Poll every working bracket once; settle those that left the open listings."""
    result = BracketResult()
    with ctx.sessions() as session:
        rows = session.scalars(
            select(Order).where(
                Order.account == ctx.account,
                Order.status == OrderStatus.WORKING,
                Order.kind.in_(BRACKET_KINDS),
                Order.position_id.is_not(None),
            )
        ).all()
        brackets = [
            Bracket(
                o.id, o.signal_id, o.position_id or 0, o.kind, o.symbol, o.client_id, o.venue_id
            )
            for o in rows
        ]
    result.checked = len(brackets)
    if brackets:
        watcher = _Watcher(ctx, flight, result)
        watcher.lists([b for b in brackets if b.kind == "oco"])
        watcher.spot_legs([b for b in brackets if b.kind in SPOT_LEG_KINDS])
        watcher.conditionals([b for b in brackets if b.kind == "conditional"])
    return result


class _Watcher:
    def __init__(self, ctx: ExecContext, flight: SingleFlight, result: BracketResult) -> None:
        self.ctx, self.client, self.flight, self.result = ctx, ctx.client, flight, result

    def guarded(self, bracket: Bracket | None, what: str, fn: Callable[[], None]) -> None:
        """Run one step; an error is recorded and the other brackets go on."""
        try:
            fn()
        except LockLost:
            raise
        except Exception as exc:
            self.result.errors += 1
            log.warning("monitor: %s failed: %s", what, exc)
            with self.ctx.sessions() as session:
                event(
                    session,
                    "monitor_error",
                    f"{what}: {type(exc).__name__}: {exc}"[:2000],
                    signal_id=bracket.signal_id if bracket else None,
                    order_id=bracket.order_id if bracket else None,
                )
                session.commit()

    def _settle_missing(
        self, brackets: list[Bracket], live: set[str], settle: Callable[[Bracket], None]
    ) -> None:
        for bracket in brackets:
            if bracket.client_id not in live:
                what = f"settling {bracket.kind} {bracket.client_id}"
                self.guarded(bracket, what, partial(settle, bracket))

    # ---- spot --------------------------------------------------------------------------

    def lists(self, brackets: list[Bracket]) -> None:
        if not brackets:
            return

        def run() -> None:
            live = {ol.listClientOrderId for ol in self.client.open_order_lists()}
            self._settle_missing(brackets, live, self._oco)

        self.guarded(None, "openOrderList", run)

    def _oco(self, bracket: Bracket) -> None:
        if bracket.venue_id is not None:
            order_list = self.client.get_order_list(order_list_id=bracket.venue_id)
        else:
            order_list = self.client.get_order_list(list_client_order_id=bracket.client_id)
        if not order_list.is_done:
            return  # still executing (the open listing lagged)
        legs = [
            self.client.get_order(bracket.symbol, order_id=o.orderId) for o in order_list.orders
        ]
        if any(leg.is_open for leg in legs):
            # A triggered leg still works after its list ended: a stop-limit the price gapped
            # past rests unfilled (the protection pass stops the position out and cancels
            # it), or a leg still filling. Not ended: it can still sell.
            return
        exits = [_spot_exit(leg) for leg in legs if (leg.executedQty or ZERO) > 0]
        status = _spot_status(legs, exits)
        views = [
            {
                "orderId": leg.orderId,
                "clientOrderId": leg.clientOrderId,
                "type": leg.type,
                "status": str(leg.status),
                "executedQty": qty(leg.executedQty or ZERO),
            }
            for leg in legs
        ]
        self._settle(bracket, status, order_list.listOrderStatus, exits, {"legs": views})

    def spot_legs(self, brackets: list[Bracket]) -> None:
        if not brackets:
            return
        symbols = sorted({b.symbol for b in brackets})

        def run() -> None:
            if len(symbols) * ONE_SYMBOL_WEIGHT < ALL_SYMBOLS_WEIGHT:
                open_orders = [o for s in symbols for o in self.client.open_orders(s)]
            else:
                open_orders = self.client.open_orders()
            live = {o.clientOrderId for o in open_orders}
            self._settle_missing(brackets, live, self._spot_leg)

        self.guarded(None, "openOrders", run)

    def _spot_leg(self, bracket: Bracket) -> None:
        if bracket.venue_id is not None:
            leg = self.client.get_order(bracket.symbol, order_id=bracket.venue_id)
        else:
            leg = self.client.get_order(bracket.symbol, orig_client_order_id=bracket.client_id)
        if leg.is_open:
            return
        exits = [_spot_exit(leg)] if (leg.executedQty or ZERO) > 0 else []
        self._settle(bracket, _spot_status([leg], exits), str(leg.status), exits, {})

    # ---- USD-M -------------------------------------------------------------------------

    def conditionals(self, brackets: list[Bracket]) -> None:
        for symbol in sorted({b.symbol for b in brackets}):
            mine = [b for b in brackets if b.symbol == symbol]

            def run(symbol: str = symbol, mine: list[Bracket] = mine) -> None:
                live = {c.clientAlgoId for c in self.client.open_conditional_orders(symbol)}
                self._settle_missing(mine, live, self._conditional)

            self.guarded(None, f"openAlgoOrders {symbol}", run)

    def _conditional(self, bracket: Bracket) -> None:
        if bracket.venue_id is not None:
            cond = self.client.get_conditional_order(algo_id=bracket.venue_id)
        else:
            cond = self.client.get_conditional_order(client_algo_id=bracket.client_id)
        if cond.algoStatus in OPEN_CONDITIONAL:
            return
        exits = []
        if cond.actualOrderId:
            actual = self.client.get_futures_order(bracket.symbol, order_id=cond.actualOrderId)
            if actual.is_open:
                return  # triggered; the order it placed is still working
            executed = actual.executedQty or ZERO
            if executed > 0:
                quote = actual.cumQuote or executed * (actual.avgPrice or ZERO)
                exits.append(Exit(actual.orderId, executed, quote, actual.updateTime))
        if exits:
            status = OrderStatus.FILLED
        elif cond.algoStatus == "CANCELED":
            status = OrderStatus.CANCELLED
        elif cond.algoStatus == "REJECTED":
            status = OrderStatus.REJECTED
        else:
            status = OrderStatus.EXPIRED
        extra: dict[str, object] = {"actualOrderId": cond.actualOrderId}
        settled = self._settle(bracket, status, str(cond.algoStatus), exits, extra)
        if settled and exits and not self._ladder_target_left(bracket):
            self._cancel_siblings(bracket)

    def _ladder_target_left(self, bracket: Bracket) -> bool:
        """A ladder's take-profit filled and the position still holds the other targets:
        their orders and the stop keep protecting it (the protection pass shrinks the stop)."""
        with self.ctx.sessions() as session:
            order = session.get(Order, bracket.order_id)
            position = session.get(Position, bracket.position_id)
            if order is None or position is None or "target" not in (order.extra or {}):
                return False
            left = (position.quantity or ZERO) - (position.exit_quantity or ZERO)
            return position.status == "open" and left > 0

    def _cancel_siblings(self, bracket: Bracket) -> None:
        """A filled leg leaves the other one pointless: cancel it on the exchange."""
        with self.ctx.sessions() as session:
            siblings = [
                (o.id, o.venue_id, o.client_id)
                for o in session.scalars(
                    select(Order).where(
                        Order.position_id == bracket.position_id,
                        Order.kind == "conditional",
                        Order.status == OrderStatus.WORKING,
                        Order.id != bracket.order_id,
                    )
                )
            ]
        for order_id, algo_id, client_id in siblings:
            self.flight.ensure()
            try:
                if algo_id is not None:
                    self.client.cancel_conditional_order(algo_id=algo_id)
                else:
                    self.client.cancel_conditional_order(client_algo_id=client_id)
            except AlreadyDone:
                pass  # it ended on its own
            with self.ctx.sessions() as session:
                working = Order.id == order_id, Order.status == OrderStatus.WORKING
                cancelled = {"status": OrderStatus.CANCELLED, "venue_status": "CANCELED"}
                if compare_and_set(session, update(Order).where(*working).values(**cancelled)):
                    event(
                        session,
                        "state",
                        "bracket leg cancelled: the other leg filled",
                        signal_id=bracket.signal_id,
                        order_id=order_id,
                    )
                session.commit()

    # ---- shared ------------------------------------------------------------------------

    def _settle(
        self,
        bracket: Bracket,
        status: OrderStatus,
        venue_status: str,
        exits: list[Exit],
        extra: dict[str, object],
    ) -> bool:
        """End the bracket row once (compare-and-set), record its exits, update the position."""
        with self.ctx.sessions() as session:
            working = Order.id == bracket.order_id, Order.status == OrderStatus.WORKING
            ended = {"status": status, "venue_status": venue_status}
            if not compare_and_set(session, update(Order).where(*working).values(**ended)):
                return False  # another monitor settled it
            order = session.get(Order, bracket.order_id)
            position = session.get(Position, bracket.position_id)
            assert order is not None
            order.extra = {**(order.extra or {}), **extra}
            fills = [
                f
                for e in exits
                for f in aggregate_fill(e.venue_order_id, e.qty, e.quote, None, e.time_ms)
            ]
            now = self.ctx.clock.now()
            record_fills(session, order, fills, now=now)
            order.executed_qty = sum((f.qty for f in fills), ZERO)
            order.executed_amt = sum((f.quote_qty for f in fills), ZERO)
            order.avg_price = order.executed_amt / order.executed_qty if fills else None
            if exits and position is not None:
                # What the bracket could not cover (the quantity rounded down to the step).
                # A ladder target covers its slice only: the other targets cover the rest.
                ladder = "target" in (order.extra or {})
                dust = (
                    max(position.quantity - order.quantity, ZERO)
                    if order.quantity and not ladder
                    else ZERO
                )
                apply_exit_fills(session, position, now=now, dust=dust)
                exit_filled(session, order, position, status=status.value,
                            venue_status=venue_status)  # fmt: skip
                self.result.exits += 1
            else:
                event(
                    session,
                    "state",
                    f"bracket ended unfilled ({venue_status}); the position is unprotected",
                    signal_id=bracket.signal_id,
                    order_id=bracket.order_id,
                    status=status.value,
                    venue_status=venue_status,
                )
            session.commit()
        return True


def _spot_exit(leg: VenueOrder) -> Exit:
    executed = leg.executedQty or ZERO
    quote = leg.cummulativeQuoteQty or executed * (leg.price or ZERO)
    return Exit(leg.orderId, executed, quote, leg.updateTime or leg.time)


def _spot_status(legs: list[VenueOrder], exits: list[Exit]) -> OrderStatus:
    if exits:
        return OrderStatus.FILLED
    if any(leg.status in ("EXPIRED", "EXPIRED_IN_MATCH") for leg in legs):
        return OrderStatus.EXPIRED
    if any(leg.status == "REJECTED" for leg in legs):
        return OrderStatus.REJECTED
    return OrderStatus.CANCELLED
