"""Single flight for the monitor: one cycle at a time across every process sharing Redis.

redis-py's ``Lock``: ``SET key token NX PX ttl`` to take it; extending and releasing check
the token first (Lua), so only the owner extends or frees it, and a cycle that outlived its
TTL cannot free a lock another cycle has since taken. A cycle renews the lock before every
action on the exchange (a cancel, a bracket) and stops acting when that fails: even a cycle
slower than the TTL never acts alongside another one.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import LockError

log = logging.getLogger(__name__)

MONITOR_LOCK_KEY = "pacekeeper:lock:monitor"

# Without Redis (one process: tools, benchmarks) the lock is this process's own.
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


class LockLost(Exception):
    """The single-flight lock expired or was taken over: this cycle must stop acting."""


class SingleFlight:
    """A lock taken without waiting, renewed before each action, released by its owner."""

    def __init__(self, redis: Redis | None, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.held = False
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
        return self.held

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
        if not self.held:
            return
        self.held = False
        if self._lock is None:
            self._local.release()
            return
        try:
            self._lock.release()
        except LockError:
            log.warning("monitor lock %s had expired before its release", self.key)
