"""USD-M hedge mode (dual-side positions) as strict as Binance: the mode is changed only when
flat and idle, every order names its LONG/SHORT position (-4061), reduceOnly is refused
(-1106), a close never exceeds its side, and conditional orders act on their side only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.paper.binance import BinanceTestClient
from tests.paper.test_futures import ALGO, ORDER

DUAL = "/fapi/v1/positionSide/dual"
MISMATCH = {"code": -4061, "msg": "Order's position side does not match user's setting."}


def refusal(bn: BinanceTestClient, path: str, params: dict[str, Any]) -> Any:
    response = bn.call("POST", path, params)
    assert response.status_code == 400, response.text
    return response.json()


def market(side: str, qty: str, **extra: str) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": qty, **extra}


def sides(bn: BinanceTestClient) -> dict[str, Decimal]:
    rows = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    return {row["positionSide"]: Decimal(row["positionAmt"]) for row in rows}


def hedge(bn: BinanceTestClient) -> None:
    assert bn.ok("POST", DUAL, {"dualSidePosition": "true"}) == {"code": 200, "msg": "success"}


def test_the_position_mode_is_read_and_changed_in_binances_shape(bn: BinanceTestClient) -> None:
    assert bn.ok("GET", DUAL) == {"dualSidePosition": False}
    assert refusal(bn, DUAL, {"dualSidePosition": "false"}) == {
        "code": -4059,
        "msg": "No need to change position side.",
    }
    hedge(bn)
    assert bn.ok("GET", DUAL) == {"dualSidePosition": True}
    assert sides(bn) == {"LONG": 0, "SHORT": 0}


def test_hedge_mode_orders_must_name_their_side_and_never_reduce_only(
    bn: BinanceTestClient,
) -> None:
    hedge(bn)
    assert refusal(bn, ORDER, market("BUY", "0.1")) == MISMATCH
    assert refusal(bn, ORDER, market("BUY", "0.1", positionSide="BOTH")) == MISMATCH
    assert refusal(bn, ORDER, market("SELL", "0.1", positionSide="LONG", reduceOnly="true")) == {
        "code": -1106,
        "msg": "Parameter 'reduceonly' sent when not required.",
    }
    stop = {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
        "type": "STOP_MARKET", "triggerPrice": "60000", "quantity": "0.1",
    }  # fmt: skip
    assert refusal(bn, ALGO, stop) == MISMATCH
    assert bn.ledger() == []


def test_one_way_mode_refuses_a_position_side(bn: BinanceTestClient) -> None:
    assert refusal(bn, ORDER, market("BUY", "0.1", positionSide="LONG")) == MISMATCH


def test_long_and_short_live_side_by_side_and_close_separately(bn: BinanceTestClient) -> None:
    hedge(bn)
    bn.set_price("BTCUSDT", "65000")
    long = bn.ok("POST", ORDER, market("BUY", "0.1", positionSide="LONG"))
    assert long["positionSide"] == "LONG" and long["reduceOnly"] is False
    bn.ok("POST", ORDER, market("SELL", "0.2", positionSide="SHORT"))
    assert sides(bn) == {"LONG": Decimal("0.1"), "SHORT": Decimal("-0.2")}
    # A close is the opposite side on the same position, never more than it holds.
    too_much = market("SELL", "0.2", positionSide="LONG")
    assert refusal(bn, ORDER, too_much) == {"code": -2022, "msg": "ReduceOnly Order is rejected."}
    # Each side's stop acts on its side only.
    long_stop = {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "LONG",
        "type": "STOP_MARKET", "triggerPrice": "64000", "quantity": "0.1",
    }  # fmt: skip
    short_stop = {**long_stop, "side": "BUY", "positionSide": "SHORT", "triggerPrice": "66000",
                  "quantity": "0.2"}  # fmt: skip
    placed = bn.ok("POST", ALGO, long_stop)
    assert placed["positionSide"] == "LONG" and placed["reduceOnly"] is True
    bn.ok("POST", ALGO, short_stop)
    bn.set_price("BTCUSDT", "63900")
    assert sides(bn) == {"LONG": 0, "SHORT": Decimal("-0.2")}
    bn.set_price("BTCUSDT", "66100")
    assert sides(bn) == {"LONG": 0, "SHORT": 0}


def test_the_mode_changes_only_when_flat_and_idle(bn: BinanceTestClient) -> None:
    bn.ok("POST", ORDER, market("BUY", "0.1"))
    assert refusal(bn, DUAL, {"dualSidePosition": "true"}) == {
        "code": -4068,
        "msg": "Position side cannot be changed if there exists position.",
    }
    bn.ok("POST", ORDER, market("SELL", "0.1", reduceOnly="true"))
    resting = {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "62000",
    }  # fmt: skip
    bn.ok("POST", ORDER, resting)
    assert refusal(bn, DUAL, {"dualSidePosition": "true"}) == {
        "code": -4067,
        "msg": "Position side cannot be changed if there exists open orders.",
    }
    assert bn.ok("GET", DUAL) == {"dualSidePosition": False}
