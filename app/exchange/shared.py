"""Reads that the jobs of one process share: one request in flight per key, and its answer
reused while it is younger than a maximum age.

A burst of fifty entries on one symbol would otherwise make fifty identical price requests,
each a full exchange round trip before its order can go out (and fifty times the weight).
With :class:`SharedReads` the first job asks, the jobs that come while it waits get the same
answer (or the same error), and those that come within ``max_age`` of the request get it at
once. Age counts from when the request was sent, so an answer is never older than that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedReads(Generic[T]):
    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[Hashable, tuple[float, T]] = {}  # key -> (sent at, answer)
        self._flights: dict[Hashable, Future[T]] = {}
        self.joined = 0  # callers that waited for another's request instead of sending one

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s answer for ``key``: a recent one, the one in flight, or a new one."""
        if self.max_age <= 0:
            return read()
        sent = self._clock()
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None and self._clock() - answer[0] <= self.max_age:
                return answer[1]
            flight = self._flights.get(key)
            mine = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
            else:
                self.joined += 1
        if not mine:
            return flight.result()  # the asker's answer, or its error raised here too
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
