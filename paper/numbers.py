"""Decimal helpers shared by the paper exchange: parse, round to a step, format for the wire."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)


def places(step: Decimal) -> int:
    """Number of decimals a step or tick size implies (``0.001`` -> 3, ``1`` -> 0)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value`` (for non-negative values)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` not below ``value`` (for non-negative values)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_UP) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


def fmt(value: Decimal, decimals: int) -> str:
    """Fixed-point string with exactly ``decimals`` decimals, never an exponent."""
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never "-0.00"
    return f"{rounded:f}"


def fmt8(value: Decimal) -> str:
    return fmt(value, 8)


def plain(value: Decimal) -> str:
    """Shortest fixed-point string (``5.0`` -> ``5``); for settings-like values."""
    text = f"{value.normalize():f}"
    return text
