"""``/fapi``: USD-M market data, orders, conditional algo orders, positions and balances."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.paper import futures_views, leverage
from app.paper.deps import Paper, Public, Signed
from app.paper.numbers import fmt, fmt8
from app.paper.symbols import futures_exchange_info

router = APIRouter()
FUNDING_PERIOD_MS = 8 * 3600 * 1000


@router.get("/fapi/v1/time")
def server_time(paper: Paper) -> Response:
    return JSONResponse({"serverTime": paper.server_ms()})


@router.get("/fapi/v1/exchangeInfo")
def exchange_info(paper: Paper) -> Response:
    specs = list(paper.engine.specs.values())
    return JSONResponse(futures_exchange_info(specs, paper.server_ms()))


@router.get("/fapi/v1/ticker/price")
def ticker_price(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        names = [engine.spec(symbol).symbol] if symbol else list(engine.specs)
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


@router.get("/fapi/v1/premiumIndex")
def premium_index(p: Public, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        names = [engine.spec(symbol).symbol] if symbol else list(engine.specs)
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


@router.post("/fapi/v1/order")
def new_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.place(p))


@router.get("/fapi/v1/order")
def query_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.query(p))


@router.delete("/fapi/v1/order")
def cancel_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.cancel(p))


@router.get("/fapi/v1/openOrders")
def open_orders(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.open_orders(p))


@router.post("/fapi/v1/algoOrder")
def new_algo_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.conditional.place(p))


@router.get("/fapi/v1/algoOrder")
def query_algo_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.conditional.query(p))


@router.delete("/fapi/v1/algoOrder")
def cancel_algo_order(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.conditional.cancel(p))


@router.delete("/fapi/v1/algoOpenOrders")
def cancel_all_algo_orders(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.conditional.cancel_all(p))


@router.get("/fapi/v1/openAlgoOrders")
def open_algo_orders(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.conditional.open_orders(p))


@router.get("/fapi/v2/positionRisk")
def position_risk_v2(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(futures_views.position_rows(engine.futures, p, 2))


@router.get("/fapi/v3/positionRisk")
def position_risk_v3(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(futures_views.position_rows(engine.futures, p, 3))


@router.get("/fapi/v2/balance")
@router.get("/fapi/v3/balance")
def balance(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(futures_views.balances(engine.futures))


@router.get("/fapi/v2/account")
@router.get("/fapi/v3/account")
def account(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(futures_views.account(engine.futures))


@router.get("/fapi/v1/leverageBracket")
def leverage_bracket(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        symbol = p.get("symbol")
        if symbol:
            return JSONResponse(leverage.bracket_rows(engine.spec(symbol).symbol))
        return JSONResponse([leverage.bracket_rows(name) for name in engine.specs])


@router.post("/fapi/v1/leverage")
def change_leverage(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.set_leverage(p))


@router.post("/fapi/v1/marginType")
def change_margin_type(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.set_margin_type(p))


@router.get("/fapi/v1/positionSide/dual")
def position_mode(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse({"dualSidePosition": engine.futures.dual})


@router.post("/fapi/v1/positionSide/dual")
def change_position_mode(p: Signed, paper: Paper) -> Response:
    with paper.engine.session() as engine:
        return JSONResponse(engine.futures.set_dual(p))
