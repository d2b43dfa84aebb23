"""``BinanceClient``: every Binance endpoint Pacekeeper uses, with typed answers.

It is handed an ``httpx.Client`` (tests hand one a ``MockTransport``, or point it at the paper
exchange). Spot and sapi calls go to ``binance_api_url``, USD-M calls to ``binance_fapi_url``.

What the caller must know:

* every failure is an ``ExchangeError`` subclass (``app.exchange.errors``), named by what to do;
* GETs are retried a few times with backoff; writes never are (except once after -1021, which
  Binance answers before the order reaches the engine); after ``UnknownOutcome`` look the order
  up with ``find_algo`` / ``find_order`` / ``find_order_list`` / ``find_futures_order`` /
  ``find_conditional_order`` (None = not found *yet*: repeat a few times before resending);
* every call waits for the shared rate-limit governor and may raise ``Temporary`` during a ban.

Endpoint groups live in ``orders`` (spot orders, OCO), ``algos`` (TWAP, VP) and ``futures``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from app.exchange.algos import AlgoOrders
from app.exchange.auth import Credentials
from app.exchange.errors import INVALID_SYMBOL, Rejected, Temporary
from app.exchange.filters import Market, SymbolRules, parse_exchange_info
from app.exchange.futures import FuturesOrders
from app.exchange.models import Account, ApiRestrictions, AvgPrice, MarkPrice, TickerPrice
from app.exchange.orders import SpotOrders
from app.exchange.ratelimit import RateGovernor, RedisRateStore
from app.exchange.session import CallObserver, parse
from app.exchange.shared import SharedReads

# A price older than this fraction of PACEKEEPER_PRICE_MAX_AGE is read again in the background.
PRICE_REFRESH_AHEAD = 0.5


class BinanceClient(SpotOrders, AlgoOrders, FuturesOrders):
    """Binance REST for spot, sapi algo and USD-M futures; see the module docstring."""

    def __init__(
        self,
        http: httpx.Client,
        settings: Any,
        *,
        credentials: Credentials | None = None,
        governor: RateGovernor | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            http, settings, credentials=credentials, governor=governor, clock=clock, sleep=sleep
        )
        self._info_ttl = settings.exchange_info_ttl
        self._rules: dict[tuple[Market, str], tuple[float, SymbolRules]] = {}
        # The entries' price (recent_price): one read shared by a burst on one symbol.
        # Read again ahead, past half the age: a steady flow of entries on a symbol never
        # waits a round trip for its price (app.exchange.shared).
        self._prices: SharedReads[Decimal] = SharedReads(
            getattr(settings, "price_max_age", 0.0), refresh_ahead=PRICE_REFRESH_AHEAD
        )

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        redis: Any | None = None,
        credentials: Credentials | None = None,
        account: str = "",
        observer: CallObserver | None = None,
    ) -> BinanceClient:
        """A client with its own ``httpx.Client``; pass ``redis`` to share the rate budget,
        and ``observer`` to hear of every call (``app.metrics.exchange_observer`` counts them
        in the shared metrics); ``credentials`` and ``account``: a named account's key, and
        the name its own (UID) limits are kept under (default: the settings' key, the account
        ``default``)."""
        store = RedisRateStore(redis, settings.rate_limit_prefix) if redis is not None else None
        governor = RateGovernor(
            store,
            margin=settings.rate_limit_margin,
            max_wait=settings.rate_limit_max_wait,
            account=account,
        )
        http = httpx.Client(timeout=settings.http_timeout)
        client = cls(http, settings, credentials=credentials, governor=governor)
        client.observer = observer
        return client

    def close(self) -> None:
        self._http.close()

    # ---- market data -------------------------------------------------------------------

    def server_time(self, market: Market = Market.SPOT) -> int:
        """The exchange's time in ms (``/api/v3/time`` or ``/fapi/v1/time``)."""
        return self._server_ms("/fapi/v1/time" if market == "usdm" else "/api/v3/time")

    def exchange_info(
        self, market: Market = Market.SPOT, symbol: str | None = None
    ) -> dict[str, SymbolRules]:
        """Parsed exchangeInfo (every symbol, or one on spot), fetched now and cached."""
        path = "/fapi/v1/exchangeInfo" if market == "usdm" else "/api/v3/exchangeInfo"
        params = {"symbol": symbol} if symbol and market == "spot" else None
        rules = parse_exchange_info(self.call("GET", path, params), market)
        expires = self._clock() + self._info_ttl
        for name, rule in rules.items():
            self._rules[(market, name)] = (expires, rule)
        return rules

    def symbol_rules(self, symbol: str, market: Market = Market.SPOT) -> SymbolRules:
        """The filters of one symbol, from the cache while younger than ``exchange_info_ttl``."""
        cached = self._rules.get((market, symbol))
        if cached is None or cached[0] <= self._clock():
            self.exchange_info(market, symbol)
            cached = self._rules.get((market, symbol))
        if cached is None:
            # What Binance answers for an unknown symbol on spot: a rejection, never retried.
            raise Rejected(
                f"symbol ({symbol}) is not listed on {market}",
                code=INVALID_SYMBOL,
                method="GET",
                path="/fapi/v1/exchangeInfo" if market == "usdm" else "/api/v3/exchangeInfo",
            )
        return cached[1]

    def ticker_price(self, symbol: str) -> Decimal:
        """Last spot price (``/api/v3/ticker/price``)."""
        path = "/api/v3/ticker/price"
        body = self.call("GET", path, {"symbol": symbol})
        return parse(TickerPrice, body, method="GET", path=path).price

    def recent_price(self, symbol: str, market: Market = Market.SPOT) -> Decimal:
        """The last spot price (USD-M: the mark price), read at most ``price_max_age``
        seconds ago by any job of this process; jobs asking meanwhile share one request."""
        if market == Market.USDM:
            return self._prices.get((market, symbol), lambda: self.mark_price(symbol).markPrice)
        return self._prices.get((market, symbol), lambda: self.ticker_price(symbol))

    def avg_price(self, symbol: str) -> AvgPrice:
        """Spot average price over ``mins`` minutes: the reference for PERCENT_PRICE filters."""
        path = "/api/v3/avgPrice"
        return parse(AvgPrice, self.call("GET", path, {"symbol": symbol}), method="GET", path=path)

    def futures_ticker_price(self, symbol: str) -> Decimal:
        path = "/fapi/v1/ticker/price"
        body = self.call("GET", path, {"symbol": symbol})
        return parse(TickerPrice, body, method="GET", path=path).price

    def mark_price(self, symbol: str) -> MarkPrice:
        """USD-M mark price (``/fapi/v1/premiumIndex``): what futures notional limits use."""
        path = "/fapi/v1/premiumIndex"
        body = self.call("GET", path, {"symbol": symbol})
        return parse(MarkPrice, body, method="GET", path=path)

    def klines(
        self, symbol: str, market: Market, interval: str, start_ms: int, end_ms: int
    ) -> list[list[Any]]:
        """Candles (``/api/v3/klines``, ``/fapi/v1/klines``), each ``[open time, open, high,
        low, close, volume, close time, quote volume, trades, ...]``, at most 1000."""
        path = "/fapi/v1/klines" if market == "usdm" else "/api/v3/klines"
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": 1000,
        }
        body = self.call("GET", path, params)
        if not isinstance(body, list):
            raise Temporary("klines: the answer is not a list", method="GET", path=path)
        return body

    # ---- account -----------------------------------------------------------------------

    def account(self) -> Account:
        """Spot balances, ``canTrade`` and the account's ``permissions``."""
        path = "/api/v3/account"
        body = self.call("GET", path, {"omitZeroBalances": True}, signed=True)
        return parse(Account, body, method="GET", path=path)

    def api_restrictions(self) -> ApiRestrictions:
        """What the API key may do (withdrawals, IP restriction, trading permissions)."""
        path = "/sapi/v1/account/apiRestrictions"
        body = self.call("GET", path, signed=True)
        return parse(ApiRestrictions, body, method="GET", path=path)
