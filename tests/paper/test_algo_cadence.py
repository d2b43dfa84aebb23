"""The paper exchange's default cadence, over HTTP on the manual clock: TWAP children about one
a minute at jittered seconds with uneven sizes, a child that found the market past the limit
shown as an expired IOC, the spot FAQ's lagging ``executedQty``, VP in uneven steps."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Any

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

D = Decimal
SPOT = "/sapi/v1/algo/spot"
FUT = "/sapi/v1/algo/futures"


def place(bn: BinanceTestClient, base: str, client_id: str, **extra: Any) -> int:
    params = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.3", "duration": 300}
    bn.ok("POST", f"{base}/newOrderTwap", {**params, **extra, "clientAlgoId": client_id})
    return int(row(bn, base, client_id)["algoId"])


def row(bn: BinanceTestClient, base: str, client_id: str) -> dict[str, Any]:
    for path in ("openOrders", "historicalOrders"):
        for found in bn.ok("GET", f"{base}/{path}")["orders"]:
            if found["clientAlgoId"] == client_id:
                return dict(found)
    raise AssertionError(f"{client_id} not found")


def subs(bn: BinanceTestClient, base: str, algo_id: int) -> dict[str, Any]:
    return dict(bn.ok("GET", f"{base}/subOrders", {"algoId": algo_id}))


def test_a_twap_sends_one_uneven_child_a_minute_at_jittered_seconds(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    algo_id = place(bn, FUT, "pk-cadence")
    start = row(bn, FUT, "pk-cadence")["bookTime"]

    clock.advance(301)

    done = row(bn, FUT, "pk-cadence")
    assert done["algoStatus"] == "FINISHED" and done["executedQty"] == "0.300"
    children = subs(bn, FUT, algo_id)["subOrders"]
    assert len(children) == 5 and sum(D(c["executedQty"]) for c in children) == D("0.3")
    assert len({c["origQty"] for c in children}) > 1  # not equal slices
    offsets = [c["bookTime"] - start for c in children]
    assert all(k * 60_000 < o < (k + 1) * 60_000 for k, o in enumerate(offsets))
    assert {o % 60_000 for o in offsets} != {0}  # not on the minute
    assert done["endTime"] == children[-1]["bookTime"]  # it stops once the last child went out


def test_a_working_spot_twap_shows_nothing_executed_but_its_children_do(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    algo_id = place(bn, SPOT, "pk-spot-lag")
    clock.advance(130)

    working = row(bn, SPOT, "pk-spot-lag")
    page = subs(bn, SPOT, algo_id)
    assert working["algoStatus"] == "WORKING" and working["executedQty"] == "0.00000"
    assert working["avgPrice"] == "0.00" and working["executedAmt"] == "0.00000000"
    assert page["total"] == 2 and D(page["executedQty"]) > 0
    assert D(page["executedQty"]) == sum(D(c["executedQty"]) for c in page["subOrders"])
    clock.advance(200)
    assert row(bn, SPOT, "pk-spot-lag")["executedQty"] == "0.30000"  # shown once it ended


def test_a_child_past_the_limit_is_an_expired_ioc_and_the_next_catches_up(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    algo_id = place(bn, FUT, "pk-cadence-limit", limitPrice="64000")
    clock.advance(61)  # 65,000 is above the BUY limit: the first child finds nothing

    (missed,) = subs(bn, FUT, algo_id)["subOrders"]
    assert missed["orderStatus"] == "EXPIRED" and missed["executedQty"] == "0.000"
    assert missed["timeInForce"] == "IMMEDIATE_OR_CANCEL" and D(missed["origQty"]) > 0
    bn.set_price("BTCUSDT", "63500")
    clock.advance(60)
    caught_up = subs(bn, FUT, algo_id)["subOrders"][1]
    assert caught_up["orderStatus"] == "FILLED"
    assert D(caught_up["origQty"]) > D(missed["origQty"])  # its own share and the missed one


def test_vp_executes_its_share_of_the_volume_in_uneven_steps(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    vp = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "3", "urgency": "HIGH"}
    bn.ok("POST", f"{FUT}/newOrderVp", {**vp, "clientAlgoId": "pk-vp-steps"})
    clock.advance(60)

    working = row(bn, FUT, "pk-vp-steps")
    children = subs(bn, FUT, working["algoId"])["subOrders"]
    gaps = [b["bookTime"] - a["bookTime"] for a, b in pairwise(children)]
    assert 4 <= len(children) <= 12 and all(5_000 <= g <= 15_000 for g in gaps)
    assert len({c["executedQty"] for c in children}) > 1
    # HIGH takes 10 % of 0.3 BTC/s: 1.8 BTC over a minute, jittered, less the part of the
    # minute after the last child.
    assert D("0.9") < D(working["executedQty"]) < D("2.4")
