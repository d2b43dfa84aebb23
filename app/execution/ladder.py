"""Take-profit ladders: how a position's quantity splits across its targets. Pure.

Each target is sized from what the entry received (``total``): its fraction, rounded down to
the lot step, the remainder on the last, so the slices always add up to the total. Targets
fill in order (their prices are ordered into profit), so what the position has closed
(``total - holding``) is taken from the first targets: the ones it covers are done, the next
one keeps what is left of its slice, and the others keep theirs. The open slices therefore
always add up to what the position holds, and no order is sized for more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Slice:
    target: int  # 1-based
    price: Decimal
    quantity: Decimal


def split(total: Decimal, fractions: Sequence[Decimal], step: Decimal) -> list[Decimal]:
    """Each target's share of ``total``: rounded down to ``step``, the remainder on the last."""
    out = []
    for fraction in fractions[:-1]:
        share = total * fraction
        if step > 0:
            share = (share / step).to_integral_value(rounding=ROUND_DOWN) * step
        out.append(share)
    return [*out, total - sum(out, ZERO)]


def open_slices(
    total: Decimal, holding: Decimal, targets: Sequence[tuple[Decimal, Decimal]], step: Decimal
) -> list[Slice]:
    """The targets not yet done and the quantity each still covers (summing to ``holding``)."""
    closed = max(total - holding, ZERO)
    out = []
    shares = split(total, [fraction for _, fraction in targets], step)
    for number, ((price, _), share) in enumerate(zip(targets, shares, strict=True), start=1):
        taken = min(share, closed)
        closed -= taken
        if share - taken > 0:
            out.append(Slice(number, price, share - taken))
    return out


def targets_done(
    total: Decimal, holding: Decimal, targets: Sequence[tuple[Decimal, Decimal]], step: Decimal
) -> int:
    """How many targets (from the first) have filled completely."""
    remaining = open_slices(total, holding, targets, step)
    return remaining[0].target - 1 if remaining else len(targets)
