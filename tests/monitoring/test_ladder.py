"""Take-profit ladders end to end on the paper exchange, checked on its ledger: each target
sized from what the entry received (rounded to the step, the remainder on the last), every
unit protected by a live order, and no order ever covering more than the position holds.
Signals go through the execution layer; fills come from moving the paper's price."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

import pytest

from app.execution.protection import held
from app.models import OrderStatus
from tests.monitoring.desk import Desk

D = Decimal
STEP = D("0.00001")  # BTCUSDT's lot step on the paper exchange
SYMBOL = {"spot": "BTCUSDT", "usdm": "BTCUSDT.P"}
LADDER = [
    {"price": "70000", "fraction": "0.5"},
    {"price": "72000", "fraction": "0.3"},
    {"price": "74000", "fraction": "0.2"},
]


def shares(total: Decimal) -> list[Decimal]:
    """What each target of LADDER covers: 50 % and 30 % rounded down, the rest on the last."""
    first = (total * D("0.5")).quantize(STEP, rounding=ROUND_DOWN)
    second = (total * D("0.3")).quantize(STEP, rounding=ROUND_DOWN)
    return [first, second, total - first - second]


def enter(desk: Desk, market: str, **fields: Any) -> int:
    desk.set_price("BTCUSDT", "65000")
    fields = {"take_profit": LADDER, "stop_loss": "60000", **fields}
    sid = desk.submit(symbol=SYMBOL[market], quantity="0.03", **fields)
    assert desk.run(sid).status == "done"
    (position,) = desk.positions()
    return position.id


def live(desk: Desk, kind: str) -> list[dict[str, Any]]:
    status = {"oco": "EXECUTING", "futures_conditional": "NEW"}[kind]
    return [e for e in desk.ledger(kind=kind) if e["status"] == status]


def test_a_spot_ladder_is_one_oco_per_target_each_with_the_stop_for_its_slice(
    desk: Desk,
) -> None:
    position_id = enter(desk, "spot")
    position = desk.position(position_id)
    assert position.quantity == D("0.02997")  # 0.03 less the 0.1 % fee in BTC

    ocos = desk.ledger(kind="oco")
    assert [D(o["quantity"]) for o in ocos] == shares(position.quantity)
    assert sum(D(o["quantity"]) for o in ocos) == held(position)
    assert [o["prices"]["take_profit"] for o in ocos] == ["70000", "72000", "74000"]
    assert {o["prices"]["stop"] for o in ocos} == {"60000"}
    assert {o["order_type"] for o in ocos} == {"LIMIT_MAKER/STOP_LOSS"}
    (news,) = desk.events("bracket_placed")  # the notification tells what all three cover
    assert news.data is not None and D(news.data["quantity"]) == held(position)

    # Target 1 fills: its OCO is done, the other two keep covering exactly what is left.
    desk.set_price("BTCUSDT", "70000")
    desk.cycle()
    position = desk.position(position_id)
    assert position.exit_quantity == shares(position.quantity)[0]
    assert [o["status"] for o in desk.ledger(kind="oco")] == ["ALL_DONE", "EXECUTING", "EXECUTING"]
    assert sum(D(o["quantity"]) for o in live(desk, "oco")) == held(position)
    assert len(desk.ledger(kind="oco")) == 3  # nothing was re-placed

    # The price falls back through the stop: the two open slices are sold, nothing more.
    desk.set_price("BTCUSDT", "59000")
    desk.cycle()
    position = desk.position(position_id)
    assert position.status == "closed"
    assert position.exit_quantity == position.quantity
    assert live(desk, "oco") == []


def test_a_usdm_ladder_has_a_take_profit_per_target_and_one_stop_resized_as_they_fill(
    desk: Desk,
) -> None:
    position_id = enter(desk, "usdm")
    held_before = held(desk.position(position_id))
    assert held_before == D("0.03")

    placed = desk.ledger(kind="futures_conditional")
    tps = [e for e in placed if e["order_type"] == "TAKE_PROFIT_MARKET"]
    (stop,) = [e for e in placed if e["order_type"] == "STOP_MARKET"]
    assert [D(e["quantity"]) for e in tps] == shares(held_before)
    assert [e["prices"]["trigger"] for e in tps] == ["70000", "72000", "74000"]
    assert (D(stop["quantity"]), stop["prices"]["trigger"]) == (held_before, "60000")
    reduce_only = [o for o in desk.orders(kind="conditional") if o.status == OrderStatus.WORKING]
    assert len(reduce_only) == 4 and all((o.extra or {}).get("reduce_only") for o in reduce_only)

    # Target 1 fills: the stop shrinks to what is left, targets 2 and 3 stay covered.
    desk.set_price("BTCUSDT", "70000")
    desk.cycle()
    position = desk.position(position_id)
    assert held(position) == held_before - shares(held_before)[0]
    now = live(desk, "futures_conditional")
    (stop,) = [e for e in now if e["order_type"] == "STOP_MARKET"]
    assert D(stop["quantity"]) == held(position)
    left = [e for e in now if e["order_type"] == "TAKE_PROFIT_MARKET"]
    assert sorted((e["prices"]["trigger"], D(e["quantity"])) for e in left) == [
        ("72000", shares(held_before)[1]), ("74000", shares(held_before)[2]),
    ]  # fmt: skip
    assert sum(D(e["quantity"]) for e in left) == held(position)

    # Target 2 fills: the stop covers the last target's slice.
    desk.set_price("BTCUSDT", "72000")
    desk.cycle()
    position = desk.position(position_id)
    assert held(position) == shares(held_before)[2]
    now = live(desk, "futures_conditional")
    assert sorted((e["order_type"], D(e["quantity"])) for e in now) == [
        ("STOP_MARKET", held(position)), ("TAKE_PROFIT_MARKET", held(position)),
    ]  # fmt: skip

    # The last target closes the position; nothing is left working.
    desk.set_price("BTCUSDT", "74000")
    desk.cycle()
    desk.cycle()
    assert desk.position(position_id).status == "closed"
    assert live(desk, "futures_conditional") == []


def test_a_usdm_target_fill_leaves_the_stop_live_even_when_its_resize_is_refused(
    desk: Desk,
) -> None:
    position_id = enter(desk, "usdm")
    # From now on the exchange refuses every new conditional order.
    desk.fault(
        action="fail_before", path="/fapi/v1/algoOrder", method="POST", status=400, code=-2021,
        msg="Order would immediately trigger.",
    )  # fmt: skip

    desk.set_price("BTCUSDT", "70000")
    desk.cycle()

    # Target 1 filled; the old stop (reduce-only: it closes at most what is held) and
    # targets 2 and 3 still stand, because a take-profit's fill in a ladder cancels nothing.
    assert held(desk.position(position_id)) > 0
    now = live(desk, "futures_conditional")
    assert [e["order_type"] for e in now].count("STOP_MARKET") == 1
    assert [e["prices"]["trigger"] for e in now if e["order_type"] != "STOP_MARKET"] == [
        "72000", "74000",
    ]  # fmt: skip


# ---- breakeven -----------------------------------------------------------------------------

# Entries at 65,000. Spot pays 0.1 % in BTC (0.02997 held for 1,950 USDT), and a close pays
# 0.1 % again: 65,000 / 0.999 / 0.999, up to the 0.01 tick. A USD-M order's answer gives no
# commission, so the safe 0.1 % is assumed on the entry and the close: 65,000 x 1.001 / 0.999,
# up to the 0.1 tick.
BREAKEVEN = {
    "spot": (D(65000) / D("0.999") / D("0.999")).quantize(D("0.01"), rounding=ROUND_CEILING),
    "usdm": (D(65000) * D("1.001") / D("0.999")).quantize(D("0.1"), rounding=ROUND_CEILING),
}


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_after_the_breakeven_target_fills_the_stop_for_the_rest_moves_to_entry_plus_fees(
    desk: Desk, market: str
) -> None:
    position_id = enter(desk, market, stop_loss={"stop_price": "60000", "breakeven_after": 1})
    kind = "oco" if market == "spot" else "futures_conditional"
    first = desk.ledger(kind=kind)

    desk.set_price("BTCUSDT", "70000")
    desk.cycle()

    position = desk.position(position_id)
    total = position.quantity
    now = live(desk, kind)
    if market == "spot":
        stops = [(D(e["quantity"]), e["prices"]["stop"]) for e in now]
        # Targets 2 and 3, each with the stop for its slice, now at breakeven.
        assert stops == [(q, f"{BREAKEVEN[market].normalize():f}") for q in shares(total)[1:]]
        assert [e["prices"]["take_profit"] for e in now] == ["72000", "74000"]
    else:
        (stop,) = [e for e in now if e["order_type"] == "STOP_MARKET"]
        assert (D(stop["quantity"]), D(stop["prices"]["trigger"])) == (
            held(position),
            BREAKEVEN[market],
        )
    # Every entry before the move was placed with the signal's stop.
    assert all(e["prices"].get("stop", e["prices"].get("trigger")) != "60000" for e in now)
    assert {e["prices"].get("stop", "60000") for e in first} == {"60000"}
    (moved,) = [e for e in desk.events("bracket") if "levels changed" in e.message]
    assert moved.data is not None
    assert D(moved.data["stop_loss"]["stop_price"]) == BREAKEVEN[market]

    # The price comes back to the entry: the rest is closed at breakeven, not at 60,000.
    desk.set_price("BTCUSDT", f"{BREAKEVEN[market].normalize():f}")
    desk.cycle()
    desk.cycle()
    position = desk.position(position_id)
    assert position.status == "closed"
    assert position.realized_pnl is not None and position.realized_pnl > 0


def test_no_breakeven_before_its_target_fills(desk: Desk) -> None:
    enter(desk, "spot", stop_loss={"stop_price": "60000", "breakeven_after": 2})
    desk.set_price("BTCUSDT", "70000")
    desk.cycle()
    assert {e["prices"]["stop"] for e in live(desk, "oco")} == {"60000"}
    assert len(desk.ledger(kind="oco")) == 3  # target 1 filled; nothing was re-placed


# ---- trailing stops ------------------------------------------------------------------------


def test_a_spot_trailing_stop_is_the_oco_stop_leg_and_sells_on_the_callback(desk: Desk) -> None:
    trailing = {"stop_price": "60000", "trailing": {"callback_rate": "1"}}
    position_id = enter(desk, "spot", take_profit={"price": "75000"}, stop_loss=trailing)

    (oco,) = desk.ledger(kind="oco")
    assert oco["order_type"] == "LIMIT_MAKER/STOP_LOSS"
    # 100 BIPS, tracking from the price when placed: no fixed stop price is sent.
    assert oco["prices"] == {"take_profit": "75000", "trailing_delta": "100"}
    assert D(oco["quantity"]) == held(desk.position(position_id))

    desk.set_price("BTCUSDT", "68000")  # the highest since: the stop trails to 67,320
    desk.set_price("BTCUSDT", "67400")
    desk.cycle()
    assert live(desk, "oco") != []
    desk.set_price("BTCUSDT", "67320")
    desk.cycle()
    position = desk.position(position_id)
    assert position.status == "closed" and position.exit_quantity == D(oco["quantity"])
    assert position.exit_proceeds == D(oco["quantity"]) * D(67320)


def test_a_usdm_trailing_stop_rides_beside_the_fixed_stop_from_its_activation_price(
    desk: Desk,
) -> None:
    trailing = {
        "stop_price": "60000",
        "trailing": {"callback_rate": "1", "activation_price": "68000"},
    }
    position_id = enter(desk, "usdm", take_profit={"price": "75000"}, stop_loss=trailing)

    placed = {e["order_type"]: e for e in desk.ledger(kind="futures_conditional")}
    assert sorted(placed) == ["STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
    assert {D(e["quantity"]) for e in placed.values()} == {D("0.03")}
    assert placed["TRAILING_STOP_MARKET"]["prices"] == {"activate": "68000", "callback_rate": "1"}
    assert placed["STOP_MARKET"]["prices"] == {"trigger": "60000"}

    # Not active below 68,000: a fall there is the fixed stop's business.
    for price in ("66000", "65000", "68000", "70000", "69400"):
        desk.set_price("BTCUSDT", price)
    desk.cycle()
    assert len(live(desk, "futures_conditional")) == 3
    desk.set_price("BTCUSDT", "69300")  # 70,000 less 1 %
    desk.cycle()
    position = desk.position(position_id)
    assert position.status == "closed" and position.exit_proceeds == D("0.03") * D(69300)
    assert live(desk, "futures_conditional") == []  # the fixed stop and the target cancelled
