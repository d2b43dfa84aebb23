"""Single flight for the monitor (and the intake sweeper): one run at a time across every
process sharing Redis.

redis-py's ``Lock``: ``SET key token NX PX ttl`` to take it; extending and releasing check
the token first (Lua), so only the owner extends or frees it, and a cycle that outlived its
TTL cannot free a lock another cycle has since taken. A cycle renews the lock before every
action on the exchange (a cancel, a bracket) and stops acting when that fails: even a cycle
slower than the TTL never acts alongside another one.

The TTL is short, and a thread of the holder renews the lock every third of it while the
holder lives: a live run keeps its lock however long it takes, and a lock whose holder is
gone frees itself within one TTL. A long TTL instead would stop every run for its length
each time a holder cannot release: a worker SIGKILLed mid-run, or one whose Redis crashed
under it (the lock comes back from the AOF, and the release found Redis down). That held the
intake sweeper off for two minutes after a Redis crash.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)

MONITOR_LOCK_KEY = "pacekeeper:lock:monitor"

# Without Redis (one process: tools, benchmarks) the lock is this process's own.
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


class LockLost(Exception):
    """The single-flight lock expired or was taken over: this cycle must stop acting."""


class SingleFlight:
    """A lock taken without waiting, kept alive while its holder lives, renewed before each
    action, released by its owner."""

    def __init__(self, redis: Redis | None, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.held = False
        self._ttl = ttl_seconds
        self._keeper: tuple[threading.Thread, threading.Event] | None = None
        # One token for the whole cycle, whichever of its threads renews it.
        self._lock = (
            redis.lock(key, timeout=ttl_seconds, blocking=False, thread_local=False)
            if redis is not None
            else None
        )
        with _local_guard:
            self._local = _local_locks.setdefault(key, threading.Lock())

    def acquire(self) -> bool:
        if self._lock is None:
            self.held = self._local.acquire(blocking=False)
        else:
            self.held = bool(self._lock.acquire(blocking=False))
            if self.held:
                self._keep_alive()
        return self.held

    def _keep_alive(self) -> None:
        lock, stop = self._lock, threading.Event()
        assert lock is not None

        def renew() -> None:
            while not stop.wait(self._ttl / 3):
                try:
                    lock.reacquire()
                except LockError:
                    return  # lost (expired or taken over): ensure() tells the holder
                except RedisError:
                    continue  # Redis away: try again; if it stays away the lock expires

        thread = threading.Thread(target=renew, name=f"keep {self.key}", daemon=True)
        self._keeper = (thread, stop)
        thread.start()

    def _stop_keeping(self) -> None:
        if self._keeper is not None:
            thread, stop = self._keeper
            self._keeper = None
            stop.set()
            thread.join(timeout=5)

    def ensure(self) -> None:
        """Renew the TTL, or raise ``LockLost``: call before every action on the exchange."""
        if not self.held:
            raise LockLost(self.key)
        if self._lock is None:
            return
        try:
            self._lock.reacquire()
        except LockError:
            log.warning("monitor lock %s was lost (expired or taken over)", self.key)
            self.held = False
            raise LockLost(self.key) from None

    def release(self) -> None:
        """Free the lock; when Redis does not answer, it expires within one TTL."""
        self._stop_keeping()
        if not self.held:
            return
        self.held = False
        if self._lock is None:
            self._local.release()
            return
        try:
            self._lock.release()
        except LockError:
            log.warning("lock %s had expired before its release", self.key)
        except RedisError as exc:
            log.warning("lock %s not released (%s); it expires by itself", self.key,
                        type(exc).__name__)  # fmt: skip
