"""Binance algo orders (``/sapi/v1/algo/spot/*`` and ``/sapi/v1/algo/futures/*``, TWAP and VP).

Placing returns only ``clientAlgoId``; cancel and subOrders need ``algoId``, which only the
open and historical listings show. ``find_algo`` does that look-up. ``market`` is ``"spot"``
or ``"usdm"`` (the USD-M algos live on the spot host under ``/sapi/v1/algo/futures``).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from app.exchange.filters import Market
from app.exchange.models import (
    AlgoAccepted,
    AlgoCancelled,
    AlgoOrder,
    AlgoOrderPage,
    SubOrder,
    SubOrderPage,
)
from app.exchange.session import BinanceSession, parse

PAGE_SIZE = 100
DAY_MS = 24 * 3600 * 1000
# How far back find_algo looks in historicalOrders when not told (``algo_lookup_days``
# overrides it). A TWAP may run 24 h and an outage may last longer: a day was too short.
DEFAULT_LOOKBACK_MS = 7 * DAY_MS


def _base(market: Market) -> str:
    return "/sapi/v1/algo/spot" if market == "spot" else "/sapi/v1/algo/futures"


class AlgoOrders(BinanceSession):
    @property
    def _algo_lookback_ms(self) -> int:
        return int(self._algo_lookup_days * DAY_MS)

    def new_spot_twap(
        self,
        *,
        symbol: str,
        side: str,
        quantity: Decimal,
        duration: int,
        client_algo_id: str,
        limit_price: Decimal | None = None,
    ) -> AlgoAccepted:
        """POST newOrderTwap (spot). Weight UID 3000. ``success`` does not mean it will fill."""
        path = "/sapi/v1/algo/spot/newOrderTwap"
        params = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "duration": duration,
            "clientAlgoId": client_algo_id,
            "limitPrice": limit_price,
        }
        # recvWindow is not among this endpoint's documented parameters; Binance's default applies.
        body = self.call("POST", path, params, signed=True, recv_window=False)
        return parse(AlgoAccepted, body, method="POST", path=path)

    def new_spot_vp(
        self,
        *,
        symbol: str,
        side: str,
        quantity: Decimal,
        urgency: str,
        client_algo_id: str,
        limit_price: Decimal | None = None,
    ) -> AlgoAccepted:
        """POST /sapi/v1/algo/spot/newOrderVp (Binance 2026-10-09): ``urgency`` LOW, MEDIUM
        or HIGH, no duration; spot has no ``reduceOnly`` or ``positionSide``."""
        path = "/sapi/v1/algo/spot/newOrderVp"
        params = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "urgency": urgency,
            "clientAlgoId": client_algo_id,
            "limitPrice": limit_price,
        }
        body = self.call("POST", path, params, signed=True)
        return parse(AlgoAccepted, body, method="POST", path=path)

    def new_futures_twap(
        self,
        *,
        symbol: str,
        side: str,
        quantity: Decimal,
        duration: int,
        client_algo_id: str,
        limit_price: Decimal | None = None,
        position_side: str | None = None,
        reduce_only: bool | None = None,
    ) -> AlgoAccepted:
        """POST /sapi/v1/algo/futures/newOrderTwap. Weight UID 3000."""
        path = "/sapi/v1/algo/futures/newOrderTwap"
        params = {
            "symbol": symbol,
            "side": side,
            "positionSide": position_side,
            "quantity": quantity,
            "duration": duration,
            "clientAlgoId": client_algo_id,
            "reduceOnly": reduce_only,
            "limitPrice": limit_price,
        }
        body = self.call("POST", path, params, signed=True)
        return parse(AlgoAccepted, body, method="POST", path=path)

    def new_futures_vp(
        self,
        *,
        symbol: str,
        side: str,
        quantity: Decimal,
        urgency: str,
        client_algo_id: str,
        limit_price: Decimal | None = None,
        position_side: str | None = None,
        reduce_only: bool | None = None,
    ) -> AlgoAccepted:
        """POST /sapi/v1/algo/futures/newOrderVp (``urgency`` LOW, MEDIUM or HIGH)."""
        path = "/sapi/v1/algo/futures/newOrderVp"
        params = {
            "symbol": symbol,
            "side": side,
            "positionSide": position_side,
            "quantity": quantity,
            "urgency": urgency,
            "clientAlgoId": client_algo_id,
            "reduceOnly": reduce_only,
            "limitPrice": limit_price,
        }
        body = self.call("POST", path, params, signed=True)
        return parse(AlgoAccepted, body, method="POST", path=path)

    def cancel_algo(self, market: Market, algo_id: int) -> AlgoCancelled:
        """DELETE …/order. Raises ``AlreadyDone`` (-20124) if it already finished."""
        path = f"{_base(market)}/order"
        body = self.call("DELETE", path, {"algoId": algo_id}, signed=True)
        return parse(AlgoCancelled, body, method="DELETE", path=path)

    def algo_open_orders(self, market: Market) -> list[AlgoOrder]:
        """Every working algo order of the account (no paging, no symbol filter)."""
        path = f"{_base(market)}/openOrders"
        body = self.call("GET", path, signed=True)
        return parse(AlgoOrderPage, body, method="GET", path=path).orders

    def algo_historical_orders(
        self,
        market: Market,
        *,
        symbol: str | None = None,
        side: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        page: int = 1,
        page_size: int = PAGE_SIZE,
    ) -> AlgoOrderPage:
        """One page of finished algo orders (times in ms)."""
        path = f"{_base(market)}/historicalOrders"
        params = {
            "symbol": symbol,
            "side": side,
            "startTime": start_time,
            "endTime": end_time,
            "page": page,
            "pageSize": page_size,
        }
        body = self.call("GET", path, params, signed=True)
        return parse(AlgoOrderPage, body, method="GET", path=path)

    def iter_algo_historical_orders(
        self,
        market: Market,
        *,
        symbol: str | None = None,
        side: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> Iterator[AlgoOrder]:
        """Every finished algo order in the window, across all pages."""

        def fetch(page: int) -> tuple[list[AlgoOrder], int]:
            result = self.algo_historical_orders(
                market,
                symbol=symbol,
                side=side,
                start_time=start_time,
                end_time=end_time,
                page=page,
            )
            return result.orders, result.total

        return self.pages(fetch, PAGE_SIZE, path=f"{_base(market)}/historicalOrders")

    def algo_sub_orders(
        self, market: Market, algo_id: int, *, page: int = 1, page_size: int = PAGE_SIZE
    ) -> SubOrderPage:
        """One page of an algo's child orders, with the algo's total executedQty/executedAmt."""
        path = f"{_base(market)}/subOrders"
        params = {"algoId": algo_id, "page": page, "pageSize": page_size}
        body = self.call("GET", path, params, signed=True)
        return parse(SubOrderPage, body, method="GET", path=path)

    def iter_algo_sub_orders(self, market: Market, algo_id: int) -> Iterator[SubOrder]:
        """Every child order of an algo, across all pages."""

        def fetch(page: int) -> tuple[list[SubOrder], int]:
            result = self.algo_sub_orders(market, algo_id, page=page)
            return result.subOrders, result.total

        return self.pages(fetch, PAGE_SIZE, path=f"{_base(market)}/subOrders")

    def find_algo(
        self,
        market: Market,
        client_algo_id: str,
        *,
        symbol: str | None = None,
        since_ms: int | None = None,
    ) -> AlgoOrder | None:
        """The algo placed with ``client_algo_id``: open orders first, then history since
        ``since_ms``. None when absent; after an unknown outcome, ask again a few times
        before concluding (Binance's read-after-write lag).

        Callers should pass ``since_ms`` = the order's creation time (when it was first sent)
        minus a margin for clock skew, e.g. a minute: that is exact however long ago it was.
        Without it the look-back is ``algo_lookup_days`` (default 7 days), which covers a
        24 h TWAP plus a long outage but not an algo older than that. Raises
        ``IncompleteListing`` rather than answer None from a listing it could not finish.
        """
        for order in self.algo_open_orders(market):
            if order.clientAlgoId == client_algo_id:
                return order
        if since_ms is None:
            since_ms = self.clocks["api"].now_ms() - self._algo_lookback_ms
        # No endTime: "until now" by the exchange's own clock, whatever ours says.
        for order in self.iter_algo_historical_orders(market, symbol=symbol, start_time=since_ms):
            if order.clientAlgoId == client_algo_id:
                return order
        return None
