"""Hostile input is cheap: a per-sender rate limit on the webhook, and a deadline for bodies.

**Rate.** Every sender (its address as the allow-list sees it: the peer, or the client a
trusted proxy names) has a token bucket: ``PACEKEEPER_WEBHOOK_RATE_LIMIT`` requests a second,
bursts up to ``PACEKEEPER_WEBHOOK_RATE_BURST``. A request beyond it is answered 429 with
``Retry-After`` before its body is read, so a flood costs a dictionary look-up per request
and nothing reaches the database. The buckets live in this process (one receiver process
serves the webhook) and at most ``MAX_SENDERS`` are kept, the least recently seen dropped
first (a dropped bucket is a full one: nothing is lost but a little strictness).

**Time.** A body must arrive within ``PACEKEEPER_BODY_TIMEOUT`` seconds of the request's
headers (:class:`BodyDeadline`, for every route): a sender trickling a byte a second gets
408 and its connection back, instead of holding it (and a slot) for minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RequestTimeout

MAX_SENDERS = 10_000


class SenderThrottle:
    """Token buckets per sender; :meth:`take` says how long to wait (0: go ahead)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_senders: int = MAX_SENDERS,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._max = max_senders
        # sender -> (tokens, time they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, sender: str) -> float:
        """Spend a token for ``sender``; 0.0 if it had one, else seconds until it will."""
        now = self._clock()
        tokens, then = self._buckets.pop(sender, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[sender] = (tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


class BodyDeadline:
    """Pure ASGI: ``receive`` raises :class:`RequestTimeout` (408) once a request's body has
    not fully arrived ``timeout`` seconds after its headers. After the body, ``receive`` is
    left alone (it then only reports a disconnect)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            if deadline - loop.time() <= 0:
                raise RequestTimeout()
            try:
                # A timer on this task, not wait_for's task per receive (a hot path).
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)
