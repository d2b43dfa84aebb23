"""USD-M account settings per symbol: leverage, margin type and the leverage brackets.

``POST /fapi/v1/leverage`` refuses a leverage above the symbol's first bracket (-4028) and
one whose bracket cap is below the position already held (-2027); ``POST
/fapi/v1/marginType`` answers -4046 when nothing changes and refuses a change while the
symbol has a position (-4048) or open orders (-4047). An order that would take the position's
notional past the cap of the current leverage is refused with -2027, as on Binance.

Isolated margin is recorded and reported (positionRisk's ``marginType``); the margin check
itself stays the cross one, at each symbol's own leverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paper.errors import BinanceError
from paper.numbers import ZERO, plain

D = Decimal
MARGIN_TYPES = {"ISOLATED": "isolated", "CROSSED": "cross"}
TOO_LARGE = BinanceError(-2027, "Exceeded the maximum allowable position at current leverage.")


@dataclass(frozen=True)
class Bracket:
    bracket: int
    initial_leverage: int
    floor: Decimal
    cap: Decimal
    maint_ratio: Decimal
    cum: Decimal

    def render(self) -> dict[str, object]:
        return {
            "bracket": self.bracket,
            "initialLeverage": self.initial_leverage,
            "notionalCap": int(self.cap),
            "notionalFloor": int(self.floor),
            "maintMarginRatio": float(self.maint_ratio),
            "cum": float(self.cum),
        }


# (initial leverage, notional cap, maintenance margin ratio) of the majors (BTC, ETH)
_MAJOR = (
    (125, "50000", "0.004"),
    (100, "600000", "0.005"),
    (50, "3000000", "0.01"),
    (20, "12000000", "0.025"),
    (10, "70000000", "0.05"),
    (5, "100000000", "0.1"),
    (4, "230000000", "0.125"),
    (3, "480000000", "0.15"),
    (2, "600000000", "0.25"),
    (1, "800000000", "0.5"),
)
# ... and of everything else: 75x at most, smaller caps
_OTHER = (
    (75, "5000", "0.01"),
    (50, "25000", "0.02"),
    (25, "100000", "0.025"),
    (20, "250000", "0.05"),
    (10, "1000000", "0.1"),
    (5, "2000000", "0.125"),
    (4, "5000000", "0.15"),
    (2, "10000000", "0.25"),
    (1, "20000000", "0.5"),
)


def _table(rows: tuple[tuple[int, str, str], ...]) -> tuple[Bracket, ...]:
    out: list[Bracket] = []
    floor, cum, ratio = ZERO, ZERO, ZERO
    for n, (leverage, cap, mmr) in enumerate(rows, start=1):
        cum += floor * (D(mmr) - ratio)
        out.append(Bracket(n, leverage, floor, D(cap), D(mmr), cum))
        floor, ratio = D(cap), D(mmr)
    return tuple(out)


MAJOR, OTHER = _table(_MAJOR), _table(_OTHER)


def brackets(symbol: str) -> tuple[Bracket, ...]:
    return MAJOR if symbol in ("BTCUSDT", "ETHUSDT") else OTHER


def max_notional(symbol: str, leverage: int) -> Decimal:
    """The largest position notional ``leverage`` allows: the cap of the last bracket whose
    initial leverage still reaches it (zero when no bracket does)."""
    caps = [b.cap for b in brackets(symbol) if b.initial_leverage >= leverage]
    return caps[-1] if caps else ZERO


def bracket_rows(symbol: str) -> dict[str, object]:
    return {"symbol": symbol, "brackets": [b.render() for b in brackets(symbol)]}


def check_leverage(symbol: str, leverage: int, held_notional: Decimal) -> None:
    if not 1 <= leverage <= brackets(symbol)[0].initial_leverage:
        raise BinanceError(-4028, f"Leverage {leverage} is not valid")
    if held_notional > max_notional(symbol, leverage):
        raise TOO_LARGE


def leverage_answer(symbol: str, leverage: int) -> dict[str, object]:
    return {
        "leverage": leverage,
        "maxNotionalValue": plain(max_notional(symbol, leverage)),
        "symbol": symbol,
    }
