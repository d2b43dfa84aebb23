"""OCO order lists (``POST /api/v3/orderList/oco``): an above and a below leg sharing one
reservation. When a leg triggers or starts to fill, the other leg ends ``EXPIRED``
(expiryReason ``OCO_TRIGGER``). The list is ``ALL_DONE`` only once no leg is open: a
stop-limit leg that a gap triggered past its limit rests unfilled as a working limit order,
and until it fills or is cancelled the list still reads ``EXECUTING`` (reference §9),
although nothing protects the position at the stop any more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic
from typing import TYPE_CHECKING

from paper.errors import (
    BAD_PRICE_RELATIONSHIP,
    DUPLICATE_ORDER,
    BinanceError,
    filter_failure,
    mandatory,
    not_required,
    rejected,
)
from paper.ledger import OCO
from paper.numbers import ZERO
from paper.orders import STOP_TYPES, SpotOrder, render_cancel, render_report, trailing_delta
from paper.params import Params
from paper.symbols import MAX_NUM_ORDER_LISTS
from paper.wallet import Reservation

if TYPE_CHECKING:
    from paper.spot import SpotBook

LEG_TYPES = ("STOP_LOSS_LIMIT", "STOP_LOSS", "LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
PROFIT_TYPES = ("LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
STOP_LEG_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT")


@dataclass
class OrderList:
    order_list_id: int
    list_client_order_id: str
    symbol: str
    transaction_time: int
    leg_ids: list[int]
    list_status_type: str = "EXEC_STARTED"
    list_order_status: str = "EXECUTING"
    reservation: Reservation | None = None
    created_mono: float = field(default_factory=monotonic)

    @property
    def is_open(self) -> bool:
        return self.list_order_status == "EXECUTING"


@dataclass
class Leg:
    type: str
    price: Decimal | None
    stop: Decimal | None
    tif: str | None
    client_id: str | None
    trailing_delta: int = 0


class OcoBook:
    """The order lists of the spot book; legs are ordinary ``SpotOrder`` rows in it."""

    def __init__(self, spot: SpotBook) -> None:
        self.spot = spot
        self.engine = spot.engine
        self.lists: dict[int, OrderList] = {}
        self.open_lists: dict[int, OrderList] = {}
        self.by_client: dict[str, int] = {}

    def place(self, p: Params) -> dict[str, object]:
        engine, spot = self.engine, self.spot
        spec = engine.spec(p.text("symbol"))
        side = p.side()
        qty = p.req_decimal("quantity")
        above, below = self._leg(p, "above"), self._leg(p, "below")
        resp = p.enum("newOrderRespType", ("ACK", "RESULT", "FULL")) or "FULL"
        kinds = {above.type in PROFIT_TYPES, below.type in PROFIT_TYPES}
        if kinds == {True}:
            raise BinanceError(-1168, "At least one OCO order must be contingent.")
        if kinds == {False}:
            raise BinanceError(-1158, "Order type not supported in OCO.")
        profit, stop = (above, below) if side == "SELL" else (below, above)
        if profit.type not in PROFIT_TYPES:
            raise rejected(BAD_PRICE_RELATIONSHIP)
        last = engine.price(spec.symbol)
        profit_levels = [v for v in (profit.price, profit.stop) if v is not None]
        # A trailing stop leg may come without a stopPrice: it tracks from the latest price.
        stops = [stop.stop] if stop.stop is not None else []
        if side == "SELL":
            ok = all(v > last for v in profit_levels) and all(v < last for v in stops)
        else:
            ok = all(v < last for v in profit_levels) and all(v > last for v in stops)
        if not ok:
            raise rejected(BAD_PRICE_RELATIONSHIP)
        for leg in (below, above):
            spot.check_filters(spec, leg.type, side, qty, leg.price, leg.stop)
        # Every stop or take-profit leg counts against MAX_NUM_ALGO_ORDERS, a LIMIT_MAKER does not.
        stop_legs = sum(1 for leg in (above, below) if leg.type in STOP_TYPES)
        spot.check_counts(spec.symbol, stop_legs, new_orders=2)
        open_lists = sum(1 for o in self.open_lists.values() if o.symbol == spec.symbol)
        if open_lists >= MAX_NUM_ORDER_LISTS:
            raise filter_failure("MAX_NUM_ORDER_LISTS")
        list_client_id = p.get("listClientOrderId") or engine.random_id()
        existing = self.by_client.get(list_client_id)
        if existing is not None and self.lists[existing].is_open:
            raise rejected(DUPLICATE_ORDER)
        ids = [spot.client_id(spec.symbol, leg.client_id) for leg in (below, above)]
        if ids[0] == ids[1]:
            raise rejected(DUPLICATE_ORDER)
        if side == "SELL":
            reservation = engine.spot_wallet.reserve(spec.base, qty)
        else:
            worst = max(
                [v for leg in (above, below) for v in (leg.price, leg.stop) if v is not None]
                # a trailing stop without a stopPrice triggers at most this far above
                + [last * (1 + Decimal(stop.trailing_delta) / 10_000)]
            )
            reservation = engine.spot_wallet.reserve(spec.quote, qty * worst)
        now = engine.now
        order_list = OrderList(
            order_list_id=engine.ids.next("list"),
            list_client_order_id=list_client_id,
            symbol=spec.symbol,
            transaction_time=now,
            leg_ids=[],
            reservation=reservation,
        )
        for leg, client_id in zip((below, above), ids, strict=True):
            order = SpotOrder(
                order_id=engine.ids.next("order"),
                symbol=spec.symbol,
                client_order_id=client_id,
                side=side,
                type=leg.type,
                time_in_force=leg.tif or "GTC",
                qty=qty,
                price=leg.price or ZERO,
                stop_price=leg.stop or ZERO,
                time=now,
                update_time=now,
                working_time=now if leg.type == "LIMIT_MAKER" else -1,
                list_id=order_list.order_list_id,
                trailing_delta=leg.trailing_delta,
            )
            if leg.trailing_delta and leg.stop is None:
                order.trailing_time, order.extreme = now, last
            spot.store(order)
            order_list.leg_ids.append(order.order_id)
        self.lists[order_list.order_list_id] = order_list
        self.open_lists[order_list.order_list_id] = order_list
        self.by_client[list_client_id] = order_list.order_list_id
        engine.ledger.record(
            key=engine.key,
            time=now,
            kind=OCO,
            symbol=spec.symbol,
            side=side,
            quantity=qty,
            ident=order_list.order_list_id,
            client_id=list_client_id,
            client_ids={"list": list_client_id, "below": ids[0], "above": ids[1]},
            order_type=f"{above.type}/{below.type}",
            prices={
                "take_profit": profit.price if profit.price is not None else profit.stop,
                "stop": stop.stop,
                "stop_limit": stop.price,
                "trailing_delta": Decimal(stop.trailing_delta) if stop.trailing_delta else None,
            },
        )
        return self.render_list(order_list, reports=resp != "ACK")

    @staticmethod
    def _leg(p: Params, prefix: str) -> Leg:
        leg_type = p.req_enum(f"{prefix}Type", LEG_TYPES, BinanceError(-1116, "Invalid orderType."))
        leg = Leg(
            type=leg_type,
            price=p.decimal(f"{prefix}Price"),
            stop=p.decimal(f"{prefix}StopPrice"),
            tif=p.enum(
                f"{prefix}TimeInForce",
                ("GTC", "IOC", "FOK"),
                error=BinanceError(-1115, "Invalid timeInForce."),
            ),
            client_id=p.get(f"{prefix}ClientOrderId"),
        )
        leg.trailing_delta = trailing_delta(p, f"{prefix}TrailingDelta", leg_type)
        needs: list[tuple[str, object]] = []
        if leg_type in ("LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            needs.append((f"{prefix}Price", leg.price))
        if leg_type != "LIMIT_MAKER" and not leg.trailing_delta:
            needs.append((f"{prefix}StopPrice", leg.stop))
        if leg_type in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            needs.append((f"{prefix}TimeInForce", leg.tif))
        for name, value in needs:
            if value is None:
                raise mandatory(name)
        if leg_type in ("STOP_LOSS", "TAKE_PROFIT") and leg.price is not None:
            raise not_required(f"{prefix}Price")
        if leg_type == "LIMIT_MAKER" and leg.stop is not None:
            raise not_required(f"{prefix}StopPrice")
        return leg

    # events -------------------------------------------------------------------------------

    def on_leg_event(self, order: SpotOrder) -> None:
        """A leg triggered or is about to fill: the other leg expires and the list's
        reservation passes to this leg (the list itself ends when this leg does)."""
        if order.list_id < 0:
            return
        order_list = self.lists[order.list_id]
        if not order_list.is_open or order_list.reservation is None:
            return
        order.reservation, order_list.reservation = order_list.reservation, None
        for leg_id in order_list.leg_ids:
            other = self.spot.orders[leg_id]
            if other is not order and other.is_open:
                self.spot.end(other, "EXPIRED", "OCO_TRIGGER")

    def on_leg_done(self, order: SpotOrder) -> None:
        """A leg filled, was cancelled or expired: the list is done once no leg is open."""
        if order.list_id < 0:
            return
        order_list = self.lists[order.list_id]
        if order_list.is_open and not any(self.spot.orders[i].is_open for i in order_list.leg_ids):
            self._finish(order_list)

    def _finish(self, order_list: OrderList) -> None:
        order_list.list_status_type = "ALL_DONE"
        order_list.list_order_status = "ALL_DONE"
        self.open_lists.pop(order_list.order_list_id, None)

    def cancel_list_orders(self, order_list: OrderList) -> None:
        self.engine.spot_wallet.release(order_list.reservation)
        order_list.reservation = None
        for leg_id in order_list.leg_ids:
            leg = self.spot.orders[leg_id]
            if leg.is_open:
                self.spot.end(leg, "CANCELED")
        self._finish(order_list)

    # queries ------------------------------------------------------------------------------

    def find_list(self, p: Params, *, client_param: str) -> OrderList:
        list_id = p.integer("orderListId")
        client_id = p.get(client_param)
        if list_id is None and client_id is None:
            raise BinanceError(
                -1102,
                f"Param '{client_param}' or 'orderListId' must be sent, but both were empty/null!",
            )
        if list_id is None:
            list_id = self.by_client.get(client_id or "")
        order_list = self.lists.get(list_id) if list_id is not None else None
        if order_list is None or (
            client_id is not None and order_list.list_client_order_id != client_id
        ):
            raise BinanceError(-2013, "Order list does not exist.")
        if not self.engine.visible(order_list.created_mono, p.lag_s):
            raise BinanceError(-2013, "Order list does not exist.")
        return order_list

    def query_list(self, p: Params) -> dict[str, object]:
        return self.render_list(self.find_list(p, client_param="origClientOrderId"), reports=False)

    def open_order_lists(self, p: Params) -> list[dict[str, object]]:
        return [
            self.render_list(order_list, reports=False)
            for order_list in self.open_lists.values()
            if self.engine.visible(order_list.created_mono, p.lag_s)
        ]

    def cancel_list(self, p: Params) -> dict[str, object]:
        symbol = self.engine.spec(p.text("symbol")).symbol
        try:
            order_list = self.find_list(p, client_param="listClientOrderId")
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(-2011, "Unknown order list sent.") from None
            raise
        if not order_list.is_open or order_list.symbol != symbol:
            raise BinanceError(-2011, "Unknown order list sent.")
        self.cancel_list_orders(order_list)
        out = self.render_list(order_list, reports=False)
        cancel_id = p.get("newClientOrderId")
        out["orderReports"] = [
            render_cancel(
                self.spot.orders[i], cancel_id or self.engine.random_id(), self.engine.now
            )
            for i in order_list.leg_ids
        ]
        return out

    def render_list(self, order_list: OrderList, *, reports: bool) -> dict[str, object]:
        legs = [self.spot.orders[i] for i in order_list.leg_ids]
        out: dict[str, object] = {
            "orderListId": order_list.order_list_id,
            "contingencyType": "OCO",
            "listStatusType": order_list.list_status_type,
            "listOrderStatus": order_list.list_order_status,
            "listClientOrderId": order_list.list_client_order_id,
            "transactionTime": order_list.transaction_time,
            "symbol": order_list.symbol,
            "orders": [
                {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
                for o in legs
            ],
        }
        if reports:
            out["orderReports"] = [render_report(o) for o in legs]
        return out
