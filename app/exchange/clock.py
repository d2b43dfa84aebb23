"""The exchange's clock, as seen from here: local time plus a measured offset.

Signed requests carry ``timestamp``; Binance rejects it (-1021) when it is 1 s ahead of the
server or older than ``recvWindow``. The offset is measured from ``GET /api/v3/time``
(``/fapi/v1/time`` for USD-M), against the midpoint of the round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ServerClock:
    """Server time in milliseconds; syncs on first use, after ``max_age`` seconds, and on demand."""

    def __init__(
        self,
        fetch_server_time: Callable[[], int],
        *,
        now: Callable[[], float] = time.time,
        max_age: float = 600.0,
    ) -> None:
        self._fetch = fetch_server_time
        self._now = now
        self._max_age = max_age
        self._offset_ms: int | None = None
        self._synced_at = 0.0

    @property
    def offset_ms(self) -> int | None:
        return self._offset_ms

    def sync(self) -> int:
        """Measure the offset now; returns it in milliseconds (server minus local)."""
        sent = self._now()
        server_ms = self._fetch()
        received = self._now()
        midpoint_ms = (sent + received) * 500  # average of the two, in ms
        self._offset_ms = round(server_ms - midpoint_ms)
        self._synced_at = received
        return self._offset_ms

    def now_ms(self) -> int:
        """The server's current time in ms, syncing first when the offset is unknown or stale."""
        if self._offset_ms is None or self._now() - self._synced_at > self._max_age:
            self.sync()
        assert self._offset_ms is not None
        return int(self._now() * 1000) + self._offset_ms
