"""Reads that the jobs of one process share: one request in flight per key, and its answer
reused while it is younger than a maximum age.

A burst of fifty entries on one symbol would otherwise make fifty identical price requests,
each a full exchange round trip before its order can go out (and fifty times the weight).
With :class:`SharedReads` the first job asks, the jobs that come while it waits get the same
answer (or the same error), and those that come within ``max_age`` of the request get it at
once. Age counts from when the request was sent, so an answer is never older than that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("pacekeeper.exchange")


class SharedReads(Generic[T]):
    """``refresh_ahead`` (a fraction of ``max_age``): a caller that finds an answer older than
    that still gets it at once, and a new request goes out in the background, so that a
    steady flow of callers never waits for one (demand-driven: a key nobody asks for is not
    read again)."""

    def __init__(
        self,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        refresh_ahead: float | None = None,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._refresh_after = None if refresh_ahead is None else max_age * refresh_ahead
        self._spawn = spawn or _daemon
        self._lock = threading.Lock()
        self._answers: dict[Hashable, tuple[float, T]] = {}  # key -> (sent at, answer)
        self._flights: dict[Hashable, Future[T]] = {}
        self.joined = 0  # callers that waited for another's request instead of sending one
        self.refreshed = 0  # requests sent ahead, in the background

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s answer for ``key``: a recent one, the one in flight, or a new one."""
        if self.max_age <= 0:
            return read()
        sent = self._clock()
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None and self._clock() - answer[0] <= self.max_age:
                ahead = self._ahead(key, answer[0])
            else:
                answer = None
                waiting = self._flights.get(key)
                mine = waiting is None
                if waiting is None:
                    flight: Future[T] = Future()
                    self._flights[key] = flight
                else:
                    flight = waiting
                    self.joined += 1
        if answer is not None:
            if ahead is not None:
                self._spawn(partial(self._quietly, key, read, ahead))
            return answer[1]
        if not mine:
            return flight.result()  # the asker's answer, or its error raised here too
        return self._fetch(key, read, flight, sent)

    def _ahead(self, key: Hashable, sent: float) -> Future[T] | None:
        """Under the lock, for a fresh answer sent at ``sent``: the flight of a request to
        send ahead, when the answer is old enough and none is in flight."""
        if self._refresh_after is None or key in self._flights:
            return None
        if self._clock() - sent <= self._refresh_after:
            return None
        self.refreshed += 1
        flight = self._flights[key] = Future()
        return flight

    def _fetch(self, key: Hashable, read: Callable[[], T], flight: Future[T], sent: float) -> T:
        try:
            value = read()
        except BaseException as exc:
            with self._lock:
                del self._flights[key]
            flight.set_exception(exc)
            raise
        with self._lock:
            del self._flights[key]
            self._answers[key] = (sent, value)
        flight.set_result(value)
        return value

    def _quietly(self, key: Hashable, read: Callable[[], T], flight: Future[T]) -> None:
        """A request sent ahead: its error reaches only callers that joined it (the answer
        they had expired meanwhile); nobody else waits for it."""
        try:
            self._fetch(key, read, flight, self._clock())
        except Exception as exc:
            log.debug("read ahead of %s failed: %s", key, exc)


def _daemon(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="pacekeeper-read-ahead", daemon=True).start()
