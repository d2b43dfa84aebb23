"""Single flight for the monitor: one cycle at a time across every process sharing Redis.

``SET key token NX PX ttl`` takes the lock; renewing and releasing check the token first (one
Lua script each), so only the owner extends or frees it, and a cycle that outlived its TTL
cannot free a lock another cycle has since taken. A cycle renews the lock before every action
on the exchange (a cancel, a bracket) and stops acting when the renewal fails: even a cycle
slower than the TTL never acts alongside another one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

from redis import Redis

log = logging.getLogger(__name__)

MONITOR_LOCK_KEY = "pacekeeper:lock:monitor"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Without Redis (a single process: tools, some tests) the lock is this process's own.
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


class LockLost(Exception):
    """The single-flight lock expired or was taken over: this cycle must stop acting."""


class SingleFlight:
    """A Redis lock owned by a random token; ``acquire`` never waits."""

    def __init__(self, redis: Redis | None, key: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = uuid.uuid4().hex
        self.held = False
        self._local: threading.Lock | None = None

    def acquire(self) -> bool:
        if self.redis is None:
            with _local_guard:
                self._local = _local_locks.setdefault(self.key, threading.Lock())
            self.held = self._local.acquire(blocking=False)
        else:
            self.held = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def renew(self) -> bool:
        """Extend the TTL if this token still owns the lock."""
        if not self.held:
            return False
        if self.redis is None:
            return True
        if int(self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)):
            return True
        log.warning("monitor lock %s was lost (expired or taken over)", self.key)
        self.held = False
        return False

    def ensure(self) -> None:
        """Renew, or raise ``LockLost``: call before every action on the exchange."""
        if not self.renew():
            raise LockLost(self.key)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self.redis is None:
            if self._local is not None:
                self._local.release()
            return
        self.redis.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> SingleFlight:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
