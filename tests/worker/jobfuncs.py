"""Tiny job functions for worker/cron tests (importable by the worker by dotted path)."""

import redis

# Only a safety net for a test run killed before its clean-up: no test waits anywhere near it.
SAFETY_TTL = 24 * 3600


def record(redis_url: str, key: str) -> str:
    conn = redis.Redis.from_url(redis_url)
    try:
        conn.incr(key)
        conn.expire(key, SAFETY_TTL)
    finally:
        conn.close()
    return "ok"


def hold(redis_url: str, key: str, release: str) -> str:
    """Mark ``key`` as started, then wait (bounded) until the file ``release`` exists."""
    import os
    import time

    redis.Redis.from_url(redis_url).set(key, "started", ex=60)
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


def touch_database(redis_url: str, key: str) -> str:
    """A query through the worker's own engine, then count the run in Redis."""
    from sqlalchemy import text

    from worker.resources import resources

    with resources().engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    record(redis_url, key)
    return "ok"


def gather(redis_url: str, key: str, count: int, within: float = 20.0) -> str:
    """Count this run in ``key``, then wait until ``count`` runs have started: only a worker
    that runs ``count`` jobs at once gets every one of them past the wait."""
    import time

    conn = redis.Redis.from_url(redis_url)
    try:
        conn.incr(key)
        conn.expire(key, SAFETY_TTL)
        deadline = time.monotonic() + within
        while int(conn.get(key) or 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {int(conn.get(key) or 0)} of {count} ran at once")
            time.sleep(0.01)
    finally:
        conn.close()
    return "gathered"


def note(redis_url: str, key: str, name: str) -> str:
    """Append ``name`` to the list ``key``: the order in which jobs ran."""
    conn = redis.Redis.from_url(redis_url)
    try:
        conn.rpush(key, name)
        conn.expire(key, SAFETY_TTL)
    finally:
        conn.close()
    return name


def not_imported(redis_url: str, key: str, modules: list[str]) -> list[str]:
    """Store in ``key`` (JSON) which of ``modules`` this process had not imported when the
    job started."""
    import json
    import sys

    missing = [name for name in modules if name not in sys.modules]
    conn = redis.Redis.from_url(redis_url)
    try:
        conn.set(key, json.dumps(missing), ex=SAFETY_TTL)
    finally:
        conn.close()
    return missing
