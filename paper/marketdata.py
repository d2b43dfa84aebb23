"""Market data built from the price path: klines, 24-hour tickers and an order book.

The paper market has no other traders, so these are derived, not observed:

- Candles: every price the path takes (each tick, each ``POST /paper/price``) lands in the
  one-minute candle of its time; longer intervals are made from those. A minute with no
  price of its own (a clock jump beyond the catch-up limit) repeats the previous close.
  Volume follows the symbol's market volume (the one VP participates in, base units per
  second) over the time the candle covers; quote volume is that volume at the close.
- 24-hour ticker: the candles of the last 24 hours (or of the history there is).
- Depth: levels one tick apart on each side of the current price, never crossing it, with
  quantities from the same volume model.

History is kept for ``HISTORY_MINUTES`` per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paper.errors import BinanceError
from paper.numbers import ZERO, fmt, round_down, round_up
from paper.symbols import SymbolSpec

MINUTE_MS = 60_000
DAY_MS = 86_400_000
HISTORY_MINUTES = 7 * 1440
INTERVALS_MS = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
WEEK_OFFSET_MS = 4 * DAY_MS  # Binance's weekly candles open on Mondays (epoch was a Thursday)
INVALID_INTERVAL = BinanceError(-1120, "Invalid interval.")


@dataclass
class Candle:
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    first_ms: int  # first and last moment the candle saw a price
    last_ms: int

    def add(self, price: Decimal, now: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.last_ms = max(self.last_ms, now)


class Candles:
    """One-minute candles of one symbol, oldest first."""

    def __init__(self, price: Decimal, now: int) -> None:
        self.minutes: dict[int, Candle] = {}
        self.start = now
        self.record(price, now)

    def record(self, price: Decimal, now: int) -> None:
        minute = now - now % MINUTE_MS
        candle = self.minutes.get(minute)
        if candle is None:
            self.minutes[minute] = Candle(minute, price, price, price, price, now, now)
            while len(self.minutes) > HISTORY_MINUTES:
                del self.minutes[next(iter(self.minutes))]
            self.start = max(self.start, next(iter(self.minutes)))
        else:
            candle.add(price, now)

    def close_before(self, at: int) -> Decimal | None:
        best: Candle | None = None
        for candle in self.minutes.values():
            if candle.open_time < at:
                best = candle
            else:
                break
        return best.close if best else None

    def aggregate(self, interval_ms: int, offset: int, now: int) -> list[Candle]:
        """Candles of ``interval_ms`` from the first price to ``now``, gaps carried forward."""
        if not self.minutes:
            return []
        out: dict[int, Candle] = {}
        previous: Candle | None = None
        first_minute = next(iter(self.minutes))
        minute = first_minute
        last_minute = now - now % MINUTE_MS
        while minute <= last_minute:
            candle = self.minutes.get(minute)
            if candle is None and previous is not None:
                price = previous.close
                candle = Candle(minute, price, price, price, price, minute, minute)
            if candle is not None:
                bucket = minute - (minute - offset) % interval_ms
                current = out.get(bucket)
                if current is None:
                    out[bucket] = Candle(
                        bucket,
                        candle.open,
                        candle.high,
                        candle.low,
                        candle.close,
                        max(bucket, self.start),
                        candle.last_ms,
                    )
                else:
                    current.high = max(current.high, candle.high)
                    current.low = min(current.low, candle.low)
                    current.close = candle.close
                    current.last_ms = candle.last_ms
                previous = candle
            minute += MINUTE_MS
        return list(out.values())


def _volume(spec: SymbolSpec, start: int, end: int) -> Decimal:
    seconds = Decimal(max(0, end - start)) / 1000
    return round_down(spec.volume * seconds, spec.spot.step)


def klines(
    spec: SymbolSpec,
    candles: Candles,
    now: int,
    *,
    interval: str,
    start: int | None,
    end: int | None,
    limit: int,
    price_places: int,
) -> list[list[object]]:
    interval_ms = INTERVALS_MS.get(interval)
    if interval_ms is None:
        raise INVALID_INTERVAL
    offset = WEEK_OFFSET_MS if interval == "1w" else 0
    rows = candles.aggregate(interval_ms, offset, now)
    if start is not None:
        rows = [c for c in rows if c.open_time >= start]
    if end is not None:
        rows = [c for c in rows if c.open_time <= end]
    rows = rows[:limit] if start is not None else rows[-limit:]
    out: list[list[object]] = []
    qty_places = spec.spot.qty_places
    for c in rows:
        close_time = c.open_time + interval_ms - 1
        volume = _volume(spec, c.first_ms, min(close_time + 1, now))
        quote = volume * c.close
        out.append(
            [
                c.open_time,
                fmt(c.open, price_places),
                fmt(c.high, price_places),
                fmt(c.low, price_places),
                fmt(c.close, price_places),
                fmt(volume, qty_places),
                close_time,
                fmt(quote, 8),
                0,
                fmt(volume / 2, qty_places),
                fmt(quote / 2, 8),
                "0",
            ]
        )
    return out


def ticker_24hr(
    spec: SymbolSpec, candles: Candles, now: int, last: Decimal, price_places: int
) -> dict[str, object]:
    """The rolling 24-hour statistics both spot and USD-M answer (without the spot extras)."""
    open_time = max(now - DAY_MS, candles.start)
    minutes = [
        c for c in candles.aggregate(MINUTE_MS, 0, now) if c.open_time + MINUTE_MS > open_time
    ]
    open_price = candles.close_before(open_time - open_time % MINUTE_MS) or (
        minutes[0].open if minutes else last
    )
    high = max([c.high for c in minutes] + [last, open_price])
    low = min([c.low for c in minutes] + [last, open_price])
    volume = _volume(spec, open_time, now)
    quote = sum(
        (
            _volume(spec, max(c.first_ms, open_time), min(c.open_time + MINUTE_MS, now)) * c.close
            for c in minutes
        ),
        ZERO,
    )
    weighted = quote / volume if volume else last
    change = last - open_price
    percent = change * 100 / open_price if open_price else ZERO
    return {
        "symbol": spec.symbol,
        "priceChange": fmt(change, price_places),
        "priceChangePercent": fmt(percent, 3),
        "weightedAvgPrice": fmt(weighted, price_places),
        "lastPrice": fmt(last, price_places),
        "lastQty": fmt(spec.volume, spec.spot.qty_places),
        "openPrice": fmt(open_price, price_places),
        "highPrice": fmt(high, price_places),
        "lowPrice": fmt(low, price_places),
        "volume": fmt(volume, spec.spot.qty_places),
        "quoteVolume": fmt(quote, 8),
        "openTime": open_time,
        "closeTime": now,
        "firstId": -1,
        "lastId": -1,
        "count": 0,
    }


def book_levels(
    spec: SymbolSpec,
    price: Decimal,
    tick: Decimal,
    depth: int,
    *,
    price_places: int,
    qty_places: int,
) -> tuple[list[list[str]], list[list[str]]]:
    """``depth`` bid and ask levels one tick apart around ``price`` (bids below, asks above)."""
    top_bid = round_up(price, tick) - tick
    top_ask = round_down(price, tick) + tick
    step = spec.spot.step
    bids: list[list[str]] = []
    asks: list[list[str]] = []
    for k in range(depth):
        qty = max(round_down(spec.volume * Decimal(1 + k % 7) / 4, step), step)
        bid = top_bid - k * tick
        if bid > 0:
            bids.append([fmt(bid, price_places), fmt(qty, qty_places)])
        asks.append([fmt(top_ask + k * tick, price_places), fmt(qty, qty_places)])
    return bids, asks
