"""What happens to the quantity an algo leaves unexecuted: the signal's policy, when it
applies, and the price of a limit remainder. Pure: values in, values out.

``execution.remainder`` of a TWAP/VP signal:

* ``cancel`` (default for entries): nothing more; what filled is kept (and bracketed);
* ``market`` (default for exit, tp, sl and every algo that reduces a position): what is left
  goes out as a market order (reduce-only on USD-M), so a pace-cancelled exit does not leave
  the rest of the position open;
* ``limit``: a limit order at the last price ± ``execution.max_slippage_bps`` (worse for us:
  above it for a buy, below for a sell, so it trades at once unless the market runs), then
  a market order for whatever it has not filled by the signal's expiry.

It applies when the monitor ends an algo with quantity left (it fell behind, or its signal
expired), and when the exchange ends one short by itself (a TWAP whose limit held back the
last children ends ``FINISHED`` with less than its total). Not after an operator's or a halt's
cancel (the operator asked for nothing more), nor when the exchange refused to run the algo
at all (``EXPIRED``: balance, margin or position checks).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from app.signals.schemas import Remainder

BPS = Decimal(10_000)
# Causes of a monitor's cancel after which the remainder is handled by the policy.
ACTING_CAUSES = ("pace", "expiry")
# Legs of orders that reduce a position, as ``app/execution/closes.py`` names them.
CLOSE_PREFIXES = ("exit", "close")


def policy_of(payload: dict[str, Any] | None, leg: str) -> Remainder:
    """The signal's ``execution.remainder``, or the default for the order's leg."""
    execution = (payload or {}).get("execution")
    chosen = execution.get("remainder") if isinstance(execution, dict) else None
    if chosen:
        return Remainder(chosen)
    return Remainder.MARKET if leg.startswith(CLOSE_PREFIXES) else Remainder.CANCEL


def slippage_bps(payload: dict[str, Any] | None) -> Decimal:
    execution = (payload or {}).get("execution") or {}
    return Decimal(str(execution.get("max_slippage_bps") or 0))


def due(
    policy: Remainder,
    *,
    cause: str | None,
    algo_status: str,
    executed: Decimal,
    total: Decimal,
    dust: Decimal,
) -> bool:
    """Does the policy act on what this algo left? (See the module docstring.)"""
    if policy is Remainder.CANCEL or total - executed <= dust:
        return False
    if cause is not None:
        return cause in ACTING_CAUSES
    return algo_status == "FINISHED"


def first_order(policy: Remainder, *, deadline: datetime | None, now: datetime) -> str:
    """``limit`` or ``market``: a limit remainder whose deadline has passed (the signal
    expired, perhaps the very expiry that ended the algo) goes straight to market."""
    if policy is Remainder.LIMIT and deadline is not None and now < deadline:
        return "limit"
    return "market"


def limit_price(last: Decimal, side: str, bps: Decimal) -> Decimal:
    """The last price moved ``bps`` against us: the worst price the limit accepts."""
    shift = last * bps / BPS
    return last + shift if side.upper() == "BUY" else last - shift
