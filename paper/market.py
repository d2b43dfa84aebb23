"""Price paths: a seeded random walk per symbol, or closes replayed from kline CSV files.

Each tick (``paper_tick_seconds``) moves every path one step. ``volatility`` is the standard
deviation of the relative move per tick (``0.0005`` = 0.05 %); ``0`` freezes the price, which
is what most tests want after ``POST /paper/price``.
"""

from __future__ import annotations

import csv
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from paper.numbers import round_down
from paper.symbols import SymbolSpec


@dataclass
class PricePath:
    symbol: str
    price: Decimal
    tick: Decimal
    volatility: Decimal
    volume: Decimal
    rng: random.Random
    replay: list[Decimal] = field(default_factory=list)
    replay_index: int = 0

    def step(self) -> None:
        if self.replay:
            self.price = self.replay[self.replay_index % len(self.replay)]
            self.replay_index += 1
            return
        if self.volatility <= 0:
            return
        move = Decimal(repr(self.rng.gauss(0.0, 1.0))) * self.volatility
        candidate = round_down(self.price * (1 + move), self.tick)
        self.price = max(candidate, self.tick)

    def set(self, price: Decimal) -> None:
        self.price = price
        self.replay = []  # an explicit price ends any replay for this symbol


class Market:
    """Current price of every symbol; spot and USD-M share one price (mark = last)."""

    def __init__(
        self,
        specs: Iterable[SymbolSpec],
        *,
        seed: int,
        volatility: Decimal,
        replay: dict[str, list[Decimal]] | None = None,
    ) -> None:
        self.paths: dict[str, PricePath] = {}
        for spec in specs:
            rng = random.Random(seed * 1_000_003 + zlib.crc32(spec.symbol.encode()))
            self.paths[spec.symbol] = PricePath(
                spec.symbol,
                spec.price,
                spec.spot.tick,
                volatility,
                spec.volume,
                rng,
                list((replay or {}).get(spec.symbol, [])),
            )
            if self.paths[spec.symbol].replay:
                self.paths[spec.symbol].step()

    def price(self, symbol: str) -> Decimal:
        return self.paths[symbol].price

    def step(self) -> None:
        for path in self.paths.values():
            path.step()


def load_klines(spec: str) -> dict[str, list[Decimal]]:
    """Read close prices from kline CSV files.

    ``spec`` is one or more paths separated by commas. A file with a header row may carry a
    ``symbol`` column (several symbols in one file) and must have a ``close`` column; a file
    without a header is Binance's kline dump format (close is the fifth column) and takes its
    symbol from the file name (``BTCUSDT-1m-2024-01.csv`` -> ``BTCUSDT``).
    """
    closes: dict[str, list[Decimal]] = {}
    for raw_path in (part.strip() for part in spec.split(",")):
        if not raw_path:
            continue
        path = Path(raw_path)
        default_symbol = path.name.split("-")[0].split(".")[0].upper()
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            continue
        header = [cell.strip().lower() for cell in rows[0]]
        if "close" in header:
            close_at = header.index("close")
            symbol_at = header.index("symbol") if "symbol" in header else None
            body = rows[1:]
        else:
            close_at, symbol_at, body = 4, None, rows
        for row in body:
            if len(row) <= close_at:
                continue
            symbol = row[symbol_at].strip().upper() if symbol_at is not None else default_symbol
            closes.setdefault(symbol, []).append(Decimal(row[close_at].strip()))
    return closes
