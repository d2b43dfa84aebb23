"""TWAP and VP algos: slicing on the manual clock, limit gating, statuses, ids and limits.

These run on the ``fine`` cadence (even slices, a VP child every second) with current
``executedQty`` on working spot algos, so quantities are exact at any step of the clock; the
``binance`` cadence and the spot lag are in ``test_algo_cadence.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from paper.app import create_app
from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.support import serve

D = Decimal
SPOT = "/sapi/v1/algo/spot"
FUT = "/sapi/v1/algo/futures"
ALGO_FIELDS = {
    "algoId",
    "symbol",
    "side",
    "totalQty",
    "executedQty",
    "executedAmt",
    "avgPrice",
    "clientAlgoId",
    "bookTime",
    "endTime",
    "algoStatus",
    "algoType",
    "urgency",
}
FINE = {"paper_algo_cadence": "fine", "paper_spot_algo_lag": False}
SUB_FIELDS = {
    "algoId",
    "orderId",
    "orderStatus",
    "executedQty",
    "executedAmt",
    "feeAmt",
    "feeAsset",
    "bookTime",
    "avgPrice",
    "side",
    "symbol",
    "subId",
    "timeInForce",
    "origQty",
}


@pytest.fixture(scope="module")
def server(clock: ManualClock) -> Iterator[str]:
    with serve(create_app(paper_settings(**FINE), clock=clock)) as running:
        yield running.url


def twap(bn: BinanceTestClient, client_id: str | None = None, **extra: Any) -> dict[str, Any]:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.3",
        "duration": 30,
        "clientAlgoId": client_id,
    }
    params.update(extra)
    result: dict[str, Any] = bn.ok("POST", f"{SPOT}/newOrderTwap", params)
    return result


def find(bn: BinanceTestClient, client_id: str, base: str = SPOT) -> dict[str, Any]:
    for path in ("openOrders", "historicalOrders"):
        for row in bn.ok("GET", f"{base}/{path}")["orders"]:
            if row["clientAlgoId"] == client_id:
                found: dict[str, Any] = row
                return found
    raise AssertionError(f"{client_id} not found")


def children(bn: BinanceTestClient, algo_id: int, base: str = SPOT) -> dict[str, Any]:
    result: dict[str, Any] = bn.ok("GET", f"{base}/subOrders", {"algoId": algo_id})
    return result


def test_place_answers_only_the_client_algo_id(bn: BinanceTestClient) -> None:
    placed = twap(bn, "a" * 32)
    assert placed == {"clientAlgoId": "a" * 32, "success": True, "code": 0, "msg": "OK"}
    generated = twap(bn)["clientAlgoId"]
    assert len(generated) == 32 and generated != "a" * 32
    listing = bn.ok("GET", f"{SPOT}/openOrders")
    assert listing["total"] == 2 and set(listing["orders"][0]) == ALGO_FIELDS
    assert all(o["algoStatus"] == "WORKING" and o["endTime"] == 0 for o in listing["orders"])


def test_twap_slices_regularly_and_finishes(bn: BinanceTestClient, clock: ManualClock) -> None:
    twap(bn, "pk-twap-slices")
    algo_id = find(bn, "pk-twap-slices")["algoId"]
    clock.advance(10)
    page = children(bn, algo_id)
    assert page["total"] == 10 and page["executedQty"] == "0.10000"
    first = page["subOrders"][0]
    assert set(first) == SUB_FIELDS
    assert first["timeInForce"] == "IMMEDIATE_OR_CANCEL" and first["orderStatus"] == "FILLED"
    assert first["origQty"] == "0.01000" and first["feeAsset"] == "BTC"
    assert D(first["feeAmt"]) == D("-0.00001")
    assert [s["subId"] for s in page["subOrders"]] == list(range(1, 11))
    working = find(bn, "pk-twap-slices")
    assert working["algoStatus"] == "WORKING" and working["executedQty"] == "0.10000"
    assert working["avgPrice"] == "65000.00"
    clock.advance(25)
    done = find(bn, "pk-twap-slices")
    assert done["algoStatus"] == "FINISHED" and done["executedQty"] == "0.30000"
    assert done["endTime"] == done["bookTime"] + 30_000
    assert bn.ok("GET", f"{SPOT}/openOrders")["total"] == 0
    assert children(bn, algo_id)["total"] == 30


def test_child_order_ids_beyond_2_53_stay_exact(bn: BinanceTestClient, clock: ManualClock) -> None:
    twap(bn, "pk-twap-ids")
    clock.advance(2)
    algo_id = find(bn, "pk-twap-ids")["algoId"]
    raw = bn.call("GET", f"{SPOT}/subOrders", {"algoId": algo_id}).text
    ids = [s["orderId"] for s in json.loads(raw)["subOrders"]]
    assert all(i > 2**53 for i in ids)
    assert str(ids[0]) in raw and ids[1] == ids[0] + 1  # exact, not rounded through a float


def test_limit_price_gates_children_and_catches_up(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    twap(bn, "pk-twap-limit", limitPrice="64000")
    algo_id = find(bn, "pk-twap-limit")["algoId"]
    clock.advance(5)
    missed = children(bn, algo_id)  # 65,000 is above the BUY limit: expired IOCs
    assert missed["total"] == 5 and missed["executedQty"] == "0.00000"
    assert [s["orderStatus"] for s in missed["subOrders"]] == ["EXPIRED"] * 5
    assert [s["origQty"] for s in missed["subOrders"]][:2] == ["0.01000", "0.02000"]
    bn.set_price("BTCUSDT", "63500")
    clock.advance(1)
    page = children(bn, algo_id)
    assert page["total"] == 6 and page["subOrders"][5]["origQty"] == "0.06000"
    assert page["subOrders"][5]["avgPrice"] == "63500.00"
    assert page["subOrders"][5]["orderStatus"] == "FILLED"
    bn.set_price("BTCUSDT", "64500")
    clock.advance(30)
    done = find(bn, "pk-twap-limit")
    assert done["algoStatus"] == "FINISHED" and done["executedQty"] == "0.06000"


def test_sell_twap_pays_fees_in_the_quote_asset(bn: BinanceTestClient, clock: ManualClock) -> None:
    twap(bn, "pk-twap-sell", side="SELL")
    clock.advance(1)
    (child,) = children(bn, find(bn, "pk-twap-sell")["algoId"])["subOrders"]
    assert child["feeAsset"] == "USDT" and D(child["feeAmt"]) == D("-0.65")


def test_short_balance_is_accepted_then_expires(bn: BinanceTestClient, clock: ManualClock) -> None:
    bn.control("POST", "/balances", {"account": "spot", "balances": {"USDT": "100"}})
    assert twap(bn, "pk-twap-broke")["success"] is True
    assert find(bn, "pk-twap-broke")["algoStatus"] == "WORKING"
    clock.advance(1)
    expired = find(bn, "pk-twap-broke")
    assert expired["algoStatus"] == "EXPIRED" and expired["executedQty"] == "0.00000"
    assert expired["endTime"] > 0


def test_cancel_then_cancel_again_or_after_finishing(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    twap(bn, "pk-twap-cancel")
    algo_id = find(bn, "pk-twap-cancel")["algoId"]
    clock.advance(3)
    assert bn.ok("DELETE", f"{SPOT}/order", {"algoId": algo_id}) == {
        "algoId": algo_id,
        "success": True,
        "code": 0,
        "msg": "OK",
    }
    cancelled = find(bn, "pk-twap-cancel")
    assert cancelled["algoStatus"] == "CANCELLED" and cancelled["executedQty"] == "0.03000"
    clock.advance(5)
    assert children(bn, algo_id)["total"] == 3  # nothing after the cancel
    gone = bn.call("DELETE", f"{SPOT}/order", {"algoId": algo_id}).json()
    assert gone == {"code": -20124, "msg": "Invalid algo id or it has been completed."}
    twap(bn, "pk-twap-done", duration=10, quantity="0.1")
    clock.advance(11)
    finished = find(bn, "pk-twap-done")
    assert finished["algoStatus"] == "FINISHED"
    assert bn.error("DELETE", f"{SPOT}/order", {"algoId": finished["algoId"]}) == (400, -20124)
    assert bn.error("DELETE", f"{SPOT}/order", {"algoId": 1}) == (400, -20124)


def test_client_algo_id_can_never_be_reused(bn: BinanceTestClient, clock: ManualClock) -> None:
    twap(bn, "pk-twap-once", duration=10, quantity="0.1")
    again = bn.call(
        "POST",
        f"{SPOT}/newOrderTwap",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "0.1",
            "duration": 10,
            "clientAlgoId": "pk-twap-once",
        },
    )
    assert again.json() == {"code": -20132, "msg": "The client algo id is duplicated."}
    clock.advance(11)
    assert find(bn, "pk-twap-once")["algoStatus"] == "FINISHED"
    reuse = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "duration": 10}
    reused = bn.call("POST", f"{SPOT}/newOrderTwap", {**reuse, "clientAlgoId": "pk-twap-once"})
    assert reused.json()["code"] == -20132
    assert len(bn.ledger(client_id="pk-twap-once")) == 1


def test_placement_limits(bn: BinanceTestClient) -> None:
    base = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.3", "duration": 30}
    path = f"{SPOT}/newOrderTwap"
    assert bn.error("POST", path, {**base, "duration": 5}) == (400, -20194)
    assert bn.error("POST", path, {**base, "duration": 86_401}) == (400, -20130)
    assert bn.error("POST", path, {**base, "quantity": "0.000001"}) == (400, -20195)
    assert bn.error("POST", path, {**base, "quantity": "10000"}) == (400, -20196)
    assert bn.error("POST", path, {**base, "quantity": "0.01"}) == (400, -20204)  # 650 USDT
    assert bn.error("POST", path, {**base, "quantity": "2"}) == (400, -20204)  # 130,000 USDT
    assert bn.error("POST", path, {**base, "symbol": "NOPEUSDT"}) == (400, -20121)
    assert bn.error("POST", path, {**base, "clientAlgoId": "x" * 33}) == (400, -20130)
    assert bn.error("POST", path, {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"}) == (
        400,
        -1102,
    )
    for _ in range(20):
        bn.ok("POST", path, base)
    assert bn.call("POST", path, base).json() == {
        "code": -20198,
        "msg": "Reach the max open orders allowed.",
    }
    futures = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.02", "duration": 86_400}
    assert bn.error("POST", f"{FUT}/newOrderTwap", futures) == (400, -20195)  # qty*60/duration
    assert len(bn.ledger(kind="spot_twap")) == 20


def test_futures_twap_builds_a_position(bn: BinanceTestClient, clock: ManualClock) -> None:
    bn.ok(
        "POST",
        f"{FUT}/newOrderTwap",
        {
            "symbol": "ETHUSDT",
            "side": "SELL",
            "quantity": "1",
            "duration": 10,
            "clientAlgoId": "pk-ft",
        },
    )
    clock.advance(11)
    done = find(bn, "pk-ft", FUT)
    assert set(done) == ALGO_FIELDS | {"positionSide"} and done["positionSide"] == "BOTH"
    assert done["algoStatus"] == "FINISHED" and done["executedQty"] == "1.000"
    (position,) = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"})
    assert D(position["positionAmt"]) == D("-1") and D(position["entryPrice"]) == D("3200")
    child = children(bn, done["algoId"], FUT)["subOrders"][0]
    assert child["feeAsset"] == "USDT" and D(child["feeAmt"]) < 0
    assert bn.ledger(kind="futures_twap")[0]["client_id"] == "pk-ft"


def test_hedge_mode_twaps_act_on_their_side_and_a_mismatch_expires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    bn.ok("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    base = {"symbol": "ETHUSDT", "quantity": "1", "duration": 10}
    # Binance accepts what does not match the mode, then the algo expires.
    bn.ok("POST", f"{FUT}/newOrderTwap", {**base, "side": "BUY", "clientAlgoId": "pk-both"})
    bn.ok("POST", f"{FUT}/newOrderTwap", {
        **base, "side": "SELL", "positionSide": "SHORT", "clientAlgoId": "pk-short",
    })  # fmt: skip
    bn.ok("POST", f"{FUT}/newOrderTwap", {
        **base, "side": "BUY", "positionSide": "LONG", "quantity": "2", "clientAlgoId": "pk-long",
    })  # fmt: skip
    clock.advance(11)
    assert find(bn, "pk-both", FUT)["algoStatus"] == "EXPIRED"
    short = find(bn, "pk-short", FUT)
    assert short["algoStatus"] == "FINISHED" and short["positionSide"] == "SHORT"
    assert find(bn, "pk-long", FUT)["algoStatus"] == "FINISHED"
    rows = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"})
    assert {r["positionSide"]: D(r["positionAmt"]) for r in rows} == {"LONG": 2, "SHORT": -1}
    # A close on the LONG reduces it only; reduceOnly in hedge mode expires the algo.
    bn.ok("POST", f"{FUT}/newOrderTwap", {
        **base, "side": "SELL", "positionSide": "LONG", "clientAlgoId": "pk-close",
    })  # fmt: skip
    bn.ok("POST", f"{FUT}/newOrderTwap", {
        **base, "side": "BUY", "positionSide": "SHORT", "reduceOnly": "true",
        "clientAlgoId": "pk-ro",
    })  # fmt: skip
    clock.advance(11)
    assert find(bn, "pk-close", FUT)["algoStatus"] == "FINISHED"
    assert find(bn, "pk-ro", FUT)["algoStatus"] == "EXPIRED"
    rows = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"})
    assert {r["positionSide"]: D(r["positionAmt"]) for r in rows} == {"LONG": 1, "SHORT": -1}


def test_reduce_only_twap_that_would_open_expires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    placed = bn.ok(
        "POST",
        f"{FUT}/newOrderTwap",
        {
            "symbol": "ETHUSDT",
            "side": "SELL",
            "quantity": "1",
            "duration": 10,
            "reduceOnly": "true",
            "clientAlgoId": "pk-ro",
        },
    )
    assert placed["success"] is True
    clock.advance(1)
    assert find(bn, "pk-ro", FUT)["algoStatus"] == "EXPIRED"


def test_vp_fills_at_its_participation_rate_until_done(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    vp = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.2"}
    bn.ok("POST", f"{FUT}/newOrderVp", {**vp, "urgency": "HIGH", "clientAlgoId": "pk-vp-high"})
    bn.ok("POST", f"{FUT}/newOrderVp", {**vp, "urgency": "LOW", "clientAlgoId": "pk-vp-low"})
    clock.advance(3)
    high, low = find(bn, "pk-vp-high", FUT), find(bn, "pk-vp-low", FUT)
    assert high["algoType"] == "VP" and high["urgency"] == "HIGH"
    assert D(high["executedQty"]) == D("0.09")  # 10 % of 0.3 BTC/s for 3 s
    assert D(low["executedQty"]) == D("0.018")  # 2 %
    clock.advance(10)
    assert find(bn, "pk-vp-high", FUT)["algoStatus"] == "FINISHED"
    assert find(bn, "pk-vp-low", FUT)["algoStatus"] == "WORKING"
    small = {**vp, "quantity": "0.1", "urgency": "LOW"}
    assert bn.error("POST", f"{FUT}/newOrderVp", small) == (400, -20204)  # under 10,000 USDT


def test_fill_ratio_override_slows_one_algo(bn: BinanceTestClient, clock: ManualClock) -> None:
    bn.control("POST", "/algo-fill", {"clientAlgoId": "pk-slow", "ratio": "0.5"})
    twap(bn, "pk-slow")
    twap(bn, "pk-normal")
    clock.advance(10)
    slow, normal = find(bn, "pk-slow"), find(bn, "pk-normal")
    assert slow["executedQty"] == "0.05000" and normal["executedQty"] == "0.10000"
    child = children(bn, slow["algoId"])["subOrders"][0]
    assert child["orderStatus"] == "EXPIRED" and child["executedQty"] == "0.00500"
    bn.control("POST", "/algo-fill", {"algoId": slow["algoId"], "ratio": "0"})
    clock.advance(5)
    assert find(bn, "pk-slow")["executedQty"] == "0.05000"  # stalled


def test_history_filters_and_pages(bn: BinanceTestClient, clock: ManualClock) -> None:
    for n in range(3):
        twap(bn, f"pk-hist-{n}", duration=10, quantity="0.1", side="BUY" if n else "SELL")
    clock.advance(11)
    history = bn.ok("GET", f"{SPOT}/historicalOrders")
    assert history["total"] == 3
    assert [o["clientAlgoId"] for o in history["orders"]] == ["pk-hist-2", "pk-hist-1", "pk-hist-0"]
    sells = bn.ok("GET", f"{SPOT}/historicalOrders", {"side": "SELL"})
    assert [o["clientAlgoId"] for o in sells["orders"]] == ["pk-hist-0"]
    page = bn.ok("GET", f"{SPOT}/historicalOrders", {"page": 2, "pageSize": 2})
    assert page["total"] == 3 and [o["clientAlgoId"] for o in page["orders"]] == ["pk-hist-0"]
    algo_id = history["orders"][0]["algoId"]
    subs = bn.ok("GET", f"{SPOT}/subOrders", {"algoId": algo_id, "page": 2, "pageSize": 4})
    assert subs["total"] == 10 and [s["subId"] for s in subs["subOrders"]] == [5, 6, 7, 8]
    assert bn.error("GET", f"{SPOT}/subOrders", {"algoId": 424242}) == (400, -20124)
    assert bn.error("GET", f"{SPOT}/historicalOrders", {"pageSize": 101}) == (400, -1130)
    assert bn.ok("GET", f"{FUT}/historicalOrders")["total"] == 0


def test_concurrent_duplicates_place_exactly_one(bn: BinanceTestClient) -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.3",
        "duration": 30,
        "clientAlgoId": "pk-race",
    }
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda _: bn.call("POST", f"{SPOT}/newOrderTwap", params), range(8))
        )
    codes = sorted(r.json()["code"] for r in responses)
    assert codes == [-20132] * 7 + [0]
    assert len(bn.ledger(client_id="pk-race")) == 1


@pytest.fixture(scope="module")
def variant_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def variant(variant_clock: ManualClock) -> Iterator[BinanceTestClient]:
    """An exchange whose VP and USD-M TWAP bounds differ, and that lets finished algos'
    clientAlgoIds be used again."""
    settings = paper_settings(
        vp_max_notional=D(30_000),
        twap_max_notional_usdm=D(15_000),
        paper_algo_id_reuse="after_end",
        **FINE,
    )
    with serve(create_app(settings, clock=variant_clock)) as running:
        client = BinanceTestClient(running.url)
        yield client
        client.close()


def test_vp_notional_is_bounded_by_the_vp_settings(variant: BinanceTestClient) -> None:
    variant.control("POST", "/reset", {})
    vp = {"symbol": "BTCUSDT", "side": "BUY", "urgency": "LOW"}
    # 19,500 USDT: above twap_max_notional_usdm (15,000), within vp_max_notional (30,000).
    variant.ok("POST", f"{FUT}/newOrderVp", {**vp, "quantity": "0.3", "clientAlgoId": "pk-vp-a"})
    # 32,500 USDT: above vp_max_notional.
    assert variant.error("POST", f"{FUT}/newOrderVp", {**vp, "quantity": "0.5"}) == (400, -20204)
    # 6,500 USDT: below vp_min_notional (10,000).
    assert variant.error("POST", f"{FUT}/newOrderVp", {**vp, "quantity": "0.1"}) == (400, -20204)
    # The USD-M TWAP keeps its own bound.
    twap_params = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.3", "duration": 30}
    assert variant.error("POST", f"{FUT}/newOrderTwap", twap_params) == (400, -20204)
    assert [e["client_id"] for e in variant.ledger(kind="futures_vp")] == ["pk-vp-a"]


def test_client_algo_id_reuse_after_end(
    variant: BinanceTestClient, variant_clock: ManualClock
) -> None:
    """paper_algo_id_reuse=after_end: -20132 while the first algo works, accepted after."""
    variant.control("POST", "/reset", {})
    params = {
        "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "duration": 10,
        "clientAlgoId": "pk-twap-again",
    }  # fmt: skip
    variant.ok("POST", f"{SPOT}/newOrderTwap", params)
    assert variant.error("POST", f"{SPOT}/newOrderTwap", params) == (400, -20132)
    variant_clock.advance(11)
    assert find(variant, "pk-twap-again")["algoStatus"] == "FINISHED"
    variant.ok("POST", f"{SPOT}/newOrderTwap", params)  # the first one ended: accepted
    assert find(variant, "pk-twap-again")["algoStatus"] == "WORKING"
    assert variant.error("POST", f"{SPOT}/newOrderTwap", params) == (400, -20132)
    second = find(variant, "pk-twap-again")["algoId"]
    variant.ok("DELETE", f"{SPOT}/order", {"algoId": second})  # a cancel ends it too
    variant.ok("POST", f"{SPOT}/newOrderTwap", params)
    assert len(variant.ledger(client_id="pk-twap-again")) == 3


def test_spot_vp_takes_its_share_of_the_volume_until_done(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    """POST /sapi/v1/algo/spot/newOrderVp (2026-10-09): urgency, no duration; spot wallet."""
    vp = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.2"}
    btc_before = D(bn.control("GET", "/balances")["spot"]["BTC"]["free"])
    placed = bn.ok("POST", f"{SPOT}/newOrderVp", {**vp, "urgency": "HIGH", "clientAlgoId": "sv"})
    assert placed == {"clientAlgoId": "sv", "success": True, "code": 0, "msg": "OK"}
    clock.advance(3)
    row = find(bn, "sv")
    assert set(row) == ALGO_FIELDS and (row["algoType"], row["urgency"]) == ("VP", "HIGH")
    assert D(row["executedQty"]) == D("0.09")  # 10 % of 0.3 BTC/s for 3 s
    assert all(c["feeAsset"] == "BTC" for c in children(bn, row["algoId"])["subOrders"])
    clock.advance(10)
    assert find(bn, "sv")["algoStatus"] == "FINISHED"
    assert D(find(bn, "sv")["executedQty"]) == D("0.2")
    btc = D(bn.control("GET", "/balances")["spot"]["BTC"]["free"])
    assert btc - btc_before == D("0.2") * D("0.999")  # received net of the fee
    (entry,) = bn.ledger(kind="spot_vp")
    assert (entry["client_id"], entry["quantity"]) == ("sv", "0.2")
    assert bn.ok("GET", f"{FUT}/openOrders")["total"] == 0  # a spot algo, not a futures one


def test_spot_vp_placement_limits(bn: BinanceTestClient) -> None:
    path = f"{SPOT}/newOrderVp"
    base = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.2", "urgency": "LOW"}
    assert bn.error("POST", path, {**base, "quantity": "0.1"}) == (400, -20204)  # 6,500 USDT
    assert bn.error("POST", path, {**base, "quantity": "2"}) == (400, -20204)  # > spot max
    assert bn.error("POST", path, {**base, "urgency": "FAST"})[0] == 400
    no_urgency = {k: v for k, v in base.items() if k != "urgency"}
    assert bn.error("POST", path, no_urgency) == (400, -1102)
    for _ in range(10):
        bn.ok("POST", path, base)
    assert bn.error("POST", path, base) == (400, -20198)  # at most 10 VP
    twap = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.3", "duration": 30}
    for _ in range(10):
        bn.ok("POST", f"{SPOT}/newOrderTwap", twap)
    # VP and TWAP share the spot account's 20 open algo orders.
    assert bn.error("POST", f"{SPOT}/newOrderTwap", twap) == (400, -20198)
    assert len(bn.ledger(kind="spot_vp")) == 10


def test_algo_notional_bounds_are_in_usdt_for_a_symbol_quoted_in_btc(
    bn: BinanceTestClient,
) -> None:
    """ETHBTC at 0.049 BTC with BTCUSDT at 65,000: 1 ETH is worth 3,185 USDT. The bounds
    (1,000 to 100,000 USDT for a spot TWAP, 10,000 up for a VP) apply to that, not to the
    notional in BTC."""
    bn.control("POST", "/price", {"symbol": "ETHBTC", "price": "0.049"})
    bn.control("POST", "/price", {"symbol": "BTCUSDT", "price": "65000"})
    twap_path, vp_path = f"{SPOT}/newOrderTwap", f"{SPOT}/newOrderVp"
    twap = {"symbol": "ETHBTC", "side": "BUY", "duration": 30}
    bn.ok("POST", twap_path, {**twap, "quantity": "20", "clientAlgoId": "eb-20"})  # 63,700 USDT
    assert bn.error("POST", twap_path, {**twap, "quantity": "0.3"}) == (400, -20204)  # 955.5
    assert bn.error("POST", twap_path, {**twap, "quantity": "32"}) == (400, -20204)  # 101,920
    vp = {"symbol": "ETHBTC", "side": "BUY", "urgency": "LOW"}
    bn.ok("POST", vp_path, {**vp, "quantity": "4", "clientAlgoId": "eb-vp"})  # 12,740 USDT
    assert bn.error("POST", vp_path, {**vp, "quantity": "3"}) == (400, -20204)  # 9,555 USDT
    # The rate follows BTCUSDT: at 30,000 the same 0.3 ETH is 441 USDT, 20 ETH 29,400.
    bn.control("POST", "/price", {"symbol": "BTCUSDT", "price": "30000"})
    assert bn.error("POST", vp_path, {**vp, "quantity": "4"}) == (400, -20204)  # 5,880 USDT
    assert [e["client_id"] for e in bn.ledger(symbol="ETHBTC")] == ["eb-20", "eb-vp"]
