"""``/fapi``: USD-M market data, orders, conditional algo orders, positions and balances."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from paper import futures_views, leverage, marketdata
from paper.deps import Paper, Public, Signed
from paper.errors import BinanceError
from paper.numbers import fmt, fmt8, plain
from paper.routing import AccountRoute, Auth, Route, register
from paper.symbols import futures_exchange_info

router = APIRouter()
FUNDING_PERIOD_MS = 8 * 3600 * 1000

ROUTES: list[Route] = [
    ("GET", "/fapi/v1/time", Auth.NONE, lambda paper, _: {"serverTime": paper.server_ms()}),
]
ACCOUNT_ROUTES: list[AccountRoute] = [
    ("POST", "/fapi/v1/order", lambda a, p: a.futures.place(p)),
    ("GET", "/fapi/v1/order", lambda a, p: a.futures.query(p)),
    ("DELETE", "/fapi/v1/order", lambda a, p: a.futures.cancel(p)),
    ("GET", "/fapi/v1/openOrders", lambda a, p: a.futures.open_orders(p)),
    ("GET", "/fapi/v1/userTrades", lambda a, p: a.futures.user_trades(p)),
    ("POST", "/fapi/v1/algoOrder", lambda a, p: a.futures.conditional.place(p)),
    ("GET", "/fapi/v1/algoOrder", lambda a, p: a.futures.conditional.query(p)),
    ("DELETE", "/fapi/v1/algoOrder", lambda a, p: a.futures.conditional.cancel(p)),
    ("DELETE", "/fapi/v1/algoOpenOrders", lambda a, p: a.futures.conditional.cancel_all(p)),
    ("GET", "/fapi/v1/openAlgoOrders", lambda a, p: a.futures.conditional.open_orders(p)),
    ("GET", "/fapi/v2/positionRisk", lambda a, p: futures_views.position_rows(a.futures, p, 2)),
    ("GET", "/fapi/v3/positionRisk", lambda a, p: futures_views.position_rows(a.futures, p, 3)),
    ("GET", "/fapi/v2/balance", lambda a, _: futures_views.balances(a.futures)),
    ("GET", "/fapi/v3/balance", lambda a, _: futures_views.balances(a.futures)),
    ("GET", "/fapi/v2/account", lambda a, _: futures_views.account(a.futures, 2)),
    ("GET", "/fapi/v3/account", lambda a, _: futures_views.account(a.futures, 3)),
    ("POST", "/fapi/v1/leverage", lambda a, p: a.futures.set_leverage(p)),
    ("POST", "/fapi/v1/marginType", lambda a, p: a.futures.set_margin_type(p)),
    ("GET", "/fapi/v1/positionSide/dual", lambda a, _: {"dualSidePosition": a.futures.dual}),
    ("POST", "/fapi/v1/positionSide/dual", lambda a, p: a.futures.set_dual(p)),
]
register(router, ROUTES, ACCOUNT_ROUTES)


@router.get("/fapi/v1/exchangeInfo")
def exchange_info(paper: Paper) -> Response:
    specs = [paper.engine.specs[s] for s in paper.engine.usdm_symbols]
    return JSONResponse(futures_exchange_info(specs, paper.server_ms()))


@router.get("/fapi/v1/ticker/price")
def ticker_price(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        names = [engine.usdm_spec(symbol).symbol] if symbol else engine.usdm_symbols
        rows = [
            {
                "symbol": name,
                # spot and USD-M share one price path, on the (finer) spot tick
                "price": fmt(engine.price(name), engine.specs[name].spot.price_places),
                "time": engine.now,
            }
            for name in names
        ]
        return JSONResponse(rows[0] if symbol else rows)


FUTURES_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


@router.get("/fapi/v1/depth")
def depth(p: Public, paper: Paper) -> Response:
    limit = p.integer("limit") or 500
    if limit not in FUTURES_DEPTH_LIMITS:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    with paper.engine.session() as engine:
        spec = engine.usdm_spec(p.text("symbol"))
        lot = spec.usdm
        bids, asks = marketdata.book_levels(
            spec,
            engine.price(spec.symbol),
            lot.tick,
            limit,
            price_places=lot.price_places,
            qty_places=lot.qty_places,
        )
        return JSONResponse(
            {
                "lastUpdateId": engine.now,
                "E": engine.now,
                "T": engine.now,
                "bids": bids,
                "asks": asks,
            }
        )


@router.get("/fapi/v1/klines")
def klines(p: Public, paper: Paper) -> Response:
    limit = p.integer("limit") or 500
    if not 1 <= limit <= 1500:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    with paper.engine.session() as engine:
        spec = engine.usdm_spec(p.text("symbol"))
        rows = marketdata.klines(
            spec,
            engine.candles[spec.symbol],
            engine.now,
            interval=p.text("interval"),
            start=p.integer("startTime"),
            end=p.integer("endTime"),
            limit=limit,
            price_places=spec.spot.price_places,
        )
        return JSONResponse(rows)


@router.get("/fapi/v1/ticker/24hr")
def ticker_24hr(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        names = [engine.usdm_spec(symbol).symbol] if symbol else engine.usdm_symbols
        rows = [
            marketdata.ticker_24hr(
                engine.specs[name],
                engine.candles[name],
                engine.now,
                engine.price(name),
                engine.specs[name].spot.price_places,
            )
            for name in names
        ]
        return JSONResponse(rows[0] if symbol else rows)


@router.get("/fapi/v1/premiumIndex")
def premium_index(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        names = [engine.usdm_spec(symbol).symbol] if symbol else engine.usdm_symbols
        next_funding = (engine.now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        rows = [
            {
                "symbol": name,
                "markPrice": fmt8(engine.price(name)),
                "indexPrice": fmt8(engine.price(name)),
                "estimatedSettlePrice": fmt8(engine.price(name)),
                "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000",
                "nextFundingTime": next_funding,
                "time": engine.now,
            }
            for name in names
        ]
        return JSONResponse(rows[0] if symbol else rows)


@router.get("/fapi/v1/commissionRate")
def commission_rate(p: Signed, paper: Paper) -> Response:
    """The account's fee rates on one symbol (weight 20): ``paper_futures_fee_rate`` for
    both, as every fill is charged here."""
    with paper.engine.signed(p.key) as engine:
        symbol = engine.usdm_spec(p.text("symbol")).symbol
        rate = fmt8(paper.settings.paper_futures_fee_rate)
        return JSONResponse(
            {"symbol": symbol, "makerCommissionRate": rate, "takerCommissionRate": rate}
        )


@router.get("/fapi/v1/leverageBracket")
def leverage_bracket(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        symbol = p.get("symbol")
        if symbol:
            return JSONResponse(leverage.bracket_rows(engine.usdm_spec(symbol).symbol))
        return JSONResponse([leverage.bracket_rows(name) for name in engine.usdm_symbols])


@router.get("/fapi/v1/symbolConfig")
def symbol_config(p: Signed, paper: Paper) -> Response:
    """Each symbol's margin type, leverage and the notional that leverage allows (weight 5)."""
    with paper.engine.signed(p.key) as engine:
        book = engine.futures
        symbol = p.get("symbol")
        names = [engine.usdm_spec(symbol).symbol] if symbol else list(engine.usdm_symbols)
        return JSONResponse(
            [
                {
                    "symbol": name,
                    "marginType": "ISOLATED" if book.margin_type[name] == "isolated" else "CROSSED",
                    "isAutoAddMargin": "false",
                    "leverage": book.leverage[name],
                    "maxNotionalValue": plain(leverage.max_notional(name, book.leverage[name])),
                }
                for name in names
            ]
        )
