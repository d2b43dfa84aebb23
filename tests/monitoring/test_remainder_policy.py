"""What an algo leaves: the policy by leg and signal, when it acts, and a limit's price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.monitoring.remainder_policy import due, first_order, limit_price, policy_of
from app.signals.schemas import Remainder

D = Decimal
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("leg", "execution", "policy"),
    [
        ("entry", {"type": "twap"}, Remainder.CANCEL),
        ("exit", {"type": "twap"}, Remainder.MARKET),
        ("exit-2", {"type": "twap"}, Remainder.MARKET),  # one of several positions
        ("close", {"type": "vp"}, Remainder.MARKET),  # a tp or sl executed as an algo
        ("entry", {"type": "twap", "remainder": "market"}, Remainder.MARKET),
        ("exit", {"type": "twap", "remainder": "cancel"}, Remainder.CANCEL),
        ("exit", {"type": "twap", "remainder": "limit"}, Remainder.LIMIT),
    ],
)
def test_the_policy_is_the_signals_or_the_default_for_its_leg(
    leg: str, execution: dict[str, str], policy: Remainder
) -> None:
    assert policy_of({"execution": execution}, leg) is policy


@pytest.mark.parametrize(
    ("cause", "status", "executed", "acts"),
    [
        ("pace", "CANCELLED", "0.4", True),
        ("expiry", "CANCELLED", "0", True),
        ("pace", "FINISHED", "0.4", True),  # it ended while the cancel was on its way
        (None, "FINISHED", "0.4", True),  # the exchange ended it short (its limit held)
        ("operator", "CANCELLED", "0.4", False),  # an operator asked for nothing more
        ("halt", "CANCELLED", "0.4", False),
        (None, "CANCELLED", "0.4", False),  # cancelled on the exchange, not by us
        (None, "EXPIRED", "0", False),  # refused after acceptance: balance, margin, mode
        ("pace", "CANCELLED", "0.9995", False),  # less than a step left
    ],
)
def test_the_policy_acts_on_what_the_monitor_or_an_expiry_left(
    cause: str | None, status: str, executed: str, acts: bool
) -> None:
    kwargs = {"cause": cause, "algo_status": status, "executed": D(executed), "total": D(1)}
    assert due(Remainder.MARKET, dust=D("0.001"), **kwargs) is acts  # type: ignore[arg-type]
    assert due(Remainder.CANCEL, dust=D("0.001"), **kwargs) is False  # type: ignore[arg-type]


def test_a_limit_remainder_goes_to_market_once_its_deadline_passed() -> None:
    later = NOW + timedelta(seconds=60)
    assert first_order(Remainder.LIMIT, deadline=later, now=NOW) == "limit"
    assert first_order(Remainder.LIMIT, deadline=NOW, now=NOW) == "market"
    assert first_order(Remainder.MARKET, deadline=later, now=NOW) == "market"


def test_the_limit_gives_way_by_the_slippage_band() -> None:
    assert limit_price(D("65000"), "BUY", D(20)) == D("65130")
    assert limit_price(D("65000"), "SELL", D(20)) == D("64870")
