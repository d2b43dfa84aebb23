"""The symbols the exchange lists, per market, so the receiver can refuse an unknown one.

A signal for a symbol the exchange does not list can only fail, but only a worker, talking to
the exchange, would find out, after the sender was told 202. So the receiver keeps the
names from exchangeInfo (spot and USD-M) and answers 422 naming ``symbol`` for one that is
not listed. The webhook never waits for the exchange: the listing is fetched in the
background (through the shared rate-limit governor, in a thread) every
``PACEKEEPER_EXCHANGE_INFO_TTL`` seconds, and a signal is judged only against a listing
younger than ``MAX_AGE``. With no such listing (the exchange is down, or was never reached)
every symbol is accepted: a signal is never lost because the exchange is away. A symbol
missing from a listing older than ``RECHECK_AFTER`` asks for an early refresh, so one
listed since is known a minute later at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from app.config import Settings

log = logging.getLogger(__name__)

PATHS = {"spot": "/api/v3/exchangeInfo", "usdm": "/fapi/v1/exchangeInfo"}
# A listing older than this is not used to refuse anything.
MAX_AGE = 3600.0
# After a failed refresh, the next try comes this much sooner than the TTL.
RETRY_AFTER = 30.0
# A symbol missing from a listing at least this old triggers an early refresh.
RECHECK_AFTER = 60.0


class SymbolDirectory:
    """Listed symbols per market, refreshed by :meth:`run` in the background."""

    def __init__(
        self,
        fetch: Callable[[str], dict[str, Any]],
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._fetch = fetch  # market -> the exchangeInfo document (blocking: run in a thread)
        self._on_close = on_close
        self.ttl = max(ttl, RECHECK_AFTER)
        self._clock = clock
        self._listed: dict[str, tuple[float, frozenset[str]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Fetches run here: cancelling run() does not stop one under way on its thread, and
        # close() waits for it before closing the client it uses (else that request would
        # leave a connection open on a closed client).
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pacekeeper-symbols")

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any | None) -> SymbolDirectory:
        from app.exchange.client import BinanceClient
        from app.metrics import exchange_observer

        # Never a long wait for the rate limit in the receiver: the next refresh comes soon.
        quick = settings.model_copy(update={"rate_limit_max_wait": 5.0})
        client = BinanceClient.from_settings(
            quick, redis=redis, observer=exchange_observer(redis, quick)
        )

        def fetch(market: str) -> dict[str, Any]:
            body: dict[str, Any] = client.call("GET", PATHS[market])
            return body

        return cls(fetch, ttl=settings.exchange_info_ttl, on_close=client.close)

    def listed(self, market: str, symbol: str) -> bool | None:
        """True or False from a recent listing; None when there is none (accept)."""
        entry = self._listed.get(market)
        if entry is None:
            return None
        fetched, names = entry
        age = self._clock() - fetched
        if age > MAX_AGE:
            return None
        if symbol in names:
            return True
        if age > RECHECK_AFTER:
            self._wake.set()  # perhaps listed since: look again soon
        return False

    def load(self, market: str, info: dict[str, Any]) -> int:
        """Take the names from an exchangeInfo document; returns how many."""
        names = frozenset(
            str(s["symbol"])
            for s in info.get("symbols", [])
            if isinstance(s, dict) and "symbol" in s
        )
        self._listed[market] = (self._clock(), names)
        return len(names)

    def start(self) -> SymbolDirectory:
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        # A fetch under way ends within its retries and the client's timeouts (bounded).
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)
        if self._on_close is not None:
            self._on_close()

    async def run(self) -> None:
        """Refresh every market now and then every ``ttl`` (sooner after a failure)."""
        loop = asyncio.get_running_loop()
        while True:
            pause = self.ttl
            for market in PATHS:
                try:
                    info = await loop.run_in_executor(self._pool, self._fetch, market)
                    count = self.load(market, info)
                    log.debug("exchangeInfo %s: %d symbols", market, count)
                except Exception as exc:
                    pause = min(pause, RETRY_AFTER)
                    log.info("exchangeInfo %s not refreshed: %s", market, type(exc).__name__)
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
