"""``/sapi/v1``: spot and USD-M algo orders (TWAP, VP) and the API key's restrictions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from paper.algos import SPOT, USDM
from paper.deps import Paper, Signed

router = APIRouter()


@router.post("/sapi/v1/algo/spot/newOrderTwap")
def spot_twap(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        return JSONResponse(engine.algos.place(p, SPOT, "TWAP"))


@router.post("/sapi/v1/algo/spot/newOrderVp")
def spot_vp(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        return JSONResponse(engine.algos.place(p, SPOT, "VP"))


@router.post("/sapi/v1/algo/futures/newOrderTwap")
def futures_twap(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        return JSONResponse(engine.algos.place(p, USDM, "TWAP"))


@router.post("/sapi/v1/algo/futures/newOrderVp")
def futures_vp(p: Signed, paper: Paper) -> Response:
    with paper.engine.signed(p.key) as engine:
        return JSONResponse(engine.algos.place(p, USDM, "VP"))


def _register(market: str, prefix: str) -> None:
    @router.delete(f"{prefix}/order", name=f"{market}_algo_cancel")
    def cancel(p: Signed, paper: Paper) -> Response:
        with paper.engine.signed(p.key) as engine:
            return JSONResponse(engine.algos.cancel(p, market))

    @router.get(f"{prefix}/openOrders", name=f"{market}_algo_open")
    def open_orders(p: Signed, paper: Paper) -> Response:
        with paper.engine.signed(p.key) as engine:
            return JSONResponse(engine.algos.open_orders(p, market))

    @router.get(f"{prefix}/historicalOrders", name=f"{market}_algo_history")
    def historical(p: Signed, paper: Paper) -> Response:
        with paper.engine.signed(p.key) as engine:
            return JSONResponse(engine.algos.historical(p, market))

    @router.get(f"{prefix}/subOrders", name=f"{market}_algo_children")
    def sub_orders(p: Signed, paper: Paper) -> Response:
        with paper.engine.signed(p.key) as engine:
            return JSONResponse(engine.algos.sub_orders(p, market))


_register(SPOT, "/sapi/v1/algo/spot")
_register(USDM, "/sapi/v1/algo/futures")


@router.get("/sapi/v1/account/apiRestrictions")
def api_restrictions(p: Signed, paper: Paper) -> Response:
    return JSONResponse(dict(paper.restrictions_of(p.key)))
