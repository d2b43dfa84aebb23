"""``/sapi/v1``: spot and USD-M algo orders (TWAP, VP) and the API key's restrictions."""

from __future__ import annotations

from fastapi import APIRouter

from paper.algos import SPOT, USDM
from paper.routing import AccountRoute, Auth, Route, register

router = APIRouter()

SPOT_ALGO = "/sapi/v1/algo/spot"
USDM_ALGO = "/sapi/v1/algo/futures"

ROUTES: list[Route] = [
    (
        "GET",
        "/sapi/v1/account/apiRestrictions",
        Auth.SIGNED,
        lambda paper, p: dict(paper.restrictions_of(p.key)),
    ),
]
ACCOUNT_ROUTES: list[AccountRoute] = [
    ("POST", f"{SPOT_ALGO}/newOrderTwap", lambda a, p: a.algos.place(p, SPOT, "TWAP")),
    ("POST", f"{SPOT_ALGO}/newOrderVp", lambda a, p: a.algos.place(p, SPOT, "VP")),
    ("POST", f"{USDM_ALGO}/newOrderTwap", lambda a, p: a.algos.place(p, USDM, "TWAP")),
    ("POST", f"{USDM_ALGO}/newOrderVp", lambda a, p: a.algos.place(p, USDM, "VP")),
    ("DELETE", f"{SPOT_ALGO}/order", lambda a, p: a.algos.cancel(p, SPOT)),
    ("GET", f"{SPOT_ALGO}/openOrders", lambda a, p: a.algos.open_orders(p, SPOT)),
    ("GET", f"{SPOT_ALGO}/historicalOrders", lambda a, p: a.algos.historical(p, SPOT)),
    ("GET", f"{SPOT_ALGO}/subOrders", lambda a, p: a.algos.sub_orders(p, SPOT)),
    ("DELETE", f"{USDM_ALGO}/order", lambda a, p: a.algos.cancel(p, USDM)),
    ("GET", f"{USDM_ALGO}/openOrders", lambda a, p: a.algos.open_orders(p, USDM)),
    ("GET", f"{USDM_ALGO}/historicalOrders", lambda a, p: a.algos.historical(p, USDM)),
    ("GET", f"{USDM_ALGO}/subOrders", lambda a, p: a.algos.sub_orders(p, USDM)),
]
register(router, ROUTES, ACCOUNT_ROUTES)
