"""Take-profit ladders and breakeven in the signal contract: what parses, and every
combination that cannot be carried out refused naming its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.execution.planning import Levels
from app.signals.schemas import Signal
from tests.signals.test_schemas import base, parse, problems

D = Decimal
LADDER = [
    {"price": "70000", "fraction": "0.5"},
    {"price": "72000", "fraction": "0.3"},
    {"price": "74000", "fraction": "0.2"},
]
SIX = ["0.1", "0.1", "0.1", "0.1", "0.3", "0.3"]  # sums to 1: only the count is wrong


def test_a_ladder_parses_stores_and_becomes_the_positions_levels() -> None:
    sig = parse(base(take_profit=LADDER, stop_loss={"stop_price": "60000", "breakeven_after": 1}))

    again = Signal.from_payload(sig.payload())
    assert again == sig
    levels = Levels.of_entry(again)
    assert levels.targets == ((D(70000), D("0.5")), (D(72000), D("0.3")), (D(74000), D("0.2")))
    assert levels.take_profit == D(70000)  # the nearest target
    assert levels.breakeven_after == 1
    assert Levels.from_json(levels.to_json()) == levels
    assert levels.to_json()["take_profit"] == LADDER


def test_a_single_take_profit_keeps_its_object_and_shorthand_forms() -> None:
    for tp in ({"price": "70000"}, "70000"):
        levels = Levels.of_entry(parse(base(take_profit=tp)))
        assert levels.take_profit == D(70000) and levels.targets == ()
        assert levels.to_json()["take_profit"] == {"price": "70000"}


@pytest.mark.parametrize(
    ("take_profit", "stop_loss", "field", "fragment"),
    [
        (
            [{"price": "70000", "fraction": "0.5"}, {"price": "72000", "fraction": "0.4"}],
            None, "take_profit", "sum to 1 (they sum to 0.9)",
        ),
        (
            [{"price": str(70000 + i), "fraction": f} for i, f in enumerate(SIX)],
            None, "take_profit", "at most 5 targets",
        ),
        (
            [{"price": "72000", "fraction": "0.5"}, {"price": "71000", "fraction": "0.5"}],
            None, "take_profit.1.price", "above the previous target (72000)",
        ),
        (
            [{"price": "70000", "fraction": "0"}, {"price": "72000", "fraction": "1"}],
            None, "take_profit.0.fraction", "greater than 0",
        ),
        ([{"price": "70000"}], None, "take_profit.0.fraction", "required"),
        ({"price": "70000", "fraction": "1"}, None, "take_profit.fraction", "unknown field"),
        (
            [{"price": "59000", "fraction": "0.5"}, {"price": "72000", "fraction": "0.5"}],
            {"stop_price": "60000"}, "take_profit.0.price", "above stop_loss.stop_price",
        ),
        (LADDER, {"stop_price": "60000", "breakeven_after": 3}, "stop_loss.breakeven_after",
         "below the number of targets (3)"),
        (LADDER, {"stop_price": "60000", "breakeven_after": 0}, "stop_loss.breakeven_after",
         "1 or more"),
        ("70000", {"stop_price": "60000", "breakeven_after": 1}, "stop_loss.breakeven_after",
         "needs a take-profit ladder"),
    ],
)  # fmt: skip
def test_a_ladder_that_cannot_be_carried_out_is_refused_naming_the_field(
    take_profit: Any, stop_loss: Any, field: str, fragment: str
) -> None:
    found = problems(base(take_profit=take_profit, stop_loss=stop_loss))
    assert field in found, found
    assert fragment in found[field]


def test_a_short_ladder_steps_down() -> None:
    down = [{"price": "60000", "fraction": "0.5"}, {"price": "58000", "fraction": "0.5"}]
    assert parse(base(side="sell", take_profit=down)).take_profit is not None
    found = problems(base(side="sell", take_profit=list(reversed(down))))
    assert "below the previous target" in found["take_profit.1.price"]


# -- trailing stops --------------------------------------------------------------------------


def trail(market: str = "spot", **trailing: Any) -> dict[str, Any]:
    symbol = "BTCUSDT.P" if market == "usdm" else "BTCUSDT"
    return base(symbol=symbol, stop_loss={"stop_price": "60000", "trailing": trailing})


def test_a_trailing_stop_parses_and_becomes_the_positions_levels() -> None:
    sig = parse(trail("usdm", callback_rate="1.5", activation_price="68000"))
    levels = Levels.of_entry(Signal.from_payload(sig.payload()))
    assert (levels.trailing_rate, levels.trailing_activation) == (D("1.5"), D(68000))
    assert Levels.from_json(levels.to_json()) == levels


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (trail(callback_rate="0.05"), "stop_loss.trailing.callback_rate", "from 0.1 to 20"),
        (trail(callback_rate="25"), "stop_loss.trailing.callback_rate", "from 0.1 to 20"),
        (trail("usdm", callback_rate="12"), "stop_loss.trailing.callback_rate", "0.1 to 10"),
        (trail(callback_rate="1.255"), "stop_loss.trailing.callback_rate", "basis points"),
        (trail(callback_rate="1", activation_price="68000"),
         "stop_loss.trailing.activation_price", "usdm only"),
        (trail("usdm", callback_rate="1", activation_price="59000"),
         "stop_loss.trailing.activation_price", "above stop_loss.stop_price (60000)"),
        (trail(callback_rate="1", rate="2"), "stop_loss.trailing.rate", "unknown field"),
        (base(stop_loss={"stop_price": "60000", "limit_price": "59900",
                         "trailing": {"callback_rate": "1"}}), "stop_loss.type", "at market"),
    ],
)  # fmt: skip
def test_a_trailing_stop_binance_would_refuse_is_a_422_naming_the_field(
    raw: dict[str, Any], field: str, fragment: str
) -> None:
    found = problems(raw)
    assert field in found, found
    assert fragment in found[field]
