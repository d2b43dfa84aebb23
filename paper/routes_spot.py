"""``/api/v3``: market data, account, spot orders and OCO order lists."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from paper import marketdata
from paper.average import AVG_PRICE_MINS
from paper.deps import Paper, Public, Signed
from paper.errors import BinanceError, invalid_symbol
from paper.numbers import fmt8
from paper.routing import AccountRoute, Auth, Route, register
from paper.symbols import spot_exchange_info

router = APIRouter()

ROUTES: list[Route] = [
    ("GET", "/api/v3/time", Auth.NONE, lambda paper, _: {"serverTime": paper.server_ms()}),
]
ACCOUNT_ROUTES: list[AccountRoute] = [
    ("POST", "/api/v3/order", lambda a, p: a.spot.place(p)),
    ("GET", "/api/v3/order", lambda a, p: a.spot.query(p)),
    ("GET", "/api/v3/myTrades", lambda a, p: a.spot.my_trades(p)),
    ("DELETE", "/api/v3/order", lambda a, p: a.spot.cancel(p)),
    ("GET", "/api/v3/openOrders", lambda a, p: a.spot.open_orders(p)),
    ("POST", "/api/v3/orderList/oco", lambda a, p: a.spot.oco.place(p)),
    ("GET", "/api/v3/orderList", lambda a, p: a.spot.oco.query_list(p)),
    ("GET", "/api/v3/openOrderList", lambda a, p: a.spot.oco.open_order_lists(p)),
    ("DELETE", "/api/v3/orderList", lambda a, p: a.spot.oco.cancel_list(p)),
]
register(router, ROUTES, ACCOUNT_ROUTES)


def ok(content: object) -> Response:
    return JSONResponse(content)


def _symbols(p: Public, valid: dict[str, object]) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]``; None for all symbols."""
    if p.has("symbol"):
        names = [p.text("symbol")]
    elif p.has("symbols"):
        try:
            names = json.loads(p.text("symbols"))
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.")
    else:
        return None
    for name in names:
        if name not in valid:
            raise invalid_symbol()
    return names


@router.get("/api/v3/exchangeInfo")
def exchange_info(p: Public, paper: Paper) -> Response:
    engine = paper.engine
    names = _symbols(p, dict(engine.specs))
    specs = [engine.specs[n] for n in names] if names else list(engine.specs.values())
    limit = paper.settings.paper_max_num_algo_orders
    return ok(spot_exchange_info(specs, paper.server_ms(), limit))


@router.get("/api/v3/ticker/price")
def ticker_price(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        names = _symbols(p, dict(engine.specs))
        rows = [
            {"symbol": name, "price": fmt8(engine.price(name))}
            for name in (names or list(engine.specs))
        ]
    if p.has("symbol"):
        return ok(rows[0])
    return ok(rows)


@router.get("/api/v3/avgPrice")
def avg_price(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = engine.spec(p.text("symbol")).symbol
        price = fmt8(engine.avg_price(symbol))
        return ok({"mins": AVG_PRICE_MINS, "price": price, "closeTime": engine.now})


def _limit(p: Public, default: int, most: int) -> int:
    limit = p.integer("limit")
    if limit is None:
        return default
    if limit < 1:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, most)


@router.get("/api/v3/depth")
def depth(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        spec = engine.spec(p.text("symbol"))
        bids, asks = marketdata.book_levels(
            spec,
            engine.price(spec.symbol),
            spec.spot.tick,
            _limit(p, 100, 5000),
            price_places=8,
            qty_places=8,
        )
        return ok({"lastUpdateId": engine.now, "bids": bids, "asks": asks})


@router.get("/api/v3/klines")
def klines(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        spec = engine.spec(p.text("symbol"))
        rows = marketdata.klines(
            spec,
            engine.candles[spec.symbol],
            engine.now,
            interval=p.text("interval"),
            start=p.integer("startTime"),
            end=p.integer("endTime"),
            limit=_limit(p, 500, 1000),
            price_places=8,
        )
        return ok(rows)


@router.get("/api/v3/ticker/24hr")
def ticker_24hr(p: Public, paper: Paper) -> Response:
    kind = p.enum("type", ("FULL", "MINI")) or "FULL"
    with paper.engine.session() as engine:
        names = _symbols(p, dict(engine.specs))
        rows = []
        for name in names or list(engine.specs):
            spec = engine.specs[name]
            price = engine.price(name)
            stats = marketdata.ticker_24hr(spec, engine.candles[name], engine.now, price, 8)
            bids, asks = marketdata.book_levels(
                spec, price, spec.spot.tick, 1, price_places=8, qty_places=8
            )
            if kind == "MINI":
                keep = (
                    "symbol",
                    "openPrice",
                    "highPrice",
                    "lowPrice",
                    "lastPrice",
                    "volume",
                    "quoteVolume",
                    "openTime",
                    "closeTime",
                    "firstId",
                    "lastId",
                    "count",
                )
                rows.append({k: stats[k] for k in keep})
                continue
            full = {k: v for k, v in stats.items() if k not in ("lastQty", "openPrice")}
            rows.append(
                {
                    **{
                        k: full[k]
                        for k in ("symbol", "priceChange", "priceChangePercent", "weightedAvgPrice")
                    },
                    "prevClosePrice": stats["openPrice"],
                    "lastPrice": stats["lastPrice"],
                    "lastQty": stats["lastQty"],
                    "bidPrice": bids[0][0],
                    "bidQty": bids[0][1],
                    "askPrice": asks[0][0],
                    "askQty": asks[0][1],
                    **{
                        k: stats[k]
                        for k in (
                            "openPrice",
                            "highPrice",
                            "lowPrice",
                            "volume",
                            "quoteVolume",
                            "openTime",
                            "closeTime",
                            "firstId",
                            "lastId",
                            "count",
                        )
                    },
                }
            )
    if p.has("symbol"):
        return ok(rows[0])
    return ok(rows)


@router.get("/api/v3/account")
def account(p: Signed, paper: Paper) -> Response:
    omit_zero = p.boolean("omitZeroBalances")
    with paper.engine.signed(p.key) as engine:
        balances = [
            {"asset": asset, "free": fmt8(b.free), "locked": fmt8(b.locked)}
            for asset, b in sorted(engine.spot_wallet.balances.items())
            if not omit_zero or b.free or b.locked
        ]
        rate = fmt8(paper.settings.paper_fee_rate)
        bps = int(paper.settings.paper_fee_rate * 10_000)
        return ok(
            {
                "makerCommission": bps,
                "takerCommission": bps,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": rate,
                    "taker": rate,
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": bool(
                    paper.restrictions_of(p.key).get("enableSpotAndMarginTrading", True)
                ),
                "canWithdraw": bool(paper.restrictions_of(p.key).get("enableWithdrawals", False)),
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": engine.now,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 354937868,
            }
        )
