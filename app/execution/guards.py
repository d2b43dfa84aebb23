"""Guards checked before anything is sent; a refused signal ends ``refused`` with the reason.

| guard                | applies to                              | setting                     |
| -------------------- | --------------------------------------- | --------------------------- |
| kill switch          | entries (exits, cancels and protection  | controls table (halt)       |
|                      | still run)                              |                             |
| open algo orders     | TWAP / VP, any action                   | MAX_OPEN_TWAP_SPOT / _USDM, |
|                      |                                         | MAX_OPEN_VP                 |
| notional per signal  | entries                                 | MAX_NOTIONAL_PER_SIGNAL     |
| notional per symbol  | entries: open positions + working       | MAX_NOTIONAL_PER_SYMBOL     |
|                      | entries + this one                      |                             |
| one live entry       | entries, per (strategy, market, symbol) | ALLOW_STACKING              |

Exits and tp/sl are never capped by notional: they reduce risk. ``evaluate`` is pure; the
service gathers the facts (the kill switch and live entries from the database, open algos
from the exchange) inside the transaction that writes the orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.config import Settings
from app.exchange.filters import to_wire
from app.models import OrderKind


@dataclass(frozen=True)
class Facts:
    entry: bool  # the signal opens (or adds to) a position
    market: str
    symbol: str
    strategy: str
    algo: str | None = None  # an ALGO_KINDS value when the signal places one
    notional: Decimal | None = None  # this signal's notional in the quote asset
    halted: str | None = None  # the kill switch's reason when it is on
    open_algos: int = 0  # open algo orders counting against this signal's algo limit
    # A spot VP also counts against the spot account's algo cap (TWAP and VP together).
    open_spot_algos: int = 0
    exposure: Decimal = Decimal(0)  # open + working entry notional on the symbol
    live_entry: str | None = None  # a live entry (signal id or position) for the same key


def algo_limit(settings: Settings, market: str, algo: str) -> int:
    if algo == OrderKind.VP:
        return settings.max_open_vp
    return settings.max_open_twap_spot if market == "spot" else settings.max_open_twap_usdm


def evaluate(facts: Facts, settings: Settings) -> str | None:
    """The first guard that stops the signal, as a reason a trader can act on; None = go."""
    if facts.entry and facts.halted is not None:
        return f"trading is halted: {facts.halted or 'no reason given'}"
    if facts.algo is not None:
        limit = algo_limit(settings, facts.market, facts.algo)
        if facts.open_algos >= limit:
            return (
                f"open {facts.algo.upper()} orders on {facts.market} ({facts.open_algos}) "
                f"are at the maximum {limit}"
            )
        spot_cap = settings.max_open_twap_spot
        if (
            facts.algo == OrderKind.VP
            and facts.market == "spot"
            and facts.open_spot_algos >= spot_cap
        ):
            return (
                f"open algo orders on spot, TWAP and VP together ({facts.open_spot_algos}), "
                f"are at the maximum {spot_cap}"
            )
    if not facts.entry:
        return None
    cap = settings.max_notional_per_signal
    if cap is not None and facts.notional is not None and facts.notional > cap:
        return (
            f"notional ({to_wire(facts.notional)}) exceeds max_notional_per_signal {to_wire(cap)}"
        )
    cap = settings.max_notional_per_symbol
    if cap is not None and facts.notional is not None:
        total = facts.exposure + facts.notional
        if total > cap:
            return (
                f"notional on {facts.symbol} would be {to_wire(total)} "
                f"(open {to_wire(facts.exposure)} + {to_wire(facts.notional)}), "
                f"above max_notional_per_symbol {to_wire(cap)}"
            )
    if facts.live_entry is not None and not settings.allow_stacking:
        return (
            f"an entry for strategy {facts.strategy} on {facts.symbol} is still live "
            f"({facts.live_entry}); set allow_stacking to add to it"
        )
    return None
