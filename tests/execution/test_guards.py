"""Guards are pure: facts and settings in, the first reason to refuse (or None) out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.config import Settings
from app.execution.guards import Facts, evaluate

D = Decimal


def facts(**changes: Any) -> Facts:
    values: dict[str, Any] = {
        "entry": True, "market": "spot", "symbol": "BTCUSDT", "strategy": "s",
        "notional": D("650"),
    }  # fmt: skip
    values.update(changes)
    return Facts(**values)


def settings(**changes: Any) -> Settings:
    return Settings(_env_file=None, **changes)


@pytest.mark.parametrize(
    ("fact", "config", "reason"),
    [
        ({}, {}, None),
        ({"halted": "maintenance"}, {}, "trading is halted: maintenance"),
        ({"halted": "maintenance", "entry": False}, {}, None),  # exits still run
        ({"algo": "twap", "open_algos": 20}, {}, "open TWAP orders on spot (20)"),
        ({"algo": "twap", "open_algos": 20, "market": "usdm"}, {}, None),  # usdm allows 30
        ({"algo": "vp", "open_algos": 10, "market": "usdm"}, {}, "at the maximum 10"),
        ({"algo": "vp", "open_algos": 9, "open_spot_algos": 19}, {}, None),
        ({"algo": "vp", "open_algos": 10, "open_spot_algos": 10}, {}, "VP orders on spot (10)"),
        # a spot VP shares the spot account's 20 with its TWAPs
        ({"algo": "vp", "open_algos": 2, "open_spot_algos": 20}, {}, "TWAP and VP together (20)"),
        ({"algo": "vp", "open_algos": 2, "open_spot_algos": 20, "market": "usdm"}, {}, None),
        ({"algo": "twap", "open_algos": 20, "entry": False}, {}, "at the maximum 20"),
        ({}, {"max_notional_per_signal": D("600")}, "exceeds max_notional_per_signal 600"),
        ({"entry": False}, {"max_notional_per_signal": D("600")}, None),  # exits reduce risk
        ({"exposure": D("400")}, {"max_notional_per_symbol": D("1000")}, "would be 1050"),
        ({"exposure": D("300")}, {"max_notional_per_symbol": D("1000")}, None),
        ({"live_entry": "open position 7"}, {}, "still live (open position 7)"),
        ({"live_entry": "open position 7"}, {"allow_stacking": True}, None),
    ],
)
def test_first_guard_that_stops_a_signal_gives_its_reason(
    fact: dict[str, Any], config: dict[str, Any], reason: str | None
) -> None:
    result = evaluate(facts(**fact), settings(**config))
    if reason is None:
        assert result is None
    else:
        assert result is not None and reason in result
