"""The average price that spot ``PERCENT_PRICE_BY_SIDE`` (and ``NOTIONAL`` for MARKET orders)
compare against, as ``GET /api/v3/avgPrice`` answers it.

Binance takes the volume-weighted average of the last ``avgPriceMins`` (5) minutes of trades,
not the last price. The paper market has no trades, so the average is weighted by time over
the price path instead. What matters is that it lags: for five minutes after a gap the
average still remembers the old price, so an order priced off the new last price can fail
the filter on the paper exchange exactly when it would on Binance.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

AVG_PRICE_MINS = 5
WINDOW_MS = AVG_PRICE_MINS * 60_000


class AveragePrice:
    """One symbol's price changes over the last window, and their time-weighted mean."""

    def __init__(self, price: Decimal, now: int) -> None:
        # (time the price took effect, price); the first point is the price at window start.
        self._points: deque[tuple[int, Decimal]] = deque([(now, price)])

    def record(self, now: int, price: Decimal) -> None:
        last_time, last_price = self._points[-1]
        if price == last_price:
            return
        if now <= last_time:
            self._points.pop()  # two prices in one millisecond: only the later one lasted
            if self._points and self._points[-1][1] == price:
                return
        self._points.append((now, price))
        start = now - WINDOW_MS
        while len(self._points) >= 2 and self._points[1][0] <= start:
            self._points.popleft()

    def value(self, now: int) -> Decimal:
        """Time-weighted mean over ``[now - window, now]`` (or over the history there is)."""
        points = self._points
        start = max(points[0][0], now - WINDOW_MS)
        if now <= start:
            return points[-1][1]
        total = Decimal(0)
        for i, (begins, price) in enumerate(points):
            ends = points[i + 1][0] if i + 1 < len(points) else now
            span = min(ends, now) - max(begins, start)
            if span > 0:
                total += price * span
        return total / (now - start)
