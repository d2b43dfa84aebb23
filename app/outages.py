"""Riding out an outage: wait for Redis or the database instead of exiting.

A process that exits when Redis or the database goes away comes back only when a human (or
a supervisor restarting it blindly) starts it again, and the work it had waits meanwhile
anyway. So the workers, the monitor's cron process and the receiver keep running through
an outage: they note that a component is unreachable and log it once, try again after a
pause that doubles up to a cap, log once when it answers again, and carry on. What was in
flight when it went (a job taken the moment Redis died) the intake sweeper recovers from
the database afterwards (``app.signals.sweeper``).

A process exits only when asked to (SIGTERM, SIGINT) or when it is misconfigured: then
with :data:`CONFIG_ERROR`, which ``pacekeeper dev`` does not restart.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import FrameType
from typing import Any

from redis import Redis, RedisError
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# sysexits.h EX_CONFIG: a setting is missing or wrong; starting again will not help.
CONFIG_ERROR = 78

# Pauses between attempts: 0.5 s, doubling, at most BACKOFF_CAP.
BACKOFF_START = 0.5
BACKOFF_CAP = 5.0


class Backoff:
    """Capped exponential pauses: ``next()`` gives the pause before the next attempt."""

    def __init__(self, start: float = BACKOFF_START, cap: float = BACKOFF_CAP) -> None:
        self.start = start
        self.cap = cap
        self._next = start

    def next(self) -> float:
        pause, self._next = self._next, min(self.cap, self._next * 2)
        return pause

    def reset(self) -> None:
        self._next = self.start


class Component:
    """Whether one dependency (``redis``, ``database``) answers, as this process last saw
    it; a change is logged once, not every failed attempt."""

    def __init__(
        self,
        name: str,
        log: logging.Logger,
        *,
        on_answered: Callable[[str, float], object] | None = None,
    ) -> None:
        self.name = name
        self.log = log
        # Told (name, seconds down) when an outage ends: the outage metrics.
        self.on_answered = on_answered
        self.up = True
        self.down_since = 0.0
        self.outages = 0

    def failed(self, exc: BaseException | None = None) -> None:
        if self.up:
            self.up = False
            self.down_since = time.monotonic()
            self.outages += 1
            why = f" ({type(exc).__name__}: {_first_line(exc)})" if exc is not None else ""
            self.log.warning("%s unreachable%s; waiting for it", self.name, why)

    def answered(self) -> None:
        if not self.up:
            self.up = True
            seconds = time.monotonic() - self.down_since
            self.log.warning("%s reachable again after %.1f s", self.name, seconds)
            if self.on_answered is not None:
                with suppress(Exception):
                    self.on_answered(self.name, seconds)


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0][:200] if exc is not None and str(exc) else ""


class StopFlag:
    """Set by SIGTERM/SIGINT (after :meth:`install`) or by :meth:`set`; a pause in
    :func:`wait_for` ends at once when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def set(self, *_args: Any) -> None:
        self.event.set()

    def install(self) -> StopFlag:
        """Our handlers for SIGTERM and SIGINT (from the main thread only)."""
        if threading.current_thread() is threading.main_thread():

            def handler(_signum: int, _frame: FrameType | None) -> None:
                self.set()

            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, handler)
        return self

    def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if a stop was asked meanwhile."""
        return self.event.wait(seconds)


def outage_recorder(settings: Any, process: str) -> Callable[[str, float], object]:
    """Counts each outage ``process`` waited out in the shared metrics (app.metrics)."""
    from app.metrics import MetricsRecorder

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
    recorder = MetricsRecorder.for_settings(redis, settings)
    return lambda component, seconds: recorder.outage(process, component, seconds)


def wait_for(
    component: Component,
    probe: Callable[[], object],
    *,
    stop: StopFlag,
    backoff: Backoff | None = None,
    between: Callable[[], object] | None = None,
) -> bool:
    """Call ``probe`` until it passes (True), pausing with backoff after each failure;
    False when a stop is asked first. ``between`` runs during each pause (a heartbeat)."""
    backoff = backoff or Backoff()
    while not stop:
        try:
            probe()
        except Exception as exc:
            component.failed(exc)
            if between is not None:
                with suppress(Exception):  # a heartbeat, which may need what is down
                    between()
            if stop.pause(backoff.next()):
                return False
            continue
        component.answered()
        return True
    return False


def redis_probe(url: str) -> Callable[[], object]:
    """PING on a fresh connection that fails fast."""

    def probe() -> object:
        conn = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            return conn.ping()
        finally:
            conn.close()

    return probe


def database_probe(engine: Engine) -> Callable[[], object]:
    """``SELECT 1`` through the process's own engine (so its pool is refreshed too)."""

    def probe() -> object:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar()

    return probe


def is_database_outage(exc: BaseException) -> bool:
    """An error saying the database could not be reached (not a bad statement)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def is_redis_outage(exc: BaseException) -> bool:
    return isinstance(exc, RedisError | ConnectionError | TimeoutError)
